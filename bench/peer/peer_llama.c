/* peer_llama.c - the llama.cpp side of bench/bench_peer.sh: the twin of bench/bench_peer_tkr.c,
 * written against llama.cpp's public C API (llama.h). bench_peer.sh compiles it against the
 * headers of the llama.cpp source that node-llama-cpp ships and links it to node-llama-cpp's
 * prebuilt CPU libraries; it is not part of the Makefile build (the repo does not depend on
 * llama.cpp).
 *
 *   peer_llama MODEL.gguf IDS_FILE [--runs R | --stdin] [--threads T] [--mode embd|last]
 *                                  [--dump FILE] [--backend-dir DIR] [--max-batch N]
 *
 * What one run is: all items go into llama_batch(es) of at most --max-batch tokens (default
 * 8192, tkr-embed's max_batch_tokens), one sequence per item, and are decoded; the time covers
 * llama_decode until the results are ready, plus reading and L2-normalising the vectors. The KV
 * cache bookkeeping is reset before each batch (llama_memory_clear without wiping the data: the
 * cells are rewritten anyway), as llama.cpp's embedding example does.
 * The context (n_ctx, n_batch, n_seq_max, KV cache, compute buffers) is set up once, with the
 * model load, and timed as load_s.
 * Modes:
 *   embd  embeddings = true, pooling LAST: llama.cpp's embedding API, what the Ops-MM recipe
 *         needs. For this architecture llama.cpp then also evaluates the LM head (vocabulary
 *         logits) for every token, which an embedding does not need (see docs/benchmarks.md).
 *   last  embeddings = false, logits only for each item's last token: the same decoder work
 *         without the per-token LM head. No vectors; a lower bound on llama.cpp's cost.
 * Positions are 0..n-1 per item: for text, llama.cpp expands them to M-RoPE (p, p, p, 0). */
#include "llama.h"
#include "ggml-backend.h"
#include "peer_common.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp logs a lot at INFO; keep warnings and errors unless PEER_VERBOSE is set. */
static void log_filter(enum ggml_log_level level, const char *text, void *user_data) {
    const bool *verbose = user_data;
    if (*verbose || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "peer_llama: %s: %s\n", what, msg);
    return 1;
}

/* The items [first, returned) that fit in one batch of at most max_batch tokens (*tokens). */
static int chunk_end(const peer_items *in, int first, int max_batch, int *tokens) {
    int last = first;
    *tokens = 0;
    while (last < in->n_items) {
        int n = (int)(in->start[last + 1] - in->start[last]);
        if (*tokens + n > max_batch) break;
        *tokens += n;
        last++;
    }
    return last;
}

/* Fills batch with items [first, last) (one sequence each, ids from the file). */
static void fill_batch(struct llama_batch *b, const peer_items *in, int first, int last, bool embd) {
    b->n_tokens = 0;
    for (int i = first; i < last; i++) {
        size_t n = in->start[i + 1] - in->start[i];
        for (size_t j = 0; j < n; j++) {
            int k = b->n_tokens++;
            b->token[k] = in->ids[in->start[i] + j];
            b->pos[k] = (llama_pos)j;
            b->n_seq_id[k] = 1;
            b->seq_id[k][0] = (llama_seq_id)(i - first);
            b->logits[k] = embd || j + 1 == n;
        }
    }
}

/* One timed run: items in chunks of at most max_batch tokens; vectors into out [n_items, dim]. */
static int run_once(struct llama_context *ctx, struct llama_batch *b, const peer_items *in,
                    int max_batch, bool embd, float *out, int dim) {
    for (int first = 0; first < in->n_items;) {
        int tokens, last = chunk_end(in, first, max_batch, &tokens);
        llama_memory_clear(llama_get_memory(ctx), false);
        fill_batch(b, in, first, last, embd);
        int rc = llama_decode(ctx, *b);
        if (rc != 0) {
            fprintf(stderr, "peer_llama: llama_decode failed (%d)\n", rc);
            return 1;
        }
        llama_synchronize(ctx);
        for (int i = first; embd && i < last; i++) {
            const float *v = llama_get_embeddings_seq(ctx, i - first);
            if (!v) return fail("llama_get_embeddings_seq", "no embedding");
            memcpy(out + (size_t)i * dim, v, (size_t)dim * sizeof *out);
            peer_l2_normalize(out + (size_t)i * dim, dim);
        }
        first = last;
    }
    return 0;
}

typedef struct {
    struct llama_context *ctx;
    struct llama_batch *batch;
    const peer_items *in;
    int max_batch, dim;
    bool embd;
    float *out;        /* [n_items, dim] */
} llama_runner;

static int runner_run(void *p) {
    llama_runner *r = p;
    return run_once(r->ctx, r->batch, r->in, r->max_batch, r->embd, r->out, r->dim);
}

static int runner_dump(void *p, const char *path) {
    llama_runner *r = p;
    if (!r->embd) return fail("dump", "mode 'last' makes no vectors");
    if (peer_dump(path, r->out, r->in->n_items, r->dim)) return fail(path, "cannot write");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: peer_llama MODEL.gguf IDS_FILE [--runs R | --stdin] [--threads T] [--mode embd|last] "
                        "[--dump FILE] [--backend-dir DIR] [--max-batch N]\n");
        return 2;
    }
    int runs = 3, threads = 1, max_batch = 8192, use_stdin = 0;
    bool embd = true;
    const char *dump = NULL, *backend_dir = NULL;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stdin")) {
            use_stdin = 1;
            continue;
        }
        if (i + 1 >= argc) return fail("usage", "option without a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--max-batch")) max_batch = atoi(v);
        else if (!strcmp(a, "--mode") && (!strcmp(v, "embd") || !strcmp(v, "last"))) embd = !strcmp(v, "embd");
        else if (!strcmp(a, "--dump")) dump = v;
        else if (!strcmp(a, "--backend-dir")) backend_dir = v;
        else return fail("usage", a);
    }
    if (runs < 1 || runs > 1000 || threads < 1 || threads > 1024 || max_batch < 16 || max_batch > (1 << 20))
        return fail("usage", "--runs 1..1000, --threads 1..1024, --max-batch 16..1048576");

    char msg[512];
    peer_items in;
    if (peer_read_items(argv[2], &in, msg, sizeof msg)) return fail("ids", msg);
    if (in.max_len > max_batch) {
        peer_items_free(&in);
        return fail("ids", "an item is longer than --max-batch");
    }

    bool verbose = getenv("PEER_VERBOSE") != NULL;
    llama_log_set(log_filter, &verbose);
    /* node-llama-cpp's prebuilt ggml loads its CPU backend (one build per CPU family) at run time */
    if (backend_dir) ggml_backend_load_all_from_path(backend_dir);
    else ggml_backend_load_all();
    llama_backend_init();

    /* one sequence per item of the largest chunk; per-sequence KV streams (kv_unified off) so
       that attention never spans items, as in tkr-embed */
    int seqs = 0, max_chunk_tokens = 0;
    for (int first = 0; first < in.n_items;) {
        int tokens, last = chunk_end(&in, first, max_batch, &tokens);
        if (last - first > seqs) seqs = last - first;
        if (tokens > max_chunk_tokens) max_chunk_tokens = tokens;
        first = last;
    }
    if ((size_t)seqs > llama_max_parallel_sequences()) {
        peer_items_free(&in);
        return fail("ids", "a batch would hold more items than llama.cpp's parallel sequences: lower --max-batch");
    }
    int ctx_per_seq = (in.max_len + 255) / 256 * 256;

    double t0 = peer_now();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        peer_items_free(&in);
        return fail(argv[1], "llama.cpp could not load the model (see the messages above)");
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(ctx_per_seq * seqs);
    cp.n_batch = cp.n_ubatch = (uint32_t)max_chunk_tokens;
    cp.n_seq_max = (uint32_t)seqs;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.embeddings = embd;
    cp.pooling_type = embd ? LLAMA_POOLING_TYPE_LAST : LLAMA_POOLING_TYPE_NONE;
    cp.kv_unified = false;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        llama_model_free(model);
        peer_items_free(&in);
        return fail("llama_init_from_model", "failed (see the messages above)");
    }
    double load_s = peer_now() - t0;

    int rc = 1, dim = llama_model_n_embd(model);
    int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch batch = llama_batch_init(max_chunk_tokens, 0, 1);
    float *out = malloc((size_t)in.n_items * (size_t)dim * sizeof *out);
    if (!out) {
        fail("memory", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < in.n_ids; i++)
        if (in.ids[i] >= n_vocab) {
            fail("ids", "a token id is outside the model's vocabulary");
            goto done;
        }
    fprintf(stderr, "# llama.cpp system: %s\n", llama_print_system_info());
    printf("load_s %.6f\nitems %d\ntokens %zu\n", load_s, in.n_items, in.n_ids);
    fflush(stdout);

    peer_items first_only = in; /* warm-up on the first item alone, as bench_peer_tkr */
    first_only.n_items = 1;
    if (run_once(ctx, &batch, &first_only, max_batch, embd, out, dim)) goto done;
    llama_runner runner = {ctx, &batch, &in, max_batch, dim, embd, out};
    peer_engine engine = {runner_run, runner_dump, &runner};
    rc = peer_drive(&engine, use_stdin, runs, dump) ? 1 : 0;
done:
    free(out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    peer_items_free(&in);
    return rc;
}

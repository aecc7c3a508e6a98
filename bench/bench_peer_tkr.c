/* bench_peer_tkr.c - the tkr-embed side of bench/bench_peer.sh: embeds the items of an ids file
 * (whole Ops-MM prompts as token ids, see bench/peer/peer_common.h) in one tkr_embed call per
 * run and prints the load time and each run's time. bench/peer/peer_llama.c is its llama.cpp
 * twin; the script alternates the two and reports the ratio.
 *
 *   bench_peer_tkr MODEL_DIR IDS_FILE [--runs R | --stdin] [--threads T] [--dump FILE]
 *
 * The library wraps token ids in the Ops-MM template itself, so each line's template prefix and
 * suffix (as this model's tokenizer gives them for the default instruction) are checked and
 * stripped; each result must then report exactly the line's token count. One warm-up call on
 * the first item (maps the weights in, starts the threads) precedes the timed runs. */
#include "tkr_embed.h"
#include "peer/peer_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PROMPT_PREFIX[] = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";
static const char PROMPT_SUFFIX[] = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>";

typedef struct {
    int32_t *ids;
    size_t n;
} id_span;

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "bench_peer_tkr: %s: %s\n", what, msg);
    return 1;
}

/* Turns each whole-prompt line into a tkr_item holding only the text's ids (which point into
 * the items' id array), after checking the template around them. */
static int items_from_prompts(const peer_items *in, const id_span *pre, const id_span *suf,
                              tkr_item *items) {
    for (int i = 0; i < in->n_items; i++) {
        const int32_t *p = in->ids + in->start[i];
        size_t n = in->start[i + 1] - in->start[i];
        if (n < pre->n + suf->n || memcmp(p, pre->ids, pre->n * sizeof *p) ||
            memcmp(p + n - suf->n, suf->ids, suf->n * sizeof *p)) {
            fprintf(stderr, "bench_peer_tkr: item %d is not an Ops-MM prompt with the default instruction\n", i);
            return -1;
        }
        items[i] = tkr_item_default();
        items[i].token_ids = p + pre->n;
        items[i].n_token_ids = n - pre->n - suf->n;
    }
    return 0;
}

/* One tkr_embed call over n items; every item must succeed with the expected prompt length. */
static int embed_all(tkr_model *m, const tkr_item *items, const peer_items *in, int n, float *out,
                     tkr_result *res) {
    tkr_error e;
    if (tkr_embed(m, items, n, out, res, &e) != TKR_OK) return fail("embed", e.message);
    for (int i = 0; i < n; i++) {
        if (res[i].status != TKR_OK) return fail("embed item", res[i].message);
        if ((size_t)res[i].prompt_tokens != in->start[i + 1] - in->start[i]) {
            fprintf(stderr, "bench_peer_tkr: item %d: %d prompt tokens, the ids file has %zu\n", i,
                    res[i].prompt_tokens, in->start[i + 1] - in->start[i]);
            return 1;
        }
    }
    return 0;
}

typedef struct {
    tkr_model *model;
    const tkr_item *items;
    const peer_items *in;
    float *out;        /* [n_items, dim] */
    tkr_result *res;   /* [n_items]      */
    int dim;
} tkr_runner;

static int runner_run(void *ctx) {
    tkr_runner *r = ctx;
    return embed_all(r->model, r->items, r->in, r->in->n_items, r->out, r->res);
}

static int runner_dump(void *ctx, const char *path) {
    tkr_runner *r = ctx;
    if (peer_dump(path, r->out, r->in->n_items, r->dim)) return fail(path, "cannot write");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_peer_tkr MODEL IDS_FILE [--runs R | --stdin] [--threads T] [--dump FILE]\n"
                        "                      [--fast-bf16] [--kernels auto|generic|avx2|avx512|...]\n");
        return 2;
    }
    int runs = 3, threads = 0, use_stdin = 0, fast_bf16 = 0;
    const char *dump = NULL, *kernels = NULL;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stdin")) {
            use_stdin = 1;
            continue;
        }
        if (!strcmp(a, "--fast-bf16")) {
            fast_bf16 = 1;
            continue;
        }
        if (i + 1 >= argc) return fail("usage", "option without a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--dump")) dump = v;
        else if (!strcmp(a, "--kernels")) kernels = v;
        else return fail("usage", a);
    }
    if (runs < 1 || runs > 1000 || threads < 0 || threads > 1024) return fail("usage", "--runs 1..1000, --threads 0..1024");

    char msg[512];
    peer_items in;
    if (peer_read_items(argv[2], &in, msg, sizeof msg)) return fail("ids", msg);

    tkr_model_params mp = tkr_model_default_params();
    mp.n_threads = threads;
    mp.fast_bf16 = fast_bf16 != 0;
    mp.kernels = kernels;
    tkr_model *m = NULL;
    tkr_error e;
    double t0 = peer_now();
    if (tkr_model_load(argv[1], &mp, &m, &e) != TKR_OK) {
        peer_items_free(&in);
        return fail(argv[1], e.message);
    }
    double load_s = peer_now() - t0;
    char kdesc[256];
    tkr_model_describe_kernels(m, kdesc, sizeof kdesc);
    fprintf(stderr, "# tkr-embed kernels: %s\n", kdesc);

    int rc = 1, dim = tkr_model_dim(m);
    id_span pre = {0}, suf = {0};
    tkr_item *items = calloc((size_t)in.n_items, sizeof *items);
    tkr_result *res = calloc((size_t)in.n_items, sizeof *res);
    float *out = malloc((size_t)in.n_items * (size_t)dim * sizeof *out);
    if (!items || !res || !out) {
        fail("memory", "out of memory");
        goto done;
    }
    if (tkr_tokenize(tkr_model_tokenizer(m), PROMPT_PREFIX, strlen(PROMPT_PREFIX), &pre.ids, &pre.n, &e) != TKR_OK ||
        tkr_tokenize(tkr_model_tokenizer(m), PROMPT_SUFFIX, strlen(PROMPT_SUFFIX), &suf.ids, &suf.n, &e) != TKR_OK) {
        fail("tokenize template", e.message);
        goto done;
    }
    if (items_from_prompts(&in, &pre, &suf, items)) goto done;
    printf("load_s %.6f\nitems %d\ntokens %zu\n", load_s, in.n_items, in.n_ids);
    fflush(stdout);
    if (embed_all(m, items, &in, 1, out, res)) goto done; /* warm-up */
    tkr_runner runner = {m, items, &in, out, res, dim};
    peer_engine engine = {runner_run, runner_dump, &runner};
    rc = peer_drive(&engine, use_stdin, runs, dump) ? 1 : 0;
done:
    tkr_free(pre.ids);
    tkr_free(suf.ids);
    free(items);
    free(res);
    free(out);
    tkr_model_free(m);
    peer_items_free(&in);
    return rc;
}

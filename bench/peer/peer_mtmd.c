/* peer_mtmd.c - the llama.cpp side of bench/image_peer.sh: the twin of bench/bench_image_tkr.c,
 * written against llama.cpp's public C APIs (llama.h, mtmd.h, mtmd-helper.h): the calls that
 * llama-mtmd-cli makes for one image prompt, with the model kept loaded and each run timed
 * apart from the load. image_peer.sh compiles it against the native llama.cpp build (libllama,
 * libmtmd); it is not part of the Makefile build (the repo does not depend on llama.cpp).
 *
 *   peer_mtmd MODEL.gguf MMPROJ.gguf IMAGE.ppm [--threads T] [--ubatch N] [--stdin]
 *             [--warmup SMALL.ppm]
 *
 * What one run is, in order:
 *   1. mtmd_tokenize of the Ops-MM prompt with the image marker in the user turn:
 *      <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<marker>
 *      <|im_end|>\n<|im_start|>assistant\n<|endoftext|>: libmtmd's image preprocessing (its
 *      smart_resize to the same size, bicubic resize, normalisation) and the chunks
 *      (text, <|vision_start|> image <|vision_end|>, text), as llama-mtmd-cli does;
 *   2. the chunks in order, as mtmd_helper_eval_chunks does: text chunks through llama_decode,
 *      the image chunk through mtmd_encode_chunk (the vision tower and merger: the "encode"
 *      time) and mtmd_helper_decode_image_chunk (the decoder over the image embeddings with
 *      M-RoPE positions); logits for the last token only;
 *   3. llama_synchronize.
 * The KV cache is cleared before each run. The image file's decode is not timed (the pixels
 * are read once from a PPM and wrapped with mtmd_bitmap_init), nor is the model load.
 * The context: n_ctx is the prompt rounded up to 256, n_batch is all of it, n_ubatch is
 * --ubatch (default: all of it, one graph, as bench_peer.sh's peer; llama-mtmd-cli's default is
 * 512), flash attention and the vision context at libmtmd's / llama.cpp's defaults (auto).
 * libmtmd's own warm-up at load (an encode of a 46x46-token image for qwen2vl) is off; one
 * untimed run precedes "ready" instead, on --warmup's image if given (as bench_image_tkr); the
 * token counts come from mtmd_tokenize of the image itself.
 * "dump FILE" turns embeddings on for one untimed run (pooling LAST) and writes the last
 * token's L2-normalised hidden state; the timed runs have embeddings off (with them on,
 * llama.cpp computes the LM head for every token). */
#include "llama.h"
#include "mtmd.h"
#include "mtmd-helper.h"
#include "peer_image.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PROMPT_PREFIX[] = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";
static const char PROMPT_SUFFIX[] = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>";

/* llama.cpp logs a lot at INFO; keep warnings and errors unless PEER_VERBOSE is set. */
static void log_filter(enum ggml_log_level level, const char *text, void *user_data) {
    const bool *verbose = user_data;
    if (*verbose || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "peer_mtmd: %s: %s\n", what, msg);
    return 1;
}

typedef struct {
    struct llama_context *lctx;
    mtmd_context *mctx;
    mtmd_bitmap *bitmap;
    mtmd_bitmap *warm;         /* the warm-up run's image (or NULL: bitmap) */
    const char *prompt;
    int n_batch, dim;
    float *out;                /* [dim], set by the dump run */
    size_t image_tokens, prompt_tokens;
} mtmd_runner;

/* The prompt's chunks for one image (libmtmd's preprocessing); NULL on failure. */
static mtmd_input_chunks *tokenize(mtmd_runner *r, const mtmd_bitmap *image) {
    mtmd_input_chunks *chunks = mtmd_input_chunks_init();
    if (!chunks) {
        fail("mtmd_input_chunks_init", "out of memory");
        return NULL;
    }
    mtmd_input_text text = {r->prompt, strlen(r->prompt), true, true};
    const mtmd_bitmap *bitmaps[1] = {image};
    if (mtmd_tokenize(r->mctx, chunks, &text, bitmaps, 1) != 0) {
        mtmd_input_chunks_free(chunks);
        fail("mtmd_tokenize", "failed");
        return NULL;
    }
    return chunks;
}

/* One run (steps 1 to 3 above) on image; *encode_s = tokenize (preprocessing) + encode. */
static int runner_once(mtmd_runner *r, const mtmd_bitmap *image, double *encode_s) {
    double t0 = pimg_now();
    mtmd_input_chunks *chunks = tokenize(r, image);
    if (!chunks) return 1;
    int rc = 0;
    double enc = pimg_now() - t0;
    llama_memory_clear(llama_get_memory(r->lctx), true);
    llama_pos n_past = 0;
    size_t n_chunks = mtmd_input_chunks_size(chunks);
    for (size_t i = 0; i < n_chunks && rc == 0; i++) {
        const mtmd_input_chunk *c = mtmd_input_chunks_get(chunks, i);
        bool last = i + 1 == n_chunks;
        if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            if (mtmd_helper_eval_chunk_single(r->mctx, r->lctx, c, n_past, 0, r->n_batch, last, &n_past))
                rc = fail("text chunk", "llama_decode failed");
            continue;
        }
        double te = pimg_now();
        if (mtmd_encode_chunk(r->mctx, c) != 0) {
            rc = fail("mtmd_encode_chunk", "failed");
            break;
        }
        enc += pimg_now() - te;
        if (mtmd_helper_decode_image_chunk(r->mctx, r->lctx, c, mtmd_get_output_embd(r->mctx), n_past, 0,
                                           r->n_batch, &n_past, NULL, NULL) != 0)
            rc = fail("mtmd_helper_decode_image_chunk", "failed");
    }
    llama_synchronize(r->lctx);
    mtmd_input_chunks_free(chunks);
    *encode_s = enc;
    return rc;
}

static int runner_run(void *p, double *encode_s) {
    mtmd_runner *r = p;
    return runner_once(r, r->bitmap, encode_s);
}

static int runner_dump(void *p, const char *path) {
    mtmd_runner *r = p;
    double enc;
    llama_set_embeddings(r->lctx, true);
    int rc = runner_once(r, r->bitmap, &enc);
    llama_set_embeddings(r->lctx, false);
    if (rc) return 1;
    const float *v = llama_get_embeddings_seq(r->lctx, 0);
    if (!v) return fail("llama_get_embeddings_seq", "no embedding");
    if (pimg_dump(path, v, r->dim)) return fail(path, "cannot write");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: peer_mtmd MODEL.gguf MMPROJ.gguf IMAGE.ppm [--threads T] [--ubatch N] [--stdin]\n"
                        "                 [--warmup SMALL.ppm]\n");
        return 2;
    }
    int threads = 1, ubatch = 0, use_stdin = 0;
    const char *warmup = NULL;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stdin")) {
            use_stdin = 1;
            continue;
        }
        if (i + 1 >= argc) return fail("usage", "option without a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--ubatch")) ubatch = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = v;
        else return fail("usage", a);
    }
    if (threads < 1 || threads > 1024 || ubatch < 0 || ubatch > (1 << 20))
        return fail("usage", "--threads 1..1024, --ubatch 0..1048576 (0: the whole prompt)");

    char msg[512];
    uint8_t *rgb = NULL, *wrgb = NULL;
    int w = 0, h = 0, ww = 0, wh = 0;
    if (pimg_read_ppm(argv[3], &rgb, &w, &h, msg, sizeof msg)) return fail("image", msg);
    if (warmup && pimg_read_ppm(warmup, &wrgb, &ww, &wh, msg, sizeof msg)) {
        free(rgb);
        return fail("warm-up image", msg);
    }
    /* an upper bound on the prompt: one token per 28x28 pixels plus the template */
    int n_ctx = ((w / 28) * (h / 28) + 64 + 255) / 256 * 256;

    bool verbose = getenv("PEER_VERBOSE") != NULL;
    llama_log_set(log_filter, &verbose);
    mtmd_helper_log_set(log_filter, &verbose);
    ggml_backend_load_all();
    llama_backend_init();

    double t0 = pimg_now();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        free(rgb);
        free(wrgb);
        return fail(argv[1], "llama.cpp could not load the model (see the messages above)");
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_ctx;
    cp.n_ubatch = (uint32_t)(ubatch > 0 && ubatch < n_ctx ? ubatch : n_ctx);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.embeddings = false;
    cp.pooling_type = LLAMA_POOLING_TYPE_LAST;
    struct llama_context *lctx = llama_init_from_model(model, cp);
    struct mtmd_context_params mtp = mtmd_context_params_default();
    mtp.use_gpu = false;
    mtp.print_timings = false;
    mtp.n_threads = threads;
    mtp.warmup = false; /* see the top of this file */
    mtmd_context *mctx = lctx ? mtmd_init_from_file(argv[2], model, mtp) : NULL;
    double load_s = pimg_now() - t0;
    int rc = 1;
    mtmd_runner r = {0};
    if (!lctx || !mctx) {
        fail(lctx ? argv[2] : "llama_init_from_model", "failed (see the messages above)");
        goto done;
    }
    r.lctx = lctx;
    r.mctx = mctx;
    r.n_batch = n_ctx;
    r.dim = llama_model_n_embd(model);
    r.bitmap = mtmd_bitmap_init((uint32_t)w, (uint32_t)h, rgb);
    r.warm = wrgb ? mtmd_bitmap_init((uint32_t)ww, (uint32_t)wh, wrgb) : NULL;
    size_t plen = strlen(PROMPT_PREFIX) + strlen(mtmd_default_marker()) + strlen(PROMPT_SUFFIX) + 1;
    char *prompt = malloc(plen);
    if (!r.bitmap || !prompt || (wrgb && !r.warm)) {
        free(prompt);
        fail("memory", "out of memory");
        goto done;
    }
    snprintf(prompt, plen, "%s%s%s", PROMPT_PREFIX, mtmd_default_marker(), PROMPT_SUFFIX);
    r.prompt = prompt;
    fprintf(stderr, "# llama.cpp system: %s\n", llama_print_system_info());
    double enc;
    mtmd_input_chunks *counted = NULL;
    if (runner_once(&r, r.warm ? r.warm : r.bitmap, &enc) == 0 && (counted = tokenize(&r, r.bitmap))) {
        for (size_t i = 0; i < mtmd_input_chunks_size(counted); i++) {
            const mtmd_input_chunk *c = mtmd_input_chunks_get(counted, i);
            if (mtmd_input_chunk_get_type(c) != MTMD_INPUT_CHUNK_TYPE_TEXT)
                r.image_tokens += mtmd_input_chunk_get_n_tokens(c);
        }
        r.prompt_tokens = mtmd_helper_get_n_tokens(counted);
        mtmd_input_chunks_free(counted);
        printf("load_s %.6f\nimage_tokens %zu\nprompt_tokens %zu\n", load_s, r.image_tokens, r.prompt_tokens);
        fflush(stdout);
        pimg_engine engine = {runner_run, runner_dump, &r};
        if (use_stdin) {
            rc = pimg_drive(&engine) ? 1 : 0;
        } else {
            rc = 0;
            for (int i = 0; i < 3 && rc == 0; i++) {
                double t = pimg_now();
                rc = runner_once(&r, r.bitmap, &enc);
                printf("run_s %.6f %.6f\n", pimg_now() - t, enc);
            }
        }
    }
    free(prompt);
done:
    if (r.bitmap) mtmd_bitmap_free(r.bitmap);
    if (r.warm) mtmd_bitmap_free(r.warm);
    if (mctx) mtmd_free(mctx);
    if (lctx) llama_free(lctx);
    llama_model_free(model);
    llama_backend_free();
    free(rgb);
    free(wrgb);
    return rc;
}

/* test_alloc_fail.c - allocation-failure injection: the Nth allocation fails, for every N (or a
 * sample of N when a path makes very many), over the paths a server runs: model load
 * (safetensors, config, GGUF), tokenizer load, tokenize, image preprocessing, tkr_prepare,
 * embed, and one whole embeddings request without HTTP (parse, prepare, model, response).
 * Each run must end in TKR_OK or in an error with a message, never a crash; in the ASan build,
 * LeakSanitizer checks after each run that nothing leaked.
 *
 * How: this binary is linked with -Wl,--wrap=malloc,calloc,realloc,strdup,posix_memalign
 * (Makefile), so every allocation of the library and of this file goes through the counters
 * below; jansson's go through them too (json_set_alloc_funcs). libpng, libjpeg, libwebp and
 * utf8proc allocate inside their own shared objects and are not counted: their failures reach
 * us as decode errors, which the malformed-image tests cover.
 * Needs: $TKR_MODEL_M1 (tests/run.sh assembles it) and the shared data ($TKR_TEST_DATA).
 * TKR_ALLOC_SWEEP=full tries every N of every path (slow; the default samples the big ones). */
#include "io/config.h"
#include "io/gguf.h"
#include "io/weights.h"
#include "server/api_embeddings.h"
#include "server/config.h"
#include "server/engine_model.h"
#include "image/image.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/platform.h"

#include <jansson.h>
#if defined(__GLIBC__)
#include <execinfo.h>
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#else
#define HAVE_LSAN 0
#endif

#if defined(__linux__)
/* ---- the failing allocator ---------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_posix_memalign(void **p, size_t align, size_t n);

static atomic_int af_armed;
static atomic_long af_count;      /* allocations since arming */
static long af_fail_at;           /* 1-based; 0 = none fails */
static atomic_int af_failed;      /* the injected failure happened */

static int af_trace;               /* TKR_ALLOC_TRACE=1: print where the failure was injected */

static bool af_fail_now(void) {
    if (!atomic_load(&af_armed)) return false;
    long n = atomic_fetch_add(&af_count, 1) + 1;
    if (n == af_fail_at) {
        atomic_store(&af_failed, 1);
#if defined(__GLIBC__)
        if (af_trace) {
            void *frames[16];
            int k = backtrace(frames, 16);
            backtrace_symbols_fd(frames, k, 2);
        }
#endif
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n) { return af_fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return af_fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return af_fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return af_fail_now() ? NULL : __real_strdup(s); }
int __wrap_posix_memalign(void **p, size_t align, size_t n) {
    return af_fail_now() ? 12 /* ENOMEM */ : __real_posix_memalign(p, align, n);
}

static void *json_alloc(size_t n) { return __wrap_malloc(n); }
static void json_dealloc(void *p) { free(p); }

/* ---- the sweep ---------------------------------------------------------------------------- */

typedef tkr_status (*path_fn)(void *ctx, tkr_error *err);

static bool full_sweep(void) {
    const char *v = getenv("TKR_ALLOC_SWEEP");
    return v && !strcmp(v, "full");
}

static tkr_status run_once(path_fn fn, void *ctx, long fail_at, long *count, bool *failed, tkr_error *err) {
    tkr_error_clear(err);
    atomic_store(&af_count, 0);
    af_fail_at = fail_at;
    atomic_store(&af_failed, 0);
    atomic_store(&af_armed, 1);
    tkr_status st = fn(ctx, err);
    atomic_store(&af_armed, 0);
    *count = atomic_load(&af_count);
    *failed = atomic_load(&af_failed) != 0;
    return st;
}

/* Runs fn once cleanly to count its allocations, then with allocation N failing: every N up to
 * `full` allocations, beyond that `samples` N spread evenly (the first `full` always). */
static void sweep(const char *name, path_fn fn, void *ctx, long full, long samples) {
    tkr_error err;
    long total = 0;
    bool failed = false;
    tkr_status st = run_once(fn, ctx, 0, &total, &failed, &err);
    CHECK(st == TKR_OK, "%s: clean run failed: %s", name, err.message);
    if (st != TKR_OK) return;
    if (full_sweep()) full = total;
    long tried = 0, errors = 0, step = 1;
    long limit = total < full ? total : full;
    if (total > full && samples > 0) step = (total - full) / samples + 1;
    int leak_checks_failed = 0;
    for (long n = 1; n <= total; n += (n < limit ? 1 : step)) {
        long count = 0;
        st = run_once(fn, ctx, n, &count, &failed, &err);
        tried++;
        if (!failed) continue;   /* a run made fewer allocations (a cache, a different branch) */
        if (st == TKR_OK && af_trace) fprintf(stderr, "  ^ %s: allocation %ld failed and the run still succeeded\n", name, n);
        if (st != TKR_OK) {
            errors++;
            CHECK(err.message[0] != '\0', "%s: allocation %ld failed: status %d without a message", name, n, (int)st);
        }
#if HAVE_LSAN
        /* per N with TKR_ALLOC_TRACE (to find the N), else once per sweep (a scan of the whole
         * heap, the loaded model included, costs too much to do thousands of times in CI) */
        if (af_trace && __lsan_do_recoverable_leak_check() && leak_checks_failed++ == 0)
            CHECK(false, "%s: leak after allocation %ld failed (see the LeakSanitizer report above)", name, n);
#endif
    }
#if HAVE_LSAN
    if (!af_trace && __lsan_do_recoverable_leak_check())
        CHECK(false, "%s: leaks after the failed allocations (see the LeakSanitizer report above; "
              "TKR_ALLOC_TRACE=1 finds the N)", name);
#endif
    (void)leak_checks_failed;
    fflush(stdout);
    printf("  %s: %ld allocations, %ld failure points tried, %ld ended in an error%s\n", name, total, tried, errors,
           HAVE_LSAN ? ", leak-checked" : "");
    fflush(stdout);
}

/* ---- paths -------------------------------------------------------------------------------- */

typedef struct {
    const char *model_dir;        /* m1 fixture */
    const char *small_tok_dir;    /* a tiny tokenizer.json */
    const tkr_tokenizer *tok;     /* the Qwen2 tokenizer, loaded unarmed */
    tkr_model *model;             /* m1, loaded unarmed */
    uint8_t *png, *jpeg, *webp;
    size_t png_n, jpeg_n, webp_n;
    const char *gguf_path;
    tkr_engine engine;            /* the real engine over m1 */
    char *req_body;               /* an embeddings request with the PNG as a data: URI */
    size_t req_len;
    tkr_server_config cfg;
} ctx_t;

static tkr_status p_weights(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_weights *w = NULL;
    tkr_status st = tkr_weights_open(x->model_dir, 1, &w, err);
    tkr_weights_free(w);
    return st;
}

static tkr_status p_config(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_model_config cfg;
    return tkr_config_load(x->model_dir, &cfg, err);
}

static tkr_status p_small_tokenizer(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_tokenizer *tok = NULL;
    tkr_status st = tkr_tokenizer_load(x->small_tok_dir, &tok, err);
    if (st == TKR_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        st = tkr_tokenize(tok, "hello world <|im_start|> caf\xc3\xa9", 30, &ids, &n, err);
        free(ids);
    }
    tkr_tokenizer_free(tok);
    return st;
}

static tkr_status p_tokenize(void *c, tkr_error *err) {
    ctx_t *x = c;
    static const char text[] = "The quick brown fox \xe2\x80\x94 caf\xc3\xa9, na\xc3\xafve 12345 <|im_start|>user\n"
                               "\xff\xfe invalid bytes \xf0\x9f\x98\x80 emoji   spaces\r\n";
    int32_t *ids = NULL;
    size_t n = 0;
    tkr_status st = tkr_tokenize(x->tok, text, sizeof text - 1, &ids, &n, err);
    free(ids);
    return st;
}

static tkr_status preprocess(const uint8_t *data, size_t n, tkr_error *err) {
    tkr_image_params p = tkr_image_default_params();
    p.min_tokens = 4;
    p.max_tokens = 64;
    float *patches = NULL;
    int gh, gw;
    tkr_status st = tkr_image_preprocess(data, n, &p, &patches, &gh, &gw, err);
    free(patches);
    return st;
}
static tkr_status p_png(void *c, tkr_error *err) { ctx_t *x = c; return preprocess(x->png, x->png_n, err); }
static tkr_status p_jpeg(void *c, tkr_error *err) { ctx_t *x = c; return preprocess(x->jpeg, x->jpeg_n, err); }
static tkr_status p_webp(void *c, tkr_error *err) { ctx_t *x = c; return preprocess(x->webp, x->webp_n, err); }

static tkr_status p_prepare(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_image_input img = {.path = NULL, .data = x->png, .size = x->png_n};
    tkr_item it = tkr_item_default();
    it.text = "a small picture";
    it.images = &img;
    it.n_images = 1;
    tkr_prepared *p = NULL;
    tkr_status st = tkr_prepare(x->model, &it, &p, err);
    tkr_prepared_free(p);
    return st;
}

/* tkr_embed reports item failures in results: an item that failed is an error of the run. */
static tkr_status p_embed(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_item items[2] = {tkr_item_default(), tkr_item_default()};
    items[0].text = "hello world";
    items[1].text = "a second, longer item with an instruction";
    items[1].instruction = "Find the document.";
    int dim = tkr_model_dim(x->model);
    float *out = malloc(sizeof(float) * 2 * (size_t)dim);
    if (!out) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    tkr_result res[2];
    tkr_status st = tkr_embed(x->model, items, 2, out, res, err);
    for (int i = 0; st == TKR_OK && i < 2; i++)
        if (res[i].status != TKR_OK) st = tkr_fail(err, res[i].status, "item %d: %s", i, res[i].message);
    free(out);
    return st;
}

static tkr_status p_model_load(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_model_params p = tkr_model_default_params();
    p.n_threads = 1;
    tkr_model *m = NULL;
    tkr_status st = tkr_model_load(x->model_dir, &p, &m, err);
    tkr_model_free(m);
    return st;
}

static tkr_status p_gguf(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_gguf *g = NULL;
    tkr_status st = tkr_gguf_open(x->gguf_path, 1, NULL, &g, err);
    tkr_gguf_close(g);
    return st;
}

/* POST /v1/embeddings without HTTP: parse the body, prepare, run the engine, check, write. */
static tkr_status p_request(void *c, tkr_error *err) {
    ctx_t *x = c;
    tkr_image_source_policy images;
    memset(&images, 0, sizeof images);
    images.max_bytes = (size_t)1 << 20;
    tkr_api_request req;
    tkr_api_error e;
    if (tkr_api_parse_embeddings(&x->cfg, &x->engine, &images, x->req_body, x->req_len, &req, &e) != TKR_OK)
        return tkr_fail(err, e.status == 500 ? TKR_ERR_NOMEM : TKR_ERR_INVALID_ARG, "parse: %s", e.message);
    tkr_status st = TKR_OK;
    int n = req.n_items, dim = x->engine.dim;
    tkr_item *items = calloc((size_t)n, sizeof *items);
    void **prep = calloc((size_t)n, sizeof *prep);
    tkr_result *res = calloc((size_t)n, sizeof *res);
    float *vec = malloc(sizeof(float) * (size_t)n * (size_t)dim);
    sbuf out;
    sbuf_init(&out, 0);
    if (!items || !prep || !res || !vec) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    if (st == TKR_OK && tkr_api_prepare(&x->engine, &req, &e) != TKR_OK)
        st = tkr_fail(err, TKR_ERR_NOMEM, "prepare: %s", e.message);
    if (st == TKR_OK) {
        for (int i = 0; i < n; i++) {
            items[i] = req.items[i].item;
            prep[i] = req.items[i].prepared;
        }
        st = x->engine.embed(x->engine.impl, items, prep, n, vec, res, err);
    }
    if (st == TKR_OK && tkr_api_check_results(&req, res, &e) != TKR_OK)
        st = tkr_fail(err, TKR_ERR_NOMEM, "results: %s", e.message);
    if (st == TKR_OK && !tkr_api_write_response(&req, "m", dim, vec, res, &out))
        st = tkr_fail(err, TKR_ERR_NOMEM, "response: out of memory");
    sbuf_free(&out);
    free(items);
    free(prep);
    free(res);
    free(vec);
    tkr_api_request_free(&x->engine, &req);
    return st;
}

/* ---- setup -------------------------------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    tkr_error err;
    if (tkr_read_file(path, (size_t)64 << 20, &buf, &len, &err) != TKR_OK) return NULL;
    *n = len;
    return (uint8_t *)buf;
}

static void test_alloc_failures(void) {
    const char *m1 = getenv("TKR_MODEL_M1");
    const char *data = getenv("TKR_TEST_DATA");
    CHECK(m1 && data, "TKR_MODEL_M1 and TKR_TEST_DATA must be set (tests/run.sh sets them)");
    if (!m1 || !data) return;
    json_set_alloc_funcs(json_alloc, json_dealloc);
    af_trace = getenv("TKR_ALLOC_TRACE") != NULL;
    ctx_t x;
    memset(&x, 0, sizeof x);
    x.model_dir = m1;
    char path[1024];
    char tokdir[] = "/tmp/tkr-alloc-tok-XXXXXX";
    CHECK(mkdtemp(tokdir) != NULL, "temp dir");
    {   /* the small byte-level BPE of the fuzz corpus, as tokenizer.json */
        size_t n = 0;
        uint8_t *tj = read_all("tests/fuzz/corpus/tokenizer_json/small.json", &n);
        CHECK(tj != NULL, "tests/fuzz/corpus/tokenizer_json/small.json (run from the repo root)");
        snprintf(path, sizeof path, "%s/tokenizer.json", tokdir);
        FILE *f = fopen(path, "wb");
        if (f && tj) fwrite(tj, 1, n, f);
        if (f) fclose(f);
        free(tj);
    }
    x.small_tok_dir = tokdir;
    snprintf(path, sizeof path, "%s/images/pngsuite/basn2c08.png", data);
    x.png = read_all(path, &x.png_n);
    snprintf(path, sizeof path, "%s/images/seeds/afl-not_kitty.jpg", data);
    x.jpeg = read_all(path, &x.jpeg_n);
    snprintf(path, sizeof path, "%s/images/seeds/afl-not_kitty.webp", data);
    x.webp = read_all(path, &x.webp_n);
    CHECK(x.png && x.jpeg && x.webp, "test images in %s/images", data);
    tkr_model_params mp = tkr_model_default_params();
    mp.n_threads = 1;
    tkr_error err;
    CHECK(tkr_model_load(m1, &mp, &x.model, &err) == TKR_OK, "load m1: %s", err.message);
    if (!x.model || !x.png || !x.jpeg || !x.webp) return;
    x.tok = tkr_model_tokenizer(x.model);

    x.cfg = tkr_server_config_default();
    x.cfg.model_dir = m1;
    x.cfg.n_threads = 1;
    x.cfg.min_image_tokens = 4;
    x.cfg.max_image_tokens = 64;
    CHECK(tkr_engine_model_open(&x.cfg, NULL, &x.engine, &err) == TKR_OK, "engine: %s", err.message);

    sweep("config.json", p_config, &x, 100000, 0);
    sweep("safetensors weights", p_weights, &x, 100000, 0);
    sweep("tokenizer.json load + tokenize", p_small_tokenizer, &x, 100000, 0);
    sweep("tokenize (Qwen2)", p_tokenize, &x, 100000, 0);
    sweep("image PNG", p_png, &x, 100000, 0);
    sweep("image JPEG", p_jpeg, &x, 100000, 0);
    sweep("image WebP", p_webp, &x, 100000, 0);
    sweep("tkr_prepare (text + image)", p_prepare, &x, 100000, 0);
    sweep("tkr_embed (2 items)", p_embed, &x, 100000, 0);
    /* the m1 load reads the 150k-entry Qwen2 vocabulary: every N of its first 400 allocations
     * (config, weights, tokenizer start) are covered by the sweeps above; here the first 120
     * and 30 spread over the rest (40 and 8 in the slower ASan build) */
    sweep("model load (m1, vocab.json + merges.txt)", p_model_load, &x, HAVE_LSAN ? 40 : 120, HAVE_LSAN ? 8 : 30);
    /* the request body holds the PNG as a data: URI */
    {
        char *b64 = malloc(tkr_base64_encoded_size(x.png_n) + 1);
        size_t cap = tkr_base64_encoded_size(x.png_n) + 512;
        x.req_body = malloc(cap);
        CHECK(b64 && x.req_body, "memory");
        if (!b64 || !x.req_body) return;
        tkr_base64_encode(x.png, x.png_n, b64);
        x.req_len = (size_t)snprintf(x.req_body, cap,
            "{\"model\":\"m\",\"input\":[\"first text\",[1,2,3],{\"content\":[{\"type\":\"text\",\"text\":\"cap\"},"
            "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}],\"instruction\":\"Find.\"}],"
            "\"encoding_format\":\"float\",\"dimensions\":8}", b64);
        free(b64);
    }
    sweep("embeddings request without HTTP", p_request, &x, 100000, 0);
    snprintf(path, sizeof path, "%s/tokenizers/llama.cpp-vocab-tests/ggml-vocab-bert-bge.gguf", data);
    x.gguf_path = path;
    sweep("GGUF open (llama.cpp vocab file)", p_gguf, &x, 100000, 0);
    free(x.req_body);

    tkr_engine_close(&x.engine);
    tkr_model_free(x.model);
    free(x.png);
    free(x.jpeg);
    free(x.webp);
    snprintf(path, sizeof path, "%s/tokenizer.json", tokdir);
    unlink(path);
    rmdir(tokdir);
}

int main(void) {
    RUN(test_alloc_failures);
    return test_summary();
}
#else
/* --wrap is GNU ld's: elsewhere the sweep cannot be built, and says so (not a pass). */
int main(void) {
    printf("SKIP test_alloc_failures (needs GNU ld --wrap)\n");
    return 0;
}
#endif

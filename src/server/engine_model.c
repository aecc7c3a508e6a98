/* engine_model.c - see engine_model.h.
 *
 * Token counts for limits and batching come from the model's own tokenizer: the item's text,
 * plus the Ops-MM prompt around it (spec 1.2), plus image tokens from the image header and the
 * Qwen2-VL resize policy. The engine's results carry the exact counts that usage reports. */
#include "server/engine_model.h"
#include "hub/hub.h"
#include "server/http.h"
#include "server/image_probe.h"
#include "server/sbuf.h"
#include "util/error.h"
#include "util/platform.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_INSTRUCTION "You are a helpful assistant."

typedef struct {
    tkr_model *model;
    const tkr_tokenizer *tok;
    int min_image_tokens, max_image_tokens;
    int default_template_tokens;     /* with the default instruction and no image */
    int image_marker_tokens;         /* tokens of one image block without its image tokens */
    char name[260];
    tkr_hub_result hub;       /* where -m led (a path, or a Hub model in the cache) */
    char device[256];         /* the GPU's description; "" on the CPU */
    /* device memory, refreshed by the model thread after each call, read by /metrics */
    _Atomic unsigned long long mem_weights, mem_acts, mem_pinned, mem_total;
} model_engine;

/* Publishes the device memory for device_memory() (the model thread, or before serving). */
static void refresh_memory(model_engine *m) {
    tkr_device_memory d;
    tkr_model_device_memory(m->model, &d);
    atomic_store(&m->mem_weights, d.weight_bytes);
    atomic_store(&m->mem_acts, d.activation_bytes);
    atomic_store(&m->mem_pinned, d.pinned_host_bytes);
    atomic_store(&m->mem_total, d.total_bytes);
}

static void me_device_memory(void *impl, tkr_device_memory *out) {
    model_engine *m = impl;
    memset(out, 0, sizeof *out);
    out->on_gpu = m->device[0] != '\0';
    out->weight_bytes = atomic_load(&m->mem_weights);
    out->activation_bytes = atomic_load(&m->mem_acts);
    out->pinned_host_bytes = atomic_load(&m->mem_pinned);
    out->total_bytes = atomic_load(&m->mem_total);
}

/* Items arrive prepared (images decoded, prompts tokenized on the request threads); the model
 * thread only runs the towers. An item without a prepared form is embedded from scratch. */
static tkr_status me_embed(void *impl, const tkr_item *items, void *const *prepared, int n,
                           float *out, tkr_result *results, tkr_error *err) {
    model_engine *m = impl;
    bool all = prepared != NULL;
    for (int i = 0; all && i < n; i++) all = prepared[i] != NULL;
    tkr_status st = all ? tkr_embed_prepared(m->model, (tkr_prepared *const *)prepared, n, out, results, err)
                        : tkr_embed(m->model, items, n, out, results, err);
    if (m->device[0]) refresh_memory(m);
    return st;
}

static tkr_status me_prepare(void *impl, const tkr_item *item, void **prepared, tkr_error *err) {
    model_engine *m = impl;
    tkr_prepared *p = NULL;
    tkr_status st = tkr_prepare(m->model, item, &p, err);
    *prepared = p;
    return st;
}

static void me_release(void *impl, void *prepared) { tkr_prepared_free(prepared); }

static tkr_status me_tokenize(void *impl, const char *text, size_t len, int32_t **ids,
                              size_t *n_ids, tkr_error *err) {
    model_engine *m = impl;
    int32_t *lib_ids = NULL;
    size_t n = 0;
    *ids = NULL;
    *n_ids = 0;
    tkr_status st = tkr_tokenize(m->tok, text, len, &lib_ids, &n, err);
    if (st != TKR_OK) return st;
    /* the server frees with free(); the library's memory goes back through tkr_free */
    int32_t *copy = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!copy) {
        tkr_free(lib_ids);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory tokenizing");
    }
    if (n) memcpy(copy, lib_ids, sizeof(int32_t) * n);
    tkr_free(lib_ids);
    *ids = copy;
    *n_ids = n;
    return TKR_OK;
}

/* Counts the tokens of a string through the model's tokenizer (special tokens matched). */
static tkr_status count_tokens(model_engine *m, const char *s, size_t len, int *n, tkr_error *err) {
    int32_t *ids = NULL;
    size_t k = 0;
    tkr_status st = tkr_tokenize(m->tok, s, len, &ids, &k, err);
    if (st != TKR_OK) return st;
    tkr_free(ids);
    *n = (int)k;
    return TKR_OK;
}

/* The Ops-MM prompt with empty content; image blocks count their markers (the image tokens
 * themselves are counted from the image). */
static tkr_status me_template_tokens(void *impl, const char *instruction, int n_images,
                                     int *n_tokens, tkr_error *err) {
    model_engine *m = impl;
    int base = m->default_template_tokens;
    if (instruction) {
        sbuf b;
        sbuf_init(&b, 0);
        sbuf_puts(&b, "<|im_start|>system\n");
        sbuf_puts(&b, instruction);
        sbuf_puts(&b, "<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n<|endoftext|>");
        if (!sbuf_ok(&b)) { sbuf_free(&b); return tkr_fail(err, TKR_ERR_NOMEM, "out of memory"); }
        tkr_status st = count_tokens(m, b.data, b.len, &base, err);
        sbuf_free(&b);
        if (st != TKR_OK) return st;
    }
    *n_tokens = base + n_images * m->image_marker_tokens;
    return TKR_OK;
}

static int me_image_tokens(void *impl, int width, int height) {
    model_engine *m = impl;
    return tkr_qwen2vl_image_tokens(width, height, m->min_image_tokens, m->max_image_tokens);
}

static void me_destroy(void *impl) {
    model_engine *m = impl;
    if (!m) return;
    tkr_model_free(m->model);
    free(m);
}

/* One call at the text batch budget (batch_tokens over at most 64 items of token ids) before
 * the server reports ready; by default on a GPU only. Why: the first batches would otherwise pay
 * the device's one-time costs (the activation arena growing to the budget, cuBLASLt plans and
 * their tuning), and a budget the GPU cannot hold fails here, with its reason, instead of on a
 * request. The summary goes to out (for the log). */
static tkr_status warm_up(model_engine *m, const tkr_server_config *cfg, int batch_tokens, int batch_items,
                          char *out, size_t cap, tkr_error *err) {
    int n = batch_items < 1 ? 1 : batch_items > 64 ? 64 : batch_items;
    const int t = m->default_template_tokens; /* the prompt around an item's ids */
    if (t + 1 > cfg->max_tokens_per_item) { /* no item is allowed: nothing to warm up with */
        snprintf(out, cap, "skipped (the prompt alone passes --max-tokens-per-item %d)", cfg->max_tokens_per_item);
        return TKR_OK;
    }
    int len = batch_tokens / n - t;
    if (len > cfg->max_tokens_per_item - t) len = cfg->max_tokens_per_item - t;
    if (len < 1) { /* a budget under n prompts: fewer items of one id */
        len = 1;
        n = batch_tokens / (t + 1) < 1 ? 1 : batch_tokens / (t + 1) > n ? n : batch_tokens / (t + 1);
    }
    int32_t vocab = tkr_tokenizer_vocab_size(m->tok);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)len);
    tkr_item *items = calloc((size_t)n, sizeof *items);
    tkr_result *res = calloc((size_t)n, sizeof *res);
    float *vec = malloc(sizeof(float) * (size_t)n * (size_t)tkr_model_dim(m->model));
    tkr_status st = TKR_OK;
    if (!ids || !items || !res || !vec) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TKR_OK && i < len; i++) /* any valid ids: the cost does not depend on them */
        ids[i] = vocab > 2000 ? 1000 + i % 1000 : i % (vocab > 0 ? vocab : 1);
    for (int i = 0; st == TKR_OK && i < n; i++) {
        items[i] = tkr_item_default();
        items[i].token_ids = ids;
        items[i].n_token_ids = len;
    }
    double t0 = tkr_now_seconds();
    if (st == TKR_OK) st = tkr_embed(m->model, items, n, vec, res, err);
    for (int i = 0; st == TKR_OK && i < n; i++)
        if (res[i].status != TKR_OK) st = tkr_fail(err, res[i].status, "%s", res[i].message);
    if (st == TKR_OK)
        snprintf(out, cap, "%d item%s of %d prompt tokens in %.0f ms", n, n == 1 ? "" : "s", res[0].prompt_tokens,
                 1e3 * (tkr_now_seconds() - t0));
    free(ids);
    free(items);
    free(res);
    free(vec);
    return st;
}

tkr_status tkr_engine_model_open(const tkr_server_config *cfg, void *ctx, tkr_engine *out,
                                 tkr_error *err) {
    memset(out, 0, sizeof *out);
    model_engine *m = calloc(1, sizeof *m);
    if (!m) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    tkr_model_params p = tkr_model_default_params();
    p.n_threads = cfg->n_threads;
    p.device = cfg->device;
    p.precision = cfg->precision;
    p.fast_bf16 = cfg->fast_bf16;
    p.release_vision_weights = cfg->release_vision_weights;
    p.min_image_tokens = cfg->min_image_tokens;
    p.max_image_tokens = cfg->max_image_tokens;
    p.max_images_per_item = cfg->max_images_per_item;
    p.max_image_bytes = cfg->max_image_bytes;
    p.max_image_pixels = cfg->max_image_pixels;
    p.max_tokens_per_item = cfg->max_tokens_per_item;
    if (cfg->max_batch_tokens > 0) p.max_batch_tokens = cfg->max_batch_tokens; /* else the library's */
    p.mmproj = cfg->mmproj;
    p.media.max_frames = cfg->max_video_frames;
    p.media.max_pixels = cfg->max_image_pixels;
    p.media.timeout_s = cfg->media_timeout_s;
    p.truncate = false;     /* the server truncates, per request, before the engine sees it */
    /* -m org/name: fetched into (or found in) the Hugging Face cache first */
    tkr_status st = tkr_hub_resolve_model(cfg->model_dir, &m->hub, err);
    if (st != TKR_OK) {
        free(m);
        return st;
    }
    if (m->hub.mmproj[0] && !p.mmproj) p.mmproj = m->hub.mmproj;
    st = tkr_model_load(m->hub.path, &p, &m->model, err);
    if (st != TKR_OK) {
        free(m);
        return st;
    }
    m->tok = tkr_model_tokenizer(m->model);
    m->min_image_tokens = cfg->min_image_tokens;
    m->max_image_tokens = cfg->max_image_tokens;
    snprintf(m->name, sizeof m->name, "%s",
             cfg->model_name ? cfg->model_name : m->hub.repo[0] ? m->hub.repo : tkr_model_name(m->model));
    static const char tmpl[] = "<|im_start|>system\n" DEFAULT_INSTRUCTION
                               "<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
                               "<|endoftext|>";
    static const char block[] = "<|vision_start|><|image_pad|><|vision_end|>";
    int block_tokens = 0;
    if ((st = count_tokens(m, tmpl, sizeof tmpl - 1, &m->default_template_tokens, err)) != TKR_OK ||
        (st = count_tokens(m, block, sizeof block - 1, &block_tokens, err)) != TKR_OK) {
        me_destroy(m);
        return st;
    }
    m->image_marker_tokens = block_tokens > 0 ? block_tokens - 1 : 0;   /* the pad becomes the image */
    out->impl = m;
    out->dim = tkr_model_dim(m->model);
    out->model_name = m->name;
    out->has_vision = tkr_model_has_vision(m->model);
    out->vocab_size = tkr_tokenizer_vocab_size(m->tok);
    out->embed = me_embed;
    out->tokenize = me_tokenize;
    out->template_tokens = me_template_tokens;
    out->image_tokens = me_image_tokens;
    out->prepare = me_prepare;
    out->release = me_release;
    out->destroy = me_destroy;
    /* budgets for the device the model landed on (the server takes them where options are unset) */
    tkr_device_memory d;
    tkr_model_device_memory(m->model, &d);
    out->batch_tokens = d.batch_tokens;
    out->batch_image_tokens = d.batch_image_tokens;
    out->batch_items = d.batch_items;
    if (d.on_gpu) {
        tkr_model_describe_kernels(m->model, m->device, sizeof m->device);
        out->device_name = m->device;
    }
    if (!cfg->no_warmup && (cfg->warmup || d.on_gpu)) {
        const tkr_batcher_params bp = tkr_server_batch_budgets(cfg, out); /* the server's own */
        const int bt = bp.max_batch_tokens;
        tkr_error werr;
        tkr_error_clear(&werr);
        st = warm_up(m, cfg, bt, bp.max_batch_items, out->warmup, sizeof out->warmup, &werr);
        if (st != TKR_OK) {
            tkr_fail(err, st, "warm-up at %d batch tokens on %s: %s (--max-batch-tokens lowers the budget, "
                     "--no-warmup skips this)", bt, d.on_gpu ? m->device : "the CPU", werr.message);
            me_destroy(m);
            memset(out, 0, sizeof *out);
            return st;
        }
    }
    refresh_memory(m);
    out->device_memory = me_device_memory;
    return TKR_OK;
}

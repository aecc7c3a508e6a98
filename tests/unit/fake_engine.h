/* fake_engine.h - a deterministic stand-in for the model, for the server tests.
 *
 * Tokens: one per whitespace-separated word, id = FNV-1a(word) % 50000 + 100, so a text and its
 * ids (sent as a token array) give the same vector, as with the real engine.
 * Vector: a xorshift stream seeded by a hash of the instruction, the token ids and each image's
 * bytes, L2-normalised in doubles. It depends only on the item, never on the batch.
 * Prompt tokens: 8 + words(instruction) + 3 per image + image tokens + text tokens.
 * Images: sized by the server's header probe and the Qwen2-VL policy with small token bounds.
 * Limit: with max_tokens_per_item set it fails over-long items, or cuts the end of the text
 * when item.truncate is set, as the engine does.
 * Hooks for tests: a delay per model call, a text starting with "FAIL:" fails its item, a whole
 * call can be made to fail, and counters record calls, batch sizes and prepare threads. */
#ifndef TKR_TEST_FAKE_ENGINE_H
#define TKR_TEST_FAKE_ENGINE_H

#include "server/engine.h"
#include "server/image_probe.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_DEFAULT_INSTRUCTION "You are a helpful assistant."
#define FAKE_MIN_IMAGE_TOKENS 4
#define FAKE_MAX_IMAGE_TOKENS 64

typedef struct {
    int dim;
    int delay_ms;                 /* sleep inside every embed call            */
    bool has_vision;
    bool fail_calls;              /* embed returns TKR_ERR_INTERNAL            */
    int max_tokens_per_item;      /* 0 = none; else like the engine: fail, or
                                     cut the text's end when item.truncate   */
    const char *name;
    atomic_int calls;             /* embed calls                               */
    atomic_long items;            /* items embedded                            */
    atomic_int max_batch;         /* largest n seen                            */
    atomic_int prepares;          /* prepare calls                             */
    atomic_int releases;          /* release calls                             */
    atomic_int prepare_on_embed_thread; /* prepares run on the batcher thread  */
    atomic_int prepared_mismatch; /* embed got a prepared[i] of another item   */
    pthread_t embed_thread;
    atomic_int embed_thread_set;
} fake_engine;

static inline uint64_t fake_fnv(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Splits on ASCII whitespace; ids malloc'ed (at least one slot). */
static inline size_t fake_tokenize_words(const char *text, size_t len, int32_t **ids) {
    int32_t *out = malloc(sizeof(int32_t) * (len / 2 + 2));
    size_t n = 0, i = 0;
    while (out && i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        size_t start = i;
        while (i < len && !(text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        if (i > start)
            out[n++] = (int32_t)(fake_fnv(1469598103934665603ull, text + start, i - start) % 50000 + 100);
    }
    *ids = out;
    return out ? n : 0;
}

static inline int fake_count_words(const char *s) {
    int32_t *ids = NULL;
    size_t n = fake_tokenize_words(s, strlen(s), &ids);
    free(ids);
    return (int)n;
}

static inline tkr_status fake_tokenize(void *impl, const char *text, size_t len, int32_t **ids,
                                       size_t *n_ids, tkr_error *err) {
    (void)impl;
    *n_ids = fake_tokenize_words(text, len, ids);
    if (!*ids) { if (err) err->code = TKR_ERR_NOMEM; return TKR_ERR_NOMEM; }
    return TKR_OK;
}

static inline tkr_status fake_template_tokens(void *impl, const char *instruction, int n_images,
                                              int *n, tkr_error *err) {
    (void)impl; (void)err;
    *n = 8 + fake_count_words(instruction ? instruction : FAKE_DEFAULT_INSTRUCTION) + 3 * n_images;
    return TKR_OK;
}

static inline int fake_image_tokens(void *impl, int w, int h) {
    (void)impl;
    return tkr_qwen2vl_image_tokens(w, h, FAKE_MIN_IMAGE_TOKENS, FAKE_MAX_IMAGE_TOKENS);
}

/* The vector and result of one item, exactly as the engine computes it inside a batch. */
static inline void fake_embed_one(const fake_engine *f, const tkr_item *item, float *out,
                                  tkr_result *res) {
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof(float) * (size_t)f->dim);
    const char *instr = item->instruction ? item->instruction : FAKE_DEFAULT_INSTRUCTION;
    size_t text_len = item->text ? (item->text_len ? item->text_len : strlen(item->text)) : 0;
    if (item->text && text_len >= 5 && !memcmp(item->text, "FAIL:", 5)) {
        res->status = TKR_ERR_INVALID_ARG;
        snprintf(res->message, sizeof res->message, "fake engine refuses '%.40s'", item->text);
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (item->token_ids) {
        n = item->n_token_ids;
    } else if (item->text) {
        n = fake_tokenize_words(item->text, text_len, &ids);
    }
    const int32_t *use = item->token_ids ? item->token_ids : ids;
    int image_tokens = 0;
    for (int k = 0; k < item->n_images; k++) {
        const tkr_image_input *im = &item->images[k];
        tkr_image_format fmt;
        int w = 0, hh = 0;
        tkr_error e;
        if (tkr_image_probe(im->data, im->size, &fmt, &w, &hh, &e) != TKR_OK) {
            free(ids);
            res->status = TKR_ERR_IMAGE;
            snprintf(res->message, sizeof res->message, "image %d: %.400s", k, e.message);
            return;
        }
        image_tokens += fake_image_tokens(NULL, w, hh);
    }
    int tmpl = 0;
    fake_template_tokens(NULL, item->instruction, item->n_images, &tmpl, NULL);
    long total = (long)tmpl + image_tokens + (long)n;
    if (f->max_tokens_per_item > 0 && total > f->max_tokens_per_item) {
        long keep = (long)f->max_tokens_per_item - tmpl - image_tokens;
        if (!item->truncate || keep < 0) {
            free(ids);
            res->status = TKR_ERR_LIMIT;
            snprintf(res->message, sizeof res->message, "the item has %ld tokens, more than the limit of %d",
                     total, f->max_tokens_per_item);
            return;
        }
        res->truncated_tokens = (int)((long)n - keep);
        n = (size_t)keep;
    }
    uint64_t h = fake_fnv(1469598103934665603ull, instr, strlen(instr));
    h = fake_fnv(h, "|", 1);
    if (n) h = fake_fnv(h, use, sizeof(int32_t) * n);
    for (int k = 0; k < item->n_images; k++) {
        h = fake_fnv(h, "#", 1);
        h = fake_fnv(h, item->images[k].data, item->images[k].size);
    }
    free(ids);
    uint64_t x = h ? h : 88172645463325252ull;
    double ss = 0;
    double *tmp = malloc(sizeof(double) * (size_t)f->dim);
    if (!tmp) { res->status = TKR_ERR_NOMEM; return; }
    for (int i = 0; i < f->dim; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        tmp[i] = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        ss += tmp[i] * tmp[i];
    }
    for (int i = 0; i < f->dim; i++) out[i] = (float)(tmp[i] / sqrt(ss));
    free(tmp);
    res->status = TKR_OK;
    res->image_tokens = image_tokens;
    res->prompt_tokens = tmpl + image_tokens + (int)n;
}

/* What prepare stores, to check that the batcher hands prepared[i] back with items[i]. */
static inline uint64_t fake_item_key(const tkr_item *item) {
    uint64_t h = 1469598103934665603ull;
    if (item->text) h = fake_fnv(h, item->text, item->text_len ? item->text_len : strlen(item->text));
    if (item->token_ids) h = fake_fnv(h, item->token_ids, sizeof(int32_t) * item->n_token_ids);
    for (int k = 0; k < item->n_images; k++) h = fake_fnv(h, item->images[k].data, item->images[k].size);
    return h;
}

static inline tkr_status fake_embed(void *impl, const tkr_item *items, void *const *prepared,
                                    int n, float *out, tkr_result *results, tkr_error *err) {
    fake_engine *f = impl;
    if (!atomic_load(&f->embed_thread_set)) {   /* only the batcher thread calls embed */
        f->embed_thread = pthread_self();
        atomic_store(&f->embed_thread_set, 1);
    }
    atomic_fetch_add(&f->calls, 1);
    int seen = atomic_load(&f->max_batch);
    while (n > seen && !atomic_compare_exchange_weak(&f->max_batch, &seen, n)) {}
    if (f->delay_ms > 0) {
        struct timespec ts = {f->delay_ms / 1000, (long)(f->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (f->fail_calls) {
        if (err) {
            err->code = TKR_ERR_INTERNAL;
            snprintf(err->message, sizeof err->message, "fake engine: the whole call failed");
        }
        return TKR_ERR_INTERNAL;
    }
    for (int i = 0; i < n; i++) {
        /* prepared[i] must be what prepare made for this very item */
        if (prepared && prepared[i] && *(const uint64_t *)prepared[i] != fake_item_key(&items[i]))
            atomic_fetch_add(&f->prepared_mismatch, 1);
        fake_embed_one(f, &items[i], out + (size_t)i * (size_t)f->dim, &results[i]);
    }
    atomic_fetch_add(&f->items, n);
    return TKR_OK;
}

/* prepare: records the thread; the handle is a small heap block so leaks show under ASan. */
static inline tkr_status fake_prepare(void *impl, const tkr_item *item, void **prepared,
                                      tkr_error *err) {
    (void)err;
    fake_engine *f = impl;
    atomic_fetch_add(&f->prepares, 1);
    if (atomic_load(&f->embed_thread_set) && pthread_equal(f->embed_thread, pthread_self()))
        atomic_fetch_add(&f->prepare_on_embed_thread, 1);
    uint64_t *key = malloc(sizeof *key);
    if (!key) return TKR_ERR_NOMEM;
    *key = fake_item_key(item);
    *prepared = key;
    return TKR_OK;
}

static inline void fake_release(void *impl, void *prepared) {
    fake_engine *f = impl;
    atomic_fetch_add(&f->releases, 1);
    free(prepared);
}

static inline void fake_engine_init(fake_engine *f, int dim) {
    memset(f, 0, sizeof *f);
    f->dim = dim;
    f->has_vision = true;
    f->name = "fake-embed";
    atomic_init(&f->calls, 0);
    atomic_init(&f->items, 0);
    atomic_init(&f->max_batch, 0);
    atomic_init(&f->prepares, 0);
    atomic_init(&f->releases, 0);
    atomic_init(&f->prepare_on_embed_thread, 0);
    atomic_init(&f->prepared_mismatch, 0);
    atomic_init(&f->embed_thread_set, 0);
}

/* The tkr_engine table over a fake_engine (which must outlive it). */
static inline tkr_engine fake_engine_table(fake_engine *f) {
    tkr_engine e;
    memset(&e, 0, sizeof e);
    e.impl = f;
    e.dim = f->dim;
    e.model_name = f->name;
    e.has_vision = f->has_vision;
    e.vocab_size = 50100;
    e.embed = fake_embed;
    e.tokenize = fake_tokenize;
    e.template_tokens = fake_template_tokens;
    e.image_tokens = fake_image_tokens;
    e.prepare = fake_prepare;
    e.release = fake_release;
    return e;
}

#endif

/* embed.c - tkr_embed: items in, L2-normalised vectors out.
 *
 * Each item is prepared on its own (images decoded and run through the vision tower, prompt
 * tokenized, positions computed); a bad item gets its own error and the others go on. Prepared
 * items are then packed into decoder batches under max_batch_tokens. Since every kernel keeps
 * rows and sequences independent, a vector is the same whatever it was batched with. */
#include "image/image.h"
#include "model/model.h"
#include "model/prompt.h"
#include "model/vision_input.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tkr_prepared {
    tkr_prompt prompt;        /* ids with image pads expanded, M-RoPE positions      */
    tkr_vision_input vis;     /* patches of the item's images (none for text)        */
};

typedef struct {
    const tkr_prepared *p;
    float *vision;            /* [image tokens, D] merged image features, prompt order */
    bool vision_borrowed;     /* vision points into a batch's feature block (not freed) */
} batch_item;

static void set_item_error(tkr_result *r, const tkr_error *e) {
    r->status = e->code == TKR_OK ? TKR_ERR_INTERNAL : e->code;
    snprintf(r->message, sizeof r->message, "%s", e->message);
}

/* Images first (their grids decide the prompt length), then the prompt. No weights are read,
 * so this may run on any thread while the model computes. */
tkr_status tkr_prepare(const tkr_model *m, const tkr_item *item, tkr_prepared **out, tkr_error *err) {
    *out = NULL;
    if (!m || !item) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_prepare: bad arguments");
    if (item->n_images < 0 || (item->n_images > 0 && !item->images))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "bad image list");
    if (item->n_images > m->params.max_images_per_item)
        return tkr_fail(err, TKR_ERR_LIMIT, "the item has %d images, more than the limit of %d",
                        item->n_images, m->params.max_images_per_item);
    if ((item->n_images > 0 || item->video) && !m->has_vision)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        m->gguf ? "this model has no vision tower: a GGUF text model embeds images "
                                  "only with its mmproj file (--mmproj FILE, or one mmproj*.gguf "
                                  "beside the model)"
                                : "this model has no vision tower");
    /* an empty text is a valid input (the reference embeds it); nothing at all is not */
    if (!item->text && !item->token_ids && item->n_images == 0 && !item->video)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "the item is empty: give text, token ids or images");
    tkr_prepared *p = calloc(1, sizeof *p);
    if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    tkr_status st = TKR_OK;
    if (item->n_images > 0 || item->video) st = tkr_vision_prepare(m, item, &p->vis, err);
    /* the prompt has one image block per image and per sampled video frame, in that order */
    tkr_item with_frames = *item;
    with_frames.n_images = p->vis.n_images;
    if (st == TKR_OK) st = tkr_prompt_build(m, &with_frames, p->vis.tok_h, p->vis.tok_w, &p->prompt, err);
    if (st != TKR_OK) {
        tkr_prepared_free(p);
        return st;
    }
    *out = p;
    return TKR_OK;
}

void tkr_prepared_free(tkr_prepared *p) {
    if (!p) return;
    tkr_prompt_free(&p->prompt);
    tkr_vision_input_free(&p->vis);
    free(p);
}

int tkr_prepared_tokens(const tkr_prepared *p) { return p ? p->prompt.n : 0; }
int tkr_prepared_image_tokens(const tkr_prepared *p) { return p ? p->vis.n_tokens : 0; }

/* L2-normalises the n rows of last [n, D] into out rows idx[i]. */
static void normalize_rows(const float *last, const int *idx, int n, int D, float *out) {
    for (int i = 0; i < n; i++) {
        const float *h = last + (size_t)i * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)h[d] * h[d];
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0; /* F.normalize clamps the norm at 1e-12 */
        if (ss > 0 && sqrt(ss) < 1e-12) inv = 1e12;
        float *o = out + (size_t)idx[i] * D;
        for (int d = 0; d < D; d++) o[d] = (float)(h[d] * inv);
    }
}

/* The decoder batch on a device backend: token ids, positions and the image features go up,
 * the embeddings are gathered there. last [n, D] gets each sequence's final-normed last row. */
static tkr_status run_batch_backend(tkr_model *m, const batch_item *items, const int *idx, int n,
                                    int T, float *last, tkr_error *err) {
    int D = m->cfg.text.hidden_size;
    int n_extra = 0;
    /* the features of consecutive items of one vision batch lie back to back in one block: then
     * that block is the extra rows as it is, and nothing is copied (100 MB for 64 images) */
    const float *first = NULL, *next = NULL;
    bool contig = true;
    for (int i = 0; i < n; i++) {
        const batch_item *b = &items[idx[i]];
        if (!b->vision) continue;
        n_extra += b->p->vis.n_tokens;
        if (first && b->vision != next) contig = false;
        if (!first) first = b->vision;
        next = b->vision + (size_t)b->p->vis.n_tokens * D;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T * 5); /* ids, extra_row, pos[3] */
    int *seq = malloc(sizeof(int) * (size_t)(n + 1));
    float *extra = n_extra && !contig ? malloc(sizeof(float) * (size_t)n_extra * D) : NULL;
    tkr_status st;
    if (!ids || !seq || (n_extra && !contig && !extra)) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for a batch of %d tokens", T);
        goto done;
    }
    int32_t *extra_row = ids + T, *pos = ids + 2 * (size_t)T;
    int t = 0, e = 0;
    for (int i = 0; i < n; i++) {
        const tkr_prepared *p = items[idx[i]].p;
        const float *vision = items[idx[i]].vision;
        seq[i] = t;
        int v = 0;
        for (int j = 0; j < p->prompt.n; j++) {
            ids[t + j] = p->prompt.ids[j];
            extra_row[t + j] = -1;
            if (vision && p->prompt.ids[j] == m->tok_image_pad && v < p->vis.n_tokens) {
                if (contig) {
                    extra_row[t + j] = (int32_t)((vision - first) / D) + v++;
                } else {
                    memcpy(extra + (size_t)e * D, vision + (size_t)v++ * D, sizeof(float) * (size_t)D);
                    extra_row[t + j] = e++;
                }
            }
            pos[t + j] = p->prompt.pos[j];
            pos[T + t + j] = p->prompt.pos[p->prompt.n + j];
            pos[2 * T + t + j] = p->prompt.pos[2 * p->prompt.n + j];
        }
        t += p->prompt.n;
    }
    seq[n] = t;
    tkr_text_batch b = {T, n, ids, pos, seq, contig ? first : extra, extra_row, contig ? n_extra : e};
    st = m->backend->ops->text_forward(m->backend, &b, last, err);
done:
    free(ids);
    free(seq);
    free(extra);
    return st;
}

/* Runs one decoder batch: items [i0, i1) that are ok. */
static tkr_status run_batch(tkr_model *m, const batch_item *items, const int *idx, int n, float *out,
                            tkr_error *err) {
    int D = m->cfg.text.hidden_size;
    int T = 0;
    for (int i = 0; i < n; i++) T += items[idx[i]].p->prompt.n;
    if (m->backend) {
        float *lastb = malloc(sizeof(float) * (size_t)n * D);
        if (!lastb) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        tkr_status sb = run_batch_backend(m, items, idx, n, T, lastb, err);
        if (sb == TKR_OK) normalize_rows(lastb, idx, n, D, out);
        free(lastb);
        return sb;
    }
    float *x = malloc(sizeof(float) * (size_t)T * D);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T * 3);
    int *seq = malloc(sizeof(int) * (size_t)(n + 1));
    float *last = malloc(sizeof(float) * (size_t)n * D);
    tkr_status st = TKR_OK;
    if (!x || !pos || !seq || !last) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for a batch of %d tokens", T);
        goto done;
    }
    int t = 0;
    for (int i = 0; i < n; i++) {
        const tkr_prepared *p = items[idx[i]].p;
        const float *vision = items[idx[i]].vision;
        seq[i] = t;
        int v = 0;
        for (int j = 0; j < p->prompt.n; j++) {
            float *row = x + (size_t)(t + j) * D;
            if (vision && p->prompt.ids[j] == m->tok_image_pad)
                memcpy(row, vision + (size_t)v++ * D, sizeof(float) * (size_t)D);
            else
                tkr_weight_row_f32(m->embed, p->prompt.ids[j], row);
            pos[t + j] = p->prompt.pos[j];
            pos[T + t + j] = p->prompt.pos[p->prompt.n + j];
            pos[2 * T + t + j] = p->prompt.pos[2 * p->prompt.n + j];
        }
        t += p->prompt.n;
    }
    seq[n] = t;
    st = tkr_text_forward(m, x, T, pos, seq, n, last, err);
    if (st != TKR_OK) goto done;
    normalize_rows(last, idx, n, D, out);
done:
    free(x);
    free(pos);
    free(seq);
    free(last);
    return st;
}

/* On a device backend: the vision towers of consecutive items as one batch of up to
 * max_batch_tokens image tokens (one pass each, so small images fill the GPU). Each item gets its
 * own feature rows; an item whose batch failed keeps vision NULL and is encoded alone later, so
 * a failure still stays with its item. */
static void encode_vision_batched(tkr_model *m, tkr_prepared *const *prepared, batch_item *items,
                                  int n_items, float **keep, int *n_keep) {
    int D = m->cfg.text.hidden_size;
    const tkr_vision_config *v = &m->cfg.vision;
    size_t pd = (size_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    int i = 0;
    while (i < n_items) {
        int j = i, toks = 0, imgs = 0;
        for (; j < n_items; j++) {
            const tkr_prepared *p = prepared[j];
            if (!p || p->vis.n_images == 0) continue;
            if (imgs > 0 && toks + p->vis.n_tokens > m->params.max_batch_tokens) break;
            toks += p->vis.n_tokens;
            imgs += p->vis.n_images;
        }
        if (imgs == 0) break;
        const float **parts = malloc(sizeof(float *) * (size_t)imgs);
        int *grid = malloc(sizeof(int) * 2 * (size_t)imgs);
        float *feats = malloc(sizeof(float) * (size_t)toks * D);
        tkr_error e;
        tkr_error_clear(&e);
        /* patches are made here, from the resized images the items hold (tkr_vision_input),
         * or on the device when the backend cuts them itself (vision_forward_rgb) */
        float **owned = calloc((size_t)imgs, sizeof *owned);
        bool patched = parts && grid && feats && owned;
        bool rgb_done = false;
        if (patched && m->backend->ops->vision_forward_rgb) {
            const uint8_t **rgb = malloc(sizeof(uint8_t *) * (size_t)imgs);
            bool fits = rgb != NULL;
            int k = 0;
            for (int it = i; it < j && fits; it++) {
                const tkr_prepared *p = prepared[it];
                if (!p) continue;
                for (int im = 0; im < p->vis.n_images && fits; im++, k++) {
                    const tkr_rgb_image *r = &p->vis.resized[im];
                    int gh = p->vis.grid_h[im], gw = p->vis.grid_w[im];
                    fits = r->rgb && gh > 0 && gw > 0 && gh % v->spatial_merge_size == 0 &&
                           gw % v->spatial_merge_size == 0 && r->height == gh * v->patch_size &&
                           r->width == gw * v->patch_size;
                    rgb[k] = r->rgb;
                    grid[k] = gh;
                    grid[imgs + k] = gw;
                }
            }
            if (fits && k == imgs &&
                m->backend->ops->vision_forward_rgb(m->backend, imgs, rgb, grid, grid + imgs, feats, &e) == TKR_OK)
                rgb_done = true;
            free(rgb);
            if (rgb_done) patched = false; /* skips the patch path below */
        }
        if (patched) {
            int k = 0;
            for (int it = i; it < j && patched; it++) {
                const tkr_prepared *p = prepared[it];
                if (!p) continue;
                for (int im = 0; im < p->vis.n_images && patched; im++, k++) {
                    int gh = 0, gw = 0;
                    patched = tkr_image_patchify(&p->vis.resized[im], v->patch_size, v->temporal_patch_size,
                                                 v->spatial_merge_size, &owned[k], &gh, &gw, &e) == TKR_OK &&
                              gh == p->vis.grid_h[im] && gw == p->vis.grid_w[im];
                    parts[k] = owned[k];
                    grid[k] = gh;
                    grid[imgs + k] = gw;
                }
            }
        }
        (void)pd;
        if (patched || rgb_done) {
            if (rgb_done ||
                m->backend->ops->vision_forward(m->backend, imgs, parts, grid, grid + imgs, feats, &e) == TKR_OK) {
                size_t row = 0;
                for (int it = i; it < j; it++) {
                    const tkr_prepared *p = prepared[it];
                    if (!p || p->vis.n_images == 0) continue;
                    size_t n = (size_t)p->vis.n_tokens * D;
                    items[it].vision = feats + row; /* borrowed: the block is freed at the end */
                    items[it].vision_borrowed = true;
                    row += n;
                }
                keep[(*n_keep)++] = feats;
                feats = NULL;
            }
        }
        if (owned)
            for (int k = 0; k < imgs; k++) free(owned[k]);
        free(owned);
        free(parts);
        free(grid);
        free(feats);
        i = j;
    }
}

/* Vision towers first (per item, so a failure stays with its item), then the decoder over
 * consecutive items packed under max_batch_tokens (an item larger than the budget runs alone). */
tkr_status tkr_embed_prepared(tkr_model *m, tkr_prepared *const *prepared, int n_items, float *out,
                              tkr_result *results, tkr_error *err) {
    if (!m || n_items < 0 || (n_items > 0 && (!prepared || !out || !results)))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_embed_prepared: bad arguments");
    if (n_items == 0) return TKR_OK;
    int D = m->cfg.text.hidden_size;
    batch_item *items = calloc((size_t)n_items, sizeof *items);
    int *idx = malloc(sizeof(int) * (size_t)n_items);
    bool *ok = malloc(sizeof(bool) * (size_t)n_items);
    if (!items || !idx || !ok) {
        free(items);
        free(idx);
        free(ok);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    memset(out, 0, sizeof(float) * (size_t)n_items * D);
    float **keep = calloc((size_t)n_items, sizeof *keep); /* the vision batches' feature blocks */
    int n_keep = 0;
    if (m->backend && keep) encode_vision_batched(m, prepared, items, n_items, keep, &n_keep);
    bool any_images = false;
    for (int i = 0; i < n_items; i++) {
        memset(&results[i], 0, sizeof results[i]);
        items[i].p = prepared[i];
        ok[i] = false;
        if (!prepared[i]) {
            results[i].status = TKR_ERR_INVALID_ARG;
            snprintf(results[i].message, sizeof results[i].message, "item was not prepared");
            continue;
        }
        any_images |= prepared[i]->vis.n_images > 0;
        if (prepared[i]->vis.n_images > 0 && !items[i].vision) {
            tkr_error ie;
            tkr_error_clear(&ie);
            if (tkr_vision_encode(m, &prepared[i]->vis, &items[i].vision, &ie) != TKR_OK) {
                set_item_error(&results[i], &ie);
                continue;
            }
        }
        ok[i] = true;
        results[i].status = TKR_OK;
        results[i].prompt_tokens = prepared[i]->prompt.n;
        results[i].image_tokens = prepared[i]->vis.n_tokens;
        results[i].truncated_tokens = prepared[i]->prompt.truncated;
    }
    /* the call's last vision pass is done: without images to come, the decoder runs without
     * the tower's weight pages (tkr_model_hint_no_more_images) */
    if (any_images) tkr_model_vision_done(m);
    tkr_status st = TKR_OK;
    int i = 0;
    while (i < n_items && st == TKR_OK) {
        int n = 0, tokens = 0;
        for (; i < n_items; i++) {
            if (!ok[i]) continue;
            if (n > 0 && tokens + prepared[i]->prompt.n > m->params.max_batch_tokens) break;
            idx[n++] = i;
            tokens += prepared[i]->prompt.n;
        }
        if (n > 0) st = run_batch(m, items, idx, n, out, err);
    }
    for (int k = 0; k < n_items; k++)
        if (!items[k].vision_borrowed) free(items[k].vision);
    for (int k = 0; k < n_keep; k++) free(keep[k]);
    free(keep);
    free(items);
    free(idx);
    free(ok);
    return st;
}

/* One tkr_prepare per pool task: items [n], their prepared forms, statuses and errors. */
typedef struct {
    const tkr_model *m;
    const tkr_item *items;
    tkr_prepared **prep;
    tkr_status *st;
    tkr_error *errs;
} prepare_job;

static void prepare_task(void *ctx, int i, int thread) {
    (void)thread;
    prepare_job *j = ctx;
    tkr_error_clear(&j->errs[i]);
    j->st[i] = tkr_prepare(j->m, &j->items[i], &j->prep[i], &j->errs[i]);
}

/* Items are prepared (images decoded and resized, prompts tokenized) on the model's threads, in
 * parallel: on a GPU the decode of a batch of images on one core had taken longer than the
 * batch's forward pass (tkr_prepare is safe to run concurrently). */
tkr_status tkr_embed(tkr_model *m, const tkr_item *items, int n_items, float *out,
                     tkr_result *results, tkr_error *err) {
    if (!m || (n_items > 0 && (!items || !out || !results)) || n_items < 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_embed: bad arguments");
    if (n_items == 0) return TKR_OK;
    int D = m->cfg.text.hidden_size;
    tkr_prepared **prep = calloc((size_t)n_items, sizeof *prep);
    tkr_prepared **okp = calloc((size_t)n_items, sizeof *okp);
    int *map = malloc(sizeof(int) * (size_t)n_items);
    float *vecs = malloc(sizeof(float) * (size_t)n_items * D);
    tkr_result *res = malloc(sizeof(tkr_result) * (size_t)n_items);
    tkr_status *pst = malloc(sizeof(tkr_status) * (size_t)n_items);
    tkr_error *perr = malloc(sizeof(tkr_error) * (size_t)n_items);
    tkr_status st = TKR_OK;
    if (!prep || !okp || !map || !vecs || !res || !pst || !perr) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(out, 0, sizeof(float) * (size_t)n_items * D);
    prepare_job job = {m, items, prep, pst, perr};
    tkr_pool_run(m->pool, n_items, prepare_task, &job); /* one item: runs here, no wake-up */
    int n_ok = 0;
    for (int i = 0; i < n_items; i++) {
        memset(&results[i], 0, sizeof results[i]);
        if (pst[i] != TKR_OK) {
            set_item_error(&results[i], &perr[i]);
            continue;
        }
        map[n_ok] = i;
        okp[n_ok++] = prep[i];
    }
    st = tkr_embed_prepared(m, okp, n_ok, vecs, res, err);
    if (st == TKR_OK)
        for (int k = 0; k < n_ok; k++) {
            results[map[k]] = res[k];
            memcpy(out + (size_t)map[k] * D, vecs + (size_t)k * D, sizeof(float) * (size_t)D);
        }
done:
    for (int i = 0; prep && i < n_items; i++) tkr_prepared_free(prep[i]);
    free(prep);
    free(okp);
    free(map);
    free(vecs);
    free(res);
    free(pst);
    free(perr);
    return st;
}

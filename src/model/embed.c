/* embed.c - tkr_embed: items in, L2-normalised vectors out.
 *
 * Each item is prepared on its own (images decoded and run through the vision tower, prompt
 * tokenized, positions computed); a bad item gets its own error and the others go on. Prepared
 * items are then packed into decoder batches under max_batch_tokens. Since every kernel keeps
 * rows and sequences independent, a vector is the same whatever it was batched with. */
#include "model/model.h"
#include "model/prompt.h"
#include "model/vision_input.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tkr_prompt prompt;
    float *vision;       /* [image tokens, D] merged image features, in prompt order */
    int image_tokens;
    bool ok;
} prepared_item;

static void set_item_error(tkr_result *r, const tkr_error *e) {
    r->status = e->code == TKR_OK ? TKR_ERR_INTERNAL : e->code;
    snprintf(r->message, sizeof r->message, "%s", e->message);
}

/* Images first (their grids decide the prompt length), then the prompt. */
static tkr_status prepare_item(tkr_model *m, const tkr_item *item, prepared_item *p, tkr_error *err) {
    memset(p, 0, sizeof *p);
    if (item->n_images < 0 || (item->n_images > 0 && !item->images))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "bad image list");
    if (item->n_images > m->params.max_images_per_item)
        return tkr_fail(err, TKR_ERR_LIMIT, "the item has %d images, more than the limit of %d",
                        item->n_images, m->params.max_images_per_item);
    if (item->n_images > 0 && !m->has_vision)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "this model has no vision tower");
    if (!item->text && !item->token_ids && item->n_images == 0 && item->n_token_ids == 0) {
        /* an empty text is a valid input (the reference embeds it); NULL everything is not */
        if (!item->text) return tkr_fail(err, TKR_ERR_INVALID_ARG, "the item is empty: give text, token ids or images");
    }
    int tok_h[1024], tok_w[1024];
    tkr_status st = TKR_OK;
    if (item->n_images > 0) {
        st = tkr_vision_encode_item(m, item, tok_h, tok_w, &p->vision, &p->image_tokens, err);
        if (st != TKR_OK) return st;
    }
    st = tkr_prompt_build(m, item, tok_h, tok_w, &p->prompt, err);
    if (st != TKR_OK) {
        free(p->vision);
        p->vision = NULL;
        return st;
    }
    p->ok = true;
    return TKR_OK;
}

/* Runs one decoder batch: items [i0, i1) that are ok. */
static tkr_status run_batch(tkr_model *m, prepared_item *items, const int *idx, int n, float *out,
                            tkr_error *err) {
    int D = m->cfg.text.hidden_size;
    int T = 0;
    for (int i = 0; i < n; i++) T += items[idx[i]].prompt.n;
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
        const prepared_item *p = &items[idx[i]];
        seq[i] = t;
        int v = 0;
        for (int j = 0; j < p->prompt.n; j++) {
            float *row = x + (size_t)(t + j) * D;
            if (p->vision && p->prompt.ids[j] == m->tok_image_pad)
                memcpy(row, p->vision + (size_t)v++ * D, sizeof(float) * (size_t)D);
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
    for (int i = 0; i < n; i++) {
        const float *h = last + (size_t)i * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)h[d] * h[d];
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0; /* F.normalize clamps the norm at 1e-12 */
        if (ss > 0 && sqrt(ss) < 1e-12) inv = 1e12;
        float *o = out + (size_t)idx[i] * D;
        for (int d = 0; d < D; d++) o[d] = (float)(h[d] * inv);
    }
done:
    free(x);
    free(pos);
    free(seq);
    free(last);
    return st;
}

tkr_status tkr_embed(tkr_model *m, const tkr_item *items, int n_items, float *out,
                     tkr_result *results, tkr_error *err) {
    if (!m || (n_items > 0 && (!items || !out || !results)) || n_items < 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_embed: bad arguments");
    if (n_items == 0) return TKR_OK;
    int D = m->cfg.text.hidden_size;
    prepared_item *prep = calloc((size_t)n_items, sizeof *prep);
    int *idx = malloc(sizeof(int) * (size_t)n_items);
    if (!prep || !idx) {
        free(prep);
        free(idx);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    memset(out, 0, sizeof(float) * (size_t)n_items * D);
    for (int i = 0; i < n_items; i++) {
        tkr_error ie;
        tkr_error_clear(&ie);
        memset(&results[i], 0, sizeof results[i]);
        if (prepare_item(m, &items[i], &prep[i], &ie) != TKR_OK) {
            set_item_error(&results[i], &ie);
            continue;
        }
        results[i].status = TKR_OK;
        results[i].prompt_tokens = prep[i].prompt.n;
        results[i].image_tokens = prep[i].image_tokens;
        results[i].truncated_tokens = prep[i].prompt.truncated;
    }
    /* pack consecutive ok items into batches of at most max_batch_tokens (an item larger than
     * the budget runs alone) */
    tkr_status st = TKR_OK;
    int i = 0;
    while (i < n_items && st == TKR_OK) {
        int n = 0, tokens = 0;
        for (; i < n_items; i++) {
            if (!prep[i].ok) continue;
            if (n > 0 && tokens + prep[i].prompt.n > m->params.max_batch_tokens) break;
            idx[n++] = i;
            tokens += prep[i].prompt.n;
        }
        if (n > 0) st = run_batch(m, prep, idx, n, out, err);
    }
    for (int k = 0; k < n_items; k++) {
        tkr_prompt_free(&prep[k].prompt);
        free(prep[k].vision);
    }
    free(prep);
    free(idx);
    return st;
}

/* vision_input.c - from an item's image inputs to merged image features.
 *
 * Each image is read (file path, data: URI or bytes in memory) under max_image_bytes, decoded
 * under max_image_pixels (checked from the header first), resized the Ops-MM way and patchified.
 * That part needs no model weights, so servers run it on request threads while the model
 * computes. Then all images of the item run through the vision tower together, attention kept
 * within each image. */
#include "model/vision_input.h"
#include "image/image.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

void tkr_vision_input_free(tkr_vision_input *in) {
    if (!in) return;
    free(in->grid_h);
    free(in->patches);
    memset(in, 0, sizeof *in);
}

/* One image to patches: bytes from memory, or read from a path / data: URI under the cap. */
static tkr_status prepare_one(const tkr_model *m, const tkr_image_input *in,
                              const tkr_image_params *ip, float **patches, int *gh, int *gw,
                              tkr_error *err) {
    uint8_t *owned = NULL;
    const uint8_t *data = in->data;
    size_t size = in->size;
    tkr_status st = TKR_OK;
    if (!data) {
        if (!in->path) return tkr_fail(err, TKR_ERR_INVALID_ARG, "no path or data");
        st = tkr_image_read_source(in->path, m->params.max_image_bytes, &owned, &size, err);
        data = owned;
    } else if (size > m->params.max_image_bytes) {
        st = tkr_fail(err, TKR_ERR_LIMIT, "image is %zu bytes, more than the limit of %zu", size,
                      m->params.max_image_bytes);
    }
    if (st == TKR_OK) st = tkr_image_preprocess(data, size, ip, patches, gh, gw, err);
    free(owned);
    return st;
}

tkr_status tkr_vision_prepare(const tkr_model *m, const tkr_item *item, tkr_vision_input *out,
                              tkr_error *err) {
    memset(out, 0, sizeof *out);
    const tkr_vision_config *v = &m->cfg.vision;
    int n = item->n_images, ms = v->spatial_merge_size;
    size_t patch_dim = (size_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    float **parts = calloc((size_t)n, sizeof *parts);
    out->grid_h = calloc((size_t)n * 4, sizeof(int));
    if (!parts || !out->grid_h) {
        free(parts);
        tkr_vision_input_free(out);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    out->n_images = n;
    out->grid_w = out->grid_h + n;
    out->tok_h = out->grid_w + n;
    out->tok_w = out->tok_h + n;
    tkr_image_params ip;
    memset(&ip, 0, sizeof ip);
    ip.min_tokens = m->params.min_image_tokens;
    ip.max_tokens = m->params.max_image_tokens;
    ip.limits.max_bytes = m->params.max_image_bytes;
    ip.limits.max_pixels = m->params.max_image_pixels;
    tkr_status st = TKR_OK;
    size_t total = 0;
    for (int i = 0; i < n && st == TKR_OK; i++) {
        st = prepare_one(m, &item->images[i], &ip, &parts[i], &out->grid_h[i], &out->grid_w[i], err);
        if (st != TKR_OK) {
            tkr_error_prefix(err, "image %d: ", i);
            break;
        }
        out->tok_h[i] = out->grid_h[i] / ms;
        out->tok_w[i] = out->grid_w[i] / ms;
        out->n_tokens += out->tok_h[i] * out->tok_w[i];
        total += (size_t)out->grid_h[i] * out->grid_w[i];
    }
    if (st == TKR_OK) {
        out->patches = malloc(sizeof(float) * total * patch_dim);
        if (!out->patches) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for image patches");
    }
    if (st == TKR_OK) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t cnt = (size_t)out->grid_h[i] * out->grid_w[i] * patch_dim;
            memcpy(out->patches + off, parts[i], cnt * sizeof(float));
            off += cnt;
        }
    }
    for (int i = 0; i < n; i++) free(parts[i]);
    free(parts);
    if (st != TKR_OK) tkr_vision_input_free(out);
    return st;
}

tkr_status tkr_vision_encode(tkr_model *m, const tkr_vision_input *in, float **features,
                             tkr_error *err) {
    *features = malloc(sizeof(float) * (size_t)(in->n_tokens > 0 ? in->n_tokens : 1) *
                       (size_t)m->cfg.text.hidden_size);
    if (!*features) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for image features");
    tkr_status st = tkr_vision_forward(m, in->patches, in->n_images, in->grid_h, in->grid_w,
                                       *features, err);
    if (st != TKR_OK) {
        free(*features);
        *features = NULL;
    }
    return st;
}

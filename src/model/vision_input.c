/* vision_input.c - from an item's image inputs to merged image features.
 *
 * Each image is read (file path, data: URI or bytes in memory) under max_image_bytes, decoded
 * under max_image_pixels (checked from the header first), resized the Ops-MM way and patchified;
 * then all images of the item run through the vision tower together, attention kept within each
 * image. An error names the image by its position in the item. */
#include "model/vision_input.h"
#include "image/image.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

tkr_status tkr_vision_encode_item(tkr_model *m, const tkr_item *item, int *tok_h, int *tok_w,
                                  float **features, int *n_tokens, tkr_error *err) {
    *features = NULL;
    *n_tokens = 0;
    const tkr_vision_config *v = &m->cfg.vision;
    int ms = v->spatial_merge_size;
    int n = item->n_images;
    int patch_dim = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    float **parts = calloc((size_t)n, sizeof *parts);
    int *gh = calloc((size_t)n * 2, sizeof *gh);
    if (!parts || !gh) {
        free(parts);
        free(gh);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    int *gw = gh + n;
    tkr_image_params ip;
    memset(&ip, 0, sizeof ip);
    ip.min_tokens = m->params.min_image_tokens;
    ip.max_tokens = m->params.max_image_tokens;
    ip.limits.max_bytes = m->params.max_image_bytes;
    ip.limits.max_pixels = m->params.max_image_pixels;
    tkr_status st = TKR_OK;
    size_t total_patches = 0;
    for (int i = 0; i < n && st == TKR_OK; i++) {
        const tkr_image_input *in = &item->images[i];
        uint8_t *owned = NULL;
        const uint8_t *data = in->data;
        size_t size = in->size;
        if (!data) {
            if (!in->path) {
                st = tkr_fail(err, TKR_ERR_INVALID_ARG, "image %d: no path or data", i);
                break;
            }
            st = tkr_image_read_source(in->path, m->params.max_image_bytes, &owned, &size, err);
            data = owned;
        } else if (size > m->params.max_image_bytes) {
            st = tkr_fail(err, TKR_ERR_LIMIT, "image is %zu bytes, more than the limit of %zu", size,
                          m->params.max_image_bytes);
        }
        if (st == TKR_OK)
            st = tkr_image_preprocess(data, size, &ip, &parts[i], &gh[i], &gw[i], err);
        free(owned);
        if (st != TKR_OK) {
            tkr_error_prefix(err, "image %d: ", i);
            break;
        }
        tok_h[i] = gh[i] / ms;
        tok_w[i] = gw[i] / ms;
        total_patches += (size_t)gh[i] * gw[i];
    }
    float *patches = NULL, *out = NULL;
    if (st == TKR_OK) {
        patches = malloc(sizeof(float) * total_patches * (size_t)patch_dim);
        out = malloc(sizeof(float) * (total_patches / (size_t)(ms * ms)) * (size_t)m->cfg.text.hidden_size);
        if (!patches || !out) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for image patches");
    }
    if (st == TKR_OK) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t cnt = (size_t)gh[i] * gw[i] * (size_t)patch_dim;
            memcpy(patches + off, parts[i], cnt * sizeof(float));
            off += cnt;
        }
        st = tkr_vision_forward(m, patches, n, gh, gw, out, err);
    }
    for (int i = 0; i < n; i++) free(parts[i]);
    free(parts);
    free(gh);
    free(patches);
    if (st != TKR_OK) {
        free(out);
        return st;
    }
    *features = out;
    *n_tokens = (int)(total_patches / (size_t)(ms * ms));
    return TKR_OK;
}

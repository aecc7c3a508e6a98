/* patchify.c - from resized RGB to the vision tower's pixel_values rows, and the whole
 * Ops-MM image path (tkr_image_preprocess).
 *
 * Normalisation is the one HF's Qwen2-VL image processor computes in float32 (the torchvision
 * backend fuses rescale and normalise): mean255 = f32(f32(mean) * 255), std255 likewise, and
 * v = f32(f32(u8 - mean255) / std255). A 3x256 table holds every possible value.
 *
 * Row order (spec 3.1 step 4): HF reshapes [T, C, H, W] to
 * [gt, tp, C, gh/m, m, py, gw/m, m, px] and permutes to [gt, gh/m, gw/m, m, m, C, tp, py, px]:
 * rows go over the merge blocks in raster order and, inside a block, over its m x m patches in
 * raster order; a row holds (channel, t, py, px). A single image is repeated over t. */
#include "image/image.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* OpenAI CLIP statistics (Qwen2-VL preprocessor_config.json). */
static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static void build_normalise_table(float table[3][256]) {
    for (int c = 0; c < 3; c++) {
        float mean255 = clip_mean[c] * 255.0f;
        float std255 = clip_std[c] * 255.0f;
        for (int u = 0; u < 256; u++) {
            float centred = (float)u - mean255;
            table[c][u] = centred / std255;
        }
    }
}

tkr_status tkr_image_patchify(const tkr_rgb_image *img, int patch, int temporal, int merge,
                              float **patches, int *grid_h, int *grid_w, tkr_error *err) {
    if (patches) *patches = NULL;
    if (!img || !img->rgb || !patches || !grid_h || !grid_w)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "patchify: NULL argument");
    if (patch <= 0 || temporal <= 0 || merge <= 0 || patch > 1024 || temporal > 64 || merge > 64)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "patchify: invalid patch %d / temporal %d / merge %d", patch, temporal,
                        merge);
    int unit = patch * merge;
    if (img->width <= 0 || img->height <= 0 || img->width % unit || img->height % unit)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "patchify: image %dx%d is not a multiple of %d on both sides", img->width,
                        img->height, unit);
    int gh = img->height / patch, gw = img->width / patch;
    size_t plane = (size_t)patch * patch;            /* one channel of one patch */
    size_t row_len = 3 * (size_t)temporal * plane;   /* floats per output row */
    size_t n_rows = (size_t)gh * (size_t)gw, total, bytes;
    if (!tkr_mul_size(n_rows, row_len, &total) || !tkr_mul_size(total, sizeof(float), &bytes))
        return tkr_fail(err, TKR_ERR_LIMIT, "patchify: %dx%d is too large", img->width,
                        img->height);
    float *out = malloc(bytes);
    if (!out) return tkr_fail(err, TKR_ERR_NOMEM, "patchify: out of memory (%zu bytes)", bytes);
    float table[3][256];
    build_normalise_table(table);

    size_t stride = (size_t)img->width * 3;
    float *dst = out; /* [gh*gw][3][temporal][patch][patch] */
    for (int bh = 0; bh < gh / merge; bh++)
        for (int bw = 0; bw < gw / merge; bw++)
            for (int mh = 0; mh < merge; mh++)
                for (int mw = 0; mw < merge; mw++, dst += row_len) {
                    size_t y0 = (size_t)(bh * merge + mh) * patch;
                    size_t x0 = (size_t)(bw * merge + mw) * patch;
                    for (int c = 0; c < 3; c++) {
                        float *ch = dst + (size_t)c * temporal * plane; /* t = 0 */
                        for (int py = 0; py < patch; py++) {
                            const uint8_t *src = img->rgb + (y0 + py) * stride + x0 * 3 + c;
                            float *d = ch + (size_t)py * patch;
                            for (int px = 0; px < patch; px++) d[px] = table[c][src[3 * px]];
                        }
                        for (int t = 1; t < temporal; t++)
                            memcpy(ch + t * plane, ch, plane * sizeof(float));
                    }
                }
    *patches = out;
    *grid_h = gh;
    *grid_w = gw;
    return TKR_OK;
}

tkr_image_params tkr_image_default_params(void) {
    tkr_image_params p;
    p.min_tokens = 256;
    p.max_tokens = 1280;
    p.limits = tkr_image_default_limits();
    return p;
}

/* Checks the token range of p (shared by both entry points). */
static tkr_status check_params(const tkr_image_params *p, tkr_error *err) {
    if (p->min_tokens < 0 || p->max_tokens < 1 || p->min_tokens > p->max_tokens ||
        p->max_tokens > (1 << 20))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "image preprocess: invalid token range %d..%d",
                        p->min_tokens, p->max_tokens);
    return TKR_OK;
}

tkr_status tkr_image_preprocess_rgb(const tkr_rgb_image *img, const tkr_image_params *p,
                                    float **patches, int *grid_h, int *grid_w, tkr_error *err) {
    if (patches) *patches = NULL;
    if (!img || !img->rgb || !p || !patches || !grid_h || !grid_w)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "image preprocess: NULL argument");
    tkr_status st = check_params(p, err);
    if (st != TKR_OK) return st;
    if (img->width < 1 || img->height < 1)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "image preprocess: empty %dx%d image", img->width,
                        img->height);
    uint64_t max_px = p->limits.max_pixels ? p->limits.max_pixels : TKR_IMAGE_DEFAULT_MAX_PIXELS;
    if ((uint64_t)img->width * (uint64_t)img->height > max_px)
        return tkr_fail(err, TKR_ERR_LIMIT, "image is %dx%d, more than the limit of %llu pixels",
                        img->width, img->height, (unsigned long long)max_px);
    const int64_t px_per_token = (int64_t)TKR_IMAGE_FACTOR * TKR_IMAGE_FACTOR;
    tkr_rgb_image resized;
    int rh = 0, rw = 0;
    st = tkr_smart_resize(img->height, img->width, TKR_IMAGE_FACTOR, p->min_tokens * px_per_token,
                          p->max_tokens * px_per_token, &rh, &rw, err);
    if (st == TKR_OK) st = tkr_image_resize_bicubic(img, rw, rh, &resized, err);
    if (st != TKR_OK) return st;
    st = tkr_image_patchify(&resized, TKR_IMAGE_PATCH, TKR_IMAGE_TEMPORAL, TKR_IMAGE_MERGE,
                            patches, grid_h, grid_w, err);
    tkr_rgb_image_free(&resized);
    return st;
}

tkr_status tkr_image_preprocess(const uint8_t *data, size_t size, const tkr_image_params *p,
                                float **patches, int *grid_h, int *grid_w, tkr_error *err) {
    if (patches) *patches = NULL;
    if (!p || !patches || !grid_h || !grid_w)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "image preprocess: NULL argument");
    tkr_status st = check_params(p, err);
    if (st != TKR_OK) return st;
    tkr_rgb_image decoded;
    st = tkr_image_decode(data, size, &p->limits, &decoded, err);
    if (st != TKR_OK) return st;
    st = tkr_image_preprocess_rgb(&decoded, p, patches, grid_h, grid_w, err);
    tkr_rgb_image_free(&decoded);
    return st;
}

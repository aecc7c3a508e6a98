/* vision_input.c - from an item's image inputs and video to merged image features.
 *
 * Each image is read (file path, data: URI, bytes in memory, or pixels already decoded) under
 * max_image_bytes, decoded under max_image_pixels (checked from the header first) and resized
 * the Ops-MM way. A video's sampled frames (media/video.c) follow the item's images and take the
 * same resize. That part needs no model weights, so servers run it on request threads while the
 * model computes. Then the images run through the vision tower in chunks, attention kept within
 * each image. */
#include "model/vision_input.h"
#include "media/media.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

void tkr_vision_input_free(tkr_vision_input *in) {
    if (!in) return;
    for (int i = 0; in->resized && i < in->n_images; i++) tkr_rgb_image_free(&in->resized[i]);
    free(in->resized);
    free(in->grid_h);
    memset(in, 0, sizeof *in);
}

/* smart_resize + Pillow bicubic of decoded pixels into *out (a new buffer). */
static tkr_status resize_rgb(const tkr_rgb_image *img, const tkr_image_params *ip,
                             tkr_rgb_image *out, tkr_error *err) {
    const int64_t ppt = (int64_t)TKR_IMAGE_FACTOR * TKR_IMAGE_FACTOR;
    if ((uint64_t)img->width * (uint64_t)img->height > ip->limits.max_pixels)
        return tkr_fail(err, TKR_ERR_LIMIT, "image is %dx%d, more than the limit of %llu pixels",
                        img->width, img->height, (unsigned long long)ip->limits.max_pixels);
    int rh = 0, rw = 0;
    tkr_status st = tkr_smart_resize(img->height, img->width, TKR_IMAGE_FACTOR,
                                     ip->min_tokens * ppt, ip->max_tokens * ppt, &rh, &rw, err);
    if (st == TKR_OK) st = tkr_image_resize_bicubic(img, rw, rh, out, err);
    return st;
}

/* One image input to model-size RGB: pixels, bytes in memory, or a path / data: URI. */
static tkr_status prepare_one(const tkr_model *m, const tkr_image_input *in,
                              const tkr_image_params *ip, tkr_rgb_image *out, tkr_error *err) {
    if (in->rgb) {
        if (in->width <= 0 || in->height <= 0)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "pixels given with a bad size %dx%d",
                            in->width, in->height);
        tkr_rgb_image view = {in->width, in->height, (uint8_t *)in->rgb, "RGB", "RGB"};
        return resize_rgb(&view, ip, out, err);
    }
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
    tkr_rgb_image decoded;
    if (st == TKR_OK) st = tkr_image_decode(data, size, &ip->limits, &decoded, err);
    free(owned);
    if (st != TKR_OK) return st;
    st = resize_rgb(&decoded, ip, out, err);
    tkr_rgb_image_free(&decoded);
    return st;
}

typedef struct {
    tkr_vision_input *vin;
    const tkr_image_params *ip;
    int base;               /* the item's own images come first */
} frame_sink;

/* A sampled video frame: resized once, stored at every position it fills. */
static tkr_status take_frame(void *user, const tkr_rgb_image *frame, int64_t index, double time_s,
                             const int *positions, int n_positions, tkr_error *err) {
    (void)time_s;
    frame_sink *fs = user;
    tkr_rgb_image r;
    tkr_status st = resize_rgb(frame, fs->ip, &r, err);
    if (st != TKR_OK) {
        tkr_error_prefix(err, "video frame %lld: ", (long long)index);
        return st;
    }
    size_t bytes = (size_t)r.width * r.height * 3;
    for (int i = 0; i < n_positions && st == TKR_OK; i++) {
        tkr_rgb_image *dst = &fs->vin->resized[fs->base + positions[i]];
        tkr_rgb_image_free(dst);
        *dst = r;
        dst->rgb = malloc(bytes);
        if (!dst->rgb) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for video frames");
        else memcpy(dst->rgb, r.rgb, bytes);
    }
    tkr_rgb_image_free(&r);
    return st;
}

tkr_status tkr_vision_prepare(const tkr_model *m, const tkr_item *item, tkr_vision_input *out,
                              tkr_error *err) {
    memset(out, 0, sizeof *out);
    const tkr_vision_config *v = &m->cfg.vision;
    int ms = v->spatial_merge_size;
    int n_img = item->n_images;
    int n_vid = 0;
    const tkr_video_input *vid = item->video;
    if (vid) {
        n_vid = vid->num_frames > 0 ? vid->num_frames : vid->max_frames > 0 ? vid->max_frames : 64;
        if (n_vid > m->params.media.max_frames)
            return tkr_fail(err, TKR_ERR_LIMIT, "video: %d frames asked for, more than the limit of %d",
                            n_vid, m->params.media.max_frames);
    }
    int n = n_img + n_vid;  /* an upper bound until the video is decoded */
    out->resized = calloc((size_t)(n > 0 ? n : 1), sizeof *out->resized);
    out->grid_h = calloc((size_t)(n > 0 ? n : 1) * 4, sizeof(int));
    if (!out->resized || !out->grid_h) {
        tkr_vision_input_free(out);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    out->n_images = n;
    tkr_image_params ip;
    memset(&ip, 0, sizeof ip);
    ip.min_tokens = m->params.min_image_tokens;
    ip.max_tokens = m->params.max_image_tokens;
    ip.limits.max_bytes = m->params.max_image_bytes;
    ip.limits.max_pixels = m->params.max_image_pixels ? m->params.max_image_pixels
                                                      : TKR_IMAGE_DEFAULT_MAX_PIXELS;
    tkr_status st = TKR_OK;
    for (int i = 0; i < n_img && st == TKR_OK; i++) {
        st = prepare_one(m, &item->images[i], &ip, &out->resized[i], err);
        if (st != TKR_OK) tkr_error_prefix(err, "image %d: ", i);
    }
    if (st == TKR_OK && vid) {
        frame_sink fs = {out, &ip, n_img};
        tkr_video_info info;
        st = tkr_video_decode_each(vid, &m->params.media, take_frame, &fs, &info, err);
        if (st == TKR_OK) {
            for (int i = n_img + info.n; i < n; i++) tkr_rgb_image_free(&out->resized[i]);
            n = out->n_images = n_img + info.n;
            out->n_video_frames = info.n;
        }
    }
    if (st != TKR_OK) {
        tkr_vision_input_free(out);
        return st;
    }
    out->grid_w = out->grid_h + n;
    out->tok_h = out->grid_w + n;
    out->tok_w = out->tok_h + n;
    for (int i = 0; i < n; i++) {
        out->grid_h[i] = out->resized[i].height / v->patch_size;
        out->grid_w[i] = out->resized[i].width / v->patch_size;
        out->tok_h[i] = out->grid_h[i] / ms;
        out->tok_w[i] = out->grid_w[i] / ms;
        out->n_tokens += out->tok_h[i] * out->tok_w[i];
    }
    return TKR_OK;
}

tkr_status tkr_vision_encode(tkr_model *m, const tkr_vision_input *in, float **features,
                             tkr_error *err) {
    const tkr_vision_config *v = &m->cfg.vision;
    int D = m->cfg.text.hidden_size, ms2 = v->spatial_merge_size * v->spatial_merge_size;
    size_t patch_dim = (size_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    *features = malloc(sizeof(float) * (size_t)(in->n_tokens > 0 ? in->n_tokens : 1) * (size_t)D);
    if (!*features) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for image features");
    tkr_status st = TKR_OK;
    float *chunk = NULL;
    size_t chunk_cap = 0, done_tokens = 0;
    for (int i0 = 0; i0 < in->n_images && st == TKR_OK;) {
        /* images [i0, i1): at least one, then as many as fit the patch budget */
        size_t patches = (size_t)in->grid_h[i0] * in->grid_w[i0];
        int i1 = i0 + 1;
        while (i1 < in->n_images &&
               patches + (size_t)in->grid_h[i1] * in->grid_w[i1] <= TKR_VISION_CHUNK_PATCHES) {
            patches += (size_t)in->grid_h[i1] * in->grid_w[i1];
            i1++;
        }
        if (patches * patch_dim > chunk_cap) {
            free(chunk);
            chunk_cap = patches * patch_dim;
            chunk = malloc(sizeof(float) * chunk_cap);
            if (!chunk) {
                st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory for image patches");
                break;
            }
        }
        size_t off = 0;
        for (int i = i0; i < i1 && st == TKR_OK; i++) {
            float *p = NULL;
            int gh = 0, gw = 0;
            st = tkr_image_patchify(&in->resized[i], v->patch_size, v->temporal_patch_size,
                                    v->spatial_merge_size, &p, &gh, &gw, err);
            if (st == TKR_OK) {
                memcpy(chunk + off, p, sizeof(float) * (size_t)gh * gw * patch_dim);
                off += (size_t)gh * gw * patch_dim;
            }
            free(p);
        }
        if (st == TKR_OK)
            st = tkr_vision_forward(m, chunk, i1 - i0, in->grid_h + i0, in->grid_w + i0,
                                    *features + done_tokens * (size_t)D, err);
        done_tokens += patches / (size_t)ms2;
        i0 = i1;
    }
    free(chunk);
    if (st != TKR_OK) {
        free(*features);
        *features = NULL;
    }
    return st;
}

/* image.h - image input for the vision tower: decoding, Ops-MM resizing and Qwen2-VL patches.
 *
 * The reference (Ops-MM-embedding-v1 on HF transformers) does, per image:
 *
 *     Image.open(x).convert("RGB")              -> tkr_image_decode (libjpeg-turbo, libpng, libwebp)
 *     smart_resize(h, w, 28, 256*784, 1280*784)  -> tkr_smart_resize
 *     img.resize((w', h'))   (Pillow BICUBIC)    -> tkr_image_resize_bicubic (bit-exact)
 *     rescale 1/255, CLIP mean/std, patchify     -> tkr_image_patchify
 *
 * and tkr_image_preprocess chains the four. Every function here is reentrant (no global state)
 * and returns a tkr_status with a message naming the problem; nothing aborts on bad input.
 * Sizes from headers are checked against the limits before any pixel buffer is allocated.
 * docs/images.md lists the formats, the colour conversions and the limits. */
#ifndef TKR_IMAGE_IMAGE_H
#define TKR_IMAGE_IMAGE_H

#include "tkr_embed.h"
#include <stddef.h>
#include <stdint.h>

/* Packed 8-bit RGB: height rows of width*3 bytes, no padding. rgb is malloc'ed. */
typedef struct {
    int width, height;
    uint8_t *rgb;            /* [height][width][3] */
    const char *format;      /* static: "JPEG", "PNG", "WEBP" (Pillow's format names) */
    const char *source_mode; /* static: the mode Pillow opens the file in ("L", "RGB", "P", ...) */
} tkr_rgb_image;

#define TKR_IMAGE_DEFAULT_MAX_BYTES ((size_t)32 << 20)     /* 32 MiB of encoded bytes      */
#define TKR_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)64 << 20)  /* 64 Mpx (width * height)       */
#define TKR_IMAGE_MAX_JPEG_SCANS 1000                      /* progressive scans, DoS guard  */

typedef struct {
    size_t max_bytes;    /* encoded size accepted; 0 = TKR_IMAGE_DEFAULT_MAX_BYTES          */
    uint64_t max_pixels; /* width*height from the header; 0 = TKR_IMAGE_DEFAULT_MAX_PIXELS  */
    /* JPEG data-corruption warnings from libjpeg ("premature end of data segment",
     * "extraneous bytes before marker", bad Huffman codes...): 0 (default) = reject the image,
     * 1 = decode what libjpeg recovers, as Pillow does (Pillow silences these warnings). A
     * truncated JPEG is an error either way, as in Pillow. */
    int lenient_jpeg;
} tkr_image_limits;

tkr_image_limits tkr_image_default_limits(void);

/* Sniffs JPEG / PNG / WebP from the first bytes (GIF, BMP, TIFF... are refused as unsupported),
 * reads the header first and refuses width*height > max_pixels before decoding, then converts
 * to RGB exactly as Pillow's Image.open(...).convert("RGB") does (see docs/images.md).
 * lim may be NULL (defaults). On success out->rgb is malloc'ed; free with tkr_rgb_image_free. */
tkr_status tkr_image_decode(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                            tkr_rgb_image *out, tkr_error *err);

void tkr_rgb_image_free(tkr_rgb_image *img);

/* Resolves an image reference to its encoded bytes: a data URI ("data:image/png;base64,...",
 * "data:image;base64,...", "data:application/octet-stream;base64,...", base64 only), a
 * "file://" URI or a plain file path. Sizes over max_bytes (0 = default) are refused before
 * the payload is decoded or the file read. *bytes is malloc'ed (free()). */
tkr_status tkr_image_read_source(const char *path_or_data_uri, size_t max_bytes, uint8_t **bytes,
                                 size_t *n, tkr_error *err);

/* Ops-MM smart_resize (spec 1.3): both sides multiples of factor, area within
 * [min_pixels, max_pixels], Python's round-half-even, and when the result's long/short ratio
 * is over 200 the long side is clamped to short*200 (Ops-MM warns; HF's version raises). */
tkr_status tkr_smart_resize(int height, int width, int factor, int64_t min_pixels,
                            int64_t max_pixels, int *out_height, int *out_width, tkr_error *err);

/* Pillow's Image.resize(size, BICUBIC) on an RGB image, bit for bit (Resample.c): separable,
 * horizontal pass then vertical, a = -0.5, support scaled by in/out when shrinking, 22-bit
 * fixed-point weights, clipped to 8 bits between the passes; the same size is a plain copy. */
tkr_status tkr_image_resize_bicubic(const tkr_rgb_image *in, int out_width, int out_height,
                                    tkr_rgb_image *out, tkr_error *err);

/* Rescale 1/255 and normalise with the CLIP mean/std, repeat the frame `temporal` times and cut
 * the Qwen2-VL patch rows (spec 3.1 step 4): the image must be a multiple of patch*merge on both
 * sides. *patches is malloc'ed [grid_h*grid_w][3*temporal*patch*patch] float32, rows in
 * merge-block raster order, columns ordered (channel, t, py, px). */
tkr_status tkr_image_patchify(const tkr_rgb_image *img, int patch, int temporal, int merge,
                              float **patches, int *grid_h, int *grid_w, tkr_error *err);

/* The whole Ops-MM image path: decode, smart_resize to min_tokens*28*28 .. max_tokens*28*28,
 * bicubic resize, patchify (patch 14, temporal 2, merge 2). An image gives
 * grid_h*grid_w/4 LLM tokens. */
typedef struct {
    int min_tokens, max_tokens;  /* Ops-MM: 256 and 1280 */
    tkr_image_limits limits;
} tkr_image_params;

tkr_image_params tkr_image_default_params(void);

tkr_status tkr_image_preprocess(const uint8_t *data, size_t size, const tkr_image_params *p,
                                float **patches, int *grid_h, int *grid_w, tkr_error *err);

/* The same path from pixels already decoded (video frames, rendered PDF pages, raw RGB inputs):
 * width*height is checked against p->limits.max_pixels, then smart_resize, bicubic, patchify.
 * An image decoded by tkr_image_decode gives the same patches either way. */
tkr_status tkr_image_preprocess_rgb(const tkr_rgb_image *img, const tkr_image_params *p,
                                    float **patches, int *grid_h, int *grid_w, tkr_error *err);

/* Qwen2-VL geometry and the OpenAI CLIP normalisation (preprocessor_config.json). */
#define TKR_IMAGE_PATCH 14
#define TKR_IMAGE_TEMPORAL 2
#define TKR_IMAGE_MERGE 2
#define TKR_IMAGE_FACTOR 28
#define TKR_IMAGE_MAX_RATIO 200

#endif

/* decode_internal.h - the per-format decoders behind tkr_image_decode. Each one reads its header,
 * checks the pixel budget, allocates out->rgb [h][w][3] and fills it as Pillow's convert("RGB")
 * would; on failure it frees what it allocated and leaves out zeroed. */
#ifndef TKR_IMAGE_DECODE_INTERNAL_H
#define TKR_IMAGE_DECODE_INTERNAL_H

#include "image/image.h"

tkr_status tkr_decode_jpeg(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                           tkr_rgb_image *out, tkr_error *err);
tkr_status tkr_decode_png(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                          tkr_rgb_image *out, tkr_error *err);
tkr_status tkr_decode_webp(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                           tkr_rgb_image *out, tkr_error *err);

/* Checks width x height against the limit and allocates the RGB buffer (uninitialised). */
tkr_status tkr_image_alloc_rgb(uint64_t width, uint64_t height, const tkr_image_limits *lim,
                               const char *format, tkr_rgb_image *out, tkr_error *err);

#endif

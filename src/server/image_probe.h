/* image_probe.h - reads an encoded image's size from its header, without decoding it.
 *
 * The server needs an image's token count before the item is queued: to refuse images over the
 * pixel limit with a 400 at once, to check tokens per item, and to fill batches under the
 * image-token budget. Decoding proper happens in the image module, inside the engine. Only the
 * formats the engine decodes are recognised: PNG, JPEG, WebP. */
#ifndef TKR_SERVER_IMAGE_PROBE_H
#define TKR_SERVER_IMAGE_PROBE_H

#include "tkr_embed.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { TKR_IMAGE_PNG = 1, TKR_IMAGE_JPEG, TKR_IMAGE_WEBP } tkr_image_format;

/* Sets *format, *width, *height from the header; TKR_ERR_IMAGE with the reason when the bytes
 * are not a recognisable PNG/JPEG/WebP or the header is cut short. */
tkr_status tkr_image_probe(const uint8_t *data, size_t size, tkr_image_format *format, int *width,
                           int *height, tkr_error *err);

/* The Ops-MM/Qwen2-VL resize policy (the image module's smart_resize with factor 28, pixels
 * between min_tokens*784 and max_tokens*784): how many 28x28 tokens an image of this size
 * becomes. */
int tkr_qwen2vl_image_tokens(int width, int height, int min_tokens, int max_tokens);

#endif

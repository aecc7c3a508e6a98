/* decode_webp.c - still WebP (lossy, lossless, with or without alpha) through libwebp.
 *
 * Pillow decodes WebP with WebPAnimDecoder in MODE_RGBA; for a still image its one frame is a
 * key frame decoded straight into the canvas (no blending), i.e. the pixels WebPDecode gives
 * with the default options (fancy upsampling, no dithering). convert("RGB") then drops alpha,
 * so decoding to MODE_RGB gives the same bytes without the alpha plane. Animated WebP is
 * refused (Pillow would composite the first frame). */
#include "image/decode_internal.h"
#include "util/error.h"

#include <webp/decode.h>

static const char *vp8_status_text(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "decoding suspended";
    case VP8_STATUS_USER_ABORT: return "decoding aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "image file is truncated";
    default: return "decoding failed";
    }
}

static tkr_status webp_fail(tkr_error *err, VP8StatusCode s) {
    tkr_status code = s == VP8_STATUS_OUT_OF_MEMORY ? TKR_ERR_NOMEM
                      : s == VP8_STATUS_UNSUPPORTED_FEATURE ? TKR_ERR_UNSUPPORTED
                                                           : TKR_ERR_IMAGE;
    return tkr_fail(err, code, "WebP: %s", vp8_status_text(s));
}

tkr_status tkr_decode_webp(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                           tkr_rgb_image *out, tkr_error *err) {
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config))
        return tkr_fail(err, TKR_ERR_INTERNAL, "WebP: libwebp version mismatch");
    VP8StatusCode s = WebPGetFeatures(data, size, &config.input);
    if (s != VP8_STATUS_OK) return webp_fail(err, s);
    if (config.input.has_animation)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "WebP: animated WebP is not supported");
    tkr_status st = tkr_image_alloc_rgb((uint64_t)config.input.width,
                                        (uint64_t)config.input.height, lim, "WEBP", out, err);
    if (st != TKR_OK) return st;
    out->source_mode = config.input.has_alpha ? "RGBA" : "RGB";
    config.output.colorspace = MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = out->rgb;
    config.output.u.RGBA.stride = out->width * 3;
    config.output.u.RGBA.size = (size_t)out->width * (size_t)out->height * 3;
    s = WebPDecode(data, size, &config);
    WebPFreeDecBuffer(&config.output);
    if (s != VP8_STATUS_OK) return webp_fail(err, s);
    return TKR_OK;
}

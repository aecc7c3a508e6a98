/* decode.c - format sniffing and the shared pieces of the decoders (limits, RGB allocation).
 * The format comes from the bytes, never from a file name or a declared MIME type. */
#include "image/decode_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

tkr_image_limits tkr_image_default_limits(void) {
    tkr_image_limits lim;
    lim.max_bytes = TKR_IMAGE_DEFAULT_MAX_BYTES;
    lim.max_pixels = TKR_IMAGE_DEFAULT_MAX_PIXELS;
    lim.lenient_jpeg = 0;
    return lim;
}

void tkr_rgb_image_free(tkr_rgb_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* Called by every decoder as soon as its header gives the size, so a hostile header costs
 * nothing: the product is checked in 64 bits, then against the budget, then as a size_t. */
tkr_status tkr_image_alloc_rgb(uint64_t width, uint64_t height, const tkr_image_limits *lim,
                               const char *format, tkr_rgb_image *out, tkr_error *err) {
    uint64_t max_pixels = lim->max_pixels ? lim->max_pixels : TKR_IMAGE_DEFAULT_MAX_PIXELS;
    const char *name = strcmp(format, "WEBP") ? format : "WebP"; /* for messages */
    if (width == 0 || height == 0)
        return tkr_fail(err, TKR_ERR_IMAGE, "%s: image has zero size (%llux%llu)", name,
                        (unsigned long long)width, (unsigned long long)height);
    if (width > INT32_MAX || height > INT32_MAX || width * height > max_pixels)
        return tkr_fail(err, TKR_ERR_LIMIT,
                        "%s: image is %llux%llu = %llu pixels, over the limit of %llu pixels",
                        name, (unsigned long long)width, (unsigned long long)height,
                        (unsigned long long)(width * height), (unsigned long long)max_pixels);
    size_t bytes;
    if (!tkr_mul_size((size_t)width * (size_t)height, 3, &bytes))
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: image too large", name);
    out->rgb = malloc(bytes);
    if (!out->rgb)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory for a %llux%llu image", name,
                        (unsigned long long)width, (unsigned long long)height);
    out->width = (int)width;
    out->height = (int)height;
    out->format = format;
    return TKR_OK;
}

typedef enum { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_WEBP, FMT_OTHER } sniffed_format;

/* Magic numbers: the same prefixes Pillow's plugins accept for JPEG/PNG/WebP, plus the common
 * formats we refuse by name so the message says what the file is. */
static sniffed_format sniff(const uint8_t *d, size_t n, const char **name) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *name = NULL;
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return FMT_JPEG;
    if (n >= 8 && !memcmp(d, png_sig, 8)) return FMT_PNG;
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return FMT_WEBP;
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) *name = "GIF";
    else if (n >= 2 && d[0] == 'B' && d[1] == 'M') *name = "BMP";
    else if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) *name = "TIFF";
    else if (n >= 12 && !memcmp(d + 4, "ftyp", 4)) *name = "HEIF/AVIF";
    else if (n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 1 && d[3] == 0) *name = "ICO";
    else if (n >= 4 && !memcmp(d, "8BPS", 4)) *name = "PSD";
    else if (n >= 2 && d[0] == 0xff && d[1] == 0x0a) *name = "JPEG XL";
    else if (n >= 12 && !memcmp(d, "\0\0\0\x0cJXL \r\n\x87\n", 12)) *name = "JPEG XL";
    return *name ? FMT_OTHER : FMT_UNKNOWN;
}

tkr_status tkr_image_decode(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                            tkr_rgb_image *out, tkr_error *err) {
    tkr_image_limits defaults = tkr_image_default_limits();
    if (!out) return tkr_fail(err, TKR_ERR_INVALID_ARG, "image decode: no output image");
    memset(out, 0, sizeof *out);
    if (!lim) lim = &defaults;
    if (!data || size == 0) return tkr_fail(err, TKR_ERR_IMAGE, "image: empty input");
    size_t max_bytes = lim->max_bytes ? lim->max_bytes : TKR_IMAGE_DEFAULT_MAX_BYTES;
    if (size > max_bytes)
        return tkr_fail(err, TKR_ERR_LIMIT, "image: %zu bytes, over the limit of %zu bytes", size,
                        max_bytes);
    const char *other = NULL;
    tkr_status st;
    switch (sniff(data, size, &other)) {
    case FMT_JPEG: st = tkr_decode_jpeg(data, size, lim, out, err); break;
    case FMT_PNG: st = tkr_decode_png(data, size, lim, out, err); break;
    case FMT_WEBP: st = tkr_decode_webp(data, size, lim, out, err); break;
    case FMT_OTHER:
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "image: %s images are not supported (JPEG, PNG and WebP are)", other);
    default:
        return tkr_fail(err, TKR_ERR_IMAGE,
                        "image: unknown format (first bytes %02x %02x %02x %02x); JPEG, PNG and "
                        "WebP are supported", data[0], size > 1 ? data[1] : 0,
                        size > 2 ? data[2] : 0, size > 3 ? data[3] : 0);
    }
    if (st != TKR_OK) tkr_rgb_image_free(out);
    return st;
}

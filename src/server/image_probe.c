/* image_probe.c - see image_probe.h. Every read is bounds-checked against size. */
#include "server/image_probe.h"
#include "image/image.h"
#include "util/error.h"

#include <string.h>

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le24(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }
static uint32_t le32(const uint8_t *p) { return le24(p) | (uint32_t)p[3] << 24; }

/* PNG: the IHDR chunk comes first (after an Apple CgBI chunk in iOS-optimised files). */
static tkr_status probe_png(const uint8_t *d, size_t n, int *w, int *h, tkr_error *err) {
    size_t pos = 8;
    if (n >= pos + 8 && !memcmp(d + pos + 4, "CgBI", 4)) {
        uint32_t len = be32(d + pos);
        if (len > n) return tkr_fail(err, TKR_ERR_IMAGE, "PNG: truncated CgBI chunk");
        pos += 12 + (size_t)len;
    }
    if (n < pos + 16 || memcmp(d + pos + 4, "IHDR", 4) != 0)
        return tkr_fail(err, TKR_ERR_IMAGE, "PNG: missing or truncated IHDR chunk");
    uint32_t width = be32(d + pos + 8), height = be32(d + pos + 12);
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu)
        return tkr_fail(err, TKR_ERR_IMAGE, "PNG: bad size %ux%u in IHDR", width, height);
    *w = (int)width;
    *h = (int)height;
    return TKR_OK;
}

/* JPEG: walks the marker segments up to the first SOFn frame header. */
static tkr_status probe_jpeg(const uint8_t *d, size_t n, int *w, int *h, tkr_error *err) {
    size_t pos = 2;
    for (int guard = 0; guard < 100000; guard++) {
        while (pos < n && d[pos] != 0xFF) pos++;           /* tolerate junk between segments */
        while (pos < n && d[pos] == 0xFF) pos++;           /* fill bytes */
        if (pos >= n) break;
        uint8_t m = d[pos++];
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;   /* no length */
        if (m == 0xD9 || m == 0xDA)
            return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: no frame header before the scan data");
        if (pos + 2 > n) break;
        uint32_t len = be16(d + pos);
        if (len < 2) return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: bad segment length %u", len);
        bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (len < 7 || pos + 7 > n) break;
            uint32_t height = be16(d + pos + 3), width = be16(d + pos + 5);
            if (width == 0 || height == 0)
                return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: bad size %ux%u in the frame header",
                                width, height);
            *w = (int)width;
            *h = (int)height;
            return TKR_OK;
        }
        pos += len;
    }
    return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: truncated before the frame header");
}

/* WebP: RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended). */
static tkr_status probe_webp(const uint8_t *d, size_t n, int *w, int *h, tkr_error *err) {
    if (n < 30) return tkr_fail(err, TKR_ERR_IMAGE, "WebP: truncated header");
    const uint8_t *c = d + 12, *p = d + 20;
    uint32_t width = 0, height = 0;
    if (!memcmp(c, "VP8 ", 4)) {
        if (p[3] != 0x9d || p[4] != 0x01 || p[5] != 0x2a)
            return tkr_fail(err, TKR_ERR_IMAGE, "WebP: bad VP8 start code");
        width = (uint32_t)(p[6] | p[7] << 8) & 0x3fff;
        height = (uint32_t)(p[8] | p[9] << 8) & 0x3fff;
    } else if (!memcmp(c, "VP8L", 4)) {
        if (p[0] != 0x2f) return tkr_fail(err, TKR_ERR_IMAGE, "WebP: bad VP8L signature");
        uint32_t bits = le32(p + 1);
        width = (bits & 0x3fff) + 1;
        height = ((bits >> 14) & 0x3fff) + 1;
    } else if (!memcmp(c, "VP8X", 4)) {
        width = le24(p + 4) + 1;
        height = le24(p + 7) + 1;
    } else {
        return tkr_fail(err, TKR_ERR_IMAGE, "WebP: unknown first chunk '%.4s'", (const char *)c);
    }
    if (width == 0 || height == 0) return tkr_fail(err, TKR_ERR_IMAGE, "WebP: zero size");
    *w = (int)width;
    *h = (int)height;
    return TKR_OK;
}

tkr_status tkr_image_probe(const uint8_t *data, size_t size, tkr_image_format *format, int *width,
                           int *height, tkr_error *err) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 8 && !memcmp(data, png_sig, 8)) {
        *format = TKR_IMAGE_PNG;
        return probe_png(data, size, width, height, err);
    }
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        *format = TKR_IMAGE_JPEG;
        return probe_jpeg(data, size, width, height, err);
    }
    if (size >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBP", 4)) {
        *format = TKR_IMAGE_WEBP;
        return probe_webp(data, size, width, height, err);
    }
    return tkr_fail(err, TKR_ERR_IMAGE, "not a PNG, JPEG or WebP image (%zu bytes)", size);
}

/* One source of truth for the resize policy: the image module's smart_resize, which the engine
 * itself uses. An image it refuses (zero size) costs the maximum. */
int tkr_qwen2vl_image_tokens(int width, int height, int min_tokens, int max_tokens) {
    const int64_t unit = (int64_t)TKR_IMAGE_FACTOR * TKR_IMAGE_FACTOR;
    int h = 0, w = 0;
    tkr_error err;
    if (tkr_smart_resize(height, width, TKR_IMAGE_FACTOR, (int64_t)min_tokens * unit,
                         (int64_t)max_tokens * unit, &h, &w, &err) != TKR_OK)
        return max_tokens;
    return (h / TKR_IMAGE_FACTOR) * (w / TKR_IMAGE_FACTOR);
}

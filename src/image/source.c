/* source.c - turning an image reference (data URI, file:// URI or path) into encoded bytes.
 * Ops-MM's fetch_image accepts the same forms (plus http URLs, which we never fetch). The size
 * cap is applied before any payload is decoded or any file is read. */
#include "image/image.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/platform.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Media types we accept in a data URI. The real format is sniffed from the bytes later, so the
 * declared type only has to say "an image" (or "some bytes"). */
static int acceptable_media_type(const char *t, size_t n) {
    if (n == 0) return 1; /* "data:;base64," - RFC 2397 default, treated as opaque bytes */
    if (n == 5 && !strncasecmp(t, "image", 5)) return 1;
    if (n > 6 && !strncasecmp(t, "image/", 6)) return 1;
    if (n == 24 && !strncasecmp(t, "application/octet-stream", 24)) return 1;
    return 0;
}

/* data:[<media type>][;param=value]*;base64,<payload> */
static tkr_status read_data_uri(const char *uri, size_t max_bytes, uint8_t **bytes, size_t *n,
                                tkr_error *err) {
    const char *meta = uri + 5;
    const char *comma = strchr(meta, ',');
    if (!comma) return tkr_fail(err, TKR_ERR_INVALID_ARG, "data URI: no ',' before the payload");
    size_t meta_len = (size_t)(comma - meta);
    size_t type_len = strcspn(meta, ";,");
    if (!acceptable_media_type(meta, type_len))
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "data URI: media type '%.*s' is not an image",
                        (int)(type_len > 64 ? 64 : type_len), meta);
    if (meta_len < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "data URI: only ';base64' payloads are supported");
    const char *payload = comma + 1;
    size_t len = strlen(payload);
    tkr_status st = tkr_base64_decode(payload, len, max_bytes, bytes, n, err);
    if (st != TKR_OK) {
        tkr_error_prefix(err, "data URI: ");
        return st;
    }
    if (*n == 0) {
        free(*bytes);
        *bytes = NULL;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "data URI: empty payload");
    }
    return TKR_OK;
}

tkr_status tkr_image_read_source(const char *src, size_t max_bytes, uint8_t **bytes, size_t *n,
                                 tkr_error *err) {
    if (bytes) *bytes = NULL;
    if (n) *n = 0;
    if (!src || !bytes || !n) return tkr_fail(err, TKR_ERR_INVALID_ARG, "image source: NULL argument");
    if (!*src) return tkr_fail(err, TKR_ERR_INVALID_ARG, "image source: empty string");
    if (!max_bytes) max_bytes = TKR_IMAGE_DEFAULT_MAX_BYTES;
    if (!strncasecmp(src, "data:", 5)) return read_data_uri(src, max_bytes, bytes, n, err);
    if (!strncasecmp(src, "http://", 7) || !strncasecmp(src, "https://", 8))
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "image source: remote URLs are not fetched; send the bytes as a data URI");
    const char *path = src;
    if (!strncasecmp(src, "file://", 7)) path = src + 7;
    if (!*path) return tkr_fail(err, TKR_ERR_INVALID_ARG, "image source: empty file path");
    /* Mapped, then copied once: the caller owns a plain heap buffer. */
    tkr_file_view view;
    tkr_status st = tkr_file_view_open(path, 1, max_bytes, &view, err);
    if (st != TKR_OK) return st;
    if (view.size == 0) {
        tkr_file_view_close(&view);
        return tkr_fail(err, TKR_ERR_IMAGE, "%s: empty file", path);
    }
    uint8_t *buf = malloc(view.size);
    if (!buf) {
        tkr_file_view_close(&view);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(buf, view.data, view.size);
    size_t len = view.size;
    tkr_file_view_close(&view);
    *bytes = buf;
    *n = len;
    return TKR_OK;
}

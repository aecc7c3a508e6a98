/* source.c - the encoded bytes of a video or PDF, from memory, a file or a data: URI, and the
 * media limits' defaults. Files are mapped, not copied: a video of hundreds of MB is read by
 * the demuxer straight from the mapping. */
#include "media/media.h"
#include "util/base64.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

tkr_media_limits tkr_media_default_limits(void) {
    tkr_media_limits l;
    memset(&l, 0, sizeof l);
    l.max_bytes = (size_t)512 << 20;
    l.max_pixels = (uint64_t)64 << 20;
    l.max_frames = 256;
    l.max_pages = 64;
    l.max_source_frames = (int64_t)1 << 22;
    l.timeout_s = 120.0;
    l.pdf_memory = (size_t)1 << 30;
    l.pdf_cpu_s = 60;
    return l;
}

void tkr_media_limits_resolve(const tkr_media_limits *in, tkr_media_limits *out) {
    tkr_media_limits d = tkr_media_default_limits();
    if (!in) {
        *out = d;
        return;
    }
    *out = *in;
    if (!out->max_bytes) out->max_bytes = d.max_bytes;
    if (!out->max_pixels) out->max_pixels = d.max_pixels;
    if (out->max_frames <= 0) out->max_frames = d.max_frames;
    if (out->max_pages <= 0) out->max_pages = d.max_pages;
    if (out->max_source_frames <= 0) out->max_source_frames = d.max_source_frames;
    if (!(out->timeout_s > 0)) out->timeout_s = d.timeout_s;
    if (!out->pdf_memory) out->pdf_memory = d.pdf_memory;
    if (out->pdf_cpu_s <= 0) out->pdf_cpu_s = d.pdf_cpu_s;
}

void tkr_media_bytes_close(tkr_media_bytes *b) {
    if (!b) return;
    if (b->has_view) tkr_file_view_close(&b->view);
    free(b->owned);
    memset(b, 0, sizeof *b);
}

/* data:[<type>][;params];base64,<payload>: the type is not checked (the bytes are sniffed). */
static tkr_status open_data_uri(const char *uri, size_t max_bytes, tkr_media_bytes *out,
                                tkr_error *err) {
    const char *comma = strchr(uri + 5, ',');
    if (!comma) return tkr_fail(err, TKR_ERR_INVALID_ARG, "data URI: no ',' before the payload");
    if ((size_t)(comma - (uri + 5)) < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "data URI: only ';base64' payloads are supported");
    size_t n = 0;
    tkr_status st = tkr_base64_decode(comma + 1, strlen(comma + 1), max_bytes, &out->owned, &n, err);
    if (st != TKR_OK) {
        tkr_error_prefix(err, "data URI: ");
        return st;
    }
    if (n == 0) {
        free(out->owned);
        out->owned = NULL;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "data URI: empty payload");
    }
    out->data = out->owned;
    out->size = n;
    return TKR_OK;
}

tkr_status tkr_media_bytes_open(const char *src, const uint8_t *data, size_t size,
                                size_t max_bytes, tkr_media_bytes *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    if (data) {
        if (size == 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "empty data");
        if (size > max_bytes)
            return tkr_fail(err, TKR_ERR_LIMIT, "%zu bytes, more than the limit of %zu", size, max_bytes);
        out->data = data;
        out->size = size;
        return TKR_OK;
    }
    if (!src || !*src) return tkr_fail(err, TKR_ERR_INVALID_ARG, "no path, data URI or data");
    if (!strncasecmp(src, "data:", 5)) return open_data_uri(src, max_bytes, out, err);
    if (!strncasecmp(src, "http://", 7) || !strncasecmp(src, "https://", 8))
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "remote URLs are not fetched; send the bytes as a data URI");
    const char *path = strncasecmp(src, "file://", 7) ? src : src + 7;
    tkr_status st = tkr_file_view_open(path, 1, max_bytes, &out->view, err);
    if (st != TKR_OK) return st;
    out->has_view = 1;
    if (out->view.size == 0) {
        tkr_media_bytes_close(out);
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: empty file", path);
    }
    out->data = out->view.data;
    out->size = out->view.size;
    return TKR_OK;
}

/* fuzz_http.c - the server's request-head parser and chunked decoder (src/server/http_parse.c) on
 * arbitrary bytes, fed whole and in two pieces: a head must parse the same way however it is
 * split, every string it hands out must lie inside the buffer, and the decoded body of a chunked
 * request may never exceed its input. */
#include "server/http_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool count_sink(void *ctx, const char *d, size_t n) {
    (void)d;
    *(size_t *)ctx += n;
    return true;
}

static void inside(const char *p, const char *buf, size_t n) {
    if (p && (p < buf || p >= buf + n)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *a = malloc(size + 1), *b = malloc(size + 1);
    if (!a || !b) abort();
    memcpy(a, data, size);
    memcpy(b, data, size);
    tkr_http_head h, h2;
    tkr_http_perr e, e2;
    int r = tkr_http_parse_head(a, size, &h, &e);
    /* the same bytes split at an arbitrary point: the first part alone must not claim more */
    size_t cut = size ? data[0] % (size + 1) : 0;
    int r1 = tkr_http_parse_head(b, cut, &h2, &e2);
    if (r1 == 1 && r == 1 && h2.head_len != h.head_len) abort();
    if (r1 < 0 && r == 1) abort();   /* a prefix of a good head cannot be malformed */
    if (r1 == 0 && r != 0) {
        memcpy(b, data, size);
        int r2 = tkr_http_parse_head(b, size, &h2, &e2);
        if (r2 != r || (r == 1 && h2.head_len != h.head_len)) abort();
    }
    if (r == 1) {
        if (h.head_len > size) abort();
        inside(h.method, a, size);
        if (strcmp(h.target, "/") != 0) inside(h.target, a, size);   /* "http://host": a static "/" */
        inside(h.authorization, a, size);
        char path[TKR_HTTP_MAX_TARGET + 1];
        (void)tkr_http_decode_path(h.target, path, sizeof path);
        if (h.chunked) {
            tkr_http_chunked c;
            tkr_http_chunked_init(&c);
            size_t used = 0, got = 0;
            (void)tkr_http_chunked_feed(&c, a + h.head_len, size - h.head_len, &used, count_sink, &got, &e);
            if (used > size - h.head_len || got > used) abort();
        }
    } else if (r < 0) {
        if (e.status < 400 || e.status > 599) abort();
    }
    free(a);
    free(b);
    return 0;
}

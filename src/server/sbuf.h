/* sbuf.h - a growable byte buffer for building HTTP bodies (JSON, Prometheus text) and for
 * collecting request bodies. Appends never abort: the first failed allocation makes the buffer
 * "failed" (sticky, like SQLite's mallocFailed) and later appends are no-ops, so builders check
 * once at the end with sbuf_ok(). A cap bounds how large the buffer may grow. */
#ifndef TKR_SERVER_SBUF_H
#define TKR_SERVER_SBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;       /* len bytes plus a NUL kept after them (when cap_used > 0) */
    size_t len;
    size_t cap_used;  /* allocated bytes */
    size_t limit;     /* most bytes the buffer may hold; 0 = no limit */
    bool failed;      /* an allocation failed or the limit was hit */
} sbuf;

void sbuf_init(sbuf *b, size_t limit);
void sbuf_free(sbuf *b);
bool sbuf_ok(const sbuf *b);

/* Makes room for n more bytes; false (and failed) when that is impossible. */
bool sbuf_reserve(sbuf *b, size_t n);
void sbuf_append(sbuf *b, const void *data, size_t n);
void sbuf_puts(sbuf *b, const char *s);
void sbuf_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Appends s[0..n) as a JSON string literal (quotes included), escaping as RFC 8259 requires;
 * bytes that are not well-formed UTF-8 become U+FFFD. */
void sbuf_json_string(sbuf *b, const char *s, size_t n);

/* Appends a float32 as a JSON number with 9 significant digits (enough to round-trip a float). */
void sbuf_json_float(sbuf *b, float v);

/* The length of the well-formed UTF-8 sequence at s[0..n), 0 if there is none. */
size_t tkr_utf8_seq_len(const unsigned char *s, size_t n);

/* Copies the NUL-terminated src into dst[cap], cut (if it must be) between UTF-8 sequences. */
void tkr_utf8_copy(char *dst, size_t cap, const char *src);

/* Hands the bytes to the caller (malloc'ed, NUL-terminated) and resets the buffer. */
char *sbuf_take(sbuf *b, size_t *len);

#endif

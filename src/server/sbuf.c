/* sbuf.c - see sbuf.h. */
#include "server/sbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf *b, size_t limit) {
    memset(b, 0, sizeof *b);
    b->limit = limit;
}

void sbuf_free(sbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

bool sbuf_ok(const sbuf *b) { return !b->failed; }

/* Doubles the allocation so that a long run of appends costs amortised O(1) each. */
bool sbuf_reserve(sbuf *b, size_t n) {
    if (b->failed) return false;
    if (n > SIZE_MAX - b->len - 1) { b->failed = true; return false; }
    size_t need = b->len + n + 1;  /* +1 for the NUL */
    if (b->limit && need - 1 > b->limit) { b->failed = true; return false; }
    if (need <= b->cap_used) return true;
    size_t cap = b->cap_used ? b->cap_used : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    if (b->limit && cap > b->limit + 1) cap = b->limit + 1;
    char *p = realloc(b->data, cap);
    if (!p) { b->failed = true; return false; }
    b->data = p;
    b->cap_used = cap;
    return true;
}

void sbuf_append(sbuf *b, const void *data, size_t n) {
    if (!sbuf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_puts(sbuf *b, const char *s) { sbuf_append(b, s, strlen(s)); }

void sbuf_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = true; return; }
    if ((size_t)n < sizeof small) { sbuf_append(b, small, (size_t)n); return; }
    if (!sbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when it is not one. */
size_t tkr_utf8_seq_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

void tkr_utf8_copy(char *dst, size_t cap, const char *src) {
    if (cap == 0) return;
    size_t n = strlen(src), o = 0, i = 0;
    while (i < n) {
        size_t k = tkr_utf8_seq_len((const unsigned char *)src + i, n - i);
        if (k == 0) k = 1;   /* an invalid byte is copied alone (JSON output replaces it) */
        if (o + k >= cap) break;
        memcpy(dst + o, src + i, k);
        o += k;
        i += k;
    }
    dst[o] = '\0';
}

/* Control characters, quote and backslash are escaped; well-formed UTF-8 passes through, and each
 * byte that is not part of it becomes U+FFFD, so the output is always valid JSON text (RFC 8259
 * requires UTF-8) whatever a client sent and however a message was cut. */
void sbuf_json_string(sbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    sbuf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = tkr_utf8_seq_len((const unsigned char *)s + i, n - i);
            if (k) { i += k; continue; }
            sbuf_append(b, s + run, i - run);
            sbuf_append(b, "\xef\xbf\xbd", 3);
            run = ++i;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') { i++; continue; }
        sbuf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            len = 6;
        }
        sbuf_append(b, esc, len);
        i++;
    }
    sbuf_append(b, s + run, n - run);
    sbuf_append(b, "\"", 1);
}

/* NaN and infinities have no JSON form: the buffer fails rather than emit invalid JSON. */
void sbuf_json_float(sbuf *b, float v) {
    if (!isfinite(v)) { b->failed = true; return; }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    if (n < 0 || (size_t)n >= sizeof tmp) { b->failed = true; return; }
    sbuf_append(b, tmp, (size_t)n);
}

char *sbuf_take(sbuf *b, size_t *len) {
    if (b->failed) return NULL;
    if (!b->data) {
        if (!sbuf_reserve(b, 0)) return NULL;
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap_used = 0;
    return p;
}

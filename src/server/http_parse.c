/* http_parse.c - see http_parse.h. */
#include "server/http_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(tkr_http_perr *e, int status, const char *code, const char *fmt, ...) {
    e->status = status;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(...) fail(e, 400, "bad_request", __VA_ARGS__)

/* RFC 9110 token characters (method and header names). */
static bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static bool ieq(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
    return true;
}

/* Checks the request line line[0..n) (CRLF excluded); on commit, NUL-terminates its parts. */
static int request_line(char *line, size_t n, bool commit, tkr_http_head *h, tkr_http_perr *e) {
    size_t m = 0;
    while (m < n && is_tchar((unsigned char)line[m])) m++;
    if (m == 0 || m >= n || line[m] != ' ') return BAD("invalid request line (a method, one space, a target, one space, HTTP/1.1)");
    if (m > 15) return fail(e, 501, "not_implemented", "method too long");
    size_t t = m + 1, te = t;
    while (te < n && line[te] != ' ') {
        unsigned char c = (unsigned char)line[te];
        if (c <= 0x20 || c >= 0x7f) return BAD("invalid byte 0x%02x in the request target", c);
        te++;
    }
    if (te == t) return BAD("empty request target");
    if (te - t > TKR_HTTP_MAX_TARGET) return fail(e, 414, "uri_too_long", "request target longer than %d bytes", TKR_HTTP_MAX_TARGET);
    if (te >= n) return BAD("request line without an HTTP version (HTTP/0.9 is not supported)");
    const char *v = line + te + 1;
    size_t vn = n - te - 1;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return BAD("invalid HTTP version in the request line");
    if (v[5] != '1') return fail(e, 505, "http_version_not_supported", "HTTP/%c.%c is not supported (use HTTP/1.1)", v[5], v[7]);
    const char *target = line + t;
    if (target[0] != '/') {
        /* absolute-form (RFC 9112 3.2.2): keep the path */
        size_t skip = te - t >= 7 && !memcmp(target, "http://", 7) ? 7 : te - t >= 8 && !memcmp(target, "https://", 8) ? 8 : 0;
        if (!skip) return BAD("request target must be a path starting with '/'");
        const char *slash = memchr(target + skip, '/', te - t - skip);
        target = slash ? slash : "/";
    }
    if (commit) {
        line[m] = '\0';
        line[te] = '\0';
        h->method = line;
        h->target = target;
    }
    h->minor = v[7] == '0' ? 0 : 1;
    return 0;
}

/* Parses a Content-Length value: 1*DIGIT, saturating at UINT64_MAX. */
static bool parse_length(const char *v, size_t n, uint64_t *out) {
    if (n == 0) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return false;
        unsigned d = (unsigned)(v[i] - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    }
    *out = x;
    return true;
}

typedef struct {
    bool conn_close, conn_keep, has_te, has_host;
} head_flags;

/* Checks one header line line[0..n); on commit, records what the server needs. */
static int header_line(char *line, size_t n, bool commit, tkr_http_head *h, head_flags *f,
                       tkr_http_perr *e) {
    if (line[0] == ' ' || line[0] == '\t') return BAD("folded header lines (obs-fold) are not accepted");
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)line[k])) k++;
    if (k == n) return BAD("header line without a colon");
    if (line[k] != ':') {
        if (line[k] == ' ' || line[k] == '\t') return BAD("whitespace between a header name and its colon");
        return BAD("invalid byte 0x%02x in a header name", (unsigned char)line[k]);
    }
    if (k == 0) return BAD("empty header name");
    size_t vs = k + 1, ve = n;
    while (vs < ve && (line[vs] == ' ' || line[vs] == '\t')) vs++;
    while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t')) ve--;
    for (size_t i = vs; i < ve; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return BAD("control byte 0x%02x in a header value", c);
    }
    const char *name = line, *v = line + vs;
    size_t vn = ve - vs;
    if (ieq(name, k, "content-length")) {
        uint64_t x;
        if (!parse_length(v, vn, &x)) return BAD("invalid Content-Length (digits only)");
        if (h->has_length && x != h->content_length) return BAD("two different Content-Length headers");
        h->has_length = true;
        h->content_length = x;
    } else if (ieq(name, k, "transfer-encoding")) {
        if (f->has_te) return BAD("more than one Transfer-Encoding header");
        f->has_te = true;
        if (!ieq(v, vn, "chunked")) return fail(e, 501, "not_implemented", "unsupported Transfer-Encoding (only chunked)");
        h->chunked = true;
    } else if (ieq(name, k, "host")) {
        if (f->has_host) return BAD("more than one Host header");
        f->has_host = true;
    } else if (ieq(name, k, "authorization")) {
        if (h->authorization) return BAD("more than one Authorization header");
        if (commit) {
            line[ve] = '\0';
            h->authorization = v;
        } else {
            h->authorization = "";
        }
    } else if (ieq(name, k, "expect")) {
        if (!ieq(v, vn, "100-continue")) return fail(e, 417, "expectation_failed", "unsupported Expect value");
        h->expect_continue = true;
    } else if (ieq(name, k, "connection")) {
        size_t i = 0;
        while (i < vn) {
            size_t j = i;
            while (j < vn && v[j] != ',') j++;
            size_t a = i, b = j;
            while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
            if (ieq(v + a, b - a, "close")) f->conn_close = true;
            else if (ieq(v + a, b - a, "keep-alive")) f->conn_keep = true;
            i = j + 1;
        }
    }
    return 0;
}

/* Walks the lines of buf[start..lim). With commit (a whole head is present) it fills h;
 * without, it only validates the complete lines so that garbage is refused early. */
static int scan(char *buf, size_t start, size_t lim, bool commit, tkr_http_head *h, tkr_http_perr *e) {
    tkr_http_head tmp;
    memset(&tmp, 0, sizeof tmp);
    head_flags f = {false, false, false, false};
    size_t pos = start;
    int lines = 0;
    for (;;) {
        char *nl = memchr(buf + pos, '\n', lim - pos);
        if (!nl) return 0;
        size_t n = (size_t)(nl - (buf + pos));
        if (n == 0 || buf[pos + n - 1] != '\r') return BAD("line ending without CR (bare LF)");
        n--;
        if (memchr(buf + pos, '\r', n)) return BAD("bare CR in the request head");
        if (memchr(buf + pos, '\0', n)) return BAD("NUL byte in the request head");
        char *line = buf + pos;
        pos += n + 2;
        if (lines == 0) {
            if (request_line(line, n, commit, &tmp, e) < 0) return -1;
        } else if (n == 0) {
            break;
        } else {
            if (++tmp.n_headers > TKR_HTTP_MAX_HEADERS)
                return fail(e, 431, "request_header_fields_too_large", "more than %d header lines", TKR_HTTP_MAX_HEADERS);
            if (header_line(line, n, commit, &tmp, &f, e) < 0) return -1;
        }
        if (commit) line[n] = '\0';
        lines++;
    }
    if (tmp.has_length && tmp.chunked) return BAD("both Content-Length and Transfer-Encoding");
    if (tmp.chunked && tmp.minor == 0) return BAD("Transfer-Encoding in an HTTP/1.0 request");
    if (tmp.minor == 1 && !f.has_host) return BAD("HTTP/1.1 request without a Host header");
    tmp.keep_alive = tmp.minor == 1 ? !f.conn_close : f.conn_keep && !f.conn_close;
    tmp.head_len = pos;
    *h = tmp;
    return 1;
}

int tkr_http_parse_head(char *buf, size_t len, tkr_http_head *h, tkr_http_perr *e) {
    size_t start = 0;
    /* RFC 9112 2.2: empty lines before a request line are ignored (a few) */
    while (start + 1 < len && start < 8 && buf[start] == '\r' && buf[start + 1] == '\n') start += 2;
    size_t lim = len - start > TKR_HTTP_MAX_HEAD ? start + TKR_HTTP_MAX_HEAD : len;
    const char *end = NULL;
    for (size_t i = start; i + 3 < lim; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') { end = buf + i; break; }
    if (!end) {
        tkr_http_head scratch;
        memset(&scratch, 0, sizeof scratch);
        int r = scan(buf, start, lim, false, &scratch, e);
        if (r < 0) return -1;
        if (len - start >= TKR_HTTP_MAX_HEAD)
            return fail(e, 431, "request_header_fields_too_large", "request head larger than %d bytes", TKR_HTTP_MAX_HEAD);
        return 0;
    }
    int r = scan(buf, start, (size_t)(end - buf) + 4, false, h, e);
    if (r < 0) return -1;
    return scan(buf, start, (size_t)(end - buf) + 4, true, h, e);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool tkr_http_decode_path(const char *target, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = target; *p && *p != '?' && *p != '#'; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = hexval((unsigned char)p[1]), lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
            if (hi < 0 || lo < 0) return false;
            c = hi * 16 + lo;
            if (c == 0) return false;
            p += 2;
        }
        if (o + 1 >= cap) return false;
        out[o++] = (char)c;
    }
    if (cap == 0) return false;
    out[o] = '\0';
    return true;
}

/* ---- chunked bodies ------------------------------------------------------------------------- */

enum { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LF, C_DONE };

#define MAX_CHUNK_LINE 4096
#define MAX_TRAILERS 16384

void tkr_http_chunked_init(tkr_http_chunked *c) { memset(c, 0, sizeof *c); }

int tkr_http_chunked_feed(tkr_http_chunked *c, const char *in, size_t n, size_t *used,
                          tkr_http_sink sink, void *ctx, tkr_http_perr *e) {
    size_t i = 0;
    int ret = 0;
    while (i < n && c->state != C_DONE) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case C_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (c->digits >= 15) { ret = BAD("chunk size too large"); goto out; }
                c->left = c->left * 16 + (uint64_t)d;
                c->digits++;
                i++;
                break;
            }
            if (c->digits == 0) { ret = BAD("invalid chunk size"); goto out; }
            if (ch == '\r') { c->state = C_SIZE_LF; i++; break; }
            if (ch == ';' || ch == ' ' || ch == '\t') { c->state = C_EXT; c->line = 0; i++; break; }
            ret = BAD("invalid chunk size");
            goto out;
        }
        case C_EXT:
            if (ch == '\r') { c->state = C_SIZE_LF; i++; break; }
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) { ret = BAD("invalid byte in a chunk extension"); goto out; }
            if (++c->line > MAX_CHUNK_LINE) { ret = BAD("chunk extension too long"); goto out; }
            i++;
            break;
        case C_SIZE_LF:
            if (ch != '\n') { ret = BAD("chunk size line without CRLF"); goto out; }
            i++;
            c->digits = 0;
            if (c->left == 0) { c->state = C_TRAILER; c->line = 0; }
            else c->state = C_DATA;
            break;
        case C_DATA: {
            size_t k = n - i;
            if (k > c->left) k = (size_t)c->left;
            if (sink && !sink(ctx, in + i, k)) { i += k; ret = -2; goto out; }
            i += k;
            c->left -= k;
            if (c->left == 0) c->state = C_DATA_CR;
            break;
        }
        case C_DATA_CR:
            if (ch != '\r') { ret = BAD("chunk data longer than its size"); goto out; }
            c->state = C_DATA_LF;
            i++;
            break;
        case C_DATA_LF:
            if (ch != '\n') { ret = BAD("chunk data without CRLF"); goto out; }
            c->state = C_SIZE;
            c->left = 0;
            i++;
            break;
        case C_TRAILER:
            if (ch == '\r') { c->state = C_TRAILER_LF; i++; break; }
            if (ch == '\n' || ch == 0 ) { ret = BAD("invalid trailer line"); goto out; }
            c->line++;
            if (++c->trailer_bytes > MAX_TRAILERS) { ret = fail(e, 431, "request_header_fields_too_large", "trailers too large"); goto out; }
            i++;
            break;
        case C_TRAILER_LF:
            if (ch != '\n') { ret = BAD("trailer line without CRLF"); goto out; }
            i++;
            if (c->line == 0) c->state = C_DONE;
            else { c->line = 0; c->state = C_TRAILER; }
            break;
        }
    }
    if (c->state == C_DONE) ret = 1;
out:
    *used = i;
    return ret;
}

/* http_parse.h - a strict HTTP/1.1 request-head parser and chunked-body decoder (RFC 9112), with
 * no I/O, so that they can be fuzzed and unit-tested alone. Anything the RFC lets a server reject,
 * and anything a proxy in front could read differently (request smuggling), is rejected with the
 * status to answer: bare LF or CR, obs-fold, whitespace before a colon, a header line without a
 * colon, control bytes, Content-Length that is not plain digits or that is given twice with
 * different values, Content-Length together with Transfer-Encoding, transfer codings other than
 * "chunked", versions other than HTTP/1.x, oversized heads and too many headers. */
#ifndef TKR_SERVER_HTTP_PARSE_H
#define TKR_SERVER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKR_HTTP_MAX_HEAD 16384     /* request line and headers, bytes */
#define TKR_HTTP_MAX_HEADERS 100
#define TKR_HTTP_MAX_TARGET 8192

/* A parse failure: the status to answer, the OpenAI error code and a message (ASCII). */
typedef struct {
    int status;
    const char *code;
    char message[160];
} tkr_http_perr;

/* A parsed head. The strings point into the caller's buffer, which the parser NUL-terminates in
 * place (it overwrites the CR of each line and the separators). */
typedef struct {
    size_t head_len;                 /* bytes of the head, final CRLF included               */
    const char *method;
    const char *target;              /* as sent (origin-form), query included                */
    int minor;                       /* HTTP/1.<minor>: 0 or 1                               */
    bool keep_alive;                 /* after this request (version default + Connection)    */
    bool chunked;                    /* Transfer-Encoding: chunked                           */
    bool has_length;
    uint64_t content_length;         /* UINT64_MAX when the digits overflow                  */
    bool expect_continue;
    const char *authorization;       /* NULL when absent                                     */
    int n_headers;
} tkr_http_head;

/* Parses buf[0..len). Returns 1 when a whole head was parsed (h filled), 0 when more bytes are
 * needed (nothing changed), -1 on a malformed or refused head (e filled). buf is modified only
 * on 1 and -1. */
int tkr_http_parse_head(char *buf, size_t len, tkr_http_head *h, tkr_http_perr *e);

/* The path of a target (the query removed), percent-decoded into out (cap bytes, NUL-terminated).
 * Returns false on a bad escape, an encoded NUL, or when it does not fit. */
bool tkr_http_decode_path(const char *target, char *out, size_t cap);

/* An incremental chunked-body decoder. */
typedef struct {
    int state;
    uint64_t left;                   /* bytes of the current chunk still to come            */
    size_t line;                     /* length of the size or trailer line so far            */
    int digits;
    size_t trailer_bytes;
} tkr_http_chunked;

void tkr_http_chunked_init(tkr_http_chunked *c);

/* Decodes in[0..n): the data bytes are passed to sink (when not NULL) in order. *used is set to the
 * bytes consumed (the rest, after the final chunk, belongs to the next request). Returns 1 when
 * the body is complete, 0 when more input is needed, -1 on a malformed body (e filled), -2 when
 * sink returned false (the caller's reason). */
typedef bool (*tkr_http_sink)(void *ctx, const char *data, size_t n);
int tkr_http_chunked_feed(tkr_http_chunked *c, const char *in, size_t n, size_t *used,
                          tkr_http_sink sink, void *ctx, tkr_http_perr *e);

#endif

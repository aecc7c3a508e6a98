/* hub_http.c - libcurl calls for the Hub routes (see hub_http.h). Every response size is capped,
 * every transfer has a connect timeout and a stall timeout, and redirects are bounded. */
#define _POSIX_C_SOURCE 200809L
#include "hub/hub_http.h"
#include "util/error.h"
#include "util/sha256.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* snprintf for paths and messages: false when the result did not fit (the caller's buffers are
 * sized for real paths; a longer one is cut, never overflowed). */
static bool pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool pathf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

enum { MAX_INFO_BYTES = 16 << 20 };

typedef struct {
    char *data;
    size_t len, cap;
    bool too_big;
} membuf;

static size_t mem_write(char *p, size_t sz, size_t n, void *ud) {
    membuf *b = ud;
    size_t k = sz * n;
    if (b->len + k + 1 > MAX_INFO_BYTES) {
        b->too_big = true;
        return 0;
    }
    if (b->len + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + k + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* The options every request shares; headers (the token) are returned for the caller to free. */
static struct curl_slist *common(CURL *c, const tkr_hub_params *p, const char *url) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, p->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, p->stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tkr-embed/" TKR_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    struct curl_slist *h = NULL;
    if (p->token[0]) {
        char auth[1100];
        pathf(auth, sizeof auth, "Authorization: Bearer %s", p->token);
        h = curl_slist_append(h, auth);   /* curl drops it on a redirect to another host */
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    return h;
}

/* The Hub's own words on an error: X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound,
 * GatedRepo...) and X-Error-Message. */
typedef struct {
    char code[64], message[256];
} hub_error_hdr;

/* Copies a header value (trimmed, quotes and a weak "W/" prefix removed for etags). */
static void header_value(const char *v, size_t n, char *out, size_t cap, bool etag) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (etag && n >= 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
    if (etag && n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) /* a message is printed: no control characters */
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = ' ';
}

/* Reads X-Error-Code / X-Error-Message from one header line; true when it was one of them. */
static bool error_header(const char *line, size_t k, hub_error_hdr *e) {
    const char *colon = memchr(line, ':', k);
    if (!colon) return false;
    size_t name = (size_t)(colon - line), rest = k - name - 1;
    if (name == 12 && !strncasecmp(line, "x-error-code", 12)) {
        header_value(colon + 1, rest, e->code, sizeof e->code, false);
        return true;
    }
    if (name == 15 && !strncasecmp(line, "x-error-message", 15)) {
        header_value(colon + 1, rest, e->message, sizeof e->message, false);
        return true;
    }
    return false;
}

static size_t error_header_cb(char *line, size_t sz, size_t n, void *ud) {
    error_header(line, sz * n, ud);
    return sz * n;
}

/* A clear message for an HTTP error status of the Hub. The Hub answers an unknown repository
 * with 401 RepoNotFound (so that private ones do not show), a wrong token with 401 "Invalid
 * credentials", a gated one with 403 GatedRepo. */
static tkr_status http_status_error(long code, const char *what, const tkr_hub_params *p, const hub_error_hdr *e,
                                    tkr_error *err) {
    const char *hub = e && e->message[0] ? e->message : "";
    if (e && !strcmp(e->code, "RepoNotFound"))
        return tkr_fail(err, TKR_ERR_IO, "%s: repository not found (HTTP %ld)%s", what, code,
                        p->token[0] ? ", or the token (HF_TOKEN) has no access to it"
                                    : ": check the name; a private or gated one needs a token (set HF_TOKEN)");
    if (e && !strcmp(e->code, "RevisionNotFound"))
        return tkr_fail(err, TKR_ERR_IO, "%s: revision not found (HTTP %ld): check the branch, tag or commit", what,
                        code);
    if (e && !strcmp(e->code, "EntryNotFound"))
        return tkr_fail(err, TKR_ERR_IO, "%s: file not found in the repository (HTTP %ld)", what, code);
    if (code == 401 || code == 403)
        return tkr_fail(err, TKR_ERR_IO, "%s: access denied (HTTP %ld%s%s): %s", what, code, hub[0] ? ", " : "", hub,
                        p->token[0] ? "the token (HF_TOKEN) has no access to this repository"
                                    : "a gated or private repository needs a token: set HF_TOKEN");
    if (code == 404) return tkr_fail(err, TKR_ERR_IO, "%s: not found (HTTP 404): check the name and revision", what);
    return tkr_fail(err, TKR_ERR_IO, "%s: the hub answered HTTP %ld%s%s", what, code, hub[0] ? ": " : "", hub);
}

static tkr_status curl_error(CURLcode rc, const char *what, tkr_error *err) {
    if (rc == CURLE_TOO_MANY_REDIRECTS) return tkr_fail(err, TKR_ERR_IO, "%s: too many redirects (a redirect loop?)", what);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return tkr_fail(err, TKR_ERR_IO, "%s: the transfer stalled or timed out", what);
    return tkr_fail(err, TKR_ERR_IO, "%s: %s", what, curl_easy_strerror(rc));
}

tkr_status tkr_hub_get_info(const tkr_hub_params *p, const char *repo, const char *rev, char **body,
                            tkr_error *err) {
    *body = NULL;
    char url[3072], what[512];
    pathf(url, sizeof url, "%s/api/models/%s/revision/%s", p->endpoint, repo, rev);
    pathf(what, sizeof what, "%s@%s (model info)", repo, rev);
    CURL *c = curl_easy_init();
    if (!c) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory (curl)");
    membuf b = {0};
    hub_error_hdr e = {0};
    struct curl_slist *h = common(c, p, url);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, error_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &e);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)p->max_redirects);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, p->stall_timeout_s + p->connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    tkr_status st = TKR_OK;
    if (b.too_big) st = tkr_fail(err, TKR_ERR_LIMIT, "%s: answer larger than %d bytes", what, MAX_INFO_BYTES);
    else if (rc != CURLE_OK) st = curl_error(rc, what, err);
    else if (code != 200) st = http_status_error(code, what, p, &e, err);
    else if (!b.data) st = tkr_fail(err, TKR_ERR_FORMAT, "%s: empty answer", what);
    if (st != TKR_OK) {
        free(b.data);
        return st;
    }
    *body = b.data;
    return TKR_OK;
}

typedef struct {
    char commit[64], etag[256], linked_etag[256], location[2048];
    int64_t length, linked_size;
    hub_error_hdr error;
} head_fields;

static size_t head_header(char *line, size_t sz, size_t n, void *ud) {
    head_fields *f = ud;
    size_t k = sz * n;
    if (error_header(line, k, &f->error)) return k;
    const char *colon = memchr(line, ':', k);
    if (!colon) return k;
    size_t name = (size_t)(colon - line), rest = k - name - 1;
    char tmp[64];
#define IS(h) (name == strlen(h) && !strncasecmp(line, h, name))
    if (IS("x-repo-commit")) header_value(colon + 1, rest, f->commit, sizeof f->commit, false);
    else if (IS("x-linked-etag")) header_value(colon + 1, rest, f->linked_etag, sizeof f->linked_etag, true);
    else if (IS("etag")) header_value(colon + 1, rest, f->etag, sizeof f->etag, true);
    else if (IS("location")) header_value(colon + 1, rest, f->location, sizeof f->location, false);
    else if (IS("x-linked-size") || IS("content-length")) {
        header_value(colon + 1, rest, tmp, sizeof tmp, false);
        char *end;
        long long v = strtoll(tmp, &end, 10);
        if (end != tmp && *end == '\0' && v >= 0) {
            if (IS("x-linked-size")) f->linked_size = v;
            else f->length = v;
        }
    }
#undef IS
    return k;
}

static bool is_sha256_hex(const char *s) {
    if (strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

tkr_status tkr_hub_head(const tkr_hub_params *p, const char *repo, const char *rev, const char *file,
                        tkr_hub_file_meta *meta, tkr_error *err) {
    char url[4096], what[2048];
    pathf(url, sizeof url, "%s/%s/resolve/%s/%s", p->endpoint, repo, rev, file);
    pathf(what, sizeof what, "%s@%s: %s", repo, rev, file);
    memset(meta, 0, sizeof *meta);
    meta->size = -1;
    for (int hop = 0; hop <= p->max_redirects; hop++) {
        CURL *c = curl_easy_init();
        if (!c) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory (curl)");
        head_fields f;
        memset(&f, 0, sizeof f);
        f.length = f.linked_size = -1;
        struct curl_slist *h = common(c, p, url);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, p->stall_timeout_s + p->connect_timeout_s);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        char *eff = NULL;
        char next[4096] = "";
        if (code >= 300 && code < 400 && curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &eff) == CURLE_OK && eff)
            pathf(next, sizeof next, "%s", eff);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc != CURLE_OK) return curl_error(rc, what, err);
        if (code >= 400) return http_status_error(code, what, p, &f.error, err);
        bool redirect = code >= 300 && code < 400;
        /* an LFS file: the redirect to the storage carries the metadata; a plain redirect
         * without it (a renamed repository) is followed */
        if (redirect && !f.linked_etag[0]) {
            if (!next[0]) return tkr_fail(err, TKR_ERR_IO, "%s: redirect without a location", what);
            pathf(url, sizeof url, "%s", next);
            continue;
        }
        pathf(meta->commit, sizeof meta->commit, "%s", f.commit);
        pathf(meta->etag, sizeof meta->etag, "%s", f.linked_etag[0] ? f.linked_etag : f.etag);
        meta->size = f.linked_size >= 0 ? f.linked_size : f.length;
        meta->lfs = f.linked_etag[0] && is_sha256_hex(f.linked_etag);
        if (!meta->etag[0]) return tkr_fail(err, TKR_ERR_FORMAT, "%s: the hub sent no ETag", what);
        for (const char *q = meta->etag; *q; q++)
            if (*q == '/' || *q == '\\' || (q == meta->etag && *q == '.'))
                return tkr_fail(err, TKR_ERR_FORMAT, "%s: unusable ETag '%.80s'", what, meta->etag);
        return TKR_OK;
    }
    return tkr_fail(err, TKR_ERR_IO, "%s: too many redirects (a redirect loop?)", what);
}

typedef struct {
    int fd;
    int64_t offset;        /* bytes in the file before this transfer */
    int64_t written;
    bool restart_checked;
    long status;
    CURL *c;
    const tkr_hub_params *p;
    const char *name;
    int64_t total;
    double last_draw;
    int bar;
} dl_state;

static size_t dl_write(char *data, size_t sz, size_t n, void *ud) {
    dl_state *s = ud;
    size_t k = sz * n;
    if (!s->restart_checked) {
        s->restart_checked = true;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
        if (s->status >= 400) return 0;
        if (s->status == 200 && s->offset > 0) { /* the server ignored the Range: start over */
            if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0) return 0;
            s->offset = 0;
        }
    }
    const char *c = data;
    size_t left = k;
    while (left) {
        ssize_t w = write(s->fd, c, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        c += w;
        left -= (size_t)w;
    }
    s->written += (int64_t)k;
    return k;
}

static int dl_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)dltotal, (void)ult, (void)uln;
    dl_state *s = ud;
    if (!s->bar) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    if (now - s->last_draw < 0.2) return 0;
    s->last_draw = now;
    double have = (double)(s->offset + dlnow), total = (double)s->total;
    if (total > 0)
        fprintf(stderr, "\r  %-40.40s %7.1f / %.1f MB (%3.0f%%) ", s->name, have / 1e6, total / 1e6, 100.0 * have / total);
    else
        fprintf(stderr, "\r  %-40.40s %7.1f MB ", s->name, have / 1e6);
    return 0;
}

/* sha256 of a whole file, as lowercase hex. */
static tkr_status file_sha256(const char *path, char hex[65], tkr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return tkr_fail(err, TKR_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    tkr_sha256 s;
    tkr_sha256_init(&s);
    static const size_t chunk = 1 << 20;
    unsigned char *buf = malloc(chunk);
    if (!buf) {
        fclose(f);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    size_t r;
    while ((r = fread(buf, 1, chunk, f)) > 0) tkr_sha256_update(&s, buf, r);
    bool bad = ferror(f) != 0;
    free(buf);
    fclose(f);
    if (bad) return tkr_fail(err, TKR_ERR_IO, "cannot read %s", path);
    uint8_t d[32];
    tkr_sha256_final(&s, d);
    tkr_sha256_hex(d, hex);
    return TKR_OK;
}

static bool retryable(CURLcode rc) {
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_HTTP2_STREAM;
}

tkr_status tkr_hub_download(const tkr_hub_params *p, const char *repo, const char *rev, const char *file,
                            const tkr_hub_file_meta *meta, const char *partial, tkr_error *err) {
    char url[4096], what[2048];
    pathf(url, sizeof url, "%s/%s/resolve/%s/%s", p->endpoint, repo, rev, file);
    pathf(what, sizeof what, "%s@%s: %s", repo, rev, file);
    int fd = open(partial, O_RDWR | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return tkr_fail(err, TKR_ERR_IO, "cannot write %s: %s", partial, strerror(errno));
    tkr_status st = TKR_OK;
    for (int attempt = 0;; attempt++) {
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            st = tkr_fail(err, TKR_ERR_IO, "cannot stat %s", partial);
            break;
        }
        int64_t have = (int64_t)sb.st_size;
        if (meta->size >= 0 && have == meta->size) break; /* complete already */
        if (meta->size >= 0 && have > meta->size) {       /* longer than the file: start over */
            if (ftruncate(fd, 0) != 0) {
                st = tkr_fail(err, TKR_ERR_IO, "cannot truncate %s", partial);
                break;
            }
            have = 0;
        }
        CURL *c = curl_easy_init();
        if (!c) {
            st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory (curl)");
            break;
        }
        dl_state s = {fd, have, 0, false, 0, c, p, file, meta->size, 0, p->progress > 0};
        struct curl_slist *h = common(c, p, url);
        hub_error_hdr e = {0};
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, error_header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &e);
        char range[64];
        if (have > 0) {
            pathf(range, sizeof range, "%lld-", (long long)have);
            curl_easy_setopt(c, CURLOPT_RANGE, range);
        }
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)p->max_redirects);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, dl_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
        CURLcode rc = curl_easy_perform(c);
        long code = s.status;
        if (!code) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (s.bar) fputc('\n', stderr);
        if (code == 416 && meta->size >= 0) { /* asked past the end: the file may be complete */
            if (have == meta->size) break;
            if (ftruncate(fd, 0) != 0) break;
            if (attempt < p->max_retries) continue;
        }
        if (code >= 400) {
            st = http_status_error(code, what, p, &e, err);
            break;
        }
        if (rc == CURLE_OK) {
            if (fstat(fd, &sb) == 0 && meta->size >= 0 && (int64_t)sb.st_size < meta->size &&
                attempt < p->max_retries)
                continue; /* the server closed early without an error: resume */
            break;
        }
        if (retryable(rc) && attempt < p->max_retries) {
            fprintf(stderr, "tkr-embed: %s: %s, resuming (attempt %d of %d)\n", what, curl_easy_strerror(rc),
                    attempt + 2, p->max_retries + 1);
            continue;
        }
        st = curl_error(rc, what, err);
        break;
    }
    struct stat sb;
    if (st == TKR_OK && fstat(fd, &sb) == 0 && meta->size >= 0 && (int64_t)sb.st_size != meta->size)
        st = tkr_fail(err, TKR_ERR_IO, "%s: got %lld bytes, the hub announced %lld", what, (long long)sb.st_size,
                      (long long)meta->size);
    close(fd);
    if (st == TKR_OK && meta->lfs) {
        char hex[65];
        st = file_sha256(partial, hex, err);
        if (st == TKR_OK && strcmp(hex, meta->etag) != 0) {
            unlink(partial);
            st = tkr_fail(err, TKR_ERR_FORMAT, "%s: sha256 mismatch (got %.16s..., the hub says %.16s...): "
                          "the download was discarded", what, hex, meta->etag);
        }
    }
    return st;
}

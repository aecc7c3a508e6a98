/* fetch.c - see fetch.h. */
#include "server/fetch.h"
#include "util/error.h"
#include "util/platform.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REDIRECTS 3

tkr_status tkr_fetch_global_init(tkr_error *err) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return tkr_fail(err, TKR_ERR_INTERNAL, "libcurl init failed: %s", curl_easy_strerror(rc));
    return TKR_OK;
}

void tkr_fetch_global_cleanup(void) { curl_global_cleanup(); }

static bool ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

bool tkr_fetch_host_allowed(const tkr_fetch_policy *p, const char *host) {
    if (!host || !*host) return false;
    size_t hl = strlen(host);
    for (int i = 0; i < p->n_allowed_hosts; i++) {
        const char *a = p->allowed_hosts[i];
        if (!strcmp(a, "*")) return true;
        if (a[0] == '*' && a[1] == '.') {
            /* "*.example.com" matches "img.example.com", not "example.com" nor "badexample.com" */
            size_t sl = strlen(a + 1);     /* ".example.com" */
            if (hl > sl && ieq(host + hl - sl, a + 1)) return true;
        } else if (ieq(host, a)) {
            return true;
        }
    }
    return false;
}

typedef struct {
    uint8_t *data;
    size_t len, cap, max;
    bool too_large;
} fetch_buf;

/* Collects the body, stopping the transfer (by returning less than given) at the size cap. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ctx) {
    fetch_buf *b = ctx;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->too_large = true;
        return 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n) cap = cap > b->max / 2 ? b->max : cap * 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

/* Checks the scheme and host of url against the policy; host_out receives the host for
 * messages. */
static tkr_status check_url(const tkr_fetch_policy *p, const char *url, char *host_out,
                            size_t host_cap, tkr_error *err) {
    host_out[0] = '\0';
    CURLU *u = curl_url();
    if (!u) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory parsing a URL");
    char *scheme = NULL, *host = NULL;
    tkr_status st = TKR_OK;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        st = tkr_fail(err, TKR_ERR_INVALID_ARG, "not a valid URL");
    } else {
        snprintf(host_out, host_cap, "%s", host);
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
            st = tkr_fail(err, TKR_ERR_INVALID_ARG, "scheme '%s' is not allowed (http, https)",
                          scheme);
        else if (!tkr_fetch_host_allowed(p, host))
            st = tkr_fail(err, TKR_ERR_INVALID_ARG,
                          "host '%s' is not in the server's remote image allow-list", host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return st;
}

tkr_status tkr_fetch_url(const tkr_fetch_policy *p, const char *url, uint8_t **out,
                         size_t *out_len, tkr_error *err) {
    *out = NULL;
    *out_len = 0;
    CURL *c = curl_easy_init();
    if (!c) return tkr_fail(err, TKR_ERR_NOMEM, "cannot start an HTTP client");
    fetch_buf buf = {NULL, 0, 0, p->max_bytes, false};
    char host[256] = "", next[8192];
    snprintf(next, sizeof next, "%s", url);
    if (strlen(url) >= sizeof next) {
        curl_easy_cleanup(c);
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "URL longer than %zu bytes", sizeof next - 1);
    }
    double deadline = tkr_now_seconds() + p->timeout_s;
    tkr_status st = TKR_OK;
    for (int hop = 0;; hop++) {
        if ((st = check_url(p, next, host, sizeof host, err)) != TKR_OK) break;
        double left = deadline - tkr_now_seconds();
        if (left <= 0) { st = tkr_fail(err, TKR_ERR_LIMIT, "%s: timed out", host); break; }
        buf.len = 0;
        buf.too_large = false;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, next);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   /* redirects are checked by hand */
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left * 1000) + 1);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(left * 1000) + 1);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_bytes);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "tkr-embed/" TKR_VERSION);
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (buf.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            st = tkr_fail(err, TKR_ERR_LIMIT, "%s: image larger than %zu bytes", host, p->max_bytes);
            break;
        }
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            st = tkr_fail(err, TKR_ERR_LIMIT, "%s: timed out after %.3g s", host, p->timeout_s);
            break;
        }
        if (rc != CURLE_OK) {
            st = tkr_fail(err, TKR_ERR_IO, "%s: %s", host, curl_easy_strerror(rc));
            break;
        }
        if (code >= 300 && code < 400) {
            char *loc = NULL;
            curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
            if (!loc) { st = tkr_fail(err, TKR_ERR_IO, "%s: HTTP %ld without a Location", host, code); break; }
            if (hop >= MAX_REDIRECTS) { st = tkr_fail(err, TKR_ERR_IO, "%s: more than %d redirects", host, MAX_REDIRECTS); break; }
            if (strlen(loc) >= sizeof next) { st = tkr_fail(err, TKR_ERR_IO, "%s: redirect URL too long", host); break; }
            snprintf(next, sizeof next, "%s", loc);
            continue;
        }
        if (code != 200) { st = tkr_fail(err, TKR_ERR_IO, "%s: HTTP status %ld", host, code); break; }
        if (buf.len == 0) { st = tkr_fail(err, TKR_ERR_IO, "%s: empty body", host); break; }
        break;
    }
    curl_easy_cleanup(c);
    if (st != TKR_OK) {
        free(buf.data);
        return st;
    }
    *out = buf.data;
    *out_len = buf.len;
    return TKR_OK;
}

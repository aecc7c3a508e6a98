/* image_source.c - see image_source.h. */
#define _XOPEN_SOURCE 700   /* realpath */
#include "server/image_source.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/platform.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static bool has_prefix_ci(const char *s, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* data:[<mediatype>][;param=value]*;base64,<data> (RFC 2397); only the base64 form carries
 * binary images sensibly, so the percent-encoded form is refused. */
static tkr_status load_data_uri(const tkr_image_source_policy *p, const char *ref, size_t len,
                                uint8_t **out, size_t *out_len, tkr_error *err) {
    const char *comma = memchr(ref, ',', len);
    if (!comma) return tkr_fail(err, TKR_ERR_INVALID_ARG, "data: URI without a ',' before the payload");
    size_t meta_len = (size_t)(comma - ref);
    if (meta_len < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "data: URI is not base64 (expected 'data:image/...;base64,...')");
    const char *payload = comma + 1;
    size_t plen = len - meta_len - 1;
    if (plen == 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "data: URI has an empty payload");
    tkr_status st = tkr_base64_decode(payload, plen, p->max_bytes, out, out_len, err);
    if (st == TKR_ERR_LIMIT)
        return tkr_fail(err, TKR_ERR_LIMIT, "image larger than %zu bytes", p->max_bytes);
    if (st != TKR_OK) tkr_error_prefix(err, "data: URI payload: ");
    return st;
}

/* Resolves the path (symlinks and '..' included) and requires it to lie inside the image
 * directory, so that a client cannot read /etc/passwd through file://../../etc/passwd. */
static tkr_status load_file(const tkr_image_source_policy *p, const char *ref, size_t len,
                            uint8_t **out, size_t *out_len, tkr_error *err) {
    if (!p->image_dir)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "file:// images are disabled (the server was started without --image-dir)");
    const char *path = ref + 7;
    size_t plen = len - 7;
    if (plen == 0 || plen >= PATH_MAX || memchr(path, '\0', plen))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "file:// URL has an empty or bad path");
    char root[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
    if (!realpath(p->image_dir, root))
        return tkr_fail(err, TKR_ERR_IO, "the server's image directory cannot be resolved");
    int n;
    if (path[0] == '/') n = snprintf(joined, sizeof joined, "%.*s", (int)plen, path);
    else n = snprintf(joined, sizeof joined, "%s/%.*s", root, (int)plen, path);
    if (n < 0 || (size_t)n >= sizeof joined)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "file:// path too long");
    /* "missing" and "outside" get the same answer: a client must not learn which files exist
     * elsewhere on the machine */
    size_t rl = strlen(root);
    bool inside = realpath(joined, real) && !strncmp(real, root, rl) &&
                  (real[rl] == '/' || (rl == 1 && root[0] == '/'));
    if (!inside)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "file:// image '%.200s' not found in the server's image directory", path);
    struct stat sb;
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode))   /* no directories, FIFOs, devices */
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "file:// image '%.200s' is not a regular file",
                        path);
    char *data = NULL;
    size_t dlen = 0;
    tkr_status st = tkr_read_file(real, p->max_bytes, &data, &dlen, err);
    if (st != TKR_OK) {
        /* tkr_read_file's message names the resolved path; keep it relative for the client */
        if (st == TKR_ERR_LIMIT)
            return tkr_fail(err, TKR_ERR_LIMIT, "file:// image '%.200s' is larger than %zu bytes",
                            path, p->max_bytes);
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "file:// image '%.200s' cannot be read", path);
    }
    *out = (uint8_t *)data;
    *out_len = dlen;
    return TKR_OK;
}

tkr_status tkr_image_source_load(const tkr_image_source_policy *p, const char *ref, size_t len,
                                 uint8_t **out, size_t *out_len, tkr_error *err) {
    *out = NULL;
    *out_len = 0;
    if (len == 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "empty image reference");
    if (has_prefix_ci(ref, len, "data:")) return load_data_uri(p, ref, len, out, out_len, err);
    if (has_prefix_ci(ref, len, "http://") || has_prefix_ci(ref, len, "https://")) {
        if (!p->allow_remote)
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "remote image URLs are disabled on this server (send the image as a "
                            "data: URI or base64)");
        if (memchr(ref, '\0', len) || len > 8000)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "bad or overlong image URL");
        char *url = malloc(len + 1);
        if (!url) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        memcpy(url, ref, len);
        url[len] = '\0';
        tkr_status st = tkr_fetch_url(&p->fetch, url, out, out_len, err);
        free(url);
        return st;
    }
    if (has_prefix_ci(ref, len, "file://")) return load_file(p, ref, len, out, out_len, err);
    tkr_status st = tkr_base64_decode(ref, len, p->max_bytes, out, out_len, err);
    if (st == TKR_ERR_LIMIT)
        return tkr_fail(err, TKR_ERR_LIMIT, "image larger than %zu bytes", p->max_bytes);
    if (st != TKR_OK)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "image is not a data: URI, an http(s) or file:// URL, or valid base64 (%s)",
                        err ? err->message : "");
    return TKR_OK;
}

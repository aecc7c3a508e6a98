/* pages.c - page ranges ("1-3,7", "2-", "4") to 1-based page numbers, in the listed order. */
#include "media/media.h"
#include "util/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Reads a page number (1..n) at *s; returns 0 when there is none. */
static long read_num(const char **s) {
    while (**s == ' ') (*s)++;
    if (!isdigit((unsigned char)**s)) return 0;
    long v = 0;
    while (isdigit((unsigned char)**s)) {
        if (v < 100000000) v = v * 10 + (**s - '0');
        (*s)++;
    }
    while (**s == ' ') (*s)++;
    return v;
}

tkr_status tkr_pdf_parse_pages(const char *spec, int n_pages, int max_pages, int **pages, int *n,
                               tkr_error *err) {
    *pages = NULL;
    *n = 0;
    if (n_pages <= 0) return tkr_fail(err, TKR_ERR_FORMAT, "PDF: the document has no pages");
    int all = !spec || !*spec;
    if (all && n_pages > max_pages)
        return tkr_fail(err, TKR_ERR_LIMIT,
                        "PDF: the document has %d pages, more than the limit of %d; select pages "
                        "with a range such as \"1-%d\"", n_pages, max_pages, max_pages);
    int cap = all ? n_pages : max_pages;
    int *out = malloc(sizeof(int) * (size_t)cap);
    if (!out) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    int k = 0;
    if (all) {
        for (int p = 1; p <= n_pages; p++) out[k++] = p;
    } else {
        const char *s = spec;
        for (;;) {
            long a = read_num(&s), b = a;
            if (a == 0) goto bad;
            if (*s == '-') {
                s++;
                b = read_num(&s);
                if (b == 0) {
                    while (*s == ' ') s++;
                    if (*s && *s != ',') goto bad;
                    b = n_pages;     /* "5-": to the last page */
                }
            }
            if (b < a) goto bad;
            if (a > n_pages || b > n_pages) {
                free(out);
                return tkr_fail(err, TKR_ERR_INVALID_ARG, "PDF: page %ld is past the last page (%d)",
                                b > n_pages ? b : a, n_pages);
            }
            for (long p = a; p <= b; p++) {
                if (k == cap) {
                    free(out);
                    return tkr_fail(err, TKR_ERR_LIMIT, "PDF: more than %d pages selected", max_pages);
                }
                out[k++] = (int)p;
            }
            if (*s == '\0') break;
            if (*s != ',') goto bad;
            s++;
        }
    }
    *pages = out;
    *n = k;
    return TKR_OK;
bad:
    free(out);
    return tkr_fail(err, TKR_ERR_INVALID_ARG,
                    "PDF: bad page range \"%.60s\" (expected e.g. \"1-3,7\", pages from 1)", spec);
}

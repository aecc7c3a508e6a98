/* fetch.h - downloads an image from an http(s) URL for a request item, under the operator's
 * rules: the host must be on the allow-list (also for every redirect, each re-checked; at most
 * 3), the whole transfer has a timeout, and the body a size cap. Only http and https. Built on
 * libcurl; call tkr_fetch_global_init() once from the process entry point before threads start. */
#ifndef TKR_SERVER_FETCH_H
#define TKR_SERVER_FETCH_H

#include "tkr_embed.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *const *allowed_hosts;   /* "example.com", "*.example.com", "*" */
    int n_allowed_hosts;
    double timeout_s;             /* whole transfer, redirects included */
    size_t max_bytes;
} tkr_fetch_policy;

tkr_status tkr_fetch_global_init(tkr_error *err);
void tkr_fetch_global_cleanup(void);

/* True when host (lower-case or not) matches an allow-list entry. */
bool tkr_fetch_host_allowed(const tkr_fetch_policy *policy, const char *host);

/* GETs url into a malloc'ed buffer. Errors name the URL's host and the reason (not allowed,
 * timeout, too large, HTTP status). */
tkr_status tkr_fetch_url(const tkr_fetch_policy *policy, const char *url, uint8_t **out,
                         size_t *out_len, tkr_error *err);

#endif

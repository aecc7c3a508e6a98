/* hub_http.h - the Hub's HTTP routes (internal to src/hub): the model-info API, a file's
 * metadata from the resolve route's headers, and a resumable, verified download. */
#ifndef TKR_HUB_HTTP_H
#define TKR_HUB_HTTP_H

#include "hub/hub.h"

#include <stdint.h>

/* GET {endpoint}/api/models/{repo}/revision/{rev}: the body (malloc'ed, NUL-terminated). */
tkr_status tkr_hub_get_info(const tkr_hub_params *p, const char *repo, const char *rev, char **body,
                            tkr_error *err);

typedef struct {
    char commit[64];        /* X-Repo-Commit                                   */
    char etag[256];         /* X-Linked-Etag (LFS: sha256), else ETag; unquoted */
    int64_t size;           /* X-Linked-Size, else Content-Length; -1 unknown   */
    bool lfs;               /* the etag is a sha256 to verify                   */
} tkr_hub_file_meta;

/* HEAD {endpoint}/{repo}/resolve/{rev}/{file} (redirects are not followed: the Hub answers LFS
 * files with a redirect whose own headers carry the metadata). */
tkr_status tkr_hub_head(const tkr_hub_params *p, const char *repo, const char *rev, const char *file,
                        tkr_hub_file_meta *meta, tkr_error *err);

/* Downloads the file into `partial` (appending to what is there, with a Range request), retrying
 * dropped transfers, following at most max_redirects redirects; checks the size and, for LFS
 * files, the sha256. On a hash mismatch the partial file is removed. */
tkr_status tkr_hub_download(const tkr_hub_params *p, const char *repo, const char *rev, const char *file,
                            const tkr_hub_file_meta *meta, const char *partial, tkr_error *err);

#endif

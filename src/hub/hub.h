/* hub.h - models by name from the Hugging Face Hub, in the cache every other tool shares.
 *
 * A spec "org/name[@revision][:QUANT]" becomes a local path inside the standard cache layout
 * (the one huggingface_hub reads and writes):
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
 *     models--org--name/
 *       blobs/<etag>                  file contents, named by their ETag (sha256 for LFS files)
 *       blobs/<etag>.incomplete       a download in progress (resumed with a Range request)
 *       snapshots/<commit>/<file>     relative symlinks to ../../blobs/<etag>
 *       refs/<revision>               the commit a branch or tag pointed to
 *     .locks/models--org--name/<etag>.lock   one process downloads a blob at a time
 *
 * Only the files the model needs are fetched: config, tokenizer files and safetensors shards of a
 * HF checkpoint; or, with :QUANT, the one GGUF whose name holds QUANT plus its mmproj. LFS files
 * are verified against their sha256. Environment: HF_ENDPOINT (mirrors), HF_TOKEN (else the token
 * file $HF_TOKEN_PATH or $HF_HOME/token), HF_HUB_OFFLINE=1 (cache only), HF_HOME, HF_HUB_CACHE. */
#ifndef TKR_HUB_H
#define TKR_HUB_H

#include "tkr_embed.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char endpoint[1024];       /* no trailing '/'                                    */
    char cache_dir[4096];
    char token[1024];          /* "" = none                                          */
    bool offline;
    int progress;              /* -1: when stderr is a terminal; 0 off; 1 on        */
    long connect_timeout_s;    /* default 10                                        */
    long stall_timeout_s;      /* a transfer below 1 byte/s this long fails; 30     */
    int max_redirects;         /* default 10                                        */
    int max_retries;           /* dropped transfers resumed with Range; default 5   */
    long lock_timeout_s;       /* waiting for another process's download; 600       */
} tkr_hub_params;

/* Defaults, then the environment variables above. */
void tkr_hub_params_init(tkr_hub_params *p);

/* True when s looks like "org/name[@rev][:quant]" and is not an existing local path. */
bool tkr_hub_is_spec(const char *s);

typedef struct {
    char path[4096];           /* the snapshot directory, or the model GGUF inside it */
    char mmproj[4096];         /* the mmproj GGUF with :QUANT, else ""               */
    char commit[64];
    int files_downloaded;      /* 0 when everything came from the cache              */
    char repo[256];            /* "org/name" (tkr_hub_resolve_model: "" for a path)  */
} tkr_hub_result;

/* Resolves spec to local files, downloading what the cache lacks (unless offline). */
tkr_status tkr_hub_fetch(const tkr_hub_params *p, const char *spec, tkr_hub_result *out,
                         tkr_error *err);

/* For -m: a local path is used as it is (out->path = path); a Hub name is fetched with the
 * environment's settings (progress on a terminal). out->repo gets "org/name" or "". */
tkr_status tkr_hub_resolve_model(const char *path_or_spec, tkr_hub_result *out, tkr_error *err);

#endif

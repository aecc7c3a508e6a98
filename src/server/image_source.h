/* image_source.h - turns the image reference a client sends into encoded image bytes.
 *
 * Accepted forms, checked in this order:
 *   data:[<type>][;...];base64,<payload>   decoded here (any media type; the engine sniffs)
 *   http://... https://...                 fetched only when the operator enabled remote images
 *                                          (allow-list, timeout and size cap: fetch.h)
 *   file://<path>                          read only when the operator named an image directory:
 *                                          relative paths are taken below it, absolute ones must
 *                                          resolve (symlinks included) inside it
 *   anything else                          raw base64 of the image file
 * Every path has a size cap (max_bytes) applied before or while reading. */
#ifndef TKR_SERVER_IMAGE_SOURCE_H
#define TKR_SERVER_IMAGE_SOURCE_H

#include "server/fetch.h"
#include "tkr_embed.h"

typedef struct {
    size_t max_bytes;              /* encoded bytes of one image                       */
    const char *image_dir;         /* file:// root (resolved with realpath); NULL = off */
    bool allow_remote;
    tkr_fetch_policy fetch;
} tkr_image_source_policy;

/* Loads ref[0..len) into *out (malloc'ed, *out_len bytes). Errors say what was wrong, in words a
 * client can act on, without echoing large payloads. */
tkr_status tkr_image_source_load(const tkr_image_source_policy *policy, const char *ref,
                                 size_t len, uint8_t **out, size_t *out_len, tkr_error *err);

#endif

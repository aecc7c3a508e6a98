/* fuzz_request.c - an HTTP request body to items, as POST /v1/embeddings does it: JSON, the input
 * forms (strings, token arrays, item objects, content parts), base64 and data: URIs of images
 * (probed for format and size), limits; then prepare and the error body, which must be valid
 * JSON in UTF-8. The engine is the deterministic stand-in of the server tests. */
#include "fake_engine.h"
#include "server/api_embeddings.h"
#include "server/config.h"

#include <jansson.h>
#include <stdint.h>

static fake_engine fake;
static tkr_engine eng;
static tkr_server_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fake_engine_init(&fake, 8);
    eng = fake_engine_table(&fake);
    cfg = tkr_server_config_default();
    cfg.max_items_per_request = 64;
    cfg.max_tokens_per_item = 256;
    cfg.max_request_tokens = 4096;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tkr_image_source_policy images;
    memset(&images, 0, sizeof images);
    images.max_bytes = (size_t)1 << 20;
    tkr_api_request req;
    tkr_api_error e;
    tkr_status st = tkr_api_parse_embeddings(&cfg, &eng, &images, (const char *)data, size, &req, &e);
    if (st == TKR_OK) {
        if (tkr_api_prepare(&eng, &req, &e) != TKR_OK) st = TKR_ERR_INVALID_ARG;
        tkr_api_request_free(&eng, &req);
    }
    if (st != TKR_OK) {
        sbuf b;
        sbuf_init(&b, 0);
        tkr_api_write_error(&e, &b);
        json_error_t je;
        json_t *j = sbuf_ok(&b) ? json_loadb(b.data, b.len, 0, &je) : NULL;
        if (sbuf_ok(&b) && !j) abort();   /* the error body must parse (jansson checks UTF-8) */
        json_decref(j);
        sbuf_free(&b);
    }
    return 0;
}

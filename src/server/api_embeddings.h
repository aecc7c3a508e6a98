/* api_embeddings.h - the OpenAI /v1/embeddings contract: request JSON -> validated engine items,
 * engine vectors -> response JSON, and the OpenAI error body.
 *
 * Request (OpenAI fields plus extensions):
 *   input            string | string[] | int[] | int[][] | item objects (mixable with strings)
 *                    item object: {"content":[{"type":"text","text":..},
 *                                             {"type":"image_url","image_url":{"url":..} | ".."}],
 *                                  "instruction"?: ..}
 *                             or  {"text"?: .., "image"?: ".." | [".."], "instruction"?: ..}
 *                    more content parts (docs/media.md):
 *                      {"type":"video_url","video_url":{"url": data URI, "fps"?, "max_frames"?,
 *                       "num_frames"?}}: the sampled frames become images of the item
 *                      {"type":"document","document":{"url": data URI, "pages"?: "1-3,7", "dpi"?}}
 *                      or {"type":"file","file":{"file_data": data URI, "pages"?, "dpi"?}}: a PDF;
 *                       each selected page is an item of its own (with the item's text), so the
 *                       response has one entry per page, in order, each with "page" and
 *                       "input_index"; "index" is then the position in "data"
 *   model            string, required (any value; the response names the served model)
 *   encoding_format  "float" (default) | "base64" (little-endian float32)
 *   dimensions       1..dim: keep the first N values, then L2-normalise again
 *   user             string, ignored
 *   instruction      extension: the Ops-MM system text for every item (items may override it)
 *   truncate         extension: true = cut an over-long text to the token limit instead of 400
 * Every error names the offending field in "param" ("input[2].content[0].image_url"). */
#ifndef TKR_SERVER_API_EMBEDDINGS_H
#define TKR_SERVER_API_EMBEDDINGS_H

#include "server/config.h"
#include "server/engine.h"
#include "server/image_source.h"
#include "server/sbuf.h"

#include <jansson.h>

/* One item as the engine will see it, with the memory it owns. */
typedef struct {
    tkr_item item;             /* text/token_ids/images/instruction for the engine        */
    char *text_owned;          /* joined text parts (item.text points here or into JSON)  */
    int32_t *ids_owned;        /* token ids sent by the client                            */
    tkr_image_input *images;   /* n_images entries; data points into image_data          */
    uint8_t **image_data;      /* decoded image bytes, owned                              */
    int est_tokens;            /* estimated prompt tokens, template and images included   */
    int image_tokens;          /* estimated image tokens                                  */
    bool truncated;            /* over the limit: item.truncate is set, the engine cuts   */
    void *prepared;            /* engine->prepare output, NULL without that hook          */
    tkr_video_input video;     /* a video_url part (item.video points here)               */
    uint8_t *video_data;       /* its decoded bytes, owned                                */
    int n_video_frames;        /* frames its sample gives (probed before the work)        */
    tkr_media_frames pdf;      /* a document part's rendered pages, before expansion      */
    uint8_t *page_rgb;         /* a PDF page item: its pixels, owned                      */
    int page;                  /* a PDF page item: its page number (1-based), else 0      */
    int input_index;           /* the element of "input" this item came from              */
} tkr_api_item;

typedef struct {
    json_t *root;              /* the parsed body: item strings point into it             */
    tkr_api_item *items;
    int n_items;
    int dimensions;            /* 0 = the model's full size                               */
    bool single_input;         /* input was one string or one token array                 */
    bool base64;
    bool truncate;
    long est_tokens;           /* sum over items                                          */
    int n_images;
    int n_truncated;
    bool has_pages;            /* a document part made one item per page                  */
} tkr_api_request;

/* An error ready to be sent: HTTP status plus the OpenAI error object's fields. */
typedef struct {
    int status;
    const char *type;          /* "invalid_request_error", "authentication_error", ...    */
    const char *code;          /* machine-readable code or NULL                           */
    char param[128];           /* the offending field or "" (sent as null)                */
    char message[TKR_ERROR_MESSAGE_MAX + 256];
} tkr_api_error;

/* Fills e and returns e->status. */
int tkr_api_error_set(tkr_api_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Parses and validates a request body. Loads images (image_source.h), counts tokens with the
 * engine's hooks, applies the limits of cfg (items, tokens per item and per request, images),
 * marks over-long items for truncation (item.truncate) when the request asks for it. On
 * failure req is left empty and e is filled (400, or 500 when memory ran out). */
tkr_status tkr_api_parse_embeddings(const tkr_server_config *cfg, const tkr_engine *engine,
                                    const tkr_image_source_policy *images, const char *body,
                                    size_t len, tkr_api_request *req, tkr_api_error *e);

/* Runs engine->prepare on every item (no-op without the hook). */
tkr_status tkr_api_prepare(const tkr_engine *engine, tkr_api_request *req, tkr_api_error *e);

void tkr_api_request_free(const tkr_engine *engine, tkr_api_request *req);

/* Checks the per-item results of the engine: the first failed item becomes e (400 naming
 * input[i], or 500 for internal/memory failures). Returns TKR_OK when every item worked. */
tkr_status tkr_api_check_results(const tkr_api_request *req, const tkr_result *results,
                                 tkr_api_error *e);

/* Keeps the first n_keep of dim values and L2-normalises them (in doubles, fixed order, so the
 * result depends only on the input vector). n_keep == dim copies unchanged. */
void tkr_api_reduce_dimensions(const float *in, int dim, int n_keep, float *out);

/* Builds the response body. vectors: n_items * dim floats from the engine. */
bool tkr_api_write_response(const tkr_api_request *req, const char *model_name, int dim,
                            const float *vectors, const tkr_result *results, sbuf *out);

/* {"error":{"message":..,"type":..,"param":..|null,"code":..|null}} */
void tkr_api_write_error(const tkr_api_error *e, sbuf *out);

#endif

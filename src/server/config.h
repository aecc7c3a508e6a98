/* config.h - every knob of the server, its default, and the command-line parser for
 * `tkr-embed serve`. All limits live here so that they are explicit, documented in one usage
 * text, and testable. */
#ifndef TKR_SERVER_CONFIG_H
#define TKR_SERVER_CONFIG_H

#include "tkr_embed.h"

#include <stdio.h>

typedef struct {
    /* model */
    const char *model_dir;           /* -m; required                                        */
    const char *mmproj;              /* --mmproj: a GGUF model's vision tower; NULL = none   */
    const char *model_name;          /* reported id; NULL = the engine's                    */
    int n_threads;                   /* compute threads; 0 = all cores                      */
    const char *device;              /* "cpu", "cuda", "cuda:N"; NULL = GPU if present       */
    const char *precision;           /* GPU: "bf16" (NULL) or "fp32"                        */
    bool fast_bf16;                  /* --fast-bf16: bf16 activations for BF16 weights       */
    bool release_vision_weights;     /* --release-vision-weights: drop the vision tower's
                                        pages after each image pass (small hosts)           */
    bool warmup, no_warmup;          /* --warmup / --no-warmup: one batch at the text budget
                                        before ready; default: on a GPU only (engine_model.c) */

    /* network */
    const char *host;                /* bind address; default 127.0.0.1                     */
    int port;                        /* 0 = any free port (logged)                          */
    int max_connections;             /* open connections (one thread each)                  */
    int max_connections_per_ip;      /* 0 = no per-IP cap                                   */
    int idle_timeout_s;              /* a connection idle this long is closed               */
    double read_timeout_s;           /* most time to receive one request body               */
    double header_timeout_s;         /* most time to receive a request's head (slowloris)   */
    int malloc_arenas;               /* glibc M_ARENA_MAX; 0 = the C library's default      */
    double request_timeout_s;        /* deadline from request received to response          */
    double drain_timeout_s;          /* on SIGTERM: how long requests in flight may take    */

    /* auth: keys are owned (strdup'ed) */
    char **api_keys;
    int n_api_keys;

    /* request limits */
    size_t max_body_bytes;
    size_t max_inflight_bytes;       /* request bodies held at once, all connections        */
    int max_items_per_request;
    int max_tokens_per_item;         /* prompt tokens, template and image tokens included   */
    long max_request_tokens;         /* summed over the items of one request                */
    int max_images_per_item;
    size_t max_image_bytes;          /* encoded bytes of one image                          */
    unsigned long long max_image_pixels; /* width * height, read from the image header      */
    int max_video_frames;            /* frames of one video item (caps max_frames/num_frames) */
    int max_pdf_pages;               /* pages of one PDF part (one result per page)         */
    double media_timeout_s;          /* wall clock of one video decode or PDF render        */
    int min_image_tokens;            /* the model's resize range (Ops-MM: 256..1280)        */
    int max_image_tokens;

    /* batching and overload */
    int max_batch_tokens;            /* estimated prompt tokens per model call              */
    int max_batch_image_tokens;      /* image tokens per model call                          */
    int max_batch_items;
    int max_queue_items;             /* items waiting; a request that does not fit gets 429 */

    /* image sources */
    const char *image_dir;           /* file:// images allowed below it; NULL = none        */
    bool allow_remote_images;        /* http(s) URLs; off by default                         */
    char **remote_hosts;             /* owned; the allow-list ("*.x.com", "*")              */
    int n_remote_hosts;
    double remote_timeout_s;

    bool quiet;                      /* no per-request log lines                             */
    bool no_ui;                      /* --no-ui: no playground page at /ui                   */
} tkr_server_config;

/* The defaults (documented in the usage text). Owns nothing yet. */
tkr_server_config tkr_server_config_default(void);

/* Parses `serve` options (argv[0] is the sub-command name and is skipped). Options are
 * "--name value" or "--name=value". *help is set when -h/--help was given (nothing else is
 * checked then). On error the message names the option and the problem. */
tkr_status tkr_server_config_parse(tkr_server_config *cfg, int argc, char **argv, bool *help,
                                   tkr_error *err);

/* Cross-checks the values (ranges, combinations). Called by parse; exposed for callers that fill
 * the struct themselves (tests). */
tkr_status tkr_server_config_validate(const tkr_server_config *cfg, tkr_error *err);

/* Adds an API key (copied). */
tkr_status tkr_server_config_add_key(tkr_server_config *cfg, const char *key, size_t len,
                                     tkr_error *err);

/* Adds a host to the remote-image allow-list (copied, lower-cased). */
tkr_status tkr_server_config_add_remote_host(tkr_server_config *cfg, const char *host, size_t len,
                                             tkr_error *err);

void tkr_server_config_free(tkr_server_config *cfg);

void tkr_server_usage(FILE *f);

#endif

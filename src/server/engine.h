/* engine.h - the small interface between the HTTP server and whatever computes embeddings.
 *
 * The server never calls the model API directly: it talks to a tkr_engine, a table of function
 * pointers over an opaque impl. engine_model.c adapts the real model (tkr_model_load/tkr_embed);
 * the tests plug in a fake engine with deterministic vectors, so every HTTP behaviour (batching,
 * limits, errors, shutdown) is testable without model weights.
 *
 * Threads: embed is called by one thread at a time (the batcher). tokenize, template_tokens,
 * image_tokens and prepare are called from request threads, concurrently with embed and with each
 * other, and must be thread-safe. That is how tokenization and image work overlap model compute.
 */
#ifndef TKR_SERVER_ENGINE_H
#define TKR_SERVER_ENGINE_H

#include "tkr_embed.h"

typedef struct tkr_engine {
    void *impl;
    int dim;                  /* embedding size                                           */
    const char *model_name;   /* id reported by /v1/models and in responses              */
    bool has_vision;          /* false: items with images are refused with a 400          */
    int32_t vocab_size;       /* token ids must be in [0, vocab_size); 0 = not checked    */

    /* Required. Embeds n items into out[n * dim] (L2-normalised, item order) and results[n].
     * prepared[i] is what prepare() returned for item i (all NULL without a prepare hook).
     * A failed item gets its own status in results[i]; the return value is for the call. */
    tkr_status (*embed)(void *impl, const tkr_item *items, void *const *prepared, int n, float *out,
                        tkr_result *results, tkr_error *err);

    /* Optional. The ids of an item's own text (no prompt template); *ids is malloc'ed (free()).
     * Without it the server counts one token per byte, an upper bound for byte-level BPE. */
    tkr_status (*tokenize)(void *impl, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                           tkr_error *err);

    /* Optional. Tokens the prompt adds around an item's content: the system text with this
     * instruction (NULL = default), role markers and the markers of n_images images, not counting
     * the images' own tokens. Without it the server uses 0. */
    tkr_status (*template_tokens)(void *impl, const char *instruction, int n_images, int *n_tokens,
                                  tkr_error *err);

    /* Optional. How many tokens an image of width x height pixels becomes (the engine's resize
     * policy). Without it the server uses its configured max_image_tokens. */
    int (*image_tokens)(void *impl, int width, int height);

    /* Optional. Per-item work that does not need the compute scratch (image decoding and
     * resizing), run on the request's thread before the item is queued. release() frees it. */
    tkr_status (*prepare)(void *impl, const tkr_item *item, void **prepared, tkr_error *err);
    void (*release)(void *impl, void *prepared);

    /* Optional: batch budgets sized for the engine's device (0 = none: the server's defaults),
     * used where the options leave them unset. */
    int batch_tokens, batch_image_tokens, batch_items;

    /* Optional. The compute device's name ("" on the CPU: keep NULL then) and its memory in use,
     * for /metrics; called from any thread, concurrently with embed. */
    const char *device_name;
    void (*device_memory)(void *impl, tkr_device_memory *out);

    /* Optional: what the engine ran before it was handed over (the warm-up), for the log; "" =
     * nothing. */
    char warmup[160];

    /* Optional. Frees impl. */
    void (*destroy)(void *impl);
} tkr_engine;

/* Calls destroy (when set) and clears the table. */
void tkr_engine_close(tkr_engine *engine);

#endif

/* prepare_ahead.h - tkr_prepare of one batch of items on background threads, while the calling
 * thread embeds the batch before it (tkr_prepare may run while the model computes: the server
 * does the same from its request threads). The JSONL loop of `tkr-embed embed` uses it so that
 * on a GPU the next 64 images are decoded and resized during the current batch's pass. */
#ifndef TKR_CLI_PREPARE_AHEAD_H
#define TKR_CLI_PREPARE_AHEAD_H

#include "tkr_embed.h"

enum { PREP_MSG_MAX = TKR_ERROR_MESSAGE_MAX }; /* a whole tkr_error message */

/* n items; valid[i] == 0 skips item i. Results: prep[i] (NULL on failure), and on failure the
 * message in msg[i]. The arrays stay the caller's and must live until prepare_ahead_wait. */
typedef struct {
    const tkr_item *items;
    const int *valid;
    int n;
    tkr_prepared **prep;
    char (*msg)[PREP_MSG_MAX];
} prep_batch;

typedef struct prepare_ahead prepare_ahead;

/* Starts preparing b on up to n_threads threads; NULL when nothing could be started (out of
 * memory or no thread: b has then been prepared on the calling thread). */
prepare_ahead *prepare_ahead_start(const tkr_model *m, prep_batch b, int n_threads);
/* Waits for the batch of p (NULL: nothing to wait for) and frees p. */
void prepare_ahead_wait(prepare_ahead *p);

#endif

/* batcher.h - the queue between request threads and the model, and the one thread that calls
 * engine->embed.
 *
 * Request threads parse, tokenize and load images (in parallel with compute), then submit a
 * job: n items with their estimated token and image-token costs. The batcher thread takes items
 * in FIFO order, across jobs, into a batch bounded by max_batch_items, max_batch_tokens and
 * max_batch_image_tokens (a single item over a budget still runs, alone), calls the engine, and
 * scatters vectors and results back into each job. A vector depends only on its item: the engine
 * guarantees it, and the batcher only copies.
 *
 * Overload: at most max_queue_items items wait; a job that does not fit is refused at once
 * (the server answers 429). Cancel (client gone, deadline passed) takes a job's waiting items out
 * of the queue and waits for any of its items that are being computed, after which the job's
 * memory may be freed. */
#ifndef TKR_SERVER_BATCHER_H
#define TKR_SERVER_BATCHER_H

#include "server/engine.h"
#include "server/metrics.h"

#include <pthread.h>

typedef struct {
    int max_batch_items;
    int max_batch_tokens;
    int max_batch_image_tokens;
    int max_queue_items;
} tkr_batcher_params;

typedef struct tkr_batch_job {
    /* set by the caller before submit */
    const tkr_item *items;          /* n_items                                           */
    void *const *prepared;          /* n_items (may be NULL: none prepared)             */
    const int *tokens;              /* n_items estimated prompt tokens                   */
    const int *image_tokens;        /* n_items estimated image tokens                    */
    int n_items;
    float *vectors;                 /* out: n_items * dim                                */
    tkr_result *results;            /* out: n_items                                      */

    /* private to the batcher */
    struct tkr_batch_job *prev, *next;
    int next_item;                  /* first item not yet taken into a batch             */
    int n_done;                     /* items whose vector and result are written         */
    int n_computing;                /* items inside the model call now                   */
    bool queued, cancelled;
    bool aborted;                   /* out: shut down before all items ran             */
    bool call_failed;               /* out: a model call failed as a whole (500)       */
    double t_submit;
    pthread_cond_t done;
} tkr_batch_job;

typedef struct tkr_batcher tkr_batcher;

/* Starts the batcher thread. engine and metrics (may be NULL) must outlive the batcher. */
tkr_status tkr_batcher_create(const tkr_batcher_params *params, const tkr_engine *engine,
                              tkr_metrics *metrics, tkr_batcher **out, tkr_error *err);

/* Refuses new jobs from now on; the thread then finishes every queued item (drain = true) or
 * fails them with TKR_ERR_UNSUPPORTED "server shutting down" (drain = false) and exits. Waiting
 * callers wake up as their jobs complete. Does not block. */
void tkr_batcher_stop(tkr_batcher *b, bool drain);

/* Stops (draining, unless tkr_batcher_stop said otherwise), joins the thread and frees. No
 * caller may still be inside submit/wait/cancel. */
void tkr_batcher_free(tkr_batcher *b);

/* Prepares a job's private state; every initialised job is destroyed once. */
tkr_status tkr_batch_job_init(tkr_batch_job *job, tkr_error *err);
void tkr_batch_job_destroy(tkr_batch_job *job);

/* Queues the job. TKR_ERR_LIMIT: the queue has no room for its items (429);
 * TKR_ERR_UNSUPPORTED: the batcher is stopping (503). */
tkr_status tkr_batcher_submit(tkr_batcher *b, tkr_batch_job *job, tkr_error *err);

/* Waits until every item of the job is done or the monotonic clock (tkr_now_seconds) reaches
 * until. Returns true when done. */
bool tkr_batcher_wait(tkr_batcher *b, tkr_batch_job *job, double until);

/* Takes the job's waiting items out of the queue and waits for those being computed. */
void tkr_batcher_cancel(tkr_batcher *b, tkr_batch_job *job);

/* Items waiting now. */
long tkr_batcher_queued_items(tkr_batcher *b);

#endif

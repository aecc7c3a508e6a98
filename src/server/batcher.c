/* batcher.c - see batcher.h. One mutex guards the queue and every job's private state; the
 * engine call runs without it, so request threads can queue and parse while the model works. */
#include "server/batcher.h"
#include "util/error.h"
#include "util/platform.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Where an item of the batch came from. */
typedef struct {
    tkr_batch_job *job;
    int index;
} batch_src;

struct tkr_batcher {
    tkr_batcher_params p;
    const tkr_engine *eng;
    tkr_metrics *metrics;

    pthread_mutex_t mu;
    pthread_cond_t work;                /* queue not empty, or stopping                   */
    tkr_batch_job *head, *tail;         /* jobs with items not yet taken into a batch     */
    long queued_items;
    bool stopping, drain;
    pthread_t thread;

    /* the batch being computed, owned by the batcher thread (max_batch_items each) */
    tkr_item *b_items;
    void **b_prepared;
    float *b_out;                       /* max_batch_items * dim                          */
    tkr_result *b_results;
    batch_src *b_src;
};

/* Waits on cond until the monotonic time `until` (or a wake-up); the clock choice keeps wall
 * clock jumps from stretching or cutting deadlines. */
static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, double until) {
    double left = until - tkr_now_seconds();
    if (left <= 0) return;
#if defined(__APPLE__)
    struct timespec rel;
    rel.tv_sec = (time_t)left;
    rel.tv_nsec = (long)((left - (double)rel.tv_sec) * 1e9);
    pthread_cond_timedwait_relative_np(cond, mu, &rel);
#else
    struct timespec ts;
    double sec = floor(until);
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((until - sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(cond, mu, &ts);
#endif
}

static int init_cond(pthread_cond_t *c) {
#if defined(__APPLE__)
    return pthread_cond_init(c, NULL);
#else
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) return -1;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc;
#endif
}

tkr_status tkr_batch_job_init(tkr_batch_job *job, tkr_error *err) {
    job->prev = job->next = NULL;
    job->next_item = job->n_done = job->n_computing = 0;
    job->queued = job->cancelled = job->aborted = job->call_failed = false;
    job->t_submit = 0;
    if (init_cond(&job->done) != 0) return tkr_fail(err, TKR_ERR_INTERNAL, "cannot create a condition variable");
    return TKR_OK;
}

void tkr_batch_job_destroy(tkr_batch_job *job) { pthread_cond_destroy(&job->done); }

static void unlink_job(tkr_batcher *b, tkr_batch_job *job) {
    if (job->prev) job->prev->next = job->next; else b->head = job->next;
    if (job->next) job->next->prev = job->prev; else b->tail = job->prev;
    job->prev = job->next = NULL;
    job->queued = false;
}

/* Takes items from the head of the queue while they fit the budgets. Called with mu held. */
static int take_batch(tkr_batcher *b) {
    int n = 0;
    long tokens = 0, image_tokens = 0;
    double now = tkr_now_seconds();
    while (b->head && n < b->p.max_batch_items) {
        tkr_batch_job *job = b->head;
        int i = job->next_item;
        long t = job->tokens ? job->tokens[i] : 0, im = job->image_tokens ? job->image_tokens[i] : 0;
        if (n > 0 && (tokens + t > b->p.max_batch_tokens || image_tokens + im > b->p.max_batch_image_tokens))
            break;
        tokens += t;
        image_tokens += im;
        b->b_items[n] = job->items[i];
        b->b_prepared[n] = job->prepared ? job->prepared[i] : NULL;
        b->b_src[n].job = job;
        b->b_src[n].index = i;
        n++;
        job->next_item++;
        job->n_computing++;
        b->queued_items--;
        if (b->metrics) tkr_metrics_queue_wait(b->metrics, now - job->t_submit);
        if (job->next_item == job->n_items) unlink_job(b, job);
    }
    return n;
}

/* Copies the batch's outputs into their jobs and wakes the jobs that are complete (or cancelled
 * and no longer computing). Called with mu held. */
static void scatter(tkr_batcher *b, int n, tkr_status call_status, const tkr_error *call_err) {
    int dim = b->eng->dim;
    for (int k = 0; k < n; k++) {
        tkr_batch_job *job = b->b_src[k].job;
        int i = b->b_src[k].index;
        if (call_status == TKR_OK) {
            memcpy(job->vectors + (size_t)i * (size_t)dim, b->b_out + (size_t)k * (size_t)dim,
                   sizeof(float) * (size_t)dim);
            job->results[i] = b->b_results[k];
        } else {
            job->call_failed = true;
            memset(job->vectors + (size_t)i * (size_t)dim, 0, sizeof(float) * (size_t)dim);
            memset(&job->results[i], 0, sizeof job->results[i]);
            job->results[i].status = call_status;
            snprintf(job->results[i].message, sizeof job->results[i].message, "%s", call_err->message);
        }
        job->n_computing--;
        job->n_done++;
        if (job->n_done == job->n_items || (job->cancelled && job->n_computing == 0))
            pthread_cond_broadcast(&job->done);
    }
}

/* Fails every queued item (shutdown without draining). Called with mu held. */
static void fail_queued(tkr_batcher *b) {
    while (b->head) {
        tkr_batch_job *job = b->head;
        for (int i = job->next_item; i < job->n_items; i++) {
            memset(&job->results[i], 0, sizeof job->results[i]);
            job->results[i].status = TKR_ERR_UNSUPPORTED;
            snprintf(job->results[i].message, sizeof job->results[i].message, "server shutting down");
            job->n_done++;
        }
        b->queued_items -= job->n_items - job->next_item;
        job->next_item = job->n_items;
        job->aborted = true;
        unlink_job(b, job);
        pthread_cond_broadcast(&job->done);
    }
}

static void *batcher_main(void *arg) {
    tkr_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stopping) pthread_cond_wait(&b->work, &b->mu);
        if (b->stopping && !b->drain) fail_queued(b);
        if (!b->head) break;   /* stopping, and nothing left */
        int n = take_batch(b);
        long tokens = 0;
        for (int k = 0; k < n; k++)
            tokens += b->b_src[k].job->tokens ? b->b_src[k].job->tokens[b->b_src[k].index] : 0;
        pthread_mutex_unlock(&b->mu);

        tkr_error err;
        tkr_error_clear(&err);
        double t0 = tkr_now_seconds();
        tkr_status st = b->eng->embed(b->eng->impl, b->b_items, b->b_prepared, n, b->b_out,
                                      b->b_results, &err);
        if (st != TKR_OK && !err.message[0])
            snprintf(err.message, sizeof err.message, "the model failed (%s)", tkr_status_name(st));
        double dt = tkr_now_seconds() - t0;
        if (b->metrics) tkr_metrics_batch(b->metrics, n, tokens, dt);

        pthread_mutex_lock(&b->mu);
        scatter(b, n, st, &err);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

tkr_status tkr_batcher_create(const tkr_batcher_params *params, const tkr_engine *engine,
                              tkr_metrics *metrics, tkr_batcher **out, tkr_error *err) {
    *out = NULL;
    if (params->max_batch_items < 1 || params->max_queue_items < 1 || engine->dim < 1 || !engine->embed)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "batcher: bad parameters or engine");
    tkr_batcher *b = calloc(1, sizeof *b);
    if (!b) return tkr_fail(err, TKR_ERR_NOMEM, "batcher: out of memory");
    b->p = *params;
    b->eng = engine;
    b->metrics = metrics;
    size_t n = (size_t)params->max_batch_items, out_floats;
    if (!tkr_mul_size(n, (size_t)engine->dim, &out_floats) ||
        !(b->b_out = malloc(sizeof(float) * out_floats)) ||
        !(b->b_items = calloc(n, sizeof *b->b_items)) ||
        !(b->b_prepared = calloc(n, sizeof *b->b_prepared)) ||
        !(b->b_results = calloc(n, sizeof *b->b_results)) ||
        !(b->b_src = calloc(n, sizeof *b->b_src))) {
        free(b->b_out); free(b->b_items); free(b->b_prepared); free(b->b_results); free(b->b_src);
        free(b);
        return tkr_fail(err, TKR_ERR_NOMEM, "batcher: out of memory for %zu items", n);
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0 || pthread_cond_init(&b->work, NULL) != 0 ||
        pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        free(b->b_out); free(b->b_items); free(b->b_prepared); free(b->b_results); free(b->b_src);
        free(b);
        return tkr_fail(err, TKR_ERR_INTERNAL, "batcher: cannot start its thread");
    }
    *out = b;
    return TKR_OK;
}

void tkr_batcher_stop(tkr_batcher *b, bool drain) {
    pthread_mutex_lock(&b->mu);
    if (!b->stopping) b->drain = drain;
    else b->drain = b->drain && drain;   /* a later "no drain" wins */
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
}

void tkr_batcher_free(tkr_batcher *b) {
    if (!b) return;
    tkr_batcher_stop(b, true);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->mu);
    free(b->b_out); free(b->b_items); free(b->b_prepared); free(b->b_results); free(b->b_src);
    free(b);
}

tkr_status tkr_batcher_submit(tkr_batcher *b, tkr_batch_job *job, tkr_error *err) {
    if (job->n_items < 1) return tkr_fail(err, TKR_ERR_INVALID_ARG, "empty job");
    pthread_mutex_lock(&b->mu);
    tkr_status st = TKR_OK;
    if (b->stopping) {
        st = tkr_fail(err, TKR_ERR_UNSUPPORTED, "the server is shutting down");
    } else if (b->queued_items + job->n_items > b->p.max_queue_items) {
        st = tkr_fail(err, TKR_ERR_LIMIT,
                      "the server is busy: %ld items are queued and this request adds %d (queue "
                      "limit %d); retry later", b->queued_items, job->n_items, b->p.max_queue_items);
    } else {
        job->t_submit = tkr_now_seconds();
        job->prev = b->tail;
        job->next = NULL;
        if (b->tail) b->tail->next = job; else b->head = job;
        b->tail = job;
        job->queued = true;
        b->queued_items += job->n_items;
        pthread_cond_signal(&b->work);
    }
    pthread_mutex_unlock(&b->mu);
    return st;
}

bool tkr_batcher_wait(tkr_batcher *b, tkr_batch_job *job, double until) {
    pthread_mutex_lock(&b->mu);
    while (job->n_done < job->n_items && tkr_now_seconds() < until)
        cond_wait_until(&job->done, &b->mu, until);
    bool done = job->n_done == job->n_items;
    pthread_mutex_unlock(&b->mu);
    return done;
}

void tkr_batcher_cancel(tkr_batcher *b, tkr_batch_job *job) {
    pthread_mutex_lock(&b->mu);
    job->cancelled = true;
    if (job->queued) {
        b->queued_items -= job->n_items - job->next_item;
        unlink_job(b, job);
    }
    while (job->n_computing > 0) pthread_cond_wait(&job->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

long tkr_batcher_queued_items(tkr_batcher *b) {
    pthread_mutex_lock(&b->mu);
    long n = b->queued_items;
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* threadpool.c - pthread pool. Tasks are handed out through an atomic counter so that uneven
 * pieces balance themselves; a generation number wakes the workers for each new loop. */
#define _POSIX_C_SOURCE 200809L
#include "util/threadpool.h"
#include "util/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct tkr_pool {
    int n_threads;            /* including the caller */
    pthread_t *threads;       /* n_threads - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    unsigned long generation;
    int quit;
    int active;               /* workers still inside the current loop */
    int started;              /* workers that finished starting (tkr_pool_init waits for all) */
    /* the current loop */
    tkr_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

typedef struct {
    tkr_pool *pool;
    int index;
} worker_arg;

static void drain(tkr_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *argp) {
    worker_arg *arg = argp;
    tkr_pool *p = arg->pool;
    int index = arg->index;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    p->started++;
    pthread_cond_signal(&p->done);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

tkr_status tkr_pool_init(int n_threads, tkr_pool **out, tkr_error *err) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 1024) return tkr_fail(err, TKR_ERR_INVALID_ARG, "too many threads: %d", n_threads);
    tkr_pool *p = calloc(1, sizeof *p);
    if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            tkr_pool_free(p);
            return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            worker_arg *a = malloc(sizeof *a);
            if (a) {
                a->pool = p;
                a->index = i + 1;
            }
            if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
                free(a);
                p->n_threads = i + 1; /* only join what started */
                tkr_pool_free(p);
                return tkr_fail(err, TKR_ERR_INTERNAL, "cannot start thread %d", i);
            }
        }
        /* Return only once every worker is parked in its wait: a thread still starting up
         * allocates (its free(arg), the runtime's own per-thread setup), and a fork() made by
         * the caller meanwhile (the PDF renderer's child) could inherit an allocator lock held
         * by it; GCC 12's ASan allocator then deadlocks in the child. */
        pthread_mutex_lock(&p->mu);
        while (p->started < n_threads - 1) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    *out = p;
    return TKR_OK;
}

void tkr_pool_free(tkr_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads - 1 && p->threads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int tkr_pool_size(const tkr_pool *p) { return p ? p->n_threads : 1; }

void tkr_pool_run(tkr_pool *p, int n_tasks, tkr_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->active = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* threadpool.c - pthread pool. Tasks are handed out through an atomic counter so that uneven
 * pieces balance themselves; a generation number wakes the workers for each new loop.
 *
 * A model pass runs hundreds of short loops (a norm, a projection, an activation) back to back,
 * microseconds apart. Waking a sleeping worker through the kernel (futex) costs tens of
 * microseconds on a virtual machine, during which the other cores wait, so both sides spin
 * first: a worker watches the generation for SPIN_NS before it sleeps on the condition variable,
 * and the caller watches the count of active workers before it sleeps. Between requests the
 * workers sleep as before (a spin is bounded). With more threads than cores a spinner would hold
 * the core that the thread with the work needs, so such a pool never spins. */
#define _POSIX_C_SOURCE 200809L
#include "util/threadpool.h"
#include "util/error.h"
#include "util/platform.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

enum { SPIN_NS = 100 * 1000 }; /* how long either side spins before it sleeps */

struct tkr_pool {
    int n_threads;            /* including the caller */
    pthread_t *threads;       /* n_threads - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_ulong generation;  /* changed under mu; read without it while spinning */
    atomic_int quit;
    atomic_int active;        /* workers still inside the current loop */
    int started;              /* workers that finished starting (tkr_pool_init waits for all) */
    long long spin_ns;        /* how long to spin before sleeping: SPIN_NS, or 0 if oversubscribed */
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

/* A hint to the core that this is a spin loop (frees the sibling thread's resources). */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins up to SPIN_NS until done(p, arg) holds; true if it did (the caller then skips the
 * sleep). The clock is read every 64 rounds only. */
static bool spin_until(bool (*done)(tkr_pool *, unsigned long), tkr_pool *p, unsigned long arg) {
    if (p->spin_ns == 0) return done(p, arg);
    double end = 0;
    for (unsigned i = 1;; i++) {
        if (done(p, arg)) return true;
        cpu_relax();
        if ((i & 63) == 0) {
            double t = tkr_now_seconds();
            if (end == 0) end = t + (double)p->spin_ns * 1e-9;
            else if (t > end) return false;
        }
    }
}

static bool new_loop(tkr_pool *p, unsigned long seen) {
    return atomic_load_explicit(&p->generation, memory_order_acquire) != seen || atomic_load(&p->quit);
}

static bool all_done(tkr_pool *p, unsigned long unused) {
    (void)unused;
    return atomic_load_explicit(&p->active, memory_order_acquire) == 0;
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
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        /* the loop's fn, ctx and n_tasks were written before the generation (release) */
        if (!spin_until(new_loop, p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        drain(p, index);
        if (atomic_fetch_sub_explicit(&p->active, 1, memory_order_acq_rel) == 1) {
            /* the last one out: wake the caller if it sleeps (it checks active under mu) */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

tkr_status tkr_pool_init(int n_threads, tkr_pool **out, tkr_error *err) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 1024) return tkr_fail(err, TKR_ERR_INVALID_ARG, "too many threads: %d", n_threads);
    tkr_pool *p = calloc(1, sizeof *p);
    if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    p->n_threads = n_threads;
    p->spin_ns = n_threads <= tkr_cpu_count() ? SPIN_NS : 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->active, 0);
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
    atomic_store(&p->quit, 1);
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
    /* Every worker is out of the previous loop (active was 0), so none reads these now. */
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->n_threads - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake); /* no system call when no worker sleeps */
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    if (spin_until(all_done, p, 0)) return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->active) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

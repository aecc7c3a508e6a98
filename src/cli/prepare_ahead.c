/* prepare_ahead.c - see prepare_ahead.h. Workers take items by an atomic counter, so a slow
 * image does not hold up a fixed share of the batch. */
#include "cli/prepare_ahead.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PREP_MAX_THREADS = 16 };

struct prepare_ahead {
    const tkr_model *m;
    prep_batch b;
    atomic_int next;
    pthread_t th[PREP_MAX_THREADS];
    int started;
};

static void prepare_one(const tkr_model *m, const prep_batch *b, int i) {
    b->prep[i] = NULL;
    if (!b->valid[i]) return;
    tkr_error e;
    memset(&e, 0, sizeof e);
    if (tkr_prepare(m, &b->items[i], &b->prep[i], &e) != TKR_OK) snprintf(b->msg[i], PREP_MSG_MAX, "%s", e.message);
}

static void *prepare_worker(void *arg) {
    prepare_ahead *p = arg;
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->b.n;) prepare_one(p->m, &p->b, i);
    return NULL;
}

prepare_ahead *prepare_ahead_start(const tkr_model *m, prep_batch b, int n_threads) {
    prepare_ahead *p = calloc(1, sizeof *p);
    if (p) {
        p->m = m;
        p->b = b;
        atomic_init(&p->next, 0);
        int nt = n_threads < 1 ? 1 : n_threads > PREP_MAX_THREADS ? PREP_MAX_THREADS : n_threads;
        nt = nt > b.n ? b.n : nt;
        for (int t = 0; t < nt; t++)
            if (pthread_create(&p->th[p->started], NULL, prepare_worker, p) == 0) p->started++;
        if (p->started > 0) return p;
        free(p);
    }
    for (int i = 0; i < b.n; i++) prepare_one(m, &b, i); /* no memory or no thread: here */
    return NULL;
}

void prepare_ahead_wait(prepare_ahead *p) {
    if (!p) return;
    for (int t = 0; t < p->started; t++) pthread_join(p->th[t], NULL);
    free(p);
}

/* test_server_batcher.c - the queue and batching thread: budgets, FIFO order across requests,
 * queue limit, cancel, shutdown with and without draining, and vectors that do not depend on
 * what else was in the batch (many threads at once). */
#include "fake_engine.h"
#include "server/batcher.h"
#include "test.h"
#include "util/platform.h"

/* A fake engine that records each batch and can hold the batcher inside a call. */
typedef struct {
    fake_engine fake;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;
    int entered;              /* calls started */
    int n_batches;
    int sizes[512];
    char order[2048][16];     /* item texts in the order the engine saw them */
    int n_order;
} rec_engine;

static tkr_status rec_embed(void *impl, const tkr_item *items, void *const *prepared, int n,
                            float *out, tkr_result *results, tkr_error *err) {
    rec_engine *r = impl;
    pthread_mutex_lock(&r->mu);
    r->entered++;
    pthread_cond_broadcast(&r->cv);
    while (r->hold) pthread_cond_wait(&r->cv, &r->mu);
    if (r->n_batches < 512) r->sizes[r->n_batches] = n;
    r->n_batches++;
    for (int i = 0; i < n && r->n_order < 2048; i++)
        snprintf(r->order[r->n_order++], 16, "%.15s", items[i].text ? items[i].text : "");
    pthread_mutex_unlock(&r->mu);
    return fake_embed(&r->fake, items, prepared, n, out, results, err);
}

static void rec_init(rec_engine *r, tkr_engine *e) {
    fake_engine_init(&r->fake, 8);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->hold = false;
    r->entered = r->n_batches = r->n_order = 0;
    *e = fake_engine_table(&r->fake);
    e->impl = r;
    e->embed = rec_embed;
    e->prepare = NULL;
    e->release = NULL;
}

static void rec_set_hold(rec_engine *r, bool hold) {
    pthread_mutex_lock(&r->mu);
    r->hold = hold;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until the engine has been entered `calls` times. */
static bool rec_wait_entered(rec_engine *r, int calls) {
    double until = tkr_now_seconds() + 5;
    pthread_mutex_lock(&r->mu);
    while (r->entered < calls && tkr_now_seconds() < until) {
        pthread_mutex_unlock(&r->mu);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&r->mu);
    }
    bool ok = r->entered >= calls;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* A job over texts, with given token and image-token costs, owning its arrays. */
typedef struct {
    tkr_batch_job job;
    tkr_item items[64];
    int tokens[64], image_tokens[64];
    float vectors[64 * 8];
    tkr_result results[64];
    char texts[64][24];
} test_job;

static void job_make(test_job *t, const char *prefix, int n, int tokens, int image_tokens) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        snprintf(t->texts[i], sizeof t->texts[i], "%s%d", prefix, i);
        t->items[i].text = t->texts[i];
        t->tokens[i] = tokens;
        t->image_tokens[i] = image_tokens;
    }
    tkr_error err;
    tkr_batch_job_init(&t->job, &err);
    t->job.items = t->items;
    t->job.tokens = t->tokens;
    t->job.image_tokens = t->image_tokens;
    t->job.n_items = n;
    t->job.vectors = t->vectors;
    t->job.results = t->results;
}

/* Every vector of the job equals the fake engine's vector of that item alone, bit for bit. */
static bool job_vectors_exact(const fake_engine *f, test_job *t) {
    for (int i = 0; i < t->job.n_items; i++) {
        float ref[8];
        tkr_result res;
        fake_embed_one(f, &t->items[i], ref, &res);
        if (t->results[i].status != TKR_OK || memcmp(ref, t->vectors + i * 8, sizeof ref) != 0) return false;
    }
    return true;
}

static void test_budgets_and_order(void) {
    rec_engine r;
    tkr_engine e;
    rec_init(&r, &e);
    tkr_batcher_params p = {4, 100, 50, 64};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create: %s", err.message);
    static test_job first, a, big, c, img;
    rec_set_hold(&r, true);
    job_make(&first, "f", 1, 1, 0);
    CHECK(tkr_batcher_submit(b, &first.job, &err) == TKR_OK, "submit first");
    CHECK(rec_wait_entered(&r, 1), "batcher is inside the first call");
    /* queued while the model is busy: a (5 x 30 tokens), big (1 x 500), c (2 x 10), img (3 x 20 image tokens) */
    job_make(&a, "a", 5, 30, 0);
    job_make(&big, "big", 1, 500, 0);
    job_make(&c, "c", 2, 10, 0);
    job_make(&img, "i", 3, 1, 20);
    CHECK(tkr_batcher_submit(b, &a.job, &err) == TKR_OK, "a");
    CHECK(tkr_batcher_submit(b, &big.job, &err) == TKR_OK, "big");
    CHECK(tkr_batcher_submit(b, &c.job, &err) == TKR_OK, "c");
    CHECK(tkr_batcher_submit(b, &img.job, &err) == TKR_OK, "img");
    CHECK(tkr_batcher_queued_items(b) == 11, "11 queued: %ld", tkr_batcher_queued_items(b));
    rec_set_hold(&r, false);
    test_job *jobs[] = {&first, &a, &big, &c, &img};
    for (int j = 0; j < 5; j++)
        CHECK(tkr_batcher_wait(b, &jobs[j]->job, tkr_now_seconds() + 5), "job %d done", j);
    /* expected batches: [f0] [a0 a1 a2] (90 tokens; a3 would make 120) [a3 a4] (big does not fit)
     * [big0] (alone, over the budget) [c0 c1 i0 i1] (4 items max; image 40 <= 50) [i2] */
    int want_sizes[] = {1, 3, 2, 1, 4, 1};
    CHECK(r.n_batches == 6, "6 batches, got %d", r.n_batches);
    for (int i = 0; i < 6 && i < r.n_batches; i++)
        CHECK(r.sizes[i] == want_sizes[i], "batch %d has %d items, want %d", i, r.sizes[i], want_sizes[i]);
    const char *want_order[] = {"f0", "a0", "a1", "a2", "a3", "a4", "big0", "c0", "c1", "i0", "i1", "i2"};
    CHECK(r.n_order == 12, "12 items computed");
    for (int i = 0; i < 12 && i < r.n_order; i++)
        CHECK(!strcmp(r.order[i], want_order[i]), "position %d: %s, want %s", i, r.order[i], want_order[i]);
    for (int j = 0; j < 5; j++) {
        CHECK(job_vectors_exact(&r.fake, jobs[j]), "job %d vectors equal the items alone", j);
        tkr_batch_job_destroy(&jobs[j]->job);
    }
    CHECK(tkr_batcher_queued_items(b) == 0, "queue empty");
    tkr_batcher_free(b);
}

static void test_image_budget(void) {
    rec_engine r;
    tkr_engine e;
    rec_init(&r, &e);
    tkr_batcher_params p = {64, 100000, 50, 64};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
    static test_job first, img;
    rec_set_hold(&r, true);
    job_make(&first, "f", 1, 1, 0);
    tkr_batcher_submit(b, &first.job, &err);
    CHECK(rec_wait_entered(&r, 1), "entered");
    job_make(&img, "i", 7, 1, 20);   /* 2 per batch under 50 image tokens */
    tkr_batcher_submit(b, &img.job, &err);
    rec_set_hold(&r, false);
    CHECK(tkr_batcher_wait(b, &img.job, tkr_now_seconds() + 5), "done");
    int want[] = {1, 2, 2, 2, 1};
    CHECK(r.n_batches == 5, "5 batches, got %d", r.n_batches);
    for (int i = 0; i < 5 && i < r.n_batches; i++) CHECK(r.sizes[i] == want[i], "batch %d: %d", i, r.sizes[i]);
    tkr_batch_job_destroy(&first.job);
    tkr_batch_job_destroy(&img.job);
    tkr_batcher_free(b);
}

static void test_queue_full_and_cancel(void) {
    rec_engine r;
    tkr_engine e;
    rec_init(&r, &e);
    tkr_batcher_params p = {8, 100000, 100000, 10};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
    static test_job first, six, five, four;
    rec_set_hold(&r, true);
    job_make(&first, "f", 1, 1, 0);
    tkr_batcher_submit(b, &first.job, &err);
    CHECK(rec_wait_entered(&r, 1), "entered");
    job_make(&six, "s", 6, 1, 0);
    job_make(&five, "v", 5, 1, 0);
    job_make(&four, "q", 4, 1, 0);
    CHECK(tkr_batcher_submit(b, &six.job, &err) == TKR_OK, "6 of 10");
    CHECK(tkr_batcher_submit(b, &five.job, &err) == TKR_ERR_LIMIT, "5 more do not fit");
    CHECK(strstr(err.message, "queue limit 10") != NULL, "message: %s", err.message);
    CHECK(tkr_batcher_submit(b, &four.job, &err) == TKR_OK, "4 more fit exactly");
    /* cancel the six while they wait: they never reach the engine, and the room comes back */
    tkr_batcher_cancel(b, &six.job);
    CHECK(tkr_batcher_queued_items(b) == 4, "4 left: %ld", tkr_batcher_queued_items(b));
    CHECK(tkr_batcher_submit(b, &five.job, &err) == TKR_OK, "now 5 fit");
    rec_set_hold(&r, false);
    CHECK(tkr_batcher_wait(b, &four.job, tkr_now_seconds() + 5), "four done");
    CHECK(tkr_batcher_wait(b, &five.job, tkr_now_seconds() + 5), "five done");
    for (int i = 0; i < r.n_order; i++) CHECK(r.order[i][0] != 's', "cancelled item %s was computed", r.order[i]);
    CHECK(r.n_order == 10, "1 + 4 + 5 computed: %d", r.n_order);
    CHECK(!tkr_batcher_wait(b, &six.job, tkr_now_seconds() + 0.01), "a cancelled job never completes");
    tkr_batch_job_destroy(&first.job);
    tkr_batch_job_destroy(&six.job);
    tkr_batch_job_destroy(&five.job);
    tkr_batch_job_destroy(&four.job);
    tkr_batcher_free(b);
}

/* Cancel while the job's items are inside the model call: returns only after the call. */
static void test_cancel_while_computing(void) {
    rec_engine r;
    tkr_engine e;
    rec_init(&r, &e);
    tkr_batcher_params p = {8, 100000, 100000, 64};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
    static test_job j;
    r.fake.delay_ms = 150;
    job_make(&j, "x", 3, 1, 0);
    tkr_batcher_submit(b, &j.job, &err);
    CHECK(rec_wait_entered(&r, 1), "entered");
    double t0 = tkr_now_seconds();
    tkr_batcher_cancel(b, &j.job);
    double dt = tkr_now_seconds() - t0;
    CHECK(dt > 0.05, "cancel waited for the call to end (%.3f s)", dt);
    CHECK(j.job.n_computing == 0, "nothing computing");
    tkr_batch_job_destroy(&j.job);
    tkr_batcher_free(b);
}

static void test_stop(void) {
    for (int drain = 0; drain < 2; drain++) {
        rec_engine r;
        tkr_engine e;
        rec_init(&r, &e);
        tkr_batcher_params p = {2, 100000, 100000, 64};
        tkr_batcher *b = NULL;
        tkr_error err;
        CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
        static test_job first, rest;
        rec_set_hold(&r, true);
        job_make(&first, "f", 1, 1, 0);
        tkr_batcher_submit(b, &first.job, &err);
        CHECK(rec_wait_entered(&r, 1), "entered");
        job_make(&rest, "r", 5, 1, 0);
        tkr_batcher_submit(b, &rest.job, &err);
        tkr_batcher_stop(b, drain);
        CHECK(tkr_batcher_submit(b, &first.job, &err) == TKR_ERR_UNSUPPORTED, "no new jobs after stop");
        rec_set_hold(&r, false);
        CHECK(tkr_batcher_wait(b, &rest.job, tkr_now_seconds() + 5), "rest completes either way");
        CHECK(rest.job.aborted == !drain, "aborted only without drain");
        int ok = 0;
        for (int i = 0; i < 5; i++) ok += rest.results[i].status == TKR_OK;
        CHECK(drain ? ok == 5 : ok == 0, "drain %d: %d items computed", drain, ok);
        if (!drain) CHECK(strstr(rest.results[0].message, "shutting down") != NULL, "reason given");
        tkr_batch_job_destroy(&first.job);
        tkr_batch_job_destroy(&rest.job);
        tkr_batcher_free(b);
    }
}

static void test_call_failure(void) {
    rec_engine r;
    tkr_engine e;
    rec_init(&r, &e);
    r.fake.fail_calls = true;
    tkr_batcher_params p = {8, 100000, 100000, 64};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
    static test_job j;
    job_make(&j, "x", 3, 1, 0);
    tkr_batcher_submit(b, &j.job, &err);
    CHECK(tkr_batcher_wait(b, &j.job, tkr_now_seconds() + 5), "done");
    CHECK(j.job.call_failed && j.results[2].status == TKR_ERR_INTERNAL &&
          strstr(j.results[2].message, "whole call failed"), "call failure reported per item");
    tkr_batch_job_destroy(&j.job);
    tkr_batcher_free(b);
}

/* Many submitters at once: every vector is bit-identical to its item computed alone. */
typedef struct {
    tkr_batcher *b;
    fake_engine *fake;
    int seed;
    int ok, full;
} submitter;

static void *submit_main(void *arg) {
    submitter *s = arg;
    test_job *t = malloc(sizeof *t);
    for (int round = 0; round < 40; round++) {
        int n = 1 + (s->seed * 7 + round * 13) % 9;
        char prefix[16];
        snprintf(prefix, sizeof prefix, "%c%d_", 'A' + s->seed, round);
        job_make(t, prefix, n, 5 + round % 17, 0);
        tkr_error err;
        tkr_status st = tkr_batcher_submit(s->b, &t->job, &err);
        if (st == TKR_OK) {
            if (tkr_batcher_wait(s->b, &t->job, tkr_now_seconds() + 10) && job_vectors_exact(s->fake, t)) s->ok++;
        } else if (st == TKR_ERR_LIMIT) {
            s->full++;
        }
        tkr_batch_job_destroy(&t->job);
    }
    free(t);
    return NULL;
}

static void test_concurrent_exact(void) {
    fake_engine fake;
    fake_engine_init(&fake, 8);
    tkr_engine e = fake_engine_table(&fake);
    tkr_batcher_params p = {16, 64, 100000, 1000};
    tkr_batcher *b = NULL;
    tkr_error err;
    CHECK(tkr_batcher_create(&p, &e, NULL, &b, &err) == TKR_OK, "create");
    submitter s[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        s[i] = (submitter){b, &fake, i, 0, 0};
        pthread_create(&th[i], NULL, submit_main, &s[i]);
    }
    int ok = 0, full = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += s[i].ok;
        full += s[i].full;
    }
    CHECK(ok == 8 * 40, "%d of 320 jobs exact (%d refused)", ok, full);
    CHECK(atomic_load(&fake.max_batch) > 1, "batches held several items (max %d)", atomic_load(&fake.max_batch));
    tkr_batcher_free(b);
}

int main(void) {
    RUN(test_budgets_and_order);
    RUN(test_image_budget);
    RUN(test_queue_full_and_cancel);
    RUN(test_cancel_while_computing);
    RUN(test_stop);
    RUN(test_call_failure);
    RUN(test_concurrent_exact);
    return test_summary();
}

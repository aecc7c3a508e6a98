/* serve.c - see serve.h. */
#include "server/serve.h"
#include "server/fetch.h"
#include "server/http.h"
#include "server/log.h"
#include "util/error.h"
#include "util/platform.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* State shared by the entry point, the loader thread and the signal thread. */
typedef struct {
    const tkr_server_config *cfg;
    tkr_engine_open_fn open_engine;
    void *ctx;
    tkr_engine engine;
    tkr_error err;
    tkr_status status;
    atomic_int loaded;        /* 1 when open_engine returned */
    sigset_t signals;
    atomic_int signal_no;     /* the first SIGTERM/SIGINT received, 0 = none */
    atomic_int quit_watcher;
} serve_state;

static void *loader_main(void *arg) {
    serve_state *st = arg;
    st->status = st->open_engine(st->cfg, st->ctx, &st->engine, &st->err);
    atomic_store(&st->loaded, 1);
    return NULL;
}

/* Waits for the blocked signals; the entry point polls signal_no. */
static void *signal_main(void *arg) {
    serve_state *st = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&st->signals, &sig) != 0) continue;
        if (atomic_load(&st->quit_watcher)) break;
        int expected = 0;
        atomic_compare_exchange_strong(&st->signal_no, &expected, sig);
    }
    return NULL;
}

/* Main-loop ticks (100 ms when ready) between two malloc_trim calls. */
#define TRIM_TICKS 50

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tkr_serve_main(int argc, char **argv, tkr_engine_open_fn open_engine, void *ctx) {
    tkr_server_config cfg = tkr_server_config_default();
    tkr_error err;
    tkr_error_clear(&err);
    bool help = false;
    if (tkr_server_config_parse(&cfg, argc, argv, &help, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed serve: %s\n", err.message);
        tkr_server_config_free(&cfg);
        return 2;
    }
    if (help) {
        tkr_server_usage(stdout);
        tkr_server_config_free(&cfg);
        return 0;
    }

    serve_state st;
    memset(&st, 0, sizeof st);
    st.cfg = &cfg;
    st.open_engine = open_engine;
    st.ctx = ctx;
    atomic_init(&st.loaded, 0);
    atomic_init(&st.signal_no, 0);
    atomic_init(&st.quit_watcher, 0);
    sigemptyset(&st.signals);
    sigaddset(&st.signals, SIGTERM);
    sigaddset(&st.signals, SIGINT);
    /* before any thread exists: every thread inherits the mask, only sigwait sees them */
    pthread_sigmask(SIG_BLOCK, &st.signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* before any thread exists, as mallopt requires: bounds the arenas that connection threads
     * would otherwise each grow to their peak (RSS ratcheting up under concurrent load) */
    tkr_malloc_limit_arenas(cfg.malloc_arenas);

    int rc = 0;
    bool fetch_init = false;
    tkr_server *srv = NULL;
    pthread_t loader, watcher;
    bool loader_started = false, watcher_started = false;
    if (cfg.allow_remote_images) {
        if (tkr_fetch_global_init(&err) != TKR_OK) {
            fprintf(stderr, "tkr-embed serve: %s\n", err.message);
            rc = 1;
            goto done;
        }
        fetch_init = true;
    }
    if (pthread_create(&watcher, NULL, signal_main, &st) != 0) {
        fprintf(stderr, "tkr-embed serve: cannot start the signal thread\n");
        rc = 1;
        goto done;
    }
    watcher_started = true;
    if (tkr_server_start(&cfg, &srv, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed serve: %s\n", err.message);
        rc = 1;
        goto done;
    }
    tkr_log("listening on http://%s:%d (loading the model)", cfg.host, tkr_server_port(srv));
    if (pthread_create(&loader, NULL, loader_main, &st) != 0) {
        fprintf(stderr, "tkr-embed serve: cannot start the loader thread\n");
        rc = 1;
        goto done;
    }
    loader_started = true;

    bool ready = false;
    long ticks = 0;
    while (!atomic_load(&st.signal_no)) {
        if (!ready && atomic_load(&st.loaded)) {
            if (st.status != TKR_OK) {
                tkr_log("cannot load the model: %s", st.err.message);
                tkr_server_set_failed(srv, st.err.message);
                rc = 1;
                break;
            }
            if (st.engine.warmup[0]) tkr_log("warm-up: %s", st.engine.warmup);
            if (tkr_server_set_engine(srv, &st.engine, &err) != TKR_OK) {
                tkr_log("%s", err.message);
                rc = 1;
                break;
            }
            ready = true;
            tkr_log("ready: model '%s', %d dimensions",
                    cfg.model_name ? cfg.model_name : st.engine.model_name, st.engine.dim);
        }
        sleep_ms(ready ? 100 : 20);
        /* every few seconds, hand freed heap pages back: after a burst of large requests
         * (decoded images) glibc would otherwise keep the peak resident */
        if (ready && ++ticks % TRIM_TICKS == 0) tkr_malloc_trim();
    }
    if (atomic_load(&st.signal_no))
        tkr_log("%s received: finishing requests in flight (up to %g s)",
                atomic_load(&st.signal_no) == SIGTERM ? "SIGTERM" : "SIGINT", cfg.drain_timeout_s);

done:
    if (loader_started) pthread_join(loader, NULL);   /* a model load cannot be interrupted */
    if (srv) {
        int left = tkr_server_stop(srv);
        if (left > 0) tkr_log("drain timeout: %d requests were cut short", left);
    }
    if (atomic_load(&st.loaded) && st.status == TKR_OK) tkr_engine_close(&st.engine);
    if (watcher_started) {
        atomic_store(&st.quit_watcher, 1);
        pthread_kill(watcher, SIGTERM);   /* blocked here, so it only wakes the sigwait */
        pthread_join(watcher, NULL);
    }
    if (fetch_init) tkr_fetch_global_cleanup();
    if (rc == 0) tkr_log("stopped");
    tkr_server_config_free(&cfg);
    return rc;
}

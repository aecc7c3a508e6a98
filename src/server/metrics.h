/* metrics.h - counters and histograms of the server, rendered in the Prometheus text format
 * (version 0.0.4) by GET /metrics. One mutex guards everything: updates are a handful per request
 * or batch, far from any hot loop. Label sets are fixed (routes are a closed enum, status codes
 * are 100..599) so a client cannot blow up the number of series. */
#ifndef TKR_SERVER_METRICS_H
#define TKR_SERVER_METRICS_H

#include "server/sbuf.h"

#include <pthread.h>
#include <stdint.h>

typedef enum {
    TKR_ROUTE_EMBEDDINGS,
    TKR_ROUTE_MODELS,
    TKR_ROUTE_HEALTH,
    TKR_ROUTE_METRICS,
    TKR_ROUTE_OTHER,      /* unknown paths, all in one series */
    TKR_ROUTE_COUNT
} tkr_route;

const char *tkr_route_label(tkr_route route);

#define TKR_HIST_MAX_BUCKETS 20

typedef struct {
    int n_bounds;
    double bounds[TKR_HIST_MAX_BUCKETS];      /* upper bounds, increasing             */
    uint64_t counts[TKR_HIST_MAX_BUCKETS + 1]; /* per bucket (not cumulative), + Inf   */
    double sum;
    uint64_t count;
} tkr_histogram;

typedef struct {
    pthread_mutex_t mu;
    uint64_t requests[TKR_ROUTE_COUNT][500];  /* [route][status - 100]          */
    tkr_histogram request_seconds[TKR_ROUTE_COUNT];
    uint64_t items_total, prompt_tokens_total, images_total, truncated_items_total;
    uint64_t batches_total;
    tkr_histogram batch_items, batch_tokens, batch_seconds, queue_wait_seconds;
} tkr_metrics;

/* Values that live elsewhere (batcher, server state), read at render time. */
typedef struct {
    int ready;               /* 1 when the model is loaded and requests are served */
    long queue_items;        /* items waiting for the model                        */
    long queue_capacity;
    long requests_in_flight; /* embedding requests being handled                   */
    long body_bytes;         /* request body bytes held (--max-inflight-bytes)      */
    /* the compute device (zeros and NULL on the CPU) */
    const char *device;      /* e.g. "cuda:0 NVIDIA H200 (sm_90, bf16, cuBLAS 13.1)" */
    unsigned long long gpu_weight_bytes, gpu_activation_bytes, gpu_total_bytes, pinned_host_bytes;
} tkr_metrics_gauges;

int tkr_metrics_init(tkr_metrics *m);   /* 0 on success */
void tkr_metrics_destroy(tkr_metrics *m);

void tkr_metrics_request(tkr_metrics *m, tkr_route route, int status, double seconds);
void tkr_metrics_embedded(tkr_metrics *m, long items, long prompt_tokens, long images,
                          long truncated);
void tkr_metrics_batch(tkr_metrics *m, int items, long tokens, double seconds);
void tkr_metrics_queue_wait(tkr_metrics *m, double seconds);

void tkr_histogram_init(tkr_histogram *h, const double *bounds, int n_bounds);
void tkr_histogram_observe(tkr_histogram *h, double v);

/* Appends the exposition text to out. */
void tkr_metrics_render(tkr_metrics *m, const tkr_metrics_gauges *g, sbuf *out);

#endif

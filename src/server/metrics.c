/* metrics.c - see metrics.h. */
#include "server/metrics.h"

#include <stdio.h>
#include <string.h>

static const char *const route_labels[TKR_ROUTE_COUNT] = {
    "/v1/embeddings", "/v1/models", "/health", "/metrics", "other",
};

const char *tkr_route_label(tkr_route route) {
    return (unsigned)route < TKR_ROUTE_COUNT ? route_labels[route] : "other";
}

/* Latency buckets from 1 ms to 10 min: embedding requests range from a cached short text on a
 * GPU to a large multi-image request queued behind others on a CPU. */
static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60,  120, 300, 600};
static const double batch_item_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
static const double batch_token_bounds[] = {16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

void tkr_histogram_init(tkr_histogram *h, const double *bounds, int n_bounds) {
    memset(h, 0, sizeof *h);
    if (n_bounds > TKR_HIST_MAX_BUCKETS) n_bounds = TKR_HIST_MAX_BUCKETS;
    h->n_bounds = n_bounds;
    memcpy(h->bounds, bounds, sizeof(double) * (size_t)n_bounds);
}

void tkr_histogram_observe(tkr_histogram *h, double v) {
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

int tkr_metrics_init(tkr_metrics *m) {
    memset(m, 0, sizeof *m);
    if (pthread_mutex_init(&m->mu, NULL) != 0) return -1;
    for (int r = 0; r < TKR_ROUTE_COUNT; r++)
        tkr_histogram_init(&m->request_seconds[r], latency_bounds, N_OF(latency_bounds));
    tkr_histogram_init(&m->batch_items, batch_item_bounds, N_OF(batch_item_bounds));
    tkr_histogram_init(&m->batch_tokens, batch_token_bounds, N_OF(batch_token_bounds));
    tkr_histogram_init(&m->batch_seconds, latency_bounds, N_OF(latency_bounds));
    tkr_histogram_init(&m->queue_wait_seconds, latency_bounds, N_OF(latency_bounds));
    return 0;
}

void tkr_metrics_destroy(tkr_metrics *m) { pthread_mutex_destroy(&m->mu); }

void tkr_metrics_request(tkr_metrics *m, tkr_route route, int status, double seconds) {
    if ((unsigned)route >= TKR_ROUTE_COUNT) route = TKR_ROUTE_OTHER;
    if (status < 100 || status > 599) status = 500;
    pthread_mutex_lock(&m->mu);
    m->requests[route][status - 100]++;
    tkr_histogram_observe(&m->request_seconds[route], seconds);
    pthread_mutex_unlock(&m->mu);
}

void tkr_metrics_embedded(tkr_metrics *m, long items, long prompt_tokens, long images,
                          long truncated) {
    pthread_mutex_lock(&m->mu);
    m->items_total += (uint64_t)items;
    m->prompt_tokens_total += (uint64_t)prompt_tokens;
    m->images_total += (uint64_t)images;
    m->truncated_items_total += (uint64_t)truncated;
    pthread_mutex_unlock(&m->mu);
}

void tkr_metrics_batch(tkr_metrics *m, int items, long tokens, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->batches_total++;
    tkr_histogram_observe(&m->batch_items, items);
    tkr_histogram_observe(&m->batch_tokens, (double)tokens);
    tkr_histogram_observe(&m->batch_seconds, seconds);
    pthread_mutex_unlock(&m->mu);
}

void tkr_metrics_queue_wait(tkr_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    tkr_histogram_observe(&m->queue_wait_seconds, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void header(sbuf *o, const char *name, const char *type, const char *help) {
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus histograms are cumulative: bucket le=X counts every observation <= X. */
static void render_hist(sbuf *o, const char *name, const char *labels, const tkr_histogram *h) {
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        sbuf_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
                    (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    sbuf_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    if (labels[0]) {
        sbuf_printf(o, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                    (unsigned long long)h->count);
    } else {
        sbuf_printf(o, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                    (unsigned long long)h->count);
    }
}

void tkr_metrics_render(tkr_metrics *m, const tkr_metrics_gauges *g, sbuf *o) {
    pthread_mutex_lock(&m->mu);
    header(o, "tkr_http_requests_total", "counter", "HTTP requests by route and status code.");
    for (int r = 0; r < TKR_ROUTE_COUNT; r++)
        for (int s = 0; s < 500; s++)
            if (m->requests[r][s])
                sbuf_printf(o, "tkr_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                            route_labels[r], s + 100, (unsigned long long)m->requests[r][s]);
    header(o, "tkr_http_request_duration_seconds", "histogram",
           "Time from request received to response queued, by route.");
    for (int r = 0; r < TKR_ROUTE_COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_labels[r]);
        render_hist(o, "tkr_http_request_duration_seconds", labels, &m->request_seconds[r]);
    }
    header(o, "tkr_embedding_items_total", "counter", "Items embedded (one vector each).");
    sbuf_printf(o, "tkr_embedding_items_total %llu\n", (unsigned long long)m->items_total);
    header(o, "tkr_prompt_tokens_total", "counter", "Prompt tokens embedded, image tokens included.");
    sbuf_printf(o, "tkr_prompt_tokens_total %llu\n", (unsigned long long)m->prompt_tokens_total);
    header(o, "tkr_images_total", "counter", "Images embedded.");
    sbuf_printf(o, "tkr_images_total %llu\n", (unsigned long long)m->images_total);
    header(o, "tkr_truncated_items_total", "counter", "Items whose text was truncated on request.");
    sbuf_printf(o, "tkr_truncated_items_total %llu\n", (unsigned long long)m->truncated_items_total);
    header(o, "tkr_batches_total", "counter", "Model calls.");
    sbuf_printf(o, "tkr_batches_total %llu\n", (unsigned long long)m->batches_total);
    header(o, "tkr_batch_items", "histogram", "Items per model call.");
    render_hist(o, "tkr_batch_items", "", &m->batch_items);
    header(o, "tkr_batch_tokens", "histogram", "Estimated prompt tokens per model call.");
    render_hist(o, "tkr_batch_tokens", "", &m->batch_tokens);
    header(o, "tkr_batch_duration_seconds", "histogram", "Time of one model call.");
    render_hist(o, "tkr_batch_duration_seconds", "", &m->batch_seconds);
    header(o, "tkr_queue_wait_seconds", "histogram",
           "Time an item waited in the queue before its model call started.");
    render_hist(o, "tkr_queue_wait_seconds", "", &m->queue_wait_seconds);
    pthread_mutex_unlock(&m->mu);

    header(o, "tkr_queue_items", "gauge", "Items waiting for the model.");
    sbuf_printf(o, "tkr_queue_items %ld\n", g->queue_items);
    header(o, "tkr_queue_capacity_items", "gauge", "Most items that may wait (--max-queue-items).");
    sbuf_printf(o, "tkr_queue_capacity_items %ld\n", g->queue_capacity);
    header(o, "tkr_requests_in_flight", "gauge", "Embedding requests being handled.");
    sbuf_printf(o, "tkr_requests_in_flight %ld\n", g->requests_in_flight);
    header(o, "tkr_request_body_bytes", "gauge", "Request body bytes held by requests in flight.");
    sbuf_printf(o, "tkr_request_body_bytes %ld\n", g->body_bytes);
    header(o, "tkr_ready", "gauge", "1 when the model is loaded and requests are served.");
    sbuf_printf(o, "tkr_ready %d\n", g->ready);
    header(o, "tkr_gpu_memory_bytes", "gauge",
           "GPU memory held for the model: weights, activations (scratch, dequantization tile, GEMM "
           "workspace); 0 on the CPU.");
    sbuf_printf(o, "tkr_gpu_memory_bytes{kind=\"weights\"} %llu\n", g->gpu_weight_bytes);
    sbuf_printf(o, "tkr_gpu_memory_bytes{kind=\"activations\"} %llu\n", g->gpu_activation_bytes);
    header(o, "tkr_gpu_memory_total_bytes", "gauge", "The GPU's memory; 0 on the CPU.");
    sbuf_printf(o, "tkr_gpu_memory_total_bytes %llu\n", g->gpu_total_bytes);
    header(o, "tkr_pinned_host_bytes", "gauge", "Page-locked host memory for GPU copies; 0 on the CPU.");
    sbuf_printf(o, "tkr_pinned_host_bytes %llu\n", g->pinned_host_bytes);
    if (g->device && g->device[0]) {
        /* label value escaped as the text format asks: backslash, quote, newline */
        char esc[600];
        size_t k = 0;
        for (const char *p = g->device; *p && k + 3 < sizeof esc; p++) {
            if (*p == '\\' || *p == '"') esc[k++] = '\\';
            if (*p == '\n') {
                esc[k++] = '\\';
                esc[k++] = 'n';
                continue;
            }
            esc[k++] = *p;
        }
        esc[k] = '\0';
        header(o, "tkr_device_info", "gauge", "The compute device (value 1); absent on the CPU.");
        sbuf_printf(o, "tkr_device_info{device=\"%s\"} 1\n", esc);
    }
}

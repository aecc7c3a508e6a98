/* http.c - see http.h. The transport (http_conn.c) runs one thread per connection, so a handler
 * may block: the embeddings handler parses, tokenizes and loads images on its own thread (in
 * parallel with the model), queues its items, and waits for the batcher while watching for the
 * deadline and for the client hanging up. */
#include "server/http.h"
#include "server/api_embeddings.h"
#include "server/auth.h"
#include "server/batcher.h"
#include "server/http_conn.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/ui.h"
#include "server/sbuf.h"
#include "util/error.h"
#include "util/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { STATE_LOADING, STATE_READY, STATE_DRAINING, STATE_FAILED };

/* How often a waiting handler looks at its client and its deadline. */
#define WAIT_SLICE_S 0.1

/* After the drain timeout, how long a model call already under way may take to be answered. */
#define STOP_GRACE_S 2.0

struct tkr_server {
    const tkr_server_config *cfg;
    tkr_http_listener *listener;
    int port;
    atomic_int state;
    const tkr_engine *engine;          /* set before state becomes READY */
    tkr_batcher *batcher;
    tkr_metrics metrics;
    tkr_image_source_policy images;
    long created_unix;                 /* for /v1/models */
    char failed_reason[256];

    pthread_mutex_t mu;                /* guards in_flight and body_bytes */
    long in_flight;                    /* embedding requests between first call and completion */
    size_t body_bytes;                 /* request body bytes reserved by requests in flight */
};

/* Per-request state. */
typedef struct {
    tkr_server *srv;
    tkr_http_conn *conn;
    const tkr_http_head *head;
    tkr_route route;
    double t_start;
    bool counted;          /* included in srv->in_flight */
    bool body_too_large;
    bool over_inflight;    /* the server holds too many body bytes: 429 at the end */
    size_t reserved;       /* body bytes counted in srv->body_bytes */
    bool responded;
    int status;
    int items;
    long tokens;
    char method[16];
    char *out_data;        /* the answer, sent after the request's resources are released */
    size_t out_len;
    const char *out_type, *out_hname, *out_hvalue;
    char path[160];        /* for logs and messages: control bytes replaced, UTF-8 kept whole */
    sbuf body;
} req_ctx;

/* ---- responses ---------------------------------------------------------------------------- */

/* Records the answer: body (taken over), status, one optional header; metrics and the access
 * log. It is sent by on_request once the request's resources are released, so that a client
 * that has its answer never sees them still held. */
static void respond(req_ctx *rc, int status, const char *content_type, sbuf *body,
                    const char *hname, const char *hvalue) {
    tkr_server *s = rc->srv;
    if (rc->responded) {
        sbuf_free(body);
        return;
    }
    size_t len = 0;
    char *data = sbuf_take(body, &len);
    if (!data) {
        sbuf_free(body);
        status = 500;
        content_type = "application/json";
        hname = NULL;
    }
    rc->out_data = data;
    rc->out_len = len;
    rc->out_type = content_type;
    rc->out_hname = hname;
    rc->out_hvalue = hvalue;
    rc->responded = true;
    rc->status = status;
    double dt = tkr_now_seconds() - rc->t_start;
    tkr_metrics_request(&s->metrics, rc->route, status, dt);
    /* probes and scrapes that succeed are not logged: they would drown the requests */
    bool routine = status == 200 && (rc->route == TKR_ROUTE_HEALTH || rc->route == TKR_ROUTE_METRICS);
    if (!s->cfg->quiet && !routine) {
        const char *ip = tkr_http_client_ip(rc->conn);
        if (rc->route == TKR_ROUTE_EMBEDDINGS && status == 200)
            tkr_log("%s \"%s %s\" %d %.3fs items=%d tokens=%ld", ip, rc->method, rc->path, status,
                     dt, rc->items, rc->tokens);
        else
            tkr_log("%s \"%s %s\" %d %.3fs", ip, rc->method, rc->path, status, dt);
    }
}

/* Sends the recorded answer. */
static void send_answer(req_ctx *rc) {
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    tkr_http_respond(rc->conn, rc->status, rc->out_type, rc->out_data ? rc->out_data : oom,
                     rc->out_data ? rc->out_len : sizeof oom - 1, rc->out_hname, rc->out_hvalue,
                     atomic_load(&rc->srv->state) == STATE_DRAINING);
    free(rc->out_data);
    rc->out_data = NULL;
}

static void respond_error(req_ctx *rc, const tkr_api_error *e) {
    sbuf b;
    sbuf_init(&b, 0);
    tkr_api_write_error(e, &b);
    const char *hname = NULL, *hvalue = NULL;
    if (e->status == 401) { hname = "WWW-Authenticate"; hvalue = "Bearer"; }
    else if (e->status == 429 || e->status == 503) { hname = "Retry-After"; hvalue = "1"; }
    respond(rc, e->status, "application/json", &b, hname, hvalue);
}

static void respond_errorf(req_ctx *rc, int status, const char *type, const char *code,
                           const char *param, const char *msg) {
    tkr_api_error e;
    tkr_api_error_set(&e, status, type, code, param, "%s", msg);
    respond_error(rc, &e);
}

static void respond_not_ready(req_ctx *rc) {
    tkr_server *s = rc->srv;
    int st = atomic_load(&s->state);
    const char *msg = st == STATE_LOADING ? "the model is still loading; retry shortly"
                      : st == STATE_DRAINING ? "the server is shutting down"
                                             : "the model failed to load";
    respond_errorf(rc, 503, "server_error",
                          st == STATE_LOADING ? "model_loading" : st == STATE_DRAINING ? "shutting_down" : "model_failed",
                          NULL, msg);
}

static const char *served_model_name(const tkr_server *s) {
    if (s->cfg->model_name) return s->cfg->model_name;
    return s->engine && s->engine->model_name ? s->engine->model_name : "unknown";
}

/* ---- simple routes ------------------------------------------------------------------------ */

static void handle_health(req_ctx *rc) {
    tkr_server *s = rc->srv;
    int st = atomic_load(&s->state);
    sbuf b;
    sbuf_init(&b, 0);
    if (st == STATE_READY) {
        sbuf_puts(&b, "{\"status\":\"ok\",\"model\":");
        const char *name = served_model_name(s);
        sbuf_json_string(&b, name, strlen(name));
        sbuf_puts(&b, "}");
        respond(rc, 200, "application/json", &b, NULL, NULL);
        return;
    }
    const char *word = st == STATE_LOADING ? "loading" : st == STATE_DRAINING ? "draining" : "failed";
    sbuf_printf(&b, "{\"status\":\"%s\"", word);
    if (st == STATE_FAILED) {
        sbuf_puts(&b, ",\"error\":");
        sbuf_json_string(&b, s->failed_reason, strlen(s->failed_reason));
    }
    sbuf_puts(&b, "}");
    respond(rc, 503, "application/json", &b, "Retry-After", "1");
}

static void write_model_object(const tkr_server *s, sbuf *b) {
    const char *name = served_model_name(s);
    sbuf_puts(b, "{\"id\":");
    sbuf_json_string(b, name, strlen(name));
    sbuf_printf(b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"tkr-embed\"}",
                s->created_unix);
}

/* GET /v1/models lists the one model; GET /v1/models/<id> returns it or 404. */
static void handle_models(req_ctx *rc, const char *url) {
    tkr_server *s = rc->srv;
    if (atomic_load(&s->state) != STATE_READY) {
        respond_not_ready(rc);
        return;
    }
    const char *id = NULL;
    if (!strncmp(url, "/v1/models/", 11)) id = url + 11;
    else if (!strncmp(url, "/models/", 8)) id = url + 8;
    sbuf b;
    sbuf_init(&b, 0);
    if (id) {
        if (strcmp(id, served_model_name(s)) != 0) {
            char msg[400];
            char shown[204];
            tkr_utf8_copy(shown, sizeof shown, id);
            snprintf(msg, sizeof msg, "The model '%s' does not exist", shown);
            respond_errorf(rc, 404, "invalid_request_error", "model_not_found", "model", msg);
            return;
        }
        write_model_object(s, &b);
    } else {
        sbuf_puts(&b, "{\"object\":\"list\",\"data\":[");
        write_model_object(s, &b);
        sbuf_puts(&b, "]}");
    }
    respond(rc, 200, "application/json", &b, NULL, NULL);
}

static void handle_metrics(req_ctx *rc) {
    tkr_server *s = rc->srv;
    tkr_metrics_gauges g;
    g.ready = atomic_load(&s->state) == STATE_READY;
    g.queue_items = g.ready ? tkr_batcher_queued_items(s->batcher) : 0;
    g.queue_capacity = s->cfg->max_queue_items;
    pthread_mutex_lock(&s->mu);
    g.requests_in_flight = s->in_flight;
    g.body_bytes = (long)s->body_bytes;
    pthread_mutex_unlock(&s->mu);
    g.device = NULL;
    g.gpu_weight_bytes = g.gpu_activation_bytes = g.gpu_total_bytes = g.pinned_host_bytes = 0;
    if (g.ready && s->engine->device_memory) {
        tkr_device_memory d;
        s->engine->device_memory(s->engine->impl, &d);
        g.device = s->engine->device_name;
        g.gpu_weight_bytes = d.weight_bytes;
        g.gpu_activation_bytes = d.activation_bytes;
        g.gpu_total_bytes = d.total_bytes;
        g.pinned_host_bytes = d.pinned_host_bytes;
    }
    sbuf b;
    sbuf_init(&b, 0);
    tkr_metrics_render(&s->metrics, &g, &b);
    respond(rc, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL, NULL);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

/* Queues the request's items, waits for them, and answers (or drops the connection when the
 * client went away while waiting). */
static void run_embeddings(req_ctx *rc, tkr_api_request *req) {
    tkr_server *s = rc->srv;
    const tkr_engine *eng = s->engine;
    int n = req->n_items;
    size_t n_floats;
    tkr_api_error e;
    tkr_item *items = calloc((size_t)n, sizeof *items);
    void **prepared = calloc((size_t)n, sizeof *prepared);
    int *tokens = calloc((size_t)n, sizeof *tokens), *image_tokens = calloc((size_t)n, sizeof *image_tokens);
    tkr_result *results = calloc((size_t)n, sizeof *results);
    float *vectors = tkr_mul_size((size_t)n, (size_t)eng->dim, &n_floats) ? malloc(sizeof(float) * n_floats) : NULL;
    tkr_batch_job job;
    memset(&job, 0, sizeof job);
    tkr_error err;
    tkr_error_clear(&err);
    if (!items || !prepared || !tokens || !image_tokens || !results || !vectors ||
        tkr_batch_job_init(&job, &err) != TKR_OK) {
        respond_errorf(rc, 500, "server_error", NULL, NULL, "out of memory");
        goto out_nojob;
    }
    for (int i = 0; i < n; i++) {
        items[i] = req->items[i].item;
        prepared[i] = req->items[i].prepared;
        tokens[i] = req->items[i].est_tokens;
        image_tokens[i] = req->items[i].image_tokens;
    }
    job.items = items;
    job.prepared = prepared;
    job.tokens = tokens;
    job.image_tokens = image_tokens;
    job.n_items = n;
    job.vectors = vectors;
    job.results = results;
    tkr_status st = tkr_batcher_submit(s->batcher, &job, &err);
    if (st == TKR_ERR_LIMIT) {
        respond_errorf(rc, 429, "server_overloaded", "queue_full", NULL, err.message);
        goto out;
    }
    if (st != TKR_OK) {
        respond_errorf(rc, 503, "server_error", "shutting_down", NULL, err.message);
        goto out;
    }
    double until = rc->t_start + s->cfg->request_timeout_s;
    for (;;) {
        double now = tkr_now_seconds();
        double slice = now + WAIT_SLICE_S < until ? now + WAIT_SLICE_S : until;
        if (tkr_batcher_wait(s->batcher, &job, slice)) break;
        if (tkr_http_client_gone(rc->conn)) {
            tkr_batcher_cancel(s->batcher, &job);
            if (!s->cfg->quiet) tkr_log("client closed the connection; %d queued items dropped", n - job.n_done);
            goto out;
        }
        if (tkr_now_seconds() >= until) {
            tkr_batcher_cancel(s->batcher, &job);
            char msg[200];
            snprintf(msg, sizeof msg, "the request did not finish within the server's %.3g s deadline",
                     s->cfg->request_timeout_s);
            respond_errorf(rc, 503, "server_error", "timeout", NULL, msg);
            goto out;
        }
    }
    if (job.aborted) {
        respond_errorf(rc, 503, "server_error", "shutting_down", NULL,
                             "the server shut down before this request was computed");
        goto out;
    }
    if (job.call_failed) {
        const char *why = "the model call failed";
        for (int i = 0; i < n; i++)
            if (results[i].status != TKR_OK && results[i].message[0]) { why = results[i].message; break; }
        respond_errorf(rc, 500, "server_error", NULL, NULL, why);
        goto out;
    }
    if (tkr_api_check_results(req, results, &e) != TKR_OK) {
        respond_error(rc, &e);
        goto out;
    }
    sbuf b;
    sbuf_init(&b, 0);
    if (!tkr_api_write_response(req, served_model_name(s), eng->dim, vectors, results, &b)) {
        sbuf_free(&b);
        respond_errorf(rc, 500, "server_error", NULL, NULL,
                             "could not build the response (out of memory or a non-finite value)");
        goto out;
    }
    long prompt_tokens = 0, truncated = 0;
    for (int i = 0; i < n; i++) {
        prompt_tokens += results[i].prompt_tokens;
        truncated += results[i].truncated_tokens > 0;
    }
    rc->items = n;
    rc->tokens = prompt_tokens;
    tkr_metrics_embedded(&s->metrics, n, prompt_tokens, req->n_images, truncated);
    respond(rc, 200, "application/json", &b, NULL, NULL);
out:
    tkr_batch_job_destroy(&job);
out_nojob:
    free(items); free(prepared); free(tokens); free(image_tokens); free(results); free(vectors);
}

/* The body is complete: parse, validate, prepare, run. */
static void finish_embeddings(req_ctx *rc) {
    tkr_server *s = rc->srv;
    if (atomic_load(&s->state) != STATE_READY) {
        respond_not_ready(rc);
        return;
    }
    tkr_api_request req;
    tkr_api_error e;
    static const char empty[] = "";
    const char *body = rc->body.data ? rc->body.data : empty;
    if (tkr_api_parse_embeddings(s->cfg, s->engine, &s->images, body, rc->body.len, &req, &e) != TKR_OK) {
        sbuf_free(&rc->body);
        respond_error(rc, &e);
        return;
    }
    sbuf_free(&rc->body);
    if (tkr_api_prepare(s->engine, &req, &e) != TKR_OK) respond_error(rc, &e);
    else run_embeddings(rc, &req);
    tkr_api_request_free(s->engine, &req);
}

/* ---- dispatch --------------------------------------------------------------------------------- */

static tkr_route match_route(const char *url) {
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings")) return TKR_ROUTE_EMBEDDINGS;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models") || !strncmp(url, "/v1/models/", 11) ||
        !strncmp(url, "/models/", 8))
        return TKR_ROUTE_MODELS;
    if (!strcmp(url, "/health")) return TKR_ROUTE_HEALTH;
    if (!strcmp(url, "/metrics")) return TKR_ROUTE_METRICS;
    return TKR_ROUTE_OTHER;
}

static bool is_get(const char *method) { return !strcmp(method, "GET") || !strcmp(method, "HEAD"); }

static void method_not_allowed(req_ctx *rc, const char *allow) {
    tkr_api_error e;
    tkr_api_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                      "method %s is not allowed on %s (use %s)", rc->method, rc->path, allow);
    sbuf b;
    sbuf_init(&b, 0);
    tkr_api_write_error(&e, &b);
    respond(rc, 405, "application/json", &b, "Allow", allow);
}

static void respond_unauthorized(req_ctx *rc) {
    respond_errorf(rc, 401, "authentication_error", "invalid_api_key", NULL,
                   rc->head->authorization ? "invalid API key"
                                           : "missing API key (send 'Authorization: Bearer <key>')");
}

/* Answers every request except an embeddings POST. */
static void dispatch(req_ctx *rc, const char *url) {
    tkr_server *s = rc->srv;
    if (rc->route == TKR_ROUTE_HEALTH) {
        if (is_get(rc->method)) handle_health(rc);
        else method_not_allowed(rc, "GET");
        return;
    }
    const char *ui_body, *ui_type;
    size_t ui_len;
    /* the playground page holds no data: it is served without a key, and its API calls carry
     * the key the user types into it */
    if (rc->route == TKR_ROUTE_OTHER && !s->cfg->no_ui && tkr_ui_lookup(url, &ui_body, &ui_len, &ui_type)) {
        if (!is_get(rc->method)) {
            method_not_allowed(rc, "GET");
            return;
        }
        sbuf b;
        sbuf_init(&b, ui_len);
        sbuf_append(&b, ui_body, ui_len);
        respond(rc, 200, ui_type, &b, "Cache-Control", "no-cache");
        return;
    }
    if (!tkr_auth_check(rc->head->authorization, s->cfg->api_keys, s->cfg->n_api_keys)) {
        respond_unauthorized(rc);
        return;
    }
    switch (rc->route) {
    case TKR_ROUTE_MODELS:
        if (is_get(rc->method)) handle_models(rc, url);
        else method_not_allowed(rc, "GET");
        return;
    case TKR_ROUTE_METRICS:
        if (is_get(rc->method)) handle_metrics(rc);
        else method_not_allowed(rc, "GET");
        return;
    case TKR_ROUTE_EMBEDDINGS:
        method_not_allowed(rc, "POST");
        return;
    default: {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown route: %s %s", rc->method, rc->path);
        respond_errorf(rc, 404, "invalid_request_error", "unknown_url", NULL, msg);
        return;
    }
    }
}

/* Counts n more body bytes for this request against --max-inflight-bytes: the bound on the
 * memory that request bodies (and what is parsed from them) take at once. */
static bool reserve_body(req_ctx *rc, size_t n) {
    tkr_server *s = rc->srv;
    pthread_mutex_lock(&s->mu);
    bool ok = n <= s->cfg->max_inflight_bytes - s->body_bytes;
    if (ok) {
        s->body_bytes += n;
        rc->reserved += n;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void respond_too_many_bytes(req_ctx *rc) {
    respond_errorf(rc, 429, "server_overloaded", "too_many_bytes_in_flight", NULL,
                   "the server holds too many request bodies at the moment; retry later");
}

static void respond_too_large(req_ctx *rc) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", rc->srv->cfg->max_body_bytes);
    respond_errorf(rc, 413, "invalid_request_error", "request_too_large", NULL, msg);
}

/* Collects body bytes: refuses past --max-body-bytes, and reserves against
 * --max-inflight-bytes what a Content-Length did not reserve in advance (chunked bodies). */
static bool body_sink(void *ctx, const char *data, size_t n) {
    req_ctx *rc = ctx;
    tkr_server *s = rc->srv;
    if (n > s->cfg->max_body_bytes - rc->body.len) {
        rc->body_too_large = true;
        return false;
    }
    if (rc->body.len + n > rc->reserved && !reserve_body(rc, rc->body.len + n - rc->reserved)) {
        rc->over_inflight = true;
        return false;
    }
    sbuf_append(&rc->body, data, n);
    return sbuf_ok(&rc->body);
}

/* An embeddings POST. What can be refused without the body is refused first, auth first, so
 * that an unauthenticated, oversized or untimely request costs no body buffering (the
 * connection is then closed, its body unread). */
static void handle_embeddings(req_ctx *rc) {
    tkr_server *s = rc->srv;
    const tkr_http_head *h = rc->head;
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    pthread_mutex_unlock(&s->mu);
    rc->counted = true;
    if (!tkr_auth_check(h->authorization, s->cfg->api_keys, s->cfg->n_api_keys)) {
        respond_unauthorized(rc);
        return;
    }
    if (atomic_load(&s->state) != STATE_READY) {
        respond_not_ready(rc);
        return;
    }
    if (h->has_length && h->content_length > s->cfg->max_body_bytes) {
        respond_too_large(rc);
        return;
    }
    if (h->has_length && !reserve_body(rc, (size_t)h->content_length)) {
        respond_too_many_bytes(rc);
        return;
    }
    sbuf_init(&rc->body, s->cfg->max_body_bytes);
    tkr_http_continue(rc->conn);
    tkr_http_perr pe;
    int r = tkr_http_read_body(rc->conn, rc->t_start + s->cfg->read_timeout_s, body_sink, rc, &pe);
    if (r == 0) {
        if (!s->cfg->quiet)
            tkr_log("%s %s: body not received within %.3g s (or the client left), closing", rc->method,
                    rc->path, s->cfg->read_timeout_s);
        return;
    }
    if (r == -1) {
        sbuf_free(&rc->body);
        respond_errorf(rc, pe.status, "invalid_request_error", pe.code, NULL, pe.message);
        return;
    }
    if (r == -2) {
        sbuf_free(&rc->body);
        if (rc->body_too_large) respond_too_large(rc);
        else if (rc->over_inflight) respond_too_many_bytes(rc);
        else respond_errorf(rc, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    finish_embeddings(rc);
}

/* Copies a client-supplied string for logs and messages, control bytes replaced by '?' (the
 * path arrives percent-decoded and could otherwise forge log lines), cut on a UTF-8 boundary. */
static void copy_printable(char *dst, size_t cap, const char *src) {
    tkr_utf8_copy(dst, cap, src);
    for (size_t i = 0; dst[i]; i++) {
        unsigned char c = (unsigned char)dst[i];
        if (c < 0x20 || c == 0x7f) dst[i] = '?';
    }
}

/* The transport's handler: one request, answered on this thread. */
static void on_request(void *app, tkr_http_conn *conn, const tkr_http_head *h, const char *path) {
    tkr_server *s = app;
    req_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.srv = s;
    rc.conn = conn;
    rc.head = h;
    rc.t_start = tkr_now_seconds();
    rc.route = match_route(path);
    copy_printable(rc.method, sizeof rc.method, h->method);
    copy_printable(rc.path, sizeof rc.path, path);
    if (rc.route == TKR_ROUTE_EMBEDDINGS && !strcmp(h->method, "POST")) handle_embeddings(&rc);
    else dispatch(&rc, path);
    if (!rc.responded) {
        /* 499: nginx's "client closed request", so the metrics show disconnects */
        double dt = tkr_now_seconds() - rc.t_start;
        tkr_metrics_request(&s->metrics, rc.route, 499, dt);
        if (!s->cfg->quiet) tkr_log("\"%s %s\" 499 %.3fs (client closed the connection or timed out)", rc.method, rc.path, dt);
    }
    sbuf_free(&rc.body);
    if (rc.reserved) {
        pthread_mutex_lock(&s->mu);
        s->body_bytes -= rc.reserved;
        pthread_mutex_unlock(&s->mu);
    }
    if (rc.responded) send_answer(&rc);
    /* a drain waits for this: the answer is out */
    if (rc.counted) {
        pthread_mutex_lock(&s->mu);
        s->in_flight--;
        pthread_mutex_unlock(&s->mu);
    }
}

/* Requests the transport refused by itself (malformed, too slow, over the connection caps):
 * counted under the "other" route, and logged. */
static void on_transport_error(void *app, const char *ip, int status, const char *message) {
    tkr_server *s = app;
    tkr_metrics_request(&s->metrics, TKR_ROUTE_OTHER, status, 0);
    if (!s->cfg->quiet) tkr_log("%s %d %s", ip, status, message);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

tkr_status tkr_server_start(const tkr_server_config *cfg, tkr_server **out, tkr_error *err) {
    *out = NULL;
    tkr_server *s = calloc(1, sizeof *s);
    if (!s) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    s->cfg = cfg;
    atomic_init(&s->state, STATE_LOADING);
    s->created_unix = (long)time(NULL);
    s->images.max_bytes = cfg->max_image_bytes;
    s->images.image_dir = cfg->image_dir;
    s->images.allow_remote = cfg->allow_remote_images;
    s->images.fetch.allowed_hosts = cfg->remote_hosts;
    s->images.fetch.n_allowed_hosts = cfg->n_remote_hosts;
    s->images.fetch.timeout_s = cfg->remote_timeout_s;
    s->images.fetch.max_bytes = cfg->max_image_bytes;
    if (tkr_metrics_init(&s->metrics) != 0 || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return tkr_fail(err, TKR_ERR_INTERNAL, "cannot initialise server state");
    }
    tkr_http_listener_config lc;
    memset(&lc, 0, sizeof lc);
    lc.host = cfg->host;
    lc.port = cfg->port;
    lc.max_connections = cfg->max_connections;
    lc.max_connections_per_ip = cfg->max_connections_per_ip;
    lc.idle_timeout_s = cfg->idle_timeout_s;
    lc.header_timeout_s = cfg->header_timeout_s > 0 ? cfg->header_timeout_s : 10;
    lc.send_timeout_s = cfg->read_timeout_s;
    lc.handler = on_request;
    lc.on_error = on_transport_error;
    lc.app = s;
    tkr_status st = tkr_http_listen(&lc, &s->listener, err);
    if (st != TKR_OK) {
        tkr_metrics_destroy(&s->metrics);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return st;
    }
    s->port = tkr_http_listener_port(s->listener);
    *out = s;
    return TKR_OK;
}

int tkr_server_port(const tkr_server *s) { return s->port; }

tkr_batcher_params tkr_server_batch_budgets(const tkr_server_config *c, const tkr_engine *engine) {
    tkr_batcher_params bp = {
        c->max_batch_items > 0 ? c->max_batch_items : engine->batch_items > 0 ? engine->batch_items : 64,
        c->max_batch_tokens > 0 ? c->max_batch_tokens : engine->batch_tokens > 0 ? engine->batch_tokens : 8192,
        c->max_batch_image_tokens > 0 ? c->max_batch_image_tokens
        : engine->batch_image_tokens > 0 ? engine->batch_image_tokens : 5120,
        c->max_queue_items};
    return bp;
}

tkr_status tkr_server_set_engine(tkr_server *s, const tkr_engine *engine, tkr_error *err) {
    if (atomic_load(&s->state) != STATE_LOADING)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "the server is not waiting for an engine");
    tkr_batcher_params bp = tkr_server_batch_budgets(s->cfg, engine);
    tkr_log("batch budgets: %d items, %d prompt tokens, %d image tokens per model call%s%s", bp.max_batch_items,
            bp.max_batch_tokens, bp.max_batch_image_tokens, engine->device_name ? " on " : "",
            engine->device_name ? engine->device_name : "");
    tkr_status st = tkr_batcher_create(&bp, engine, &s->metrics, &s->batcher, err);
    if (st != TKR_OK) return st;
    s->engine = engine;
    int expected = STATE_LOADING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, STATE_READY)) {
        /* stopped meanwhile: nothing can have used the batcher */
        tkr_batcher_free(s->batcher);
        s->batcher = NULL;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "the server is stopping");
    }
    return TKR_OK;
}

void tkr_server_set_failed(tkr_server *s, const char *reason) {
    snprintf(s->failed_reason, sizeof s->failed_reason, "%s", reason ? reason : "unknown");
    int expected = STATE_LOADING;
    atomic_compare_exchange_strong(&s->state, &expected, STATE_FAILED);
}

int tkr_server_stop(tkr_server *s) {
    if (!s) return 0;
    atomic_store(&s->state, STATE_DRAINING);
    tkr_http_quiesce(s->listener);
    /* wait for requests in flight (their bodies, queueing and compute) */
    double until = tkr_now_seconds() + s->cfg->drain_timeout_s;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    long left;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        left = s->in_flight;
        pthread_mutex_unlock(&s->mu);
        if (left == 0 || tkr_now_seconds() >= until) break;
        nanosleep(&tick, NULL);
    }
    /* past the drain timeout: whatever is still queued fails with 503 (handlers wake up and
     * answer); a model call under way gets a short grace to finish and be answered, then every
     * connection is closed */
    if (s->batcher) tkr_batcher_stop(s->batcher, false);
    if (left > 0) {
        double grace = tkr_now_seconds() + STOP_GRACE_S;
        long now_left;
        do {
            nanosleep(&tick, NULL);
            pthread_mutex_lock(&s->mu);
            now_left = s->in_flight;
            pthread_mutex_unlock(&s->mu);
        } while (now_left > 0 && tkr_now_seconds() < grace);
    }
    tkr_http_close(s->listener);
    tkr_batcher_free(s->batcher);
    tkr_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return (int)left;
}

/* http.c - see http.h. libmicrohttpd runs one thread per connection, so a handler may block:
 * the embeddings handler parses, tokenizes and loads images on its own thread (in parallel with
 * the model), queues its items, and waits for the batcher while watching for the deadline and
 * for the client hanging up. */
#include "server/http.h"
#include "server/api_embeddings.h"
#include "server/auth.h"
#include "server/batcher.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/ui.h"
#include "server/sbuf.h"
#include "util/error.h"
#include "util/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
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
    struct MHD_Daemon *daemon;
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

/* Per-request state, MHD's *con_cls. */
typedef struct {
    tkr_server *srv;
    tkr_route route;
    double t_start;
    bool counted;          /* included in srv->in_flight */
    bool reading_body;     /* an embeddings POST whose body is being collected */
    bool body_too_large;
    bool over_inflight;    /* the server holds too many body bytes: 429 at the end */
    size_t reserved;       /* body bytes counted in srv->body_bytes */
    bool responded;
    int status;
    int items;
    long tokens;
    char method[16];
    char path[160];
    sbuf body;
} req_ctx;

/* ---- logging ------------------------------------------------------------------------------ */

/* libmicrohttpd's own messages, in our log format. "Application reported internal error" is
 * what MHD says when a handler drops a connection on purpose (client gone, body too slow);
 * the handler logs the real reason, so that line is left out. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strstr(msg, "Application reported internal error")) return;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    tkr_log("http: %s", msg);
}

/* The peer's address for the access log ("-" when unknown). */
static void client_ip(struct MHD_Connection *conn, char *buf, size_t cap) {
    snprintf(buf, cap, "-");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)cap);
}

/* ---- responses ---------------------------------------------------------------------------- */

/* Queues body (taken over) with status; records metrics and the access log. */
static enum MHD_Result respond(req_ctx *rc, struct MHD_Connection *conn, int status,
                               const char *content_type, sbuf *body, const char *hname,
                               const char *hvalue) {
    tkr_server *s = rc->srv;
    size_t len = 0;
    char *data = sbuf_take(body, &len);
    if (!data) {
        sbuf_free(body);
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        data = malloc(sizeof oom);
        if (!data) return MHD_NO;
        memcpy(data, oom, sizeof oom);
        len = sizeof oom - 1;
        status = 500;
        content_type = "application/json";
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(data); return MHD_NO; }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (hname) MHD_add_response_header(r, hname, hvalue);
    if (atomic_load(&s->state) == STATE_DRAINING)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    rc->responded = true;
    rc->status = status;
    double dt = tkr_now_seconds() - rc->t_start;
    tkr_metrics_request(&s->metrics, rc->route, status, dt);
    /* probes and scrapes that succeed are not logged: they would drown the requests */
    bool routine = status == 200 && (rc->route == TKR_ROUTE_HEALTH || rc->route == TKR_ROUTE_METRICS);
    if (!s->cfg->quiet && !routine) {
        char ip[64];
        client_ip(conn, ip, sizeof ip);
        if (rc->route == TKR_ROUTE_EMBEDDINGS && status == 200)
            tkr_log("%s \"%s %s\" %d %.3fs items=%d tokens=%ld", ip, rc->method, rc->path, status,
                     dt, rc->items, rc->tokens);
        else
            tkr_log("%s \"%s %s\" %d %.3fs", ip, rc->method, rc->path, status, dt);
    }
    return ok;
}

static enum MHD_Result respond_error(req_ctx *rc, struct MHD_Connection *conn,
                                     const tkr_api_error *e) {
    sbuf b;
    sbuf_init(&b, 0);
    tkr_api_write_error(e, &b);
    const char *hname = NULL, *hvalue = NULL;
    if (e->status == 401) { hname = MHD_HTTP_HEADER_WWW_AUTHENTICATE; hvalue = "Bearer"; }
    else if (e->status == 429 || e->status == 503) { hname = MHD_HTTP_HEADER_RETRY_AFTER; hvalue = "1"; }
    return respond(rc, conn, e->status, "application/json", &b, hname, hvalue);
}

static enum MHD_Result respond_errorf(req_ctx *rc, struct MHD_Connection *conn, int status,
                                      const char *type, const char *code, const char *param,
                                      const char *msg) {
    tkr_api_error e;
    tkr_api_error_set(&e, status, type, code, param, "%s", msg);
    return respond_error(rc, conn, &e);
}

static enum MHD_Result respond_not_ready(req_ctx *rc, struct MHD_Connection *conn) {
    tkr_server *s = rc->srv;
    int st = atomic_load(&s->state);
    const char *msg = st == STATE_LOADING ? "the model is still loading; retry shortly"
                      : st == STATE_DRAINING ? "the server is shutting down"
                                             : "the model failed to load";
    return respond_errorf(rc, conn, 503, "server_error",
                          st == STATE_LOADING ? "model_loading" : st == STATE_DRAINING ? "shutting_down" : "model_failed",
                          NULL, msg);
}

static const char *served_model_name(const tkr_server *s) {
    if (s->cfg->model_name) return s->cfg->model_name;
    return s->engine && s->engine->model_name ? s->engine->model_name : "unknown";
}

/* ---- simple routes ------------------------------------------------------------------------ */

static enum MHD_Result handle_health(req_ctx *rc, struct MHD_Connection *conn) {
    tkr_server *s = rc->srv;
    int st = atomic_load(&s->state);
    sbuf b;
    sbuf_init(&b, 0);
    if (st == STATE_READY) {
        sbuf_puts(&b, "{\"status\":\"ok\",\"model\":");
        const char *name = served_model_name(s);
        sbuf_json_string(&b, name, strlen(name));
        sbuf_puts(&b, "}");
        return respond(rc, conn, 200, "application/json", &b, NULL, NULL);
    }
    const char *word = st == STATE_LOADING ? "loading" : st == STATE_DRAINING ? "draining" : "failed";
    sbuf_printf(&b, "{\"status\":\"%s\"", word);
    if (st == STATE_FAILED) {
        sbuf_puts(&b, ",\"error\":");
        sbuf_json_string(&b, s->failed_reason, strlen(s->failed_reason));
    }
    sbuf_puts(&b, "}");
    return respond(rc, conn, 503, "application/json", &b, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

static void write_model_object(const tkr_server *s, sbuf *b) {
    const char *name = served_model_name(s);
    sbuf_puts(b, "{\"id\":");
    sbuf_json_string(b, name, strlen(name));
    sbuf_printf(b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"tkr-embed\"}",
                s->created_unix);
}

/* GET /v1/models lists the one model; GET /v1/models/<id> returns it or 404. */
static enum MHD_Result handle_models(req_ctx *rc, struct MHD_Connection *conn, const char *url) {
    tkr_server *s = rc->srv;
    if (atomic_load(&s->state) != STATE_READY) return respond_not_ready(rc, conn);
    const char *id = NULL;
    if (!strncmp(url, "/v1/models/", 11)) id = url + 11;
    else if (!strncmp(url, "/models/", 8)) id = url + 8;
    sbuf b;
    sbuf_init(&b, 0);
    if (id) {
        if (strcmp(id, served_model_name(s)) != 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "The model '%.200s' does not exist", id);
            return respond_errorf(rc, conn, 404, "invalid_request_error", "model_not_found", "model", msg);
        }
        write_model_object(s, &b);
    } else {
        sbuf_puts(&b, "{\"object\":\"list\",\"data\":[");
        write_model_object(s, &b);
        sbuf_puts(&b, "]}");
    }
    return respond(rc, conn, 200, "application/json", &b, NULL, NULL);
}

static enum MHD_Result handle_metrics(req_ctx *rc, struct MHD_Connection *conn) {
    tkr_server *s = rc->srv;
    tkr_metrics_gauges g;
    g.ready = atomic_load(&s->state) == STATE_READY;
    g.queue_items = g.ready ? tkr_batcher_queued_items(s->batcher) : 0;
    g.queue_capacity = s->cfg->max_queue_items;
    pthread_mutex_lock(&s->mu);
    g.requests_in_flight = s->in_flight;
    g.body_bytes = (long)s->body_bytes;
    pthread_mutex_unlock(&s->mu);
    sbuf b;
    sbuf_init(&b, 0);
    tkr_metrics_render(&s->metrics, &g, &b);
    return respond(rc, conn, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL, NULL);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

/* True when the client has closed its end: an orderly FIN reads as 0 bytes, a reset as an
 * error. Data waiting (a pipelined request) means it is still there. */
static bool client_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    return false;
}

/* Queues the request's items, waits for them, and answers. Returns MHD_NO (drop the
 * connection) when the client went away while waiting. */
static enum MHD_Result run_embeddings(req_ctx *rc, struct MHD_Connection *conn,
                                      tkr_api_request *req) {
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
    enum MHD_Result ret;
    tkr_batch_job job;
    memset(&job, 0, sizeof job);
    tkr_error err;
    tkr_error_clear(&err);
    if (!items || !prepared || !tokens || !image_tokens || !results || !vectors ||
        tkr_batch_job_init(&job, &err) != TKR_OK) {
        ret = respond_errorf(rc, conn, 500, "server_error", NULL, NULL, "out of memory");
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
        ret = respond_errorf(rc, conn, 429, "server_overloaded", "queue_full", NULL, err.message);
        goto out;
    }
    if (st != TKR_OK) {
        ret = respond_errorf(rc, conn, 503, "server_error", "shutting_down", NULL, err.message);
        goto out;
    }
    double until = rc->t_start + s->cfg->request_timeout_s;
    for (;;) {
        double now = tkr_now_seconds();
        double slice = now + WAIT_SLICE_S < until ? now + WAIT_SLICE_S : until;
        if (tkr_batcher_wait(s->batcher, &job, slice)) break;
        if (client_gone(conn)) {
            tkr_batcher_cancel(s->batcher, &job);
            if (!s->cfg->quiet) tkr_log("client closed the connection; %d queued items dropped", n - job.n_done);
            ret = MHD_NO;
            goto out;
        }
        if (tkr_now_seconds() >= until) {
            tkr_batcher_cancel(s->batcher, &job);
            char msg[200];
            snprintf(msg, sizeof msg, "the request did not finish within the server's %.3g s deadline",
                     s->cfg->request_timeout_s);
            ret = respond_errorf(rc, conn, 503, "server_error", "timeout", NULL, msg);
            goto out;
        }
    }
    if (job.aborted) {
        ret = respond_errorf(rc, conn, 503, "server_error", "shutting_down", NULL,
                             "the server shut down before this request was computed");
        goto out;
    }
    if (job.call_failed) {
        const char *why = "the model call failed";
        for (int i = 0; i < n; i++)
            if (results[i].status != TKR_OK && results[i].message[0]) { why = results[i].message; break; }
        ret = respond_errorf(rc, conn, 500, "server_error", NULL, NULL, why);
        goto out;
    }
    if (tkr_api_check_results(req, results, &e) != TKR_OK) {
        ret = respond_error(rc, conn, &e);
        goto out;
    }
    sbuf b;
    sbuf_init(&b, 0);
    if (!tkr_api_write_response(req, served_model_name(s), eng->dim, vectors, results, &b)) {
        sbuf_free(&b);
        ret = respond_errorf(rc, conn, 500, "server_error", NULL, NULL,
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
    ret = respond(rc, conn, 200, "application/json", &b, NULL, NULL);
out:
    tkr_batch_job_destroy(&job);
out_nojob:
    free(items); free(prepared); free(tokens); free(image_tokens); free(results); free(vectors);
    return ret;
}

/* The body is complete: parse, validate, prepare, run. */
static enum MHD_Result finish_embeddings(req_ctx *rc, struct MHD_Connection *conn) {
    tkr_server *s = rc->srv;
    if (rc->body_too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->cfg->max_body_bytes);
        return respond_errorf(rc, conn, 413, "invalid_request_error", "request_too_large", NULL, msg);
    }
    if (atomic_load(&s->state) != STATE_READY) return respond_not_ready(rc, conn);
    tkr_api_request req;
    tkr_api_error e;
    static const char empty[] = "";
    const char *body = rc->body.data ? rc->body.data : empty;
    if (tkr_api_parse_embeddings(s->cfg, s->engine, &s->images, body, rc->body.len, &req, &e) != TKR_OK) {
        sbuf_free(&rc->body);
        return respond_error(rc, conn, &e);
    }
    sbuf_free(&rc->body);
    enum MHD_Result ret;
    if (tkr_api_prepare(s->engine, &req, &e) != TKR_OK) ret = respond_error(rc, conn, &e);
    else ret = run_embeddings(rc, conn, &req);
    tkr_api_request_free(s->engine, &req);
    return ret;
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

static enum MHD_Result method_not_allowed(req_ctx *rc, struct MHD_Connection *conn, const char *allow) {
    tkr_api_error e;
    tkr_api_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                      "method %s is not allowed on %s (use %s)", rc->method, rc->path, allow);
    sbuf b;
    sbuf_init(&b, 0);
    tkr_api_write_error(&e, &b);
    return respond(rc, conn, 405, "application/json", &b, MHD_HTTP_HEADER_ALLOW, allow);
}

/* Answers every request except an embeddings POST: called once the request is complete
 * (answering in MHD's first call would make it close the connection, losing keep-alive). */
static enum MHD_Result dispatch(req_ctx *rc, struct MHD_Connection *conn, const char *url) {
    tkr_server *s = rc->srv;
    if (rc->route == TKR_ROUTE_HEALTH)
        return is_get(rc->method) ? handle_health(rc, conn) : method_not_allowed(rc, conn, "GET");
    const char *ui_body, *ui_type;
    size_t ui_len;
    /* the playground page holds no data: it is served without a key, and its API calls carry
     * the key the user types into it */
    if (rc->route == TKR_ROUTE_OTHER && !s->cfg->no_ui && tkr_ui_lookup(url, &ui_body, &ui_len, &ui_type)) {
        if (!is_get(rc->method)) return method_not_allowed(rc, conn, "GET");
        sbuf b;
        sbuf_init(&b, ui_len);
        sbuf_append(&b, ui_body, ui_len);
        return respond(rc, conn, 200, ui_type, &b, "Cache-Control", "no-cache");
    }
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!tkr_auth_check(authz, s->cfg->api_keys, s->cfg->n_api_keys))
        return respond_errorf(rc, conn, 401, "authentication_error", "invalid_api_key", NULL,
                              authz ? "invalid API key" : "missing API key (send 'Authorization: Bearer <key>')");
    switch (rc->route) {
    case TKR_ROUTE_MODELS:
        return is_get(rc->method) ? handle_models(rc, conn, url) : method_not_allowed(rc, conn, "GET");
    case TKR_ROUTE_METRICS:
        return is_get(rc->method) ? handle_metrics(rc, conn) : method_not_allowed(rc, conn, "GET");
    case TKR_ROUTE_EMBEDDINGS:
        return method_not_allowed(rc, conn, "POST");
    default: {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown route: %s %s", rc->method, rc->path);
        return respond_errorf(rc, conn, 404, "invalid_request_error", "unknown_url", NULL, msg);
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

static enum MHD_Result respond_too_many_bytes(req_ctx *rc, struct MHD_Connection *conn) {
    return respond_errorf(rc, conn, 429, "server_overloaded", "too_many_bytes_in_flight", NULL,
                          "the server holds too many request bodies at the moment; retry later");
}

/* The first call for an embeddings POST: headers are in, the body is not. What can be refused
 * without the body is refused here, auth first, so that an unauthenticated, oversized or
 * untimely request costs no body buffering (MHD then closes the connection, as it should with
 * an unread body). */
static enum MHD_Result begin_embeddings(req_ctx *rc, struct MHD_Connection *conn) {
    tkr_server *s = rc->srv;
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    pthread_mutex_unlock(&s->mu);
    rc->counted = true;
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!tkr_auth_check(authz, s->cfg->api_keys, s->cfg->n_api_keys))
        return respond_errorf(rc, conn, 401, "authentication_error", "invalid_api_key", NULL,
                              authz ? "invalid API key" : "missing API key (send 'Authorization: Bearer <key>')");
    if (atomic_load(&s->state) != STATE_READY) return respond_not_ready(rc, conn);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end != cl && *end == '\0' && v > s->cfg->max_body_bytes) {
            rc->body_too_large = true;
            return finish_embeddings(rc, conn);
        }
        if (end != cl && *end == '\0' && !reserve_body(rc, (size_t)v)) return respond_too_many_bytes(rc, conn);
    }
    sbuf_init(&rc->body, s->cfg->max_body_bytes);
    rc->reading_body = true;
    return MHD_YES;
}

/* Copies a client-supplied string for logs and messages, control bytes replaced by '?' (the
 * path arrives percent-decoded and could otherwise forge log lines). */
static void copy_printable(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[i] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    tkr_server *s = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        rc->srv = s;
        rc->t_start = tkr_now_seconds();
        rc->route = match_route(url);
        copy_printable(rc->method, sizeof rc->method, method);
        copy_printable(rc->path, sizeof rc->path, url);
        *con_cls = rc;
        if (rc->route == TKR_ROUTE_EMBEDDINGS && !strcmp(method, "POST")) return begin_embeddings(rc, conn);
        return MHD_YES;   /* everything else is answered once the request is complete */
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!rc->reading_body || rc->responded) return MHD_YES;   /* not needed: discard */
        if (tkr_now_seconds() - rc->t_start > s->cfg->read_timeout_s) {
            if (!s->cfg->quiet) tkr_log("%s %s: body not received within %.3g s, closing", rc->method, rc->path, s->cfg->read_timeout_s);
            return MHD_NO;
        }
        if (rc->body_too_large || rc->over_inflight) return MHD_YES;   /* read to the end, then refuse */
        if (n > s->cfg->max_body_bytes - rc->body.len) {
            rc->body_too_large = true;
            sbuf_free(&rc->body);
            return MHD_YES;
        }
        /* a body without Content-Length reserves as it arrives */
        if (rc->body.len + n > rc->reserved && !reserve_body(rc, rc->body.len + n - rc->reserved)) {
            rc->over_inflight = true;
            sbuf_free(&rc->body);
            return MHD_YES;
        }
        sbuf_append(&rc->body, upload_data, n);
        if (!sbuf_ok(&rc->body)) {
            sbuf_free(&rc->body);
            return MHD_NO;   /* out of memory: drop the connection */
        }
        return MHD_YES;
    }
    if (rc->responded) return MHD_YES;
    if (!rc->reading_body) return dispatch(rc, conn, url);
    rc->reading_body = false;
    if (rc->over_inflight) return respond_too_many_bytes(rc, conn);
    return finish_embeddings(rc, conn);
}

/* Called when a request is over (answered, or the client left): frees its state, logs a
 * client that left before its answer, and lets a drain finish. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    tkr_server *s = cls;
    req_ctx *rc = *con_cls;
    if (!rc) return;
    if (!rc->responded) {
        /* 499: nginx's "client closed request", so the metrics show disconnects */
        double dt = tkr_now_seconds() - rc->t_start;
        tkr_metrics_request(&s->metrics, rc->route, 499, dt);
        if (!s->cfg->quiet) tkr_log("\"%s %s\" 499 %.3fs (client closed the connection or timed out)", rc->method, rc->path, dt);
    }
    sbuf_free(&rc->body);
    if (rc->counted || rc->reserved) {
        pthread_mutex_lock(&s->mu);
        if (rc->counted) s->in_flight--;
        s->body_bytes -= rc->reserved;
        pthread_mutex_unlock(&s->mu);
    }
    free(rc);
    *con_cls = NULL;
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

    /* resolve the bind address (numeric or a name such as localhost) */
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", cfg->port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(cfg->host, port_str, &hints, &ai);
    if (gai != 0 || !ai) {
        tkr_metrics_destroy(&s->metrics);
        free(s);
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "--host '%s': %s", cfg->host, gai_strerror(gai));
    }
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,   /* must come first */
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        tkr_metrics_destroy(&s->metrics);
        free(s);
        return tkr_fail(err, TKR_ERR_IO, "cannot listen on %s:%d (address in use, or not allowed)",
                        cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return TKR_OK;
}

int tkr_server_port(const tkr_server *s) { return s->port; }

tkr_status tkr_server_set_engine(tkr_server *s, const tkr_engine *engine, tkr_error *err) {
    if (atomic_load(&s->state) != STATE_LOADING)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "the server is not waiting for an engine");
    tkr_batcher_params bp = {s->cfg->max_batch_items, s->cfg->max_batch_tokens,
                             s->cfg->max_batch_image_tokens, s->cfg->max_queue_items};
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
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
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
    MHD_stop_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    tkr_batcher_free(s->batcher);
    tkr_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return (int)left;
}

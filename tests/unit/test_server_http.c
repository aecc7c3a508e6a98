/* test_server_http.c - the HTTP server in-process, on an ephemeral 127.0.0.1 port, with the fake
 * engine, driven over plain sockets: routes, auth, every error status, keep-alive, values of
 * vectors, overload (429), deadlines, clients that hang up, many clients at once, slow
 * clients, graceful stop.
 *
 * The same binary is also the fake server process of the script tests:
 *   test_server_http --serve [--fake-delay-ms N] [--fake-load-ms N] [--fake-dim N]
 *                    [--fake-fail-load] [--fake-no-vision] <serve options...>
 *   test_server_http --embed-direct [--fake-dim N] [--instruction S] TEXT...
 * The latter prints the vectors the fake engine computes for texts directly (a JSON array),
 * the reference the scripts compare server responses with. */
#include "fake_engine.h"
#include "server/http.h"
#include "server/serve.h"
#include "test.h"
#include "util/base64.h"
#include "util/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- a minimal HTTP/1.1 client ------------------------------------------------------------ */

typedef struct {
    int status;
    char head[8192];       /* status line and headers */
    char *body;            /* NUL-terminated */
    size_t body_len;
} http_resp;

static int http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    tkr_socket_nosigpipe(fd);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

static bool send_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, tkr_send_flags());
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; return false; }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static const char *header_value(const http_resp *r, const char *name) {
    static __thread char val[256];
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(val, sizeof val, "%.*s", (int)k, v);
            return val;
        }
    }
    return NULL;
}

/* Reads one response (the server always sends Content-Length bodies). */
static bool http_read(int fd, http_resp *r) {
    memset(r, 0, sizeof *r);
    size_t used = 0;
    char *end = NULL;
    while (!end) {
        if (used + 1 >= sizeof r->head) return false;
        ssize_t n = recv(fd, r->head + used, sizeof r->head - 1 - used, 0);
        if (n <= 0) return false;
        used += (size_t)n;
        r->head[used] = '\0';
        end = strstr(r->head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - r->head) + 4;
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return false;
    const char *cl = header_value(r, "Content-Length");
    size_t len = cl ? strtoul(cl, NULL, 10) : 0;
    r->body = malloc(len + 1);
    size_t have = used - head_len;
    if (have > len) have = len;
    memcpy(r->body, r->head + head_len, have);
    while (have < len) {
        ssize_t n = recv(fd, r->body + have, len - have, 0);
        if (n <= 0) { free(r->body); r->body = NULL; return false; }
        have += (size_t)n;
    }
    r->body[len] = '\0';
    r->body_len = len;
    r->head[head_len] = '\0';
    return true;
}

static bool http_send(int fd, const char *method, const char *path, const char *headers,
                      const char *body, size_t body_len) {
    char head[1024], cl[96] = "";
    /* like curl: no Content-Length without a body (the server closes the connection after an early
     * answer to a request that announced one) */
    if (body) snprintf(cl, sizeof cl, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s\r\n", method, path,
                     headers ? headers : "", cl);
    return send_all(fd, head, (size_t)n) && (!body || send_all(fd, body, body_len));
}

/* One request on an open connection. */
static bool http_do(int fd, const char *method, const char *path, const char *headers,
                    const char *body, http_resp *r) {
    return http_send(fd, method, path, headers, body, body ? strlen(body) : 0) && http_read(fd, r);
}

/* One request on a new connection. */
static bool http_once(int port, const char *method, const char *path, const char *headers,
                      const char *body, http_resp *r) {
    int fd = http_connect(port);
    if (fd < 0) return false;
    bool ok = http_do(fd, method, path, headers, body, r);
    close(fd);
    return ok;
}

static void resp_free(http_resp *r) { free(r->body); r->body = NULL; }

/* The error object of an error response, checked for the OpenAI shape. */
static bool error_is(const http_resp *r, int status, const char *type, const char *code, const char *param,
                     const char *msg_part) {
    if (r->status != status) { fprintf(stderr, "  status %d, want %d: %s\n", r->status, status, r->body); return false; }
    json_t *j = json_loads(r->body ? r->body : "", 0, NULL);
    json_t *e = json_object_get(j, "error");
    bool ok = json_is_object(e) && json_is_string(json_object_get(e, "message")) &&
              json_object_get(e, "param") && json_object_get(e, "code");
    if (ok && type) ok = !strcmp(json_string_value(json_object_get(e, "type")), type);
    if (ok && code) ok = json_is_string(json_object_get(e, "code")) && !strcmp(json_string_value(json_object_get(e, "code")), code);
    if (ok && param) ok = json_is_string(json_object_get(e, "param")) && !strcmp(json_string_value(json_object_get(e, "param")), param);
    if (ok && msg_part) ok = strstr(json_string_value(json_object_get(e, "message")), msg_part) != NULL;
    if (!ok) fprintf(stderr, "  unexpected error body: %s\n", r->body);
    json_decref(j);
    return ok;
}

/* ---- a server with the fake engine ------------------------------------------------------- */

typedef struct {
    fake_engine fake;
    tkr_engine eng;
    tkr_server_config cfg;
    tkr_server *srv;
    int port;
} test_server;

static void ts_config(test_server *t, int dim) {
    memset(t, 0, sizeof *t);
    fake_engine_init(&t->fake, dim);
    t->eng = fake_engine_table(&t->fake);
    t->cfg = tkr_server_config_default();
    t->cfg.model_dir = "fake";
    t->cfg.port = 0;
    t->cfg.quiet = true;
}

static bool ts_start(test_server *t, bool with_engine) {
    tkr_error err;
    if (tkr_server_start(&t->cfg, &t->srv, &err) != TKR_OK) {
        fprintf(stderr, "  start: %s\n", err.message);
        return false;
    }
    t->port = tkr_server_port(t->srv);
    if (with_engine && tkr_server_set_engine(t->srv, &t->eng, &err) != TKR_OK) {
        fprintf(stderr, "  set_engine: %s\n", err.message);
        return false;
    }
    return true;
}

static int ts_stop(test_server *t) {
    int left = tkr_server_stop(t->srv);
    t->srv = NULL;
    return left;
}

/* The fake engine's vector for a text item (default instruction). */
static void ref_vector(const fake_engine *f, const char *text, const char *instruction, float *out) {
    tkr_item it;
    memset(&it, 0, sizeof it);
    it.text = text;
    it.instruction = instruction;
    tkr_result r;
    fake_embed_one(f, &it, out, &r);
}

/* data[i].embedding as floats (float list or base64). */
static int response_vectors(const char *body, float *out, int max_items, int dim) {
    json_t *j = json_loads(body, 0, NULL);
    json_t *data = json_object_get(j, "data");
    int n = (int)json_array_size(data);
    for (int i = 0; i < n && i < max_items; i++) {
        json_t *emb = json_object_get(json_array_get(data, (size_t)i), "embedding");
        if (json_is_array(emb)) {
            for (int k = 0; k < dim; k++) out[i * dim + k] = (float)json_number_value(json_array_get(emb, (size_t)k));
        } else {
            uint8_t *raw = NULL;
            size_t len = 0;
            tkr_error err;
            const char *s = json_string_value(emb);
            if (s && tkr_base64_decode(s, strlen(s), 0, &raw, &len, &err) == TKR_OK && len == (size_t)dim * 4)
                for (int k = 0; k < dim; k++) {
                    uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 | (uint32_t)raw[4 * k + 3] << 24;
                    memcpy(&out[i * dim + k], &u, 4);
                }
            free(raw);
        }
    }
    json_decref(j);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_lifecycle_health(void) {
    test_server t;
    ts_config(&t, 8);
    CHECK(ts_start(&t, false), "start");
    http_resp r;
    CHECK(http_once(t.port, "GET", "/health", NULL, NULL, &r) && r.status == 503 && strstr(r.body, "\"loading\""), "503 while loading: %d %s", r.status, r.body);
    resp_free(&r);
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"x\"}", &r) &&
          error_is(&r, 503, "server_error", "model_loading", NULL, "loading"), "embeddings 503 while loading");
    CHECK(header_value(&r, "Retry-After") != NULL, "Retry-After on 503");
    resp_free(&r);
    tkr_error err;
    CHECK(tkr_server_set_engine(t.srv, &t.eng, &err) == TKR_OK, "engine");
    CHECK(http_once(t.port, "GET", "/health", NULL, NULL, &r) && r.status == 200 && strstr(r.body, "\"ok\"") && strstr(r.body, "fake-embed"), "200 when ready: %s", r.body);
    resp_free(&r);
    CHECK(ts_stop(&t) == 0, "clean stop");
    CHECK(http_connect(t.port) < 0, "nothing listens after stop");

    /* a failed load */
    ts_config(&t, 8);
    CHECK(ts_start(&t, false), "start");
    tkr_server_set_failed(t.srv, "no such model");
    CHECK(http_once(t.port, "GET", "/health", NULL, NULL, &r) && r.status == 503 && strstr(r.body, "no such model"), "failed: %s", r.body);
    resp_free(&r);
    ts_stop(&t);
}

static void test_routes_auth_errors(void) {
    test_server t;
    ts_config(&t, 8);
    tkr_error err;
    tkr_server_config_add_key(&t.cfg, "sk-test-1", 9, &err);
    tkr_server_config_add_key(&t.cfg, "sk-test-2", 9, &err);
    t.cfg.max_body_bytes = 2048;
    CHECK(ts_start(&t, true), "start");
    const char *auth = "Authorization: Bearer sk-test-2\r\n";
    int fd = http_connect(t.port);
    http_resp r;
    CHECK(http_do(fd, "GET", "/health", NULL, NULL, &r) && r.status == 200, "health is public");
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/v1/models", NULL, NULL, &r) && error_is(&r, 401, "authentication_error", "invalid_api_key", NULL, "missing API key"), "models need the key");
    CHECK(header_value(&r, "WWW-Authenticate") && !strcmp(header_value(&r, "WWW-Authenticate"), "Bearer"), "WWW-Authenticate");
    resp_free(&r);
    close(fd);
    /* every protected route, with a wrong key */
    const char *wrong = "Authorization: Bearer sk-test-3\r\n";
    const char *routes[][2] = {{"GET", "/v1/models"}, {"GET", "/metrics"}, {"POST", "/v1/embeddings"},
                               {"POST", "/embeddings"}, {"GET", "/nope"}, {"GET", "/v1/models/fake-embed"}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        CHECK(http_once(t.port, routes[i][0], routes[i][1], wrong, NULL, &r) &&
              error_is(&r, 401, "authentication_error", "invalid_api_key", NULL, "invalid API key"), "%s %s", routes[i][0], routes[i][1]);
        resp_free(&r);
    }
    /* with the key, on one keep-alive connection */
    fd = http_connect(t.port);
    CHECK(http_do(fd, "GET", "/v1/models", auth, NULL, &r) && r.status == 200, "models");
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *m0 = json_array_get(json_object_get(j, "data"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(j, "object")), "list") &&
          !strcmp(json_string_value(json_object_get(m0, "id")), "fake-embed") &&
          !strcmp(json_string_value(json_object_get(m0, "object")), "model") &&
          json_is_integer(json_object_get(m0, "created")), "models body: %s", r.body);
    json_decref(j);
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/v1/models/fake-embed", auth, NULL, &r) && r.status == 200 && strstr(r.body, "\"id\":\"fake-embed\""), "one model");
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/v1/models/gpt-x", auth, NULL, &r) && error_is(&r, 404, "invalid_request_error", "model_not_found", "model", "gpt-x"), "unknown model 404");
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/v2/nothing", auth, NULL, &r) && error_is(&r, 404, "invalid_request_error", "unknown_url", NULL, "GET /v2/nothing"), "unknown route 404");
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/v1/embeddings", auth, NULL, &r) && error_is(&r, 405, "invalid_request_error", "method_not_allowed", NULL, "use POST"), "405");
    CHECK(header_value(&r, "Allow") && !strcmp(header_value(&r, "Allow"), "POST"), "Allow header");
    resp_free(&r);
    CHECK(http_do(fd, "DELETE", "/health", NULL, NULL, &r) && r.status == 405, "405 on health");
    resp_free(&r);
    CHECK(http_do(fd, "POST", "/v1/embeddings", auth, "{oops", &r) && error_is(&r, 400, "invalid_request_error", NULL, NULL, "not valid JSON"), "400 bad JSON");
    resp_free(&r);
    CHECK(http_do(fd, "POST", "/v1/embeddings", auth, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":99}", &r) &&
          error_is(&r, 400, "invalid_request_error", NULL, "dimensions", "from 1 to 8"), "400 dimensions");
    resp_free(&r);
    CHECK(http_do(fd, "POST", "/v1/embeddings", auth, "{\"model\":\"m\",\"input\":[\"ok\",\"FAIL: this one\"]}", &r) &&
          error_is(&r, 400, "invalid_request_error", NULL, "input[1]", "fake engine refuses"), "engine item failure -> 400 naming the item");
    resp_free(&r);
    CHECK(http_do(fd, "POST", "/embeddings", auth, "{\"model\":\"m\",\"input\":\"alias\"}", &r) && r.status == 200, "/embeddings alias");
    resp_free(&r);
    CHECK(http_do(fd, "GET", "/metrics", auth, NULL, &r) && r.status == 200 &&
          strstr(r.body, "tkr_http_requests_total{route=\"/v1/embeddings\",code=\"400\"} 3") &&
          strstr(r.body, "tkr_http_requests_total{route=\"/v1/models\",code=\"401\"}") &&
          strstr(r.body, "tkr_http_requests_total{route=\"other\",code=\"404\"} 1") &&
          strstr(r.body, "tkr_ready 1") && strstr(header_value(&r, "Content-Type"), "text/plain"), "metrics: %s", r.body ? r.body : "");
    resp_free(&r);
    close(fd);
    /* 413: declared too large (refused before the body), and too large in fact */
    char *big = malloc(4096);
    memset(big, ' ', 4095);
    big[4095] = '\0';
    memcpy(big, "{\"model\":\"m\",\"input\":\"x\"}", 25);
    CHECK(http_once(t.port, "POST", "/v1/embeddings", auth, big, &r) &&
          error_is(&r, 413, "invalid_request_error", "request_too_large", NULL, "larger than 2048 bytes"), "413");
    resp_free(&r);
    free(big);
    /* 401 is answered before the body: a huge unauthenticated upload is refused unread */
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"x\"}", &r) && r.status == 401, "401 before body");
    resp_free(&r);
    CHECK(ts_stop(&t) == 0, "stop");
    tkr_server_config_free(&t.cfg);
}

static void test_vectors_keepalive(void) {
    test_server t;
    ts_config(&t, 16);
    CHECK(ts_start(&t, true), "start");
    int fd = http_connect(t.port);
    http_resp r;
    float got[64], ref[16];
    /* floats, several items, order kept */
    CHECK(http_do(fd, "POST", "/v1/embeddings", NULL, "{\"model\":\"whatever\",\"input\":[\"the cat\",\"a dog\",\"the cat\"]}", &r) && r.status == 200, "3 items");
    CHECK(response_vectors(r.body, got, 4, 16) == 3, "3 vectors");
    const char *texts[] = {"the cat", "a dog", "the cat"};
    for (int i = 0; i < 3; i++) {
        ref_vector(&t.fake, texts[i], NULL, ref);
        CHECK(!memcmp(ref, got + i * 16, sizeof ref), "item %d bit-identical to the engine alone", i);
    }
    CHECK(strstr(r.body, "\"model\":\"fake-embed\""), "served model name in the response");
    CHECK(strstr(r.body, "\"usage\":{\"prompt_tokens\":45,\"total_tokens\":45}"), "usage: %s", strstr(r.body, "usage"));
    resp_free(&r);
    /* base64 on the same connection equals floats */
    CHECK(http_do(fd, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"a dog\",\"encoding_format\":\"base64\"}", &r) && r.status == 200, "base64");
    CHECK(response_vectors(r.body, got, 1, 16) == 1, "one vector");
    ref_vector(&t.fake, "a dog", NULL, ref);
    CHECK(!memcmp(ref, got, sizeof ref), "base64 bytes are the float32 vector");
    resp_free(&r);
    /* token ids = the text's ids: same vector */
    int32_t *ids = NULL;
    size_t n = fake_tokenize_words("the cat", 7, &ids);
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":[[%d,%d]]}", ids[0], ids[1]);
    free(ids);
    CHECK(n == 2 && http_do(fd, "POST", "/v1/embeddings", NULL, body, &r) && r.status == 200, "token ids");
    response_vectors(r.body, got, 1, 16);
    ref_vector(&t.fake, "the cat", NULL, ref);
    CHECK(!memcmp(ref, got, sizeof ref), "token ids give the text's vector");
    resp_free(&r);
    /* dimensions: prefix renormalised */
    CHECK(http_do(fd, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"the cat\",\"dimensions\":4}", &r) && r.status == 200, "dims");
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *emb = json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding");
    CHECK(json_array_size(emb) == 4, "4 values");
    double ss = 0, dot = 0, rs = 0;
    ref_vector(&t.fake, "the cat", NULL, ref);
    for (int k = 0; k < 4; k++) {
        double v = json_number_value(json_array_get(emb, (size_t)k));
        ss += v * v;
        dot += v * ref[k];
        rs += (double)ref[k] * ref[k];
    }
    CHECK(fabs(ss - 1) < 1e-6 && dot / sqrt(rs) > 0.999999, "unit length, same direction");
    json_decref(j);
    resp_free(&r);
    /* instruction changes the vector, per request and per item */
    CHECK(http_do(fd, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"instruction\":\"Find the animal.\",\"input\":[\"the cat\",{\"text\":\"the cat\",\"instruction\":\"Other.\"}]}", &r) && r.status == 200, "instruction");
    response_vectors(r.body, got, 2, 16);
    ref_vector(&t.fake, "the cat", "Find the animal.", ref);
    CHECK(!memcmp(ref, got, sizeof ref), "request instruction used");
    ref_vector(&t.fake, "the cat", "Other.", ref);
    CHECK(!memcmp(ref, got + 16, sizeof ref), "item instruction used");
    resp_free(&r);
    close(fd);
    CHECK(atomic_load(&t.fake.prepares) == atomic_load(&t.fake.releases), "every prepared item released");
    CHECK(atomic_load(&t.fake.prepared_mismatch) == 0, "prepared handles followed their items");
    CHECK(atomic_load(&t.fake.prepare_on_embed_thread) == 0, "prepare ran on request threads, not the model thread");
    ts_stop(&t);
}

/* A client thread: sends one request on its own connection, keeps the response. */
typedef struct {
    int port;
    const char *body;
    http_resp r;
    bool ok;
    double seconds;
} client_job;

static void *client_main(void *arg) {
    client_job *c = arg;
    double t0 = tkr_now_seconds();
    c->ok = http_once(c->port, "POST", "/v1/embeddings", NULL, c->body, &c->r);
    c->seconds = tkr_now_seconds() - t0;
    return NULL;
}

static bool wait_for(atomic_int *v, int at_least, double seconds) {
    double until = tkr_now_seconds() + seconds;
    while (atomic_load(v) < at_least && tkr_now_seconds() < until) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(v) >= at_least;
}

/* Polls /metrics until the queue holds n items. */
static bool wait_queue(int port, int n) {
    char want[64];
    snprintf(want, sizeof want, "tkr_queue_items %d\n", n);
    for (int i = 0; i < 500; i++) {
        http_resp r;
        bool hit = http_once(port, "GET", "/metrics", NULL, NULL, &r) && r.body && strstr(r.body, want);
        resp_free(&r);
        if (hit) return true;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_overload_429(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 400;
    t.cfg.max_queue_items = 4;
    t.cfg.max_items_per_request = 4;
    CHECK(ts_start(&t, true), "start");
    client_job a = {t.port, "{\"model\":\"m\",\"input\":[\"a1\",\"a2\",\"a3\",\"a4\"]}", {0}, false, 0};
    client_job b = {t.port, "{\"model\":\"m\",\"input\":[\"b1\",\"b2\",\"b3\",\"b4\"]}", {0}, false, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, client_main, &a);
    CHECK(wait_for(&t.fake.calls, 1, 5), "a is computing");
    pthread_create(&tb, NULL, client_main, &b);
    CHECK(wait_queue(t.port, 4), "b waits in the queue");
    http_resp r;
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"c\"}", &r) &&
          error_is(&r, 429, "server_overloaded", "queue_full", NULL, "queue limit 4"), "429 when the queue is full");
    CHECK(header_value(&r, "Retry-After") != NULL, "Retry-After on 429");
    resp_free(&r);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.ok && a.r.status == 200 && b.ok && b.r.status == 200, "a and b finish: %d %d", a.r.status, b.r.status);
    resp_free(&a.r);
    resp_free(&b.r);
    ts_stop(&t);
}

/* Request bodies held at once are bounded: a request that would pass the bound gets 429. */
static void test_inflight_bytes(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 400;
    t.cfg.max_body_bytes = 1500;
    t.cfg.max_inflight_bytes = 2000;
    CHECK(ts_start(&t, true), "start");
    static char body_a[1300], body_b[1100];
    memset(body_a, ' ', sizeof body_a - 1);
    memcpy(body_a, "{\"model\":\"m\",\"input\":\"a\"}", 25);   /* no NUL: spaces follow */
    memset(body_b, ' ', sizeof body_b - 1);
    memcpy(body_b, "{\"model\":\"m\",\"input\":\"b\"}", 25);
    client_job a = {t.port, body_a, {0}, false, 0};
    pthread_t ta;
    pthread_create(&ta, NULL, client_main, &a);
    CHECK(wait_for(&t.fake.calls, 1, 5), "a computing, its 1299 bytes held");
    http_resp r;
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, body_b, &r) &&
          error_is(&r, 429, "server_overloaded", "too_many_bytes_in_flight", NULL, NULL), "b would pass 2000 bytes: 429");
    resp_free(&r);
    pthread_join(ta, NULL);
    CHECK(a.ok && a.r.status == 200, "a served");
    resp_free(&a.r);
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, body_b, &r) && r.status == 200, "b fits once a is done");
    resp_free(&r);
    CHECK(http_once(t.port, "GET", "/metrics", NULL, NULL, &r) && strstr(r.body, "tkr_request_body_bytes 0\n"), "all released");
    resp_free(&r);
    ts_stop(&t);
}

static void test_deadline(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 700;
    t.cfg.request_timeout_s = 0.25;
    CHECK(ts_start(&t, true), "start");
    client_job a = {t.port, "{\"model\":\"m\",\"input\":\"a\"}", {0}, false, 0};
    client_job b = {t.port, "{\"model\":\"m\",\"input\":[\"b1\",\"b2\"]}", {0}, false, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, client_main, &a);
    CHECK(wait_for(&t.fake.calls, 1, 5), "a computing");
    pthread_create(&tb, NULL, client_main, &b);
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    CHECK(b.ok && error_is(&b.r, 503, "server_error", "timeout", NULL, "deadline"), "queued request times out");
    CHECK(b.seconds < 0.6, "queued request answered at its deadline (%.3f s), not after the model", b.seconds);
    CHECK(a.ok && error_is(&a.r, 503, "server_error", "timeout", NULL, NULL), "computing request times out too");
    resp_free(&a.r);
    resp_free(&b.r);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    CHECK(atomic_load(&t.fake.items) == 1, "b's items were never computed (%ld)", atomic_load(&t.fake.items));
    ts_stop(&t);
}

static void test_client_disconnects(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 400;
    CHECK(ts_start(&t, true), "start");
    client_job a = {t.port, "{\"model\":\"m\",\"input\":\"a\"}", {0}, false, 0};
    pthread_t ta;
    pthread_create(&ta, NULL, client_main, &a);
    CHECK(wait_for(&t.fake.calls, 1, 5), "a computing");
    /* b: full request, then hang up while it waits in the queue */
    int fd = http_connect(t.port);
    const char *body = "{\"model\":\"m\",\"input\":[\"b1\",\"b2\",\"b3\"]}";
    CHECK(http_send(fd, "POST", "/v1/embeddings", NULL, body, strlen(body)), "send b");
    CHECK(wait_queue(t.port, 3), "b queued");
    close(fd);
    CHECK(wait_queue(t.port, 0), "b's items left the queue when its client left");
    /* c: hangs up in the middle of its body */
    fd = http_connect(t.port);
    const char *head = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"model\":";
    send_all(fd, head, strlen(head));
    close(fd);
    pthread_join(ta, NULL);
    CHECK(a.ok && a.r.status == 200, "a unaffected");
    resp_free(&a.r);
    struct timespec ts = {0, 600000000};
    nanosleep(&ts, NULL);
    CHECK(atomic_load(&t.fake.items) == 1, "only a was computed (%ld items)", atomic_load(&t.fake.items));
    http_resp r;
    CHECK(http_once(t.port, "GET", "/metrics", NULL, NULL, &r) && strstr(r.body, "code=\"499\"} 2"), "two 499s in metrics");
    resp_free(&r);
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"d\"}", &r) && r.status == 200, "still serving");
    resp_free(&r);
    CHECK(ts_stop(&t) == 0, "clean stop");
}

/* Many clients, each with a keep-alive connection and a stream of requests. */
typedef struct {
    int port, id, ok;
    const fake_engine *fake;
} many_client;

static void *many_main(void *arg) {
    many_client *c = arg;
    int fd = http_connect(c->port);
    for (int k = 0; k < 12 && fd >= 0; k++) {
        int n = 1 + (c->id + k) % 5;
        char body[1024], texts[5][64];
        int pos = snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":[");
        for (int i = 0; i < n; i++) {
            snprintf(texts[i], sizeof texts[i], "client %d req %d item %d", c->id, k, i);
            pos += snprintf(body + pos, sizeof body - (size_t)pos, "%s\"%s\"", i ? "," : "", texts[i]);
        }
        snprintf(body + pos, sizeof body - (size_t)pos, "]%s}", k % 2 ? ",\"encoding_format\":\"base64\"" : "");
        http_resp r;
        if (!http_do(fd, "POST", "/v1/embeddings", NULL, body, &r)) break;
        float got[5 * 8], ref[8];
        bool good = r.status == 200 && response_vectors(r.body, got, 5, 8) == n;
        for (int i = 0; good && i < n; i++) {
            ref_vector(c->fake, texts[i], NULL, ref);
            good = !memcmp(ref, got + i * 8, sizeof ref);
        }
        c->ok += good;
        resp_free(&r);
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void test_many_clients(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 2;
    CHECK(ts_start(&t, true), "start");
    enum { N = 24 };
    many_client c[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        c[i] = (many_client){t.port, i, 0, &t.fake};
        pthread_create(&th[i], NULL, many_main, &c[i]);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += c[i].ok;
    }
    CHECK(ok == N * 12, "%d of %d requests exact", ok, N * 12);
    CHECK(atomic_load(&t.fake.max_batch) > 5, "requests were batched together (largest batch %d)", atomic_load(&t.fake.max_batch));
    CHECK(ts_stop(&t) == 0, "clean stop");
}

static void test_slow_clients(void) {
    test_server t;
    ts_config(&t, 8);
    t.cfg.read_timeout_s = 0.3;
    t.cfg.idle_timeout_s = 1;
    CHECK(ts_start(&t, true), "start");
    /* a body trickling in past the read timeout: the connection is closed */
    int fd = http_connect(t.port);
    const char *head = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n{\"model\":";
    send_all(fd, head, strlen(head));
    struct timespec ts = {0, 500000000};
    nanosleep(&ts, NULL);
    send_all(fd, "\"m\",", 4);
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    CHECK(n <= 0, "slow body: connection closed (recv %zd)", n);
    close(fd);
    /* an idle connection is closed after the idle timeout */
    fd = http_connect(t.port);
    double t0 = tkr_now_seconds();
    n = recv(fd, buf, sizeof buf, 0);
    double dt = tkr_now_seconds() - t0;
    CHECK(n == 0 && dt > 0.5 && dt < 5, "idle connection closed after %.2f s (recv %zd)", dt, n);
    close(fd);
    ts_stop(&t);
}

static void test_graceful_stop(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.delay_ms = 300;
    t.cfg.drain_timeout_s = 10;
    CHECK(ts_start(&t, true), "start");
    client_job a = {t.port, "{\"model\":\"m\",\"input\":\"a\"}", {0}, false, 0};
    client_job b = {t.port, "{\"model\":\"m\",\"input\":\"b\"}", {0}, false, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, client_main, &a);
    CHECK(wait_for(&t.fake.calls, 1, 5), "a computing");
    pthread_create(&tb, NULL, client_main, &b);
    CHECK(wait_queue(t.port, 1), "b queued");
    double t0 = tkr_now_seconds();
    CHECK(ts_stop(&t) == 0, "drained cleanly");
    double dt = tkr_now_seconds() - t0;
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.ok && a.r.status == 200 && b.ok && b.r.status == 200, "requests in flight finished: %d %d", a.r.status, b.r.status);
    CHECK(dt > 0.2, "stop waited for them (%.2f s)", dt);
    resp_free(&a.r);
    resp_free(&b.r);

    /* drain timeout: a request still computing when it passes gets 503, stop reports it */
    ts_config(&t, 8);
    t.fake.delay_ms = 800;
    t.cfg.drain_timeout_s = 0.1;
    CHECK(ts_start(&t, true), "start");
    client_job c = {t.port, "{\"model\":\"m\",\"input\":\"c\"}", {0}, false, 0};
    client_job d = {t.port, "{\"model\":\"m\",\"input\":\"d\"}", {0}, false, 0};
    pthread_t tc, td;
    pthread_create(&tc, NULL, client_main, &c);
    CHECK(wait_for(&t.fake.calls, 1, 5), "c computing");
    pthread_create(&td, NULL, client_main, &d);
    CHECK(wait_queue(t.port, 1), "d queued");
    CHECK(ts_stop(&t) == 2, "two requests were cut short");
    pthread_join(tc, NULL);
    pthread_join(td, NULL);
    CHECK(c.ok && c.r.status == 200, "the computing one still got its answer: %d", c.r.status);
    CHECK(d.ok && error_is(&d.r, 503, "server_error", "shutting_down", NULL, NULL), "the queued one got 503");
    resp_free(&c.r);
    resp_free(&d.r);
}

static void test_truncation(void) {
    test_server t;
    ts_config(&t, 8);
    t.cfg.max_tokens_per_item = 16;      /* 13 template tokens + 3 words */
    t.fake.max_tokens_per_item = 16;
    CHECK(ts_start(&t, true), "start");
    http_resp r;
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"one two three four five\"}", &r) &&
          error_is(&r, 400, "invalid_request_error", NULL, "input", "18 prompt tokens, over the limit of 16"), "over the limit: 400");
    resp_free(&r);
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"truncate\":true,\"input\":[\"one two three four five\",\"six\"]}", &r) &&
          r.status == 200, "truncate: 200");
    float got[16], ref[8];
    CHECK(response_vectors(r.body, got, 2, 8) == 2, "2 vectors");
    ref_vector(&t.fake, "one two three", NULL, ref);
    CHECK(!memcmp(got, ref, sizeof ref), "the text was cut to its first 3 words, template kept");
    CHECK(strstr(r.body, "\"prompt_tokens\":30,") != NULL, "usage counts what the model read: %s", strstr(r.body, "usage"));
    resp_free(&r);
    CHECK(http_once(t.port, "GET", "/metrics", NULL, NULL, &r) && strstr(r.body, "tkr_truncated_items_total 1\n"), "truncations counted");
    resp_free(&r);
    ts_stop(&t);
}

static void test_engine_failure_500(void) {
    test_server t;
    ts_config(&t, 8);
    t.fake.fail_calls = true;
    CHECK(ts_start(&t, true), "start");
    http_resp r;
    CHECK(http_once(t.port, "POST", "/v1/embeddings", NULL, "{\"model\":\"m\",\"input\":\"x\"}", &r) &&
          error_is(&r, 500, "server_error", NULL, NULL, "whole call failed"), "500");
    resp_free(&r);
    ts_stop(&t);
}

/* ---- process modes for the script tests ---------------------------------------------------- */

typedef struct {
    fake_engine fake;
    int load_ms;
    bool fail_load;
} fake_open_ctx;

static void fake_destroy(void *impl) { (void)impl; }

static tkr_status fake_open(const tkr_server_config *cfg, void *ctx, tkr_engine *out, tkr_error *err) {
    fake_open_ctx *c = ctx;
    if (c->load_ms > 0) {
        struct timespec ts = {c->load_ms / 1000, (long)(c->load_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (c->fail_load) {
        snprintf(err->message, sizeof err->message, "%s: fake load failure", cfg->model_dir);
        err->code = TKR_ERR_IO;
        return TKR_ERR_IO;
    }
    *out = fake_engine_table(&c->fake);
    out->destroy = fake_destroy;
    return TKR_OK;
}

static int serve_mode(int argc, char **argv) {
    static fake_open_ctx ctx;
    int dim = 8, delay = 0;
    bool vision = true;
    char *rest[256];
    int n_rest = 0;
    rest[n_rest++] = "serve";
    for (int i = 2; i < argc && n_rest < 255; i++) {
        if (!strcmp(argv[i], "--fake-delay-ms") && i + 1 < argc) delay = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fake-load-ms") && i + 1 < argc) ctx.load_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fake-dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fake-fail-load")) ctx.fail_load = true;
        else if (!strcmp(argv[i], "--fake-no-vision")) vision = false;
        else rest[n_rest++] = argv[i];
    }
    fake_engine_init(&ctx.fake, dim);
    ctx.fake.delay_ms = delay;
    ctx.fake.has_vision = vision;
    return tkr_serve_main(n_rest, rest, fake_open, &ctx);
}

static int embed_direct_mode(int argc, char **argv) {
    fake_engine f;
    int dim = 8;
    const char *instruction = NULL;
    int i = 2;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--fake-dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--instruction") && i + 1 < argc) instruction = argv[++i];
        else break;
    }
    fake_engine_init(&f, dim);
    float *v = malloc(sizeof(float) * (size_t)dim);
    printf("[");
    for (int k = 0; i < argc; i++, k++) {
        ref_vector(&f, argv[i], instruction, v);
        printf("%s[", k ? "," : "");
        for (int d = 0; d < dim; d++) printf("%s%.9g", d ? "," : "", (double)v[d]);
        printf("]");
    }
    printf("]\n");
    free(v);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--serve")) return serve_mode(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "--embed-direct")) return embed_direct_mode(argc, argv);
    RUN(test_lifecycle_health);
    RUN(test_routes_auth_errors);
    RUN(test_vectors_keepalive);
    RUN(test_overload_429);
    RUN(test_inflight_bytes);
    RUN(test_deadline);
    RUN(test_client_disconnects);
    RUN(test_many_clients);
    RUN(test_slow_clients);
    RUN(test_graceful_stop);
    RUN(test_truncation);
    RUN(test_engine_failure_500);
    return test_summary();
}

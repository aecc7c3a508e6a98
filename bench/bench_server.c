/* bench_server.c - load generator for a running tkr-embed server: N clients, each on its own
 * keep-alive connection, send /v1/embeddings requests back to back for T seconds; prints items/s,
 * requests/s and latency percentiles.
 *
 *   build/bench/bench_server --port 8080 --clients 16 --seconds 30 --items 4 --words 64
 *   build/bench/bench_server --port 8080 --clients 4 --image photo.jpg --words 8
 *
 * Texts differ per request (client, sequence number) so nothing can be answered from a cache.
 *
 * With --engine MODEL (and --device D, --engine-batch B), it then loads the model in this process
 * (after the HTTP run: the server is idle by then) and embeds the same kind of items through
 * tkr_embed, B per call (default clients x items) for the same time, and prints the server's
 * items/s over the engine's own: the "server at >= 90 % of the engine" figure.
 *
 *   build/bench/bench_server --port 8080 --clients 64 --seconds 20 --words 100 --engine MODEL_DIR */
#include "tkr_embed.h"
#include "util/base64.h"
#include "util/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *host, *port, *api_key, *path;
    int clients, items, words;
    double seconds;
    char *image_uri;       /* "data:...;base64,..." or NULL */
    bool base64;
    const char *engine, *device, *image_path;
    int engine_batch;
} bench_opts;

typedef struct {
    const bench_opts *o;
    int id;
    double deadline;
    double *lat;           /* seconds per successful request */
    size_t n_lat, cap_lat;
    long requests, items, errors, reconnects;
    int last_error_status;
} client_state;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct timeval tv = {120, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int one = 1;   /* no Nagle: a request must not wait for the ACK of its own headers */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        tkr_socket_nosigpipe(fd);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { close(fd); fd = -1; }
    }
    freeaddrinfo(ai);
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, tkr_send_flags());
        if (w <= 0) { if (w < 0 && errno == EINTR) continue; return false; }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads one response; returns the status (0 on a broken connection). The body is discarded. */
static int read_response(int fd, char *buf, size_t cap) {
    size_t used = 0;
    char *end = NULL;
    while (!end) {
        if (used + 1 >= cap) return 0;
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n <= 0) return 0;
        used += (size_t)n;
        buf[used] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return 0;
    size_t len = 0;
    for (char *p = buf; p < end; p++)
        if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15)) len = strtoul(p + 15, NULL, 10);
    size_t have = used - (size_t)(end + 4 - buf);
    while (have < len) {
        ssize_t n = recv(fd, buf, cap < len - have ? cap : len - have, 0);
        if (n <= 0) return 0;
        have += (size_t)n;
    }
    return status;
}

/* Item i's text of a request (client, seq): `words` words, into b (cap bytes); returns its length. */
static size_t item_text(const bench_opts *o, int client, long seq, int i, char *b, size_t cap) {
    size_t pos = 0;
    for (int w = 0; w < o->words && pos < cap; w++)
        pos += (size_t)snprintf(b + pos, cap - pos, "%sw%ld_%d_%d", w ? " " : "", seq % 1000, client, (i * 31 + w) % 997);
    return pos < cap ? pos : cap - 1;
}

/* The request body: items texts of `words` words, optionally each with the image. */
static char *make_body(const bench_opts *o, int client, long seq, size_t *len) {
    size_t cap = 256 + (size_t)o->items * ((size_t)o->words * 12 + 64 + (o->image_uri ? strlen(o->image_uri) + 32 : 0));
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t pos = (size_t)snprintf(b, cap, "{\"model\":\"bench\",%s\"input\":[",
                                  o->base64 ? "\"encoding_format\":\"base64\"," : "");
    for (int i = 0; i < o->items; i++) {
        pos += (size_t)snprintf(b + pos, cap - pos, "%s%s\"", i ? "," : "", o->image_uri ? "{\"text\":" : "");
        pos += item_text(o, client, seq, i, b + pos, cap - pos);
        pos += (size_t)snprintf(b + pos, cap - pos, "\"");
        if (o->image_uri) pos += (size_t)snprintf(b + pos, cap - pos, ",\"image\":\"%s\"}", o->image_uri);
    }
    pos += (size_t)snprintf(b + pos, cap - pos, "]}");
    *len = pos;
    return b;
}

static void *client_main(void *arg) {
    client_state *c = arg;
    const bench_opts *o = c->o;
    size_t cap = 1 << 20;
    char *buf = malloc(cap), head[512];
    int fd = -1;
    for (long seq = 0; buf && tkr_now_seconds() < c->deadline; seq++) {
        if (fd < 0) {
            fd = connect_to(o->host, o->port);
            if (fd < 0) { c->errors++; sleep_ms(100); continue; }
            c->reconnects++;
        }
        size_t blen = 0;
        char *body = make_body(o, c->id, seq, &blen);
        if (!body) break;
        char auth[300] = "";
        if (o->api_key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", o->api_key);
        int hl = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                          o->path, o->host, auth, blen);
        double t0 = tkr_now_seconds();
        int status = send_all(fd, head, (size_t)hl) && send_all(fd, body, blen) ? read_response(fd, buf, cap) : 0;
        double dt = tkr_now_seconds() - t0;
        free(body);
        c->requests++;
        if (status == 200) {
            c->items += o->items;
            if (c->n_lat == c->cap_lat) {
                c->cap_lat = c->cap_lat ? c->cap_lat * 2 : 1024;
                double *p = realloc(c->lat, sizeof(double) * c->cap_lat);
                if (!p) break;
                c->lat = p;
            }
            c->lat[c->n_lat++] = dt;
        } else {
            c->errors++;
            c->last_error_status = status;
            if (status == 0 || status == 413 || status == 401) { close(fd); fd = -1; }
            if (status == 429 || status == 503) sleep_ms(20);
        }
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

/* Items prepared by several threads (tokenizing, image decoding), as the server's request
 * threads do. */
typedef struct {
    const tkr_model *m;
    const tkr_item *items;
    tkr_prepared **prep;
    int n, next, failed;
    pthread_mutex_t mu;
} prep_job;

static void *prep_main(void *arg) {
    prep_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) return NULL;
        tkr_error e;
        if (tkr_prepare(j->m, &j->items[i], &j->prep[i], &e) != TKR_OK) {
            fprintf(stderr, "bench_server: engine: prepare: %s\n", e.message);
            pthread_mutex_lock(&j->mu);
            j->failed = 1;
            pthread_mutex_unlock(&j->mu);
        }
    }
}

/* The engine's own items/s on the same kind of items, o->engine_batch per call, for o->seconds
 * (after one warm-up call): each call prepares its items on all cores (tkr_prepare), then
 * embeds them (tkr_embed_prepared); both timed. 0 on failure (the message on stderr). */
static double engine_rate(const bench_opts *o, char *desc, size_t desc_cap) {
    tkr_model_params mp = tkr_model_default_params();
    mp.device = o->device;
    tkr_model *m = NULL;
    tkr_error err;
    if (tkr_model_load(o->engine, &mp, &m, &err) != TKR_OK) {
        fprintf(stderr, "bench_server: --engine %s: %s\n", o->engine, err.message);
        return 0;
    }
    tkr_model_describe_kernels(m, desc, desc_cap);
    int B = o->engine_batch, D = tkr_model_dim(m);
    int n_th = tkr_cpu_count() < 64 ? tkr_cpu_count() : 64;
    size_t tcap = (size_t)o->words * 16 + 16;
    char *texts = malloc(tcap * (size_t)B);
    tkr_item *items = calloc((size_t)B, sizeof *items);
    tkr_prepared **prep = calloc((size_t)B, sizeof *prep);
    float *out = malloc(sizeof(float) * (size_t)B * (size_t)D);
    tkr_result *res = malloc(sizeof(tkr_result) * (size_t)B);
    pthread_t th[64];
    tkr_image_input img = {.path = o->image_path};
    double rate = 0, t0 = 0;
    long done = 0, seq = 0;
    bool ok = texts && items && prep && out && res;
    for (int call = 0; ok; call++) {
        for (int i = 0; i < B; i++) {
            char *t = texts + tcap * (size_t)i;
            item_text(o, i % o->clients, seq, i / o->clients, t, tcap);
            items[i] = tkr_item_default();
            items[i].text = t;
            if (o->image_path) {
                items[i].images = &img;
                items[i].n_images = 1;
            }
        }
        seq++;
        if (call == 1) t0 = tkr_now_seconds(); /* call 0 warms up */
        prep_job job = {m, items, prep, B, 0, 0, PTHREAD_MUTEX_INITIALIZER};
        for (int i = 0; i < n_th; i++) pthread_create(&th[i], NULL, prep_main, &job);
        for (int i = 0; i < n_th; i++) pthread_join(th[i], NULL);
        ok = !job.failed && tkr_embed_prepared(m, prep, B, out, res, &err) == TKR_OK;
        if (!ok && !job.failed) fprintf(stderr, "bench_server: engine: %s\n", err.message);
        for (int i = 0; i < B; i++) {
            if (ok && res[i].status != TKR_OK) {
                fprintf(stderr, "bench_server: engine: item %d: %s\n", i, res[i].message);
                ok = false;
            }
            tkr_prepared_free(prep[i]);
            prep[i] = NULL;
        }
        if (call == 0) continue;
        done += B;
        if (tkr_now_seconds() - t0 >= o->seconds) break;
    }
    if (ok && done) rate = (double)done / (tkr_now_seconds() - t0);
    free(texts);
    free(items);
    free(prep);
    free(out);
    free(res);
    tkr_model_free(m);
    return rate;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_server [--host H] [--port P] [--clients N] [--seconds T] [--items K]\n"
            "                    [--words W] [--image FILE] [--api-key KEY] [--base64] [--path P]\n"
            "                    [--engine MODEL [--device D] [--engine-batch B]]\n"
            "Sends /v1/embeddings requests from N keep-alive clients for T seconds against a running\n"
            "server and prints items/s, requests/s and latency percentiles (successful requests).\n"
            "--engine: then embeds the same kind of items in this process through the C API, B per\n"
            "call (default N x K), and prints the server's throughput over the engine's.\n");
}

int main(int argc, char **argv) {
    bench_opts o = {"127.0.0.1", "8080", NULL, "/v1/embeddings", 8, 1, 32, 10, NULL, false, NULL, NULL, NULL, 0};
    const char *image = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--base64")) { o.base64 = true; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !v) { usage(); return a[1] == 'h' || !strcmp(a, "--help") ? 0 : 2; }
        i++;
        if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--port")) o.port = v;
        else if (!strcmp(a, "--clients")) o.clients = atoi(v);
        else if (!strcmp(a, "--seconds")) o.seconds = atof(v);
        else if (!strcmp(a, "--items")) o.items = atoi(v);
        else if (!strcmp(a, "--words")) o.words = atoi(v);
        else if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "--api-key")) o.api_key = v;
        else if (!strcmp(a, "--path")) o.path = v;
        else if (!strcmp(a, "--engine")) o.engine = v;
        else if (!strcmp(a, "--device")) o.device = v;
        else if (!strcmp(a, "--engine-batch")) o.engine_batch = atoi(v);
        else { usage(); return 2; }
    }
    if (o.clients < 1 || o.clients > 4096 || o.items < 1 || o.words < 1 || o.seconds <= 0) { usage(); return 2; }
    if (o.engine_batch <= 0) o.engine_batch = o.clients * o.items;
    if (o.engine_batch > 65536) { usage(); return 2; }
    o.image_path = image;
    if (image) {
        char *data = NULL;
        size_t n = 0;
        tkr_error err;
        if (tkr_read_file(image, 64u << 20, &data, &n, &err) != TKR_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        size_t b = tkr_base64_encoded_size(n);
        o.image_uri = malloc(b + 32);
        strcpy(o.image_uri, "data:image;base64,");
        tkr_base64_encode((const uint8_t *)data, n, o.image_uri + strlen(o.image_uri));
        free(data);
    }
    client_state *cs = calloc((size_t)o.clients, sizeof *cs);
    pthread_t *th = calloc((size_t)o.clients, sizeof *th);
    double t0 = tkr_now_seconds();
    for (int i = 0; i < o.clients; i++) {
        cs[i].o = &o;
        cs[i].id = i;
        cs[i].deadline = t0 + o.seconds;
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    long requests = 0, items = 0, errors = 0;
    size_t n_lat = 0;
    int last_status = 0;
    for (int i = 0; i < o.clients; i++) {
        pthread_join(th[i], NULL);
        requests += cs[i].requests;
        items += cs[i].items;
        errors += cs[i].errors;
        n_lat += cs[i].n_lat;
        if (cs[i].last_error_status) last_status = cs[i].last_error_status;
    }
    double elapsed = tkr_now_seconds() - t0;
    double *lat = malloc(sizeof(double) * (n_lat ? n_lat : 1));
    size_t k = 0;
    for (int i = 0; i < o.clients; i++) {
        if (cs[i].n_lat) memcpy(lat + k, cs[i].lat, sizeof(double) * cs[i].n_lat);
        k += cs[i].n_lat;
        free(cs[i].lat);
    }
    qsort(lat, n_lat, sizeof(double), cmp_double);
#define PCT(p) (n_lat ? lat[(size_t)((double)(n_lat - 1) * (p))] * 1000 : 0)
    printf("clients %d, %.1f s, %d items/request, %d words/item%s\n", o.clients, elapsed, o.items, o.words,
           image ? ", with image" : "");
    printf("requests %ld ok %zu errors %ld%s", requests, n_lat, errors, errors ? "" : "\n");
    if (errors) printf(" (last status %d)\n", last_status);
    printf("items/s %.1f  requests/s %.1f\n", (double)items / elapsed, (double)n_lat / elapsed);
    printf("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
    free(lat);
    free(cs);
    free(th);
    free(o.image_uri);
    if (o.engine && n_lat) {
        char desc[512] = "";
        double server_rate = (double)items / elapsed, rate = engine_rate(&o, desc, sizeof desc);
        if (rate <= 0) return 1;
        printf("engine items/s %.1f (tkr_prepare on all cores + tkr_embed_prepared, %d items a call, %s)\n", rate,
               o.engine_batch, desc);
        printf("server/engine %.3f\n", server_rate / rate);
    }
    return n_lat ? 0 : 1;
}

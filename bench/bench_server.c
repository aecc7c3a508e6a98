/* bench_server.c - load generator for a running tkr-embed server: N clients, each on its own
 * keep-alive connection, send /v1/embeddings requests back to back for T seconds; prints items/s,
 * requests/s and latency percentiles.
 *
 *   build/bench/bench_server --port 8080 --clients 16 --seconds 30 --items 4 --words 64
 *   build/bench/bench_server --port 8080 --clients 4 --image photo.jpg --words 8
 *
 * Texts differ per request (client, sequence number) so nothing can be answered from a cache. */
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

/* The request body: items texts of `words` words, optionally each with the image. */
static char *make_body(const bench_opts *o, int client, long seq, size_t *len) {
    size_t cap = 256 + (size_t)o->items * ((size_t)o->words * 12 + 64 + (o->image_uri ? strlen(o->image_uri) + 32 : 0));
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t pos = (size_t)snprintf(b, cap, "{\"model\":\"bench\",%s\"input\":[",
                                  o->base64 ? "\"encoding_format\":\"base64\"," : "");
    for (int i = 0; i < o->items; i++) {
        pos += (size_t)snprintf(b + pos, cap - pos, "%s%s\"", i ? "," : "", o->image_uri ? "{\"text\":" : "");
        for (int w = 0; w < o->words; w++)
            pos += (size_t)snprintf(b + pos, cap - pos, "%sw%ld_%d_%d", w ? " " : "", seq % 1000, client, (i * 31 + w) % 997);
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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_server [--host H] [--port P] [--clients N] [--seconds T] [--items K]\n"
            "                    [--words W] [--image FILE] [--api-key KEY] [--base64] [--path P]\n"
            "Sends /v1/embeddings requests from N keep-alive clients for T seconds against a running\n"
            "server and prints items/s, requests/s and latency percentiles (successful requests).\n");
}

int main(int argc, char **argv) {
    bench_opts o = {"127.0.0.1", "8080", NULL, "/v1/embeddings", 8, 1, 32, 10, NULL, false};
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
        else { usage(); return 2; }
    }
    if (o.clients < 1 || o.clients > 4096 || o.items < 1 || o.words < 1 || o.seconds <= 0) { usage(); return 2; }
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
    return n_lat ? 0 : 1;
}

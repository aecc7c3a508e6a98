/* http_conn.c - see http_conn.h. One acceptor thread; one thread per connection, each in a slot
 * of a fixed table (max_connections), joined by the acceptor when the slot is reused and by
 * tkr_http_close. Every wait is a poll() with a deadline, on the socket and on a "stop" pipe
 * that tkr_http_quiesce makes readable, so idle connections notice a drain at once. */
#include "server/http_conn.h"
#include "server/api_embeddings.h"
#include "server/sbuf.h"
#include "util/error.h"
#include "util/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A connection's buffer: a whole head plus room for reading body bytes behind it. */
#define READ_CHUNK 65536
#define CONN_BUF (TKR_HTTP_MAX_HEAD + 16 + READ_CHUNK)

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

typedef struct {
    pthread_t thread;
    atomic_int state;
    int fd;
    char ip[INET6_ADDRSTRLEN];
} slot;

struct tkr_http_listener {
    tkr_http_listener_config cfg;
    int listen_fd;
    int port;
    int stop_pipe[2];          /* [0] becomes readable on quiesce */
    pthread_t acceptor;
    bool acceptor_running;
    atomic_int quiescing;
    pthread_mutex_t mu;        /* guards the slot table's fd and ip fields */
    slot *slots;
};

struct tkr_http_conn {
    tkr_http_listener *l;
    slot *sl;
    int fd;
    char *buf;                 /* CONN_BUF bytes */
    size_t have;               /* bytes in buf */
    size_t pos;                /* next unread byte (after the head while a request is handled) */
    const tkr_http_head *head;
    bool body_pending;         /* the request has a body not read to its end */
    bool responded;
    bool close_after;
    bool answered_close;       /* the last thing sent was an answer: close gracefully */
};

/* ---- small socket helpers ------------------------------------------------------------------- */

/* Waits until fd is readable (or writable), the stop pipe fires (when watch_stop), or the
 * deadline passes. 1 = ready, 0 = deadline, -1 = stop or error. */
static int wait_fd(tkr_http_listener *l, int fd, bool write, double deadline, bool watch_stop) {
    for (;;) {
        double left = deadline - tkr_now_seconds();
        if (left <= 0) return 0;
        struct pollfd p[2] = {{fd, (short)(write ? POLLOUT : POLLIN), 0}, {l->stop_pipe[0], POLLIN, 0}};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
        int r = poll(p, watch_stop ? 2 : 1, ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) continue;
        if (watch_stop && (p[1].revents & POLLIN)) return -1;
        if (p[0].revents) return 1;
    }
}

static bool send_all(tkr_http_listener *l, int fd, const char *data, size_t n, double deadline) {
    while (n) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            data += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(l, fd, true, deadline, false) != 1) return false;
            continue;
        }
        return false;
    }
    return true;
}

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Builds a whole response (head and body) into one buffer, sent with one write. */
static bool build_response(sbuf *out, int status, const char *content_type, const char *body,
                           size_t len, bool send_body, const char *hname, const char *hvalue,
                           bool close, bool http10_keep) {
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sbuf_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                status, reason(status), date, content_type, len);
    if (hname) sbuf_printf(out, "%s: %s\r\n", hname, hvalue);
    if (close) sbuf_puts(out, "Connection: close\r\n");
    else if (http10_keep) sbuf_puts(out, "Connection: keep-alive\r\n");
    sbuf_puts(out, "\r\n");
    if (send_body) sbuf_append(out, body, len);
    return sbuf_ok(out);
}

/* An error the transport answers itself, in the OpenAI shape. */
static void send_error(tkr_http_listener *l, int fd, const char *ip, int status, const char *code,
                       const char *message, double send_timeout_s) {
    tkr_api_error e;
    tkr_api_error_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", code,
                      NULL, "%s", message);
    sbuf body, out;
    sbuf_init(&body, 0);
    sbuf_init(&out, 0);
    tkr_api_write_error(&e, &body);
    bool retry = status == 503 || status == 429;
    if (sbuf_ok(&body) && build_response(&out, status, "application/json", body.data, body.len,
                                         true, retry ? "Retry-After" : NULL, "1", true, false))
        send_all(l, fd, out.data, out.len, tkr_now_seconds() + send_timeout_s);
    sbuf_free(&body);
    sbuf_free(&out);
    if (l->cfg.on_error) l->cfg.on_error(l->cfg.app, ip, status, message);
}

/* ---- handler API ---------------------------------------------------------------------------- */

void tkr_http_continue(tkr_http_conn *c) {
    if (!c->head->expect_continue || !c->body_pending) return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    send_all(c->l, c->fd, cont, sizeof cont - 1, tkr_now_seconds() + c->l->cfg.send_timeout_s);
}

/* Reads more bytes into buf after the head (the consumed body bytes are dropped first). */
static int read_more(tkr_http_conn *c, double deadline) {
    if (c->pos == c->have) c->have = c->pos = c->head->head_len;
    if (c->have >= CONN_BUF) return -1;
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->have, CONN_BUF - c->have, MSG_DONTWAIT);
        if (n > 0) { c->have += (size_t)n; return 1; }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;
        int w = wait_fd(c->l, c->fd, false, deadline, false);
        if (w != 1) return 0;
    }
}

int tkr_http_read_body(tkr_http_conn *c, double deadline, tkr_http_sink sink, void *ctx,
                       tkr_http_perr *e) {
    if (!c->body_pending) return 1;
    const tkr_http_head *h = c->head;
    if (h->chunked) {
        tkr_http_chunked ch;
        tkr_http_chunked_init(&ch);
        for (;;) {
            size_t used = 0;
            int r = tkr_http_chunked_feed(&ch, c->buf + c->pos, c->have - c->pos, &used, sink, ctx, e);
            c->pos += used;
            if (r == 1) { c->body_pending = false; return 1; }
            if (r < 0) return r;
            if (read_more(c, deadline) != 1) return 0;
        }
    }
    uint64_t left = h->content_length;
    for (;;) {
        size_t k = c->have - c->pos;
        if (k > left) k = (size_t)left;
        if (k && sink && !sink(ctx, c->buf + c->pos, k)) { c->pos += k; return -2; }
        c->pos += k;
        left -= k;
        if (left == 0) { c->body_pending = false; return 1; }
        if (read_more(c, deadline) != 1) return 0;
    }
}

bool tkr_http_respond(tkr_http_conn *c, int status, const char *content_type, const char *body,
                      size_t len, const char *hname, const char *hvalue, bool close) {
    const tkr_http_head *h = c->head;
    /* a body left unread would be taken for the next request: close instead */
    close = close || !h->keep_alive || c->body_pending || atomic_load(&c->l->quiescing);
    c->responded = true;
    c->close_after = close;
    sbuf out;
    sbuf_init(&out, 0);
    bool ok = build_response(&out, status, content_type, body, len, strcmp(h->method, "HEAD") != 0,
                             hname, hvalue, close, h->minor == 0);
    if (ok) ok = send_all(c->l, c->fd, out.data, out.len, tkr_now_seconds() + c->l->cfg.send_timeout_s);
    sbuf_free(&out);
    if (!ok) c->close_after = true;
    return ok;
}

bool tkr_http_client_gone(tkr_http_conn *c) {
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    return false;
}

const char *tkr_http_client_ip(const tkr_http_conn *c) { return c->sl->ip; }

/* ---- one connection ------------------------------------------------------------------------- */

/* Waits for the next request's head. 1 = parsed into h, 0 = close quietly (idle, client gone,
 * drain), -1 = answered with an error (close). */
static int next_head(tkr_http_conn *c, tkr_http_head *h) {
    tkr_http_listener *l = c->l;
    double idle_until = tkr_now_seconds() + l->cfg.idle_timeout_s, head_until = 0;
    if (c->have > 0) head_until = tkr_now_seconds() + l->cfg.header_timeout_s;
    for (;;) {
        if (c->have > 0) {
            tkr_http_perr e;
            int r = tkr_http_parse_head(c->buf, c->have, h, &e);
            if (r == 1) return 1;
            if (r < 0) {
                send_error(l, c->fd, c->sl->ip, e.status, e.code, e.message, l->cfg.send_timeout_s);
                return -1;
            }
        }
        if (atomic_load(&l->quiescing)) return 0;
        if (c->have >= TKR_HTTP_MAX_HEAD + 16) return 0;   /* cannot happen: the parser refused it */
        double until = c->have ? head_until : idle_until;
        int w = wait_fd(l, c->fd, false, until, true);
        if (w == 0 && c->have) {
            send_error(l, c->fd, c->sl->ip, 408, "request_timeout",
                       "the request head did not arrive within the header timeout", l->cfg.send_timeout_s);
            return -1;
        }
        if (w != 1) return 0;
        ssize_t n = recv(c->fd, c->buf + c->have, TKR_HTTP_MAX_HEAD + 16 - c->have, MSG_DONTWAIT);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return 0;
        }
        if (c->have == 0) head_until = tkr_now_seconds() + l->cfg.header_timeout_s;
        c->have += (size_t)n;
    }
}

static void serve_connection(tkr_http_conn *c) {
    tkr_http_listener *l = c->l;
    for (;;) {
        tkr_http_head h;
        int r = next_head(c, &h);
        if (r != 1) {
            c->answered_close = r < 0;
            return;
        }
        c->head = &h;
        c->pos = h.head_len;
        c->body_pending = h.chunked || (h.has_length && h.content_length > 0);
        c->responded = false;
        c->close_after = false;
        char path[TKR_HTTP_MAX_TARGET + 1];
        if (!tkr_http_decode_path(h.target, path, sizeof path)) {
            send_error(l, c->fd, c->sl->ip, 400, "bad_request", "invalid percent-encoding in the request path",
                       l->cfg.send_timeout_s);
            c->answered_close = true;
            return;
        }
        l->cfg.handler(l->cfg.app, c, &h, path);
        if (!c->responded) return;
        if (c->close_after) {
            c->answered_close = true;
            return;
        }
        /* keep what follows this request (pipelining) at the start of the buffer */
        size_t rest = c->have - c->pos;
        memmove(c->buf, c->buf + c->pos, rest);
        c->have = rest;
        c->pos = 0;
    }
}

/* Closing a socket with unread input makes the kernel send a reset, which can destroy the
 * answer before the client reads it (an early 413, a 400 in the middle of a body): after an
 * answer, stop writing and read what the client still sends, briefly, before closing. */
static void lingering_close(tkr_http_conn *c) {
    shutdown(c->fd, SHUT_WR);
    double until = tkr_now_seconds() + 1.0;
    size_t drained = 0;
    while (drained < (size_t)4 << 20 && wait_fd(c->l, c->fd, false, until, false) == 1) {
        ssize_t n = recv(c->fd, c->buf, CONN_BUF, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) break;
        if (n > 0) drained += (size_t)n;
    }
}

static void *conn_main(void *arg) {
    tkr_http_conn *c = arg;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve_connection(c);
    if (c->answered_close) lingering_close(c);
    pthread_mutex_lock(&c->l->mu);
    c->sl->fd = -1;
    pthread_mutex_unlock(&c->l->mu);
    close(c->fd);
    atomic_store(&c->sl->state, SLOT_DONE);
    free(c->buf);
    free(c);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------------------------ */

/* A connection past a cap: read what the client sent (briefly), answer 503, close. Bounded to
 * ~0.1 s so that a flood cannot stall the acceptor for long. */
static void reject(tkr_http_listener *l, int fd, const char *ip, const char *why) {
    char junk[4096];
    double until = tkr_now_seconds() + 0.05;
    if (wait_fd(l, fd, false, until, false) == 1)
        while (recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {}
    send_error(l, fd, ip, 503, "too_many_connections", why, 0.05);
    shutdown(fd, SHUT_WR);
    until = tkr_now_seconds() + 0.05;
    while (wait_fd(l, fd, false, until, false) == 1 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {}
    close(fd);
}

static void peer_ip(const struct sockaddr_storage *sa, char *buf, size_t cap) {
    snprintf(buf, cap, "-");
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)cap);
}

static void *acceptor_main(void *arg) {
    tkr_http_listener *l = arg;
    for (;;) {
        struct pollfd p[2] = {{l->listen_fd, POLLIN, 0}, {l->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept(l->listen_fd, (struct sockaddr *)&sa, &sl);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                const struct timespec pause = {0, 10 * 1000 * 1000};
                nanosleep(&pause, NULL);
            }
            continue;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        char ip[INET6_ADDRSTRLEN];
        peer_ip(&sa, ip, sizeof ip);
        /* a free slot (joining finished threads), and the per-IP count */
        slot *free_slot = NULL;
        int same_ip = 0;
        for (int i = 0; i < l->cfg.max_connections; i++) {
            slot *s = &l->slots[i];
            int st = atomic_load(&s->state);
            if (st == SLOT_DONE) {
                pthread_join(s->thread, NULL);
                atomic_store(&s->state, SLOT_FREE);
                st = SLOT_FREE;
            }
            if (st == SLOT_FREE) { if (!free_slot) free_slot = s; }
            else if (!strcmp(s->ip, ip)) same_ip++;
        }
        if (!free_slot) {
            reject(l, fd, ip, "too many connections to the server; retry shortly");
            continue;
        }
        if (l->cfg.max_connections_per_ip > 0 && same_ip >= l->cfg.max_connections_per_ip) {
            reject(l, fd, ip, "too many connections from this address; retry shortly");
            continue;
        }
        tkr_http_conn *c = calloc(1, sizeof *c);
        char *buf = malloc(CONN_BUF);
        if (!c || !buf) {
            free(c);
            free(buf);
            close(fd);
            continue;
        }
        c->l = l;
        c->sl = free_slot;
        c->fd = fd;
        c->buf = buf;
        pthread_mutex_lock(&l->mu);
        free_slot->fd = fd;
        memcpy(free_slot->ip, ip, sizeof ip);
        pthread_mutex_unlock(&l->mu);
        atomic_store(&free_slot->state, SLOT_RUNNING);
        if (pthread_create(&free_slot->thread, NULL, conn_main, c) != 0) {
            atomic_store(&free_slot->state, SLOT_FREE);
            free_slot->fd = -1;
            close(fd);
            free(buf);
            free(c);
        }
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int open_listen_socket(const char *host, int port, tkr_error *err, int *fd_out) {
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host, port_str, &hints, &ai);
    if (gai != 0 || !ai) return tkr_fail(err, TKR_ERR_INVALID_ARG, "--host '%s': %s", host, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return tkr_fail(err, TKR_ERR_IO, "cannot listen on %s:%d (address in use, or not allowed)", host, port);
    }
    freeaddrinfo(ai);
    *fd_out = fd;
    return TKR_OK;
}

tkr_status tkr_http_listen(const tkr_http_listener_config *cfg, tkr_http_listener **out,
                           tkr_error *err) {
    *out = NULL;
    if (cfg->max_connections < 1) return tkr_fail(err, TKR_ERR_INVALID_ARG, "max_connections must be positive");
    tkr_http_listener *l = calloc(1, sizeof *l);
    if (!l) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    l->cfg = *cfg;
    l->listen_fd = -1;
    l->stop_pipe[0] = l->stop_pipe[1] = -1;
    l->slots = calloc((size_t)cfg->max_connections, sizeof *l->slots);
    if (!l->slots || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l->slots);
        free(l);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < cfg->max_connections; i++) l->slots[i].fd = -1;
    tkr_status st = open_listen_socket(cfg->host, cfg->port, err, &l->listen_fd);
    if (st == TKR_OK && pipe(l->stop_pipe) != 0) st = tkr_fail(err, TKR_ERR_IO, "pipe: %s", strerror(errno));
    if (st == TKR_OK) {
        fcntl(l->stop_pipe[0], F_SETFD, FD_CLOEXEC);
        fcntl(l->stop_pipe[1], F_SETFD, FD_CLOEXEC);
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        if (getsockname(l->listen_fd, (struct sockaddr *)&sa, &sl) == 0)
            l->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&sa)->sin6_port
                                                     : ((struct sockaddr_in *)(void *)&sa)->sin_port);
        if (pthread_create(&l->acceptor, NULL, acceptor_main, l) != 0)
            st = tkr_fail(err, TKR_ERR_INTERNAL, "cannot start the acceptor thread");
        else
            l->acceptor_running = true;
    }
    if (st != TKR_OK) {
        if (l->listen_fd >= 0) close(l->listen_fd);
        if (l->stop_pipe[0] >= 0) { close(l->stop_pipe[0]); close(l->stop_pipe[1]); }
        pthread_mutex_destroy(&l->mu);
        free(l->slots);
        free(l);
        return st;
    }
    *out = l;
    return TKR_OK;
}

int tkr_http_listener_port(const tkr_http_listener *l) { return l->port; }

void tkr_http_quiesce(tkr_http_listener *l) {
    if (atomic_exchange(&l->quiescing, 1)) return;
    ssize_t w;
    do w = write(l->stop_pipe[1], "x", 1); while (w < 0 && errno == EINTR);
    if (l->acceptor_running) pthread_join(l->acceptor, NULL);
    l->acceptor_running = false;
    close(l->listen_fd);
    l->listen_fd = -1;
}

void tkr_http_close(tkr_http_listener *l) {
    if (!l) return;
    tkr_http_quiesce(l);
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->cfg.max_connections; i++)
        if (l->slots[i].fd >= 0) shutdown(l->slots[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->cfg.max_connections; i++)
        if (atomic_load(&l->slots[i].state) != SLOT_FREE) pthread_join(l->slots[i].thread, NULL);
    close(l->stop_pipe[0]);
    close(l->stop_pipe[1]);
    pthread_mutex_destroy(&l->mu);
    free(l->slots);
    free(l);
}

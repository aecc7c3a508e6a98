/* http_conn.h - the HTTP/1.1 transport of the server: a listening socket, one thread per
 * connection up to a cap, keep-alive, and the strict parser of http_parse.h in front of the
 * application. The transport answers by itself, always with the OpenAI JSON error shape:
 * malformed heads and bodies (400, 411, 413, 414, 417, 431, 501, 505), heads that do not arrive
 * within the header timeout (408), and connections past the caps (503 with Retry-After, instead
 * of leaving them in the kernel's backlog). Everything else goes to the application's handler,
 * which runs on the connection's thread and may block.
 *
 * Why not libmicrohttpd: it answers many client errors with its own HTML pages (bad chunk sizes,
 * HTTP/2.0 or HTTP/0.9 request lines, too many headers, header lines without a colon), sends
 * status and headers twice for a bad Content-Length, accepts two different Content-Length
 * headers (request smuggling behind a proxy), and leaves connections past its cap silently in
 * the backlog; none of this can be changed from outside in the Debian 12 version (0.9.75). */
#ifndef TKR_SERVER_HTTP_CONN_H
#define TKR_SERVER_HTTP_CONN_H

#include "server/http_parse.h"
#include "tkr_embed.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tkr_http_listener tkr_http_listener;
typedef struct tkr_http_conn tkr_http_conn;

/* The request handler: called once per request with its head; path is the percent-decoded path
 * (query removed). It must answer with tkr_http_respond (or not at all, to drop the connection). */
typedef void (*tkr_http_handler)(void *app, tkr_http_conn *c, const tkr_http_head *h,
                                 const char *path);

/* Called for each request the transport answered itself (for metrics and the access log). */
typedef void (*tkr_http_error_hook)(void *app, const char *ip, int status, const char *message);

typedef struct {
    const char *host;
    int port;
    int max_connections;
    int max_connections_per_ip;      /* 0 = no cap */
    double idle_timeout_s;           /* between requests on a keep-alive connection */
    double header_timeout_s;         /* from the first byte of a request to the end of its head */
    double send_timeout_s;           /* to write one response (slow readers) */
    tkr_http_handler handler;
    tkr_http_error_hook on_error;
    void *app;
} tkr_http_listener_config;

tkr_status tkr_http_listen(const tkr_http_listener_config *cfg, tkr_http_listener **out,
                           tkr_error *err);
int tkr_http_listener_port(const tkr_http_listener *l);

/* Stops accepting (the socket is closed: new connections are refused) and closes idle
 * keep-alive connections; requests in progress go on. */
void tkr_http_quiesce(tkr_http_listener *l);

/* Closes every connection (requests in progress see their socket shut down), waits for the
 * connection threads, and frees the listener. */
void tkr_http_close(tkr_http_listener *l);

/* ---- for handlers ---- */

/* Sends "100 Continue" when the client asked for it (call before reading the body). */
void tkr_http_continue(tkr_http_conn *c);

/* Reads the request body to its end (Content-Length or chunked), passing the bytes to sink,
 * until deadline (tkr_now_seconds clock). Returns 1 when the body is complete, 0 when the client
 * left or the deadline passed (drop the connection), -1 on a malformed body (e filled), -2 when
 * sink returned false. */
int tkr_http_read_body(tkr_http_conn *c, double deadline, tkr_http_sink sink, void *ctx,
                       tkr_http_perr *e);

/* Queues the answer: status, content type, body (len bytes; not sent for HEAD), one optional
 * extra header, and whether to close the connection after it. Returns false if the client
 * could not be written to. */
bool tkr_http_respond(tkr_http_conn *c, int status, const char *content_type, const char *body,
                      size_t len, const char *hname, const char *hvalue, bool close);

/* True when the client has closed its end (checked while a handler waits). */
bool tkr_http_client_gone(tkr_http_conn *c);
const char *tkr_http_client_ip(const tkr_http_conn *c);

#endif

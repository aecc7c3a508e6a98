/* http.h - the HTTP server: routing, auth, limits, and the /v1/embeddings handler that feeds
 * the batcher, over the strict HTTP/1.1 transport of http_conn.h (one thread per connection,
 * keep-alive, connection caps, header/idle/read timeouts, JSON errors for malformed requests).
 *
 * Routes:  POST /v1/embeddings, /embeddings     auth
 *          GET  /v1/models, /models, /v1/models/<id>   auth
 *          GET  /metrics                        auth
 *          GET  /health                         public; 200 only when ready
 * Lifecycle: start (listening, /health 503 "loading") -> set_engine (ready) -> stop (draining:
 * new embedding requests 503, requests in flight finish, then close). */
#ifndef TKR_SERVER_HTTP_H
#define TKR_SERVER_HTTP_H

#include "server/batcher.h"
#include "server/config.h"
#include "server/engine.h"

typedef struct tkr_server tkr_server;

/* Binds cfg->host:cfg->port and starts serving (/health answers 503 until an engine is set).
 * cfg must outlive the server. */
tkr_status tkr_server_start(const tkr_server_config *cfg, tkr_server **out, tkr_error *err);

/* The bound port (useful with port 0). */
int tkr_server_port(const tkr_server *s);

/* The batch budgets the server uses: the options, where unset (0) the engine's device's, else
 * the CPU defaults (64 items, 8192 prompt tokens, 5120 image tokens). */
tkr_batcher_params tkr_server_batch_budgets(const tkr_server_config *cfg, const tkr_engine *engine);

/* Makes the server ready: starts the batcher over engine, which must stay valid until
 * tkr_server_stop returns. */
tkr_status tkr_server_set_engine(tkr_server *s, const tkr_engine *engine, tkr_error *err);

/* The model could not be loaded: /health answers 503 "failed" with the reason. */
void tkr_server_set_failed(tkr_server *s, const char *reason);

/* Graceful stop, then free: stops accepting connections, answers new embedding requests with
 * 503, waits up to cfg->drain_timeout_s for requests in flight, fails whatever is still queued,
 * closes every connection. Returns the number of requests that were still in flight when the
 * drain timeout passed (0 = a clean drain). */
int tkr_server_stop(tkr_server *s);

#endif

/* serve.h - the `serve` process: options, model loading beside a listening server, signals.
 *
 * tkr_serve_main is a process entry point (called from the CLI's main, or from a test program
 * with a fake engine). It blocks SIGTERM/SIGINT in the calling thread before starting any other
 * thread (so every thread inherits the mask) and receives them with sigwait on a thread of its
 * own: no handler runs, and no global state is needed. Order of events:
 *   listen (/health 503 "loading") -> open the engine on a loader thread -> ready (/health 200)
 *   -> SIGTERM or SIGINT -> drain (requests in flight finish, new ones get 503) -> exit 0.
 * A model that fails to load ends the process with status 1; bad options with status 2. */
#ifndef TKR_SERVER_SERVE_H
#define TKR_SERVER_SERVE_H

#include "server/config.h"
#include "server/engine.h"

/* Opens the engine for cfg (slow: loads the model). ctx is the caller's. */
typedef tkr_status (*tkr_engine_open_fn)(const tkr_server_config *cfg, void *ctx,
                                         tkr_engine *out, tkr_error *err);

/* argv[0] is the sub-command name ("serve"). Returns the process exit status. */
int tkr_serve_main(int argc, char **argv, tkr_engine_open_fn open_engine, void *ctx);

#endif

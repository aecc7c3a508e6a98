/* cmd_serve.c - `tkr-embed serve`: the HTTP server (src/server) over the real model. Options,
 * lifecycle and signals are in tkr_serve_main; docs/server.md describes the API. */
#include "cli/cli.h"
#include "server/engine_model.h"
#include "server/serve.h"

int tkr_cmd_serve(int argc, char **argv) {
    return tkr_serve_main(argc, argv, tkr_engine_model_open, NULL);
}

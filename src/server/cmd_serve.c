/* cmd_serve.c - `tkr-embed serve`: the server over the real model.
 *
 * Kept in the library (not src/cli) so that it is linked only when main.c dispatches to it:
 * that lets this module build and be tested before the model implementation is merged. */
#include "server/engine_model.h"
#include "server/serve.h"

int tkr_cmd_serve(int argc, char **argv) {
    return tkr_serve_main(argc, argv, tkr_engine_model_open, NULL);
}

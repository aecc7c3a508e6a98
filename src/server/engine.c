/* engine.c - helpers shared by every engine implementation. */
#include "server/engine.h"

#include <string.h>

void tkr_engine_close(tkr_engine *engine) {
    if (!engine) return;
    if (engine->destroy) engine->destroy(engine->impl);
    memset(engine, 0, sizeof *engine);
}

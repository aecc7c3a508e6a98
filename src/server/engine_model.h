/* engine_model.h - the real engine: tkr_model_load/tkr_embed from the public API behind the
 * tkr_engine interface. */
#ifndef TKR_SERVER_ENGINE_MODEL_H
#define TKR_SERVER_ENGINE_MODEL_H

#include "server/config.h"
#include "server/engine.h"

/* Loads cfg->model_dir with the server's limits (threads, image limits, tokens per item, batch
 * tokens) and fills out. A tkr_engine_open_fn (serve.h); ctx is unused. */
tkr_status tkr_engine_model_open(const tkr_server_config *cfg, void *ctx, tkr_engine *out,
                                 tkr_error *err);

#endif

/* threadpool.h - a fixed pool of worker threads that run one parallel loop at a time.
 * Kernels split their work into n_tasks independent pieces; tkr_pool_run calls fn once per
 * piece, on the workers and the calling thread, and returns when every piece is done.
 * A NULL pool runs everything on the calling thread. */
#ifndef TKR_UTIL_THREADPOOL_H
#define TKR_UTIL_THREADPOOL_H

#include "tkr_embed.h"

typedef struct tkr_pool tkr_pool;

/* fn(ctx, task, thread): task in [0, n_tasks), thread in [0, tkr_pool_size()) */
typedef void (*tkr_task_fn)(void *ctx, int task, int thread);

tkr_status tkr_pool_init(int n_threads, tkr_pool **out, tkr_error *err);
void tkr_pool_free(tkr_pool *pool);
int tkr_pool_size(const tkr_pool *pool);
void tkr_pool_run(tkr_pool *pool, int n_tasks, tkr_task_fn fn, void *ctx);

#endif

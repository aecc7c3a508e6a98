/* linear.c - y = x W^T + b, the matrix product that dominates every model pass.
 *
 * Work is split over blocks of output columns (weight rows): each task reads its block of W once
 * and applies it to every row of x, so W streams from memory once per call (it is the larger
 * operand for text batches) and the block stays in cache while x rows pass through. Each thread
 * gets its own scratch (a widened weight row, or the AVX2 kernel's packed panels), allocated once
 * per call. */
#include "kernels/kernels_impl.h"

#include <stdlib.h>
#include <string.h>

/* Reference dot-product kernel: one weight row at a time, expanded to float32 in a small buffer,
 * float32 accumulation in the same order for every row of x. */
void tkr_linear_block_generic(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                              float *y, int N, float *wrow) {
    for (int n = n0; n < n1; n++) {
        tkr_weight_row_f32(w, n, wrow);
        for (int m = 0; m < M; m++) {
            const float *xr = x + (size_t)m * K;
            float acc[8] = {0};
            int k = 0;
            for (; k + 8 <= K; k += 8)
                for (int l = 0; l < 8; l++) acc[l] += xr[k + l] * wrow[k + l];
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; k < K; k++) s += xr[k] * wrow[k];
            y[(size_t)m * N + n] = s;
        }
    }
}

typedef struct {
    const tkr_kctx *ctx;
    const float *x;
    int M, K, N;
    const tkr_tensor *w;
    float *y;
    int block;             /* output columns per task */
    float *scratch;        /* [threads][scratch_floats] */
    size_t scratch_floats;
} linear_job;

static void linear_task(void *p, int task, int thread) {
    linear_job *j = p;
    int n0 = task * j->block;
    int n1 = n0 + j->block < j->N ? n0 + j->block : j->N;
    float *scratch = j->scratch + (size_t)thread * j->scratch_floats;
#ifdef TKR_HAVE_X86
    if (j->ctx->avx2) {
        tkr_linear_block_avx2(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
        return;
    }
#endif
#ifdef TKR_HAVE_NEON
    if (j->ctx->neon) {
        tkr_linear_block_neon(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
        return;
    }
#endif
    tkr_linear_block_generic(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
}

tkr_status tkr_linear(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                      const tkr_tensor *bias, float *y) {
    int N = (int)w->shape[0];
    if (M <= 0 || N <= 0) return TKR_OK;
    /* Blocks of 16 columns (one AVX2 panel) and up, each at most 256 wide (its packed k-block
     * fits L2), with about 4 blocks per thread for load balance. */
    int threads = tkr_pool_size(ctx->pool);
    int block = 16;
    while (block < 256 && (N + block * 2 - 1) / (block * 2) >= threads * 4) block *= 2;
    size_t per_thread = (size_t)K + 16;
#ifdef TKR_HAVE_X86
    if (ctx->avx2) per_thread = tkr_linear_avx2_pack_floats(block, K);
#endif
#ifdef TKR_HAVE_NEON
    if (ctx->neon) per_thread = tkr_linear_neon_pack_floats(block, K);
#endif
    per_thread = (per_thread + 15) & ~(size_t)15; /* keep every thread's slice 64-byte aligned */
    size_t bias_floats = bias ? ((size_t)N + 15) & ~(size_t)15 : 0;
    float *scratch = NULL; /* [threads][per_thread] then the widened bias [N] */
    if (posix_memalign((void **)&scratch, 64,
                       sizeof(float) * (per_thread * (size_t)threads + bias_floats)) != 0)
        return TKR_ERR_NOMEM;
    linear_job j = {ctx, x, M, K, N, w, y, block, scratch, per_thread};
    tkr_pool_run(ctx->pool, (N + block - 1) / block, linear_task, &j);
    if (bias) {
        float *b = scratch + per_thread * (size_t)threads;
        tkr_weight_row_f32(bias, 0, b);
        for (int m = 0; m < M; m++) {
            float *yr = y + (size_t)m * N;
            for (int n = 0; n < N; n++) yr[n] += b[n];
        }
    }
    free(scratch);
    return TKR_OK;
}

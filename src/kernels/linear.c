/* linear.c - y = x W^T + b, the matrix product that dominates every model pass.
 *
 * Work is split over blocks of output columns (weight rows): each task reads its block of W once
 * and applies it to every row of x, so W streams from memory once per call (it is the larger
 * operand for text batches) and the block stays in cache while x rows pass through. */
#include "kernels/kernels.h"
#include "kernels/linear_impl.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define TKR_HAVE_X86 1
#endif

void tkr_kctx_init(tkr_kctx *ctx, tkr_pool *pool, bool force_generic) {
    ctx->pool = pool;
    ctx->avx2 = false;
#if defined(TKR_HAVE_X86) && defined(__GNUC__)
    if (!force_generic) {
        __builtin_cpu_init();
        ctx->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    }
#else
    (void)force_generic;
#endif
}

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
    int block;
} linear_job;

static void linear_task(void *p, int task, int thread) {
    linear_job *j = p;
    int n0 = task * j->block;
    int n1 = n0 + j->block < j->N ? n0 + j->block : j->N;
#ifdef TKR_HAVE_X86
    if (j->ctx->avx2) {
        tkr_linear_block_avx2(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N);
        return;
    }
#endif
    float *wrow = malloc((size_t)j->K * sizeof(float));
    if (!wrow) { /* cannot happen in practice; keep outputs defined */
        for (int m = 0; m < j->M; m++)
            for (int n = n0; n < n1; n++) j->y[(size_t)m * j->N + n] = 0.0f;
        return;
    }
    tkr_linear_block_generic(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, wrow);
    free(wrow);
}

void tkr_linear(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                const tkr_tensor *bias, float *y) {
    int N = (int)w->shape[0];
    if (M <= 0 || N <= 0) return;
    /* Enough blocks for load balance, each big enough to amortise the task overhead. */
    int threads = tkr_pool_size(ctx->pool);
    int block = 16;
    while (block < 256 && (N + block * 2 - 1) / (block * 2) >= threads * 4) block *= 2;
    linear_job j = {ctx, x, M, K, N, w, y, block};
    tkr_pool_run(ctx->pool, (N + block - 1) / block, linear_task, &j);
    if (bias) {
        float *b = malloc((size_t)N * sizeof(float));
        if (!b) return;
        tkr_weight_row_f32(bias, 0, b);
        for (int m = 0; m < M; m++) {
            float *yr = y + (size_t)m * N;
            for (int n = 0; n < N; n++) yr[n] += b[n];
        }
        free(b);
    }
}

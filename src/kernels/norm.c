/* norm.c - RMSNorm (text decoder) and LayerNorm (vision tower), one row per task chunk.
 * Sums are taken in double: cheap next to the matrix products, and it keeps the result close to
 * the float32 reference whatever the row length. */
#include "kernels/kernels_impl.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const float *x;
    int M, D;
    const tkr_tensor *w, *b;
    float eps;
    float *y;
    int rms;
    bool avx2;
    bool neon;
} norm_job;

enum { NORM_ROWS_PER_TASK = 16 };

/* Rows up to this long keep their converted weights on the stack (every Qwen2-VL size: 1280 to
 * 3584), so that a norm cannot fail; longer ones allocate. */
enum { NORM_STACK_D = 4096 };

static void norm_task(void *p, int task, int thread) {
    norm_job *j = p;
    float stack_w[2 * NORM_STACK_D];
    float *heap = j->D > NORM_STACK_D ? malloc(sizeof(float) * (size_t)j->D * 2) : NULL;
    float *w = j->D > NORM_STACK_D ? heap : stack_w;
    if (!w) {
        /* out of memory (a row over NORM_STACK_D only): the rows become NaN, never silently stale,
         * so the vector fails the finiteness checks downstream instead of passing as a result */
        int r0 = task * NORM_ROWS_PER_TASK;
        int r1 = r0 + NORM_ROWS_PER_TASK < j->M ? r0 + NORM_ROWS_PER_TASK : j->M;
        for (size_t i = (size_t)r0 * j->D; i < (size_t)r1 * j->D; i++) j->y[i] = NAN;
        return;
    }
    float *b = w + j->D;
    tkr_weight_row_f32(j->w, 0, w);
    if (j->b) tkr_weight_row_f32(j->b, 0, b);
    int m0 = task * NORM_ROWS_PER_TASK;
    int m1 = m0 + NORM_ROWS_PER_TASK < j->M ? m0 + NORM_ROWS_PER_TASK : j->M;
    for (int m = m0; m < m1; m++) {
        const float *xr = j->x + (size_t)m * j->D;
        float *yr = j->y + (size_t)m * j->D;
        if (j->rms) {
            double ss = 0;
#ifdef TKR_HAVE_X86
            if (j->avx2) ss = tkr_sum_sq_avx2(xr, j->D);
            else
#endif
#ifdef TKR_HAVE_NEON
            if (j->neon) ss = tkr_sum_sq_neon(xr, j->D);
            else
#endif
                for (int i = 0; i < j->D; i++) ss += (double)xr[i] * xr[i];
            float inv = (float)(1.0 / sqrt(ss / j->D + j->eps));
            for (int i = 0; i < j->D; i++) yr[i] = w[i] * (xr[i] * inv);
        } else {
            double s = 0, mean, var = 0;
#ifdef TKR_HAVE_X86
            if (j->avx2) {
                mean = tkr_sum_avx2(xr, j->D) / j->D;
                var = tkr_sum_sq_dev_avx2(xr, j->D, mean);
            } else
#endif
#ifdef TKR_HAVE_NEON
            if (j->neon) {
                mean = tkr_sum_neon(xr, j->D) / j->D;
                var = tkr_sum_sq_dev_neon(xr, j->D, mean);
            } else
#endif
            {
                for (int i = 0; i < j->D; i++) s += xr[i];
                mean = s / j->D;
                for (int i = 0; i < j->D; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
            }
            float inv = (float)(1.0 / sqrt(var / j->D + j->eps));
            float fm = (float)mean;
            for (int i = 0; i < j->D; i++) yr[i] = (xr[i] - fm) * inv * w[i] + (j->b ? b[i] : 0.0f);
        }
    }
    free(heap);
}

static void run_norm(const tkr_kctx *ctx, norm_job *j) {
    tkr_pool_run(ctx->pool, (j->M + NORM_ROWS_PER_TASK - 1) / NORM_ROWS_PER_TASK, norm_task, j);
}

void tkr_rmsnorm(const tkr_kctx *ctx, const float *x, int M, int D, const tkr_tensor *w, float eps,
                 float *y) {
    norm_job j = {x, M, D, w, NULL, eps, y, 1, ctx->avx2, ctx->neon};
    run_norm(ctx, &j);
}

void tkr_layernorm(const tkr_kctx *ctx, const float *x, int M, int D, const tkr_tensor *w,
                   const tkr_tensor *b, float eps, float *y) {
    norm_job j = {x, M, D, w, b, eps, y, 0, ctx->avx2, ctx->neon};
    run_norm(ctx, &j);
}

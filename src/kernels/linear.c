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
    const uint16_t *xb;    /* fast mode: x rounded to bf16 [M, ldxb], else NULL */
    size_t ldxb;
} linear_job;

/* The fast mode applies: opt-in, BF16 weights, and a CPU with AVX512_BF16 dot products. */
static bool use_fast_bf16(const tkr_kctx *ctx, const tkr_tensor *w) {
    return ctx->fast_bf16 && ctx->avx512_bf16 && ctx->avx512 && w->dtype == TKR_DT_BF16;
}

typedef struct {
    const float *x;
    int K;
    uint16_t *xb;
    size_t ldxb;
    int M;
} to_bf16_job;

enum { TO_BF16_ROWS = 16 };
/* The fast mode's bf16 copy of x: rows a chunk (at least FAST_CHUNK_MIN_ROWS, a multiple of the
 * AVX-512 tile's 6 rows and its row group of 192) within about FAST_CHUNK_BYTES. */
enum { FAST_CHUNK_BYTES = 4 << 20, FAST_CHUNK_MIN_ROWS = 192 };

/* Rows [16 task, 16 task + 16) of x rounded to bf16, the pad column (odd K) zero. */
static void to_bf16_task(void *p, int task, int thread) {
#ifdef TKR_HAVE_X86
    to_bf16_job *j = p;
    int m1 = (task + 1) * TO_BF16_ROWS < j->M ? (task + 1) * TO_BF16_ROWS : j->M;
    for (int m = task * TO_BF16_ROWS; m < m1; m++) {
        uint16_t *o = j->xb + (size_t)m * j->ldxb;
        tkr_linear_to_bf16_avx512(j->x + (size_t)m * j->K, (size_t)j->K, o);
        if ((size_t)j->K < j->ldxb) o[j->K] = 0;
    }
#endif
}

static void linear_task(void *p, int task, int thread) {
    linear_job *j = p;
    int n0 = task * j->block;
    int n1 = n0 + j->block < j->N ? n0 + j->block : j->N;
    float *scratch = j->scratch + (size_t)thread * j->scratch_floats;
#ifdef TKR_HAVE_X86
    /* the block this thread probably takes next: tasks go out in order, one per thread */
    int threads = tkr_pool_size(j->ctx->pool);
    int pf0 = n0 + threads * j->block < j->N ? n0 + threads * j->block : j->N;
    int pf1 = pf0 + j->block < j->N ? pf0 + j->block : j->N;
    if (j->xb) {
        tkr_linear_block_avx512_bf16(j->xb, j->ldxb, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch, pf0, pf1);
        return;
    }
    if (j->ctx->avx512) { /* any layout */
        tkr_linear_block_avx512(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch, pf0, pf1);
        return;
    }
    if (j->ctx->avx2 && j->w->layout == TKR_LAYOUT_ROWS) {
        tkr_linear_block_avx2(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
        return;
    }
#endif
#ifdef TKR_HAVE_NEON
    if (j->ctx->neon && j->w->layout == TKR_LAYOUT_ROWS) {
        tkr_linear_block_neon(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
        return;
    }
#endif
    /* the portable kernel reads any layout (tkr_weight_row_f32); the AVX2 and NEON ones rows
     * only, and a weight is repacked only for the kernels that read the packing (linear_pack.c) */
    tkr_linear_block_generic(j->x, j->M, j->K, j->w, n0, n1, j->y, j->N, scratch);
}

tkr_status tkr_linear(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                      const tkr_tensor *bias, float *y) {
    if (tkr_dtype_is_quant(w->dtype)) return tkr_linear_quant(ctx, x, M, K, w, bias, y);
    int N = (int)w->shape[0];
    if (M <= 0 || N <= 0) return TKR_OK;
    /* Blocks of 16 columns (one AVX2 panel) and up, each at most 256 wide (its packed k-block
     * fits L2), with about 4 blocks per thread for load balance. */
    int threads = tkr_pool_size(ctx->pool);
    int block = 16;
#ifdef TKR_HAVE_X86
    if (ctx->avx512) block = 64; /* one AVX-512 panel */
#endif
    while (block < 256 && (N + block * 2 - 1) / (block * 2) >= threads * 4) block *= 2;
    size_t per_thread = (size_t)K + 16;
#ifdef TKR_HAVE_X86
    if (ctx->avx512) per_thread = tkr_linear_avx512_pack_floats(block, K);
    else if (ctx->avx2) per_thread = tkr_linear_avx2_pack_floats(block, K);
#endif
#ifdef TKR_HAVE_NEON
    if (ctx->neon) per_thread = tkr_linear_neon_pack_floats(block, K);
#endif
    if (w->layout != TKR_LAYOUT_ROWS) per_thread = (size_t)K + 16; /* nothing to pack: a row at most */
    per_thread = (per_thread + 15) & ~(size_t)15; /* keep every thread's slice 64-byte aligned */
    size_t bias_floats = bias ? ((size_t)N + 15) & ~(size_t)15 : 0;
    float *scratch = NULL; /* [threads][per_thread] then the widened bias [N] */
    if (posix_memalign((void **)&scratch, 64,
                       sizeof(float) * (per_thread * (size_t)threads + bias_floats)) != 0)
        return TKR_ERR_NOMEM;
    linear_job j = {ctx, x, M, K, N, w, y, block, scratch, per_thread, NULL, 0};
    if (use_fast_bf16(ctx, w)) {
        /* x rounded to bf16 a chunk of rows at a time into one buffer of at most about
         * FAST_CHUNK_BYTES, each chunk then through the whole product: a batch's x converted at
         * once was a fresh mapping of up to 36 MB per call (page faults) written to and read
         * back from memory; a chunk stays in L3 between the two. Rows are independent, so the
         * chunking changes no bit; the weights are read once per chunk. */
        size_t ldxb = ((size_t)K + 1) & ~(size_t)1;
        size_t rows = FAST_CHUNK_BYTES / (sizeof(uint16_t) * ldxb);
        rows = rows < FAST_CHUNK_MIN_ROWS ? FAST_CHUNK_MIN_ROWS : rows;
        rows = rows > (size_t)M ? (size_t)M : rows;
        uint16_t *xb = malloc(sizeof(uint16_t) * ldxb * rows); /* [rows, ldxb] */
        if (!xb) {
            free(scratch);
            return TKR_ERR_NOMEM;
        }
        j.xb = xb;
        j.ldxb = ldxb;
        for (int r0 = 0; r0 < M; r0 += (int)rows) {
            int mc = M - r0 < (int)rows ? M - r0 : (int)rows;
            to_bf16_job tj = {x + (size_t)r0 * K, K, xb, ldxb, mc};
            tkr_pool_run(ctx->pool, (mc + TO_BF16_ROWS - 1) / TO_BF16_ROWS, to_bf16_task, &tj);
            j.M = mc;
            j.y = y + (size_t)r0 * N;
            tkr_pool_run(ctx->pool, (N + block - 1) / block, linear_task, &j);
        }
        free(xb);
    } else {
        tkr_pool_run(ctx->pool, (N + block - 1) / block, linear_task, &j);
    }
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

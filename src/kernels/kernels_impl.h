/* kernels_impl.h - the per-ISA pieces behind kernels.h (internal to src/kernels).
 *
 * Each public kernel in kernels.h checks its arguments, splits the work into thread-pool tasks
 * and calls either the portable piece (plain C, compiled everywhere) or the AVX2 piece (the
 * *_avx2.c files, compiled with -mavx2 -mfma -mf16c on x86-64 only) according to tkr_kctx.avx2. */
#ifndef TKR_KERNELS_IMPL_H
#define TKR_KERNELS_IMPL_H

#include "kernels/kernels.h"

#include <stddef.h>

#if defined(__x86_64__) || defined(_M_X64)
#define TKR_HAVE_X86 1
#endif
#if defined(__aarch64__)
#define TKR_HAVE_NEON 1
#endif

/* ---- linear ---------------------------------------------------------------------------- */

/* Portable: y[m, n] for m in [0, M), n in [n0, n1) (row stride N), one weight row at a time.
 * wrow: K floats of scratch. */
void tkr_linear_block_generic(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                              float *y, int N, float *wrow);

/* AVX2: the same block through packed float32 weight panels (see linear_avx2.c).
 * pack: tkr_linear_avx2_pack_floats(n1 - n0, K) floats, 32-byte aligned. */
size_t tkr_linear_avx2_pack_floats(int block_n, int K);
void tkr_linear_block_avx2(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                           float *y, int N, float *pack);

/* ---- attention ------------------------------------------------------------------------- */

/* Row of q / out that holds query row i (relative to the start) of sequence s. */
static inline size_t tkr_att_q_row(const tkr_attention_args *a, int s, int i) {
    return a->last_row_only ? (size_t)s : (size_t)(a->seq_start[s] + i);
}

/* Per-thread scratch floats the AVX2 attention needs for sequences of up to max_T tokens. */
size_t tkr_attention_avx2_scratch_floats(int max_T, int head_dim);
/* One task: sequence s, head h, query rows [i0, i1) of that sequence (for last_row_only, the
 * last row: [T - 1, T)). */
void tkr_attention_rows_avx2(const tkr_attention_args *a, int s, int h, int i0, int i1,
                             float *scratch);

/* ---- element-wise ---------------------------------------------------------------------- */

void tkr_silu_mul_avx2(float *gate, const float *up, size_t n);
void tkr_quick_gelu_avx2(float *x, size_t n);
/* Sum of x[i]^2 and of x[i] over n values, in double (the norms' statistics). */
double tkr_sum_sq_avx2(const float *x, int n);
double tkr_sum_avx2(const float *x, int n);
double tkr_sum_sq_dev_avx2(const float *x, int n, double mean);

/* ---- NEON (aarch64, the *_neon.c files): the AVX2 pieces' designs, and their results ---- */

size_t tkr_linear_neon_pack_floats(int block_n, int K);
void tkr_linear_block_neon(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                           float *y, int N, float *pack);
size_t tkr_attention_neon_scratch_floats(int max_T, int head_dim);
void tkr_attention_rows_neon(const tkr_attention_args *a, int s, int h, int i0, int i1,
                             float *scratch);
void tkr_silu_mul_neon(float *gate, const float *up, size_t n);
void tkr_quick_gelu_neon(float *x, size_t n);
double tkr_sum_sq_neon(const float *x, int n);
double tkr_sum_neon(const float *x, int n);
double tkr_sum_sq_dev_neon(const float *x, int n, double mean);

#endif

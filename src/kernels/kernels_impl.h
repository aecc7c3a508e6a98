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

/* AVX-512F: the same block with 64-column panels and a 6x64 tile (linear_avx512.c), bit for
 * bit the AVX2 result. pack: tkr_linear_avx512_pack_floats(n1 - n0, K) floats, 64-byte aligned. */
size_t tkr_linear_avx512_pack_floats(int block_n, int K);
/* pf_n0, pf_n1: weight rows this thread likely does next (the pool hands tasks out in order);
 * their first k-block is prefetched during the last one of this block (none when equal). */
void tkr_linear_block_avx512(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                             float *y, int N, float *pack, int pf_n0, int pf_n1);
/* The fast mode (AVX512_BF16, BF16 weights): xb [M, ldx] is x rounded to bf16 by
 * tkr_linear_to_bf16_avx512 (ldx = K rounded up to even, the pad zero); the same pack size. */
void tkr_linear_to_bf16_avx512(const float *x, size_t n, uint16_t *out);
void tkr_linear_block_avx512_bf16(const uint16_t *xb, size_t ldx, int M, int K, const tkr_tensor *w,
                                  int n0, int n1, float *y, int N, float *pack, int pf_n0, int pf_n1);

/* pack_block_bf16 over all of K: rows [n0, n0 + nr) of a row-major BF16 W [., K] into
 * ceil(nr / 64) pair panels at dst (tensor.h TKR_LAYOUT_PAIR_PANELS), dst 64-byte aligned. */
void tkr_linear_pack_pairs_avx512(const uint16_t *W, int K, int n0, int nr, uint32_t *dst);

/* ---- attention ------------------------------------------------------------------------- */

/* Row of q / out that holds query row i (relative to the start) of sequence s. */
static inline size_t tkr_att_q_row(const tkr_attention_args *a, int s, int i) {
    return a->last_row_only ? (size_t)s : (size_t)(a->seq_start[s] + i - (a->q_row1 > 0 ? a->q_row0 : 0));
}

/* Per-thread scratch floats the AVX2 attention needs for sequences of up to max_T tokens. */
size_t tkr_attention_avx2_scratch_floats(int max_T, int head_dim);
/* One task: sequence s, head h, query rows [i0, i1) of that sequence (for last_row_only, the
 * last row: [T - 1, T)). */
void tkr_attention_rows_avx2(const tkr_attention_args *a, int s, int h, int i0, int i1,
                             float *scratch);
/* The AVX2 kernel's packing, shared with the AVX-512 one: kt[p][d][16] = K[16 p + jj][d] and
 * vp[c][j][16] = V[j][16 c + dd], zero padded (attention_avx2.c). */
void tkr_attention_pack_keys_avx2(const float *K, int stride, int nk, int hd, float *kt);
void tkr_attention_pack_values_avx2(const float *V, int stride, int nk, int hd, float *vp);
/* The same task on AVX-512 (attention_avx512.c): the same scratch, the same bits. */
void tkr_attention_rows_avx512(const tkr_attention_args *a, int s, int h, int i0, int i1,
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

/* ---- quantized linear (linear_quant*.c) ------------------------------------------------ */

#include "kernels/quant.h"

#include <stdbool.h>
#include <stdint.h>

/* y[M,N] = x[M,K] @ W[N,K]^T (+ bias) for W in Q8_0 / Q4_0 / Q4_K / Q6_K: activations quantized
 * per row as ggml does (Q8_0 blocks for the 32-value formats, Q8_K for the K formats), integer
 * dot products per group of 32 (Q6_K: 16) values, one float update per group. */
tkr_status tkr_linear_quant(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                            const tkr_tensor *bias, float *y);
/* y = silu(x Wg^T) * (x Wu^T): Wg, Wu quantized, of one type and shape [N, K]. */
tkr_status tkr_linear_quant_silu_gate(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *wg,
                                      const tkr_tensor *wu, float *y);

/* The arithmetic every version performs for output (m, n), group g of G (exact integers, then
 * float32 in group order, so the result never depends on M, tiling or threads):
 *   i   = sum over the group of x[m][k] * w[n][k]                      (int32, exact)
 *   acc = fma((float)i, dx[m][g] * dw[n][g], acc)
 *   acc = fma(-wmin[n][g], xmin[m][g], acc)                            (Q4_K only)
 * with x the quantized activations and w the weights' integer levels (Q4_0: q - 8, Q6_K: q - 32,
 * Q4_K: q). vpdpbusd multiplies unsigned by signed bytes, so one side is stored with an offset
 * and the exact integer i is recovered with a correction:
 *   - wunsigned false (Q8_0, and every type in the portable kernel): x stored as x + xoff
 *     (xoff 128, unsigned) against signed weights; corr[n][g] = xoff * (sum of the weights);
 *   - wunsigned true (Q4_0, Q4_K, Q6_K in the SIMD kernels): weights stored as unsigned levels
 *     w + woff (woff 8, 0, 32) against signed x; xc[m][g] = -woff * (sum of the x values).
 * Both give the same i bit for bit. */
typedef struct {
    tkr_dtype wt;
    int K;
    int gsize;      /* values per group: 32, or 16 for Q6_K */
    int G;          /* groups per row: K / gsize */
    int xoff;       /* 128 or 0 */
    bool wunsigned; /* weights unsigned, correction from x (see above) */
    int woff;       /* weight offset when wunsigned */
    bool has_min;   /* Q4_K: the min term */
} tkr_lq_fmt;

/* Quantized activations in vector-friendly form: rows in groups of RW (1, 8 or 16) so that one
 * vector holds RW rows x 4 consecutive values; rows past M are zero.
 *   q    [Mpad / RW][K / 4][RW][4]   bytes (x + xoff)
 *   dx   [Mpad / RW][G][RW]          activation scale of each group
 *   xmin [Mpad / RW][G][RW]          dx * sum of the group's quantized values (Q4_K), else NULL */
typedef struct {
    int M, Mpad, RW;
    uint8_t *q;
    float *dx;
    float *xmin;
    int32_t *xc;    /* [Mpad / RW][G][RW]: -woff * sum of the group's x (wunsigned), else NULL */
} tkr_lq_x;

/* One panel of np weight rows unpacked to one byte per value (row-major, K per row: signed
 * levels, or unsigned levels + woff when wunsigned) with per-group dw [np][G], corr [np][G]
 * (not when wunsigned) and, for Q4_K, wmin [np][G]. */
typedef struct {
    int np;
    int8_t *w;
    float *dw;
    int32_t *corr;
    float *wmin;
} tkr_lq_panel;

/* Micro-kernels: acc[j][r] (j < nr weight rows starting at panel row n0, r < MV * RW rows of
 * the row groups starting at rg; nr <= the kernel's NR) accumulated over groups [g0, g1): from
 * zero when g0 == 0, else continuing from acc. Calls over consecutive group ranges give the bits
 * of one call over all of them (the callers use that to keep a K chunk in L1). */
typedef void (*tkr_lq_kernel_fn)(const tkr_lq_fmt *f, const tkr_lq_x *x, int rg, const tkr_lq_panel *p,
                                 int n0, int nr, int g0, int g1, float *acc);
/* What an ISA offers: row-group width, tile sizes and the kernels for one or two row groups. */
typedef struct {
    int RW;          /* rows per vector */
    int NR;          /* weight rows per kernel call */
    int xoff;        /* activation offset the kernels expect (per format: see tkr_lq_select) */
    bool wunsigned;  /* unsigned weights, correction from x (tkr_lq_fmt) */
    tkr_lq_kernel_fn k1, k2;   /* 1 or 2 row groups per call */
} tkr_lq_isa;

#ifdef TKR_HAVE_X86
bool tkr_lq_select_avx512(const tkr_lq_fmt *f, tkr_lq_isa *isa);
/* Vectorized activation quantizers: the same bytes as tkr_quantize_row_q8_0 / _q8_K. */
void tkr_quantize_row_q8_0_avx2(const float *x, tkr_block_q8_0 *y, int64_t k);
void tkr_quantize_row_q8_K_avx2(const float *x, tkr_block_q8_K *y, int64_t k);
/* Vectorized weight panel unpacking: the same panel as the portable unpacker. */
void tkr_lq_unpack_panel_avx2(const tkr_lq_fmt *f, const tkr_tensor *w, int n0, int np, tkr_lq_panel *P);
bool tkr_lq_select_avx2(const tkr_lq_fmt *f, bool vnni, tkr_lq_isa *isa);
/* y[m0 + r][n0 + c] = out[c * ldo + r] (+ bias[n0 + c]) for c < np and the rows r < rows with
 * m0 + r < M: a panel's accumulators (one column of out per weight row) into y's rows. */
void tkr_lq_store_avx2(const float *out, int ldo, int np, int rows, int m0, int M, float *y, int N, int n0,
                       const float *bias);
#endif
#ifdef TKR_HAVE_NEON
/* NEON (linear_quant_neon.c): signed int8 x signed int8, no offsets (xoff 0, no corrections);
 * the integer group sums with sdot (vdotq_laneq_s32, linear_quant_neondot.c, built with
 * +dotprod) when dotprod, else with widening multiplies (vmull_s8 + vpadalq_s16). Both exact, so
 * the results are the portable version's bits. */
bool tkr_lq_select_neon(const tkr_lq_fmt *f, bool dotprod, tkr_lq_isa *isa);
void tkr_lq_kernel_neondot(const tkr_lq_fmt *f, const tkr_lq_x *x, int rg, const tkr_lq_panel *p,
                           int n0, int nr, int g0, int g1, float *acc);
#endif

#endif

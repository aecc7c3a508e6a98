/* linear_quant_neondot.c - the quantized GEMM's micro-kernel with the dot-product extension
 * (FEAT_DotProd: sdot), built with -march=armv8.2-a+dotprod and called only when
 * tkr_kctx.neon_dot says the CPU has it (linear_quant_neon.c selects it).
 *
 * vdotq_laneq_s32(s, x, w, l) adds to each of the 4 rows' int32 lanes the dot product of that
 * row's 4 values in x with the 4 weights in lane l of w: 16 multiply-adds per instruction, and
 * a 16-byte weight load feeds 4 of them (4 consecutive k-quads against 4 x loads). */
#include "kernels/kernels_impl.h"

#include <arm_neon.h>

#define LQ_NR 8
#define LQ_KERNEL tkr_lq_kernel_neondot_impl

/* s[j] = exact int32 sums over values [k0, k0 + gs) for the LQ_NR weight rows */
static inline void group_sums_dot(const int8_t *xq, const int8_t *const *wr, int k0, int gs, int32x4_t *s) {
    for (int j = 0; j < LQ_NR; j++) s[j] = vdupq_n_s32(0);
    for (int kk = 0; kk < gs; kk += 16) {
        const int8_t *xb = xq + (size_t)(k0 + kk) * 4;   /* (k / 4) quads of 16 bytes */
        const int8x16_t x0 = vld1q_s8(xb), x1 = vld1q_s8(xb + 16), x2 = vld1q_s8(xb + 32), x3 = vld1q_s8(xb + 48);
        for (int j = 0; j < LQ_NR; j++) {
            const int8x16_t w = vld1q_s8(wr[j] + k0 + kk);
            s[j] = vdotq_laneq_s32(s[j], x0, w, 0);
            s[j] = vdotq_laneq_s32(s[j], x1, w, 1);
            s[j] = vdotq_laneq_s32(s[j], x2, w, 2);
            s[j] = vdotq_laneq_s32(s[j], x3, w, 3);
        }
    }
}
#define LQ_GROUP_SUMS group_sums_dot

#include "kernels/linear_quant_neon_tile.h"

void tkr_lq_kernel_neondot(const tkr_lq_fmt *f, const tkr_lq_x *x, int rg, const tkr_lq_panel *p,
                           int n0, int nr, int g0, int g1, float *acc) {
    tkr_lq_kernel_neondot_impl(f, x, rg, p, n0, nr, g0, g1, acc);
}

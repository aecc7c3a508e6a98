/* linear_quant_neon.c - the quantized GEMM on NEON without the dot-product extension (e.g.
 * Cortex-A72, Raspberry Pi 4), and the choice between it and the sdot kernel
 * (linear_quant_neondot.c). The layout and the float steps are in linear_quant_neon_tile.h.
 *
 * Integer sums by widening multiplies: the 4 rows x 4 values of one x load, split in halves of 2
 * rows, times the weight quad repeated twice (vmull_s8: 8 int16 products, each at most 2^14 in
 * magnitude, so exact), pairwise added into int32 lanes (vpadalq_s16): lanes hold
 * (row0 k0+k1, row0 k2+k3, row1 k0+k1, row1 k2+k3), and one vpaddq_s32 per group gives the 4
 * rows' sums. The same exact integers as sdot, so the same output bits. */
#include "kernels/kernels_impl.h"

#include <arm_neon.h>

#define LQ_NR 4
#define LQ_KERNEL kernel_neon

/* 2 rows (x8: their 4 values each) times a weight quad, accumulated pairwise into int32 */
#define LQ_QUAD(xt, wq, lo, hi)                                                                \
    do {                                                                                       \
        lo = vpadalq_s16(lo, vmull_s8(vget_low_s8(xt), wq));                                   \
        hi = vpadalq_s16(hi, vmull_s8(vget_high_s8(xt), wq));                                  \
    } while (0)

static inline void group_sums_mull(const int8_t *xq, const int8_t *const *wr, int k0, int gs, int32x4_t *s) {
    int32x4_t lo[LQ_NR], hi[LQ_NR];
    for (int j = 0; j < LQ_NR; j++) lo[j] = hi[j] = vdupq_n_s32(0);
    for (int kk = 0; kk < gs; kk += 16) {
        const int8_t *xb = xq + (size_t)(k0 + kk) * 4;
        const int8x16_t x0 = vld1q_s8(xb), x1 = vld1q_s8(xb + 16), x2 = vld1q_s8(xb + 32), x3 = vld1q_s8(xb + 48);
        for (int j = 0; j < LQ_NR; j++) {
            const int32x4_t w = vreinterpretq_s32_s8(vld1q_s8(wr[j] + k0 + kk));
            LQ_QUAD(x0, vreinterpret_s8_s32(vdup_laneq_s32(w, 0)), lo[j], hi[j]);
            LQ_QUAD(x1, vreinterpret_s8_s32(vdup_laneq_s32(w, 1)), lo[j], hi[j]);
            LQ_QUAD(x2, vreinterpret_s8_s32(vdup_laneq_s32(w, 2)), lo[j], hi[j]);
            LQ_QUAD(x3, vreinterpret_s8_s32(vdup_laneq_s32(w, 3)), lo[j], hi[j]);
        }
    }
    for (int j = 0; j < LQ_NR; j++) s[j] = vpaddq_s32(lo[j], hi[j]);
}
#define LQ_GROUP_SUMS group_sums_mull

#include "kernels/linear_quant_neon_tile.h"

/* Q8_0, Q4_0, Q4_K and Q6_K: signed weights against signed activations, RW 4; the sdot kernel
 * (8 weight rows per call) where the CPU has the dot product, else the widening one (4 rows). */
bool tkr_lq_select_neon(const tkr_lq_fmt *f, bool dotprod, tkr_lq_isa *isa) {
    switch (f->wt) {
    case TKR_DT_Q8_0:
    case TKR_DT_Q4_0:
    case TKR_DT_Q4_K:
    case TKR_DT_Q6_K: break;
    default: return false;
    }
    *isa = (tkr_lq_isa){4, dotprod ? 8 : 4, 0, false, dotprod ? tkr_lq_kernel_neondot : kernel_neon, NULL};
    return true;
}

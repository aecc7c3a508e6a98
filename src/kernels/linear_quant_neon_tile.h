/* linear_quant_neon_tile.h - the NEON micro-kernel of the quantized GEMM, shared by
 * linear_quant_neon.c (widening multiplies) and linear_quant_neondot.c (sdot), which define
 * LQ_NR (weight rows per call), LQ_GROUP_SUMS (the exact int32 group sums) and LQ_KERNEL (the
 * function name) before including it.
 *
 * Layout (kernels_impl.h): RW = 4 activation rows per row group, x stored as signed bytes
 * [K/4][4 rows][4 values], so one 16-byte load holds 4 consecutive k of the 4 rows; weights are
 * the panel's signed levels, one row of K bytes each. Per group g of gs values (32, or 16 for
 * Q6_K) and weight row j: s[j] = the 4 rows' exact integer dot products; then, as the portable
 * kernel does per output, acc = fma((float)s, dx[g] * dw[j][g], acc) and for Q4_K
 * acc = fma(-wmin[j][g], xmin[g], acc). No offsets (xoff 0), so no corrections. */
#include <arm_neon.h>

static void LQ_KERNEL(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0,
                      int nr, int g0, int g1, float *acc) {
    enum { RW = 4 };
    const int K = f->K, G = f->G, gs = f->gsize;
    const int8_t *xq = (const int8_t *)X->q + (size_t)rg * K * RW;    /* [K/4][RW][4] */
    const float *dx = X->dx + (size_t)rg * G * RW;                     /* [G][RW]      */
    const float *xmin = X->xmin ? X->xmin + (size_t)rg * G * RW : NULL;
    const int8_t *wr[LQ_NR];
    const float *dw[LQ_NR], *wmin[LQ_NR];
    float32x4_t a[LQ_NR];
    for (int j = 0; j < LQ_NR; j++) {
        int jj = j < nr ? j : nr - 1; /* rows past nr repeat the last one; never stored */
        wr[j] = P->w + (size_t)(n0 + jj) * K;
        dw[j] = P->dw + (size_t)(n0 + jj) * G;
        wmin[j] = f->has_min ? P->wmin + (size_t)(n0 + jj) * G : NULL;
        a[j] = g0 && j < nr ? vld1q_f32(acc + (size_t)j * RW) : vdupq_n_f32(0.0f);
    }
    for (int g = g0; g < g1; g++) {
        int32x4_t s[LQ_NR];
        LQ_GROUP_SUMS(xq, wr, g * gs, gs, s);
        const float32x4_t dxv = vld1q_f32(dx + (size_t)g * RW);
        for (int j = 0; j < LQ_NR; j++) {
            a[j] = vfmaq_f32(a[j], vcvtq_f32_s32(s[j]), vmulq_n_f32(dxv, dw[j][g]));
            if (xmin) a[j] = vfmsq_f32(a[j], vdupq_n_f32(wmin[j][g]), vld1q_f32(xmin + (size_t)g * RW));
        }
    }
    for (int j = 0; j < nr; j++) vst1q_f32(acc + (size_t)j * RW, a[j]);
}

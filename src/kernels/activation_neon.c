/* activation_neon.c - the element-wise kernels with NEON (aarch64): silu, QuickGELU, norm sums.
 *
 * The images of activation_avx2.c: one vector exp per element (tkr_vexpq, simd_neon.h, the same
 * values as tkr_exp256), the last n % 4 elements through the same vector code via a small buffer,
 * never a scalar path, so an element's value does not depend on where the array ends. The norm statistics are double sums in the AVX2
 * kernels' lane layout (8 lanes as four float64x2, the same horizontal order). */
#include "kernels/kernels_impl.h"
#include "kernels/simd_neon.h"

#include <string.h>

/* g / (1 + exp(-g)) * u, the portable kernel's association */
static inline float32x4_t silu_mul4(float32x4_t g, float32x4_t u) {
    float32x4_t e = tkr_vexpq(vnegq_f32(g));
    return vmulq_f32(vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), e)), u);
}

/* x / (1 + exp(-1.702 x)) */
static inline float32x4_t quick_gelu4(float32x4_t x) {
    float32x4_t e = tkr_vexpq(vmulq_f32(vdupq_n_f32(-1.702f), x));
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
}

void tkr_silu_mul_neon(float *gate, const float *up, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(gate + i, silu_mul4(vld1q_f32(gate + i), vld1q_f32(up + i)));
    if (i < n) {
        float g[4] = {0}, u[4] = {0};
        memcpy(g, gate + i, (n - i) * sizeof(float));
        memcpy(u, up + i, (n - i) * sizeof(float));
        vst1q_f32(g, silu_mul4(vld1q_f32(g), vld1q_f32(u)));
        memcpy(gate + i, g, (n - i) * sizeof(float));
    }
}

void tkr_quick_gelu_neon(float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, quick_gelu4(vld1q_f32(x + i)));
    if (i < n) {
        float b[4] = {0};
        memcpy(b, x + i, (n - i) * sizeof(float));
        vst1q_f32(b, quick_gelu4(vld1q_f32(b)));
        memcpy(x + i, b, (n - i) * sizeof(float));
    }
}

/* AVX2's hsum4d(a0 + a1) for a0 = (b0, b1), a1 = (b2, b3): lanes (b0+b2, b1+b3), summed in pairs. */
static inline double hsum8d(float64x2_t b0, float64x2_t b1, float64x2_t b2, float64x2_t b3) {
    float64x2_t s = vaddq_f64(vaddq_f64(b0, b2), vaddq_f64(b1, b3));
    return vgetq_lane_f64(s, 0) + vgetq_lane_f64(s, 1);
}

double tkr_sum_sq_neon(const float *x, int n) {
    float64x2_t b0 = vdupq_n_f64(0), b1 = b0, b2 = b0, b3 = b0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
        float64x2_t d0 = vcvt_f64_f32(vget_low_f32(lo)), d1 = vcvt_high_f64_f32(lo);
        float64x2_t d2 = vcvt_f64_f32(vget_low_f32(hi)), d3 = vcvt_high_f64_f32(hi);
        b0 = vfmaq_f64(b0, d0, d0);
        b1 = vfmaq_f64(b1, d1, d1);
        b2 = vfmaq_f64(b2, d2, d2);
        b3 = vfmaq_f64(b3, d3, d3);
    }
    double s = hsum8d(b0, b1, b2, b3);
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

double tkr_sum_neon(const float *x, int n) {
    float64x2_t b0 = vdupq_n_f64(0), b1 = b0, b2 = b0, b3 = b0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
        b0 = vaddq_f64(b0, vcvt_f64_f32(vget_low_f32(lo)));
        b1 = vaddq_f64(b1, vcvt_high_f64_f32(lo));
        b2 = vaddq_f64(b2, vcvt_f64_f32(vget_low_f32(hi)));
        b3 = vaddq_f64(b3, vcvt_high_f64_f32(hi));
    }
    double s = hsum8d(b0, b1, b2, b3);
    for (; i < n; i++) s += x[i];
    return s;
}

double tkr_sum_sq_dev_neon(const float *x, int n, double mean) {
    float64x2_t b0 = vdupq_n_f64(0), b1 = b0, b2 = b0, b3 = b0, m = vdupq_n_f64(mean);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
        float64x2_t d0 = vsubq_f64(vcvt_f64_f32(vget_low_f32(lo)), m), d1 = vsubq_f64(vcvt_high_f64_f32(lo), m);
        float64x2_t d2 = vsubq_f64(vcvt_f64_f32(vget_low_f32(hi)), m), d3 = vsubq_f64(vcvt_high_f64_f32(hi), m);
        b0 = vfmaq_f64(b0, d0, d0);
        b1 = vfmaq_f64(b1, d1, d1);
        b2 = vfmaq_f64(b2, d2, d2);
        b3 = vfmaq_f64(b3, d3, d3);
    }
    double s = hsum8d(b0, b1, b2, b3);
    for (; i < n; i++) s += ((double)x[i] - mean) * ((double)x[i] - mean);
    return s;
}

/* simd_neon.h - NEON building blocks shared by the *_neon.c kernels (aarch64 only).
 *
 * Each helper is the lane-for-lane image of its AVX2 twin (vexp_avx2.h, simd_avx2.h): the same
 * operations in the same order, with the same fused multiply-adds (vfmaq/vfmsq round once, like
 * _mm256_fmadd/_fnmadd), so the NEON kernels give the AVX2 kernels' bits, and everything that
 * kernels.h says about invariance carries over unchanged.
 *
 * tkr_vexpq: exp(x) on 4 floats. x = n ln2 + r with n = round-to-nearest-even(x / ln2), ln2 split
 * in an exact high part and a low correction, exp(r) by the degree-7 Cephes polynomial, 2^n built
 * in the exponent bits in two halves. Worst error 1.01 ulp over the float range (as measured for
 * the AVX2 version, which computes the same values). x > 88.72 gives +inf; x < -87.33 gives +0;
 * NaN gives NaN. */
#ifndef TKR_SIMD_NEON_H
#define TKR_SIMD_NEON_H

#include <arm_neon.h>

static inline float32x4_t tkr_vexpq_reduce(float32x4_t xc, float32x4_t *n_out) {
    float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(r, p, vmulq_f32(r, r));
    *n_out = n;
    return vaddq_f32(p, vdupq_n_f32(1.0f));
}

/* exp(x) for every float x (edges above). */
static inline float32x4_t tkr_vexpq(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(88.72283935546875f);   /* ln(FLT_MAX) rounded down */
    const float32x4_t lo = vdupq_n_f32(-87.33654022216797f);  /* ln(FLT_MIN) */
    float32x4_t n, p = tkr_vexpq_reduce(vminq_f32(vmaxq_f32(x, lo), hi), &n);
    /* n in [-126, 128]: scale in two halves so the exponent field stays in range */
    int32x4_t ni = vcvtnq_s32_f32(n);
    int32x4_t half1 = vshrq_n_s32(ni, 1), half2 = vsubq_s32(ni, half1);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half1, vdupq_n_s32(127)), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half2, vdupq_n_s32(127)), 23));
    float32x4_t e = vmulq_f32(vmulq_f32(p, s1), s2);
    e = vbslq_f32(vcgtq_f32(x, hi), vdupq_n_f32(__builtin_inff()), e);
    e = vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), e);
    e = vbslq_f32(vceqq_f32(x, x), e, x); /* NaN passes through */
    return e;
}

/* exp(x) for x <= 0 (the softmax's s - max): tkr_vexpq's value for x >= -87.33, FLT_MIN-ish below. */
static inline float32x4_t tkr_vexpq_nonpos(float32x4_t x) {
    float32x4_t n, p = tkr_vexpq_reduce(vmaxq_f32(x, vdupq_n_f32(-87.33654022216797f)), &n);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

/* 4x4 transpose: r[i] holds row i on entry and column i on exit. */
static inline void tkr_transpose4(float32x4_t r[4]) {
    float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* The AVX2 kernels' horizontal orders, for two 4-lane halves lo = lanes 0-3, hi = lanes 4-7 of
 * one 8-lane accumulator: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static inline float tkr_hsum8_neon(float32x4_t lo, float32x4_t hi) {
    float32x4_t t = vaddq_f32(lo, hi);
    float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
    return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}
static inline float tkr_hmax8_neon(float32x4_t lo, float32x4_t hi) { return vmaxvq_f32(vmaxq_f32(lo, hi)); }

#endif

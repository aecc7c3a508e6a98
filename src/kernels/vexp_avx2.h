/* vexp_avx2.h - exp(x) on 8 floats at once, for the softmax and the activations (AVX2 + FMA
 * translation units only).
 *
 * The usual range reduction: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2 (ln2 split in
 * a high part exact in float and a low correction), exp(r) by a degree-7 polynomial (the Cephes
 * coefficients, error about 1 ulp on the reduced range), then the 2^n scale built in the exponent
 * bits. Against double exp, over every 7th float in [-87.33, 88.72], the worst error is 1.01 ulp.
 * Outside the float range: x > 88.72 gives +inf; x < -87.33 (where exp(x) is below FLT_MIN)
 * gives +0, not a subnormal; -inf gives +0; NaN gives NaN. */
#ifndef TKR_VEXP_AVX2_H
#define TKR_VEXP_AVX2_H

#include <immintrin.h>

/* exp(r) for |r| <= ln2/2 (after the range reduction), and the reduction itself. */
static inline __m256 tkr_exp256_reduce(__m256 xc, __m256 *n_out) {
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
    const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, xc);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    *n_out = n;
    return _mm256_add_ps(p, _mm256_set1_ps(1.0f));
}

/* exp(x) for every float x (see above for the edges). */
static inline __m256 tkr_exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.72283935546875f);     /* ln(FLT_MAX) rounded down */
    const __m256 lo = _mm256_set1_ps(-87.33654022216797f);    /* ln(FLT_MIN) */
    __m256 n, p = tkr_exp256_reduce(_mm256_min_ps(_mm256_max_ps(x, lo), hi), &n);
    /* n in [-126, 128]: 2^n as exponent bits; n = 128 only when x rounds to 88.72, so scale in
     * two halves to keep the exponent field in range */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half1 = _mm256_srai_epi32(ni, 1), half2 = _mm256_sub_epi32(ni, half1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half2, _mm256_set1_epi32(127)), 23));
    __m256 e = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    /* the edges: overflow to inf, underflow to 0, NaN passes through */
    e = _mm256_blendv_ps(e, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    e = _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return e;
}

/* exp(x) for x <= 0, the softmax's s - max: the same value as tkr_exp256 for x >= -87.33, and
 * FLT_MIN-ish (not 0) below, where it cannot matter next to the row maximum's exp(0) = 1. */
static inline __m256 tkr_exp256_nonpos(__m256 x) {
    __m256 n, p = tkr_exp256_reduce(_mm256_max_ps(x, _mm256_set1_ps(-87.33654022216797f)), &n);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#endif

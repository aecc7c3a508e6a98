/* linear_avx2.c - AVX2/FMA/F16C block of tkr_linear.
 *
 * A 4x2 register tile: four rows of x against two weight rows, eight 8-lane accumulators. Weight
 * rows are widened to float32 as they are loaded (BF16: shift; F16: vcvtph2ps). Every output
 * element is one FMA chain over k in steps of 8, then the same horizontal sum and scalar tail,
 * whether it was computed in a 4-row tile or a 1-row tail: results do not depend on M. */
#include "kernels/linear_impl.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline __m256 load8_f32(const void *base, size_t idx) {
    return _mm256_loadu_ps((const float *)base + idx);
}
static inline __m256 load8_f16(const void *base, size_t idx) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx)));
}
static inline __m256 load8_bf16(const void *base, size_t idx) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline float load1_f32(const void *base, size_t idx) { return ((const float *)base)[idx]; }
static inline float load1_f16(const void *base, size_t idx) {
    uint16_t h;
    memcpy(&h, (const uint16_t *)base + idx, 2);
    return tkr_f16_to_f32(h);
}
static inline float load1_bf16(const void *base, size_t idx) {
    uint16_t h;
    memcpy(&h, (const uint16_t *)base + idx, 2);
    return tkr_bf16_to_f32(h);
}

static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* One instantiation per weight dtype so the loads inline into the loop. */
#define DEFINE_BLOCK(SUFFIX, LOAD8, LOAD1)                                                       \
    static void block_##SUFFIX(const float *x, int M, int K, const void *W, int n0, int n1,      \
                               float *y, int N) {                                                \
        int K8 = K & ~7;                                                                         \
        for (int m = 0; m < M; m += 4) {                                                         \
            int mr = M - m < 4 ? M - m : 4;                                                      \
            const float *x0 = x + (size_t)m * K;                                                 \
            for (int n = n0; n < n1; n += 2) {                                                   \
                int nr = n1 - n < 2 ? n1 - n : 2;                                                \
                size_t w0 = (size_t)n * K, w1 = (size_t)(n + nr - 1) * K;                        \
                if (mr == 4) {                                                                   \
                    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();                 \
                    __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();                 \
                    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();                 \
                    __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();                 \
                    for (int k = 0; k < K8; k += 8) {                                            \
                        __m256 wa = LOAD8(W, w0 + k), wb = LOAD8(W, w1 + k);                     \
                        __m256 xv = _mm256_loadu_ps(x0 + k);                                     \
                        a00 = _mm256_fmadd_ps(xv, wa, a00);                                      \
                        a01 = _mm256_fmadd_ps(xv, wb, a01);                                      \
                        xv = _mm256_loadu_ps(x0 + K + k);                                        \
                        a10 = _mm256_fmadd_ps(xv, wa, a10);                                      \
                        a11 = _mm256_fmadd_ps(xv, wb, a11);                                      \
                        xv = _mm256_loadu_ps(x0 + 2 * (size_t)K + k);                            \
                        a20 = _mm256_fmadd_ps(xv, wa, a20);                                      \
                        a21 = _mm256_fmadd_ps(xv, wb, a21);                                      \
                        xv = _mm256_loadu_ps(x0 + 3 * (size_t)K + k);                            \
                        a30 = _mm256_fmadd_ps(xv, wa, a30);                                      \
                        a31 = _mm256_fmadd_ps(xv, wb, a31);                                      \
                    }                                                                            \
                    __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};         \
                    for (int r = 0; r < 4; r++)                                                  \
                        for (int c = 0; c < nr; c++) {                                           \
                            const float *xr = x0 + (size_t)r * K;                                \
                            size_t wo = c ? w1 : w0;                                             \
                            float s = hsum8(acc[r][c]);                                          \
                            for (int k = K8; k < K; k++) s = fmaf(xr[k], LOAD1(W, wo + k), s);    \
                            y[(size_t)(m + r) * N + n + c] = s;                                  \
                        }                                                                        \
                } else {                                                                         \
                    for (int r = 0; r < mr; r++) {                                               \
                        const float *xr = x0 + (size_t)r * K;                                    \
                        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();               \
                        for (int k = 0; k < K8; k += 8) {                                        \
                            __m256 xv = _mm256_loadu_ps(xr + k);                                 \
                            a0 = _mm256_fmadd_ps(xv, LOAD8(W, w0 + k), a0);                      \
                            a1 = _mm256_fmadd_ps(xv, LOAD8(W, w1 + k), a1);                      \
                        }                                                                        \
                        __m256 acc[2] = {a0, a1};                                                \
                        for (int c = 0; c < nr; c++) {                                           \
                            size_t wo = c ? w1 : w0;                                             \
                            float s = hsum8(acc[c]);                                             \
                            for (int k = K8; k < K; k++) s = fmaf(xr[k], LOAD1(W, wo + k), s);    \
                            y[(size_t)(m + r) * N + n + c] = s;                                  \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

DEFINE_BLOCK(f32, load8_f32, load1_f32)
DEFINE_BLOCK(f16, load8_f16, load1_f16)
DEFINE_BLOCK(bf16, load8_bf16, load1_bf16)

void tkr_linear_block_avx2(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                           float *y, int N) {
    switch (w->dtype) {
    case TKR_DT_F32: block_f32(x, M, K, w->data, n0, n1, y, N); break;
    case TKR_DT_F16: block_f16(x, M, K, w->data, n0, n1, y, N); break;
    case TKR_DT_BF16: block_bf16(x, M, K, w->data, n0, n1, y, N); break;
    }
}

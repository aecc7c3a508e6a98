/* linear_quant_avx2.c - AVX2 pieces of the quantized linear (linear_quant.c): the activation
 * quantizers vectorized (bit for bit ggml's reference rounding, as the scalar ones in quant.c),
 * and the micro-kernels in three flavours (linear_quant_avx2_tile.h): AVX-VNNI vpdpbusd,
 * vpmaddubsw for the 4- and 6-bit formats, and the sign trick for Q8_0 without VNNI.
 * Built with -mavx2 -mfma -mf16c (Makefile); the AVX-VNNI copy adds that one extension through
 * a target pragma, so nothing of AVX-512 can leak into code an AVX2-only CPU runs. */
#include "kernels/kernels_impl.h"
#include "kernels/quant.h"

#include <immintrin.h>
#include <string.h>

/* ---- activation quantizers ----------------------------------------------------------------- */

static inline float hmax8(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* roundf (halves away from zero) of values well inside the int32 range, as int32. */
static inline __m256i round_away(__m256 p) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 fr = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t)); /* exact */
    __m256 up = _mm256_cmp_ps(fr, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(p, sign));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
}

/* 32 int32 (four vectors, in order) to 32 int8 (values already in range). */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void tkr_quantize_row_q8_0_avx2(const float *x, tkr_block_q8_0 *y, int64_t k) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < k / 32; i++) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + i * 32 + j * 8);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
        }
        const float amax = hmax8(m);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int j = 0; j < 4; j++) q[j] = round_away(_mm256_mul_ps(v[j], idv));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

void tkr_quantize_row_q8_K_avx2(const float *x, tkr_block_q8_K *y, int64_t k) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < k / TKR_QK_K; i++, x += TKR_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 32; j++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j * 8)));
        const float amax = hmax8(m);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0; /* the first value of largest magnitude, with its sign (as ggml) */
        const __m256 am = _mm256_set1_ps(amax);
        for (int j = 0; j < 32; j++) {
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j * 8)), am, _CMP_EQ_OQ));
            if (mask) {
                max = x[j * 8 + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        for (int j = 0; j < 8; j++) {
            __m256i q[4];
            for (int l = 0; l < 4; l++) {
                __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + j * 32 + l * 8)));
                q[l] = _mm256_min_epi32(v, _mm256_set1_epi32(127));
            }
            _mm256_storeu_si256((__m256i *)(y[i].qs + j * 32), pack32(q[0], q[1], q[2], q[3]));
        }
        for (int j = 0; j < TKR_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- weight panel unpacking (same output as unpack_panel in linear_quant.c) ---------------- */

/* Sum of the 32 unsigned bytes of v. */
static inline int32_t sum_u8(__m256i v) {
    __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int32_t)(_mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1));
}

static inline float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

void tkr_lq_unpack_panel_avx2(const tkr_lq_fmt *f, const tkr_tensor *w, int n0, int np, tkr_lq_panel *P) {
    const int K = f->K, G = f->G, xoff = f->xoff;
    const size_t rb = tkr_dtype_row_bytes(f->wt, K);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    P->np = np;
    for (int j = 0; j < np; j++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)(n0 + j) * rb;
        int8_t *wr = P->w + (size_t)j * K;
        float *dw = P->dw + (size_t)j * G;
        int32_t *corr = P->corr + (size_t)j * G;
        switch (f->wt) {
        case TKR_DT_Q8_0:
            for (int b = 0; b < K / 32; b++) {
                const uint8_t *blk = src + (size_t)b * 34;
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 2));
                _mm256_storeu_si256((__m256i *)(wr + b * 32), v);
                dw[b] = h2f(blk);
                corr[b] = xoff * (sum_u8(_mm256_xor_si256(v, flip)) - 128 * 32);
            }
            break;
        case TKR_DT_Q4_0:
            for (int b = 0; b < K / 32; b++) {
                const uint8_t *blk = src + (size_t)b * 18;
                __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
                __m128i lo = _mm_and_si128(q, _mm256_castsi256_si128(m4));
                __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm256_castsi256_si128(m4));
                __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
                dw[b] = h2f(blk);
                if (f->wunsigned) {
                    _mm256_storeu_si256((__m256i *)(wr + b * 32), v);
                } else {
                    _mm256_storeu_si256((__m256i *)(wr + b * 32), _mm256_sub_epi8(v, _mm256_set1_epi8(8)));
                    corr[b] = xoff * (sum_u8(v) - 8 * 32);
                }
            }
            break;
        case TKR_DT_Q4_K: {
            float *wmin = P->wmin + (size_t)j * G;
            for (int b = 0; b < K / TKR_QK_K; b++) {
                const uint8_t *blk = src + (size_t)b * 144;
                const float d = h2f(blk), dmin = h2f(blk + 2);
                const uint8_t *sc = blk + 4, *qs = blk + 16;
                int8_t *o = wr + b * TKR_QK_K;
                for (int c = 0; c < 4; c++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + c * 32));
                    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    _mm256_storeu_si256((__m256i *)(o + c * 64), lo);
                    _mm256_storeu_si256((__m256i *)(o + c * 64 + 32), hi);
                    if (!f->wunsigned) {
                        corr[b * 8 + 2 * c] = xoff * sum_u8(lo);
                        corr[b * 8 + 2 * c + 1] = xoff * sum_u8(hi);
                    }
                }
                for (int s = 0; s < 8; s++) {
                    uint8_t scv, mn;
                    if (s < 4) {
                        scv = sc[s] & 63;
                        mn = sc[s + 4] & 63;
                    } else {
                        scv = (uint8_t)((sc[s + 4] & 0xF) | ((sc[s - 4] >> 6) << 4));
                        mn = (uint8_t)((sc[s + 4] >> 4) | ((sc[s] >> 6) << 4));
                    }
                    dw[b * 8 + s] = d * scv;
                    wmin[b * 8 + s] = dmin * mn;
                }
            }
            break;
        }
        case TKR_DT_Q6_K:
            for (int b = 0; b < K / TKR_QK_K; b++) {
                const uint8_t *blk = src + (size_t)b * 210;
                const uint8_t *ql = blk, *qh = blk + 128;
                const int8_t *sc = (const int8_t *)(blk + 192);
                const float d = h2f(blk + 208);
                int8_t *o = wr + b * TKR_QK_K;
                for (int h = 0; h < 2; h++) {
                    __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + h * 64));
                    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + h * 64 + 32));
                    __m256i hb = _mm256_loadu_si256((const __m256i *)(qh + h * 32));
                    __m256i v[4];
                    v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
                    v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
                    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
                    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
                    for (int c = 0; c < 4; c++) {
                        if (f->wunsigned) {
                            _mm256_storeu_si256((__m256i *)(o + h * 128 + c * 32), v[c]);
                            continue;
                        }
                        _mm256_storeu_si256((__m256i *)(o + h * 128 + c * 32), _mm256_sub_epi8(v[c], _mm256_set1_epi8(32)));
                        __m256i sad = _mm256_sad_epu8(v[c], _mm256_setzero_si256()); /* 4 sums of 8 */
                        int64_t s8[4];
                        _mm256_storeu_si256((__m256i *)s8, sad);
                        const int g = (h * 128 + c * 32) / 16;
                        corr[b * 16 + g] = xoff * ((int32_t)(s8[0] + s8[1]) - 32 * 16);
                        corr[b * 16 + g + 1] = xoff * ((int32_t)(s8[2] + s8[3]) - 32 * 16);
                    }
                }
                for (int s = 0; s < 16; s++) dw[b * 16 + s] = d * sc[s];
            }
            break;
        default: break;
        }
    }
}

/* ---- storing a panel's accumulators ----------------------------------------------------- */

/* Transposes out's 8x8 blocks (8 columns c of 8 rows each) in registers so that each row of y
 * gets 8 consecutive floats per store; the same additions (o + bias) as the portable store. */
void tkr_lq_store_avx2(const float *out, int ldo, int np, int rows, int m0, int M, float *y, int N, int n0,
                       const float *bias) {
    int rv = M - m0 < rows ? M - m0 : rows; /* rows that exist */
    int c = 0;
    for (; c + 8 <= np; c += 8) {
        const __m256 b = bias ? _mm256_loadu_ps(bias + n0 + c) : _mm256_setzero_ps();
        for (int r = 0; r < rv; r += 8) {
            __m256 v[8], t[8];
            for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(out + (size_t)(c + i) * ldo + r);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                v[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            /* v[0..3]: rows 0, 1, 2, 3 (low lanes) and 4, 5, 6, 7 (high) of columns 0-3; v[4..7] of 4-7 */
            for (int i = 0; i < 4; i++) {
                t[i] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x20);
                t[i + 4] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x31);
            }
            const int nr = rv - r < 8 ? rv - r : 8;
            for (int i = 0; i < nr; i++) {
                __m256 o = bias ? _mm256_add_ps(t[i], b) : t[i];
                _mm256_storeu_ps(y + (size_t)(m0 + r + i) * N + n0 + c, o);
            }
        }
    }
    for (; c < np; c++)
        for (int r = 0; r < rv; r++) {
            const float o = out[(size_t)c * ldo + r];
            y[(size_t)(m0 + r) * N + n0 + c] = bias ? o + bias[n0 + c] : o;
        }
}

/* ---- micro-kernels -------------------------------------------------------------------------- */

#define NR2 4

/* AVX-VNNI needs GCC 11 or clang; older compilers get the vpmaddubsw kernels only. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11)
#define LQ_HAVE_AVXVNNI 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avxvnni")
#endif
#define LQ_MODE 0
#define LQ_NAME(x) vnni_##x
#include "kernels/linear_quant_avx2_tile.h"
#undef LQ_MODE
#undef LQ_NAME
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define LQ_HAVE_AVXVNNI 0
#endif

#define LQ_MODE 1
#define LQ_NAME(x) mad_##x
#include "kernels/linear_quant_avx2_tile.h"
#undef LQ_MODE
#undef LQ_NAME

#define LQ_MODE 2
#define LQ_NAME(x) sgn_##x
#include "kernels/linear_quant_avx2_tile.h"
#undef LQ_MODE
#undef LQ_NAME

/* Kernels for weight type f->wt (the only field read); vnni: the CPU has AVX-VNNI. */
bool tkr_lq_select_avx2(const tkr_lq_fmt *f, bool vnni, tkr_lq_isa *isa) {
    isa->RW = 8;
    isa->NR = NR2;
    isa->xoff = 128;
    isa->wunsigned = f->wt != TKR_DT_Q8_0; /* 4- and 6-bit levels are unsigned as stored */
    isa->k2 = NULL;
#if !LQ_HAVE_AVXVNNI
    vnni = false;
#define vnni_k32s sgn_k32s
#define vnni_k32u mad_k32u
#define vnni_k32m mad_k32m
#define vnni_k16 mad_k16
#endif
    switch (f->wt) {
    case TKR_DT_Q8_0:
        if (vnni) {
            isa->k1 = vnni_k32s;
        } else {
            isa->k1 = sgn_k32s;
            isa->xoff = 0;
        }
        return true;
    case TKR_DT_Q4_0: isa->k1 = vnni ? vnni_k32u : mad_k32u; return true;
    case TKR_DT_Q4_K: isa->k1 = vnni ? vnni_k32m : mad_k32m; return true;
    case TKR_DT_Q6_K: isa->k1 = vnni ? vnni_k16 : mad_k16; return true;
    default: return false;
    }
}

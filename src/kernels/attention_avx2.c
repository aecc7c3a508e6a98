/* attention_avx2.c - AVX2/FMA attention for one (sequence, head, block of query rows) task.
 *
 * Two passes over a block of QB query rows, with the scores of the whole block kept in scratch:
 *   1. S = Q K^T / sqrt(d): the keys are packed once per task as K^T panels of 16 keys,
 *      kt[panel][d][16], so a 6x16 register tile (12 accumulators, 2 panel loads + 6 broadcasts
 *      of q per d) computes 96 scores per pass over d.
 *   2. per row: max, p = exp(s - max) (vectorised, tkr_exp256_nonpos), sum -> 1 / sum.
 *   3. O = P V: a 6x16 tile again, now over the keys j (in steps of JB keys that stay in L2),
 *      reading V packed as 16-wide column chunks and broadcasting p; scaled by 1 / sum at the
 *      end. The partial sums wait in the output rows between steps.
 * A two-pass softmax (rather than an online one) keeps the float32 arithmetic of the reference:
 * every probability is exp(s - true row max), never rescaled.
 *
 * Invariance: each score is one FMA chain over d, each row sum one 8-lane sum over j = 0, 8, ...
 * then a fixed horizontal order, each output one FMA chain over j from 0. Which tile or block a
 * row lands in only adds exact no-ops (p = +0 terms past a causal row's last key), so a row gives
 * the same bits whatever the block size, the thread count or the other sequences of the batch. */
#include "kernels/kernels_impl.h"
#include "kernels/vexp_avx2.h"

#include <immintrin.h>
#include "kernels/simd_avx2.h"
#include <math.h>
#include <string.h>

/* S_BUDGET: floats of scores per query block (the block's rows times its keys), sized to stay
 * mostly in L2; JB: keys per step of P V, so that the step's V (JB x hd) and P (rows x JB) stay
 * in L2 while every row group and column chunk passes over them. */
enum { MR = 6, NR = 16, QB_MAX = 96, S_BUDGET = 192 * 1024, JB = 256 };

static inline int round_up16(int n) { return (n + 15) & ~15; }

/* Rows per query block: as many as fit the score budget for this key count, a multiple of 6. */
static int q_block_rows(int keys_padded) {
    int qb = S_BUDGET / (keys_padded > 0 ? keys_padded : 1);
    qb -= qb % MR;
    return qb < MR ? MR : qb > QB_MAX ? QB_MAX : qb;
}

size_t tkr_attention_avx2_scratch_floats(int max_T, int head_dim) {
    size_t tp = (size_t)round_up16(max_T);
    /* a block's scores: qb * T_padded <= max(S_BUDGET, MR * T_padded) for any T <= max_T */
    size_t hd16 = (size_t)(head_dim + NR - 1) / NR * NR;
    return tp * (size_t)head_dim + tp * hd16 + S_BUDGET + MR * tp + QB_MAX + 16;
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Lanes [0, n) set, n in [0, 8]. */
static inline __m256 lane_mask(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx));
}


/* kt[p][d][16] = K[16 p + jj][d] for keys [0, nk), zero for the padding keys. hd % 8 == 0. */
void tkr_attention_pack_keys_avx2(const float *K, int stride, int nk, int hd, float *kt) {
    for (int p = 0; p < round_up16(nk) / NR; p++) {
        float *dst = kt + (size_t)p * hd * NR;          /* [hd][16] */
        for (int half = 0; half < 2; half++) {
            int j0 = p * NR + half * 8;
            int rows = nk - j0 >= 8 ? 8 : nk - j0 > 0 ? nk - j0 : 0;
            for (int d0 = 0; d0 < hd; d0 += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = i < rows ? _mm256_loadu_ps(K + (size_t)(j0 + i) * stride + d0) : _mm256_setzero_ps();
                transpose8(r);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (size_t)(d0 + i) * NR + half * 8, r[i]);
            }
        }
    }
}

/* vp[c][j][16] = V[j][16 c + dd] for keys [0, nk), zero past hd: each 16-wide column chunk of V
 * becomes one sequential stream for the P V tile (V rows in place are a page apart). */
void tkr_attention_pack_values_avx2(const float *V, int stride, int nk, int hd, float *vp) {
    for (int c = 0; c < (hd + NR - 1) / NR; c++) {
        float *dst = vp + (size_t)c * nk * NR;          /* [nk][16] */
        int d0 = c * NR;
        if (hd - d0 >= NR) {
            for (int j = 0; j < nk; j++) {
                const float *src = V + (size_t)j * stride + d0;
                _mm256_store_ps(dst + (size_t)j * NR, _mm256_loadu_ps(src));
                _mm256_store_ps(dst + (size_t)j * NR + 8, _mm256_loadu_ps(src + 8));
            }
        } else { /* hd % 16 == 8: the last chunk is half wide */
            for (int j = 0; j < nk; j++) {
                _mm256_store_ps(dst + (size_t)j * NR, _mm256_loadu_ps(V + (size_t)j * stride + d0));
                _mm256_store_ps(dst + (size_t)j * NR + 8, _mm256_setzero_ps());
            }
        }
    }
}

/* s[r][0:16] = scale * (q[r] . k[16 keys]) for MRc rows: one FMA chain over d per score. */
static inline __attribute__((always_inline)) void score_tile(const int MRc, const float *q,
                                                             size_t ldq, const float *kt, int hd,
                                                             float *s, size_t lds, __m256 scale) {
    __m256 a0[MR], a1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) a0[r] = a1[r] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int d = 0; d < hd; d++) {
        __m256 k0 = _mm256_load_ps(kt + (size_t)d * NR), k1 = _mm256_load_ps(kt + (size_t)d * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m256 qb = _mm256_broadcast_ss(q + r * ldq + d);
            a0[r] = _mm256_fmadd_ps(qb, k0, a0[r]);
            a1[r] = _mm256_fmadd_ps(qb, k1, a1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) {
        _mm256_storeu_ps(s + r * lds, _mm256_mul_ps(a0[r], scale));
        _mm256_storeu_ps(s + r * lds + 8, _mm256_mul_ps(a1[r], scale));
    }
}

static void score_tile_any(int mr, const float *q, size_t ldq, const float *kt, int hd, float *s,
                           size_t lds, __m256 scale) {
    switch (mr) {
    case 6: score_tile(6, q, ldq, kt, hd, s, lds, scale); break;
    case 5: score_tile(5, q, ldq, kt, hd, s, lds, scale); break;
    case 4: score_tile(4, q, ldq, kt, hd, s, lds, scale); break;
    case 3: score_tile(3, q, ldq, kt, hd, s, lds, scale); break;
    case 2: score_tile(2, q, ldq, kt, hd, s, lds, scale); break;
    default: score_tile(1, q, ldq, kt, hd, s, lds, scale); break;
    }
}

/* Row i of the block: p[j] = exp(s[j] - max) for j < n, +0 for j in [n, n_padded); returns the
 * sum of the p (lane l sums j = l mod 8, then a fixed horizontal order). */
static float softmax_row(float *s, int n, int n_padded) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= n; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
    if (j < n)
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(s + j), lane_mask(n - j)));
    __m256 m = _mm256_set1_ps(hmax8(mx)), sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 p = tkr_exp256_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, p);
        sum = _mm256_add_ps(sum, p);
    }
    if (j < n) {
        __m256 p = _mm256_and_ps(tkr_exp256_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), m)), lane_mask(n - j));
        _mm256_storeu_ps(s + j, p);
        sum = _mm256_add_ps(sum, p);
        j += 8;
    }
    for (; j < n_padded; j += 8) _mm256_storeu_ps(s + j, _mm256_setzero_ps());
    return hsum8(sum);
}

/* o[r][0 : 8 NV] (+)= sum_j p[r][j] v[j][0 : 8 NV] over nj keys for MRc rows: one FMA chain over
 * j per output, carried through o between key steps (first: start at +0; last: scale by inv[r]
 * on the way out). vp: the step's part of one packed 16-wide column chunk, [nj][16]. */
static inline __attribute__((always_inline)) void pv_tile(const int MRc, const int NV,
                                                          const float *p, size_t ldp,
                                                          const float *vp, int nj, bool first,
                                                          bool last, const float *inv, float *o,
                                                          size_t ldo) {
    __m256 a0[MR], a1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) {
        a0[r] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(o + r * ldo);
        a1[r] = first || NV < 2 ? _mm256_setzero_ps() : _mm256_loadu_ps(o + r * ldo + 8);
    }
#pragma GCC unroll 2
    for (int j = 0; j < nj; j++) {
        __m256 v0 = _mm256_load_ps(vp + (size_t)j * NR);
        __m256 v1 = NV == 2 ? _mm256_load_ps(vp + (size_t)j * NR + 8) : v0;
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m256 pb = _mm256_broadcast_ss(p + r * ldp + j);
            a0[r] = _mm256_fmadd_ps(pb, v0, a0[r]);
            if (NV == 2) a1[r] = _mm256_fmadd_ps(pb, v1, a1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) {
        __m256 sc = last ? _mm256_broadcast_ss(inv + r) : _mm256_set1_ps(1.0f);
        _mm256_storeu_ps(o + r * ldo, last ? _mm256_mul_ps(a0[r], sc) : a0[r]);
        if (NV == 2) _mm256_storeu_ps(o + r * ldo + 8, last ? _mm256_mul_ps(a1[r], sc) : a1[r]);
    }
}

static void pv_tile_any(int mr, int nv, const float *p, size_t ldp, const float *vp, int nj,
                        bool first, bool last, const float *inv, float *o, size_t ldo) {
#define PV_CASE(R)                                                                             \
    case R:                                                                                    \
        if (nv == 2) pv_tile(R, 2, p, ldp, vp, nj, first, last, inv, o, ldo);                  \
        else pv_tile(R, 1, p, ldp, vp, nj, first, last, inv, o, ldo);                          \
        break;
    switch (mr) {
        PV_CASE(6)
        PV_CASE(5)
        PV_CASE(4)
        PV_CASE(3)
        PV_CASE(2)
        PV_CASE(1)
    }
#undef PV_CASE
}

void tkr_attention_rows_avx2(const tkr_attention_args *a, int s, int h, int i0, int i1,
                             float *scratch) {
    int t0 = a->seq_start[s], T = a->seq_start[s + 1] - t0;
    int hd = a->head_dim, kvh = h / (a->n_heads / a->n_kv);
    int nk = a->causal ? i1 : T;                         /* keys any row of the task sees */
    int qb_rows = q_block_rows(round_up16(T));
    int hd16 = (hd + NR - 1) / NR * NR;
    float *kt = scratch;                                 /* [nk/16][hd][16]      */
    float *vp = kt + (size_t)round_up16(nk) * hd;        /* [hd/16][nk][16]      */
    float *sc = vp + (size_t)round_up16(nk) * hd16;      /* [qb_rows][nkb16]     */
    float *inv = sc + (size_t)qb_rows * round_up16(T);   /* [qb_rows]            */
    const float *K = a->k + (size_t)t0 * a->kv_stride + (size_t)kvh * hd;
    const float *V = a->v + (size_t)t0 * a->kv_stride + (size_t)kvh * hd;
    tkr_attention_pack_keys_avx2(K, a->kv_stride, nk, hd, kt);
    tkr_attention_pack_values_avx2(V, a->kv_stride, nk, hd, vp);
    __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)hd));
    for (int q0 = i0; q0 < i1; q0 += qb_rows) {
        int qn = i1 - q0 < qb_rows ? i1 - q0 : qb_rows;
        int nkb = a->causal ? q0 + qn : T;               /* keys of this block */
        int ldS = round_up16(nkb);
        const float *Q = a->q + tkr_att_q_row(a, s, q0) * a->q_stride + (size_t)h * hd;
        for (int p = 0; p < ldS / NR; p++)
            for (int r = 0; r < qn; r += MR)
                score_tile_any(qn - r < MR ? qn - r : MR, Q + (size_t)r * a->q_stride,
                               (size_t)a->q_stride, kt + (size_t)p * hd * NR, hd,
                               sc + (size_t)r * ldS + p * NR, (size_t)ldS, scale);
        for (int r = 0; r < qn; r++) {
            int n = a->causal ? q0 + r + 1 : T;
            inv[r] = 1.0f / softmax_row(sc + (size_t)r * ldS, n, ldS);
        }
        float *O = a->out + tkr_att_q_row(a, s, q0) * a->out_stride + (size_t)h * hd;
        for (int j0 = 0; j0 < nkb; j0 += JB) {
            int nj = nkb - j0 < JB ? nkb - j0 : JB;
            for (int r = 0; r < qn; r += MR) {
                int mr = qn - r < MR ? qn - r : MR;
                for (int d0 = 0; d0 < hd; d0 += NR)
                    pv_tile_any(mr, hd - d0 >= NR ? 2 : 1, sc + (size_t)r * ldS + j0, (size_t)ldS,
                                vp + (size_t)d0 * nk + (size_t)j0 * NR, nj, j0 == 0,
                                j0 + nj >= nkb, inv + r, O + (size_t)r * a->out_stride + d0,
                                (size_t)a->out_stride);
            }
        }
    }
}

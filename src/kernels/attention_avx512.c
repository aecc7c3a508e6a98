/* attention_avx512.c - AVX-512 attention for one (sequence, head, block of query rows) task:
 * the design of attention_avx2.c (read its header first) with registers twice as wide and
 * tiles that use the 32 zmm registers, and the same bits.
 *
 *   1. S = Q K^T / sqrt(d): the keys packed as in the AVX2 kernel, kt[panel][d][16]; a tile of
 *      6 rows x 4 panels (64 keys): per d, 4 panel loads and 6 broadcasts of q feed 24 FMAs
 *      (the AVX2 tile: 2 loads and 6 broadcasts for 12 FMAs of half the width).
 *   2. per row: max, p = exp(s - max) on 16 lanes (the AVX2 polynomial, op for op), and the row
 *      sum accumulated in 8 lanes in the AVX2 order: the low then the high half of each 16.
 *   3. O = P V: V packed as 16-wide column chunks, vp[c][j][16], as in the AVX2 kernel; a tile
 *      of 4 rows x up to 5 chunks (80 columns: one vision head, 20 accumulators): per key j, 5
 *      chunk loads and 4 broadcasts of p feed 20 FMAs. hd % 16 == 8: the last chunk's upper
 *      half is zero in vp and is neither loaded from nor stored to the output (masks).
 *
 * Same bits as AVX2: each score is one FMA chain over d from +0 then one multiply by the scale;
 * exp is the same operations per lane; the row sum adds the same 8-lane vectors in the same
 * order, then the same horizontal order; each output is one FMA chain over j from +0, stored
 * and reloaded between 256-key steps, scaled by 1 / sum at the end. So a row gives the same
 * bits as the AVX2 kernel whatever the tile, block, thread count or batch (tests/unit). */
#include "kernels/kernels_impl.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

enum { MR = 6, NR = 16, SP = 4 /* score panels a tile */, PR = 4, PC = 5 /* PV rows, chunks */,
       QB_MAX = 96, S_BUDGET = 192 * 1024, JB = 256 };

static inline int round_up16(int n) { return (n + 15) & ~15; }

/* The same query block as the AVX2 kernel (any block gives the same bits; this keeps the
 * scratch layout of tkr_attention_avx2_scratch_floats). */
static int q_block_rows(int keys_padded) {
    int qb = S_BUDGET / (keys_padded > 0 ? keys_padded : 1);
    qb -= qb % MR;
    return qb < MR ? MR : qb > QB_MAX ? QB_MAX : qb;
}

/* tkr_exp256_nonpos (vexp_avx2.h) on 16 lanes: the same operations, so the same value per lane. */
static inline __m512 exp512_nonpos(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    __m512 xc = _mm512_max_ps(x, _mm512_set1_ps(-87.33654022216797f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, xc);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* The AVX2 kernel's horizontal sum of 8 lanes, in its order. */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* s[r][0 : 16 NP] = scale * (q[r] . k[16 NP keys]) for MRc rows: one FMA chain over d per score.
 * kt: NP consecutive panels [hd][16]. */
static inline __attribute__((always_inline)) void score_tile(const int MRc, const int NP,
                                                             const float *q, size_t ldq,
                                                             const float *kt, int hd, float *s,
                                                             size_t lds, __m512 scale) {
    __m512 acc[MR][SP];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NP; c++) acc[r][c] = _mm512_setzero_ps();
    const size_t pstride = (size_t)hd * NR;
#pragma GCC unroll 2
    for (int d = 0; d < hd; d++) {
        __m512 k[SP];
#pragma GCC unroll 4
        for (int c = 0; c < NP; c++) k[c] = _mm512_load_ps(kt + c * pstride + (size_t)d * NR);
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m512 qb = _mm512_set1_ps(q[r * ldq + d]);
#pragma GCC unroll 4
            for (int c = 0; c < NP; c++) acc[r][c] = _mm512_fmadd_ps(qb, k[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NP; c++) _mm512_storeu_ps(s + r * lds + c * NR, _mm512_mul_ps(acc[r][c], scale));
}

static void score_tile_any(int mr, int np, const float *q, size_t ldq, const float *kt, int hd,
                           float *s, size_t lds, __m512 scale) {
#define SC_CASE(R)                                                                             \
    case R:                                                                                    \
        switch (np) {                                                                          \
        case 4: score_tile(R, 4, q, ldq, kt, hd, s, lds, scale); break;                        \
        case 3: score_tile(R, 3, q, ldq, kt, hd, s, lds, scale); break;                        \
        case 2: score_tile(R, 2, q, ldq, kt, hd, s, lds, scale); break;                        \
        default: score_tile(R, 1, q, ldq, kt, hd, s, lds, scale); break;                       \
        }                                                                                      \
        break;
    switch (mr) {
        SC_CASE(6)
        SC_CASE(5)
        SC_CASE(4)
        SC_CASE(3)
        SC_CASE(2)
        SC_CASE(1)
    }
#undef SC_CASE
}

/* Row of the block: p[j] = exp(s[j] - max) for j < n, +0 for j in [n, n_padded); returns the
 * sum of the p as the AVX2 kernel forms it (lane l of 8 sums j = l mod 8 in order of j). */
static float softmax_row(float *s, int n, int n_padded) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
    __mmask16 tail = (__mmask16)((1u << (n - j)) - 1u);
    if (j < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail, s + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m256 sum = _mm256_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 p = exp512_nonpos(_mm512_sub_ps(_mm512_loadu_ps(s + j), m));
        _mm512_storeu_ps(s + j, p);
        sum = _mm256_add_ps(sum, _mm512_castps512_ps256(p));
        sum = _mm256_add_ps(sum, _mm512_extractf32x8_ps(p, 1));
    }
    if (j < n) {
        int rest = n - j;
        __m512 p = _mm512_maskz_mov_ps(tail, exp512_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + j), m)));
        _mm512_storeu_ps(s + j, p);
        sum = _mm256_add_ps(sum, _mm512_castps512_ps256(p));
        if (rest > 8) sum = _mm256_add_ps(sum, _mm512_extractf32x8_ps(p, 1));
        j += 16;
    }
    for (; j < n_padded; j += 16) _mm512_storeu_ps(s + j, _mm512_setzero_ps());
    return hsum8(sum);
}

/* o[r][chunks] (+)= sum_j p[r][j] v[j][chunks] over nj keys for MRc rows and NC 16-wide chunks:
 * one FMA chain over j per output, carried through o between key steps (first: from +0; last:
 * times inv[r] on the way out). vp: the first chunk's part for this step, [nj][16], the next
 * chunks vstride floats apart; lastmask: the lanes of the last chunk that exist. */
static inline __attribute__((always_inline)) void pv_tile(const int MRc, const int NC,
                                                          const float *p, size_t ldp,
                                                          const float *vp, size_t vstride, int nj,
                                                          bool first, bool last, const float *inv,
                                                          float *o, size_t ldo, __mmask16 lastmask) {
    __m512 acc[PR][PC];
#pragma GCC unroll 4
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 5
        for (int c = 0; c < NC; c++) {
            __mmask16 mk = c == NC - 1 ? lastmask : (__mmask16)0xFFFF;
            acc[r][c] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, o + r * ldo + c * NR);
        }
#pragma GCC unroll 2
    for (int j = 0; j < nj; j++) {
        __m512 v[PC];
#pragma GCC unroll 5
        for (int c = 0; c < NC; c++) v[c] = _mm512_load_ps(vp + c * vstride + (size_t)j * NR);
#pragma GCC unroll 4
        for (int r = 0; r < MRc; r++) {
            __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 5
            for (int c = 0; c < NC; c++) acc[r][c] = _mm512_fmadd_ps(pb, v[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MRc; r++) {
        __m512 sc = _mm512_set1_ps(last ? inv[r] : 1.0f);
#pragma GCC unroll 5
        for (int c = 0; c < NC; c++) {
            __mmask16 mk = c == NC - 1 ? lastmask : (__mmask16)0xFFFF;
            _mm512_mask_storeu_ps(o + r * ldo + c * NR, mk, last ? _mm512_mul_ps(acc[r][c], sc) : acc[r][c]);
        }
    }
}

static void pv_tile_any(int mr, int nc, const float *p, size_t ldp, const float *vp, size_t vstride,
                        int nj, bool first, bool last, const float *inv, float *o, size_t ldo,
                        __mmask16 lastmask) {
#define PV_CASE(R)                                                                                 \
    case R:                                                                                        \
        switch (nc) {                                                                              \
        case 5: pv_tile(R, 5, p, ldp, vp, vstride, nj, first, last, inv, o, ldo, lastmask); break; \
        case 4: pv_tile(R, 4, p, ldp, vp, vstride, nj, first, last, inv, o, ldo, lastmask); break; \
        case 3: pv_tile(R, 3, p, ldp, vp, vstride, nj, first, last, inv, o, ldo, lastmask); break; \
        case 2: pv_tile(R, 2, p, ldp, vp, vstride, nj, first, last, inv, o, ldo, lastmask); break; \
        default: pv_tile(R, 1, p, ldp, vp, vstride, nj, first, last, inv, o, ldo, lastmask); break; \
        }                                                                                          \
        break;
    switch (mr) {
        PV_CASE(4)
        PV_CASE(3)
        PV_CASE(2)
        PV_CASE(1)
    }
#undef PV_CASE
}

void tkr_attention_rows_avx512(const tkr_attention_args *a, int s, int h, int i0, int i1,
                               float *scratch) {
    int t0 = a->seq_start[s], T = a->seq_start[s + 1] - t0;
    int hd = a->head_dim, kvh = h / (a->n_heads / a->n_kv);
    int nk = a->causal ? i1 : T;                         /* keys any row of the task sees */
    int qb_rows = q_block_rows(round_up16(T));
    int hd16 = (hd + NR - 1) / NR * NR, chunks = hd16 / NR;
    float *kt = scratch;                                 /* [nk/16][hd][16]      */
    float *vp = kt + (size_t)round_up16(nk) * hd;        /* [hd/16][nk][16]      */
    float *sc = vp + (size_t)round_up16(nk) * hd16;      /* [qb_rows][nkb16]     */
    float *inv = sc + (size_t)qb_rows * round_up16(T);   /* [qb_rows]            */
    const float *K = a->k + (size_t)t0 * a->kv_stride + (size_t)kvh * hd;
    const float *V = a->v + (size_t)t0 * a->kv_stride + (size_t)kvh * hd;
    tkr_attention_pack_keys_avx2(K, a->kv_stride, nk, hd, kt);
    tkr_attention_pack_values_avx2(V, a->kv_stride, nk, hd, vp);
    __m512 scale = _mm512_set1_ps(1.0f / sqrtf((float)hd));
    size_t vstride = (size_t)nk * NR;                    /* floats between V's chunks */
    for (int q0 = i0; q0 < i1; q0 += qb_rows) {
        int qn = i1 - q0 < qb_rows ? i1 - q0 : qb_rows;
        int nkb = a->causal ? q0 + qn : T;               /* keys of this block */
        int ldS = round_up16(nkb), panels = ldS / NR;
        const float *Q = a->q + tkr_att_q_row(a, s, q0) * a->q_stride + (size_t)h * hd;
        for (int p = 0; p < panels; p += SP)
            for (int r = 0; r < qn; r += MR)
                score_tile_any(qn - r < MR ? qn - r : MR, panels - p < SP ? panels - p : SP,
                               Q + (size_t)r * a->q_stride, (size_t)a->q_stride,
                               kt + (size_t)p * hd * NR, hd, sc + (size_t)r * ldS + p * NR,
                               (size_t)ldS, scale);
        for (int r = 0; r < qn; r++) {
            int n = a->causal ? q0 + r + 1 : T;
            inv[r] = 1.0f / softmax_row(sc + (size_t)r * ldS, n, ldS);
        }
        float *O = a->out + tkr_att_q_row(a, s, q0) * a->out_stride + (size_t)h * hd;
        for (int j0 = 0; j0 < nkb; j0 += JB) {
            int nj = nkb - j0 < JB ? nkb - j0 : JB;
            for (int r = 0; r < qn; r += PR) {
                int mr = qn - r < PR ? qn - r : PR;
                for (int c0 = 0; c0 < chunks; c0 += PC) {
                    int nc = chunks - c0 < PC ? chunks - c0 : PC;
                    /* hd % 16 == 8: the last chunk of the head is half wide */
                    __mmask16 lastmask = c0 + nc == chunks && hd16 != hd ? (__mmask16)0x00FF : (__mmask16)0xFFFF;
                    pv_tile_any(mr, nc, sc + (size_t)r * ldS + j0, (size_t)ldS,
                                vp + (size_t)c0 * vstride + (size_t)j0 * NR, vstride, nj, j0 == 0,
                                j0 + nj >= nkb, inv + r, O + (size_t)r * a->out_stride + c0 * NR,
                                (size_t)a->out_stride, lastmask);
                }
            }
        }
    }
}

/* attention_neon.c - NEON attention for one (sequence, head, block of query rows) task (aarch64).
 *
 * The design of attention_avx2.c (see there) in 128-bit registers:
 *   1. S = Q K^T / sqrt(d) with the keys packed once per task as K^T panels of 16 keys,
 *      kt[panel][d][16], and a 6x16 tile (24 accumulators, 4 panel loads + 6 broadcasts per d);
 *   2. per row: max, p = exp(s - max) (tkr_vexpq_nonpos), sum -> 1 / sum (two-pass softmax, every
 *      probability exp(s - true row max), as in the reference);
 *   3. O = P V: the 6x16 tile over keys j in steps of JB, V packed as 16-wide column chunks.
 * Invariance: each score is one FMA chain over d, each row sum the AVX2 kernel's 8-lane sum (two
 * 4-lane halves, its horizontal order), each output one FMA chain over j from 0, so a row has the
 * same bits whatever the block, thread count or batch, and the same bits as the AVX2 kernel. */
#include "kernels/kernels_impl.h"
#include "kernels/simd_neon.h"

#include <math.h>
#include <string.h>

enum { MR = 6, NR = 16, QB_MAX = 96, S_BUDGET = 192 * 1024, JB = 256 };

static inline int round_up16(int n) { return (n + 15) & ~15; }

static int q_block_rows(int keys_padded) {
    int qb = S_BUDGET / (keys_padded > 0 ? keys_padded : 1);
    qb -= qb % MR;
    return qb < MR ? MR : qb > QB_MAX ? QB_MAX : qb;
}

size_t tkr_attention_neon_scratch_floats(int max_T, int head_dim) {
    size_t tp = (size_t)round_up16(max_T);
    size_t hd16 = (size_t)(head_dim + NR - 1) / NR * NR;
    return tp * (size_t)head_dim + tp * hd16 + S_BUDGET + MR * tp + QB_MAX + 16;
}

/* kt[p][d][16] = K[16 p + jj][d] for keys [0, nk), zero for the padding keys. hd % 4 == 0. */
static void pack_keys(const float *K, int stride, int nk, int hd, float *kt) {
    for (int p = 0; p < round_up16(nk) / NR; p++) {
        float *dst = kt + (size_t)p * hd * NR;          /* [hd][16] */
        for (int g = 0; g < 4; g++) {
            int j0 = p * NR + g * 4;
            int rows = nk - j0 >= 4 ? 4 : nk - j0 > 0 ? nk - j0 : 0;
            for (int d0 = 0; d0 < hd; d0 += 4) {
                float32x4_t r[4];
                for (int i = 0; i < 4; i++)
                    r[i] = i < rows ? vld1q_f32(K + (size_t)(j0 + i) * stride + d0) : vdupq_n_f32(0.0f);
                tkr_transpose4(r);
                for (int i = 0; i < 4; i++) vst1q_f32(dst + (size_t)(d0 + i) * NR + g * 4, r[i]);
            }
        }
    }
}

/* vp[c][j][16] = V[j][16 c + dd] for keys [0, nk), zero past hd. */
static void pack_values(const float *V, int stride, int nk, int hd, float *vp) {
    for (int c = 0; c < (hd + NR - 1) / NR; c++) {
        float *dst = vp + (size_t)c * nk * NR;          /* [nk][16] */
        int d0 = c * NR, w = hd - d0 < NR ? hd - d0 : NR;   /* w: 4, 8, 12 or 16 */
        for (int j = 0; j < nk; j++) {
            const float *src = V + (size_t)j * stride + d0;
            for (int q = 0; q < 4; q++)
                vst1q_f32(dst + (size_t)j * NR + 4 * q, 4 * q < w ? vld1q_f32(src + 4 * q) : vdupq_n_f32(0.0f));
        }
    }
}

/* s[r][0:16] = scale * (q[r] . k[16 keys]) for MRc rows: one FMA chain over d per score. */
static inline __attribute__((always_inline)) void score_tile(const int MRc, const float *q,
                                                             size_t ldq, const float *kt, int hd,
                                                             float *s, size_t lds, float scale) {
    float32x4_t a[MR][4];
    for (int r = 0; r < MRc; r++)
        for (int c = 0; c < 4; c++) a[r][c] = vdupq_n_f32(0.0f);
    for (int d = 0; d < hd; d++) {
        const float *kd = kt + (size_t)d * NR;
        float32x4_t k0 = vld1q_f32(kd), k1 = vld1q_f32(kd + 4), k2 = vld1q_f32(kd + 8), k3 = vld1q_f32(kd + 12);
        for (int r = 0; r < MRc; r++) {
            float qv = q[r * ldq + d];
            a[r][0] = vfmaq_n_f32(a[r][0], k0, qv);
            a[r][1] = vfmaq_n_f32(a[r][1], k1, qv);
            a[r][2] = vfmaq_n_f32(a[r][2], k2, qv);
            a[r][3] = vfmaq_n_f32(a[r][3], k3, qv);
        }
    }
    for (int r = 0; r < MRc; r++)
        for (int c = 0; c < 4; c++) vst1q_f32(s + r * lds + 4 * c, vmulq_n_f32(a[r][c], scale));
}

static void score_tile_any(int mr, const float *q, size_t ldq, const float *kt, int hd, float *s,
                           size_t lds, float scale) {
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
 * sum of the p in the AVX2 order: 8 lanes (lane l sums j = l mod 8, held as two 4-lane halves),
 * then tkr_hsum8_neon. n_padded is a multiple of 16. */
static float softmax_row(float *s, int n, int n_padded) {
    float32x4_t mlo = vdupq_n_f32(-INFINITY), mhi = mlo;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        mlo = vmaxq_f32(mlo, vld1q_f32(s + j));
        mhi = vmaxq_f32(mhi, vld1q_f32(s + j + 4));
    }
    for (int t = j; t < n; t++) /* the tail's maximum (exact: max has no rounding) */
        mlo = vmaxq_f32(mlo, vdupq_n_f32(s[t]));
    float32x4_t m = vdupq_n_f32(tkr_hmax8_neon(mlo, mhi));
    float32x4_t slo = vdupq_n_f32(0.0f), shi = slo;
    for (j = 0; j + 8 <= n; j += 8) {
        float32x4_t plo = tkr_vexpq_nonpos(vsubq_f32(vld1q_f32(s + j), m));
        float32x4_t phi = tkr_vexpq_nonpos(vsubq_f32(vld1q_f32(s + j + 4), m));
        vst1q_f32(s + j, plo);
        vst1q_f32(s + j + 4, phi);
        slo = vaddq_f32(slo, plo);
        shi = vaddq_f32(shi, phi);
    }
    if (j < n) { /* the last partial group of 8: the lanes past n are +0 (scores are padded to 16) */
        float buf[8] = {0};
        memcpy(buf, s + j, sizeof(float) * (size_t)(n - j));
        float32x4_t plo = tkr_vexpq_nonpos(vsubq_f32(vld1q_f32(buf), m));
        float32x4_t phi = tkr_vexpq_nonpos(vsubq_f32(vld1q_f32(buf + 4), m));
        vst1q_f32(buf, plo);
        vst1q_f32(buf + 4, phi);
        for (int t = n - j; t < 8; t++) buf[t] = 0.0f;
        plo = vld1q_f32(buf);
        phi = vld1q_f32(buf + 4);
        vst1q_f32(s + j, plo);
        vst1q_f32(s + j + 4, phi);
        slo = vaddq_f32(slo, plo);
        shi = vaddq_f32(shi, phi);
        j += 8;
    }
    for (; j < n_padded; j += 4) vst1q_f32(s + j, vdupq_n_f32(0.0f));
    return tkr_hsum8_neon(slo, shi);
}

/* o[r][0 : 4 NV] (+)= sum_j p[r][j] v[j][0 : 4 NV] over nj keys for MRc rows: one FMA chain over
 * j per output, carried through o between key steps (first: start at +0; last: scale by inv[r]).
 * vp: the step's part of one packed 16-wide column chunk, [nj][16]. */
static inline __attribute__((always_inline)) void pv_tile(const int MRc, const int NV,
                                                          const float *p, size_t ldp,
                                                          const float *vp, int nj, bool first,
                                                          bool last, const float *inv, float *o,
                                                          size_t ldo) {
    float32x4_t a[MR][4];
    for (int r = 0; r < MRc; r++)
        for (int c = 0; c < NV; c++) a[r][c] = first ? vdupq_n_f32(0.0f) : vld1q_f32(o + r * ldo + 4 * c);
    for (int j = 0; j < nj; j++) {
        float32x4_t v[4];
        for (int c = 0; c < NV; c++) v[c] = vld1q_f32(vp + (size_t)j * NR + 4 * c);
        for (int r = 0; r < MRc; r++) {
            float pv = p[r * ldp + j];
            for (int c = 0; c < NV; c++) a[r][c] = vfmaq_n_f32(a[r][c], v[c], pv);
        }
    }
    for (int r = 0; r < MRc; r++)
        for (int c = 0; c < NV; c++) vst1q_f32(o + r * ldo + 4 * c, last ? vmulq_n_f32(a[r][c], inv[r]) : a[r][c]);
}

static void pv_tile_any(int mr, int nv, const float *p, size_t ldp, const float *vp, int nj,
                        bool first, bool last, const float *inv, float *o, size_t ldo) {
#define PV_CASE(R)                                                                             \
    case R:                                                                                    \
        switch (nv) {                                                                          \
        case 4: pv_tile(R, 4, p, ldp, vp, nj, first, last, inv, o, ldo); break;                \
        case 3: pv_tile(R, 3, p, ldp, vp, nj, first, last, inv, o, ldo); break;                \
        case 2: pv_tile(R, 2, p, ldp, vp, nj, first, last, inv, o, ldo); break;                \
        default: pv_tile(R, 1, p, ldp, vp, nj, first, last, inv, o, ldo); break;               \
        }                                                                                      \
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

void tkr_attention_rows_neon(const tkr_attention_args *a, int s, int h, int i0, int i1,
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
    pack_keys(K, a->kv_stride, nk, hd, kt);
    pack_values(V, a->kv_stride, nk, hd, vp);
    float scale = 1.0f / sqrtf((float)hd);
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
                for (int d0 = 0; d0 < hd; d0 += NR) {
                    int nv = (hd - d0 >= NR ? NR : hd - d0) / 4;
                    pv_tile_any(mr, nv, sc + (size_t)r * ldS + j0, (size_t)ldS,
                                vp + (size_t)d0 * nk + (size_t)j0 * NR, nj, j0 == 0,
                                j0 + nj >= nkb, inv + r, O + (size_t)r * a->out_stride + d0,
                                (size_t)a->out_stride);
                }
            }
        }
    }
}

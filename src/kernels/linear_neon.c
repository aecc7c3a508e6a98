/* linear_neon.c - NEON block of tkr_linear (aarch64): packed weight panels and a 6x16 tile.
 *
 * The same design as linear_avx2.c, in 128-bit registers: the block W[n0:n1, :] is widened to
 * float32 and transposed (4x4 register transposes), KC columns of k at a time, into panels of 16
 * weight rows, pack[panel][k][16]. A 6x16 tile keeps 24 accumulators (6 rows x 4 registers of 4
 * columns) of NEON's 32 registers; per k, 4 panel loads and 6 broadcasts of x feed 24 FMAs.
 * F16 weights widen with fcvtl, BF16 with a 16-bit left shift, both in registers while packing.
 *
 * Batch invariance (kernels.h): each output y[m, n] is ONE fused multiply-add chain over
 * k = 0, 1, ..., K-1 in order, started at +0 and carried through y between k-blocks, whatever
 * the tile height or M. These are the AVX2 kernel's chains exactly, so on the same inputs the NEON
 * and AVX2 results are the same bits (and differ from the portable kernel's 8-way split sums in
 * the last bits; test_kernels bounds that). */
#include "kernels/kernels_impl.h"
#include "kernels/simd_neon.h"

#include <string.h>

enum { MR = 6, NR = 16, KC = 256, PF_AHEAD = 256 /* elements */ };
enum { SMALL_X = 128 * 1024 }; /* floats of x below which a panel holds all of K (linear_avx2.c) */

size_t tkr_linear_neon_pack_floats(int block_n, int K) {
    size_t blocked = (size_t)((block_n + NR - 1) / NR) * NR * KC, panel = (size_t)K * NR;
    return blocked > panel ? blocked : panel;
}

/* 4 consecutive weights of W at element idx, widened to float32. */
static inline float32x4_t load4_w(tkr_dtype dt, const void *W, size_t idx) {
    switch (dt) {
    case TKR_DT_F16:
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)W + idx)));
    case TKR_DT_BF16:
        return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)W + idx), 16));
    default:
        return vld1q_f32((const float *)W + idx);
    }
}

static inline float load1_w(tkr_dtype dt, const void *W, size_t idx) {
    uint16_t h;
    switch (dt) {
    case TKR_DT_F16:
        memcpy(&h, (const uint16_t *)W + idx, 2);
        return tkr_f16_to_f32(h);
    case TKR_DT_BF16:
        memcpy(&h, (const uint16_t *)W + idx, 2);
        return tkr_bf16_to_f32(h);
    default: {
        float f;
        memcpy(&f, (const float *)W + idx, 4);
        return f;
    }
    }
}

/* pack[p][k][16] = W[n0 + 16 p + j, k0 + k] for the nr = n1 - n0 rows (panels kb apart), zero
 * past nr. Whole 4x4 blocks go through a register transpose; the edges are copied one by one. */
static inline __attribute__((always_inline)) void pack_block(tkr_dtype dt, const void *W, int K,
                                                             int n0, int nr, int k0, int kb,
                                                             float *pack) {
    size_t esz = dt == TKR_DT_F32 ? 4 : 2;
    int panels = (nr + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = pack + (size_t)p * kb * NR;      /* [kb][16] */
        for (int g = 0; g < 4; g++) {
            int j0 = p * NR + g * 4;                  /* first weight row of this 4-row group */
            int rows = nr - j0 < 4 ? (nr - j0 > 0 ? nr - j0 : 0) : 4;
            int k = 0;
            if (rows == 4) {
                for (; k + 4 <= kb; k += 4) {
                    if ((k & 31) == 0) /* each row's line a k-block ahead (a hint: may pass the end) */
                        for (int i = 0; i < 4; i++)
                            __builtin_prefetch((const char *)W + ((size_t)(n0 + j0 + i) * K + (size_t)(k0 + k) + PF_AHEAD) * esz);
                    float32x4_t r[4];
                    for (int i = 0; i < 4; i++) r[i] = load4_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k));
                    tkr_transpose4(r);
                    for (int i = 0; i < 4; i++) vst1q_f32(dst + (size_t)(k + i) * NR + g * 4, r[i]);
                }
            }
            for (; k < kb; k++)
                for (int i = 0; i < 4; i++)
                    dst[(size_t)k * NR + g * 4 + i] =
                        i < rows ? load1_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k)) : 0.0f;
        }
    }
}

/* The 6x16 tile (MRc rows, a constant after inlining): c[r][0:16] (+)= x[r][0:kb] . pw.
 * load_c: carry the chains of an earlier k-block (else start at +0). */
static inline __attribute__((always_inline)) void tile(const int MRc, const float *x, size_t ldx,
                                                       const float *pw, int kb, float *c,
                                                       size_t ldc, bool load_c) {
    float32x4_t a[MR][4];
    for (int r = 0; r < MRc; r++)
        for (int q = 0; q < 4; q++) a[r][q] = load_c ? vld1q_f32(c + r * ldc + 4 * q) : vdupq_n_f32(0.0f);
    for (int k = 0; k < kb; k++) {
        const float *wk = pw + (size_t)k * NR;
        float32x4_t w0 = vld1q_f32(wk), w1 = vld1q_f32(wk + 4), w2 = vld1q_f32(wk + 8), w3 = vld1q_f32(wk + 12);
        for (int r = 0; r < MRc; r++) {
            float xv = x[r * ldx + k];
            a[r][0] = vfmaq_n_f32(a[r][0], w0, xv);
            a[r][1] = vfmaq_n_f32(a[r][1], w1, xv);
            a[r][2] = vfmaq_n_f32(a[r][2], w2, xv);
            a[r][3] = vfmaq_n_f32(a[r][3], w3, xv);
        }
    }
    for (int r = 0; r < MRc; r++)
        for (int q = 0; q < 4; q++) vst1q_f32(c + r * ldc + 4 * q, a[r][q]);
}

static void tile_any(int mr, const float *x, size_t ldx, const float *pw, int kb, float *c,
                     size_t ldc, bool load_c) {
    switch (mr) {
    case 6: tile(6, x, ldx, pw, kb, c, ldc, load_c); break;
    case 5: tile(5, x, ldx, pw, kb, c, ldc, load_c); break;
    case 4: tile(4, x, ldx, pw, kb, c, ldc, load_c); break;
    case 3: tile(3, x, ldx, pw, kb, c, ldc, load_c); break;
    case 2: tile(2, x, ldx, pw, kb, c, ldc, load_c); break;
    default: tile(1, x, ldx, pw, kb, c, ldc, load_c); break;
    }
}

/* All M rows against the packed k-block [k0, k0 + kb) of rows [n0, n1). A panel narrower than 16
 * (the end of N) goes through a 6x16 buffer so that stores never pass column n1. */
static void multiply_block(const float *x, int M, int K, int n0, int n1, int k0, int kb,
                           const float *pack, float *y, int N) {
    bool load_c = k0 > 0;
    /* panel-major: one panel's k-block stays in L1 while every row tile passes over it */
    for (int n = n0, p = 0; n < n1; n += NR, p++) {
        const float *pw = pack + (size_t)p * kb * NR;
        for (int m = 0; m < M; m += MR) {
            int mr = M - m < MR ? M - m : MR;
            const float *xm = x + (size_t)m * K + k0;
            float *ym = y + (size_t)m * N + n;
            int nr = n1 - n < NR ? n1 - n : NR;
            if (nr == NR) {
                tile_any(mr, xm, (size_t)K, pw, kb, ym, (size_t)N, load_c);
                continue;
            }
            float buf[MR * NR];                   /* [mr][16] */
            if (load_c)
                for (int r = 0; r < mr; r++) memcpy(buf + r * NR, ym + (size_t)r * N, sizeof(float) * (size_t)nr);
            tile_any(mr, xm, (size_t)K, pw, kb, buf, NR, load_c);
            for (int r = 0; r < mr; r++) memcpy(ym + (size_t)r * N, buf + r * NR, sizeof(float) * (size_t)nr);
        }
    }
}

void tkr_linear_block_neon(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                           float *y, int N, float *pack) {
    if (K == 0) { /* an empty sum: every chain is +0 */
        for (int m = 0; m < M; m++) memset(y + (size_t)m * N + n0, 0, sizeof(float) * (size_t)(n1 - n0));
        return;
    }
    bool small = (size_t)M * (size_t)K <= SMALL_X;
    int kc = small && M > MR ? K : KC;        /* k-block */
    int nc = small ? NR : n1 - n0;            /* columns packed at once */
    for (int nb = n0; nb < n1; nb += nc) {
        int ne = n1 - nb < nc ? n1 : nb + nc;
        for (int k0 = 0; k0 < K; k0 += kc) {
            int kb = K - k0 < kc ? K - k0 : kc;
            switch (w->dtype) { /* one instantiation of the packing loop per dtype */
            case TKR_DT_F16: pack_block(TKR_DT_F16, w->data, K, nb, ne - nb, k0, kb, pack); break;
            case TKR_DT_BF16: pack_block(TKR_DT_BF16, w->data, K, nb, ne - nb, k0, kb, pack); break;
            default: pack_block(TKR_DT_F32, w->data, K, nb, ne - nb, k0, kb, pack); break;
            }
            multiply_block(x, M, K, nb, ne, k0, kb, pack, y, N);
        }
    }
}

/* linear_avx2.c - AVX2/FMA/F16C block of tkr_linear: packed weight panels and a 6x16 tile.
 *
 * The block W[n0:n1, :] is widened to float32 and transposed, KC columns of k at a time, into
 * panels of 16 weight rows:  pack[panel][k][16]  (16 output columns side by side for each k).
 * A 6x16 register tile then computes 6 rows of x against one panel with 12 accumulators:
 * per k, 2 panel loads + 6 broadcasts of x feed 12 FMAs, so the FMA units are the limit rather
 * than the loads (the former dot-product tile re-read x from L2 for every pair of weight rows).
 * Loop nest per block:  for k-block (KC) { pack; for 6 rows of x { for panel { tile } } }
 * so the 6 x KC slice of x stays in L1 while the packed block (<= 256 KB) streams from L2;
 * or, when x is small, for panel { pack all of K; for 6 rows of x { tile } }.
 *
 * Batch invariance: each output y[m, n] is ONE FMA chain acc = fma(x[m,k], w[n,k], acc) for
 * k = 0, 1, ..., K-1 in order, started at +0 and carried through y between k-blocks (a float
 * store/reload is exact). The tile height (6 or a 1..5 tail) and the panel width only choose
 * which lanes compute which chains, never the chain itself, so a row's result is the same bits
 * for any M and any position in the batch. */
#include "kernels/kernels_impl.h"

#include <immintrin.h>
#include "kernels/simd_avx2.h"
#include <string.h>

enum { MR = 6, NR = 16, KC = 256, PF_AHEAD = 256 /* elements */ };

/* Small x (M K <= SMALL_X floats, about half of L2) is multiplied one 16-row panel at a time:
 * the packing is then the cost that matters, and each weight row is read in order (a k-block
 * after the other, with a software prefetch one k-block ahead; the 8 interleaved rows are more
 * than the hardware prefetcher follows). The panel holds all of K when more than one tile of
 * rows uses it, else a 256-wide k-block that stays in L1. x stays in L2 throughout. */
enum { SMALL_X = 128 * 1024 };

size_t tkr_linear_avx2_pack_floats(int block_n, int K) {
    size_t blocked = (size_t)((block_n + NR - 1) / NR) * NR * KC, panel = (size_t)K * NR;
    return blocked > panel ? blocked : panel;
}


/* 8 consecutive weights of row `row` from column k, widened to float32. */
static inline __m256 load8_w(tkr_dtype dt, const void *W, size_t idx) {
    switch (dt) {
    case TKR_DT_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)W + idx)));
    case TKR_DT_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)W + idx));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default:
        return _mm256_loadu_ps((const float *)W + idx);
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

/* pack[p][k][16] = W[n0 + 16 p + j, k0 + k] (panels kb apart) for the nr = n1 - n0 rows, zero past nr.
 * Whole 8x8 blocks go through a register transpose; the edges are copied one by one. */
static inline __attribute__((always_inline)) void pack_block(tkr_dtype dt, const void *W, int K,
                                                             int n0, int nr, int k0, int kb,
                                                             float *pack) {
    int panels = (nr + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = pack + (size_t)p * kb * NR;      /* [kb][16] */
        for (int half = 0; half < 2; half++) {
            int j0 = p * NR + half * 8;               /* first weight row of this 8-row group */
            int rows = nr - j0 < 8 ? (nr - j0 > 0 ? nr - j0 : 0) : 8;
            int k = 0;
            if (rows == 8) {
                for (; k + 8 <= kb; k += 8) {
                    __m256 r[8];
                    if ((k & 31) == 0) /* each row's line a k-block ahead (a hint: may pass the end) */
#pragma GCC unroll 8
                        for (int i = 0; i < 8; i++)
                            _mm_prefetch((const char *)((uintptr_t)W + ((size_t)(n0 + j0 + i) * K + (size_t)(k0 + k) + PF_AHEAD) * (dt == TKR_DT_F32 ? 4 : 2)), _MM_HINT_T0);
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        r[i] = load8_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k));
                    transpose8(r);
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (size_t)(k + i) * NR + half * 8, r[i]);
                }
            }
            for (; k < kb; k++)
                for (int i = 0; i < 8; i++)
                    dst[(size_t)k * NR + half * 8 + i] =
                        i < rows ? load1_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k)) : 0.0f;
        }
    }
}

/* The 6x16 tile (MRc rows, MRc a constant after inlining): c[r][0:16] (+)= x[r][0:kb] . pw.
 * load_c: carry the chains of an earlier k-block (else start at +0). */
static inline __attribute__((always_inline)) void tile(const int MRc, const float *x, size_t ldx,
                                                       const float *pw, int kb, float *c,
                                                       size_t ldc, bool load_c) {
    __m256 a0[MR], a1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) {
        a0[r] = load_c ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
        a1[r] = load_c ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
    }
#pragma GCC unroll 2
    for (int k = 0; k < kb; k++) {
        __m256 w0 = _mm256_load_ps(pw + (size_t)k * NR), w1 = _mm256_load_ps(pw + (size_t)k * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m256 xb = _mm256_broadcast_ss(x + r * ldx + k);
            a0[r] = _mm256_fmadd_ps(xb, w0, a0[r]);
            a1[r] = _mm256_fmadd_ps(xb, w1, a1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++) {
        _mm256_storeu_ps(c + r * ldc, a0[r]);
        _mm256_storeu_ps(c + r * ldc + 8, a1[r]);
    }
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

void tkr_linear_block_avx2(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
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
            /* one instantiation of the packing loop per dtype so the loads inline */
            switch (w->dtype) {
            case TKR_DT_F16: pack_block(TKR_DT_F16, w->data, K, nb, ne - nb, k0, kb, pack); break;
            case TKR_DT_BF16: pack_block(TKR_DT_BF16, w->data, K, nb, ne - nb, k0, kb, pack); break;
            default: pack_block(TKR_DT_F32, w->data, K, nb, ne - nb, k0, kb, pack); break;
            }
            multiply_block(x, M, K, nb, ne, k0, kb, pack, y, N);
        }
    }
}

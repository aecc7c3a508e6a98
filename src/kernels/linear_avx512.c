/* linear_avx512.c - AVX-512 blocks of tkr_linear: packed 64-column weight panels, a 6x64 tile.
 *
 * Exact mode (float32 activations, F32/F16/BF16 weights). The same design as linear_avx2.c with
 * registers twice as wide: the block W[n0:n1, :] is transposed, KC columns of k at a time, into
 * panels of 64 weight rows, and a 6x64 register tile (24 zmm accumulators) computes 6 rows of x
 * against one panel: per k, 4 panel loads and 6 broadcasts of x feed 24 FMAs, so the two FMA
 * pipes are the limit. F32 and F16 (vcvtph2ps) panels are float32, pack[panel][k][64]; BF16
 * panels keep the raw bf16 pairs, pack[panel][k/2][64] (32 bits each), which the tile widens
 * (a shift for the even k, a zero-masked 16-bit load for the odd k), so the packing moves half the bytes and converts
 * nothing. The transposition is a 16x16 register transpose of 32-bit elements.
 *
 * Batch invariance (the same contract as AVX2, and the same bits): each y[m, n] is ONE FMA chain
 * acc = fma(x[m,k], w[n,k], acc) for k = 0 .. K-1 in order from +0, carried through y between
 * k-blocks. The tile height, panel width and block sizes only choose which lane computes which
 * chain, so the result is the same for any M, batch position or thread count, and identical to
 * the AVX2 kernel's (the FMA rounds once either way).
 *
 * Fast mode (BF16 weights, ctx->fast_bf16, AVX512_BF16): x is rounded to bf16 once per call
 * (round to nearest even) and each output is ONE vdpbf16ps chain over the k pairs (2j, 2j+1) in
 * order, so it is batch-invariant too, but not equal to the exact mode. The panels then hold
 * bf16 pairs: pack[panel][k/2][64][2], which is the same 16x16 transpose on 32-bit pairs. */
#include "kernels/kernels_impl.h"

#include <immintrin.h>
#include <string.h>

enum { MR = 6, NV = 4, NR = 64, KC = 256, PF_AHEAD = 512 /* bytes */, GROUP_TILES = 32 };

/* x small enough (M K <= SMALL_X floats) to stay in L2 while one panel at a time is packed over
 * all of K (see linear_avx2.c): then the packing is what costs, and weight rows are read in order. */
enum { SMALL_X = 128 * 1024 };

size_t tkr_linear_avx512_pack_floats(int block_n, int K) {
    size_t blocked = (size_t)((block_n + NR - 1) / NR) * NR * KC, panel = (size_t)(K + 1) * NR;
    return blocked > panel ? blocked : panel;
}

/* 16x16 transpose of 32-bit elements: r[i] holds row i on entry and column i on exit. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16], s[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* per 128-bit lane l: s[4i + j] holds rows 4i..4i+3 of column 4l + j */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        s[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 u0 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x44), u1 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x44);
        __m512 v0 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xEE), v1 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xEE);
        r[j] = _mm512_shuffle_f32x4(u0, u1, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(u0, u1, 0xDD);
        r[8 + j] = _mm512_shuffle_f32x4(v0, v1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    }
}

/* 16 consecutive weights of W from element idx, widened to float32. */
static inline __m512 load16_w(tkr_dtype dt, const void *W, size_t idx) {
    switch (dt) {
    case TKR_DT_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)W + idx)));
    case TKR_DT_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)W + idx));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default:
        return _mm512_loadu_ps((const float *)W + idx);
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

static inline size_t dt_size(tkr_dtype dt) { return dt == TKR_DT_F32 ? 4 : 2; }

/* pack[p][k][64] = W[n0 + 64 p + j, k0 + k] (panels kb apart) for the nr = n1 - n0 rows, zero
 * past nr. Whole 16x16 blocks go through the register transpose; the edges one by one. */
static inline __attribute__((always_inline)) void pack_block(tkr_dtype dt, const void *W, int K,
                                                             int n0, int nr, int k0, int kb,
                                                             float *pack) {
    int panels = (nr + NR - 1) / NR;
    size_t es = dt_size(dt);
    for (int p = 0; p < panels; p++) {
        float *dst = pack + (size_t)p * kb * NR; /* [kb][64] */
        for (int g = 0; g < NR / 16; g++) {
            int j0 = p * NR + g * 16;            /* first weight row of this 16-row group */
            int rows = nr - j0 < 16 ? (nr - j0 > 0 ? nr - j0 : 0) : 16;
            int k = 0;
            if (rows == 16) {
                for (; k + 16 <= kb; k += 16) {
                    __m512 r[16];
                    if (((k * (int)es) & 63) == 0) /* each row's next lines (a hint: may pass the end) */
#pragma GCC unroll 16
                        for (int i = 0; i < 16; i++)
                            _mm_prefetch((const char *)((uintptr_t)W + ((size_t)(n0 + j0 + i) * K + (size_t)(k0 + k)) * es + PF_AHEAD), _MM_HINT_T0);
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++)
                        r[i] = load16_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k));
                    transpose16(r);
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) _mm512_store_ps(dst + (size_t)(k + i) * NR + g * 16, r[i]);
                }
            }
            for (; k < kb; k++)
                for (int i = 0; i < 16; i++)
                    dst[(size_t)k * NR + g * 16 + i] =
                        i < rows ? load1_w(dt, W, (size_t)(n0 + j0 + i) * K + (size_t)(k0 + k)) : 0.0f;
        }
    }
}

/* The 6x64 tile (MRc rows, a constant after inlining): c[r][0:64] (+)= x[r][0:kb] . pw.
 * load_c: carry the chains of an earlier k-block (else start at +0). */
static inline __attribute__((always_inline)) void tile(const int MRc, const float *x, size_t ldx,
                                                       const float *pw, int kb, float *c,
                                                       size_t ldc, bool load_c) {
    __m512 a[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[r][v] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kb; k++) {
        __m512 w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) w[v] = _mm512_load_ps(pw + (size_t)k * NR + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m512 xb = _mm512_set1_ps(x[r * ldx + k]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) a[r][v] = _mm512_fmadd_ps(xb, w[v], a[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, a[r][v]);
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

/* The fast-mode tile: c[r][0:64] (+)= sum over pairs of bf16 x[r] pairs . pw pairs (vdpbf16ps).
 * xb: bf16 rows of ldx elements; kp pairs from pair 0 of xb and pw. */
static inline __attribute__((always_inline)) void tile_bf16(const int MRc, const uint16_t *xb,
                                                            size_t ldx, const uint16_t *pw, int kp,
                                                            float *c, size_t ldc, bool load_c) {
    __m512 a[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[r][v] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kp; k++) {
        __m512bh w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            w[v] = (__m512bh)_mm512_load_si512((const void *)(pw + ((size_t)k * NR + 16 * v) * 2));
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            uint32_t pair;
            memcpy(&pair, xb + r * ldx + 2 * (size_t)k, 4);
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pair);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) a[r][v] = _mm512_dpbf16_ps(a[r][v], xv, w[v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, a[r][v]);
}

/* Exact mode on BF16 weights without widening them in the packing: pw holds raw bf16 pairs
 * (the fast mode's panels, [kb/2][64] 32-bit pairs), widened here: the even k of a pair is the
 * pair shifted left by 16, the odd k the pair with its low half cleared. The FMA chain is the
 * same as tile()'s (k in order from +0), so the bits are too; the packing writes half the bytes
 * and does no conversion; the tile pays one shift per 12 FMAs (the odd half is a masked load).
 * kb odd: the last pair's upper half is not used (x has no column there). */
static inline __attribute__((always_inline)) void tile_w16(const int MRc, const float *x, size_t ldx,
                                                           const uint32_t *pw, int kb, float *c,
                                                           size_t ldc, bool load_c) {
    /* Registers: 24 accumulators + 4 weight vectors + 1 broadcast. The odd half is re-read from
     * the panel (L1) with a zero-masked 16-bit load rather than kept from the even half's load:
     * keeping both would need 8 weight registers and spill accumulators (33 > 32). The pointer
     * goes through an empty asm so that the compiler cannot merge the two loads. */
    __m512 a[MR][NV];
    const __mmask32 odd = (__mmask32)0xAAAAAAAAu; /* the upper 16 bits of each 32-bit pair */
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) a[r][v] = load_c ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
    int kp = kb / 2;
    for (int j = 0; j < kp; j++) {
        const uint32_t *pj = pw + (size_t)j * NR;
        __m512 w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            w[v] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512((const void *)(pj + 16 * v)), 16));
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m512 xe = _mm512_set1_ps(x[r * ldx + 2 * (size_t)j]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) a[r][v] = _mm512_fmadd_ps(xe, w[v], a[r][v]);
        }
        __asm__("" : "+r"(pj));
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            w[v] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(odd, (const void *)(pj + 16 * v)));
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m512 xo = _mm512_set1_ps(x[r * ldx + 2 * (size_t)j + 1]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) a[r][v] = _mm512_fmadd_ps(xo, w[v], a[r][v]);
        }
    }
    if (kb & 1) {
        __m512 we[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            we[v] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512((const void *)(pw + (size_t)kp * NR + 16 * v)), 16));
#pragma GCC unroll 6
        for (int r = 0; r < MRc; r++) {
            __m512 xe = _mm512_set1_ps(x[r * ldx + 2 * (size_t)kp]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) a[r][v] = _mm512_fmadd_ps(xe, we[v], a[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MRc; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, a[r][v]);
}

static void tile_w16_any(int mr, const float *x, size_t ldx, const uint32_t *pw, int kb, float *c,
                         size_t ldc, bool load_c) {
    switch (mr) {
    case 6: tile_w16(6, x, ldx, pw, kb, c, ldc, load_c); break;
    case 5: tile_w16(5, x, ldx, pw, kb, c, ldc, load_c); break;
    case 4: tile_w16(4, x, ldx, pw, kb, c, ldc, load_c); break;
    case 3: tile_w16(3, x, ldx, pw, kb, c, ldc, load_c); break;
    case 2: tile_w16(2, x, ldx, pw, kb, c, ldc, load_c); break;
    default: tile_w16(1, x, ldx, pw, kb, c, ldc, load_c); break;
    }
}

static void tile_bf16_any(int mr, const uint16_t *xb, size_t ldx, const uint16_t *pw, int kp, float *c,
                          size_t ldc, bool load_c) {
    switch (mr) {
    case 6: tile_bf16(6, xb, ldx, pw, kp, c, ldc, load_c); break;
    case 5: tile_bf16(5, xb, ldx, pw, kp, c, ldc, load_c); break;
    case 4: tile_bf16(4, xb, ldx, pw, kp, c, ldc, load_c); break;
    case 3: tile_bf16(3, xb, ldx, pw, kp, c, ldc, load_c); break;
    case 2: tile_bf16(2, xb, ldx, pw, kp, c, ldc, load_c); break;
    default: tile_bf16(1, xb, ldx, pw, kp, c, ldc, load_c); break;
    }
}

/* All M rows against the packed k-block [k0, k0 + kb) of rows [n0, n1). A panel narrower than 64
 * (the end of N) goes through a 6x64 buffer so that stores never pass column n1.
 * bf16: x is the bf16 copy (ldx elements a row, K rounded up to even) and kb counts k. */
/* What multiply_block prefetches into L2 while it computes: `bytes` of each of `rows` weight
 * rows `stride` bytes apart from `base` (the next k-block), spread over its row tiles so that
 * the loads trickle from memory instead of stalling the next packing all at once. */
typedef struct {
    const char *base;
    size_t stride, bytes;
    int rows;
} next_block;

static next_block next_kblock(const tkr_tensor *w, int K, int nb, int ne, int k0, int kc) {
    size_t es = w->dtype == TKR_DT_F32 ? 4 : 2;
    next_block nx = {NULL, 0, 0, 0};
    if (k0 >= K || ne <= nb) return nx;
    nx.base = (const char *)w->data + ((size_t)nb * K + (size_t)k0) * es;
    nx.stride = (size_t)K * es;
    nx.bytes = (size_t)(K - k0 < kc ? K - k0 : kc) * es;
    nx.rows = ne - nb;
    return nx;
}

/* The k-block after [.., k_next) of rows [nb, ne): the next one of these rows, else the first of
 * the next rows of this block, else the first of the rows the thread likely does next. */
static next_block after(const tkr_tensor *w, int K, int nb, int ne, int n1, int nc, int k_next,
                        int kc, int pf_n0, int pf_n1) {
    if (k_next < K) return next_kblock(w, K, nb, ne, k_next, kc);
    if (ne < n1) return next_kblock(w, K, ne, n1 - ne < nc ? n1 : ne + nc, 0, kc);
    return next_kblock(w, K, pf_n0, pf_n1, 0, kc);
}

/* A next_block being prefetched: `done` of its `lines` asked for so far. */
typedef struct {
    next_block b;
    size_t lines_per_row, lines, done, off;
    const char *row;
} pf_stream;

static pf_stream pf_start(next_block b) {
    pf_stream s = {b, (b.bytes + 63) / 64, 0, 0, 0, b.base};
    s.lines = s.lines_per_row * (size_t)b.rows;
    return s;
}

/* Asks for the lines up to fraction step / steps of the stream. */
static inline void pf_advance(pf_stream *s, size_t step, size_t steps) {
    size_t upto = s->lines * step / steps;
    for (; s->done < upto; s->done++) {
        _mm_prefetch(s->row + s->off, _MM_HINT_T1);
        s->off += 64;
        if (s->off >= s->lines_per_row * 64) {
            s->off = 0;
            s->row += s->b.stride;
        }
    }
}

static void pack_block_bf16(const uint16_t *W, int K, int n0, int nr, int k0, int kb, uint32_t *pack);

enum { MUL_F32, MUL_W16, MUL_BF16 }; /* panels of float32 / raw bf16 pairs with float x / bf16 x */

/* pstride: floats (32-bit units) from one panel to the next in pack.
 * Order: row groups of at most GROUP_TILES tiles, and within a group panel-major. One panel's
 * k-block (kb x 64 weights: 32 KB at KC = 256 for the pair panels) stays in L1 while every row
 * tile of the group passes over it, and the group's k-slice of x (192 rows: 96 KB in bf16, 192 KB
 * in float32), only broadcast, stays in L2. Row-tile-major order re-reads all panels of the block
 * from L2 for each row tile (twice the L2 traffic a vdpbf16ps tile can afford); panel-major over
 * all of a large M (a batch of 2048 rows) would stream x from L3. Any order gives the same bits. */
static void multiply_block(const void *x, size_t ldx, int mode, int M, int n0, int n1, int k0,
                           int kb, const float *pack, size_t pstride, float *y, int N, next_block nx) {
    bool load_c = k0 > 0;
    int kp = (kb + 1) / 2;
    pf_stream pw = pf_start(nx);
    int tiles = (M + MR - 1) / MR, panels = (n1 - n0 + NR - 1) / NR, step = 0;
    int groups = (tiles + GROUP_TILES - 1) / GROUP_TILES, per = (tiles + groups - 1) / groups;
    for (int g0 = 0; g0 < M; g0 += per * MR) {
        int g1 = M - g0 < per * MR ? M : g0 + per * MR; /* rows [g0, g1) */
        for (int n = n0, p = 0; n < n1; n += NR, p++) {
            for (int m = g0; m < g1; m += MR) {
                int mr = M - m < MR ? M - m : MR;
                /* the next k-block's weight lines, spread evenly over the tiles of this one */
                pf_advance(&pw, (size_t)++step, (size_t)tiles * (size_t)panels);
                float *ym = y + (size_t)m * N + n;
                int nr = n1 - n < NR ? n1 - n : NR;
                float buf[MR * NR]; /* [mr][64] */
                float *c = ym;
                size_t ldc = (size_t)N;
                if (nr < NR) {
                    if (load_c)
                        for (int r = 0; r < mr; r++) memcpy(buf + r * NR, ym + (size_t)r * N, sizeof(float) * (size_t)nr);
                    c = buf;
                    ldc = NR;
                }
                if (mode == MUL_W16)
                    tile_w16_any(mr, (const float *)x + (size_t)m * ldx + k0, ldx,
                                 (const uint32_t *)(pack + (size_t)p * pstride), kb, c, ldc, load_c);
                else if (mode == MUL_BF16)
                    tile_bf16_any(mr, (const uint16_t *)x + (size_t)m * ldx + k0, ldx,
                                  (const uint16_t *)(pack + (size_t)p * pstride), kp, c, ldc, load_c);
                else
                    tile_any(mr, (const float *)x + (size_t)m * ldx + k0, ldx, pack + (size_t)p * pstride, kb,
                             c, ldc, load_c);
                if (nr < NR)
                    for (int r = 0; r < mr; r++) memcpy(ym + (size_t)r * N, buf + r * NR, sizeof(float) * (size_t)nr);
            }
        }
    }
}

/* The first k-block of rows [n0, n1) asked for at once, so that its cache misses overlap (the
 * packing prefetches each later k-block while packing the one before). */
static void prefetch_first(const void *W, size_t es, int K, int n0, int n1, int kc) {
    size_t bytes = (size_t)(kc < K ? kc : K) * es;
    for (int n = n0; n < n1; n++) {
        const char *row = (const char *)W + (size_t)n * K * es;
        for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T1);
    }
}

/* ---- weights repacked at load (TKR_LAYOUT_PAIR_PANELS, 64-row panels) -------------------- */

/* The k-block [k0, k0 + kc) of the panels holding rows [nb, ne) of a pair-panel weight: one
 * contiguous run of each panel, panels kp * 256 bytes apart. */
static next_block next_panels(const tkr_tensor *w, int K, int nb, int ne, int k0, int kc) {
    next_block nx = {NULL, 0, 0, 0};
    if (k0 >= K || ne <= nb) return nx;
    size_t kp = (size_t)(K + 1) / 2, panel = kp * NR * 4;
    nx.base = (const char *)w->data + (size_t)(nb / NR) * panel + (size_t)(k0 / 2) * NR * 4;
    nx.stride = panel;
    nx.bytes = (size_t)((K - k0 < kc ? K - k0 : kc) + 1) / 2 * NR * 4;
    nx.rows = (ne - nb + NR - 1) / NR;
    return nx;
}

/* Rows [n0, n1) (n0 a multiple of 64) against a weight packed at load: the tile reads the
 * panels in place. Rows go in groups of at most GROUP_TILES tiles (192 rows), each group through
 * every k-block (KC) before the next group, so the group's outputs (at most 192 x 256 floats)
 * stay in L2 between k-blocks; all M rows a k-block at a time would reload them from L3 for each
 * of the 35 k-blocks of the down projection (2 MB at 2048 rows). The weights are read once per
 * group (once for a prompt of <= 192 tokens); the next k-block (or the next group's or task's
 * first) is prefetched meanwhile. The tiles and chains are the ones of the per-call packing (the
 * same bits). */
static void block_prepacked(const void *x, size_t ldx, int mode, int M, int K, const tkr_tensor *w,
                            int n0, int n1, float *y, int N, int pf_n0, int pf_n1) {
    size_t pstride = (size_t)(K + 1) / 2 * NR; /* 32-bit pairs per panel */
    const uint32_t *panels = (const uint32_t *)w->data + (size_t)(n0 / NR) * pstride;
    size_t x_elem = mode == MUL_BF16 ? sizeof(uint16_t) : sizeof(float);
    int tiles = (M + MR - 1) / MR, groups = (tiles + GROUP_TILES - 1) / GROUP_TILES;
    int rows = (tiles + groups - 1) / groups * MR; /* rows a group */
    for (int g0 = 0; g0 < M; g0 += rows) {
        int gm = M - g0 < rows ? M - g0 : rows;
        const void *xg = (const char *)x + (size_t)g0 * ldx * x_elem;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kb = K - k0 < KC ? K - k0 : KC;
            next_block nx = k0 + kb < K    ? next_panels(w, K, n0, n1, k0 + kb, KC)
                            : g0 + gm < M ? next_panels(w, K, n0, n1, 0, KC)
                                          : next_panels(w, K, pf_n0, pf_n1, 0, KC);
            multiply_block(xg, ldx, mode, gm, n0, n1, k0, kb, (const float *)(panels + (size_t)(k0 / 2) * NR),
                           pstride, y + (size_t)g0 * N, N, nx);
        }
    }
}

void tkr_linear_pack_pairs_avx512(const uint16_t *W, int K, int n0, int nr, uint32_t *dst) {
    pack_block_bf16(W, K, n0, nr, 0, K, dst);
}

void tkr_linear_block_avx512(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                             float *y, int N, float *pack, int pf_n0, int pf_n1) {
    if (K == 0) { /* an empty sum: every chain is +0 */
        for (int m = 0; m < M; m++) memset(y + (size_t)m * N + n0, 0, sizeof(float) * (size_t)(n1 - n0));
        return;
    }
    if (w->layout == TKR_LAYOUT_PAIR_PANELS) {
        block_prepacked(x, (size_t)K, MUL_W16, M, K, w, n0, n1, y, N, pf_n0, pf_n1);
        return;
    }
    bool small = (size_t)M * (size_t)K <= SMALL_X;
    int kc = small && M > MR ? K : KC;        /* k-block */
    int nc = small ? NR : n1 - n0;            /* columns packed at once */
    size_t es = w->dtype == TKR_DT_F32 ? 4 : 2;
    for (int nb = n0; nb < n1; nb += nc) {
        int ne = n1 - nb < nc ? n1 : nb + nc;
        if (nb == n0) prefetch_first(w->data, es, K, nb, ne, kc);
        for (int k0 = 0; k0 < K; k0 += kc) {
            int kb = K - k0 < kc ? K - k0 : kc;
            /* one instantiation of the packing loop per dtype so the loads inline; BF16 stays
             * raw (pairs), widened in the tile */
            int mode = MUL_F32;
            switch (w->dtype) {
            case TKR_DT_F16: pack_block(TKR_DT_F16, w->data, K, nb, ne - nb, k0, kb, pack); break;
            case TKR_DT_BF16:
                pack_block_bf16((const uint16_t *)w->data, K, nb, ne - nb, k0, kb, (uint32_t *)pack);
                mode = MUL_W16;
                break;
            default: pack_block(TKR_DT_F32, w->data, K, nb, ne - nb, k0, kb, pack); break;
            }
            size_t pstride = (size_t)(mode == MUL_W16 ? (kb + 1) / 2 : kb) * NR;
            multiply_block(x, (size_t)K, mode, M, nb, ne, k0, kb, pack, pstride, y, N,
                           after(w, K, nb, ne, n1, nc, k0 + kb, kc, pf_n0, pf_n1));
        }
    }
}

/* ---- fast mode: bf16 pairs ------------------------------------------------------------- */

/* pack[p][k/2][64] (32-bit pairs) = (W[n, k0 + 2i], W[n, k0 + 2i + 1]) for n = n0 + 64 p + j,
 * zero past nr rows and past K (an odd K's last pair). kb: k values (even unless it ends at K). */
static void pack_block_bf16(const uint16_t *W, int K, int n0, int nr, int k0, int kb, uint32_t *pack) {
    int panels = (nr + NR - 1) / NR, kp = (kb + 1) / 2;
    for (int p = 0; p < panels; p++) {
        uint32_t *dst = pack + (size_t)p * kp * NR; /* [kp][64] */
        for (int g = 0; g < NR / 16; g++) {
            int j0 = p * NR + g * 16;
            int rows = nr - j0 < 16 ? (nr - j0 > 0 ? nr - j0 : 0) : 16;
            int i2 = 0; /* pair index */
            if (rows == 16) {
                for (; 2 * (i2 + 16) <= kb; i2 += 16) {
                    __m512 r[16];
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) /* one line a row per step */
                        _mm_prefetch((const char *)(W + (size_t)(n0 + j0 + i) * K + (size_t)(k0 + 2 * i2)) + PF_AHEAD, _MM_HINT_T0);
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++)
                        r[i] = _mm512_loadu_ps((const void *)(W + (size_t)(n0 + j0 + i) * K + (size_t)(k0 + 2 * i2)));
                    transpose16(r);
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) _mm512_store_ps((void *)(dst + (size_t)(i2 + i) * NR + g * 16), r[i]);
                }
            }
            for (; i2 < kp; i2++)
                for (int i = 0; i < 16; i++) {
                    uint32_t lo = 0, hi = 0;
                    if (i < rows) {
                        const uint16_t *row = W + (size_t)(n0 + j0 + i) * K + k0;
                        lo = row[2 * i2];
                        if (2 * i2 + 1 < kb) hi = row[2 * i2 + 1];
                    }
                    dst[(size_t)i2 * NR + g * 16 + i] = lo | hi << 16;
                }
        }
    }
}

void tkr_linear_to_bf16_avx512(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(out + i), (__m512i)b);
    }
    for (; i < n; i += 16) { /* the tail through the same conversion, masked */
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, x + i));
        _mm256_mask_storeu_epi16((void *)(out + i), mk, (__m256i)b);
    }
}

void tkr_linear_block_avx512_bf16(const uint16_t *xb, size_t ldx, int M, int K, const tkr_tensor *w,
                                  int n0, int n1, float *y, int N, float *pack, int pf_n0, int pf_n1) {
    if (K == 0) {
        for (int m = 0; m < M; m++) memset(y + (size_t)m * N + n0, 0, sizeof(float) * (size_t)(n1 - n0));
        return;
    }
    if (w->layout == TKR_LAYOUT_PAIR_PANELS) {
        block_prepacked(xb, ldx, MUL_BF16, M, K, w, n0, n1, y, N, pf_n0, pf_n1);
        return;
    }
    bool small = (size_t)M * (size_t)K <= SMALL_X;
    int kc = small && M > MR ? K : KC;
    int nc = small ? NR : n1 - n0;
    for (int nb = n0; nb < n1; nb += nc) {
        int ne = n1 - nb < nc ? n1 : nb + nc;
        if (nb == n0) prefetch_first(w->data, 2, K, nb, ne, kc);
        for (int k0 = 0; k0 < K; k0 += kc) {
            int kb = K - k0 < kc ? K - k0 : kc;
            pack_block_bf16((const uint16_t *)w->data, K, nb, ne - nb, k0, kb, (uint32_t *)pack);
            multiply_block(xb, ldx, MUL_BF16, M, nb, ne, k0, kb, pack, (size_t)((kb + 1) / 2) * NR, y, N,
                           after(w, K, nb, ne, n1, nc, k0 + kb, kc, pf_n0, pf_n1));
        }
    }
}

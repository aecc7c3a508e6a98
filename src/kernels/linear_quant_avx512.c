/* linear_quant_avx512.c - AVX-512 VNNI micro-kernels of the quantized linear (linear_quant.c).
 *
 * A zmm register holds 4 consecutive quantized activations of 16 rows; vpdpbusd multiplies it
 * by 4 weights of one weight row broadcast from memory and adds the 4 products into each row's
 * int32 lane (x + 128 unsigned against signed Q8_0 weights, or signed x against the unsigned
 * 4- and 6-bit levels; the accumulators start from the correction, see tkr_lq_fmt). A tile is NR weight rows x MV register rows (16
 * rows each): per step MV loads feed NR x MV vpdpbusd, and each weight dword is loaded once per
 * tile. After each group (32 values, 16 for Q6_K) the exact int32 sums get the per-group float
 * update of tkr_lq_fmt with one fma per lane, the same operation the portable version does with
 * fmaf. Built with -mavx512f/bw/vl/dq/vnni (Makefile); chosen when tkr_kctx.avx512_vnni. */
#include "kernels/kernels_impl.h"

#include <immintrin.h>
#include <string.h>

#define VROWS 16

static inline int32_t ld32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The tile: out[j][v * 16 + r] for weight rows n0 + j (j < nr; rows past nr repeat the last
 * one and are dropped) and activation rows of row groups rg .. rg + MV - 1. */
static inline __attribute__((always_inline)) void tile(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg,
                                                        const tkr_lq_panel *P, int n0, int nr, int g0, int g1,
                                                        float *out, const int NR, const int MV, const int STEPS,
                                                        const int HAS_MIN, const int WU) {
    const int K = f->K, G = f->G;
    const uint8_t *xq = X->q + (size_t)rg * K * VROWS;
    const float *dx = X->dx + (size_t)rg * G * VROWS;
    const float *xm = HAS_MIN ? X->xmin + (size_t)rg * G * VROWS : NULL;
    const int32_t *xc = WU ? X->xc + (size_t)rg * G * VROWS : NULL;
    const size_t xstride = (size_t)K * VROWS, gstride = (size_t)G * VROWS; /* next row group */
    const int8_t *wr[8];
    const float *dw[8], *wmin[8];
    const int32_t *corr[8];
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) {
        int n = n0 + (j < nr ? j : nr - 1);
        wr[j] = P->w + (size_t)n * K;
        dw[j] = P->dw + (size_t)n * G;
        corr[j] = P->corr + (size_t)n * G;
        wmin[j] = HAS_MIN ? P->wmin + (size_t)n * G : NULL;
    }
    __m512 facc[8][2];
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++)
#pragma GCC unroll 2
        for (int v = 0; v < MV; v++)
            facc[j][v] = g0 ? _mm512_loadu_ps(out + (size_t)j * MV * VROWS + v * VROWS) : _mm512_setzero_ps();
    for (int g = g0; g < g1; g++) {
        __m512i iacc[8][2], c0[2]; /* start from the correction: the sums come out exact */
#pragma GCC unroll 2
        for (int v = 0; v < MV; v++)
            c0[v] = WU ? _mm512_load_si512((const void *)(xc + v * gstride + (size_t)g * VROWS)) : _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) {
            const __m512i c = WU ? _mm512_setzero_si512() : _mm512_set1_epi32(-corr[j][g]);
#pragma GCC unroll 2
            for (int v = 0; v < MV; v++) iacc[j][v] = WU ? c0[v] : c;
        }
#pragma GCC unroll 8
        for (int s = 0; s < STEPS; s++) {
            const int t = g * STEPS + s;
            __m512i xv[2];
#pragma GCC unroll 2
            for (int v = 0; v < MV; v++) xv[v] = _mm512_load_si512((const void *)(xq + v * xstride + (size_t)t * 64));
#pragma GCC unroll 8
            for (int j = 0; j < NR; j++) {
                const __m512i wb = _mm512_set1_epi32(ld32(wr[j] + 4 * t));
#pragma GCC unroll 2
                for (int v = 0; v < MV; v++)
                    iacc[j][v] = WU ? _mm512_dpbusd_epi32(iacc[j][v], wb, xv[v]) : _mm512_dpbusd_epi32(iacc[j][v], xv[v], wb);
            }
        }
        __m512 dxv[2], xmv[2];
#pragma GCC unroll 2
        for (int v = 0; v < MV; v++) {
            dxv[v] = _mm512_load_ps(dx + v * gstride + (size_t)g * VROWS);
            if (HAS_MIN) xmv[v] = _mm512_load_ps(xm + v * gstride + (size_t)g * VROWS);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) {
            const __m512 s = _mm512_set1_ps(dw[j][g]);
#pragma GCC unroll 2
            for (int v = 0; v < MV; v++) {
                __m512 fi = _mm512_cvtepi32_ps(iacc[j][v]);
                facc[j][v] = _mm512_fmadd_ps(fi, _mm512_mul_ps(dxv[v], s), facc[j][v]);
            }
            if (HAS_MIN) {
                const __m512 mn = _mm512_set1_ps(-wmin[j][g]);
#pragma GCC unroll 2
                for (int v = 0; v < MV; v++) facc[j][v] = _mm512_fmadd_ps(mn, xmv[v], facc[j][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++)
#pragma GCC unroll 2
        for (int v = 0; v < MV; v++) _mm512_storeu_ps(out + (size_t)j * MV * VROWS + v * VROWS, facc[j][v]);
}

#define NR_512 4

#define DEF_KERNEL(name, MV, STEPS, HAS_MIN, WU)                                                    \
    static void name(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0,  \
                     int nr, int g0, int g1, float *out) {                                          \
        tile(f, X, rg, P, n0, nr, g0, g1, out, NR_512, MV, STEPS, HAS_MIN, WU);                      \
    }

DEF_KERNEL(k32s_1, 1, 8, 0, 0)
DEF_KERNEL(k32s_2, 2, 8, 0, 0)
DEF_KERNEL(k32u_1, 1, 8, 0, 1)
DEF_KERNEL(k32u_2, 2, 8, 0, 1)
DEF_KERNEL(k32m_1, 1, 8, 1, 1)
DEF_KERNEL(k32m_2, 2, 8, 1, 1)
DEF_KERNEL(k16_1, 1, 4, 0, 1)
DEF_KERNEL(k16_2, 2, 4, 0, 1)

/* Kernels for weight type f->wt (the only field read). */
bool tkr_lq_select_avx512(const tkr_lq_fmt *f, tkr_lq_isa *isa) {
    isa->RW = VROWS;
    isa->NR = NR_512;
    isa->xoff = 128;
    isa->wunsigned = f->wt != TKR_DT_Q8_0; /* 4- and 6-bit levels are unsigned as stored */
    switch (f->wt) {
    case TKR_DT_Q8_0: isa->k1 = k32s_1; isa->k2 = k32s_2; return true;
    case TKR_DT_Q4_0: isa->k1 = k32u_1; isa->k2 = k32u_2; return true;
    case TKR_DT_Q4_K: isa->k1 = k32m_1; isa->k2 = k32m_2; return true;
    case TKR_DT_Q6_K: isa->k1 = k16_1; isa->k2 = k16_2; return true;
    default: return false;
    }
}

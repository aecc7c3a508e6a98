/* linear_quant_avx2_tile.h - the AVX2 micro-kernel of the quantized linear, included by
 * linear_quant_avx2.c once per way of multiplying bytes (LQ_MODE) so that the AVX-VNNI copy can
 * be compiled for that extension alone (LQ_MODE 0: vpdpbusd; 1: vpmaddubsw + vpmaddwd, weights
 * of at most 6 bits; 2: the same with the sign trick for 8-bit weights against signed
 * activations, xoff 0). LQ_NAME(x) names the functions of this copy.
 *
 * A ymm register holds 4 consecutive quantized activations of 8 rows; 4 weight bytes of one
 * weight row are broadcast against it. Tile: NR2 weight rows x 8 rows; after each group the
 * exact int32 sums get the float update of tkr_lq_fmt (one fma per lane, as fmaf). */

/* acc + the 4-byte dot products of u (unsigned) and s (signed) in each 32-bit lane. */
static inline __attribute__((always_inline)) __m256i LQ_NAME(dot)(__m256i acc, __m256i u, __m256i s) {
#if LQ_MODE == 0
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#elif LQ_MODE == 1
    const __m256i p = _mm256_maddubs_epi16(u, s); /* |u| <= 63, |s| <= 127: no saturation */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#else /* Q8_0: u holds signed x (xoff 0), s the signed weights */
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(s), _mm256_sign_epi8(u, s));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

static inline __attribute__((always_inline)) void LQ_NAME(tile)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg,
                                                                 const tkr_lq_panel *P, int n0, int nr, int g0,
                                                                 int g1, float *out, const int STEPS,
                                                                 const int HAS_MIN, const int WU) {
    const int K = f->K, G = f->G;
    const uint8_t *xq = X->q + (size_t)rg * K * 8;
    const float *dx = X->dx + (size_t)rg * G * 8;
    const float *xm = HAS_MIN ? X->xmin + (size_t)rg * G * 8 : NULL;
    const int32_t *xc = WU ? X->xc + (size_t)rg * G * 8 : NULL;
    const int8_t *wr[NR2];
    const float *dw[NR2], *wmin[NR2];
    const int32_t *corr[NR2];
#pragma GCC unroll 8
    for (int j = 0; j < NR2; j++) {
        int n = n0 + (j < nr ? j : nr - 1);
        wr[j] = P->w + (size_t)n * K;
        dw[j] = P->dw + (size_t)n * G;
        corr[j] = P->corr + (size_t)n * G;
        wmin[j] = HAS_MIN ? P->wmin + (size_t)n * G : NULL;
    }
    __m256 facc[NR2];
#pragma GCC unroll 8
    for (int j = 0; j < NR2; j++) facc[j] = g0 ? _mm256_loadu_ps(out + (size_t)j * 8) : _mm256_setzero_ps();
    for (int g = g0; g < g1; g++) {
        __m256i iacc[NR2];
        /* start from the correction: the sums come out exact */
        const __m256i c0 = WU ? _mm256_load_si256((const __m256i *)(xc + (size_t)g * 8)) : _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < NR2; j++) iacc[j] = WU ? c0 : _mm256_set1_epi32(-corr[j][g]);
#pragma GCC unroll 8
        for (int s = 0; s < STEPS; s++) {
            const int t = g * STEPS + s;
            const __m256i xv = _mm256_load_si256((const __m256i *)(xq + (size_t)t * 32));
#pragma GCC unroll 8
            for (int j = 0; j < NR2; j++) {
                int32_t wv;
                memcpy(&wv, wr[j] + 4 * t, 4);
                iacc[j] = WU ? LQ_NAME(dot)(iacc[j], _mm256_set1_epi32(wv), xv)
                             : LQ_NAME(dot)(iacc[j], xv, _mm256_set1_epi32(wv));
            }
        }
        const __m256 dxv = _mm256_load_ps(dx + (size_t)g * 8);
#pragma GCC unroll 8
        for (int j = 0; j < NR2; j++) {
            const __m256 fi = _mm256_cvtepi32_ps(iacc[j]);
            facc[j] = _mm256_fmadd_ps(fi, _mm256_mul_ps(dxv, _mm256_set1_ps(dw[j][g])), facc[j]);
            if (HAS_MIN)
                facc[j] = _mm256_fmadd_ps(_mm256_set1_ps(-wmin[j][g]), _mm256_load_ps(xm + (size_t)g * 8), facc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR2; j++) _mm256_storeu_ps(out + (size_t)j * 8, facc[j]);
}

#if LQ_MODE != 1 /* signed weights (Q8_0): vpdpbusd, or the sign trick */
static void LQ_NAME(k32s)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                          int g0, int g1, float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, g0, g1, out, 8, 0, 0);
}
#endif
#if LQ_MODE != 2 /* unsigned 4- and 6-bit levels */
static void LQ_NAME(k32u)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                          int g0, int g1, float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, g0, g1, out, 8, 0, 1);
}
static void LQ_NAME(k32m)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                          int g0, int g1, float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, g0, g1, out, 8, 1, 1);
}
static void LQ_NAME(k16)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                         int g0, int g1, float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, g0, g1, out, 4, 0, 1);
}
#endif

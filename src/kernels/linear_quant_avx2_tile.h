/* linear_quant_avx2_tile.h - the AVX2 micro-kernel of the quantized linear, included by
 * linear_quant_avx2.c once per way of multiplying bytes (LQ_MODE) so that the AVX-VNNI copy can
 * be compiled for that extension alone (LQ_MODE 0: vpdpbusd; 1: vpmaddubsw + vpmaddwd, weights
 * of at most 6 bits; 2: the same with the sign trick for 8-bit weights against signed
 * activations, xoff 0). LQ_NAME(x) names the functions of this copy.
 *
 * A ymm register holds 4 consecutive quantized activations of 8 rows; 4 weight bytes of one
 * weight row are broadcast against it. Tile: NR2 weight rows x 8 rows; after each group the
 * exact int32 sums get the float update of tkr_lq_fmt (one fma per lane, as fmaf). */

static inline __attribute__((always_inline)) __m256i LQ_NAME(dot)(__m256i acc, __m256i x, __m256i w) {
#if LQ_MODE == 0
    return _mm256_dpbusd_avx_epi32(acc, x, w);
#elif LQ_MODE == 1
    const __m256i p = _mm256_maddubs_epi16(x, w);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#else
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

static inline __attribute__((always_inline)) void LQ_NAME(tile)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg,
                                                                 const tkr_lq_panel *P, int n0, int nr,
                                                                 float *out, const int STEPS, const int HAS_MIN) {
    const int K = f->K, G = f->G;
    const uint8_t *xq = X->q + (size_t)rg * K * 8;
    const float *dx = X->dx + (size_t)rg * G * 8;
    const float *xm = HAS_MIN ? X->xmin + (size_t)rg * G * 8 : NULL;
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
    for (int j = 0; j < NR2; j++) facc[j] = _mm256_setzero_ps();
    for (int g = 0; g < G; g++) {
        __m256i iacc[NR2];
#pragma GCC unroll 8
        for (int j = 0; j < NR2; j++) iacc[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < STEPS; s++) {
            const int t = g * STEPS + s;
            const __m256i xv = _mm256_load_si256((const __m256i *)(xq + (size_t)t * 32));
#pragma GCC unroll 8
            for (int j = 0; j < NR2; j++) {
                int32_t wv;
                memcpy(&wv, wr[j] + 4 * t, 4);
                iacc[j] = LQ_NAME(dot)(iacc[j], xv, _mm256_set1_epi32(wv));
            }
        }
        const __m256 dxv = _mm256_load_ps(dx + (size_t)g * 8);
#pragma GCC unroll 8
        for (int j = 0; j < NR2; j++) {
            const __m256 fi = _mm256_cvtepi32_ps(_mm256_sub_epi32(iacc[j], _mm256_set1_epi32(corr[j][g])));
            facc[j] = _mm256_fmadd_ps(fi, _mm256_mul_ps(dxv, _mm256_set1_ps(dw[j][g])), facc[j]);
            if (HAS_MIN)
                facc[j] = _mm256_fmadd_ps(_mm256_set1_ps(-wmin[j][g]), _mm256_load_ps(xm + (size_t)g * 8), facc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR2; j++) _mm256_storeu_ps(out + (size_t)j * 8, facc[j]);
}

static void LQ_NAME(k32)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                         float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, out, 8, 0);
}
#if LQ_MODE != 2 /* the sign trick is for Q8_0 only */
static void LQ_NAME(k32m)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                          float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, out, 8, 1);
}
static void LQ_NAME(k16)(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P, int n0, int nr,
                         float *out) {
    LQ_NAME(tile)(f, X, rg, P, n0, nr, out, 4, 0);
}
#endif

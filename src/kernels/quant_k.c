/* quant_k.c - the 256-value "K" formats: ggml's reference quantizers for Q4_K and Q6_K (what
 * llama-quantize runs when it is given no importance matrix) and their dequantizers.
 *
 * Written from the format description and ggml's arithmetic (ggml-quants.c), keeping its
 * operation order exactly, so the bytes equal ggml's (tests/unit/test_quant.c compares against
 * vectors from ggml itself). Contraction is off as in quant.c. */
#include "kernels/quant_impl.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GROUP_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Asymmetric n-value quantization to [0, nmax] with a (scale, min) pair, as ggml's
 * make_qkx2_quants: a first guess from the range, then nstep + 1 scales around it, each refit by
 * weighted least squares for scale and min; the one of least weighted squared error wins.
 * L[n]: the levels; Laux[n]: scratch; *the_min = -min. Returns the scale. */
static float fit_scale_min(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                           float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = tkr_q_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = tkr_q_nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric n-value quantization to [-nmax, nmax - 1] (stored + nmax), as ggml's
 * make_qx_quants with rmse_type 1 and no importance weights: weights x^2, the scale refit by
 * least squares, then 18 nearby scales tried and the best kept. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = tkr_q_nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = tkr_q_nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = tkr_q_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q4_K: per 256 values, eight 32-value groups each get a (scale, min) from fit_scale_min with
 * weights av_x + |x|; the scales and mins are then quantized to 6 bits against two fp16
 * super-scales, and the values re-quantized against the rounded scales. */
void tkr_quantize_row_q4_K_ref(const float *x, tkr_block_q4_K *y, int64_t k) {
    uint8_t L[TKR_QK_K], Laux[32];
    float weights[32], mins[TKR_QK_K / 32], scales[TKR_QK_K / 32];
    for (int64_t i = 0; i < k / TKR_QK_K; i++) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < TKR_QK_K / 32; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = fit_scale_min(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                      -1.f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        memset(y[i].scales, 0, sizeof y[i].scales);
        for (int j = 0; j < TKR_QK_K / 32; j++) {
            uint8_t ls = (uint8_t)tkr_q_nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)tkr_q_nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y[i].scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y[i].d = tkr_f32_to_f16(max_scale / 63.f);
        y[i].dmin = tkr_f32_to_f16(max_min / 63.f);
        for (int j = 0; j < TKR_QK_K / 32; j++) {
            uint8_t sc, m;
            tkr_q4k_scale_min(j, y[i].scales, &sc, &m);
            const float d = tkr_f16_to_f32(y[i].d) * sc;
            if (!d) continue;
            const float dm = tkr_f16_to_f32(y[i].dmin) * m;
            for (int ii = 0; ii < 32; ii++) {
                int l = tkr_q_nearest_int((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = (uint8_t)imax(0, imin(15, l));
            }
        }
        uint8_t *q = y[i].qs;
        for (int j = 0; j < TKR_QK_K; j += 64) {
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += TKR_QK_K;
    }
}

/* Q6_K: per 256 values, sixteen 16-value groups each get a symmetric scale (fit_scale_sym,
 * 6-bit levels); the scales are quantized to int8 against one fp16 super-scale and the values
 * re-quantized against the rounded scales. Low 4 bits in ql, high 2 bits in qh. */
void tkr_quantize_row_q6_K_ref(const float *x, tkr_block_q6_K *y, int64_t k) {
    int8_t L[TKR_QK_K];
    float scales[TKR_QK_K / 16];
    for (int64_t i = 0; i < k / TKR_QK_K; i++) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < TKR_QK_K / 16; ib++) {
            const float scale = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_EPS) {
            memset(&y[i], 0, sizeof(tkr_block_q6_K));
            y[i].d = tkr_f32_to_f16(0.f);
            x += TKR_QK_K;
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = tkr_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < TKR_QK_K / 16; ib++)
            y[i].scales[ib] = (int8_t)imin(127, tkr_q_nearest_int(iscale * scales[ib]));
        for (int j = 0; j < TKR_QK_K / 16; j++) {
            float d = tkr_f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = tkr_q_nearest_int(x[16 * j + ii] / d);
                l = imax(-32, imin(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < TKR_QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)(((uint8_t)L[j + l] >> 4) | (((uint8_t)L[j + l + 32] >> 4) << 2) |
                                  (((uint8_t)L[j + l + 64] >> 4) << 4) |
                                  (((uint8_t)L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += TKR_QK_K;
    }
}

/* ggml's dequantize_row_q4_K: value = d * scale * q - dmin * min per 32-value group. The
 * source may be only 2-byte aligned or less (a view into a file): blocks are copied out. */
void tkr_dequantize_row_q4_K(const tkr_block_q4_K *src, float *y, int64_t k) {
    const uint8_t *p = (const uint8_t *)src;
    for (int64_t i = 0; i < k / TKR_QK_K; i++) {
        tkr_block_q4_K b;
        memcpy(&b, p + (size_t)i * sizeof b, sizeof b);
        const uint8_t *q = b.qs;
        const float d = tkr_f16_to_f32(b.d), min = tkr_f16_to_f32(b.dmin);
        int is = 0;
        for (int j = 0; j < TKR_QK_K; j += 64) {
            uint8_t sc, m;
            tkr_q4k_scale_min(is + 0, b.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            tkr_q4k_scale_min(is + 1, b.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

/* ggml's dequantize_row_q6_K: value = d * scale * (q - 32) per 16-value group. */
void tkr_dequantize_row_q6_K(const tkr_block_q6_K *src, float *y, int64_t k) {
    const uint8_t *p = (const uint8_t *)src;
    for (int64_t i = 0; i < k / TKR_QK_K; i++) {
        tkr_block_q6_K b;
        memcpy(&b, p + (size_t)i * sizeof b, sizeof b);
        const float d = tkr_f16_to_f32(b.d);
        const uint8_t *ql = b.ql, *qh = b.qh;
        const int8_t *sc = b.scales;
        for (int n = 0; n < TKR_QK_K; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

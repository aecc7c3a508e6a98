/* quant.c - ggml-compatible block formats: the 32-value formats (Q8_0, Q4_0), the activation
 * quantizers and the per-type dispatch of quant.h. The 256-value K formats are in quant_k.c.
 *
 * Bit-exactness with ggml: every expression keeps ggml's operation order, and floating-point
 * contraction is off (C11 mode in GCC; the pragma below for clang), since ggml-base is compiled
 * without FMA on x86-64 and a fused multiply-add rounds differently. Float-to-int conversions
 * that C leaves undefined out of range go through tkr_q_trunc_i32, which gives what the x86
 * conversion instructions give (INT32_MIN), so odd inputs (inf, NaN) never hit undefined
 * behaviour. */
#include "kernels/quant_impl.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static float fp16(uint16_t h) { return tkr_f16_to_f32(h); }

/* ggml's quantize_row_q8_0_ref: scale = amax / 127, values roundf(x / scale). */
static void quantize_q8_0(const float *x, tkr_block_q8_0 *y, int64_t k) {
    for (int64_t i = 0; i < k / TKR_QK8_0; i++) {
        float amax = 0.0f;
        for (int j = 0; j < TKR_QK8_0; j++) {
            float v = fabsf(x[i * TKR_QK8_0 + j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tkr_f32_to_f16(d);
        for (int j = 0; j < TKR_QK8_0; j++) {
            const float x0 = x[i * TKR_QK8_0 + j] * id;
            y[i].qs[j] = (int8_t)tkr_q_trunc_i32(roundf(x0));
        }
    }
}

/* ggml's quantize_row_q4_0_ref: scale = (signed max) / -8, values (int8)(x / scale + 8.5)
 * clamped to 15; the first 16 values go in the low nibbles, the next 16 in the high ones. */
static void quantize_q4_0(const float *x, tkr_block_q4_0 *y, int64_t k) {
    const int qk = TKR_QK4_0;
    for (int64_t i = 0; i < k / qk; i++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tkr_f32_to_f16(d);
        for (int j = 0; j < qk / 2; j++) {
            const float x0 = x[i * qk + j] * id;
            const float x1 = x[i * qk + qk / 2 + j] * id;
            int8_t c0 = (int8_t)tkr_q_trunc_i32(x0 + 8.5f);
            int8_t c1 = (int8_t)tkr_q_trunc_i32(x1 + 8.5f);
            const uint8_t xi0 = (uint8_t)(c0 < 15 ? c0 : 15);
            const uint8_t xi1 = (uint8_t)(c1 < 15 ? c1 : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void tkr_quantize_row_q8_0(const float *x, tkr_block_q8_0 *y, int64_t k) { quantize_q8_0(x, y, k); }

/* ggml's quantize_row_q8_K_ref: scale = (signed max) / -127 per 256 values, values
 * nearest_int(x * -127 / max) capped at 127, plus the sums of each 16 values. */
void tkr_quantize_row_q8_K(const float *x, tkr_block_q8_K *y, int64_t k) {
    for (int64_t i = 0; i < k / TKR_QK_K; i++) {
        float max = 0, amax = 0;
        for (int j = 0; j < TKR_QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            y[i].d = 0;
            memset(y[i].qs, 0, TKR_QK_K);
            /* ggml leaves bsums as they were; ours are defined (all values are zero). */
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            x += TKR_QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < TKR_QK_K; j++) {
            int v = tkr_q_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < TKR_QK_K / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += TKR_QK_K;
    }
}

void tkr_quantize_row(tkr_dtype t, const float *x, void *dst, int64_t k) {
    uint8_t *p = dst;
    switch (t) {
    case TKR_DT_F32: memcpy(dst, x, (size_t)k * 4); return;
    case TKR_DT_F16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h = tkr_f32_to_f16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    case TKR_DT_BF16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h = tkr_f32_to_bf16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    /* dst may be unaligned (a view into a file being written): one block at a time through an
     * aligned local copy. Blocks are independent, so this equals quantizing the whole row. */
    case TKR_DT_Q8_0:
    case TKR_DT_Q4_0:
    case TKR_DT_Q4_K:
    case TKR_DT_Q6_K: {
        const int be = tkr_dtype_block_elems(t);
        const size_t bb = tkr_dtype_block_bytes(t);
        union {
            tkr_block_q8_0 q8_0;
            tkr_block_q4_0 q4_0;
            tkr_block_q4_K q4_K;
            tkr_block_q6_K q6_K;
        } blk;
        for (int64_t b = 0; b < k / be; b++) {
            const float *xb = x + b * be;
            if (t == TKR_DT_Q8_0) quantize_q8_0(xb, &blk.q8_0, be);
            else if (t == TKR_DT_Q4_0) quantize_q4_0(xb, &blk.q4_0, be);
            else if (t == TKR_DT_Q4_K) tkr_quantize_row_q4_K_ref(xb, &blk.q4_K, be);
            else tkr_quantize_row_q6_K_ref(xb, &blk.q6_K, be);
            memcpy(p + (size_t)b * bb, &blk, bb);
        }
        return;
    }
    default: return;
    }
}

void tkr_dequantize_row(tkr_dtype t, const void *src, float *dst, int64_t k) {
    const uint8_t *p = src;
    switch (t) {
    case TKR_DT_F32: memcpy(dst, src, (size_t)k * 4); return;
    case TKR_DT_F16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = tkr_f16_to_f32(h);
        }
        return;
    case TKR_DT_BF16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = tkr_bf16_to_f32(h);
        }
        return;
    case TKR_DT_Q8_0:
        for (int64_t b = 0; b < k / TKR_QK8_0; b++) {
            tkr_block_q8_0 blk;
            memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
            float d = fp16(blk.d);
            for (int j = 0; j < TKR_QK8_0; j++) dst[b * TKR_QK8_0 + j] = (float)blk.qs[j] * d;
        }
        return;
    case TKR_DT_Q4_0:
        for (int64_t b = 0; b < k / TKR_QK4_0; b++) {
            tkr_block_q4_0 blk;
            memcpy(&blk, p + (size_t)b * sizeof blk, sizeof blk);
            float d = fp16(blk.d);
            for (int j = 0; j < TKR_QK4_0 / 2; j++) {
                dst[b * TKR_QK4_0 + j] = (float)((blk.qs[j] & 0x0F) - 8) * d;
                dst[b * TKR_QK4_0 + j + TKR_QK4_0 / 2] = (float)((blk.qs[j] >> 4) - 8) * d;
            }
        }
        return;
    case TKR_DT_Q4_K: tkr_dequantize_row_q4_K(src, dst, k); return;
    case TKR_DT_Q6_K: tkr_dequantize_row_q6_K(src, dst, k); return;
    default: memset(dst, 0, sizeof(float) * (size_t)k); return;
    }
}

void tkr_dequantize_row_q8_K(const tkr_block_q8_K *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / TKR_QK_K; i++)
        for (int j = 0; j < TKR_QK_K; j++) *y++ = x[i].d * x[i].qs[j];
}

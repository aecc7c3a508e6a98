/* quant.c - ggml-compatible block formats: reference quantizers and dequantizers (quant.h).
 * (First step: the dequantizers of the 32-value formats; the K formats and the quantizers come
 * with the integer kernels.) */
#include "kernels/quant.h"
#include "kernels/kernels.h"

#include <string.h>

static float fp16(uint16_t h) { return tkr_f16_to_f32(h); }

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
    default:
        memset(dst, 0, sizeof(float) * (size_t)k);
        return;
    }
}

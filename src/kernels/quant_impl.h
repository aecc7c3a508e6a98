/* quant_impl.h - helpers shared by the block-format code (internal to src/kernels). */
#ifndef TKR_KERNELS_QUANT_IMPL_H
#define TKR_KERNELS_QUANT_IMPL_H

#include "kernels/quant.h"

#include <stdint.h>
#include <string.h>

/* ggml's nearest_int: round to nearest (ties to even) through the 1.5 * 2^23 magic number. Exact
 * for |f| < 2^22, the range ggml asserts; outside it this returns what ggml's returns. */
static inline int tkr_q_nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* (int32_t)f, truncating, with x86's answer (INT32_MIN) for NaN and out-of-range values
 * instead of undefined behaviour. */
static inline int32_t tkr_q_trunc_i32(float f) {
    if (f > -2147483648.0f && f < 2147483648.0f) return (int32_t)f;
    return INT32_MIN;
}

/* ggml's 6-bit packing of the eight (scale, min) pairs of a Q4_K block. */
static inline void tkr_q4k_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* quant_k.c: ggml's quantize_row_q4_K_ref / q6_K_ref and the K dequantizers. */
void tkr_quantize_row_q4_K_ref(const float *x, tkr_block_q4_K *y, int64_t k);
void tkr_quantize_row_q6_K_ref(const float *x, tkr_block_q6_K *y, int64_t k);
void tkr_dequantize_row_q4_K(const tkr_block_q4_K *x, float *y, int64_t k);
void tkr_dequantize_row_q6_K(const tkr_block_q6_K *x, float *y, int64_t k);
void tkr_dequantize_row_q8_K(const tkr_block_q8_K *x, float *y, int64_t k);

#endif

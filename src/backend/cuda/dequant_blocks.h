/* dequant_blocks.h - 8 consecutive values of a weight row, from its stored bytes, in float32:
 * the arithmetic the CUDA backend's dequantizing kernels run (cuda_quant.cu), written once for
 * both the device and the host, so that a plain C unit test (tests/unit/test_cuda_dequant.c,
 * which runs in CI without nvcc) checks it against tkr_dequantize_row (kernels/quant.c, ggml's
 * arithmetic) on every type. Plain C11 and CUDA C++; nothing else.
 *
 * Row layout: as io/tensor.h says (a quantized row of k values is k / block consecutive ggml
 * blocks; float types one value per element, little-endian). Every group of 8 values
 * [k0, k0 + 8) with k0 % 8 == 0 shares one scale in every type (the smallest scale group is
 * Q6_K's 16), so one call reads one block header. */
#ifndef TKR_CUDA_DEQUANT_BLOCKS_H
#define TKR_CUDA_DEQUANT_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define TKR_DQ_FN static __host__ __device__ __forceinline__
#else
#define TKR_DQ_FN static inline
#endif

/* Same values as tkr_dtype (io/tensor.h), kept here so the header stands alone. */
enum { TKR_DQ_F32 = 0, TKR_DQ_F16 = 1, TKR_DQ_BF16 = 2, TKR_DQ_Q8_0 = 3, TKR_DQ_Q4_0 = 4, TKR_DQ_Q4_K = 5,
       TKR_DQ_Q6_K = 6 };

TKR_DQ_FN float tkr_dq_bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    union {
        uint32_t u;
        float f;
    } v;
    v.u = u;
    return v.f;
#endif
}

TKR_DQ_FN uint16_t tkr_dq_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* IEEE half to float, exactly (subnormals, infinities and NaNs included). */
TKR_DQ_FN float tkr_dq_f16(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        return s ? -f : f;
    }
    if (e == 31) return tkr_dq_bits_f32(s | 0x7f800000u | (m << 13));
    return tkr_dq_bits_f32(s | ((e + 112u) << 23) | (m << 13));
}

/* Bytes per block and values per block of a type (1 value for the float types); 0 if unknown. */
TKR_DQ_FN int tkr_dq_block_bytes(int type) {
    switch (type) {
    case TKR_DQ_F32: return 4;
    case TKR_DQ_F16: case TKR_DQ_BF16: return 2;
    case TKR_DQ_Q8_0: return 34;
    case TKR_DQ_Q4_0: return 18;
    case TKR_DQ_Q4_K: return 144;
    case TKR_DQ_Q6_K: return 210;
    default: return 0;
    }
}
TKR_DQ_FN int tkr_dq_block_elems(int type) {
    switch (type) {
    case TKR_DQ_F32: case TKR_DQ_F16: case TKR_DQ_BF16: return 1;
    case TKR_DQ_Q8_0: case TKR_DQ_Q4_0: return 32;
    case TKR_DQ_Q4_K: case TKR_DQ_Q6_K: return 256;
    default: return 0;
    }
}

/* out[0..8) = values k0 .. k0 + 7 of a row stored as `type` at `row` (k0 % 8 == 0). Exactly
 * the float arithmetic of tkr_dequantize_row, operation for operation. */
TKR_DQ_FN void tkr_dq8(int type, const uint8_t *row, int k0, float *out) {
    switch (type) {
    case TKR_DQ_F32:
        for (int i = 0; i < 8; i++) {
            const uint8_t *p = row + (size_t)(k0 + i) * 4;
            out[i] = tkr_dq_bits_f32((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                                     ((uint32_t)p[3] << 24));
        }
        return;
    case TKR_DQ_F16:
        for (int i = 0; i < 8; i++) out[i] = tkr_dq_f16(tkr_dq_u16(row + (size_t)(k0 + i) * 2));
        return;
    case TKR_DQ_BF16:
        for (int i = 0; i < 8; i++) out[i] = tkr_dq_bits_f32((uint32_t)tkr_dq_u16(row + (size_t)(k0 + i) * 2) << 16);
        return;
    case TKR_DQ_Q8_0: {
        const uint8_t *b = row + (size_t)(k0 / 32) * 34;
        float d = tkr_dq_f16(tkr_dq_u16(b));
        const int8_t *qs = (const int8_t *)(b + 2) + k0 % 32;
        for (int i = 0; i < 8; i++) out[i] = (float)qs[i] * d;
        return;
    }
    case TKR_DQ_Q4_0: {
        const uint8_t *b = row + (size_t)(k0 / 32) * 18;
        float d = tkr_dq_f16(tkr_dq_u16(b));
        int j = k0 % 32;
        const uint8_t *qs = b + 2 + (j & 15);
        for (int i = 0; i < 8; i++) out[i] = (float)((j < 16 ? (qs[i] & 0x0F) : (qs[i] >> 4)) - 8) * d;
        return;
    }
    case TKR_DQ_Q4_K: {
        /* d, dmin (fp16), scales[12], qs[128]: 4 chunks of 64 values, each two 32-value groups
         * (low nibbles, then high nibbles of the same 32 bytes) */
        const uint8_t *b = row + (size_t)(k0 / 256) * 144;
        const float d = tkr_dq_f16(tkr_dq_u16(b)), min = tkr_dq_f16(tkr_dq_u16(b + 2));
        const uint8_t *sc = b + 4, *qs = b + 16;
        int e = k0 % 256, c = e / 64, w = e % 64, g = 2 * c + (w >= 32), l = w % 32;
        uint8_t s, m;
        if (g < 4) {
            s = sc[g] & 63;
            m = sc[g + 4] & 63;
        } else {
            s = (uint8_t)((sc[g + 4] & 0xF) | ((sc[g - 4] >> 6) << 4));
            m = (uint8_t)((sc[g + 4] >> 4) | ((sc[g] >> 6) << 4));
        }
        const float d1 = d * s, m1 = min * m;
        const uint8_t *q = qs + 32 * c + l;
        for (int i = 0; i < 8; i++) out[i] = d1 * (w < 32 ? (q[i] & 0xF) : (q[i] >> 4)) - m1;
        return;
    }
    case TKR_DQ_Q6_K: {
        /* ql[128], qh[64], scales[16] (int8), d (fp16): 2 halves of 128 values, each 4
         * quarters of 32 that share the same ql / qh bytes at different shifts */
        const uint8_t *b = row + (size_t)(k0 / 256) * 210;
        const float d = tkr_dq_f16(tkr_dq_u16(b + 208));
        int e = k0 % 256, n = e / 128, w = e % 128, qd = w / 32, l = w % 32;
        const uint8_t *ql = b + 64 * n + (qd & 1) * 32 + l, *qh = b + 128 + 32 * n + l;
        const int8_t sc = (int8_t)b[192 + 8 * n + l / 16 + 2 * qd];
        int lo_shift = (qd >> 1) * 4, hi_shift = 2 * qd;
        for (int i = 0; i < 8; i++) {
            const int8_t q = (int8_t)(((ql[i] >> lo_shift) & 0xF) | (((qh[i] >> hi_shift) & 3) << 4)) - 32;
            out[i] = d * sc * q;
        }
        return;
    }
    default:
        for (int i = 0; i < 8; i++) out[i] = 0.0f;
        return;
    }
}

#endif

/* quant.h - ggml-compatible block-quantized weights: layouts, quantizers, dequantizers.
 *
 * Each block layout below is byte-for-byte ggml's (ggml-common.h), so GGUF files written by
 * llama.cpp load in place and ours load in llama.cpp. The quantizers reproduce ggml's reference
 * quantizers (quantize_row_*_ref, which llama-quantize uses when no importance matrix is given)
 * bit for bit, including their rounding; tests/unit/test_quant.c checks that against vectors
 * produced by ggml itself.
 *
 * Activations are quantized on the fly for the integer matrix products (Q8_0 blocks for Q8_0 /
 * Q4_0 weights, Q8_K blocks for Q4_K / Q6_K weights), as ggml does.
 *
 * Shapes: a quantized row of k values (k a multiple of the block size) is k / QK blocks. */
#ifndef TKR_KERNELS_QUANT_H
#define TKR_KERNELS_QUANT_H

#include "io/tensor.h"

#include <stddef.h>
#include <stdint.h>

#define TKR_QK8_0 32
#define TKR_QK4_0 32
#define TKR_QK_K 256
#define TKR_K_SCALE_SIZE 12

typedef struct {
    uint16_t d;                 /* fp16 scale                          */
    int8_t qs[TKR_QK8_0];       /* values                              */
} tkr_block_q8_0;               /* 34 bytes                            */

typedef struct {
    uint16_t d;                 /* fp16 scale                          */
    uint8_t qs[TKR_QK4_0 / 2];  /* nibbles: low = i, high = i + 16     */
} tkr_block_q4_0;               /* 18 bytes                            */

typedef struct {
    uint16_t d;                 /* fp16 super-block scale for scales   */
    uint16_t dmin;              /* fp16 super-block scale for mins     */
    uint8_t scales[TKR_K_SCALE_SIZE]; /* 8 scales + 8 mins, 6 bits each */
    uint8_t qs[TKR_QK_K / 2];   /* 4-bit quants                        */
} tkr_block_q4_K;               /* 144 bytes                           */

typedef struct {
    uint8_t ql[TKR_QK_K / 2];   /* low 4 bits                          */
    uint8_t qh[TKR_QK_K / 4];   /* high 2 bits                         */
    int8_t scales[TKR_QK_K / 16]; /* 8-bit scales of 16-value groups   */
    uint16_t d;                 /* fp16 super-block scale              */
} tkr_block_q6_K;               /* 210 bytes                           */

typedef struct {
    float d;                    /* scale                               */
    int8_t qs[TKR_QK_K];        /* values                              */
    int16_t bsums[TKR_QK_K / 16]; /* sums of groups of 16 values       */
} tkr_block_q8_K;               /* activations only: 292 bytes         */

_Static_assert(sizeof(tkr_block_q8_0) == 34, "ggml block_q8_0 layout");
_Static_assert(sizeof(tkr_block_q4_0) == 18, "ggml block_q4_0 layout");
_Static_assert(sizeof(tkr_block_q4_K) == 144, "ggml block_q4_K layout");
_Static_assert(sizeof(tkr_block_q6_K) == 210, "ggml block_q6_K layout");

/* ggml's reference quantizer for type t over k values (k % block == 0): x[k] -> dst bytes
 * (tkr_dtype_row_bytes(t, k)). Float types are converted (round to nearest even). */
void tkr_quantize_row(tkr_dtype t, const float *x, void *dst, int64_t k);

/* dst[k] = the values that src (k values of type t, any type) stands for, in float32. Exactly
 * ggml's dequantize_row_* arithmetic. */
void tkr_dequantize_row(tkr_dtype t, const void *src, float *dst, int64_t k);

/* Activation quantizers, as ggml's quantize_row_q8_0 / quantize_row_q8_K (reference rounding). */
void tkr_quantize_row_q8_0(const float *x, tkr_block_q8_0 *y, int64_t k);
void tkr_quantize_row_q8_K(const float *x, tkr_block_q8_K *y, int64_t k);

#endif

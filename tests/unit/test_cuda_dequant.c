/* test_cuda_dequant.c - the CUDA backend's dequantization arithmetic (src/backend/cuda/
 * dequant_blocks.h, the code its kernels run), checked on the host against the library's own
 * dequantizer (tkr_dequantize_row, ggml's arithmetic), bit for bit, for every weight type the GPU
 * takes. Runs in every build: the header is plain C. */
#include "backend/cuda/dequant_blocks.h"
#include "io/tensor.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

#define K 1024 /* values per row: 4 super-blocks of 256, 32 blocks of 32 */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Compares tkr_dq8 over a whole row with tkr_dequantize_row, bit for bit. */
static int compare_row(tkr_dtype t, const uint8_t *row, const char *what) {
    float ref[K], got[K];
    tkr_dequantize_row(t, row, ref, K);
    for (int k0 = 0; k0 < K; k0 += 8) tkr_dq8((int)t, row, k0, got + k0);
    for (int i = 0; i < K; i++)
        if (memcmp(&ref[i], &got[i], 4) != 0) {
            CHECK(0, "%s %s: value %d is %.9g, the library gives %.9g", tkr_dtype_name(t), what, i, got[i], ref[i]);
            return 0;
        }
    return 1;
}

static void test_enum_matches_tkr_dtype(void) {
    static const int pairs[][2] = {{TKR_DQ_F32, TKR_DT_F32},   {TKR_DQ_F16, TKR_DT_F16},   {TKR_DQ_BF16, TKR_DT_BF16},
                                   {TKR_DQ_Q8_0, TKR_DT_Q8_0}, {TKR_DQ_Q4_0, TKR_DT_Q4_0}, {TKR_DQ_Q4_K, TKR_DT_Q4_K},
                                   {TKR_DQ_Q6_K, TKR_DT_Q6_K}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        CHECK(pairs[i][0] == pairs[i][1],
          "the header's type numbers differ from tkr_dtype");
    for (int t = 0; t < TKR_DT_COUNT; t++) {
        CHECK((size_t)tkr_dq_block_bytes(t) == tkr_dtype_block_bytes((tkr_dtype)t), "block bytes of %s",
              tkr_dtype_name((tkr_dtype)t));
        CHECK(tkr_dq_block_elems(t) == tkr_dtype_block_elems((tkr_dtype)t), "block values of %s",
              tkr_dtype_name((tkr_dtype)t));
    }
}

/* Rows quantized from floats of several magnitudes (ggml's quantizers), then dequantized. */
static void test_quantized_rows(void) {
    static const tkr_dtype types[] = {TKR_DT_Q8_0, TKR_DT_Q4_0, TKR_DT_Q4_K, TKR_DT_Q6_K,
                                      TKR_DT_F16, TKR_DT_BF16, TKR_DT_F32};
    float x[K];
    uint8_t row[K * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (int trial = 0; trial < 20; trial++) {
            float scale = trial < 10 ? 1e-3f * (float)(1 + trial * trial) : 50.0f * (float)trial;
            for (int i = 0; i < K; i++) {
                x[i] = ((float)(rnd() % 20001) / 10000.0f - 1.0f) * scale;
                if (trial % 3 == 0 && i % 97 == 0) x[i] = 0.0f;
                if (trial % 4 == 1 && i % 64 < 32) x[i] = fabsf(x[i]); /* one-signed groups (Q4_K mins) */
            }
            tkr_quantize_row(types[ti], x, row, K);
            if (!compare_row(types[ti], row, "quantized row")) break;
        }
    }
}

/* Arbitrary bytes: every bit pattern of the quants and scales, finite fp16 scales (subnormal ones
 * included); float types with arbitrary finite bit patterns. */
static void test_random_bytes(void) {
    static const tkr_dtype types[] = {TKR_DT_Q8_0, TKR_DT_Q4_0, TKR_DT_Q4_K, TKR_DT_Q6_K,
                                      TKR_DT_F16, TKR_DT_BF16, TKR_DT_F32};
    uint8_t row[K * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        tkr_dtype t = types[ti];
        size_t bb = tkr_dtype_block_bytes(t), nb = tkr_dtype_row_bytes(t, K) / bb;
        for (int trial = 0; trial < 50; trial++) {
            for (size_t i = 0; i < nb * bb; i++) row[i] = (uint8_t)rnd();
            for (size_t b = 0; b < nb; b++) {
                uint8_t *blk = row + b * bb;
                /* clear the exponent's top bit of every fp16 scale (no inf/NaN; subnormals stay) */
                if (t == TKR_DT_Q8_0 || t == TKR_DT_Q4_0) blk[1] &= 0xBF;
                if (t == TKR_DT_Q4_K) blk[1] &= 0xBF, blk[3] &= 0xBF;
                if (t == TKR_DT_Q6_K) blk[209] &= 0xBF;
                if (t == TKR_DT_F16) blk[1] &= 0xBF;
                if (t == TKR_DT_BF16 || t == TKR_DT_F32) blk[bb - 1] &= 0xBF;
            }
            if (!compare_row(t, row, "random bytes")) break;
        }
    }
}

/* The half conversion on its own: all 65536 patterns, against the library's. */
static void test_f16_all_patterns(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        float a = tkr_dq_f16((uint16_t)h);
        uint8_t b[2] = {(uint8_t)h, (uint8_t)(h >> 8)};
        float ref;
        tkr_dequantize_row(TKR_DT_F16, b, &ref, 1);
        if (memcmp(&a, &ref, 4) != 0 && !(a != a && ref != ref)) {
            CHECK(0, "half 0x%04x: %.9g, the library gives %.9g", h, a, ref);
            return;
        }
    }
}

int main(void) {
    RUN(test_enum_matches_tkr_dtype);
    RUN(test_quantized_rows);
    RUN(test_random_bytes);
    RUN(test_f16_all_patterns);
    return test_summary();
}

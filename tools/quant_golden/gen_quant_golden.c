/* gen_quant_golden.c - writes the golden vectors of tests/unit/test_quant.c with ggml itself.
 *
 * It links the ggml library of a llama.cpp build (nothing of ggml is copied here), quantizes
 * seeded random rows plus edge cases with ggml_quantize_chunk (what llama-quantize calls; with
 * no importance matrix it runs ggml's quantize_row_*_ref) and with quantize_row_q8_K_ref (the
 * activation format of the K-quant products), and dequantizes ggml's bytes with ggml's to_float.
 * Not part of the build (it lives outside tools/*.c); run it by hand when the formats change:
 *
 *   G=/work/peer/src            # a llama.cpp checkout with a CMake build in $G/build
 *   cc -O2 -std=c11 -I$G/ggml/include tools/quant_golden/gen_quant_golden.c \
 *      -L$G/build/bin -lggml-base -Wl,-rpath,$G/build/bin -lm -o /tmp/gen_quant_golden
 *   /tmp/gen_quant_golden tests/fixtures/quant
 *
 * Output (little-endian, no headers), ROWS rows of COLS values:
 *   input.f32            float32 [ROWS][COLS]
 *   <T>.bin              ggml's quantized rows for T in q8_0 q4_0 q4_K q6_K q8_K
 *   <T>.deq.f32          float32 [ROWS][COLS]: ggml's dequantization of <T>.bin (not q8_K) */
#include "ggml.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 16
#define COLS 512

/* exported by libggml-base (ggml-quants.h is internal to ggml) */
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}
static float rng_unif(void) { return (rng_u32() + 0.5f) / 4294967296.0f; }
static float rng_normal(void) {
    float u = rng_unif(), v = rng_unif();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* The rows: edge cases first, then random weights-like and activation-like rows. */
static void make_input(float *x) {
    for (int r = 0; r < ROWS; r++) {
        float *row = x + (size_t)r * COLS;
        for (int i = 0; i < COLS; i++) {
            float g = rng_normal(), u = rng_unif();
            float v;
            switch (r) {
            case 0: v = 0.0f; break;                              /* all zeros            */
            case 1: v = g * 1e-20f; break;                        /* tiny                 */
            case 2: v = g * 3e3f; break;                          /* huge                 */
            case 3: v = g * 0.02f; break;                         /* outlier added below  */
            case 4: v = u * 1.3f - 1.0f; break;                   /* negative max         */
            case 5: v = 0.75f; break;                             /* constant             */
            case 6: v = 0.1f + u; break;                          /* all positive         */
            case 7: v = (i / 32) % 3 == 0 ? 0.0f : g; break;      /* zero groups          */
            case 8: v = u < 0.7f ? 0.0f : g; break;               /* sparse               */
            case 9: v = g * 0.02f + 0.01f; break;                 /* shifted weights      */
            case 10: v = g * g * g; break;                        /* heavy tails          */
            case 11: v = (i % 16 == 5) ? -g * 8.0f : g * 0.1f; break; /* many outliers    */
            default: v = g * (r % 2 ? 1.0f : 0.05f); break;       /* gaussian             */
            }
            row[i] = v;
        }
        if (r == 3) row[77] = 5.0f;
        if (r == 4) row[300] = -2.0f;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    static float x[ROWS * COLS], deq[ROWS * COLS];
    make_input(x);
    write_file(argv[1], "input.f32", x, sizeof x);
    const struct { enum ggml_type t; const char *name; } types[] = {
        {GGML_TYPE_Q8_0, "q8_0"}, {GGML_TYPE_Q4_0, "q4_0"},
        {GGML_TYPE_Q4_K, "q4_K"}, {GGML_TYPE_Q6_K, "q6_K"},
    };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        size_t row_bytes = ggml_row_size(types[t].t, COLS);
        uint8_t *q = calloc(ROWS, row_bytes);
        size_t n = ggml_quantize_chunk(types[t].t, x, q, 0, ROWS, COLS, NULL);
        char name[64];
        snprintf(name, sizeof name, "%s.bin", types[t].name);
        write_file(argv[1], name, q, n);
        ggml_get_type_traits(types[t].t)->to_float(q, deq, ROWS * COLS);
        snprintf(name, sizeof name, "%s.deq.f32", types[t].name);
        write_file(argv[1], name, deq, sizeof deq);
        free(q);
    }
    /* q8_K: 292-byte blocks (float d, int8 qs[256], int16 bsums[16]); zeroed first because
     * ggml leaves bsums unwritten for an all-zero block. */
    size_t q8k_bytes = (size_t)ROWS * (COLS / 256) * 292;
    uint8_t *q = calloc(1, q8k_bytes);
    for (int r = 0; r < ROWS; r++)
        quantize_row_q8_K_ref(x + (size_t)r * COLS, q + (size_t)r * (COLS / 256) * 292, COLS);
    write_file(argv[1], "q8_K.bin", q, q8k_bytes);
    free(q);
    return 0;
}

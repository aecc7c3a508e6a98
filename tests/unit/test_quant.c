/* test_quant.c - the ggml-compatible block formats (kernels/quant.h) and the integer matrix
 * products over them (tkr_linear on quantized weights).
 *
 * Golden vectors: tests/fixtures/quant/ holds rows quantized and dequantized by ggml itself
 * (tools/quant_golden/gen_quant_golden.c says how they were made). Our quantizers must give the
 * same bytes and our dequantizers the same float bits. */
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

#define GROWS 16
#define GCOLS 512
#define FIX "tests/fixtures/quant/"

/* Reads a whole fixture file of exactly `want` bytes; NULL (with a failed check) otherwise. */
static void *read_fixture(const char *name, size_t want) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s (run from the repository root)", path);
    if (!f) return NULL;
    void *buf = malloc(want + 1);
    size_t n = fread(buf, 1, want + 1, f);
    fclose(f);
    CHECK(n == want, "%s: %zu bytes, expected %zu", path, n, want);
    if (n != want) {
        free(buf);
        return NULL;
    }
    return buf;
}

static const struct {
    tkr_dtype t;
    const char *name;
} gtypes[] = {{TKR_DT_Q8_0, "q8_0"}, {TKR_DT_Q4_0, "q4_0"}, {TKR_DT_Q4_K, "q4_K"}, {TKR_DT_Q6_K, "q6_K"}};

/* Our quantizer gives ggml's bytes, row by row (each row quantized on its own, as ggml's rows are
 * independent: quantizing all rows at once must give the same). */
static void test_quantize_matches_ggml(void) {
    float *x = read_fixture("input.f32", sizeof(float) * GROWS * GCOLS);
    if (!x) return;
    for (size_t t = 0; t < sizeof gtypes / sizeof gtypes[0]; t++) {
        size_t rb = tkr_dtype_row_bytes(gtypes[t].t, GCOLS);
        char name[64];
        snprintf(name, sizeof name, "%s.bin", gtypes[t].name);
        uint8_t *want = read_fixture(name, rb * GROWS);
        if (!want) continue;
        uint8_t *got = calloc(GROWS, rb);
        for (int r = 0; r < GROWS; r++) {
            tkr_quantize_row(gtypes[t].t, x + (size_t)r * GCOLS, got + r * rb, GCOLS);
            if (memcmp(got + r * rb, want + r * rb, rb) != 0) {
                size_t i = 0;
                while (got[r * rb + i] == want[r * rb + i]) i++;
                CHECK(0, "%s row %d differs from ggml at byte %zu (block %zu): %u vs %u",
                      gtypes[t].name, r, i, i / tkr_dtype_block_bytes(gtypes[t].t),
                      got[r * rb + i], want[r * rb + i]);
            }
        }
        uint8_t *all = calloc(GROWS, rb);
        tkr_quantize_row(gtypes[t].t, x, all, (int64_t)GROWS * GCOLS);
        CHECK(memcmp(all, want, rb * GROWS) == 0, "%s: whole-buffer quantization differs", gtypes[t].name);
        free(all);
        free(got);
        free(want);
    }
    free(x);
}

/* Our dequantizer gives ggml's float bits for ggml's bytes. */
static void test_dequantize_matches_ggml(void) {
    for (size_t t = 0; t < sizeof gtypes / sizeof gtypes[0]; t++) {
        size_t rb = tkr_dtype_row_bytes(gtypes[t].t, GCOLS);
        char name[64];
        snprintf(name, sizeof name, "%s.bin", gtypes[t].name);
        uint8_t *q = read_fixture(name, rb * GROWS);
        snprintf(name, sizeof name, "%s.deq.f32", gtypes[t].name);
        float *want = read_fixture(name, sizeof(float) * GROWS * GCOLS);
        if (q && want) {
            float *got = malloc(sizeof(float) * GROWS * GCOLS);
            /* from an odd address too: tensor data in a file need not be aligned */
            uint8_t *odd = malloc(rb * GROWS + 1);
            memcpy(odd + 1, q, rb * GROWS);
            for (int pass = 0; pass < 2; pass++) {
                for (int r = 0; r < GROWS; r++)
                    tkr_dequantize_row(gtypes[t].t, (pass ? odd + 1 : q) + r * rb, got + (size_t)r * GCOLS, GCOLS);
                int bad = -1;
                for (int i = 0; i < GROWS * GCOLS && bad < 0; i++)
                    if (memcmp(&got[i], &want[i], 4) != 0) bad = i;
                CHECK(bad < 0, "%s%s: value %d is %.9g, ggml %.9g", gtypes[t].name,
                      pass ? " (unaligned)" : "", bad, bad < 0 ? 0.0 : got[bad], bad < 0 ? 0.0 : want[bad]);
            }
            free(odd);
            free(got);
        }
        free(q);
        free(want);
    }
}

/* The Q8_K activation quantizer gives ggml's blocks (d, values and group sums). */
static void test_q8_K_matches_ggml(void) {
    float *x = read_fixture("input.f32", sizeof(float) * GROWS * GCOLS);
    const int nb = GROWS * GCOLS / TKR_QK_K;
    uint8_t *want = read_fixture("q8_K.bin", (size_t)nb * 292);
    if (x && want) {
        tkr_block_q8_K *got = calloc((size_t)nb, sizeof *got);
        CHECK(sizeof *got == 292, "block_q8_K is %zu bytes", sizeof *got);
        tkr_quantize_row_q8_K(x, got, (int64_t)GROWS * GCOLS);
        for (int b = 0; b < nb; b++)
            CHECK(memcmp(&got[b], want + (size_t)b * 292, 292) == 0, "q8_K block %d differs", b);
        free(got);
    }
    free(x);
    free(want);
}

/* The Q8_0 activation quantizer is the Q8_0 weight quantizer (ggml's reference rounding). */
static void test_q8_0_activation(void) {
    float *x = read_fixture("input.f32", sizeof(float) * GROWS * GCOLS);
    uint8_t *want = read_fixture("q8_0.bin", tkr_dtype_row_bytes(TKR_DT_Q8_0, GCOLS) * GROWS);
    if (x && want) {
        size_t nb = (size_t)GROWS * GCOLS / 32;
        tkr_block_q8_0 *got = calloc(nb, sizeof *got);
        tkr_quantize_row_q8_0(x, got, (int64_t)GROWS * GCOLS);
        CHECK(memcmp(got, want, nb * 34) == 0, "q8_0 activation blocks differ from ggml's");
        free(got);
    }
    free(x);
    free(want);
}

/* Round trip within each format's error bound, per block of values: Q8_0 |err| <= d/2 (d = amax /
 * 127, plus fp16 rounding of d), Q4_0 <= d/2 with d = amax / 8, Q4_K within one step of its
 * 6-bit-quantized group scale (d*sc) plus the min's rounding, Q6_K likewise for 16-value groups.
 * Checked as a relative RMS error over gaussian rows, which is the property that matters. */
static void test_round_trip_error(void) {
    const int K = 4096;
    float *x = malloc(sizeof(float) * K), *y = malloc(sizeof(float) * K);
    uint8_t *q = malloc(tkr_dtype_row_bytes(TKR_DT_Q8_0, K));
    uint64_t s = 12345;
    for (int i = 0; i < K; i++) {
        double u1 = 0, u2 = 0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        u1 = ((s >> 11) + 0.5) / 9007199254740992.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        u2 = ((s >> 11) + 0.5) / 9007199254740992.0;
        x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    /* expected relative RMS error for N(0,1) data: ~ step / sqrt(12) / 1 */
    const struct { tkr_dtype t; double max_rel_rms; } c[] = {
        {TKR_DT_Q8_0, 0.012}, {TKR_DT_Q4_0, 0.13}, {TKR_DT_Q4_K, 0.10}, {TKR_DT_Q6_K, 0.03}};
    for (size_t t = 0; t < sizeof c / sizeof c[0]; t++) {
        tkr_quantize_row(c[t].t, x, q, K);
        tkr_dequantize_row(c[t].t, q, y, K);
        double e2 = 0, x2 = 0, emax = 0;
        for (int i = 0; i < K; i++) {
            double e = (double)y[i] - x[i];
            e2 += e * e;
            x2 += (double)x[i] * x[i];
            if (fabs(e) > emax) emax = fabs(e);
        }
        double rel = sqrt(e2 / x2);
        CHECK(rel < c[t].max_rel_rms, "%s: relative RMS error %.4f >= %.4f", tkr_dtype_name(c[t].t), rel,
              c[t].max_rel_rms);
        CHECK(rel > c[t].max_rel_rms / 20, "%s: relative RMS error %.6f implausibly small", tkr_dtype_name(c[t].t), rel);
        printf("  %s round trip: rel rms %.4f, max abs %.4f\n", tkr_dtype_name(c[t].t), rel, emax);
    }
    /* per-value bound for Q8_0: half a step, plus 127 times the fp16 rounding of the step
     * (relative 2^-11): |err| <= d (0.5 + 127 / 2048) */
    tkr_quantize_row(TKR_DT_Q8_0, x, q, K);
    tkr_dequantize_row(TKR_DT_Q8_0, q, y, K);
    for (int b = 0; b < K / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        for (int j = 0; j < 32; j++)
            CHECK(fabsf(y[b * 32 + j] - x[b * 32 + j]) <= amax / 127 * (0.5f + 127.f / 2048) * 1.001f, "q8_0 block %d", b);
    }
    free(x);
    free(y);
    free(q);
}

int main(void) {
    RUN(test_quantize_matches_ggml);
    RUN(test_dequantize_matches_ggml);
    RUN(test_q8_K_matches_ggml);
    RUN(test_q8_0_activation);
    RUN(test_round_trip_error);
    return test_summary();
}

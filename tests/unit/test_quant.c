/* test_quant.c - the ggml-compatible block formats (kernels/quant.h) and the integer matrix
 * products over them (tkr_linear on quantized weights).
 *
 * Golden vectors: tests/fixtures/quant/ holds rows quantized and dequantized by ggml itself
 * (tools/quant_golden/gen_quant_golden.c says how they were made). Our quantizers must give the
 * same bytes and our dequantizers the same float bits. */
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/quant.h"
#include "test.h"
#include "util/threadpool.h"

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
#ifdef TKR_HAVE_X86
        tkr_kctx c;
        tkr_kctx_init(&c, NULL, NULL);
        if (c.avx2) { /* the vectorized copy used by the AVX2 / AVX-512 products */
            memset(got, 0x55, (size_t)nb * sizeof *got);
            tkr_quantize_row_q8_K_avx2(x, got, (int64_t)GROWS * GCOLS);
            for (int b = 0; b < nb; b++)
                CHECK(memcmp(&got[b], want + (size_t)b * 292, 292) == 0, "q8_K avx2 block %d differs", b);
        }
#endif
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
#ifdef TKR_HAVE_X86
        tkr_kctx c;
        tkr_kctx_init(&c, NULL, NULL);
        if (c.avx2) {
            memset(got, 0x55, nb * sizeof *got);
            tkr_quantize_row_q8_0_avx2(x, got, (int64_t)GROWS * GCOLS);
            CHECK(memcmp(got, want, nb * 34) == 0, "q8_0 avx2 activation blocks differ from ggml's");
        }
        /* halves: values at exactly k + 0.5 steps round away from zero, as roundf */
        float h[32];
        for (int i = 0; i < 32; i++) h[i] = (i % 2 ? -1.0f : 1.0f) * (float)(i * 4 + 1) * 0.5f;
        h[31] = 127.0f; /* scale 1: values are their own steps */
        tkr_block_q8_0 hs, hv;
        tkr_quantize_row_q8_0(h, &hs, 32);
        if (c.avx2) {
            tkr_quantize_row_q8_0_avx2(h, &hv, 32);
            CHECK(memcmp(&hs, &hv, sizeof hs) == 0, "q8_0 avx2 rounding of halves differs");
        }
        CHECK(hs.qs[0] == 1 && hs.qs[1] == -3, "roundf halves: %d %d", hs.qs[0], hs.qs[1]);
#endif
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

/* ---- the quantized matrix product --------------------------------------------------------- */

static uint64_t qrng = 0x243f6a8885a308d3ull;
static float qrand(void) { /* uniform [-1, 1) */
    qrng = qrng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((qrng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}

/* A random [N, K] weight quantized to t (rows with varied scales), its dequantized floats, and a
 * bias. Data is stored at an odd offset: tensor views into files need not be aligned. */
typedef struct {
    tkr_tensor w, b;
    uint8_t *mem;
    float *wd;   /* [N, K] dequantized */
    float *bias; /* [N] */
} qweight;

static void qweight_make(qweight *q, tkr_dtype t, int N, int K) {
    size_t rb = tkr_dtype_row_bytes(t, K);
    q->mem = malloc(rb * N + 1);
    q->wd = malloc(sizeof(float) * (size_t)N * K);
    q->bias = malloc(sizeof(float) * (size_t)N);
    float *row = malloc(sizeof(float) * (size_t)K);
    for (int n = 0; n < N; n++) {
        float sc = 0.02f * (1 + n % 7);
        for (int k = 0; k < K; k++) row[k] = qrand() * sc + (k % 97 == 3 ? 0.2f : 0.0f);
        tkr_quantize_row(t, row, q->mem + 1 + rb * n, K);
        tkr_dequantize_row(t, q->mem + 1 + rb * n, q->wd + (size_t)n * K, K);
        q->bias[n] = qrand();
    }
    free(row);
    memset(&q->w, 0, sizeof q->w);
    q->w.name = "w";
    q->w.dtype = t;
    q->w.ndim = 2;
    q->w.shape[0] = N;
    q->w.shape[1] = K;
    q->w.data = q->mem + 1;
    q->w.nbytes = rb * N;
    memset(&q->b, 0, sizeof q->b);
    q->b.name = "b";
    q->b.dtype = TKR_DT_F32;
    q->b.ndim = 1;
    q->b.shape[0] = N;
    q->b.data = q->bias;
    q->b.nbytes = sizeof(float) * (size_t)N;
}

static void qweight_free(qweight *q) {
    free(q->mem);
    free(q->wd);
    free(q->bias);
}

#if defined(__aarch64__)
/* NEON with widening multiplies, then sdot where the CPU has it */
static const char *caps[] = {"generic", "neon", "neon-dot"};
#define NCAPS 3
#else
static const char *caps[] = {"generic", "avx2", "avx2-vnni", "avx512"};
#define NCAPS 4
#endif
static const tkr_dtype qtypes[] = {TKR_DT_Q8_0, TKR_DT_Q4_0, TKR_DT_Q4_K, TKR_DT_Q6_K};

/* Activations with a few large channels, as real hidden states have. */
static float *make_x(int M, int K) {
    float *x = malloc(sizeof(float) * (size_t)M * K);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) x[(size_t)m * K + k] = qrand() * (k % 61 == 7 ? 8.0f : 1.0f) * (1 + m % 3);
    return x;
}

/* Against double-precision sum over dequantized weights times the float activations: the only
 * error is the activations' 8-bit quantization (|err| <= half a step per value, the step being the
 * activation block's scale: amax / 127, times 1 + 127 / 2048 for Q8_0's fp16 scale), so
 * |y - ref| <= sum_k |w[k]| * step(k) * (0.5 + 127 / 2048), plus float rounding. Every ISA version
 * must also give the portable version's bits exactly: integer sums are exact and the float steps
 * are the same fmaf sequence (tolerance 0). */
static void check_qlinear(tkr_dtype t, int M, int K, int N, bool use_bias) {
    qweight q;
    qweight_make(&q, t, N, K);
    float *x = make_x(M, K);
    float *y = malloc(sizeof(float) * (size_t)M * N), *y0 = malloc(sizeof(float) * (size_t)M * N);
    const int blk = (t == TKR_DT_Q8_0 || t == TKR_DT_Q4_0) ? 32 : 256;
    for (int c = 0; c < NCAPS; c++) {
        tkr_kctx ctx;
        tkr_kctx_init(&ctx, NULL, caps[c]);
        for (int i = 0; i < M * N; i++) y[i] = NAN;
        CHECK(tkr_linear(&ctx, x, M, K, &q.w, use_bias ? &q.b : NULL, y) == TKR_OK, "status");
        if (c == 0) {
            memcpy(y0, y, sizeof(float) * (size_t)M * N);
            int bad = 0;
            for (int m = 0; m < M && bad < 3; m++) {
                for (int n = 0; n < N && bad < 3; n++) {
                    double ref = use_bias ? q.bias[n] : 0.0, bound = 0;
                    for (int b = 0; b < K / blk; b++) {
                        float amax = 0;
                        for (int k = b * blk; k < (b + 1) * blk; k++) amax = fmaxf(amax, fabsf(x[(size_t)m * K + k]));
                        for (int k = b * blk; k < (b + 1) * blk; k++) {
                            double wv = q.wd[(size_t)n * K + k];
                            ref += wv * x[(size_t)m * K + k];
                            bound += fabs(wv) * amax / 127 * (0.5 + 127.0 / 2048);
                        }
                    }
                    double got = y[(size_t)m * N + n];
                    bound = bound * 1.001 + 1e-5 * (fabs(ref) + 1);
                    if (!(fabs(got - ref) <= bound)) {
                        bad++;
                        CHECK(0, "%s M=%d K=%d N=%d (%d,%d): %.6f vs ref %.6f (bound %.2g)", tkr_dtype_name(t), M, K,
                              N, m, n, got, ref, bound);
                    }
                }
            }
        } else {
            int bad = -1;
            for (int i = 0; i < M * N && bad < 0; i++)
                if (memcmp(&y[i], &y0[i], 4) != 0) bad = i;
            CHECK(bad < 0, "%s %s M=%d K=%d N=%d: element %d is %.9g, portable %.9g", caps[c], tkr_dtype_name(t), M, K,
                  N, bad, bad < 0 ? 0.0 : y[bad], bad < 0 ? 0.0 : y0[bad]);
        }
    }
    free(x);
    free(y);
    free(y0);
    qweight_free(&q);
}

static void test_qlinear_shapes(void) {
    for (int t = 0; t < 4; t++) {
        const bool k32 = qtypes[t] == TKR_DT_Q8_0 || qtypes[t] == TKR_DT_Q4_0;
        check_qlinear(qtypes[t], 1, 256, 5, false);
        check_qlinear(qtypes[t], 7, 512, 37, true);
        check_qlinear(qtypes[t], 33, 768, 70, false);
        check_qlinear(qtypes[t], 40, k32 ? 96 : 256, 19, true);
        check_qlinear(qtypes[t], 17, k32 ? 32 : 256, 1, true);
    }
}

/* Row m computed alone equals row m of a batch, bit for bit, for every version (batch
 * invariance); a 3-thread pool gives the single-threaded bits. */
static void test_qlinear_batch_invariance_and_threads(void) {
    const int M = 45, K = 512, N = 83;
    tkr_pool *pool = NULL;
    tkr_error err;
    CHECK(tkr_pool_init(3, &pool, &err) == TKR_OK, "pool");
    for (int t = 0; t < 4; t++) {
        qweight q;
        qweight_make(&q, qtypes[t], N, K);
        float *x = make_x(M, K);
        float *y = malloc(sizeof(float) * M * N), *yt = malloc(sizeof(float) * M * N), row[83];
        for (int c = 0; c < NCAPS; c++) {
            tkr_kctx ctx, ctxt;
            tkr_kctx_init(&ctx, NULL, caps[c]);
            tkr_kctx_init(&ctxt, pool, caps[c]);
            CHECK(tkr_linear(&ctx, x, M, K, &q.w, &q.b, y) == TKR_OK, "status");
            CHECK(tkr_linear(&ctxt, x, M, K, &q.w, &q.b, yt) == TKR_OK, "status");
            CHECK(memcmp(y, yt, sizeof(float) * M * N) == 0, "%s %s: threads change the result", caps[c],
                  tkr_dtype_name(qtypes[t]));
            for (int m = 0; m < M; m += 11) {
                CHECK(tkr_linear(&ctx, x + (size_t)m * K, 1, K, &q.w, &q.b, row) == TKR_OK, "status");
                CHECK(memcmp(row, y + (size_t)m * N, sizeof(float) * N) == 0, "%s %s: row %d alone differs",
                      caps[c], tkr_dtype_name(qtypes[t]), m);
            }
            /* rows 5..21 as their own batch */
            CHECK(tkr_linear(&ctxt, x + 5 * K, 17, K, &q.w, &q.b, yt) == TKR_OK, "status");
            CHECK(memcmp(yt, y + 5 * N, sizeof(float) * 17 * N) == 0, "%s %s: sub-batch differs", caps[c],
                  tkr_dtype_name(qtypes[t]));
        }
        free(x);
        free(y);
        free(yt);
        qweight_free(&q);
    }
    tkr_pool_free(pool);
}

/* tkr_linear_silu_gate (one pass, both products of one quantized x, silu_mul on the tiles) gives
 * the bits of tkr_linear twice and tkr_silu_mul, for every version, with and without threads,
 * and rows alone give the batch's bits. */
static void test_qlinear_silu_gate_fused(void) {
    static const int shapes[3][3] = {{1, 256, 37}, {45, 512, 83}, {33, 768, 70}}; /* M, K, N */
    tkr_pool *pool = NULL;
    tkr_error err;
    CHECK(tkr_pool_init(3, &pool, &err) == TKR_OK, "pool");
    for (int t = 0; t < 4; t++) {
        for (int s = 0; s < 3; s++) {
            const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            qweight g, u;
            qweight_make(&g, qtypes[t], N, K);
            qweight_make(&u, qtypes[t], N, K);
            float *x = make_x(M, K);
            float *ref = malloc(sizeof(float) * M * N), *up = malloc(sizeof(float) * M * N);
            float *got = malloc(sizeof(float) * M * N), *row = malloc(sizeof(float) * N);
            for (int c = 0; c < NCAPS; c++) {
                for (int th = 0; th < 2; th++) {
                    tkr_kctx ctx;
                    tkr_kctx_init(&ctx, th ? pool : NULL, caps[c]);
                    CHECK(tkr_linear(&ctx, x, M, K, &g.w, NULL, ref) == TKR_OK, "status");
                    CHECK(tkr_linear(&ctx, x, M, K, &u.w, NULL, up) == TKR_OK, "status");
                    tkr_silu_mul(&ctx, ref, up, (size_t)M * N);
                    for (int i = 0; i < M * N; i++) got[i] = NAN;
                    CHECK(tkr_linear_silu_gate(&ctx, x, M, K, &g.w, &u.w, got, up) == TKR_OK, "status");
                    CHECK(memcmp(got, ref, sizeof(float) * M * N) == 0, "%s %s M=%d K=%d N=%d threads %d: fused differs",
                          caps[c], tkr_dtype_name(qtypes[t]), M, K, N, th ? 3 : 1);
                    const int m = M - 1;
                    CHECK(tkr_linear_silu_gate(&ctx, x + (size_t)m * K, 1, K, &g.w, &u.w, row, up) == TKR_OK, "status");
                    CHECK(memcmp(row, ref + (size_t)m * N, sizeof(float) * N) == 0, "%s %s: row %d alone differs",
                          caps[c], tkr_dtype_name(qtypes[t]), m);
                }
            }
            free(x);
            free(ref);
            free(up);
            free(got);
            free(row);
            qweight_free(&g);
            qweight_free(&u);
        }
    }
    tkr_pool_free(pool);
}

/* A K that is not a multiple of the block is refused, not read past. */
static void test_qlinear_bad_shape(void) {
    qweight q;
    qweight_make(&q, TKR_DT_Q4_K, 3, 256);
    float x[512] = {0}, y[8];
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, NULL, NULL);
    CHECK(tkr_linear(&ctx, x, 1, 128, &q.w, NULL, y) != TKR_OK, "K mismatch accepted");
    qweight_free(&q);
}

int main(void) {
    RUN(test_quantize_matches_ggml);
    RUN(test_dequantize_matches_ggml);
    RUN(test_q8_K_matches_ggml);
    RUN(test_q8_0_activation);
    RUN(test_round_trip_error);
    RUN(test_qlinear_shapes);
    RUN(test_qlinear_batch_invariance_and_threads);
    RUN(test_qlinear_silu_gate_fused);
    RUN(test_qlinear_bad_shape);
    return test_summary();
}

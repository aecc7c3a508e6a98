/* test_kernels.c - every kernel against a double-precision reference written here, the AVX2
 * kernels against the portable ones, and batch invariance of tkr_linear. */
#include "test.h"
#include "kernels/kernels.h"

#include <stdint.h>

static uint64_t rng_state = 0x1234567;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}

/* A weight tensor of the given dtype with random values; *ref gets the exact float values. */
static tkr_tensor make_weight(tkr_dtype dt, int N, int K, void **storage, float **ref) {
    tkr_tensor t = {.name = "w", .dtype = dt, .ndim = 2, .shape = {N, K}};
    size_t n = (size_t)N * K;
    *ref = malloc(n * sizeof(float));
    if (dt == TKR_DT_F32) {
        float *s = malloc(n * 4);
        for (size_t i = 0; i < n; i++) (*ref)[i] = s[i] = frand();
        *storage = s;
    } else {
        uint16_t *s = malloc(n * 2);
        for (size_t i = 0; i < n; i++) {
            float f = frand();
            s[i] = dt == TKR_DT_F16 ? tkr_f32_to_f16(f) : tkr_f32_to_bf16(f);
            (*ref)[i] = dt == TKR_DT_F16 ? tkr_f16_to_f32(s[i]) : tkr_bf16_to_f32(s[i]);
        }
        *storage = s;
    }
    t.data = *storage;
    t.nbytes = n * (dt == TKR_DT_F32 ? 4 : 2);
    return t;
}

static void test_conversions(void) {
    CHECK(tkr_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
    CHECK(tkr_f16_to_f32(0xc000) == -2.0f, "f16 -2");
    CHECK(tkr_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "f16 smallest subnormal");
    CHECK(isinf(tkr_f16_to_f32(0x7c00)), "f16 inf");
    CHECK(tkr_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
    CHECK(tkr_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
    CHECK(tkr_f32_to_bf16(1.0f) == 0x3f80, "to bf16");
    CHECK(tkr_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even (down)");
    CHECK(tkr_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even (up)");
    /* every f16 bit pattern round-trips (except NaN payloads) */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        if (tkr_f32_to_f16(tkr_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 patterns do not round-trip", bad);
    CHECK(tkr_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow to inf");
    CHECK(tkr_f32_to_f16(ldexpf(1.0f, -25)) == 0, "f16 tie to even at zero");
    CHECK(tkr_f32_to_f16(ldexpf(1.5f, -25)) == 1, "f16 above tie");
}

static void check_linear(tkr_dtype dt, int M, int K, int N, tkr_pool *pool) {
    void *storage;
    float *wref;
    tkr_tensor w = make_weight(dt, N, K, &storage, &wref);
    float *x = malloc(sizeof(float) * (size_t)M * K);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    float bias_v[512];
    for (int i = 0; i < N; i++) bias_v[i] = frand();
    tkr_tensor b = {.name = "b", .dtype = TKR_DT_F32, .ndim = 1, .shape = {N}, .data = bias_v,
                    .nbytes = (size_t)N * 4};
    float *y1 = malloc(sizeof(float) * (size_t)M * N), *y2 = malloc(sizeof(float) * (size_t)M * N);
    float *y3 = malloc(sizeof(float) * (size_t)N);
    for (int variant = 0; variant < 2; variant++) {
        tkr_kctx ctx;
        tkr_kctx_init(&ctx, pool, variant == 0);
        tkr_linear(&ctx, x, M, K, &w, &b, variant == 0 ? y1 : y2);
    }
    double maxerr = 0;
    int invariant = 1;
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, pool, false);
    for (int m = 0; m < M; m++) {
        tkr_linear(&ctx, x + (size_t)m * K, 1, K, &w, &b, y3); /* the same row alone */
        for (int n = 0; n < N; n++) {
            double ref = bias_v[n];
            for (int k = 0; k < K; k++) ref += (double)x[(size_t)m * K + k] * wref[(size_t)n * K + k];
            double e1 = fabs(y1[(size_t)m * N + n] - ref), e2 = fabs(y2[(size_t)m * N + n] - ref);
            if (e1 > maxerr) maxerr = e1;
            if (e2 > maxerr) maxerr = e2;
            if (y3[n] != y2[(size_t)m * N + n]) invariant = 0;
        }
    }
    CHECK(maxerr < 1e-4 * sqrt((double)K), "dtype %d M%d K%d N%d: max error %g", dt, M, K, N, maxerr);
    CHECK(invariant, "dtype %d M%d K%d N%d: a row alone differs from the same row in a batch", dt,
          M, K, N);
    free(storage);
    free(wref);
    free(x);
    free(y1);
    free(y2);
    free(y3);
}

static void test_linear(void) {
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(3, &pool, &e) == TKR_OK, "pool");
    int shapes[][3] = {{1, 8, 2}, {7, 37, 5}, {4, 64, 33}, {13, 136, 70}, {5, 3, 1}, {9, 256, 200}};
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_linear((tkr_dtype)d, shapes[s][0], shapes[s][1], shapes[s][2], pool);
    tkr_pool_free(pool);
}

static void test_norms(void) {
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, NULL, false);
    enum { M = 3, D = 10 };
    float x[M * D], y[M * D], wv[D], bv[D];
    for (int i = 0; i < M * D; i++) x[i] = frand() * 3;
    for (int i = 0; i < D; i++) {
        wv[i] = frand();
        bv[i] = frand();
    }
    tkr_tensor w = {.dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = wv};
    tkr_tensor b = {.dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = bv};
    tkr_rmsnorm(&ctx, x, M, D, &w, 1e-6f, y);
    for (int m = 0; m < M; m++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[m * D + i] * x[m * D + i];
        double inv = 1 / sqrt(ss / D + 1e-6);
        for (int i = 0; i < D; i++)
            CHECK(fabs(y[m * D + i] - wv[i] * x[m * D + i] * inv) < 1e-5, "rms %d %d", m, i);
    }
    tkr_layernorm(&ctx, x, M, D, &w, &b, 1e-6f, y);
    for (int m = 0; m < M; m++) {
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++) mean += x[m * D + i];
        mean /= D;
        for (int i = 0; i < D; i++) var += (x[m * D + i] - mean) * (x[m * D + i] - mean);
        var /= D;
        for (int i = 0; i < D; i++) {
            double want = (x[m * D + i] - mean) / sqrt(var + 1e-6) * wv[i] + bv[i];
            CHECK(fabs(y[m * D + i] - want) < 1e-5, "ln %d %d: %g vs %g", m, i, y[m * D + i], want);
        }
    }
}

static void test_activations(void) {
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, NULL, false);
    float a[4] = {-2, -0.5f, 0, 3}, up[4] = {1, 2, 3, 4}, g[4], q[4];
    memcpy(g, a, sizeof a);
    memcpy(q, a, sizeof a);
    float s[4];
    memcpy(s, a, sizeof a);
    tkr_silu_mul(&ctx, s, up, 4);
    tkr_gelu_erf(&ctx, g, 4);
    tkr_quick_gelu(&ctx, q, 4);
    for (int i = 0; i < 4; i++) {
        double x = a[i];
        CHECK(fabs(s[i] - x / (1 + exp(-x)) * up[i]) < 1e-6, "silu %d", i);
        CHECK(fabs(g[i] - 0.5 * x * (1 + erf(x / sqrt(2.0)))) < 1e-6, "gelu %d", i);
        CHECK(fabs(q[i] - x / (1 + exp(-1.702 * x))) < 1e-6, "quick gelu %d", i);
    }
}

/* Two packed sequences, GQA 4:2, causal and not, against a direct double computation. */
static void test_attention(void) {
    enum { H = 4, KV = 2, HD = 12, T = 23 };
    int seq[3] = {0, 9, T};
    static float q[T * H * HD], k[T * KV * HD], v[T * KV * HD], out[T * H * HD];
    for (int i = 0; i < T * H * HD; i++) q[i] = frand();
    for (int i = 0; i < T * KV * HD; i++) {
        k[i] = frand();
        v[i] = frand();
    }
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(2, &pool, &e) == TKR_OK, "pool");
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, pool, false);
    for (int causal = 0; causal < 2; causal++) {
        tkr_attention_args a = {q, k, v, H * HD, KV * HD, out, H * HD, H, KV, HD, seq, 2, causal};
        tkr_attention(&ctx, &a);
        double maxerr = 0;
        for (int s = 0; s < 2; s++)
            for (int i = seq[s]; i < seq[s + 1]; i++)
                for (int h = 0; h < H; h++) {
                    int kh = h / (H / KV);
                    int jend = causal ? i + 1 : seq[s + 1];
                    double sc[T], mx = -1e300, sum = 0;
                    for (int j = seq[s]; j < jend; j++) {
                        double d = 0;
                        for (int x = 0; x < HD; x++) d += (double)q[(i * H + h) * HD + x] * k[(j * KV + kh) * HD + x];
                        sc[j] = d / sqrt((double)HD);
                        if (sc[j] > mx) mx = sc[j];
                    }
                    for (int j = seq[s]; j < jend; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (int x = 0; x < HD; x++) {
                        double o = 0;
                        for (int j = seq[s]; j < jend; j++) o += sc[j] / sum * v[(j * KV + kh) * HD + x];
                        double err = fabs(o - out[(i * H + h) * HD + x]);
                        if (err > maxerr) maxerr = err;
                    }
                }
        CHECK(maxerr < 1e-5, "causal=%d max error %g", causal, maxerr);
    }
    tkr_pool_free(pool);
}

static void test_rope(void) {
    enum { T = 2, H = 2, HD = 4 };
    float x[T * H * HD], c[T * HD / 2], s[T * HD / 2];
    for (int i = 0; i < T * H * HD; i++) x[i] = (float)(i + 1);
    for (int i = 0; i < T * HD / 2; i++) {
        c[i] = cosf(0.3f * (float)i);
        s[i] = sinf(0.3f * (float)i);
    }
    float orig[T * H * HD];
    memcpy(orig, x, sizeof x);
    tkr_rope_apply(x, T, H, HD, c, s);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            for (int d = 0; d < HD / 2; d++) {
                const float *o = orig + (t * H + h) * HD;
                float cc = c[t * HD / 2 + d], ss = s[t * HD / 2 + d];
                CHECK(fabsf(x[(t * H + h) * HD + d] - (o[d] * cc - o[d + HD / 2] * ss)) < 1e-5, "lo");
                CHECK(fabsf(x[(t * H + h) * HD + d + HD / 2] - (o[d + HD / 2] * cc + o[d] * ss)) < 1e-5, "hi");
            }
}

int main(void) {
    RUN(test_conversions);
    RUN(test_linear);
    RUN(test_norms);
    RUN(test_activations);
    RUN(test_attention);
    RUN(test_rope);
    return test_summary();
}

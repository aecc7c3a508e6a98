/* test_kernels.c - every kernel against a double-precision reference written here, in both
 * variants (portable, and AVX2 where the CPU has it), the AVX2 product against the portable one,
 * and invariance bit for bit: a row or sequence alone against the same one inside a batch, and
 * one thread against three, for tkr_linear and tkr_attention. */
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

/* The kernel variants a machine can run, in order: the portable one always, then AVX2 and
 * AVX-512 where the CPU has them, then the AVX-512 BF16 fast mode (BF16 weights only); on
 * aarch64 the portable one and NEON (the variants of the other architecture get numbers past
 * V_COUNT, so they are never run). */
#if defined(__aarch64__)
enum { V_GENERIC, V_NEON, V_COUNT, V_AVX2 = 100, V_AVX512, V_FAST_BF16 };
#else
enum { V_GENERIC, V_AVX2, V_AVX512, V_FAST_BF16, V_COUNT, V_NEON = 100 };
#endif
static bool variant_available(int v) {
    tkr_kctx c;
    tkr_kctx_init(&c, NULL, NULL);
    switch (v) {
    case V_GENERIC: return true;
    case V_AVX2: return c.avx2;
    case V_AVX512: return c.avx512;
    case V_NEON: return c.neon;
    default: return c.avx512 && c.avx512_bf16;
    }
}
static int n_variants(void) {
    int n = 1;
    while (n < V_COUNT && variant_available(n)) n++;
    return n;
}
static const char *variant_name(int v) {
    switch (v) {
    case V_GENERIC: return "generic";
    case V_AVX2: return "avx2";
    case V_AVX512: return "avx512";
    case V_NEON: return "neon";
    default: return "avx512-fast-bf16";
    }
}
static void variant_ctx(int v, tkr_kctx *c, tkr_pool *pool) {
    tkr_kctx_init(c, pool, v == V_GENERIC ? "generic" : v == V_AVX2 ? "avx2" : v == V_NEON ? "neon-dot" : "avx512");
    c->fast_bf16 = v == V_FAST_BF16;
}

/* One weight dtype and shape, one kernel variant: every output against a double dot product,
 * each row alone against the same row in the batch (bit for bit), and a 1-thread run against
 * the 3-thread run (bit for bit). */
static void check_linear(int variant, tkr_dtype dt, int M, int K, int N, tkr_pool *pool) {
    void *storage;
    float *wref;
    tkr_tensor w = make_weight(dt, N, K, &storage, &wref);
    float *x = malloc(sizeof(float) * (size_t)M * K);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    float bias_v[512];
    for (int i = 0; i < N; i++) bias_v[i] = frand();
    tkr_tensor b = {.name = "b", .dtype = TKR_DT_F32, .ndim = 1, .shape = {N}, .data = bias_v,
                    .nbytes = (size_t)N * 4};
    float *y = malloc(sizeof(float) * (size_t)M * N);     /* [M, N] the batch, 3 threads */
    float *y1t = malloc(sizeof(float) * (size_t)M * N);   /* [M, N] the batch, 1 thread  */
    float *yrow = malloc(sizeof(float) * (size_t)N);      /* [1, N] one row alone        */
    tkr_kctx ctx, ctx1;
    variant_ctx(variant, &ctx, pool);
    variant_ctx(variant, &ctx1, NULL);
    /* the fast mode rounds x to bf16 (only for BF16 weights): its reference uses the rounded x,
     * and the error against the unrounded x is bounded by 2^-8 sum |x w| (bf16 keeps 8 bits) */
    bool fast = variant == V_FAST_BF16 && dt == TKR_DT_BF16;
    double fast_excess = 0; /* worst |y - ref(x)| / (2^-8 sum |x w| + tolerance) */
    CHECK(tkr_linear(&ctx, x, M, K, &w, &b, y) == TKR_OK, "linear status");
    CHECK(tkr_linear(&ctx1, x, M, K, &w, &b, y1t) == TKR_OK, "linear status");
    double maxerr = 0;
    int invariant = 1;
    for (int m = 0; m < M; m++) {
        tkr_linear(&ctx, x + (size_t)m * K, 1, K, &w, &b, yrow);
        for (int n = 0; n < N; n++) {
            double ref = bias_v[n], ref_x = bias_v[n], abs_sum = 0;
            for (int k = 0; k < K; k++) {
                float xv = x[(size_t)m * K + k];
                ref_x += (double)xv * wref[(size_t)n * K + k];
                abs_sum += fabs((double)xv * wref[(size_t)n * K + k]);
                if (fast) xv = tkr_bf16_to_f32(tkr_f32_to_bf16(xv));
                ref += (double)xv * wref[(size_t)n * K + k];
            }
            double e = fabs(y[(size_t)m * N + n] - ref);
            if (e > maxerr) maxerr = e;
            if (fast) {
                double r = fabs(y[(size_t)m * N + n] - ref_x) / (ldexp(abs_sum, -8) + 1e-4 * sqrt((double)K));
                if (r > fast_excess) fast_excess = r;
            }
            if (yrow[n] != y[(size_t)m * N + n]) invariant = 0;
        }
    }
    const char *vn = variant_name(variant);
    CHECK(maxerr < 1e-4 * sqrt((double)K), "%s dtype %d M%d K%d N%d: max error %g", vn, dt, M, K,
          N, maxerr);
    CHECK(fast_excess <= 1.0, "%s M%d K%d N%d: error against float32 x beyond 2^-8 sum|xw|: %g", vn, M,
          K, N, fast_excess);
    CHECK(invariant, "%s dtype %d M%d K%d N%d: a row alone differs from the same row in a batch",
          vn, dt, M, K, N);
    CHECK(memcmp(y, y1t, sizeof(float) * (size_t)M * N) == 0,
          "%s dtype %d M%d K%d N%d: 1 thread and 3 threads differ", vn, dt, M, K, N);
    free(storage);
    free(wref);
    free(x);
    free(y);
    free(y1t);
    free(yrow);
}

/* Shapes cover the AVX2 tile edges: M around the 6-row tile, N around the 16-wide panel, K
 * across several 256-wide k-blocks and not a multiple of 8, and both AVX2 loop nests: x small
 * (whole-K or L1 panels) and x large (M K > 128 K floats: 256-wide k-blocks), where the row
 * alone goes through the small-x path and must still match the batch bit for bit. */
static void test_linear(void) {
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(3, &pool, &e) == TKR_OK, "pool");
    int shapes[][3] = {{1, 8, 2},    {7, 37, 5},   {4, 64, 33},   {13, 136, 70}, {5, 3, 1},
                       {9, 256, 200}, {6, 600, 48}, {20, 515, 17}, {1, 1, 1},    {12, 257, 31},
                       {40, 3400, 37}};
    for (int v = 0; v < n_variants(); v++)
        for (int d = 0; d < 3; d++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_linear(v, (tkr_dtype)d, shapes[s][0], shapes[s][1], shapes[s][2], pool);
    tkr_pool_free(pool);
}

/* The SIMD products agree with the portable one to float rounding (they sum in different
 * orders), and AVX-512 equals AVX2 bit for bit: both compute each output as one FMA chain over k
 * in order. The fast mode (x rounded to bf16) stays within 2^-8 of the portable result's scale. */
static void test_linear_variants_agree(void) {
    if (n_variants() < 2) {
        printf("  (no SIMD kernels on this CPU: only the portable kernel exists here)\n");
        return;
    }
    enum { M = 11, K = 701, N = 45 }; /* K odd: the AVX-512 BF16 panels hold k pairs */
    for (int d = 0; d < 3; d++) {
        void *storage;
        float *wref;
        tkr_tensor w = make_weight((tkr_dtype)d, N, K, &storage, &wref);
        float *x = malloc(sizeof(float) * M * K), *y[V_COUNT];
        for (int i = 0; i < M * K; i++) x[i] = frand();
        for (int v = 0; v < n_variants(); v++) {
            y[v] = malloc(sizeof(float) * M * N);
            tkr_kctx c;
            variant_ctx(v, &c, NULL);
            CHECK(tkr_linear(&c, x, M, K, &w, NULL, y[v]) == TKR_OK, "linear status");
        }
        for (int v = 1; v < n_variants(); v++) {
            double maxdiff = 0;
            for (int i = 0; i < M * N; i++) maxdiff = fmax(maxdiff, fabs(y[0][i] - y[v][i]));
            double tol = v == V_FAST_BF16 && d == TKR_DT_BF16 ? 0.05 : 1e-4; /* |y| ~ 15 here */
            CHECK(maxdiff > 0 && maxdiff < tol, "dtype %d: generic vs %s max difference %g", d,
                  variant_name(v), maxdiff);
        }
        if (n_variants() > V_AVX512)
            CHECK(memcmp(y[V_AVX2], y[V_AVX512], sizeof(float) * M * N) == 0,
                  "dtype %d: avx2 and avx512 differ", d);
        for (int v = 0; v < n_variants(); v++) free(y[v]);
        free(storage);
        free(wref);
        free(x);
    }
}

static void test_norms(void) {
    enum { M = 3, D = 37 };
    float x[M * D], y[M * D], wv[D], bv[D];
    for (int i = 0; i < M * D; i++) x[i] = frand() * 3 + 0.5f;
    for (int i = 0; i < D; i++) {
        wv[i] = frand();
        bv[i] = frand();
    }
    tkr_tensor w = {.dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = wv};
    tkr_tensor b = {.dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = bv};
    for (int v = 0; v < n_variants(); v++) {
        tkr_kctx ctx;
        variant_ctx(v, &ctx, NULL);
        tkr_rmsnorm(&ctx, x, M, D, &w, 1e-6f, y);
        for (int m = 0; m < M; m++) {
            double ss = 0;
            for (int i = 0; i < D; i++) ss += (double)x[m * D + i] * x[m * D + i];
            double inv = 1 / sqrt(ss / D + 1e-6);
            for (int i = 0; i < D; i++)
                CHECK(fabs(y[m * D + i] - wv[i] * x[m * D + i] * inv) < 1e-5, "%s rms %d %d",
                      variant_name(v), m, i);
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
                CHECK(fabs(y[m * D + i] - want) < 1e-5, "%s ln %d %d: %g vs %g", variant_name(v),
                      m, i, y[m * D + i], want);
            }
        }
    }
}

/* Relative error of got against the double value, with an absolute floor far below anything
 * the model could notice. */
static double rel_err(double got, double want) {
    double d = fabs(got - want), mag = fabs(want);
    return mag < 1e-30 ? (d < 1e-37 ? 0 : d / 1e-30) : d / mag;
}

/* silu and QuickGELU over [-100, 100] (the vectorised exp's whole range, overflow included) and
 * -0 and a tiny value, within 4 ulp-ish of double; gelu_erf on a short grid. Also: the last
 * n % 8 elements get the same values as in the middle of an array. */
static void test_activations(void) {
    enum { N = 40003 };
    float *a = malloc(sizeof(float) * N), *up = malloc(sizeof(float) * N);
    float *s = malloc(sizeof(float) * N), *q = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        a[i] = -100.0f + 200.0f * (float)i / (N - 1);
        up[i] = 1.0f + 0.5f * frand();
    }
    a[1] = -0.0f;
    a[2] = 1e-30f;
    for (int v = 0; v < n_variants(); v++) {
        tkr_kctx ctx;
        variant_ctx(v, &ctx, NULL);
        memcpy(s, a, sizeof(float) * N);
        memcpy(q, a, sizeof(float) * N);
        tkr_silu_mul(&ctx, s, up, N);
        tkr_quick_gelu(&ctx, q, N);
        double es = 0, eq = 0;
        for (int i = 0; i < N; i++) {
            double x = a[i];
            float arg = -1.702f * a[i]; /* rounded to float, as the model's float32 tensor is */
            es = fmax(es, rel_err(s[i], x / (1 + exp(-x)) * up[i]));
            eq = fmax(eq, rel_err(q[i], x / (1 + exp((double)arg))));
        }
        printf("  %s: silu max relative error %.3g, quick gelu %.3g\n", variant_name(v), es, eq);
        CHECK(es < 5e-7, "%s silu max relative error %g", variant_name(v), es);
        CHECK(eq < 5e-7, "%s quick gelu max relative error %g", variant_name(v), eq);
        /* the last 3 elements alone (a tail) against the same values mid-array */
        float t[3], tu[3];
        memcpy(t, a + 1000, sizeof t);
        memcpy(tu, up + 1000, sizeof tu);
        tkr_silu_mul(&ctx, t, tu, 3);
        CHECK(memcmp(t, s + 1000, sizeof t) == 0, "%s silu of a tail differs", variant_name(v));
        memcpy(t, a + 1000, sizeof t);
        tkr_quick_gelu(&ctx, t, 3);
        CHECK(memcmp(t, q + 1000, sizeof t) == 0, "%s quick gelu of a tail differs", variant_name(v));
        float g[4] = {-2, -0.5f, 0, 3};
        tkr_gelu_erf(&ctx, g, 4);
        float gx[4] = {-2, -0.5f, 0, 3};
        for (int i = 0; i < 4; i++)
            CHECK(fabs(g[i] - 0.5 * gx[i] * (1 + erf(gx[i] / sqrt(2.0)))) < 1e-6, "gelu %d", i);
    }
    free(a);
    free(up);
    free(s);
    free(q);
}

/* The double-precision reference of one output row of attention (head h, query row i). */
static double attention_row_error(const float *q, const float *k, const float *v, const float *out,
                                  int H, int KV, int HD, int seq0, int seq1, int i, int h,
                                  bool causal) {
    int kh = h / (H / KV);
    int jend = causal ? i + 1 : seq1;
    double *sc = malloc(sizeof(double) * (size_t)(seq1 - seq0)), mx = -1e300, sum = 0, maxerr = 0;
    for (int j = seq0; j < jend; j++) {
        double d = 0;
        for (int x = 0; x < HD; x++) d += (double)q[((size_t)i * H + h) * HD + x] * k[((size_t)j * KV + kh) * HD + x];
        sc[j - seq0] = d / sqrt((double)HD);
        if (sc[j - seq0] > mx) mx = sc[j - seq0];
    }
    for (int j = seq0; j < jend; j++) sum += sc[j - seq0] = exp(sc[j - seq0] - mx);
    for (int x = 0; x < HD; x++) {
        double o = 0;
        for (int j = seq0; j < jend; j++) o += sc[j - seq0] / sum * v[((size_t)j * KV + kh) * HD + x];
        maxerr = fmax(maxerr, fabs(o - out[((size_t)i * H + h) * HD + x]));
    }
    free(sc);
    return maxerr;
}

/* Packed sequences, GQA 4:2, causal and not, head sizes on and off the AVX2 path (8, 16, 24 =
 * 16 + 8, 80 like the vision tower; 12 falls back to portable), each variant against double.
 * Then invariance, bit for bit: the middle sequence alone against the same sequence in the batch,
 * 1 thread against 3 threads, and last_row_only against the full run's last rows. Sequence lengths cross the 6-row and 16-key tiles, and the
 * 150-token one spans several query blocks and tasks. */
static void check_attention(int variant, int HD, tkr_pool *pool) {
    enum { H = 4, KV = 2 };
    int seq[4] = {0, 9, 159, 182};
    int T = seq[3];
    size_t nq = (size_t)T * H * HD, nkv = (size_t)T * KV * HD;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nkv);
    float *v = malloc(sizeof(float) * nkv), *out = malloc(sizeof(float) * nq);
    float *out1 = malloc(sizeof(float) * nq), *alone = malloc(sizeof(float) * nq);
    for (size_t i = 0; i < nq; i++) q[i] = frand() * 2;
    for (size_t i = 0; i < nkv; i++) {
        k[i] = frand() * 2;
        v[i] = frand();
    }
    tkr_kctx ctx, ctx1;
    variant_ctx(variant, &ctx, pool);
    variant_ctx(variant, &ctx1, NULL);
    for (int causal = 0; causal < 2; causal++) {
        tkr_attention_args a = {q, k, v, H * HD, KV * HD, out, H * HD, H, KV, HD, seq, 3, causal, false, 0, 0};
        CHECK(tkr_attention(&ctx, &a) == TKR_OK, "attention status");
        double maxerr = 0;
        for (int s = 0; s < 3; s++)
            for (int i = seq[s]; i < seq[s + 1]; i++)
                for (int h = 0; h < H; h++)
                    maxerr = fmax(maxerr, attention_row_error(q, k, v, out, H, KV, HD, seq[s],
                                                              seq[s + 1], i, h, causal));
        CHECK(maxerr < 1e-5, "%s hd %d causal=%d max error %g", variant_name(variant), HD, causal,
              maxerr);
        a.out = out1;
        tkr_attention(&ctx1, &a);
        CHECK(memcmp(out, out1, sizeof(float) * nq) == 0, "%s hd %d causal=%d: 1 and 3 threads differ",
              variant_name(variant), HD, causal);
        /* sequence 1 alone: rows [9, 159) moved to the start */
        int one[2] = {0, seq[2] - seq[1]};
        size_t off_q = (size_t)seq[1] * H * HD, off_kv = (size_t)seq[1] * KV * HD;
        tkr_attention_args b = {q + off_q, k + off_kv, v + off_kv, H * HD, KV * HD, alone, H * HD,
                                H, KV, HD, one, 1, causal, false, 0, 0};
        tkr_attention(&ctx, &b);
        CHECK(memcmp(alone, out + off_q, sizeof(float) * (size_t)one[1] * H * HD) == 0,
              "%s hd %d causal=%d: a sequence alone differs from the same sequence in a batch",
              variant_name(variant), HD, causal);
        /* last_row_only: q/out hold one row per sequence; the same bits as the full run */
        float q_last[3 * H * 80], o_last[3 * H * 80];
        for (int s = 0; s < 3; s++)
            memcpy(q_last + (size_t)s * H * HD, q + (size_t)(seq[s + 1] - 1) * H * HD, sizeof(float) * H * HD);
        tkr_attention_args c = {q_last, k, v, H * HD, KV * HD, o_last, H * HD, H, KV, HD, seq, 3,
                                causal, true, 0, 0};
        tkr_attention(&ctx, &c);
        for (int s = 0; s < 3; s++)
            CHECK(memcmp(o_last + (size_t)s * H * HD, out + (size_t)(seq[s + 1] - 1) * H * HD,
                         sizeof(float) * H * HD) == 0,
                  "%s hd %d causal=%d: last_row_only differs from the full run (sequence %d)",
                  variant_name(variant), HD, causal, s);
        /* query windows (the decoder's row chunks): windows of 7, 40 and all rows, crossing the
         * sequence boundaries; q/out hold the window's rows only; the same bits as the full run */
        static const int widths[3] = {7, 40, 182};
        for (int wi = 0; wi < 3; wi++)
            for (int r0 = 0; r0 < T; r0 += widths[wi]) {
                int n = T - r0 < widths[wi] ? T - r0 : widths[wi];
                memset(alone, 0, sizeof(float) * nq);
                tkr_attention_args w = {q + (size_t)r0 * H * HD, k, v, H * HD, KV * HD, alone, H * HD,
                                        H, KV, HD, seq, 3, causal, false, r0, r0 + n};
                CHECK(tkr_attention(&ctx, &w) == TKR_OK, "window status");
                CHECK(memcmp(alone, out + (size_t)r0 * H * HD, sizeof(float) * (size_t)n * H * HD) == 0,
                      "%s hd %d causal=%d: the query window [%d, %d) differs from the full run",
                      variant_name(variant), HD, causal, r0, r0 + n);
            }
    }
    free(q);
    free(k);
    free(v);
    free(out);
    free(out1);
    free(alone);
}

/* The AVX2 and portable attention agree to float rounding (hd 80, one 150-token sequence). */
static void test_attention_variants_agree(void) {
    if (n_variants() < 2) {
        printf("  (no AVX2 or NEON on this CPU: only the portable kernel exists here)\n");
        return;
    }
    enum { T = 150, H = 4, HD = 80 };
    float *q = malloc(sizeof(float) * T * H * HD), *k = malloc(sizeof(float) * T * H * HD);
    float *v = malloc(sizeof(float) * T * H * HD), *o0 = malloc(sizeof(float) * T * H * HD);
    float *o1 = malloc(sizeof(float) * T * H * HD);
    for (int i = 0; i < T * H * HD; i++) {
        q[i] = frand() * 2;
        k[i] = frand() * 2;
        v[i] = frand();
    }
    int seq[2] = {0, T};
    for (int causal = 0; causal < 2; causal++) {
        tkr_kctx g, a;
        tkr_kctx_init(&g, NULL, "generic");
        tkr_kctx_init(&a, NULL, NULL);
        tkr_attention_args args = {q, k, v, H * HD, H * HD, o0, H * HD, H, H, HD, seq, 1, causal, false, 0, 0};
        tkr_attention(&g, &args);
        args.out = o1;
        tkr_attention(&a, &args);
        double maxdiff = 0;
        for (int i = 0; i < T * H * HD; i++) maxdiff = fmax(maxdiff, fabs(o0[i] - o1[i]));
        CHECK(maxdiff < 2e-6, "causal=%d: generic vs %s max difference %g", causal, variant_name(1), maxdiff);
    }
    free(q);
    free(k);
    free(v);
    free(o0);
    free(o1);
}

static void test_attention(void) {
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(3, &pool, &e) == TKR_OK, "pool");
    int hds[] = {8, 12, 16, 24, 80};
    for (int v = 0; v < n_variants(); v++)
        for (size_t i = 0; i < sizeof hds / sizeof hds[0]; i++) check_attention(v, hds[i], pool);
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

/* Run-time selection: the caps and detection of tkr_kctx_init on this architecture. Under qemu
 * (tests/arm64/run.sh) TKR_EXPECT_NEON_DOT=0/1 says whether the emulated CPU has the dot product. */
static void test_kctx_caps(void) {
    tkr_kctx c, g;
    tkr_kctx_init(&c, NULL, NULL);
    char d[256];
    tkr_kctx_describe(&c, d, sizeof d);
#if defined(__aarch64__)
    tkr_kctx n;
    CHECK(c.neon && !c.avx2 && !c.avx512, "aarch64: NEON expected, no x86 flags");
    CHECK(!strncmp(d, "neon", 4), "describe: %s", d);
    CHECK(tkr_kctx_init(&n, NULL, "neon") && n.neon && !n.neon_dot, "cap neon keeps NEON, drops dotprod");
    CHECK(tkr_kctx_init(&n, NULL, "neon-dot") && n.neon && n.neon_dot == c.neon_dot, "cap neon-dot");
    const char *want = getenv("TKR_EXPECT_NEON_DOT");
    if (want && *want) CHECK(c.neon_dot == (atoi(want) != 0), "neon_dot is %d, expected %s", c.neon_dot, want);
#else
    CHECK(!c.neon && !c.neon_dot, "no NEON flags off aarch64");
#endif
    CHECK(tkr_kctx_init(&g, NULL, "generic") && !g.neon && !g.neon_dot && !g.avx2 && !g.avx512, "generic");
    tkr_kctx_describe(&g, d, sizeof d);
    CHECK(!strncmp(d, "generic", 7), "describe generic: %s", d);
    CHECK(!tkr_kctx_init(&g, NULL, "no-such-isa"), "an unknown cap is refused");
}

int main(void) {
    char kernels[256];
    tkr_kctx auto_ctx;
    tkr_kctx_init(&auto_ctx, NULL, NULL);
    tkr_kctx_describe(&auto_ctx, kernels, sizeof kernels);
    printf("# kernels: %s\n", kernels);
    RUN(test_conversions);
    RUN(test_linear);
    RUN(test_linear_variants_agree);
    RUN(test_norms);
    RUN(test_activations);
    RUN(test_attention);
    RUN(test_attention_variants_agree);
    RUN(test_rope);
    RUN(test_kctx_caps);
    return test_summary();
}

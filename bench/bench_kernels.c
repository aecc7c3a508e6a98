/* bench_kernels.c - each compute kernel at the Ops-MM-2B shapes: checked first, then timed.
 *
 *   build/bench/bench_kernels [--threads N] [--seconds S] [--only linear|attention|eltwise]
 *                             [--generic] [--long]
 *
 * Like llm.c's dev/ benches, every timing is preceded by a correctness check, so a fast wrong
 * kernel never reports a number:
 *   linear     sampled outputs against a double-precision dot product (BF16 weights, as in the
 *              2B checkpoint), and one row computed alone must equal the same row in the batch
 *              bit for bit (batch invariance). GFLOP/s = 2 M N K / time.
 *   attention  sampled query rows against a double-precision softmax(q k^T / sqrt(d)) v.
 *              GFLOP/s = 4 T_q T_k hd heads / time (halved for causal).
 *   eltwise    against double formulas (error relative to max(|value|, 1)); ns per element.
 * The kernels run as the model runs them: AVX2 when the CPU has it, the portable versions with
 * --generic (or TKR_FORCE_GENERIC=1). --long adds the 4900-token vision attention (the 1280-token
 * image cap), which takes tens of seconds with the portable kernel. Each timing is the median of
 * repeats filling --seconds (default 1). */
#include "kernels/kernels.h"
#include "util/platform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    tkr_kctx ctx;
    double seconds;
    int failures;
    const char *only_shape; /* --shape: one linear shape by name */
    int only_m;             /* --m: one row count */
    bool cold;              /* --cold: weights not in cache */
    bool packed;            /* --packed: weights repacked as a model load does (tkr_linear_repack) */
} bench;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*bench_fn)(void *arg);

/* Median seconds of one call: one warm-up, then repeats until b->seconds have passed (at least
 * 3 and at most 200). */
/* CPU seconds used by the process (all threads), to see through a shared machine's load. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Also sets *cpu_per_call: CPU seconds per call over the same repeats (mean), and *min_s: the
 * fastest call (on a shared machine the least disturbed one; a steadier A/B figure than the median). */
static double time_median_cpu_min(const bench *b, bench_fn fn, void *arg, double *cpu_per_call, double *min_s) {
    double t[200];
    int n = 0;
    fn(arg);
    double start = tkr_now_seconds(), c0 = cpu_seconds();
    while (n < 200 && (n < 3 || tkr_now_seconds() - start < b->seconds)) {
        double t0 = tkr_now_seconds();
        fn(arg);
        t[n++] = tkr_now_seconds() - t0;
    }
    if (cpu_per_call) *cpu_per_call = (cpu_seconds() - c0) / n;
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    if (min_s) *min_s = t[0];
    return t[n / 2];
}

static double time_median_cpu(const bench *b, bench_fn fn, void *arg, double *cpu_per_call) {
    return time_median_cpu_min(b, fn, arg, cpu_per_call, NULL);
}

static double time_median(const bench *b, bench_fn fn, void *arg) {
    return time_median_cpu(b, fn, arg, NULL);
}

/* ---- linear ---------------------------------------------------------------------------- */

typedef struct {
    const tkr_kctx *ctx;
    const float *x;     /* [M, K] */
    int M, K;
    const tkr_tensor *w; /* [N, K] BF16 */
    float *y;           /* [M, N] */
    const uint16_t *cold; /* --cold: COLD_COPIES copies of the weights, used in turn, else NULL */
    int turn;
} linear_arg;

/* --cold: the weights cycle through copies far larger than any cache, as the model's 2.6 GB
 * of weights do (a single matrix stays in L3 between repeats and flatters the kernel). */
enum { COLD_COPIES = 24 };

static void run_linear(void *p) {
    linear_arg *a = p;
    if (a->cold) {
        tkr_tensor w = *a->w;
        w.data = a->cold + (w.nbytes / 2) * (size_t)(a->turn++ % COLD_COPIES);
        tkr_linear(a->ctx, a->x, a->M, a->K, &w, NULL, a->y);
        return;
    }
    tkr_linear(a->ctx, a->x, a->M, a->K, a->w, NULL, a->y);
}

static void bench_linear(bench *b, const char *name, int M, int K, int N) {
    if (b->only_shape && strcmp(b->only_shape, name)) return;
    if (b->only_m && b->only_m != M) return;
    size_t nw = (size_t)N * K;
    uint16_t *wd = xmalloc(nw * 2);
    for (size_t i = 0; i < nw; i++) wd[i] = tkr_f32_to_bf16(frand() * 0.05f);
    tkr_tensor w = {.name = "w", .dtype = TKR_DT_BF16, .ndim = 2, .shape = {N, K}, .data = wd,
                    .nbytes = nw * 2};
    float *x = xmalloc(sizeof(float) * (size_t)M * K);     /* [M, K] */
    float *y = xmalloc(sizeof(float) * (size_t)M * N);     /* [M, N] */
    float *y1 = xmalloc(sizeof(float) * (size_t)N);        /* [1, N] the last row alone */
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    tkr_packed_set *set = NULL;
    const tkr_tensor *wp = &w, **slot[] = {&wp};
    if (b->packed && tkr_linear_repack(&b->ctx, slot, 1, false, &set) != TKR_OK) wp = &w;
    linear_arg a = {&b->ctx, x, M, K, wp, y, NULL, 0};
    uint16_t *cold = NULL;
    if (b->cold) { /* copies of the weight as the kernel reads it (packed or not), 64-byte aligned */
        if (posix_memalign((void **)&cold, 64, wp->nbytes * COLD_COPIES) != 0) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        for (int c = 0; c < COLD_COPIES; c++) memcpy((char *)cold + wp->nbytes * (size_t)c, wp->data, wp->nbytes);
    }
    run_linear(&a);
    /* check: sampled outputs against double, and the last row alone against the batch */
    double maxerr = 0;
    bool fast = b->ctx.fast_bf16 && b->ctx.avx512_bf16; /* then x is rounded to bf16 first */
    for (int s = 0; s < 256; s++) {
        int m = (int)((frand() + 1) * 0.5f * M), n = (int)((frand() + 1) * 0.5f * N);
        if (m >= M) m = M - 1;
        if (n >= N) n = N - 1;
        double ref = 0;
        for (int k = 0; k < K; k++) {
            float xv = x[(size_t)m * K + k];
            if (fast) xv = tkr_bf16_to_f32(tkr_f32_to_bf16(xv));
            ref += (double)xv * tkr_bf16_to_f32(wd[(size_t)n * K + k]);
        }
        double e = fabs(ref - y[(size_t)m * N + n]);
        if (e > maxerr) maxerr = e;
    }
    tkr_linear(&b->ctx, x + (size_t)(M - 1) * K, 1, K, wp, NULL, y1);
    int invariant = memcmp(y1, y + (size_t)(M - 1) * N, sizeof(float) * (size_t)N) == 0;
    double tol = 1e-5 * sqrt((double)K);
    int ok = maxerr < tol && invariant;
    a.cold = cold;
    double cpu = 0, tmin = 0, t = ok ? time_median_cpu_min(b, run_linear, &a, &cpu, &tmin) : 0;
    free(cold);
    tkr_packed_set_free(set);
    printf("linear %-8s M=%-5d K=%-5d N=%-5d %9.3f ms %7.1f GFLOP/s %6.1f per cpu-s %6.1f at min  max err %.2e%s%s\n",
           name, M, K, N, t * 1e3, ok ? 2.0 * M * N * K / t * 1e-9 : 0.0,
           ok ? 2.0 * M * N * K / cpu * 1e-9 : 0.0, ok ? 2.0 * M * N * K / tmin * 1e-9 : 0.0, maxerr,
           maxerr < tol ? "" : " TOO LARGE", invariant ? "" : " NOT BATCH-INVARIANT");
    if (!ok) b->failures++;
    free(wd);
    free(x);
    free(y);
    free(y1);
}

/* ---- attention ------------------------------------------------------------------------- */

typedef struct {
    const tkr_kctx *ctx;
    tkr_attention_args args;
} att_arg;

static void run_attention(void *p) {
    att_arg *a = p;
    tkr_attention(a->ctx, &a->args);
}

/* One sequence of T tokens; q/k/v live in one fused row [T, (H + 2 KV) hd] like the vision qkv. */
static void bench_attention(bench *b, const char *name, int T, int H, int KV, int hd, bool causal) {
    int row = (H + 2 * KV) * hd;
    float *qkv = xmalloc(sizeof(float) * (size_t)T * row);  /* [T, (H + 2 KV) hd] */
    float *out = xmalloc(sizeof(float) * (size_t)T * H * hd); /* [T, H hd] */
    for (size_t i = 0; i < (size_t)T * row; i++) qkv[i] = frand() * 1.5f;
    int seq[2] = {0, T};
    att_arg a = {&b->ctx, {qkv, qkv + (size_t)H * hd, qkv + (size_t)(H + KV) * hd, row, row, out,
                           H * hd, H, KV, hd, seq, 1, causal, false, 0, 0}};
    double t0 = tkr_now_seconds();
    run_attention(&a);
    double first = tkr_now_seconds() - t0;
    /* check 24 sampled (row, head) pairs against double */
    double maxerr = 0, *sc = xmalloc(sizeof(double) * (size_t)T);
    for (int s = 0; s < 24; s++) {
        int i = s == 0 ? T - 1 : s == 1 ? 0 : (int)((frand() + 1) * 0.5f * (T - 1));
        int h = s % H, kh = h / (H / KV);
        const float *q = qkv + (size_t)i * row + (size_t)h * hd;
        int n = causal ? i + 1 : T;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            const float *k = a.args.k + (size_t)j * row + (size_t)kh * hd;
            double d = 0;
            for (int c = 0; c < hd; c++) d += (double)q[c] * k[c];
            sc[j] = d / sqrt((double)hd);
            if (sc[j] > mx) mx = sc[j];
        }
        for (int j = 0; j < n; j++) sum += sc[j] = exp(sc[j] - mx);
        for (int c = 0; c < hd; c++) {
            double o = 0;
            for (int j = 0; j < n; j++) o += sc[j] * a.args.v[(size_t)j * row + (size_t)kh * hd + c];
            double e = fabs(o / sum - out[(size_t)i * H * hd + (size_t)h * hd + c]);
            if (e > maxerr) maxerr = e;
        }
    }
    free(sc);
    int ok = maxerr < 1e-5;
    /* a single timed run when the first took long (the portable kernel at T=4900) */
    double t = !ok ? 0 : first > 4 * b->seconds ? first : time_median(b, run_attention, &a);
    double flops = 4.0 * T * T * hd * H * (causal ? 0.5 : 1.0);
    printf("attention %-10s T=%-5d H=%-2d KV=%-2d hd=%-3d %s %9.3f ms %7.1f GFLOP/s   max err %.2e%s\n",
           name, T, H, KV, hd, causal ? "causal" : "full  ", t * 1e3, ok ? flops / t * 1e-9 : 0.0,
           maxerr, ok ? "" : " TOO LARGE");
    if (!ok) b->failures++;
    free(qkv);
    free(out);
}

/* ---- element-wise ---------------------------------------------------------------------- */

typedef struct {
    const tkr_kctx *ctx;
    int kind, M, D;
    float *x, *y, *up;
    const float *src;
    tkr_tensor *w, *bias;
    const float *cos_t, *sin_t;
} elt_arg;

enum { ELT_SILU, ELT_QGELU, ELT_GELU, ELT_RMS, ELT_LN, ELT_ROPE };

static void run_elt(void *p) {
    elt_arg *a = p;
    size_t n = (size_t)a->M * a->D;
    switch (a->kind) {
    case ELT_SILU:
        memcpy(a->x, a->src, n * sizeof(float));
        tkr_silu_mul(a->ctx, a->x, a->up, n);
        break;
    case ELT_QGELU:
        memcpy(a->x, a->src, n * sizeof(float));
        tkr_quick_gelu(a->ctx, a->x, n);
        break;
    case ELT_GELU:
        memcpy(a->x, a->src, n * sizeof(float));
        tkr_gelu_erf(a->ctx, a->x, n);
        break;
    case ELT_RMS: tkr_rmsnorm(a->ctx, a->src, a->M, a->D, a->w, 1e-6f, a->y); break;
    case ELT_LN: tkr_layernorm(a->ctx, a->src, a->M, a->D, a->w, a->bias, 1e-6f, a->y); break;
    case ELT_ROPE:
        memcpy(a->x, a->src, n * sizeof(float));
        tkr_rope_apply(a->x, a->M, a->D / 128, 128, a->cos_t, a->sin_t);
        break;
    }
}

/* The double value the kernel should give for element i (row i / D). */
static double elt_ref(const elt_arg *a, size_t i) {
    double x = a->src[i];
    int D = a->D;
    size_t r = i / (size_t)D;
    const float *row = a->src + r * (size_t)D;
    const float *wv = a->w->data, *bv = a->bias->data;
    switch (a->kind) {
    case ELT_SILU: return x / (1 + exp(-x)) * a->up[i];
    case ELT_QGELU: return x / (1 + exp(-1.702 * x));
    case ELT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case ELT_RMS: {
        double ss = 0;
        for (int c = 0; c < D; c++) ss += (double)row[c] * row[c];
        return wv[i % (size_t)D] * x / sqrt(ss / D + 1e-6);
    }
    case ELT_LN: {
        double mean = 0, var = 0;
        for (int c = 0; c < D; c++) mean += row[c];
        mean /= D;
        for (int c = 0; c < D; c++) var += (row[c] - mean) * (row[c] - mean);
        return (x - mean) / sqrt(var / D + 1e-6) * wv[i % (size_t)D] + bv[i % (size_t)D];
    }
    case ELT_ROPE: {
        int col = (int)(i % (size_t)D), d = col % 128, half = 64, f = d % half;
        size_t base = i - (size_t)d;
        double c = a->cos_t[r * half + f], s = a->sin_t[r * half + f];
        double lo = a->src[base + f], hi = a->src[base + f + half];
        return d < half ? lo * c - hi * s : hi * c + lo * s;
    }
    }
    return 0;
}

static void bench_elt(bench *b, const char *name, int kind, int M, int D) {
    size_t n = (size_t)M * D;
    float *src = xmalloc(n * sizeof(float)), *x = xmalloc(n * sizeof(float));
    float *y = xmalloc(n * sizeof(float)), *up = xmalloc(n * sizeof(float));
    float *wv = xmalloc((size_t)D * sizeof(float)), *bv = xmalloc((size_t)D * sizeof(float));
    float *tab = xmalloc((size_t)M * 64 * 2 * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        src[i] = frand() * 6.0f;
        up[i] = frand();
    }
    for (int i = 0; i < D; i++) {
        wv[i] = frand();
        bv[i] = frand();
    }
    for (int i = 0; i < M * 64; i++) {
        tab[i] = cosf(0.01f * (float)i);
        tab[M * 64 + i] = sinf(0.01f * (float)i);
    }
    tkr_tensor w = {.name = "w", .dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = wv, .nbytes = (size_t)D * 4};
    tkr_tensor bias = {.name = "b", .dtype = TKR_DT_F32, .ndim = 1, .shape = {D}, .data = bv, .nbytes = (size_t)D * 4};
    elt_arg a = {&b->ctx, kind, M, D, x, y, up, src, &w, &bias, tab, tab + (size_t)M * 64};
    run_elt(&a);
    const float *got = kind == ELT_RMS || kind == ELT_LN ? y : x;
    double maxrel = 0;
    for (int s = 0; s < 2000; s++) {
        size_t i = (size_t)((frand() + 1) * 0.5 * (double)n);
        if (i >= n) i = n - 1;
        double ref = elt_ref(&a, i), e = fabs(got[i] - ref) / (fabs(ref) > 1 ? fabs(ref) : 1);
        if (e > maxrel) maxrel = e;
    }
    int ok = maxrel < 2e-6;
    double t = ok ? time_median(b, run_elt, &a) : 0;
    printf("eltwise %-11s M=%-5d D=%-5d %9.3f ms %7.3f ns/elem   max rel err %.2e%s\n", name, M, D,
           t * 1e3, t * 1e9 / (double)n, maxrel, ok ? "" : " TOO LARGE");
    if (!ok) b->failures++;
    free(src);
    free(x);
    free(y);
    free(up);
    free(wv);
    free(bv);
    free(tab);
}

int main(int argc, char **argv) {
    int threads = 2;
    const char *only = NULL;
    bool generic = getenv("TKR_FORCE_GENERIC") && *getenv("TKR_FORCE_GENERIC") == '1';
    bool long_att = false, fast = false;
    const char *cap = NULL;
    bench b = {.seconds = 1.0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) b.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--generic")) generic = true;
        else if (!strcmp(argv[i], "--long")) long_att = true;
        else if (!strcmp(argv[i], "--kernels") && i + 1 < argc) cap = argv[++i];
        else if (!strcmp(argv[i], "--fast-bf16")) fast = true;
        else if (!strcmp(argv[i], "--cold")) b.cold = true;
        else if (!strcmp(argv[i], "--packed")) b.packed = true;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) b.only_shape = argv[++i];
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) b.only_m = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_kernels [--threads N] [--seconds S] "
                            "[--only linear|attention|eltwise] [--generic] [--long]\n"
                            "                     [--kernels generic|avx2|avx512] [--fast-bf16] [--shape NAME] [--m M] [--cold] [--packed]\n");
            return 2;
        }
    }
    tkr_error e;
    tkr_pool *pool = NULL;
    if (tkr_pool_init(threads, &pool, &e) != TKR_OK) {
        fprintf(stderr, "pool: %s\n", e.message);
        return 1;
    }
    tkr_kctx_init(&b.ctx, pool, (generic) ? "generic" : cap);
    b.ctx.fast_bf16 = fast;
    char desc[256];
    tkr_kctx_describe(&b.ctx, desc, sizeof desc);
    printf("kernels: %s, %d threads\n", desc, threads);
    if (!only || !strcmp(only, "linear")) {
        static const struct { const char *name; int K, N; } shapes[] = {
            {"q/o", 1536, 1536}, {"k/v", 1536, 256}, {"gate/up", 1536, 8960}, {"down", 8960, 1536},
            {"v.qkv", 1280, 3840}, {"v.fc2", 5120, 1280},
        };
        static const int Ms[] = {1, 32, 128, 1120};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            if (b.only_m > 0) { /* --m: that row count alone, listed or not (e.g. 2048: 32 x 64) */
                bench_linear(&b, shapes[s].name, b.only_m, shapes[s].K, shapes[s].N);
                continue;
            }
            for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
                bench_linear(&b, shapes[s].name, Ms[m], shapes[s].K, shapes[s].N);
        }
    }
    if (!only || !strcmp(only, "attention")) {
        bench_attention(&b, "text", 128, 12, 2, 128, true);
        bench_attention(&b, "vision", 1120, 16, 16, 80, false);
        if (long_att) bench_attention(&b, "vision-cap", 4900, 16, 16, 80, false);
    }
    if (!only || !strcmp(only, "eltwise")) {
        bench_elt(&b, "silu_mul", ELT_SILU, 128, 8960);
        bench_elt(&b, "quick_gelu", ELT_QGELU, 1120, 5120);
        bench_elt(&b, "gelu_erf", ELT_GELU, 280, 5120);
        bench_elt(&b, "rmsnorm", ELT_RMS, 128, 1536);
        bench_elt(&b, "layernorm", ELT_LN, 1120, 1280);
        bench_elt(&b, "rope", ELT_ROPE, 128, 1536);
    }
    tkr_pool_free(pool);
    if (b.failures) printf("%d CHECK FAILURES\n", b.failures);
    return b.failures ? 1 : 0;
}

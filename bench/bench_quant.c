/* bench_quant.c - the quantized linear (tkr_linear on Q8_0 / Q4_0 / Q4_K / Q6_K weights) at the
 * Ops-MM-2B text shapes, per type and kernel version, and the full-model estimate.
 *
 *   build/bench/bench_quant [--threads N] [--seconds S] [--caps generic,avx2,avx2-vnni,avx512]
 *                           [--types q8_0,q4_0,q4_k,q6_k] [--m 1,128,2048] [--cpu] [--min]
 *
 * Each case is checked before it is timed (sampled outputs against a double-precision product
 * of the dequantized weights and the activations, within the activation-quantization bound), so
 * a fast wrong kernel never reports a number. GFLOP/s = 2 M N K / time (median of repeats).
 * The estimate line sums, per type, 28 layers x (q, k, v, o, gate, up, down) at each M; for
 * Q4_K_M it uses llama.cpp's mix for 28 layers (ffn_down and attn_v in Q6_K on 14 layers).
 * --cold C cycles the repeats through C copies of the weights (C x their size in memory), so that
 * they come from memory as in the model (28 layers) instead of staying in the caches. */
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "util/platform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float frand(void) {
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

typedef struct {
    const tkr_kctx *ctx;
    const float *x;
    int M, K;
    const tkr_tensor *w; /* [copies]: the repeats cycle through them */
    int copies;
    float *y;
} run_arg;

/* --cpu: process CPU seconds divided by the thread count instead of wall time: on a machine
 * shared with other jobs, that is what the kernel itself costs (not comparable with peers'
 * wall times, so only for kernel development). */
static int use_cpu_time, use_min, n_threads_g = 1;
static double now_s(void) {
    if (!use_cpu_time) return tkr_now_seconds();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (ts.tv_sec + ts.tv_nsec * 1e-9) / n_threads_g;
}

static double time_median(double seconds, run_arg *a) {
    double t[100];
    int n = 0;
    tkr_linear(a->ctx, a->x, a->M, a->K, a->w, NULL, a->y);
    double start = tkr_now_seconds();
    while (n < 100 && (n < 3 || tkr_now_seconds() - start < seconds)) {
        double t0 = now_s();
        tkr_linear(a->ctx, a->x, a->M, a->K, &a->w[(n + 1) % a->copies], NULL, a->y);
        t[n++] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return use_min ? t[0] : t[n / 2];
}

/* the shapes: N x K of q/o, k/v, gate/up, down */
static int shapes[4][2] = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960}};
static const char *shape_names[4] = {"q/o", "k/v", "gate/up", "down"};
static const int per_layer[4] = {2, 2, 2, 1};

static bool in_list(const char *list, const char *item) {
    if (!list) return true;
    size_t n = strlen(item);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncasecmp(p, item, n) == 0) return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

/* Checks sampled outputs (see the header); returns false on a mismatch. */
static bool check(const float *x, int M, int K, int N, const tkr_tensor *w, const float *y, tkr_dtype t) {
    const int blk = (t == TKR_DT_Q8_0 || t == TKR_DT_Q4_0) ? 32 : 256;
    float *wd = xmalloc(sizeof(float) * (size_t)K);
    bool ok = true;
    for (int s = 0; s < 24 && ok; s++) {
        int m = (s * 7919) % M, n = (s * 104729) % N;
        tkr_weight_row_f32(w, n, wd);
        double ref = 0, bound = 0;
        for (int b = 0; b < K / blk; b++) {
            float amax = 0;
            for (int k = b * blk; k < (b + 1) * blk; k++) amax = fmaxf(amax, fabsf(x[(size_t)m * K + k]));
            for (int k = b * blk; k < (b + 1) * blk; k++) {
                ref += (double)wd[k] * x[(size_t)m * K + k];
                bound += fabs(wd[k]) * amax / 127 * (0.5 + 127.0 / 2048);
            }
        }
        bound = bound * 1.001 + 1e-5 * (fabs(ref) + 1);
        if (!(fabs(y[(size_t)m * N + n] - ref) <= bound)) {
            fprintf(stderr, "CHECK FAILED %s M=%d N=%d K=%d (%d,%d): %g vs %g\n", tkr_dtype_name(t), M, N, K, m, n,
                    y[(size_t)m * N + n], ref);
            ok = false;
        }
    }
    free(wd);
    return ok;
}

int main(int argc, char **argv) {
    int threads = 2;
    double seconds = 0.5;
    const char *caps = "auto", *types = NULL, *ms = "1,128,2048";
    int copies = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--caps") && i + 1 < argc) caps = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) ms = argv[++i];
        else if (!strcmp(argv[i], "--cpu")) use_cpu_time = 1;
        else if (!strcmp(argv[i], "--cold") && i + 1 < argc) copies = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min")) use_min = 1; /* fastest repeat instead of the median */
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) { /* NxK replaces the q/o shape */
            if (sscanf(argv[++i], "%dx%d", &shapes[0][0], &shapes[0][1]) != 2) return 2;
        }
        else {
            fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--caps LIST] [--types LIST] [--m LIST] [--cpu] [--min]\n"
                            "       [--cold COPIES] [--shape NxK]\n", argv[0]);
            return 2;
        }
    }
    if (copies < 1 || copies > 256) {
        fprintf(stderr, "--cold: 1 to 256 copies\n");
        return 2;
    }
    n_threads_g = threads;
    tkr_pool *pool = NULL;
    tkr_error e;
    if (tkr_pool_init(threads, &pool, &e) != TKR_OK) {
        fprintf(stderr, "pool: %s\n", e.message);
        return 1;
    }
    const tkr_dtype tlist[4] = {TKR_DT_Q8_0, TKR_DT_Q4_0, TKR_DT_Q4_K, TKR_DT_Q6_K};
    const int mlist[4] = {1, 128, 2048, 16};
    const char *mnames[4] = {"1", "128", "2048", "16"};
    const char *cap_all[5] = {"auto", "generic", "avx2", "avx2-vnni", "avx512"};
    int failures = 0;
    /* t_layer[cap][type][m][shape] seconds */
    static double tt[5][4][4][4];
    for (int ci = 0; ci < 5; ci++) {
        if (!in_list(caps, cap_all[ci])) continue;
        tkr_kctx ctx;
        tkr_kctx_init(&ctx, pool, cap_all[ci]);
        char desc[256];
        tkr_kctx_describe(&ctx, desc, sizeof desc);
        printf("# kernels %s: %s, %d threads\n", cap_all[ci], desc, threads);
        for (int ti = 0; ti < 4; ti++) {
            if (types && !in_list(types, tkr_dtype_name(tlist[ti]))) continue;
            for (int si = 0; si < 4; si++) {
                const int N = shapes[si][0], K = shapes[si][1];
                size_t rb = tkr_dtype_row_bytes(tlist[ti], K);
                uint8_t *wq = xmalloc(rb * N * copies);
                float *row = xmalloc(sizeof(float) * K);
                for (int n = 0; n < N; n++) {
                    for (int k = 0; k < K; k++) row[k] = frand() * 0.05f;
                    tkr_quantize_row(tlist[ti], row, wq + rb * n, K);
                }
                free(row);
                tkr_tensor *wc = xmalloc(sizeof(tkr_tensor) * copies);
                for (int c = 0; c < copies; c++) {
                    if (c) memcpy(wq + rb * N * c, wq, rb * N);
                    wc[c] = (tkr_tensor){.name = "w", .dtype = tlist[ti], .ndim = 2, .shape = {N, K},
                                         .data = wq + rb * N * c, .nbytes = rb * N, .aligned = true};
                }
                const tkr_tensor w = wc[0];
                for (int mi = 0; mi < 4; mi++) {
                    if (!in_list(ms, mnames[mi])) continue;
                    const int M = mlist[mi];
                    float *x = xmalloc(sizeof(float) * (size_t)M * K), *y = xmalloc(sizeof(float) * (size_t)M * N);
                    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * (i % 61 == 7 ? 6.0f : 1.0f);
                    run_arg a = {&ctx, x, M, K, wc, copies, y};
                    tkr_linear(&ctx, x, M, K, &w, NULL, y);
                    if (!check(x, M, K, N, &w, y, tlist[ti])) {
                        failures++;
                    } else {
                        double s = time_median(seconds, &a);
                        tt[ci][ti][mi][si] = s;
                        printf("%-6s %-5s M=%-5d %-8s N=%-5d K=%-5d %9.3f ms %8.1f GFLOP/s\n", cap_all[ci],
                               tkr_dtype_name(tlist[ti]), M, shape_names[si], N, K, s * 1e3,
                               2.0 * M * N * K / s / 1e9);
                        fflush(stdout);
                    }
                    free(x);
                    free(y);
                }
                free(wq);
                free(wc);
            }
        }
        /* full-model estimate: 28 layers of linear layers, per M */
        for (int mi = 0; mi < 3; mi++) {
            if (!in_list(ms, mnames[mi])) continue;
            for (int ti = 0; ti < 4; ti++) {
                double s = 0;
                for (int si = 0; si < 4; si++) s += per_layer[si] * tt[ci][ti][mi][si];
                if (tt[ci][ti][mi][0] > 0 && tt[ci][ti][mi][3] > 0)
                    printf("estimate %s %s M=%d: 28 layers of linears %.3f s\n", cap_all[ci],
                           tkr_dtype_name(tlist[ti]), mlist[mi], 28 * s);
            }
            /* Q4_K_M: Q4_K everywhere except attn_v and ffn_down on 14 of 28 layers (Q6_K) */
            double *q4 = tt[ci][2][mi], *q6 = tt[ci][3][mi];
            if (q4[0] > 0 && q4[3] > 0 && q6[1] > 0 && q6[3] > 0) {
                double l4 = 2 * q4[0] + 2 * q4[1] + 2 * q4[2] + q4[3];
                double l6 = 2 * q4[0] + q4[1] + q6[1] + 2 * q4[2] + q6[3];
                printf("estimate %s Q4_K_M M=%d: 28 layers of linears %.3f s\n", cap_all[ci], mlist[mi],
                       14 * l4 + 14 * l6);
            }
        }
    }
    tkr_pool_free(pool);
    if (failures) printf("%d checks FAILED\n", failures);
    return failures ? 1 : 0;
}

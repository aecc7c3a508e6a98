/* bench_gpu.c - throughput and latency of the engine through the C API, the numbers the GPU
 * issue asks for, on the same inputs as bench/bench_gpu_hf.py gives HF transformers:
 *   text: batches of B prompts of exactly L tokens (random ids after the template), tokens/s;
 *         one L=128 prompt end to end, median latency;
 *   images: batches of N images (one per item, empty text) of 256 and 1280 image tokens,
 *         images/s of tkr_embed_prepared (decode + resize + patches are prepared beforehand,
 *         on all cores, and timed separately), and end to end through tkr_embed from the files
 *         (e2e: it prepares on the model's --threads, then computes); one 256-token image end to
 *         end through tkr_embed (decode and resize included), median latency.
 * Prints one JSON object per measurement.
 *
 *   bench_gpu -m MODEL_DIR [--device D] [--precision P] [--img256 FILE] [--img1280 FILE]
 *             [--images N] [--runs R] [--text-only] [--images-only] [--quick] [--threads N] [--replicas R]
 * --images-only: only the image measurements (for per-op profiles of the vision pass alone).
 * --text B L: only the throughput of batches of B prompts of L tokens (per-op profiles of one shape).
 * --quick: only 64 x 128 text, one 128-token text and N images of 256 tokens (the 7B row).
 */
#include "tkr_embed.h"
#include "util/platform.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const tkr_error *e) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, e ? e->message : "");
    exit(1);
}

/* The same pseudo-random ids on every run (and in the HF script): an LCG over [1000, 150000). */
static void fill_ids(int32_t *ids, int n, uint64_t seed) {
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = 1000 + (int32_t)((s >> 33) % 149000);
    }
}

static int template_tokens(tkr_model *m) {
    int32_t ids[8];
    fill_ids(ids, 8, 1);
    tkr_item it = tkr_item_default();
    it.token_ids = ids;
    it.n_token_ids = 8;
    tkr_prepared *p;
    tkr_error e;
    if (tkr_prepare(m, &it, &p, &e) != TKR_OK) die("prepare", &e);
    int n = tkr_prepared_tokens(p) - 8;
    tkr_prepared_free(p);
    return n;
}

static void embed_or_die(tkr_model *m, const tkr_item *items, int n, float *out, tkr_result *res) {
    tkr_error e;
    if (tkr_embed(m, items, n, out, res, &e) != TKR_OK) die("embed", &e);
    for (int i = 0; i < n; i++)
        if (res[i].status != TKR_OK) {
            fprintf(stderr, "bench_gpu: item %d: %s\n", i, res[i].message);
            exit(1);
        }
}

/* --replicas R: R engines of the same model on the same GPU, each embedding its share of the
 * batch on its own thread (as R server replicas on one GPU would): whether two streams of work
 * fill the GPU better than one. */
#define MAX_REPLICAS 8

typedef struct {
    tkr_model *m;
    const tkr_item *items;
    tkr_prepared **prep;
    int n;
    float *out;
    tkr_result *res;
} share_job;

static void *run_share(void *arg) {
    share_job *j = arg;
    tkr_error e;
    if (!j->prep) embed_or_die(j->m, j->items, j->n, j->out, j->res);
    else if (tkr_embed_prepared(j->m, j->prep, j->n, j->out, j->res, &e) != TKR_OK) die("embed images", &e);
    return NULL;
}

/* One run over n items (tkr_embed of items, or tkr_embed_prepared of prep when not NULL), split
 * over the R models; seconds until every share is done. */
static double run_split(tkr_model **ms, int R, const tkr_item *items, tkr_prepared **prep, int n, float *out,
                        tkr_result *res) {
    const int D = tkr_model_dim(ms[0]);
    double t0 = tkr_now_seconds();
    if (R == 1) {
        share_job j = {ms[0], items, prep, n, out, res};
        run_share(&j);
        return tkr_now_seconds() - t0;
    }
    pthread_t th[MAX_REPLICAS];
    share_job jobs[MAX_REPLICAS];
    for (int r = 0; r < R; r++) {
        const int lo = n * r / R, hi = n * (r + 1) / R;
        jobs[r] = (share_job){ms[r], items + lo, prep ? prep + lo : NULL, hi - lo, out + (size_t)lo * D, res + lo};
        pthread_create(&th[r], NULL, run_share, &jobs[r]);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    return tkr_now_seconds() - t0;
}

static void bench_text(tkr_model **ms, int R, int B, int L, int runs, const char *device) {
    tkr_model *m = ms[0];
    int tmpl = template_tokens(m), n_ids = L - tmpl;
    int D = tkr_model_dim(m);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * n_ids);
    tkr_item *items = calloc((size_t)B, sizeof *items);
    float *out = malloc(sizeof(float) * (size_t)B * D);
    tkr_result *res = malloc(sizeof(tkr_result) * (size_t)B);
    for (int i = 0; i < B; i++) {
        fill_ids(ids + (size_t)i * n_ids, n_ids, 100 + i);
        items[i] = tkr_item_default();
        items[i].token_ids = ids + (size_t)i * n_ids;
        items[i].n_token_ids = (size_t)n_ids;
    }
    run_split(ms, R, items, NULL, B, out, res); /* warm-up */
    double *t = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) t[r] = run_split(ms, R, items, NULL, B, out, res);
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    double med = t[runs / 2];
    if (B == 1)
        printf("{\"bench\": \"text_latency\", \"device\": \"%s\", \"tokens\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f}\n",
               device, res[0].prompt_tokens, med * 1e3, t[0] * 1e3);
    else
        printf("{\"bench\": \"text_throughput\", \"device\": \"%s\", \"batch\": %d, \"tokens\": %d, "
               "\"replicas\": %d, \"median_s\": %.5f, \"tokens_per_s\": %.0f}\n",
               device, B, res[0].prompt_tokens, R, med, (double)B * res[0].prompt_tokens / med);
    fflush(stdout);
    free(t);
    free(ids);
    free(items);
    free(out);
    free(res);
}

typedef struct {
    tkr_model *m;
    tkr_item *items;
    tkr_prepared **prep;
    int n, next;
    pthread_mutex_t mu;
} prep_job;

static void *prep_worker(void *arg) {
    prep_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) return NULL;
        tkr_error e;
        if (tkr_prepare(j->m, &j->items[i], &j->prep[i], &e) != TKR_OK) die("prepare image", &e);
    }
}

static void bench_images(tkr_model **ms, int R, const char *path, int N, int runs, const char *device) {
    tkr_model *m = ms[0];
    int D = tkr_model_dim(m);
    tkr_image_input img = {.path = path};
    tkr_item *items = calloc((size_t)N, sizeof *items);
    tkr_prepared **prep = calloc((size_t)N, sizeof *prep);
    float *out = malloc(sizeof(float) * (size_t)N * D);
    tkr_result *res = malloc(sizeof(tkr_result) * (size_t)N);
    for (int i = 0; i < N; i++) {
        items[i] = tkr_item_default();
        items[i].text = "";
        items[i].images = &img;
        items[i].n_images = 1;
    }
    int threads = tkr_cpu_count() < 32 ? tkr_cpu_count() : 32;
    pthread_t th[32];
    double t0 = tkr_now_seconds();
    for (int rep = 0; rep < R; rep++) { /* each replica's share prepared by its own model */
        const int lo = N * rep / R, hi = N * (rep + 1) / R;
        prep_job job = {ms[rep], items + lo, prep + lo, hi - lo, 0, PTHREAD_MUTEX_INITIALIZER};
        for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, prep_worker, &job);
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    }
    double prep_s = tkr_now_seconds() - t0;
    run_split(ms, R, items, prep, N, out, res); /* warm-up */
    double *t = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) t[r] = run_split(ms, R, items, prep, N, out, res);
    for (int i = 0; i < N; i++)
        if (res[i].status != TKR_OK) die(res[i].message, NULL);
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    /* end to end: tkr_embed from the files (it prepares on the model's threads, then computes) */
    double *te = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
        te[r] = run_split(ms, R, items, NULL, N, out, res);
    }
    qsort(te, (size_t)runs, sizeof *te, cmp_double);
    printf("{\"bench\": \"image_throughput\", \"device\": \"%s\", \"images\": %d, \"image_tokens\": %d, "
           "\"prompt_tokens\": %d, \"replicas\": %d, \"median_s\": %.5f, \"images_per_s\": %.1f, \"prepare_s_%d_threads\": %.4f, "
           "\"e2e_median_s\": %.5f, \"e2e_images_per_s\": %.1f}\n",
           device, N, res[0].image_tokens, res[0].prompt_tokens, R, t[runs / 2], N / t[runs / 2], threads, prep_s,
           te[runs / 2], N / te[runs / 2]);
    free(te);
    fflush(stdout);
    for (int i = 0; i < N; i++) tkr_prepared_free(prep[i]);
    free(t);
    free(items);
    free(prep);
    free(out);
    free(res);
}

static void bench_image_latency(tkr_model *m, const char *path, int runs, const char *device) {
    float *out = malloc(sizeof(float) * (size_t)tkr_model_dim(m));
    tkr_image_input img = {.path = path};
    tkr_item it = tkr_item_default();
    it.text = "";
    it.images = &img;
    it.n_images = 1;
    tkr_result res;
    embed_or_die(m, &it, 1, out, &res);
    double *t = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
        double t0 = tkr_now_seconds();
        embed_or_die(m, &it, 1, out, &res);
        t[r] = tkr_now_seconds() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    printf("{\"bench\": \"image_latency\", \"device\": \"%s\", \"image_tokens\": %d, \"median_ms\": %.3f, "
           "\"min_ms\": %.3f, \"note\": \"tkr_embed from the file: decode + resize + model\"}\n",
           device, res.image_tokens, t[runs / 2] * 1e3, t[0] * 1e3);
    fflush(stdout);
    free(t);
    free(out);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *img256 = NULL, *img1280 = NULL;
    int n_images = 64, runs = 5, text_b = 0, text_l = 0, replicas = 1;
    bool text_only = false, images_only = false, quick = false;
    tkr_model_params mp = tkr_model_default_params();
    mp.max_batch_tokens = 1 << 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && next) dir = argv[++i];
        else if (!strcmp(a, "--device") && next) mp.device = argv[++i];
        else if (!strcmp(a, "--precision") && next) mp.precision = argv[++i];
        else if (!strcmp(a, "--img256") && next) img256 = argv[++i];
        else if (!strcmp(a, "--img1280") && next) img1280 = argv[++i];
        else if (!strcmp(a, "--images") && next) n_images = atoi(argv[++i]);
        else if (!strcmp(a, "--runs") && next) runs = atoi(argv[++i]);
        else if (!strcmp(a, "--text-only")) text_only = true;
        else if (!strcmp(a, "--images-only")) images_only = true;
        else if (!strcmp(a, "--text") && i + 2 < argc) {
            text_b = atoi(argv[++i]);
            text_l = atoi(argv[++i]);
        }
        else if (!strcmp(a, "--quick")) quick = true;
        else if (!strcmp(a, "--replicas") && next) replicas = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && next) mp.n_threads = atoi(argv[++i]); /* CPU threads (tkr_embed's prepare) */
        else {
            fprintf(stderr, "usage: bench_gpu -m DIR [--device D] [--precision P] [--img256 F] [--img1280 F] "
                            "[--images N] [--runs R] [--text-only] [--images-only] [--text B L] [--quick] "
                            "[--threads N] [--replicas R]\n");
            return 2;
        }
    }
    if (!dir || n_images < 1 || runs < 1 || replicas < 1 || replicas > MAX_REPLICAS) {
        fprintf(stderr, "bench_gpu: give -m DIR (and --images, --runs >= 1, --replicas 1..%d)\n", MAX_REPLICAS);
        return 2;
    }
    tkr_model *m;
    tkr_error e;
    double t0 = tkr_now_seconds();
    if (tkr_model_load(dir, &mp, &m, &e) != TKR_OK) die("load", &e);
    tkr_model *ms[MAX_REPLICAS] = {m};
    for (int r = 1; r < replicas; r++)
        if (tkr_model_load(dir, &mp, &ms[r], &e) != TKR_OK) die("load replica", &e);
    char dev[512];
    tkr_model_describe_kernels(m, dev, sizeof dev);
    printf("{\"bench\": \"load\", \"device\": \"%s\", \"seconds\": %.3f}\n", dev, tkr_now_seconds() - t0);
    fflush(stdout);
    if (text_b > 0 && text_l > 0) {
        bench_text(ms, replicas, text_b, text_l, runs, dev);
    } else if (!images_only) {
        bench_text(ms, replicas, 64, 128, runs, dev);
        if (!quick) bench_text(ms, replicas, 16, 512, runs, dev);
        bench_text(ms, 1, 1, 128, 4 * runs, dev);
    }
    if (text_b > 0) {
        /* one text shape only */
    } else if (!text_only && img256) {
        bench_images(ms, replicas, img256, n_images, runs, dev);
        if (!quick) bench_image_latency(m, img256, 4 * runs, dev);
    }
    if (!text_b && !text_only && !quick && img1280) bench_images(ms, replicas, img1280, n_images / 4 > 0 ? n_images / 4 : 1, runs, dev);
    for (int r = 0; r < replicas; r++) tkr_model_free(ms[r]);
    return 0;
}

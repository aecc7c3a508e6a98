/* bench_embed.c - time text and image embeddings on a model directory (e.g. the random-weight 2B
 * shape made by bench/run_2b.sh). Prints the median of several runs after one warm-up.
 *
 *   bench_embed MODEL_DIR [--tokens N] [--batch B] [--image PATH]... [--runs R] [--threads T]
 *               [--kernels generic|avx2|avx512] [--fast-bf16]
 * --batch B embeds B text items of --tokens tokens each in one call (e.g. 32 x 64). Besides wall
 * time it prints the process CPU seconds per run, which a shared machine's load disturbs less.
 */
#include "tkr_embed.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A text whose prompt is `tokens` long: the template is 20 tokens, " word" one token each. */
static char *text_of_tokens(int tokens) {
    int words = tokens - 20 > 0 ? tokens - 20 : 1;
    char *t = malloc((size_t)words * 5 + 1);
    char *p = t;
    for (int i = 0; i < words; i++) {
        memcpy(p, i ? " word" : "word", i ? 5 : 4);
        p += i ? 5 : 4;
    }
    *p = '\0';
    return t;
}

/* Median wall seconds of one call embedding the n items (after a warm-up); *cpu: mean process
 * CPU seconds per call. */
static double time_items(tkr_model *m, const tkr_item *it, int n, int runs, int *prompt_tokens,
                         double *cpu) {
    float *v = malloc(sizeof(float) * (size_t)tkr_model_dim(m) * (size_t)n);
    double *t = malloc(sizeof(double) * (size_t)(runs + 1));
    tkr_result *r = malloc(sizeof(tkr_result) * (size_t)n);
    tkr_error e;
    double c0 = 0;
    for (int i = 0; i <= runs; i++) {
        if (i == 1) c0 = cpu_seconds();
        double t0 = tkr_now_seconds();
        if (tkr_embed(m, it, n, v, r, &e) != TKR_OK || r[0].status != TKR_OK) {
            fprintf(stderr, "embed failed: %s %s\n", e.message, r[0].message);
            exit(1);
        }
        t[i] = tkr_now_seconds() - t0;
    }
    *cpu = (cpu_seconds() - c0) / runs;
    *prompt_tokens = r[0].prompt_tokens;
    qsort(t + 1, (size_t)runs, sizeof(double), cmp_double); /* t[0] is the warm-up */
    double med = t[1 + runs / 2];
    free(v);
    free(t);
    free(r);
    return med;
}

static double time_item(tkr_model *m, const tkr_item *it, int runs, int *prompt_tokens) {
    double cpu;
    return time_items(m, it, 1, runs, prompt_tokens, &cpu);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_embed MODEL_DIR [--tokens N] [--image PATH]... [--runs R] [--threads T]\n");
        return 2;
    }
    tkr_model_params mp = tkr_model_default_params();
    int tokens = 128, runs = 3, batch = 1;
    const char *images[8];
    int n_images = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--fast-bf16")) { mp.fast_bf16 = true; continue; }
        if (!strcmp(a, "--tokens")) tokens = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--kernels")) mp.kernels = v;
        else if (!strcmp(a, "--threads")) mp.n_threads = atoi(v);
        else if (!strcmp(a, "--image") && n_images < 8) images[n_images++] = v;
        else if (!strcmp(a, "--min-image-tokens")) mp.min_image_tokens = atoi(v);
        else if (!strcmp(a, "--max-image-tokens")) mp.max_image_tokens = atoi(v);
        else {
            fprintf(stderr, "bench_embed: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (runs < 1) runs = 1;
    tkr_model *m = NULL;
    tkr_error e;
    double t0 = tkr_now_seconds();
    if (tkr_model_load(argv[1], &mp, &m, &e) != TKR_OK) {
        fprintf(stderr, "load: %s\n", e.message);
        return 1;
    }
    printf("load: %.3f s\n", tkr_now_seconds() - t0);
    char desc[256];
    tkr_model_describe_kernels(m, desc, sizeof desc);
    printf("kernels: %s, %d threads\n", desc, mp.n_threads);
    char *text = text_of_tokens(tokens);
    if (batch < 1) batch = 1;
    tkr_item *its = malloc(sizeof(tkr_item) * (size_t)batch);
    for (int i = 0; i < batch; i++) {
        its[i] = tkr_item_default();
        its[i].text = text;
    }
    int pt = 0;
    double cpu = 0, s = time_items(m, its, batch, runs, &pt, &cpu);
    printf("text: %d x %d prompt tokens: %.3f s per call (median of %d), %.1f tokens/s, %.3f cpu-s per call\n",
           batch, pt, s, runs, batch * pt / s, cpu);
    free(its);
    for (int i = 0; i < n_images; i++) {
        tkr_image_input in = {.path = images[i]};
        tkr_item im = tkr_item_default();
        im.images = &in;
        im.n_images = 1;
        double si = time_item(m, &im, runs, &pt);
        printf("image %s: %d prompt tokens: %.3f s per item, %.3f images/s\n", images[i], pt, si, 1.0 / si);
    }
    free(text);
    tkr_model_free(m);
    return 0;
}

/* bench_embed.c - time text and image embeddings on a model directory (e.g. the random-weight 2B
 * shape made by bench/run_2b.sh). Prints the median of several runs after one warm-up.
 *
 *   bench_embed MODEL_DIR [--tokens N] [--image-tokens N] [--runs R] [--threads T]
 */
#include "tkr_embed.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static double time_item(tkr_model *m, const tkr_item *it, int runs, int *prompt_tokens) {
    float *v = malloc(sizeof(float) * (size_t)tkr_model_dim(m));
    double *t = malloc(sizeof(double) * (size_t)(runs + 1));
    tkr_result r;
    tkr_error e;
    for (int i = 0; i <= runs; i++) {
        double t0 = tkr_now_seconds();
        if (tkr_embed(m, it, 1, v, &r, &e) != TKR_OK || r.status != TKR_OK) {
            fprintf(stderr, "embed failed: %s %s\n", e.message, r.message);
            exit(1);
        }
        t[i] = tkr_now_seconds() - t0;
    }
    *prompt_tokens = r.prompt_tokens;
    qsort(t + 1, (size_t)runs, sizeof(double), cmp_double); /* t[0] is the warm-up */
    double med = t[1 + runs / 2];
    free(v);
    free(t);
    return med;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_embed MODEL_DIR [--tokens N] [--image PATH]... [--runs R] [--threads T]\n");
        return 2;
    }
    tkr_model_params mp = tkr_model_default_params();
    int tokens = 128, runs = 3;
    const char *images[8];
    int n_images = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) mp.n_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--image") && n_images < 8) images[n_images++] = argv[i + 1];
        else if (!strcmp(argv[i], "--min-image-tokens")) mp.min_image_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-image-tokens")) mp.max_image_tokens = atoi(argv[i + 1]);
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
    char *text = text_of_tokens(tokens);
    tkr_item it = tkr_item_default();
    it.text = text;
    int pt = 0;
    double s = time_item(m, &it, runs, &pt);
    printf("text: %d prompt tokens: %.3f s per item (median of %d), %.1f tokens/s\n", pt, s, runs, pt / s);
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

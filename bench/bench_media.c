/* bench_media.c - video decoding speed and the cost of a whole video item.
 *
 *     build/bench/bench_media VIDEO [MODEL_DIR [num_frames]]
 *
 * Decoding: tkr_video_decode with the default sampling (fps 2, max 64 frames), timed; every
 * source frame up to the last sampled one is decoded, so it reports source frames decoded per
 * second and sampled frames per second. With a model: tkr_prepare (decode + resize of the sampled
 * frames) and tkr_embed_prepared (vision tower + decoder) of one item with the video and a short
 * text, reported as prompt tokens per second, with the kernels that ran. */
#include "tkr_embed.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU seconds of this process: on a shared, loaded machine wall time says little. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_media VIDEO [MODEL_DIR [num_frames]]\n");
        return 2;
    }
    tkr_video_input v = {.path = argv[1]};
    if (argc > 3) v.num_frames = atoi(argv[3]);
    tkr_media_frames f;
    tkr_error err;
    double best = 1e30, best_wall = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = cpu_seconds(), w0 = tkr_now_seconds();
        if (tkr_video_decode(&v, NULL, &f, &err) != TKR_OK) {
            fprintf(stderr, "decode: %s\n", err.message);
            return 1;
        }
        double t = cpu_seconds() - t0, w = tkr_now_seconds() - w0;
        if (t < best) best = t;
        if (w < best_wall) best_wall = w;
        if (rep < 2) tkr_media_frames_free(&f);
    }
    int64_t last = f.n ? f.frames[f.n - 1].index : 0;
    for (int i = 0; i < f.n; i++) if (f.frames[i].index > last) last = f.frames[i].index;
    printf("video %s: %dx%d, %lld source frames, %.2f s; sampled %d frames\n", argv[1],
           f.n ? f.frames[0].width : 0, f.n ? f.frames[0].height : 0, (long long)f.n_source,
           f.duration_s, f.n);
    printf("decode (best of 3, 1 thread): %.3f CPU s (%.3f s wall) = %.1f source frames/s "
           "(%lld decoded, demux pass included), %.1f sampled frames/s (per CPU second)\n",
           best, best_wall, (double)(last + 1) / best, (long long)(last + 1), f.n / best);
    tkr_media_frames_free(&f);
    if (argc < 3) return 0;
    tkr_model_params mp = tkr_model_default_params();
    tkr_model *m = NULL;
    if (tkr_model_load(argv[2], &mp, &m, &err) != TKR_OK) {
        fprintf(stderr, "model: %s\n", err.message);
        return 1;
    }
    char kern[256];
    tkr_model_describe_kernels(m, kern, sizeof kern);
    tkr_item item = tkr_item_default();
    item.video = &v;
    item.text = "a video";
    double t0 = tkr_now_seconds(), c0 = cpu_seconds();
    tkr_prepared *p = NULL;
    if (tkr_prepare(m, &item, &p, &err) != TKR_OK) {
        fprintf(stderr, "prepare: %s\n", err.message);
        tkr_model_free(m);
        return 1;
    }
    double t1 = tkr_now_seconds(), c1 = cpu_seconds();
    float *vec = malloc(sizeof(float) * (size_t)tkr_model_dim(m));
    tkr_result res;
    tkr_status st = tkr_embed_prepared(m, &p, 1, vec, &res, &err);
    double t2 = tkr_now_seconds(), c2 = cpu_seconds();
    if (st != TKR_OK || res.status != TKR_OK) {
        fprintf(stderr, "embed: %s\n", st != TKR_OK ? err.message : res.message);
        return 1;
    }
    printf("item (%s, kernels: %s, %d threads): %d prompt tokens (%d image); prepare %.3f s wall "
           "(%.3f CPU s), embed %.3f s wall (%.3f CPU s); %.0f tokens/s wall, %.0f tokens per CPU second\n",
           argv[2], kern, tkr_cpu_count(), res.prompt_tokens, res.image_tokens, t1 - t0, c1 - c0,
           t2 - t1, c2 - c1, res.prompt_tokens / (t2 - t0), res.prompt_tokens / (c2 - c0));
    free(vec);
    tkr_prepared_free(p);
    tkr_model_free(m);
    return 0;
}

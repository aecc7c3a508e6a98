/* bench_image.c - throughput of the image path (decode, smart_resize + bicubic, patchify) on the
 * shared photos, one thread.
 *
 *     build/bench/bench_image [images_dir] [seconds_per_stage]
 *
 * images_dir defaults to $TKR_TEST_DATA/images/photos (or ../shared/data/images/photos). Every
 * file is read into memory first, so the numbers exclude disk I/O. Each stage is run over the
 * whole set repeatedly for at least the given time (default 2 s). */
#include "image/image.h"
#include "util/platform.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[256];
    uint8_t *bytes;
    size_t size;
    tkr_rgb_image decoded, resized;
} bench_file;

static int load_dir(const char *dir, bench_file **files) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *dot = strrchr(ent->d_name, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".jpg") && strcmp(dot, ".jpeg") &&
                     strcmp(dot, ".webp")))
            continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        bench_file f;
        memset(&f, 0, sizeof f);
        tkr_error err;
        if (tkr_image_read_source(path, 0, &f.bytes, &f.size, &err) != TKR_OK) {
            fprintf(stderr, "skip %s: %s\n", path, err.message);
            continue;
        }
        snprintf(f.name, sizeof f.name, "%s", ent->d_name);
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            bench_file *grown = realloc(*files, sizeof **files * (size_t)cap);
            if (!grown) break;
            *files = grown;
        }
        (*files)[n++] = f;
    }
    closedir(d);
    return n;
}

static void fail(const char *what, const char *name, const tkr_error *err) {
    fprintf(stderr, "%s %s: %s\n", what, name, err->message);
    exit(1);
}

int main(int argc, char **argv) {
    char dir[4096];
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        const char *data = getenv("TKR_TEST_DATA");
        snprintf(dir, sizeof dir, "%s/images/photos", data && *data ? data : "../shared/data");
    }
    double min_secs = argc > 2 ? atof(argv[2]) : 2.0;
    if (min_secs <= 0) min_secs = 2.0;
    bench_file *files = NULL;
    int n = load_dir(dir, &files);
    if (n <= 0) {
        fprintf(stderr, "no images in %s\n", dir);
        return 1;
    }
    tkr_image_params params = tkr_image_default_params();
    const int64_t lo = (int64_t)params.min_tokens * 784, hi = (int64_t)params.max_tokens * 784;
    uint64_t in_pixels = 0, out_pixels = 0;
    tkr_error err;
    for (int i = 0; i < n; i++) { /* warm-up pass, also fills the per-file images */
        bench_file *f = &files[i];
        if (tkr_image_decode(f->bytes, f->size, &params.limits, &f->decoded, &err)) fail("decode", f->name, &err);
        int rh, rw;
        if (tkr_smart_resize(f->decoded.height, f->decoded.width, 28, lo, hi, &rh, &rw, &err) ||
            tkr_image_resize_bicubic(&f->decoded, rw, rh, &f->resized, &err))
            fail("resize", f->name, &err);
        in_pixels += (uint64_t)f->decoded.width * f->decoded.height;
        out_pixels += (uint64_t)rw * rh;
    }

    double t_decode = 0, t_resize = 0, t_patch = 0, t_all = 0;
    long rounds_decode = 0, rounds_resize = 0, rounds_patch = 0, rounds_all = 0;
    for (double t0 = tkr_now_seconds(); (t_decode = tkr_now_seconds() - t0) < min_secs; rounds_decode++)
        for (int i = 0; i < n; i++) {
            tkr_rgb_image img;
            if (tkr_image_decode(files[i].bytes, files[i].size, &params.limits, &img, &err))
                fail("decode", files[i].name, &err);
            tkr_rgb_image_free(&img);
        }
    for (double t0 = tkr_now_seconds(); (t_resize = tkr_now_seconds() - t0) < min_secs; rounds_resize++)
        for (int i = 0; i < n; i++) {
            tkr_rgb_image out;
            if (tkr_image_resize_bicubic(&files[i].decoded, files[i].resized.width,
                                         files[i].resized.height, &out, &err))
                fail("resize", files[i].name, &err);
            tkr_rgb_image_free(&out);
        }
    for (double t0 = tkr_now_seconds(); (t_patch = tkr_now_seconds() - t0) < min_secs; rounds_patch++)
        for (int i = 0; i < n; i++) {
            float *pv;
            int gh, gw;
            if (tkr_image_patchify(&files[i].resized, 14, 2, 2, &pv, &gh, &gw, &err))
                fail("patchify", files[i].name, &err);
            free(pv);
        }
    for (double t0 = tkr_now_seconds(); (t_all = tkr_now_seconds() - t0) < min_secs; rounds_all++)
        for (int i = 0; i < n; i++) {
            float *pv;
            int gh, gw;
            if (tkr_image_preprocess(files[i].bytes, files[i].size, &params, &pv, &gh, &gw, &err))
                fail("preprocess", files[i].name, &err);
            free(pv);
        }

    printf("bench_image: %d images from %s (%.2f Mpx decoded, %.2f Mpx after smart_resize), 1 thread\n",
           n, dir, in_pixels / 1e6, out_pixels / 1e6);
    printf("%-28s %10s %12s\n", "stage", "images/s", "ms/image");
    double per[4] = {t_decode / (rounds_decode * (double)n), t_resize / (rounds_resize * (double)n),
                     t_patch / (rounds_patch * (double)n), t_all / (rounds_all * (double)n)};
    const char *names[4] = {"decode", "smart_resize + bicubic", "normalise + patchify",
                            "preprocess (all three)"};
    for (int s = 0; s < 4; s++) printf("%-28s %10.1f %12.3f\n", names[s], 1.0 / per[s], per[s] * 1e3);
    printf("resize throughput: %.1f output Mpx/s\n",
           out_pixels * (double)rounds_resize / t_resize / 1e6);
    for (int i = 0; i < n; i++) {
        free(files[i].bytes);
        tkr_rgb_image_free(&files[i].decoded);
        tkr_rgb_image_free(&files[i].resized);
    }
    free(files);
    return 0;
}

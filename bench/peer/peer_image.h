/* peer_image.h - what the two image drivers of bench/image_peer.sh share: tkr-embed
 * (bench/bench_image_tkr.c, built by the Makefile) and llama.cpp's libmtmd
 * (bench/peer/peer_mtmd.c, built by the script against the native llama.cpp build).
 *
 * Input: one binary PPM (P6, maxval 255) whose size is already the model size (a multiple of
 * 28 on each side, between 256 and 1280 tokens), so that neither engine's smart_resize changes
 * it and both see the same patch grid. It is read once, before anything is timed: neither side
 * times an image file decode; both time their own preprocessing (resize to the same size,
 * normalisation, patches), the vision tower, and the decoder over the whole Ops-MM prompt.
 * Output on stdout, one "key value" per line: "load_s X", "image_tokens N" (merged image
 * tokens), "prompt_tokens N" (decoder tokens, image included), then with --stdin "ready" and
 * one answer per command: "run" -> "run_s TOTAL ENCODE" (ENCODE is the preprocessing plus the
 * vision tower, or -1 where the engine does not expose it), "dump FILE" -> "dumped" (the last
 * token's L2-normalised hidden state, one line).
 * Header-only (static inline functions): each driver is one program. */
#ifndef TKR_BENCH_PEER_IMAGE_H
#define TKR_BENCH_PEER_IMAGE_H

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEER_IMAGE_MAX_SIDE 8192

static inline double pimg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads one header number of a PPM (skipping blanks and # comments); -1 on a bad header. */
static inline long pimg_header_number(FILE *f) {
    int c = fgetc(f);
    for (;;) {
        while (c != EOF && isspace(c)) c = fgetc(f);
        if (c != '#') break;
        while (c != EOF && c != '\n') c = fgetc(f);
    }
    long v = 0;
    int digits = 0;
    while (c != EOF && isdigit(c) && digits < 7) {
        v = v * 10 + (c - '0');
        digits++;
        c = fgetc(f);
    }
    if (!digits || c == EOF || !isspace(c)) return -1; /* one blank ends the header */
    return v;
}

/* rgb [height][width][3], malloc'ed; 0 on success, -1 with a message. */
static inline int pimg_read_ppm(const char *path, uint8_t **rgb, int *width, int *height, char *msg,
                                size_t cap) {
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, cap, "%s: cannot open", path);
        return -1;
    }
    char magic[2];
    long w = -1, h = -1, maxval = -1;
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && magic[1] == '6') {
        w = pimg_header_number(f);
        h = pimg_header_number(f);
        maxval = pimg_header_number(f);
    }
    if (w < 1 || h < 1 || w > PEER_IMAGE_MAX_SIDE || h > PEER_IMAGE_MAX_SIDE || maxval != 255) {
        fclose(f);
        snprintf(msg, cap, "%s: not a binary 8-bit PPM (P6, maxval 255, sides 1..%d)", path,
                 PEER_IMAGE_MAX_SIDE);
        return -1;
    }
    size_t bytes = (size_t)w * (size_t)h * 3;
    *rgb = malloc(bytes);
    if (!*rgb || fread(*rgb, 1, bytes, f) != bytes) {
        fclose(f);
        free(*rgb);
        *rgb = NULL;
        snprintf(msg, cap, "%s: truncated pixel data (or out of memory)", path);
        return -1;
    }
    fclose(f);
    *width = (int)w;
    *height = (int)h;
    return 0;
}

static inline int pimg_dump(const char *path, const float *v, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < dim; i++) fprintf(f, "%.8g%c", v[i] * inv, i + 1 < dim ? ' ' : '\n');
    return fclose(f) == 0 ? 0 : -1;
}

/* One engine: run() embeds the image once and sets *encode_s (-1 if unknown); dump() writes
 * the last run's vector. Both return 0 on success. */
typedef struct {
    int (*run)(void *ctx, double *encode_s);
    int (*dump)(void *ctx, const char *path);
    void *ctx;
} pimg_engine;

/* The command loop of --stdin (see the top of this file). */
static inline int pimg_drive(const pimg_engine *e) {
    printf("ready\n");
    fflush(stdout);
    char line[4200];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strcmp(line, "run")) {
            double enc = -1, t0 = pimg_now();
            if (e->run(e->ctx, &enc)) return -1;
            printf("run_s %.6f %.6f\n", pimg_now() - t0, enc);
        } else if (!strncmp(line, "dump ", 5) && line[5]) {
            if (e->dump(e->ctx, line + 5)) return -1;
            printf("dumped\n");
        } else {
            fprintf(stderr, "unknown command '%.40s' (expected 'run' or 'dump FILE')\n", line);
            return -1;
        }
        fflush(stdout);
    }
    return 0;
}

#endif

/* cmd_render.c - `tkr-embed render`: writes what would be embedded as PNG files, so a user can
 * look at exactly what the model sees: the frames a video's sample picks (frame_<index>.png, by
 * source frame index) or the rendered pages of a PDF (page_<number>.png). PNG is lossless, so
 * embedding one of these files as an image gives the same vector as the video frame or page. */
#include "cli/cli.h"
#include "tkr_embed.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed render (--video PATH [--fps F] [--max-frames N] [--num-frames N] |\n"
            "                         --pdf PATH [--pages 1-3,7] [--dpi D]) -o DIR\n"
            "\n"
            "Writes DIR/frame_<index>.png for each sampled video frame (index = source frame,\n"
            "0-based) or DIR/page_<n>.png for each rendered page (1-based), and prints one JSON line\n"
            "per output position: {\"position\", \"frame\" or \"page\", \"file\", \"width\", \"height\"}.\n"
            "The sampling and rendering options are those of `tkr-embed embed`.\n"
            "  --timeout S              wall-clock limit of the decode/render (default 120)\n");
}

/* 8-bit RGB, no interlace: decodes back to the same pixels. Returns 0 on failure. */
static int write_png(const char *path, const uint8_t *rgb, int w, int h) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0;
}

int tkr_cmd_render(int argc, char **argv) {
    const char *out_dir = NULL;
    tkr_video_input video = {0};
    tkr_pdf_input pdf = {0};
    tkr_media_limits lim = tkr_media_default_limits();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--video") && next) {
            video.path = argv[++i];
        } else if (!strcmp(a, "--pdf") && next) {
            pdf.path = argv[++i];
        } else if (!strcmp(a, "--pages") && next) {
            pdf.pages = argv[++i];
        } else if (!strcmp(a, "--fps") || !strcmp(a, "--dpi")) {
            char *end = NULL;
            double d = next ? strtod(next, &end) : 0;
            if (!next || *end || !(d > 0) || d > 1200) {
                fprintf(stderr, "tkr-embed render: %s needs a positive number\n", a);
                return 2;
            }
            if (!strcmp(a, "--fps")) video.fps = d;
            else pdf.dpi = d;
            i++;
        } else if (!strcmp(a, "--timeout")) {
            if (!tkr_cli_parse_int(a, next, 1, 86400, &v)) return 2;
            lim.timeout_s = (double)v;
            lim.pdf_cpu_s = (int)v;
            i++;
        } else if (!strcmp(a, "--max-frames") || !strcmp(a, "--num-frames")) {
            if (!tkr_cli_parse_int(a, next, 1, 4096, &v)) return 2;
            if (!strcmp(a, "--max-frames")) video.max_frames = (int)v;
            else video.num_frames = (int)v;
            i++;
        } else {
            fprintf(stderr, "tkr-embed render: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!out_dir || !video.path == !pdf.path) {
        fprintf(stderr, "tkr-embed render: give -o DIR and one of --video or --pdf\n");
        usage(stderr);
        return 2;
    }
    tkr_media_frames fr;
    tkr_error err;
    tkr_status st = video.path ? tkr_video_decode(&video, &lim, &fr, &err)
                               : tkr_pdf_render(&pdf, &lim, &fr, &err);
    if (st != TKR_OK) {
        fprintf(stderr, "tkr-embed render: %s\n", err.message);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < fr.n && rc == 0; i++) {
        char path[4096];
        const tkr_media_frame *f = &fr.frames[i];
        int n = video.path ? snprintf(path, sizeof path, "%s/frame_%06lld.png", out_dir, (long long)f->index)
                           : snprintf(path, sizeof path, "%s/page_%04lld.png", out_dir, (long long)f->index);
        if (n < 0 || (size_t)n >= sizeof path || !write_png(path, f->rgb, f->width, f->height)) {
            fprintf(stderr, "tkr-embed render: cannot write %s\n", path);
            rc = 1;
            break;
        }
        if (video.path)
            printf("{\"position\": %d, \"frame\": %lld, \"time_s\": %.6f, \"file\": \"%s\", "
                   "\"width\": %d, \"height\": %d}\n", i, (long long)f->index, f->time_s,
                   strrchr(path, '/') + 1, f->width, f->height);
        else
            printf("{\"position\": %d, \"page\": %lld, \"file\": \"%s\", \"width\": %d, \"height\": %d}\n",
                   i, (long long)f->index, strrchr(path, '/') + 1, f->width, f->height);
    }
    if (video.path && rc == 0)
        fprintf(stderr, "tkr-embed render: %d frames of %lld (duration %.3f s%s)\n", fr.n,
                (long long)fr.n_source, fr.duration_s, fr.dropped ? ", trailing frames dropped" : "");
    tkr_media_frames_free(&fr);
    return rc;
}

/* bench_image_tkr.c - the tkr-embed side of bench/image_peer.sh: embeds one image item (no
 * text) per run, one tkr_embed call, and reports each run's time. bench/peer/peer_mtmd.c is
 * its llama.cpp twin (libmtmd); the script alternates the two and reports the ratio.
 *
 *   bench_image_tkr MODEL IMAGE.ppm [--mmproj FILE] [--threads T] [--kernels K] [--stdin]
 *                   [--warmup SMALL.ppm]
 *
 * The image is read once (not timed) and handed over as decoded pixels: the timed call does
 * smart_resize (same size: the file is already the model size), the bicubic resize, the
 * patches, the vision tower and the decoder over the whole Ops-MM prompt, then pools the last
 * token. The protocol is in bench/peer/peer_image.h. One warm-up call precedes "ready" (on
 * --warmup's image if given, so that a long image is not embedded once more untimed); the token
 * counts come from tkr_prepare of the image itself.
 * Without --stdin it runs 3 times and prints the times. */
#include "tkr_embed.h"
#include "peer/peer_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "bench_image_tkr: %s: %s\n", what, msg);
    return 1;
}

typedef struct {
    tkr_model *model;
    tkr_item item;
    float *out;          /* [dim] */
    tkr_result res;
    int dim;
} tkr_runner;

static int runner_run(void *ctx, double *encode_s) {
    tkr_runner *r = ctx;
    tkr_error e;
    *encode_s = -1; /* one call: the vision tower is not timed apart */
    if (tkr_embed(r->model, &r->item, 1, r->out, &r->res, &e) != TKR_OK) return fail("embed", e.message);
    if (r->res.status != TKR_OK) return fail("embed item", r->res.message);
    return 0;
}

static int runner_dump(void *ctx, const char *path) {
    tkr_runner *r = ctx;
    if (pimg_dump(path, r->out, r->dim)) return fail(path, "cannot write");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_image_tkr MODEL IMAGE.ppm [--mmproj FILE] [--threads T] [--kernels K] [--stdin]\n"
                        "                       [--warmup SMALL.ppm]\n");
        return 2;
    }
    int threads = 0, use_stdin = 0;
    const char *mmproj = NULL, *kernels = NULL, *warmup = NULL;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--stdin")) {
            use_stdin = 1;
            continue;
        }
        if (i + 1 >= argc) return fail("usage", "option without a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--mmproj")) mmproj = v;
        else if (!strcmp(a, "--kernels")) kernels = v;
        else if (!strcmp(a, "--warmup")) warmup = v;
        else return fail("usage", a);
    }
    if (threads < 0 || threads > 1024) return fail("usage", "--threads 0..1024");

    char msg[512];
    uint8_t *rgb = NULL, *wrgb = NULL;
    int w = 0, h = 0, ww = 0, wh = 0;
    if (pimg_read_ppm(argv[2], &rgb, &w, &h, msg, sizeof msg)) return fail("image", msg);
    if (warmup && pimg_read_ppm(warmup, &wrgb, &ww, &wh, msg, sizeof msg)) {
        free(rgb);
        return fail("warm-up image", msg);
    }

    tkr_model_params mp = tkr_model_default_params();
    mp.n_threads = threads;
    mp.mmproj = mmproj;
    mp.kernels = kernels;
    tkr_model *m = NULL;
    tkr_error e;
    double t0 = pimg_now();
    if (tkr_model_load(argv[1], &mp, &m, &e) != TKR_OK) {
        free(rgb);
        return fail(argv[1], e.message);
    }
    double load_s = pimg_now() - t0;
    char kdesc[256];
    tkr_model_describe_kernels(m, kdesc, sizeof kdesc);
    fprintf(stderr, "# tkr-embed kernels: %s\n", kdesc);

    int rc = 1;
    tkr_image_input img = {0}, wimg = {0};
    img.rgb = rgb;
    img.width = w;
    img.height = h;
    wimg.rgb = wrgb ? wrgb : rgb;
    wimg.width = wrgb ? ww : w;
    wimg.height = wrgb ? wh : h;
    tkr_runner r = {0};
    r.model = m;
    r.dim = tkr_model_dim(m);
    r.item = tkr_item_default();
    r.item.images = &wimg;
    r.item.n_images = 1;
    r.out = malloc((size_t)r.dim * sizeof *r.out);
    if (!r.out) {
        fail("memory", "out of memory");
        goto done;
    }
    double enc;
    if (runner_run(&r, &enc)) goto done; /* warm-up: maps the weights in, starts the threads */
    r.item.images = &img;
    tkr_prepared *prep = NULL;
    if (tkr_prepare(m, &r.item, &prep, &e) != TKR_OK) {
        fail("prepare", e.message);
        goto done;
    }
    printf("load_s %.6f\nimage_tokens %d\nprompt_tokens %d\n", load_s, tkr_prepared_image_tokens(prep),
           tkr_prepared_tokens(prep));
    tkr_prepared_free(prep);
    fflush(stdout);
    pimg_engine engine = {runner_run, runner_dump, &r};
    if (use_stdin) {
        rc = pimg_drive(&engine) ? 1 : 0;
    } else {
        rc = 0;
        for (int i = 0; i < 3 && rc == 0; i++) {
            double t = pimg_now();
            rc = runner_run(&r, &enc);
            printf("run_s %.6f %.6f\n", pimg_now() - t, enc);
        }
    }
done:
    free(r.out);
    free(rgb);
    free(wrgb);
    tkr_model_free(m);
    return rc;
}

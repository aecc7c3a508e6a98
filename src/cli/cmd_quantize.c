/* cmd_quantize.c - `tkr-embed quantize`: a model to llama.cpp's GGUF pair (src/model/quantize.h),
 * with a progress bar on a terminal. */
#include "cli/cli.h"
#include "model/quantize.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed quantize -m MODEL -o OUT.gguf --type TYPE [--vision-type TYPE]\n"
            "\n"
            "Writes OUT.gguf (the text model) and, for a model with a vision tower,\n"
            "mmproj-OUT.gguf beside it, in llama.cpp's layout (llama.cpp loads both; so does\n"
            "'tkr-embed embed -m DIR' on their directory). One tensor at a time.\n"
            "\n"
            "  -m, --model PATH      HF model directory (either weight layout) or GGUF model\n"
            "  --mmproj FILE         a GGUF source's vision tower (default: mmproj*.gguf beside it)\n"
            "  -o, --output FILE     the text model GGUF to write\n"
            "  --type TYPE           f32, f16, bf16, q8_0, q4_0, q4_k_m (llama.cpp's mix), q6_k\n"
            "  --vision-type TYPE    f32, f16, bf16, q8_0, q4_0, q4_k, q6_k (default: q8_0 for a\n"
            "                        quantized --type, else the same float type)\n"
            "  --threads N           conversion threads (default: all cores)\n"
            "  -q, --quiet           no progress bar\n"
            "  -h, --help            this help\n");
}

typedef struct {
    int tty;
    int last_pct;
} bar_state;

/* A one-line bar redrawn in place (only on a terminal). */
static void progress(void *ctx, const char *tensor, uint64_t done, uint64_t total) {
    bar_state *b = ctx;
    if (!b->tty) return;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == b->last_pct && done < total) return;
    b->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %3d%% %-32.32s", bar, pct, tensor);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

int tkr_cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *type = NULL, *vtype = NULL;
    tkr_quantize_params p = tkr_quantize_default_params();
    bar_state bar = {isatty(2), -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && next) {
            model = argv[++i];
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && next) {
            out = argv[++i];
        } else if (!strcmp(a, "--type") && next) {
            type = argv[++i];
        } else if (!strcmp(a, "--vision-type") && next) {
            vtype = argv[++i];
        } else if (!strcmp(a, "--mmproj") && next) {
            p.mmproj = argv[++i];
        } else if (!strcmp(a, "--sample-rows")) {
            /* benchmarks only (not in the help): see tkr_quantize_params.sample_rows */
            long rows;
            if (!tkr_cli_parse_int(a, next, 1, 1 << 30, &rows)) return 2;
            p.sample_rows = rows;
            i++;
        } else if (!strcmp(a, "--threads")) {
            long v;
            if (!tkr_cli_parse_int(a, next, 1, 1024, &v)) return 2;
            p.n_threads = (int)v;
            i++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            bar.tty = 0;
        } else {
            fprintf(stderr, "tkr-embed quantize: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !out || !type) {
        fprintf(stderr, "tkr-embed quantize: -m, -o and --type are required\n");
        usage(stderr);
        return 2;
    }
    if (!tkr_qtype_from_name(type, &p.type) || p.type == TKR_QT_Q4_K) {
        fprintf(stderr, "tkr-embed quantize: unknown --type '%s' (f32, f16, bf16, q8_0, q4_0, "
                        "q4_k_m, q6_k)\n", type);
        return 2;
    }
    if (vtype && (!tkr_qtype_from_name(vtype, &p.vision_type) || p.vision_type == TKR_QT_Q4_K_M)) {
        fprintf(stderr, "tkr-embed quantize: unknown --vision-type '%s' (f32, f16, bf16, q8_0, "
                        "q4_0, q4_k, q6_k)\n", vtype);
        return 2;
    }
    p.progress = progress;
    p.progress_ctx = &bar;
    tkr_error err;
    memset(&err, 0, sizeof err);
    if (tkr_quantize_model(model, out, &p, &err) != TKR_OK) {
        if (bar.tty && bar.last_pct >= 0) fputc('\n', stderr);
        fprintf(stderr, "tkr-embed quantize: %s\n", err.message);
        return 1;
    }
    return 0;
}

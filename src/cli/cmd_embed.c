/* cmd_embed.c - `tkr-embed embed`: one item from the command line, or a JSONL file of items
 * embedded in batches with one output line per input line, in order. A bad line gets an error
 * object and the others still succeed; the exit code says whether every line succeeded. */
#define _POSIX_C_SOURCE 200809L
#include "cli/batch.h"
#include "cli/cli.h"
#include "cli/prepare_ahead.h"
#include "hub/hub.h"
#include "tkr_embed.h"
#include "util/platform.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CLI_IMAGES = 64, CHUNK_ITEMS = 64 };
#define MAX_LINE_BYTES ((size_t)256 << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed embed -m DIR ([--text TEXT] [--image PATH]... [--video PATH] |\n"
            "                               --pdf PATH [--pages 1-3,7] [--text TEXT] | --input FILE)\n"
            "\n"
            "Single item: prints {\"embedding\": [...], \"prompt_tokens\": N}.\n"
            "JSONL (--input FILE, '-' for stdin): each line {\"text\": ..., \"instruction\": ...,\n"
            "\"images\": [path or data: URI, ...], \"video\": path or data: URI, \"fps\": 2.0,\n"
            "\"max_frames\": 64, \"num_frames\": N} gives one line {\"index\": i, \"embedding\": [...],\n"
            "\"prompt_tokens\": N}, or {\"index\": i, \"error\": {\"message\": ...}} for a bad line.\n"
            "A line {\"pdf\": path or data: URI, \"pages\": \"1-3,7\", \"dpi\": 101, \"text\"?: ...} gives\n"
            "one line per page, in order, each with \"page\": its page number (1-based).\n"
            "Empty lines are skipped. The exit code is 1 if any line failed.\n"
            "Batch jobs: with --output FILE, lines go to FILE and a rerun resumes (items already\n"
            "written are skipped, each line is written whole); --shard i/n takes the items whose\n"
            "index %% n == i, so n processes cover the input exactly once; --format npy writes a\n"
            "float32 matrix FILE (.npy) with the item indices in FILE.ids and failures in\n"
            "FILE.errors.jsonl. A progress bar (items/s, tokens/s, ETA) shows on a terminal.\n"
            "\n"
            "  -m, --model PATH         HF model directory (config.json, safetensors, tokenizer), a\n"
            "                           .gguf text model, a directory of one model .gguf and at\n"
            "                           most one mmproj*.gguf, or a Hub name org/name[@rev][:QUANT]\n"
            "                           (fetched into the HF cache, docs/hub.md)\n"
            "  --mmproj FILE            GGUF models: the vision tower (mmproj) file\n"
            "  --text TEXT              text of the item\n"
            "  --instruction TEXT       system instruction (default \"You are a helpful assistant.\")\n"
            "  --image PATH             an image (repeatable; images come before the text)\n"
            "  --video PATH             a video: its sampled frames follow the images\n"
            "  --fps F                  video frames sampled per second (default 2.0)\n"
            "  --max-frames N           at most N frames in fps mode (default 64)\n"
            "  --num-frames N           exactly N frames, uniformly (instead of --fps)\n"
            "  --pdf PATH               a PDF: one vector per page, printed one line per page\n"
            "  --pages RANGE            pages of the PDF, e.g. 1-3,7 (default: all)\n"
            "  --dpi D                  PDF rendering resolution (default 101)\n"
            "  --input FILE             JSONL items ('-' = stdin)\n"
            "  --output FILE            write results to FILE (resumable) instead of stdout\n"
            "  --shard I/N              only the items with index %% N == I\n"
            "  --format jsonl|npy       output format with --output (default jsonl)\n"
            "  --limit N                stop after N new items (the rest on a later run)\n"
            "  --progress, --no-progress  force the progress bar on or off\n"
            "  --threads N              compute threads (default: all cores)\n"
            "  --device DEV             cpu, cuda or cuda:N (default: the GPU when built with\n"
            "                           CUDA and one is present, else the CPU)\n"
            "  --precision P            GPU arithmetic: bf16 (default) or fp32 (exact, no TF32)\n"
            "  --fast-bf16              BF16 weights: round activations to bf16 and use AVX-512 BF16\n"
            "                           dot products (faster; cos ~0.9999 to the exact default)\n"
            "  --max-batch-tokens N     tokens per model call (default 8192)\n"
            "  --max-scratch-mb N       activation scratch in MiB (default 256): long items go\n"
            "                           in row chunks that fit; the vectors do not change\n"
            "  --release-vision-weights drop the vision weights' pages after each image pass:\n"
            "                           lower peak memory, slower next image (default off; the\n"
            "                           last image items of a run drop them anyway, at no cost)\n"
            "  --repack-weights, --no-repack-weights  copy 16-bit decoder weights at load into\n"
            "                           the AVX-512 tile layout (faster per token, slower load;\n"
            "                           default: on for --input, off for one item)\n"
            "  --min-image-tokens N     (default 256)\n"
            "  --max-image-tokens N     (default 1280)\n"
            "  --max-tokens N           tokens per item (default 131072: 64 video frames of 1280)\n"
            "  --truncate               cut over-long texts to --max-tokens (keeping the template\n"
            "                           and images) instead of failing the item\n"
            "  -v, --verbose            print the kernels in use to stderr\n"
            "  -h, --help               this help\n");
}

/* One JSONL line as an item; the strings point into the json object, which outlives the item. */
/* A line's PDF fields (the PDF is rendered and each page becomes an item of its own). */
typedef struct {
    const char *src, *pages;
    double dpi;
} pdf_fields;

/* Reads a JSON number field into *out (integers accepted for doubles). */
static int number_field(json_t *val, const char *key, double lo, double hi, double *out, char *msg,
                        size_t msg_cap) {
    if (!json_is_number(val) || json_number_value(val) < lo || json_number_value(val) > hi) {
        snprintf(msg, msg_cap, "'%s' must be a number from %g to %g", key, lo, hi);
        return 0;
    }
    *out = json_number_value(val);
    return 1;
}

static int item_from_json(json_t *root, tkr_item *item, tkr_image_input *imgs, int max_imgs,
                          tkr_video_input *vid, pdf_fields *pdf, char *msg, size_t msg_cap) {
    *item = tkr_item_default();
    memset(vid, 0, sizeof *vid);
    memset(pdf, 0, sizeof *pdf);
    int has_video_opts = 0;
    if (!json_is_object(root)) {
        snprintf(msg, msg_cap, "each line must be a JSON object");
        return 0;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "text")) {
            if (!json_is_string(val)) {
                snprintf(msg, msg_cap, "'text' must be a string");
                return 0;
            }
            item->text = json_string_value(val);
            item->text_len = json_string_length(val);
            if (item->text_len == 0) item->text = "";
        } else if (!strcmp(key, "instruction")) {
            if (json_is_null(val)) continue;
            if (!json_is_string(val)) {
                snprintf(msg, msg_cap, "'instruction' must be a string");
                return 0;
            }
            item->instruction = json_string_value(val);
        } else if (!strcmp(key, "images")) {
            if (!json_is_array(val)) {
                snprintf(msg, msg_cap, "'images' must be an array of paths or data: URIs");
                return 0;
            }
            if ((int)json_array_size(val) > max_imgs) {
                snprintf(msg, msg_cap, "too many images (%zu, limit %d)", json_array_size(val), max_imgs);
                return 0;
            }
            size_t i;
            json_t *im;
            json_array_foreach(val, i, im) {
                if (!json_is_string(im)) {
                    snprintf(msg, msg_cap, "'images' entries must be strings");
                    return 0;
                }
                imgs[i].path = json_string_value(im);
                imgs[i].data = NULL;
                imgs[i].size = 0;
            }
            item->images = imgs;
            item->n_images = (int)json_array_size(val);
        } else if (!strcmp(key, "video") || !strcmp(key, "pdf") || !strcmp(key, "pages")) {
            if (!json_is_string(val)) {
                snprintf(msg, msg_cap, "'%s' must be a string", key);
                return 0;
            }
            if (!strcmp(key, "video")) vid->path = json_string_value(val);
            else if (!strcmp(key, "pdf")) pdf->src = json_string_value(val);
            else pdf->pages = json_string_value(val);
        } else if (!strcmp(key, "fps") || !strcmp(key, "max_frames") || !strcmp(key, "num_frames")) {
            double v = 0;
            if (!number_field(val, key, !strcmp(key, "fps") ? 1e-6 : 1, !strcmp(key, "fps") ? 1000 : 4096,
                              &v, msg, msg_cap))
                return 0;
            if (strcmp(key, "fps") && v != (int)v) {
                snprintf(msg, msg_cap, "'%s' must be an integer", key);
                return 0;
            }
            if (!strcmp(key, "fps")) vid->fps = v;
            else if (!strcmp(key, "max_frames")) vid->max_frames = (int)v;
            else vid->num_frames = (int)v;
            has_video_opts = 1;
        } else if (!strcmp(key, "dpi")) {
            if (!number_field(val, key, 10, 1200, &pdf->dpi, msg, msg_cap)) return 0;
        } else {
            snprintf(msg, msg_cap, "unknown field '%s' (expected text, instruction, images, video, "
                     "fps, max_frames, num_frames, pdf, pages, dpi)", key);
            return 0;
        }
    }
    if (vid->path) item->video = vid;
    if (has_video_opts && !vid->path) {
        snprintf(msg, msg_cap, "'fps', 'max_frames' and 'num_frames' need a 'video'");
        return 0;
    }
    if ((pdf->pages || pdf->dpi) && !pdf->src) {
        snprintf(msg, msg_cap, "'pages' and 'dpi' need a 'pdf'");
        return 0;
    }
    if (pdf->src && (item->n_images || item->video)) {
        snprintf(msg, msg_cap, "a 'pdf' line cannot also have 'images' or a 'video'");
        return 0;
    }
    if (!item->text && item->n_images == 0 && !item->video && !pdf->src) {
        snprintf(msg, msg_cap, "the item needs 'text', 'images', a 'video' or a 'pdf'");
        return 0;
    }
    return 1;
}

typedef struct {
    json_t *json[CHUNK_ITEMS];
    tkr_item items[CHUNK_ITEMS];
    tkr_image_input imgs[CHUNK_ITEMS][MAX_CLI_IMAGES];
    tkr_video_input vids[CHUNK_ITEMS];
    int valid[CHUNK_ITEMS];
    char msg[CHUNK_ITEMS][PREP_MSG_MAX];
    long index[CHUNK_ITEMS];
    tkr_prepared *prep[CHUNK_ITEMS]; /* valid items once prepared (NULL: msg says why) */
    int n;
} chunk;

/* Starts preparing a chunk's valid items on background threads (prepare_ahead.h); with !ahead,
 * prepares them before returning (NULL). */
static prepare_ahead *prepare_chunk(tkr_model *model, chunk *c, bool ahead) {
    prep_batch b = {c->items, c->valid, c->n, c->prep, c->msg};
    prepare_ahead *pa = prepare_ahead_start(model, b, tkr_cpu_count());
    if (ahead) return pa;
    prepare_ahead_wait(pa);
    return NULL;
}

/* Whether chunks are prepared while the previous one computes: on a GPU, where decoding would
 * otherwise leave it idle; not on the CPU, where the same cores compute (measured slower on 2
 * cores: the preparing threads and the model's pool take turns). TKR_PREPARE_AHEAD=0 / 1 says. */
static bool prepare_ahead_wanted(const tkr_model *model) {
    const char *e = getenv("TKR_PREPARE_AHEAD");
    if (e && *e) return strcmp(e, "0") != 0;
    tkr_device_memory dm;
    tkr_model_device_memory(model, &dm);
    return dm.on_gpu;
}

/* Drops a chunk's lines without output (after an output error). */
static void discard_chunk(chunk *c) {
    for (int i = 0; i < c->n; i++) {
        tkr_prepared_free(c->prep[i]);
        c->prep[i] = NULL;
        json_decref(c->json[i]);
        c->json[i] = NULL;
    }
    c->n = 0;
}

/* Embeds the prepared items of a chunk in one call and writes every line of the chunk in order.
 * Returns 1 if a line failed, 0 if all succeeded, -1 on an output error. */
static int embed_chunk(tkr_model *model, chunk *c, float *vecs, tkr_result *res, batch_out *out) {
    int failed = 0, dim = tkr_model_dim(model), wr = 0;
    tkr_prepared *batch[CHUNK_ITEMS];
    int nb = 0;
    for (int i = 0; i < c->n; i++)
        if (c->valid[i] && c->prep[i]) batch[nb++] = c->prep[i];
    tkr_error err;
    tkr_status st = nb ? tkr_embed_prepared(model, batch, nb, vecs, res, &err) : TKR_OK;
    int b = 0;
    for (int i = 0; i < c->n; i++) {
        if (!c->valid[i] || !c->prep[i]) { /* a bad line, or an item that could not be prepared */
            wr |= batch_error(out, c->index[i], c->msg[i]);
            failed = 1;
        } else {
            int k = b++;
            if (st != TKR_OK) {
                wr |= batch_error(out, c->index[i], err.message);
                failed = 1;
            } else if (res[k].status != TKR_OK) {
                wr |= batch_error(out, c->index[i], res[k].message);
                failed = 1;
            } else {
                wr |= batch_ok(out, c->index[i], vecs + (size_t)k * dim, res[k].prompt_tokens);
            }
        }
    }
    discard_chunk(c);
    return wr ? -1 : failed;
}

/* The JSONL loop's step once chunk *c is full: *c is prepared on background threads while the
 * chunk before it (*p, prepared) is embedded (ahead; else first), so a GPU does not wait for
 * image decoding; then *p holds the newly prepared chunk and *c is empty. Returns as embed_chunk. */
static int advance(tkr_model *model, chunk **c, chunk **p, bool ahead, float *vecs, tkr_result *res,
                   batch_out *out) {
    prepare_ahead *pa = prepare_chunk(model, *c, ahead);
    int r = (*p)->n ? embed_chunk(model, *p, vecs, res, out) : 0;
    prepare_ahead_wait(pa);
    chunk *t = *p;
    *p = *c;
    *c = t;
    return r;
}

/* Embeds what the loop holds, in order: the prepared chunk p, then c (prepared meanwhile). last:
 * the input has ended, so the vision tower's pages may go (tkr_model_hint_no_more_images) before
 * the final call. Returns as embed_chunk; after an output error the rest is dropped. */
static int drain(tkr_model *model, chunk *c, chunk *p, bool last, bool ahead, float *vecs, tkr_result *res,
                 batch_out *out) {
    prepare_ahead *pa = c->n ? prepare_chunk(model, c, ahead) : NULL;
    if (last && !c->n) tkr_model_hint_no_more_images(model, true);
    int failed = p->n ? embed_chunk(model, p, vecs, res, out) : 0;
    prepare_ahead_wait(pa);
    if (last && c->n) tkr_model_hint_no_more_images(model, true);
    if (c->n && failed >= 0) {
        int r = embed_chunk(model, c, vecs, res, out);
        failed = r < 0 ? -1 : failed | r;
    }
    discard_chunk(c);
    return failed;
}

/* Renders a PDF and embeds each page (with the line's text and instruction) as its own item;
 * prints one line per page in order, with "page" (JSON lines on stdout only: --output and npy
 * keep one row per input line). index < 0: the single-item form (no "index"). */
static int embed_pdf(tkr_model *model, const pdf_fields *pdf, const tkr_item *base, long index,
                     batch_out *out) {
    tkr_pdf_input in = {pdf->src, NULL, 0, pdf->pages, pdf->dpi};
    tkr_media_frames pages;
    tkr_error err;
    if (tkr_pdf_render(&in, NULL, &pages, &err) != TKR_OK) {
        if (index >= 0) batch_error(out, index, err.message);
        else fprintf(stderr, "tkr-embed: %s\n", err.message);
        return 1;
    }
    int dim = tkr_model_dim(model), failed = 0;
    float *vec = malloc(sizeof(float) * (size_t)dim);
    if (!vec) {
        tkr_media_frames_free(&pages);
        fprintf(stderr, "tkr-embed: out of memory\n");
        return 1;
    }
    /* one page at a time: a page's vector never depends on its batch, and memory stays flat */
    for (int p = 0; p < pages.n; p++) {
        tkr_image_input img = {.rgb = pages.frames[p].rgb, .width = pages.frames[p].width,
                               .height = pages.frames[p].height};
        tkr_item item = *base;
        item.images = &img;
        item.n_images = 1;
        /* the single-item form ends with the last page: no image follows it */
        if (index < 0 && p == pages.n - 1) tkr_model_hint_no_more_images(model, true);
        tkr_result res;
        tkr_status st = tkr_embed(model, &item, 1, vec, &res, &err);
        const char *msg = st != TKR_OK ? err.message : res.status != TKR_OK ? res.message : NULL;
        if (msg) {
            char buf[TKR_ERROR_MESSAGE_MAX + 32];
            snprintf(buf, sizeof buf, "page %lld: %s", (long long)pages.frames[p].index, msg);
            if (index >= 0) {
                fflush(stdout);
                batch_error(out, index, buf);
            }
            else fprintf(stderr, "tkr-embed: %s\n", buf);
            failed = 1;
            continue;
        }
        if (index >= 0) printf("{\"index\": %ld, \"page\": %lld, \"embedding\": ", index,
                               (long long)pages.frames[p].index);
        else printf("{\"page\": %lld, \"embedding\": ", (long long)pages.frames[p].index);
        tkr_cli_print_floats(stdout, vec, dim);
        printf(", \"prompt_tokens\": %d}\n", res.prompt_tokens);
    }
    fflush(stdout);
    free(vec);
    tkr_media_frames_free(&pages);
    return failed;
}

/* Items of this shard in a regular input file (for the progress bar); -1 for stdin or pipes. */
static long count_items(const char *path, const batch_opts *bo) {
    if (!strcmp(path, "-")) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long index = 0, n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue;
        if (batch_mine(bo, index++)) n++;
    }
    free(line);
    fclose(f);
    return n;
}

static int run_jsonl(tkr_model *model, const char *path, int max_imgs, batch_opts *bo, long limit) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "tkr-embed: cannot open %s\n", path);
        return 1;
    }
    bo->total_items = bo->progress != 0 ? count_items(path, bo) : -1;
    chunk *c = calloc(1, sizeof *c), *p = calloc(1, sizeof *p); /* filling; prepared, to embed */
    int dim = tkr_model_dim(model);
    float *vecs = malloc(sizeof(float) * (size_t)dim * CHUNK_ITEMS);
    tkr_result *res = malloc(sizeof(tkr_result) * CHUNK_ITEMS);
    batch_out *out = c && p && vecs && res ? batch_open(bo, dim) : NULL;
    if (!c || !p || !vecs || !res || !out) {
        if (!c || !p || !vecs || !res) fprintf(stderr, "tkr-embed: out of memory\n");
        free(c);
        free(p);
        free(vecs);
        free(res);
        if (f != stdin) fclose(f);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long index = 0, taken = 0;
    int failed = 0;
    pdf_fields pdf;
    const bool ahead = prepare_ahead_wanted(model);
    while (failed >= 0 && (limit < 0 || taken < limit) && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        long idx = index++;
        if (!batch_mine(bo, idx) || batch_done(out, idx)) continue;
        taken++;
        if (c->n == CHUNK_ITEMS) { /* moved on once a next item shows there is more input */
            int r = advance(model, &c, &p, ahead, vecs, res, out);
            failed = r < 0 ? -1 : failed | r;
            if (failed < 0) break;
        }
        int i = c->n++;
        c->index[i] = idx;
        c->valid[i] = 0;
        c->json[i] = NULL;
        if ((size_t)len > MAX_LINE_BYTES) {
            snprintf(c->msg[i], sizeof c->msg[i], "line longer than %zu bytes", MAX_LINE_BYTES);
        } else {
            json_error_t je;
            c->json[i] = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
            if (!c->json[i])
                snprintf(c->msg[i], sizeof c->msg[i], "invalid JSON: %s (column %d)", je.text, je.column);
            else
                c->valid[i] = item_from_json(c->json[i], &c->items[i], c->imgs[i],
                                             max_imgs < MAX_CLI_IMAGES ? max_imgs : MAX_CLI_IMAGES,
                                             &c->vids[i], &pdf, c->msg[i], sizeof c->msg[i]);
            if (c->valid[i] && pdf.src) {
                /* a PDF line: the lines before it first, then one line per page */
                json_t *js = c->json[i];
                tkr_item base = c->items[i];
                long idx_pdf = c->index[i];
                c->n--;
                if (c->n || p->n) {
                    int r = drain(model, c, p, false, ahead, vecs, res, out);
                    failed = r < 0 ? -1 : failed | r;
                }
                if (bo->output || bo->format != BATCH_JSONL) {
                    failed |= batch_error(out, idx_pdf, "PDF lines give one line per page: they "
                                          "need JSON lines on stdout (no --output/--format npy)") ? -1 : 1;
                } else if (failed >= 0) {
                    failed |= embed_pdf(model, &pdf, &base, idx_pdf, out);
                }
                json_decref(js);
                continue;
            }
        }
    }
    if ((c->n || p->n) && failed >= 0) {
        /* the reader is at its end (or --limit): the last chunk holds the last image items, so
         * the vision tower's pages go once its vision passes are done, before its decoder pass */
        int r = drain(model, c, p, true, ahead, vecs, res, out);
        failed = r < 0 ? -1 : failed | r;
    }
    discard_chunk(c);
    discard_chunk(p);
    if (batch_close(out) != 0) failed = -1;
    free(line);
    free(c);
    free(p);
    free(vecs);
    free(res);
    if (f != stdin) fclose(f);
    return failed ? 1 : 0;
}

int tkr_cmd_embed(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *instruction = NULL, *input = NULL;
    tkr_video_input video = {0};
    pdf_fields pdf = {0};
    double dv;
    const char *images[MAX_CLI_IMAGES];
    int n_images = 0;
    long limit = -1;
    batch_opts bo = {NULL, BATCH_JSONL, 0, 1, -1, -1};
    tkr_model_params mp = tkr_model_default_params();
    int repack = -1; /* --repack-weights / --no-repack-weights; -1: off for one item, else on */
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && next) {
            dir = argv[++i];
        } else if (!strcmp(a, "--mmproj") && next) {
            mp.mmproj = argv[++i];
        } else if (!strcmp(a, "--text") && next) {
            text = argv[++i];
        } else if (!strcmp(a, "--instruction") && next) {
            instruction = argv[++i];
        } else if (!strcmp(a, "--input") && next) {
            input = argv[++i];
        } else if (!strcmp(a, "--output") && next) {
            bo.output = argv[++i];
        } else if (!strcmp(a, "--shard") && next) {
            if (!batch_parse_shard(next, &bo.shard_index, &bo.shard_count)) {
                fprintf(stderr, "tkr-embed embed: --shard takes I/N with 0 <= I < N, got '%s'\n", next);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--format") && next) {
            if (!strcmp(next, "jsonl")) bo.format = BATCH_JSONL;
            else if (!strcmp(next, "npy")) bo.format = BATCH_NPY;
            else {
                fprintf(stderr, "tkr-embed embed: --format is jsonl or npy, got '%s'\n", next);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--limit")) {
            if (!tkr_cli_parse_int(a, next, 0, 1L << 40, &limit)) return 2;
            i++;
        } else if (!strcmp(a, "--progress")) {
            bo.progress = 1;
        } else if (!strcmp(a, "--no-progress")) {
            bo.progress = 0;
        } else if (!strcmp(a, "--image") && next) {
            if (n_images == MAX_CLI_IMAGES) {
                fprintf(stderr, "tkr-embed embed: at most %d --image options\n", MAX_CLI_IMAGES);
                return 2;
            }
            images[n_images++] = argv[++i];
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "--video") && next) {
            video.path = argv[++i];
        } else if (!strcmp(a, "--pdf") && next) {
            pdf.src = argv[++i];
        } else if (!strcmp(a, "--pages") && next) {
            pdf.pages = argv[++i];
        } else if (!strcmp(a, "--fps") || !strcmp(a, "--dpi")) {
            char *end = NULL;
            dv = next ? strtod(next, &end) : 0;
            if (!next || *end || !(dv > 0) || dv > 1200) {
                fprintf(stderr, "tkr-embed embed: %s needs a positive number\n", a);
                return 2;
            }
            if (!strcmp(a, "--fps")) video.fps = dv;
            else pdf.dpi = dv;
            i++;
        } else if (!strcmp(a, "--max-frames") || !strcmp(a, "--num-frames")) {
            if (!tkr_cli_parse_int(a, next, 1, 4096, &v)) return 2;
            if (!strcmp(a, "--max-frames")) video.max_frames = (int)v;
            else video.num_frames = (int)v;
            i++;
        } else if (!strcmp(a, "--truncate")) {
            mp.truncate = true;
        } else if (!strcmp(a, "--device") && next) {
            mp.device = argv[++i];
        } else if (!strcmp(a, "--precision") && next) {
            mp.precision = argv[++i];
        } else if (!strcmp(a, "--fast-bf16")) {
            mp.fast_bf16 = true;
        } else if (!strcmp(a, "--threads")) {
            if (!tkr_cli_parse_int(a, next, 1, 1024, &v)) return 2;
            mp.n_threads = (int)v;
            i++;
        } else if (!strcmp(a, "--repack-weights")) {
            repack = 1;
        } else if (!strcmp(a, "--no-repack-weights")) {
            repack = 0;
        } else if (!strcmp(a, "--release-vision-weights")) {
            mp.release_vision_weights = true;
        } else if (!strcmp(a, "--max-scratch-mb")) {
            if (!tkr_cli_parse_int(a, next, 1, 1 << 20, &v)) return 2;
            mp.max_scratch_bytes = (size_t)v << 20;
            i++;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if (!tkr_cli_parse_int(a, next, 16, 1 << 22, &v)) return 2;
            mp.max_batch_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--min-image-tokens")) {
            if (!tkr_cli_parse_int(a, next, 1, 16384, &v)) return 2;
            mp.min_image_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--max-image-tokens")) {
            if (!tkr_cli_parse_int(a, next, 1, 16384, &v)) return 2;
            mp.max_image_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--max-tokens")) {
            if (!tkr_cli_parse_int(a, next, 16, 1 << 20, &v)) return 2;
            mp.max_tokens_per_item = (int)v;
            i++;
        } else {
            fprintf(stderr, "tkr-embed embed: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if ((bo.output || bo.shard_count > 1 || bo.format != BATCH_JSONL || limit >= 0) && !input) {
        fprintf(stderr, "tkr-embed embed: --output, --shard, --format and --limit go with --input\n");
        return 2;
    }
    if (bo.format == BATCH_NPY && !bo.output) {
        fprintf(stderr, "tkr-embed embed: --format npy needs --output FILE\n");
        return 2;
    }
    int single = text || n_images || video.path || pdf.src;
    if (!dir || (!input && !single) || (input && single) || (pdf.src && (n_images || video.path))) {
        fprintf(stderr, "tkr-embed embed: give -m DIR and either --text/--image or --input FILE\n");
        usage(stderr);
        return 2;
    }
    /* one item: the repack's load time (a copy of the 16-bit matrices) would not pay back */
    mp.repack_weights = repack >= 0 ? repack == 1 : !single;
    tkr_error err;
    tkr_model *model = NULL;
    static tkr_hub_result hub; /* -m org/name: the cached files (outlives the model load) */
    if (tkr_hub_resolve_model(dir, &hub, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed: %s\n", err.message);
        return 1;
    }
    dir = hub.path;
    if (hub.mmproj[0] && !mp.mmproj) mp.mmproj = hub.mmproj;
    if (tkr_model_load(dir, &mp, &model, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed: %s\n", err.message);
        return 1;
    }
    if (verbose) {
        char kernels[256];
        tkr_model_describe_kernels(model, kernels, sizeof kernels);
        fprintf(stderr, "tkr-embed: kernels: %s\n", kernels);
    }
    int rc = 0;
    if (input) {
        rc = run_jsonl(model, input, mp.max_images_per_item, &bo, limit);
    } else if (pdf.src) {
        tkr_item base = tkr_item_default();
        base.text = text;
        base.instruction = instruction;
        rc = embed_pdf(model, &pdf, &base, -1, NULL);
    } else {
        tkr_image_input imgs[MAX_CLI_IMAGES];
        for (int i = 0; i < n_images; i++) imgs[i] = (tkr_image_input){.path = images[i]};
        tkr_item item = tkr_item_default();
        item.text = text;
        item.instruction = instruction;
        item.images = imgs;
        item.n_images = n_images;
        if (video.path) item.video = &video;
        int dim = tkr_model_dim(model);
        float *vec = malloc(sizeof(float) * (size_t)dim);
        tkr_result res;
        /* one item: the vision tower is done with once its images have run */
        tkr_model_hint_no_more_images(model, true);
        if (!vec) {
            fprintf(stderr, "tkr-embed: out of memory\n");
            rc = 1;
        } else if (tkr_embed(model, &item, 1, vec, &res, &err) != TKR_OK) {
            fprintf(stderr, "tkr-embed: %s\n", err.message);
            rc = 1;
        } else if (res.status != TKR_OK) {
            fprintf(stderr, "tkr-embed: %s\n", res.message);
            rc = 1;
        } else {
            printf("{\"embedding\": ");
            tkr_cli_print_floats(stdout, vec, dim);
            printf(", \"prompt_tokens\": %d}\n", res.prompt_tokens);
        }
        free(vec);
    }
    tkr_model_free(model);
    return rc;
}

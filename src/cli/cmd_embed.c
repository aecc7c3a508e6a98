/* cmd_embed.c - `tkr-embed embed`: one item from the command line, or a JSONL file of items
 * embedded in batches with one output line per input line, in order. A bad line gets an error
 * object and the others still succeed; the exit code says whether every line succeeded. */
#define _POSIX_C_SOURCE 200809L
#include "cli/batch.h"
#include "cli/cli.h"
#include "hub/hub.h"
#include "tkr_embed.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CLI_IMAGES = 64, CHUNK_ITEMS = 64 };
#define MAX_LINE_BYTES ((size_t)256 << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed embed -m DIR (--text TEXT [--image PATH]... | --image PATH... | --input FILE)\n"
            "\n"
            "Single item: prints {\"embedding\": [...], \"prompt_tokens\": N}.\n"
            "JSONL (--input FILE, '-' for stdin): each line {\"text\": ..., \"instruction\": ...,\n"
            "\"images\": [path or data: URI, ...]} gives one line {\"index\": i, \"embedding\": [...],\n"
            "\"prompt_tokens\": N}, or {\"index\": i, \"error\": {\"message\": ...}} for a bad line.\n"
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
            "                           (fetched into the HF cache)\n"
            "  --mmproj FILE            GGUF models: the vision tower (mmproj) file\n"
            "  --text TEXT              text of the item\n"
            "  --instruction TEXT       system instruction (default \"You are a helpful assistant.\")\n"
            "  --image PATH             an image (repeatable; images come before the text)\n"
            "  --input FILE             JSONL items ('-' = stdin)\n"
            "  --output FILE            write results to FILE (resumable) instead of stdout\n"
            "  --shard I/N              only the items with index %% N == I\n"
            "  --format jsonl|npy       output format with --output (default jsonl)\n"
            "  --limit N                stop after N new items (the rest on a later run)\n"
            "  --progress, --no-progress  force the progress bar on or off\n"
            "  --threads N              compute threads (default: all cores)\n"
            "  --fast-bf16              BF16 weights: round activations to bf16 and use AVX-512 BF16\n"
            "                           dot products (faster; cos ~0.9999 to the exact default)\n"
            "  --max-batch-tokens N     tokens per model call (default 8192)\n"
            "  --min-image-tokens N     (default 256)\n"
            "  --max-image-tokens N     (default 1280)\n"
            "  --max-tokens N           tokens per item (default 32768)\n"
            "  --truncate               cut over-long texts to --max-tokens (keeping the template\n"
            "                           and images) instead of failing the item\n"
            "  -h, --help               this help\n");
}

/* One JSONL line as an item; the strings point into the json object, which outlives the item. */
static int item_from_json(json_t *root, tkr_item *item, tkr_image_input *imgs, int max_imgs,
                          char *msg, size_t msg_cap) {
    *item = tkr_item_default();
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
        } else {
            snprintf(msg, msg_cap, "unknown field '%s' (expected text, instruction, images)", key);
            return 0;
        }
    }
    if (!item->text && item->n_images == 0) {
        snprintf(msg, msg_cap, "the item needs 'text' or 'images'");
        return 0;
    }
    return 1;
}

typedef struct {
    json_t *json[CHUNK_ITEMS];
    tkr_item items[CHUNK_ITEMS];
    tkr_image_input imgs[CHUNK_ITEMS][MAX_CLI_IMAGES];
    int valid[CHUNK_ITEMS];
    char msg[CHUNK_ITEMS][256];
    long index[CHUNK_ITEMS];
    int n;
} chunk;

/* Embeds the valid items of a chunk in one call and writes every line of the chunk in order.
 * Returns 1 if a line failed, 0 if all succeeded, -1 on an output error. */
static int flush_chunk(tkr_model *model, chunk *c, float *vecs, tkr_result *res, batch_out *out) {
    int failed = 0, dim = tkr_model_dim(model), wr = 0;
    tkr_item batch[CHUNK_ITEMS];
    int nb = 0;
    for (int i = 0; i < c->n; i++)
        if (c->valid[i]) batch[nb++] = c->items[i];
    tkr_error err;
    tkr_status st = nb ? tkr_embed(model, batch, nb, vecs, res, &err) : TKR_OK;
    int b = 0;
    for (int i = 0; i < c->n; i++) {
        if (!c->valid[i]) {
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
        json_decref(c->json[i]);
        c->json[i] = NULL;
    }
    c->n = 0;
    return wr ? -1 : failed;
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
    chunk *c = calloc(1, sizeof *c);
    int dim = tkr_model_dim(model);
    float *vecs = malloc(sizeof(float) * (size_t)dim * CHUNK_ITEMS);
    tkr_result *res = malloc(sizeof(tkr_result) * CHUNK_ITEMS);
    batch_out *out = c && vecs && res ? batch_open(bo, dim) : NULL;
    if (!c || !vecs || !res || !out) {
        if (!c || !vecs || !res) fprintf(stderr, "tkr-embed: out of memory\n");
        free(c);
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
    while (failed >= 0 && (limit < 0 || taken < limit) && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        long idx = index++;
        if (!batch_mine(bo, idx) || batch_done(out, idx)) continue;
        taken++;
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
                                             c->msg[i], sizeof c->msg[i]);
        }
        if (c->n == CHUNK_ITEMS) {
            int r = flush_chunk(model, c, vecs, res, out);
            failed = r < 0 ? -1 : failed | r;
        }
    }
    if (c->n && failed >= 0) {
        int r = flush_chunk(model, c, vecs, res, out);
        failed = r < 0 ? -1 : failed | r;
    }
    for (int i = 0; i < c->n; i++) json_decref(c->json[i]);
    if (batch_close(out) != 0) failed = -1;
    free(line);
    free(c);
    free(vecs);
    free(res);
    if (f != stdin) fclose(f);
    return failed ? 1 : 0;
}

int tkr_cmd_embed(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *instruction = NULL, *input = NULL;
    const char *images[MAX_CLI_IMAGES];
    int n_images = 0;
    long limit = -1;
    batch_opts bo = {NULL, BATCH_JSONL, 0, 1, -1, -1};
    tkr_model_params mp = tkr_model_default_params();
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
        } else if (!strcmp(a, "--truncate")) {
            mp.truncate = true;
        } else if (!strcmp(a, "--fast-bf16")) {
            mp.fast_bf16 = true;
        } else if (!strcmp(a, "--threads")) {
            if (!tkr_cli_parse_int(a, next, 1, 1024, &v)) return 2;
            mp.n_threads = (int)v;
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
    if (!dir || (!input && !text && n_images == 0) || (input && (text || n_images))) {
        fprintf(stderr, "tkr-embed embed: give -m DIR and either --text/--image or --input FILE\n");
        usage(stderr);
        return 2;
    }
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
    int rc = 0;
    if (input) {
        rc = run_jsonl(model, input, mp.max_images_per_item, &bo, limit);
    } else {
        tkr_image_input imgs[MAX_CLI_IMAGES];
        for (int i = 0; i < n_images; i++) imgs[i] = (tkr_image_input){images[i], NULL, 0};
        tkr_item item = tkr_item_default();
        item.text = text;
        item.instruction = instruction;
        item.images = imgs;
        item.n_images = n_images;
        int dim = tkr_model_dim(model);
        float *vec = malloc(sizeof(float) * (size_t)dim);
        tkr_result res;
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

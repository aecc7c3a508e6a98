/* mkmodel.c - writes a random-weight Qwen2-VL checkpoint (model.safetensors) from a weights.json
 * manifest: the same counter-based values tools/gen_reference.py gave HF, so tests can use a model
 * too big to commit, and benchmarks can use the real 2B shape without downloading anything.
 *
 *   mkmodel weights.json OUT.safetensors
 *
 * weights.json: {"seed": S, "dtype": "BF16"|"F16"|"F32", "layout": "old"|"new", "tied": bool,
 *                "tensors": {"<old-layout name>": [shape...], ...}}
 * Element i of tensor NAME: u = top 24 bits of splitmix64((S ^ fnv1a64(NAME)) + (i+1)*GOLDEN),
 * value = center + half*(2u-1) with (center, half) from init_rule(), rounded to float32 then to
 * the dtype. With layout "new", names are written as model.language_model.* / model.visual.*. */
#include "io/tensor.h"
#include "kernels/kernels.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ULL;
    }
    return h;
}

static double uniform_at(uint64_t z0, uint64_t i) {
    uint64_t z = z0 + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 40) * (1.0 / (1 << 24));
}

static void init_rule(const char *name, const int64_t *shape, int ndim, double *center, double *half) {
    size_t n = strlen(name);
    if (n >= 5 && !strcmp(name + n - 5, ".bias")) {
        *center = 0.0;
        *half = 0.1;
    } else if (ndim == 1) {
        *center = 1.0;
        *half = 0.2;
    } else if (strstr(name, "embed_tokens")) {
        *center = 0.0;
        *half = 1.0;
    } else {
        double fan_in = 1;
        for (int d = 1; d < ndim; d++) fan_in *= (double)shape[d];
        *center = 0.0;
        *half = 1.0 / sqrt(fan_in);
    }
}

static void file_name(const char *canonical, int new_layout, char *out, size_t cap) {
    if (new_layout && !strncmp(canonical, "model.", 6))
        snprintf(out, cap, "model.language_model.%s", canonical + 6);
    else if (new_layout && !strncmp(canonical, "visual.", 7))
        snprintf(out, cap, "model.visual.%s", canonical + 7);
    else
        snprintf(out, cap, "%s", canonical);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mkmodel weights.json OUT.safetensors\n");
        return 2;
    }
    json_error_t je;
    json_t *root = json_load_file(argv[1], JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        fprintf(stderr, "mkmodel: %s: %s\n", argv[1], je.text);
        return 1;
    }
    json_t *tensors = json_object_get(root, "tensors");
    const char *dts = json_string_value(json_object_get(root, "dtype"));
    const char *layout = json_string_value(json_object_get(root, "layout"));
    json_t *seed_j = json_object_get(root, "seed");
    if (!json_is_object(tensors) || !dts || !json_is_integer(seed_j)) {
        fprintf(stderr, "mkmodel: %s: needs seed, dtype and tensors\n", argv[1]);
        json_decref(root);
        return 1;
    }
    tkr_dtype dt = !strcmp(dts, "F32") ? TKR_DT_F32 : !strcmp(dts, "F16") ? TKR_DT_F16 : TKR_DT_BF16;
    if (strcmp(dts, "F32") && strcmp(dts, "F16") && strcmp(dts, "BF16")) {
        fprintf(stderr, "mkmodel: unknown dtype %s\n", dts);
        json_decref(root);
        return 1;
    }
    int new_layout = layout && !strcmp(layout, "new");
    uint64_t seed = (uint64_t)json_integer_value(seed_j);
    size_t esz = dt == TKR_DT_F32 ? 4 : 2;

    /* header: names sorted (json object iteration order is insertion order with jansson's
     * preserve-order off, so sort explicitly), offsets packed in that order */
    size_t n_t = json_object_size(tensors);
    const char **names = malloc(sizeof(char *) * n_t);
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach(tensors, key, val) names[k++] = key;
    for (size_t i = 1; i < n_t; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < n_t; i++) {
        json_t *shape = json_object_get(tensors, names[i]);
        size_t numel = 1;
        for (size_t d = 0; d < json_array_size(shape); d++)
            numel *= (size_t)json_integer_value(json_array_get(shape, d));
        char fname[512];
        file_name(names[i], new_layout, fname, sizeof fname);
        json_object_set_new(hdr, fname,
                            json_pack("{s:s, s:O, s:[I, I]}", "dtype", dts, "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + numel * esz)));
        off += numel * esz;
    }
    char *hs = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    size_t hl = strlen(hs), padded = (hl + 7) & ~(size_t)7;
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        fprintf(stderr, "mkmodel: cannot write %s\n", argv[2]);
        return 1;
    }
    uint64_t hl64 = padded;
    unsigned char le[8];
    for (int b = 0; b < 8; b++) le[b] = (unsigned char)(hl64 >> (8 * b));
    fwrite(le, 1, 8, f);
    fwrite(hs, 1, hl, f);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    /* data in the same (sorted) order as the offsets */
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK * 4);
    for (size_t i = 0; i < n_t; i++) {
        json_t *shape = json_object_get(tensors, names[i]);
        int64_t dims[8];
        int nd = (int)json_array_size(shape);
        size_t numel = 1;
        for (int d = 0; d < nd && d < 8; d++) {
            dims[d] = json_integer_value(json_array_get(shape, d));
            numel *= (size_t)dims[d];
        }
        double center, half;
        init_rule(names[i], dims, nd, &center, &half);
        uint64_t z0 = seed ^ fnv1a64(names[i]);
        for (size_t s = 0; s < numel; s += CHUNK) {
            size_t e = s + CHUNK < numel ? s + CHUNK : numel;
            for (size_t j = s; j < e; j++) {
                float v = (float)(center + half * (2.0 * uniform_at(z0, j) - 1.0));
                if (dt == TKR_DT_F32) {
                    memcpy(buf + (j - s) * 4, &v, 4);
                } else {
                    uint16_t h = dt == TKR_DT_F16 ? tkr_f32_to_f16(v) : tkr_f32_to_bf16(v);
                    buf[(j - s) * 2] = (unsigned char)h;
                    buf[(j - s) * 2 + 1] = (unsigned char)(h >> 8);
                }
            }
            fwrite(buf, esz, e - s, f);
        }
    }
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    free(buf);
    free(hs);
    free(names);
    json_decref(hdr);
    json_decref(root);
    if (bad) {
        fprintf(stderr, "mkmodel: write error on %s\n", argv[2]);
        return 1;
    }
    return 0;
}

/* bench_weights.c - how long opening and validating a real-size checkpoint takes.
 *
 * Writes a sparse model.safetensors with the exact tensor list of Ops-MM-embedding-v1-2B /
 * Qwen2-VL-2B (729 BF16 tensors, 4.42 GB, data all zero and not stored on disk), then times
 * tkr_weights_open + tkr_config-style lookups of every tensor through the layout-free API.
 *
 *   build/bench/bench_weights [--read] [--dir DIR]
 *     --read   also time use_mmap=0 (reads the 4.4 GB into memory)
 *     --dir    where to write the file (default: a new directory under /tmp) */
#include "io/weights.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[5];
    int vision;             /* 1: looked up with tkr_weights_vision */
    const char *suffix;     /* points into name, past the layout prefix */
} spec;

static int add(spec *s, int n, int vision, const char *fmt, int layer, int ndim, int64_t d0,
               int64_t d1, int64_t d2, int64_t d3, int64_t d4) {
    const char *prefix = vision ? "visual." : "model.";
    char tail[80];
    snprintf(tail, sizeof tail, fmt, layer);
    snprintf(s[n].name, sizeof s[n].name, "%s%s", prefix, tail);
    s[n].suffix = s[n].name + strlen(prefix);
    s[n].vision = vision;
    s[n].ndim = ndim;
    int64_t d[5] = {d0, d1, d2, d3, d4};
    memcpy(s[n].shape, d, sizeof d);
    return n + 1;
}

/* The Qwen2-VL-2B tensor list (tied embeddings: no lm_head). */
static int qwen2vl_2b(spec *s) {
    int n = 0;
    const int64_t H = 1536, KV = 256, I = 8960, V = 151936, E = 1280, M = 5120;
    n = add(s, n, 0, "embed_tokens.weight", 0, 2, V, H, 0, 0, 0);
    for (int l = 0; l < 28; l++) {
        n = add(s, n, 0, "layers.%d.input_layernorm.weight", l, 1, H, 0, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.q_proj.weight", l, 2, H, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.q_proj.bias", l, 1, H, 0, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.k_proj.weight", l, 2, KV, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.k_proj.bias", l, 1, KV, 0, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.v_proj.weight", l, 2, KV, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.v_proj.bias", l, 1, KV, 0, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.self_attn.o_proj.weight", l, 2, H, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.mlp.gate_proj.weight", l, 2, I, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.mlp.up_proj.weight", l, 2, I, H, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.mlp.down_proj.weight", l, 2, H, I, 0, 0, 0);
        n = add(s, n, 0, "layers.%d.post_attention_layernorm.weight", l, 1, H, 0, 0, 0, 0);
    }
    n = add(s, n, 0, "norm.weight", 0, 1, H, 0, 0, 0, 0);
    n = add(s, n, 1, "patch_embed.proj.weight", 0, 5, E, 3, 2, 14, 14);
    for (int b = 0; b < 32; b++) {
        n = add(s, n, 1, "blocks.%d.norm1.weight", b, 1, E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.norm1.bias", b, 1, E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.norm2.weight", b, 1, E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.norm2.bias", b, 1, E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.attn.qkv.weight", b, 2, 3 * E, E, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.attn.qkv.bias", b, 1, 3 * E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.attn.proj.weight", b, 2, E, E, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.attn.proj.bias", b, 1, E, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.mlp.fc1.weight", b, 2, M, E, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.mlp.fc1.bias", b, 1, M, 0, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.mlp.fc2.weight", b, 2, E, M, 0, 0, 0);
        n = add(s, n, 1, "blocks.%d.mlp.fc2.bias", b, 1, E, 0, 0, 0, 0);
    }
    n = add(s, n, 1, "merger.ln_q.weight", 0, 1, E, 0, 0, 0, 0);
    n = add(s, n, 1, "merger.ln_q.bias", 0, 1, E, 0, 0, 0, 0);
    n = add(s, n, 1, "merger.mlp.0.weight", 0, 2, M, M, 0, 0, 0);
    n = add(s, n, 1, "merger.mlp.0.bias", 0, 1, M, 0, 0, 0, 0);
    n = add(s, n, 1, "merger.mlp.2.weight", 0, 2, H, M, 0, 0, 0);
    n = add(s, n, 1, "merger.mlp.2.bias", 0, 1, H, 0, 0, 0, 0);
    return n;
}

/* Header JSON with contiguous BF16 offsets, padded to 8 bytes; the data is a sparse hole. */
static int write_sparse(const char *path, const spec *s, int n, uint64_t *total) {
    size_t cap = (size_t)n * 200 + 64, len = 0;
    char *h = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        uint64_t ne = 1;
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[",
                                s[i].name);
        for (int d = 0; d < s[i].ndim; d++) {
            ne *= (uint64_t)s[i].shape[d];
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)s[i].shape[d]);
        }
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)off, (unsigned long long)(off + 2 * ne));
        off += 2 * ne;
    }
    h[len++] = '}';
    while ((8 + len) % 8) h[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)len >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    free(h);
    *total = 8 + len + off;
    return ok && truncate(path, (off_t)*total) == 0;
}

/* Opens the directory `reps` times and looks every tensor up through the layout-free API. */
static int time_open(const char *dir, int use_mmap, int reps, const spec *s, int n) {
    double best = 1e9, lookup_best = 1e9;
    for (int r = 0; r < reps; r++) {
        tkr_weights *w = NULL;
        tkr_error err;
        double t0 = tkr_now_seconds();
        if (tkr_weights_open(dir, use_mmap, &w, &err) != TKR_OK) {
            fprintf(stderr, "open failed: %s\n", err.message);
            return 0;
        }
        double t1 = tkr_now_seconds();
        for (int i = 0; i < n; i++) {
            const tkr_tensor *t = NULL;
            tkr_status rc = s[i].vision
                ? tkr_weights_require_vision(w, s[i].suffix, s[i].ndim, s[i].shape, &t, &err)
                : tkr_weights_require_text(w, s[i].suffix, s[i].ndim, s[i].shape, &t, &err);
            if (rc != TKR_OK) {
                fprintf(stderr, "lookup failed: %s\n", err.message);
                tkr_weights_free(w);
                return 0;
            }
        }
        double t2 = tkr_now_seconds();
        if (tkr_weights_count(w) != (size_t)n) fprintf(stderr, "count mismatch\n");
        tkr_weights_free(w);
        if (t1 - t0 < best) best = t1 - t0;
        if (t2 - t1 < lookup_best) lookup_best = t2 - t1;
    }
    printf("%-5s open+validate: %8.3f ms (best of %d); %d require_* lookups: %.3f ms\n",
           use_mmap ? "mmap" : "read", best * 1e3, reps, n, lookup_best * 1e3);
    return 1;
}

int main(int argc, char **argv) {
    int do_read = 0;
    const char *dir_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--read")) do_read = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir_arg = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--read] [--dir DIR]\n", argv[0]);
            return 2;
        }
    }
    char tmpl[] = "/tmp/tkr-bench-XXXXXX";
    const char *dir = dir_arg ? dir_arg : mkdtemp(tmpl);
    if (!dir) return 1;
    static spec s[800];
    int n = qwen2vl_2b(s);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    uint64_t total = 0;
    if (!write_sparse(path, s, n, &total)) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    printf("Qwen2-VL-2B layout: %d tensors, %.3f GB (sparse file %s)\n", n, (double)total / 1e9,
           path);
    int ok = time_open(dir, 1, 20, s, n);
    if (ok && do_read) ok = time_open(dir, 0, 1, s, n);
    unlink(path);
    if (!dir_arg) rmdir(dir);
    return ok ? 0 : 1;
}

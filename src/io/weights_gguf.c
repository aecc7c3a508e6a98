/* weights_gguf.c - llama.cpp's Qwen2-VL GGUF pair (text model + mmproj) as a tkr_weights,
 * every tensor under the Hugging Face name the safetensors loader would give it (weights.h).
 *
 * llama.cpp's converter (convert_hf_to_gguf.py, conversion/qwenvl.py; names from gguf-py's
 * constants.py and tensor_mapping.py, read the same way by tools/mtmd/clip.cpp) renames every
 * tensor; the table below inverts that. Only the shapes of the names change: the data is
 * stored exactly as the HF weight ([out, in] row-major), so each view is the GGUF tensor itself
 * with a new name. Two HF tensors were split by the converter and stay split here, under names
 * of their own (documented in weights.h). */
#include "io/weights_internal.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-block renames: GGUF "<base>.<weight|bias>" after "blk.N." / "v.blk.N.". */
typedef struct {
    const char *gguf, *hf;
} rename_pair;

static const rename_pair text_block[] = {
    {"attn_norm", "input_layernorm"},
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

static const rename_pair vision_block[] = {
    {"ln1", "norm1"},
    {"ln2", "norm2"},
    {"attn_q", "attn.q"},
    {"attn_k", "attn.k"},
    {"attn_v", "attn.v"},
    {"attn_qkv", "attn.qkv"},
    {"attn_out", "attn.proj"},
    {"ffn_up", "mlp.fc1"},
    {"ffn_down", "mlp.fc2"},
};

/* Whole-name renames (base names; ".weight"/".bias" carried over). */
static const rename_pair globals[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
    {"v.post_ln", "visual.merger.ln_q"},
    {"mm.0", "visual.merger.mlp.0"},
    {"mm.2", "visual.merger.mlp.2"},
    {"v.patch_embd", "visual.patch_embed.proj"},
};

static const char *lookup(const rename_pair *tab, size_t n, const char *base, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i].gguf) == len && !memcmp(tab[i].gguf, base, len)) return tab[i].hf;
    return NULL;
}

/* A block number: 1..6 decimal digits without a leading zero (or "0"), then '.'. Returns the
 * number of characters consumed (digits and the dot), 0 when s does not start with one. */
static size_t block_number(const char *s, long *out) {
    size_t n = 0;
    long v = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 7) v = v * 10 + (s[n++] - '0');
    if (n == 0 || n > 6 || s[n] != '.' || (n > 1 && s[0] == '0')) return 0;
    *out = v;
    return n + 1;
}

/* Splits "<base>.weight" / "<base>.bias": *base_len and the suffix ("weight"/"bias"), or NULL. */
static const char *split_suffix(const char *s, size_t *base_len) {
    size_t n = strlen(s);
    static const char *const sufs[2] = {".weight", ".bias"};
    for (int i = 0; i < 2; i++) {
        size_t sl = strlen(sufs[i]);
        if (n > sl && !strcmp(s + n - sl, sufs[i])) {
            *base_len = n - sl;
            return sufs[i] + 1;
        }
    }
    return NULL;
}

/* The canonical name of GGUF tensor `name` into buf (cap >= 128); the GGUF name itself when
 * it is not one the converter writes for Qwen2-VL. */
void tkr_weights_gguf_canonical(const char *name, char *buf, size_t cap) {
    /* The patch embedding's two temporal halves. */
    if (!strcmp(name, "v.patch_embd.weight")) {
        snprintf(buf, cap, "visual.patch_embed.proj.weight.t0");
        return;
    }
    if (!strcmp(name, "v.patch_embd.weight.1")) {
        snprintf(buf, cap, "visual.patch_embed.proj.weight.t1");
        return;
    }
    size_t base_len;
    long blk;
    const char *suffix = split_suffix(name, &base_len);
    if (suffix) {
        int vision = !strncmp(name, "v.blk.", 6);
        size_t skip = vision ? 6 : !strncmp(name, "blk.", 4) ? 4 : 0;
        size_t used = skip ? block_number(name + skip, &blk) : 0;
        if (used && skip + used < base_len) {
            const char *base = name + skip + used;
            size_t bl = base_len - skip - used;
            const char *hf = vision ? lookup(vision_block, sizeof vision_block / sizeof *vision_block,
                                             base, bl)
                                    : lookup(text_block, sizeof text_block / sizeof *text_block,
                                             base, bl);
            if (hf) {
                snprintf(buf, cap, "%s.%ld.%s.%s", vision ? "visual.blocks" : "model.layers", blk,
                         hf, suffix);
                return;
            }
        } else if (!skip) {
            const char *hf = lookup(globals, sizeof globals / sizeof *globals, name, base_len);
            if (hf) {
                snprintf(buf, cap, "%s.%s", hf, suffix);
                return;
            }
        }
    }
    snprintf(buf, cap, "%s", name);
}

/* Adds every tensor of g (file number `which`) to w under its canonical name. */
static void add_file(tkr_weights *w, size_t which, char **np) {
    const tkr_gguf *g = w->gguf[which];
    for (size_t i = 0; g && i < tkr_gguf_tensor_count(g); i++) {
        const tkr_tensor *src = tkr_gguf_tensor_at(g, i);
        tkr_tensor *t = &w->renamed[w->n_all];
        *t = *src;
        tkr_weights_gguf_canonical(src->name, *np, 128);
        t->name = *np;
        *np += strlen(*np) + 1;
        w->all[w->n_all].t = t;
        w->all[w->n_all].shard = which;
        w->n_all++;
    }
}

tkr_status tkr_weights_open_gguf(const char *model_gguf, const char *mmproj_gguf, int use_mmap,
                                 tkr_weights **out, tkr_error *err) {
    *out = NULL;
    if (!model_gguf)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_weights_open_gguf: no model file");
    tkr_weights *w = calloc(1, sizeof *w);
    size_t pl = strlen(model_gguf);
    if (w) w->dir = malloc(pl + 1);
    if (!w || !w->dir) {
        free(w);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_gguf);
    }
    memcpy(w->dir, model_gguf, pl + 1);
    tkr_status rc = tkr_gguf_open(model_gguf, use_mmap, NULL, &w->gguf[0], err);
    if (rc == TKR_OK && mmproj_gguf)
        rc = tkr_gguf_open(mmproj_gguf, use_mmap, NULL, &w->gguf[1], err);
    if (rc == TKR_OK) {
        size_t n = tkr_gguf_tensor_count(w->gguf[0]) +
                   (w->gguf[1] ? tkr_gguf_tensor_count(w->gguf[1]) : 0);
        /* Canonical names are at most 127 bytes (GGUF names 63, HF prefixes below 64). */
        w->renamed = calloc(n ? n : 1, sizeof *w->renamed);
        w->renamed_names = malloc(n ? n * 128 : 1);
        w->all = calloc(n ? n : 1, sizeof *w->all);
        w->by_name = calloc(n ? n : 1, sizeof *w->by_name);
        if (!w->renamed || !w->renamed_names || !w->all || !w->by_name) {
            rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_gguf);
        } else {
            char *np = w->renamed_names;
            add_file(w, 0, &np);
            add_file(w, 1, &np);
            rc = tkr_weights_sort_index(w, err);
        }
    }
    if (rc != TKR_OK) {
        tkr_weights_free(w);
        return rc;
    }
    *out = w;
    return TKR_OK;
}

const tkr_gguf *tkr_weights_gguf_model(const tkr_weights *w) { return w->gguf[0]; }
const tkr_gguf *tkr_weights_gguf_mmproj(const tkr_weights *w) { return w->gguf[1]; }

/* config_gguf.c - tkr_model_config from the metadata of a llama.cpp Qwen2-VL GGUF pair
 * (rules: config.h, tkr_config_from_gguf).
 *
 * The keys are the ones llama.cpp's converter writes (gguf-py constants.py: "qwen2vl.*" for the
 * text model, "clip.*" for the mmproj); what the metadata does not say reliably comes from the
 * tensor shapes: the vocabulary (token_embd), the vision MLP width (ffn_up; the converter's
 * clip.vision.feed_forward_length is the text hidden size), the channels and the temporal patch
 * (the two patch-embedding halves). Every value is range-checked with config.c's bounds. */
#include "io/config.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const tkr_gguf *g;
    const char *label;    /* the file's path */
    tkr_error *err;
} gctx;

static bool is_int_type(tkr_gguf_type t) {
    return t == TKR_GGUF_UINT8 || t == TKR_GGUF_INT8 || t == TKR_GGUF_UINT16 ||
           t == TKR_GGUF_INT16 || t == TKR_GGUF_UINT32 || t == TKR_GGUF_INT32 ||
           t == TKR_GGUF_UINT64 || t == TKR_GGUF_INT64;
}

/* An integer key in [lo, hi]; missing takes def, or fails when required. */
static tkr_status g_int(gctx *c, const char *key, int required, int def, long long lo,
                        long long hi, int *out) {
    int64_t i = tkr_gguf_find(c->g, key), v = 0;
    if (i < 0) {
        if (required)
            return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing key '%s'", c->label, key);
        *out = def;
        return TKR_OK;
    }
    if (!is_int_type(tkr_gguf_kv_type(c->g, (size_t)i)))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' must be an integer", c->label, key);
    if (!tkr_gguf_get_int(c->g, key, &v))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' is out of range [%lld, %lld]", c->label,
                        key, lo, hi);
    if (v < lo || v > hi)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' = %lld is out of range [%lld, %lld]",
                        c->label, key, (long long)v, lo, hi);
    *out = (int)v;
    return TKR_OK;
}

/* The shortest decimal that reads back as float32 f, as a double: the converter stored
 * config.json's 1e-6 as float32, and this gives back exactly the double config.c reads. */
static double float32_decimal(double f) {
    char buf[40];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        double d = strtod(buf, NULL);
        if ((float)d == (float)f) return d;
    }
    return f;
}

/* A number (float or integer key) in the interval lo..hi, each end open or closed. */
static tkr_status g_num(gctx *c, const char *key, double def, double lo, int lo_open, double hi,
                        int hi_open, double *out) {
    int64_t i = tkr_gguf_find(c->g, key);
    if (i < 0) {
        *out = def;
        return TKR_OK;
    }
    double x;
    tkr_gguf_type t = tkr_gguf_kv_type(c->g, (size_t)i);
    if ((t != TKR_GGUF_FLOAT32 && t != TKR_GGUF_FLOAT64 && !is_int_type(t)) ||
        !tkr_gguf_get_float(c->g, key, &x))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' must be a number", c->label, key);
    if (t == TKR_GGUF_FLOAT32 && isfinite(x)) x = float32_decimal(x);
    if ((lo_open ? !(x > lo) : !(x >= lo)) || (hi_open ? !(x < hi) : !(x <= hi)))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' = %g is out of range %s%g, %g%s",
                        c->label, key, x, lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
    *out = x;
    return TKR_OK;
}

/* A string key equal to one of the accepted values, else UNSUPPORTED naming it. */
static tkr_status g_str(gctx *c, const char *key, char *buf, size_t cap) {
    const char *s;
    size_t len;
    int64_t i = tkr_gguf_find(c->g, key);
    if (i < 0) return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing key '%s'", c->label, key);
    if (!tkr_gguf_get_str(c->g, key, &s, &len))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' must be a string", c->label, key);
    if (len >= cap || memchr(s, 0, len))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' is not a short string", c->label, key);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return TKR_OK;
}

/* rope.dimension_sections: 3 positive ints (llama.cpp pads to 4 with a 0) summing to head_dim/2. */
static tkr_status parse_sections(gctx *c, const char *key, tkr_text_config *t) {
    tkr_gguf_type et;
    size_t n;
    if (!tkr_gguf_get_arr(c->g, key, &et, &n))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing array '%s' (the M-RoPE sections)",
                        c->label, key);
    int64_t v[4] = {0, 0, 0, 0};
    bool ok = is_int_type(et) && (n == 3 || n == 4);
    for (size_t i = 0; ok && i < n; i++) ok = tkr_gguf_arr_int(c->g, key, i, &v[i]);
    for (int i = 0; ok && i < 3; i++) ok = v[i] >= 1 && v[i] <= 65536;
    if (!ok || v[3] != 0)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: '%s' must be 3 positive integers (and a trailing 0)", c->label, key);
    long long sum = v[0] + v[1] + v[2];
    for (int i = 0; i < 3; i++) t->mrope_section[i] = (int)v[i];
    if (sum * 2 != t->head_dim)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: '%s' [%d, %d, %d] sums to %lld, not head_dim/2 = %d", c->label, key,
                        t->mrope_section[0], t->mrope_section[1], t->mrope_section[2], sum,
                        t->head_dim / 2);
    return TKR_OK;
}

static tkr_status parse_text(gctx *c, tkr_model_config *m) {
    tkr_text_config *t = &m->text;
    char arch[64], key[128];
    tkr_status rc = g_str(c, "general.architecture", arch, sizeof arch);
    if (rc != TKR_OK) return rc;
    if (!strcmp(arch, "clip"))
        return tkr_fail(c->err, TKR_ERR_INVALID_ARG,
                        "%s: this is an mmproj (vision) file, not the text model; pass it as the "
                        "mmproj", c->label);
    if (strcmp(arch, "qwen2vl"))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: architecture '%s' is not supported (only qwen2vl)", c->label, arch);
#define K(s) (snprintf(key, sizeof key, "qwen2vl.%s", s), key)
    if ((rc = g_int(c, K("embedding_length"), 1, 0, 1, 65536, &t->hidden_size)) ||
        (rc = g_int(c, K("block_count"), 1, 0, 1, 1024, &t->num_layers)) ||
        (rc = g_int(c, K("attention.head_count"), 1, 0, 1, t->hidden_size, &t->num_heads)) ||
        (rc = g_int(c, K("attention.head_count_kv"), 0, t->num_heads, 1, t->num_heads,
                    &t->num_kv_heads)) ||
        (rc = g_int(c, K("feed_forward_length"), 1, 0, 1, 1 << 20, &t->intermediate_size)) ||
        (rc = g_int(c, K("context_length"), 0, 32768, 1, 1 << 24, &t->max_position_embeddings)) ||
        (rc = g_num(c, K("attention.layer_norm_rms_epsilon"), 1e-6, 0.0, 1, 1.0, 1,
                    &t->rms_norm_eps)) ||
        (rc = g_num(c, K("rope.freq_base"), 1000000.0, 0.0, 1, 1e12, 0, &t->rope_theta)))
        return rc;
    if (t->hidden_size % t->num_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: attention.head_count %d does not divide embedding_length %d", c->label,
                        t->num_heads, t->hidden_size);
    if (t->num_heads % t->num_kv_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: attention.head_count_kv %d does not divide head_count %d", c->label,
                        t->num_kv_heads, t->num_heads);
    t->head_dim = t->hidden_size / t->num_heads;
    if (t->head_dim % 2)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: head_dim %d must be even", c->label,
                        t->head_dim);
    int key_len = 0;
    if ((rc = g_int(c, K("attention.key_length"), 0, t->head_dim, 1, 65536, &key_len))) return rc;
    if (key_len != t->head_dim)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: attention.key_length %d differs from embedding_length/head_count = %d",
                        c->label, key_len, t->head_dim);
    if ((rc = parse_sections(c, K("rope.dimension_sections"), t))) return rc;
#undef K
    /* The vocabulary: the embedding's rows, else the tokenizer's token list. */
    const tkr_tensor *emb = tkr_gguf_tensor(c->g, "token_embd.weight");
    tkr_gguf_type et;
    size_t n_tok = 0;
    int64_t vocab = 0;
    if (emb) {
        if (emb->ndim != 2 || emb->shape[1] != t->hidden_size)
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: token_embd.weight must be [vocab, %d]", c->label, t->hidden_size);
        vocab = emb->shape[0];
    } else if (tkr_gguf_get_arr(c->g, "tokenizer.ggml.tokens", &et, &n_tok)) {
        vocab = (int64_t)n_tok;
    } else {
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: no token_embd.weight and no tokenizer.ggml.tokens (vocabulary size "
                        "unknown)", c->label);
    }
    if (vocab < 1 || vocab > (4 << 20))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: vocabulary of %lld is out of range [1, %d]",
                        c->label, (long long)vocab, 4 << 20);
    t->vocab_size = (int)vocab;
    t->tie_word_embeddings = tkr_gguf_tensor(c->g, "output.weight") == NULL;
    memcpy(t->hidden_act, "silu", sizeof "silu");
    memcpy(m->model_type, "qwen2_vl", sizeof "qwen2_vl");
    return TKR_OK;
}

/* The vision tower from the mmproj: keys, then the shapes the keys do not give reliably. */
static tkr_status parse_vision(gctx *c, int text_hidden, tkr_vision_config *v) {
    char s[64];
    tkr_status rc = g_str(c, "general.architecture", s, sizeof s);
    if (rc != TKR_OK) return rc;
    if (strcmp(s, "clip"))
        return tkr_fail(c->err, TKR_ERR_INVALID_ARG,
                        "%s: architecture '%s' is not an mmproj (clip) file", c->label, s);
    bool has_vision = true;
    if (tkr_gguf_find(c->g, "clip.has_vision_encoder") >= 0 &&
        (!tkr_gguf_get_bool(c->g, "clip.has_vision_encoder", &has_vision) || !has_vision))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED, "%s: the mmproj has no vision encoder",
                        c->label);
    const char *proj_key = tkr_gguf_find(c->g, "clip.vision.projector_type") >= 0
                               ? "clip.vision.projector_type"
                               : "clip.projector_type";
    if ((rc = g_str(c, proj_key, s, sizeof s))) return rc;
    if (strcmp(s, "qwen2vl_merger"))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: projector '%s' is not supported (only qwen2vl_merger: Qwen2-VL)",
                        c->label, s);
    if ((rc = g_int(c, "clip.vision.block_count", 0, 32, 1, 1024, &v->depth)) ||
        (rc = g_int(c, "clip.vision.embedding_length", 0, 1280, 1, 65536, &v->embed_dim)) ||
        (rc = g_int(c, "clip.vision.attention.head_count", 0, 16, 1, v->embed_dim,
                    &v->num_heads)) ||
        (rc = g_int(c, "clip.vision.patch_size", 0, 14, 1, 1024, &v->patch_size)) ||
        (rc = g_int(c, "clip.vision.spatial_merge_size", 0, 2, 1, 16, &v->spatial_merge_size)) ||
        (rc = g_int(c, "clip.vision.projection_dim", 0, text_hidden, 1, 65536,
                    &v->out_hidden_size)))
        return rc;
    if (v->embed_dim % v->num_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: vision head_count %d does not divide embedding_length %d", c->label,
                        v->num_heads, v->embed_dim);
    v->head_dim = v->embed_dim / v->num_heads;
    if (v->head_dim % 4)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: vision head_dim %d must be a multiple of 4 (2-D rotary)", c->label,
                        v->head_dim);
    if (v->out_hidden_size != text_hidden)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: clip.vision.projection_dim %d != the text model's embedding_length %d",
                        c->label, v->out_hidden_size, text_hidden);
    /* Qwen2-VL normalises with the CLIP mean/std (src/image/patchify.c): anything else would
     * silently change the embeddings. */
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double stdv[3] = {0.26862954, 0.26130258, 0.27577711};
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "clip.vision.image_std" : "clip.vision.image_mean";
        const double *want = k ? stdv : mean;
        tkr_gguf_type et;
        size_t n;
        if (!tkr_gguf_get_arr(c->g, key, &et, &n)) continue;
        double x[3];
        bool ok = n == 3;
        for (size_t i = 0; ok && i < 3; i++) ok = tkr_gguf_arr_float(c->g, key, i, &x[i]);
        if (!ok)
            return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s' must be 3 numbers", c->label, key);
        for (int i = 0; i < 3; i++)
            if (fabs(x[i] - want[i]) > 1e-5)
                return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                                "%s: '%s' = [%g, %g, %g] differs from Qwen2-VL's CLIP values",
                                c->label, key, x[0], x[1], x[2]);
    }
    /* The patch embedding: two halves [E, C, P, P] (HF's Conv3d split at t = 0, 1). */
    const tkr_tensor *p0 = tkr_gguf_tensor(c->g, "v.patch_embd.weight");
    const tkr_tensor *p1 = tkr_gguf_tensor(c->g, "v.patch_embd.weight.1");
    if (!p0)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing tensor 'v.patch_embd.weight'",
                        c->label);
    if (p0->ndim != 4 || p0->shape[0] != v->embed_dim || p0->shape[2] != v->patch_size ||
        p0->shape[3] != v->patch_size || p0->shape[1] < 1 || p0->shape[1] > 16)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: v.patch_embd.weight must be [%d, channels, %d, %d]", c->label,
                        v->embed_dim, v->patch_size, v->patch_size);
    if (!p1)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: no 'v.patch_embd.weight.1': only Qwen2-VL's temporal patch of 2 is "
                        "supported", c->label);
    if (p1->ndim != 4 || memcmp(p1->shape, p0->shape, 4 * sizeof p0->shape[0]))
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: v.patch_embd.weight.1 differs in shape from v.patch_embd.weight",
                        c->label);
    v->in_channels = (int)p0->shape[1];
    v->temporal_patch_size = 2;
    /* The MLP width from the first block's fc1 ([F, E]). */
    const tkr_tensor *up = tkr_gguf_tensor(c->g, "v.blk.0.ffn_up.weight");
    if (!up)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing tensor 'v.blk.0.ffn_up.weight'",
                        c->label);
    if (up->ndim != 2 || up->shape[1] != v->embed_dim || up->shape[0] < 1 ||
        up->shape[0] > (1 << 20))
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: v.blk.0.ffn_up.weight must be [mlp width, %d]", c->label,
                        v->embed_dim);
    v->mlp_hidden = (int)up->shape[0];
    memcpy(v->hidden_act, "quick_gelu", sizeof "quick_gelu");
    return TKR_OK;
}

tkr_status tkr_config_from_gguf(const tkr_gguf *model, const tkr_gguf *mmproj,
                                tkr_model_config *cfg, tkr_error *err) {
    memset(cfg, 0, sizeof *cfg);
    if (!model)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_config_from_gguf: no model file");
    tkr_model_config m;
    memset(&m, 0, sizeof m);
    gctx c = {model, tkr_gguf_path(model), err};
    tkr_status rc = parse_text(&c, &m);
    if (rc == TKR_OK && mmproj) {
        gctx cv = {mmproj, tkr_gguf_path(mmproj), err};
        rc = parse_vision(&cv, m.text.hidden_size, &m.vision);
        m.has_vision = rc == TKR_OK;
    }
    if (rc != TKR_OK) return rc;
    /* Not in the GGUF: Qwen2-VL's ids (config.c's defaults); the tokenizer confirms them. */
    m.image_token_id = 151655;
    m.video_token_id = 151656;
    m.vision_start_token_id = 151652;
    m.vision_end_token_id = 151653;
    *cfg = m;
    return TKR_OK;
}

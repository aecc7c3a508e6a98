/* st2gguf.c - converts the TEXT tower of a Hugging Face Qwen2-VL checkpoint (config.json,
 * safetensors, vocab.json + merges.txt + added tokens) into a GGUF file that llama.cpp loads as
 * architecture "qwen2vl". It exists so that bench/bench_peer.sh can time llama.cpp on exactly the
 * weights tkr-embed uses; the vision tower is not converted (llama.cpp keeps it in a separate
 * mmproj file, which the text benchmark does not need).
 *
 *   st2gguf MODEL_DIR OUT.gguf [--type bf16|f16|f32] [--pooling last|none|mean|cls]
 *
 * GGUF v3 as written here (little-endian; layout as documented at the top of ggml's gguf.h):
 *
 *   "GGUF"  u32 version = 3  i64 n_tensors  i64 n_kv
 *   n_kv x      [string key][u32 value type][value]
 *                 string = u64 byte length + bytes (no NUL); array = u32 element type,
 *                 u64 count, elements
 *   n_tensors x [string name][u32 n_dims][i64 ne[n_dims]][u32 ggml type][u64 offset]
 *                 ne[0] varies fastest, so a HF weight [out, in] is ne = {in, out}, same bytes;
 *                 offset is relative to the data section and must equal the running sum of
 *                 the previous tensors' sizes, each padded to the alignment
 *   zero padding to general.alignment (32), then the tensor data, each padded to 32.
 *
 * Keys (spec section 5.1): general.architecture "qwen2vl", qwen2vl.{context_length,
 * embedding_length, block_count, feed_forward_length, attention.head_count,
 * attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base,
 * rope.dimension_sections = mrope_section + [0], pooling_type (LAST = 3 by default: the Ops-MM
 * recipe)}; tokenizer.ggml.{model "gpt2", pre "qwen2", tokens, token_type, merges,
 * bos/eos/padding_token_id, add_bos_token false}.
 * Tensors: token_embd, blk.N.{attn_norm, attn_q/k/v (+bias), attn_output, ffn_norm, ffn_gate,
 * ffn_up, ffn_down}, output_norm, and output only for an untied lm_head. Matrices in --type
 * (default bf16: a BF16 checkpoint is copied bit for bit); norms and biases F32.
 *
 * Tokens: vocab.json ids are NORMAL, added tokens (tokenizer_config.json added_tokens_decoder,
 * else added_tokens.json) CONTROL when special else USER_DEFINED, and ids up to the embedding
 * size that name no token become "[PAD<id>]" UNUSED, as llama.cpp's own converter does. */
#include "io/config.h"
#include "io/weights.h"
#include "kernels/kernels.h"
#include "util/error.h"
#include "util/platform.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_ALIGN 32
#define GGUF_MAX_NAME 64                 /* ggml tensor names are < 64 bytes */
#define TOKENIZER_MAX_FILE (64u << 20)   /* vocab.json, merges.txt, tokenizer_config.json */
#define TOKEN_MAX_BYTES 4096
#define VOCAB_MAX (1 << 24)

enum { GT_U32 = 4, GT_I32 = 5, GT_F32 = 6, GT_BOOL = 7, GT_STRING = 8, GT_ARRAY = 9 };
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_BF16 = 30 };
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 };

/* ---- a growing byte buffer for the metadata (a few MB: the vocabulary and the merges) ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} bytes_buf;

/* Appends; on allocation failure sets oom once and drops everything after (checked at the end). */
static void buf_put(bytes_buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->n) { b->oom = true; return; }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) {
            if (cap > SIZE_MAX / 2) { b->oom = true; return; }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* GGUF is little-endian whatever the host: bytes are written one by one. */
static void buf_le(bytes_buf *b, uint64_t v, int nbytes) {
    uint8_t t[8];
    for (int i = 0; i < nbytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, t, (size_t)nbytes);
}
static void buf_u32(bytes_buf *b, uint32_t v) { buf_le(b, v, 4); }
static void buf_u64(bytes_buf *b, uint64_t v) { buf_le(b, v, 8); }
static void buf_f32(bytes_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    buf_le(b, u, 4);
}
static void buf_str(bytes_buf *b, const char *s) {
    size_t n = strlen(s);
    buf_u64(b, n);
    buf_put(b, s, n);
}

/* ---- metadata key/value pairs ----------------------------------------------------------- */

typedef struct {
    bytes_buf kv;
    int64_t n_kv;
} gguf_meta;

static void kv_head(gguf_meta *m, const char *key, uint32_t type) {
    buf_str(&m->kv, key);
    buf_u32(&m->kv, type);
    m->n_kv++;
}
static void kv_u32(gguf_meta *m, const char *key, uint32_t v) { kv_head(m, key, GT_U32); buf_u32(&m->kv, v); }
static void kv_f32(gguf_meta *m, const char *key, float v) { kv_head(m, key, GT_F32); buf_f32(&m->kv, v); }
static void kv_bool(gguf_meta *m, const char *key, bool v) {
    kv_head(m, key, GT_BOOL);
    uint8_t b = v;
    buf_put(&m->kv, &b, 1);
}
static void kv_str(gguf_meta *m, const char *key, const char *v) { kv_head(m, key, GT_STRING); buf_str(&m->kv, v); }
static void kv_arr_i32(gguf_meta *m, const char *key, const int32_t *v, size_t n) {
    kv_head(m, key, GT_ARRAY);
    buf_u32(&m->kv, GT_I32);
    buf_u64(&m->kv, n);
    for (size_t i = 0; i < n; i++) buf_le(&m->kv, (uint32_t)v[i], 4);
}
static void kv_arr_str(gguf_meta *m, const char *key, char *const *v, size_t n) {
    kv_head(m, key, GT_ARRAY);
    buf_u32(&m->kv, GT_STRING);
    buf_u64(&m->kv, n);
    for (size_t i = 0; i < n; i++) buf_str(&m->kv, v[i]);
}

/* ---- the vocabulary --------------------------------------------------------------------- */

typedef struct {
    int32_t n;             /* = rows of the embedding table                      */
    char **text;           /* [n] GGUF token strings (byte-level form, as in vocab.json), malloc'ed */
    int32_t *type;         /* [n] llama.cpp token types                          */
    char **merges;         /* [n_merges] "a b", pointing into merges_text        */
    size_t n_merges;
    char *merges_text;
    int32_t bos, eos, pad; /* -1 when absent                                     */
} vocab;

static void vocab_free(vocab *v) {
    if (v->text)
        for (int32_t i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->type);
    free(v->merges);
    free(v->merges_text);
    memset(v, 0, sizeof *v);
}

/* A JSON file of the model dir, or NULL in *out when it does not exist (optional files). */
static tkr_status load_json(const char *dir, const char *name, bool required, json_t **out,
                            tkr_error *err) {
    char path[4096];
    *out = NULL;
    if (!tkr_path_join(path, sizeof path, dir, name))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s/%s: path too long", dir, name);
    if (!required && !tkr_file_exists(path)) return TKR_OK;
    char *text = NULL;
    size_t len = 0;
    tkr_status st = tkr_read_file(path, TOKENIZER_MAX_FILE, &text, &len, err);
    if (st != TKR_OK) return st;
    json_error_t je;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!*out) return tkr_fail(err, TKR_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    return TKR_OK;
}

/* Token strings go into GGUF strings that llama.cpp reads back as C strings: no empty string,
 * no NUL inside, and a sane length. */
static tkr_status check_token_string(const char *what, const char *s, size_t len, tkr_error *err) {
    if (len == 0 || len > TOKEN_MAX_BYTES || strlen(s) != len)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: token '%.40s' is empty, longer than %d bytes or holds a NUL",
                        what, s, TOKEN_MAX_BYTES);
    return TKR_OK;
}

/* Puts token `s` at id; an id taken twice is an error unless it is the same string. */
static tkr_status vocab_set(vocab *v, const char *what, json_int_t id, const char *s, size_t len,
                            int32_t type, tkr_error *err) {
    if (id < 0 || id >= v->n)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: token '%.40s' has id %lld, outside the embedding table [0, %d)",
                        what, s, (long long)id, v->n);
    tkr_status st = check_token_string(what, s, len, err);
    if (st != TKR_OK) return st;
    if (v->text[id]) {
        if (strcmp(v->text[id], s) != 0)
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: id %lld is given to both '%.40s' and '%.40s'", what,
                            (long long)id, v->text[id], s);
        if (v->type[id] == TOK_NORMAL) v->type[id] = type;
        return TKR_OK;
    }
    char *copy = malloc(len + 1);
    if (!copy) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    memcpy(copy, s, len + 1);
    v->text[id] = copy;
    v->type[id] = type;
    return TKR_OK;
}

/* vocab.json: {"<byte-level token>": id, ...}. */
static tkr_status read_vocab_json(vocab *v, const char *dir, tkr_error *err) {
    json_t *root;
    tkr_status st = load_json(dir, "vocab.json", true, &root, err);
    if (st != TKR_OK) return st;
    if (!json_is_object(root)) st = tkr_fail(err, TKR_ERR_FORMAT, "vocab.json: not a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (st != TKR_OK) break;
        if (!json_is_integer(val)) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "vocab.json: the id of '%.40s' is not an integer", key);
            break;
        }
        st = vocab_set(v, "vocab.json", json_integer_value(val), key, strlen(key), TOK_NORMAL, err);
    }
    json_decref(root);
    return st;
}

/* Special-looking names ("<|im_end|>") are control tokens when added_tokens.json does not say. */
static bool looks_special(const char *s) {
    size_t n = strlen(s);
    return n >= 4 && s[0] == '<' && s[1] == '|' && s[n - 2] == '|' && s[n - 1] == '>';
}

/* The added tokens: tokenizer_config.json "added_tokens_decoder" {"<id>": {"content", "special"}}
 * when present (what transformers uses), else added_tokens.json {"<content>": id}. */
static tkr_status read_added_tokens(vocab *v, const char *dir, tkr_error *err) {
    json_t *cfg;
    tkr_status st = load_json(dir, "tokenizer_config.json", false, &cfg, err);
    if (st != TKR_OK) return st;
    json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (dec) {
        const char *key;
        json_t *val;
        if (!json_is_object(dec)) st = tkr_fail(err, TKR_ERR_FORMAT, "tokenizer_config.json: added_tokens_decoder is not an object");
        json_object_foreach(dec, key, val) {
            if (st != TKR_OK) break;
            char *end = NULL;
            long long id = strtoll(key, &end, 10);
            json_t *content = json_object_get(val, "content"), *special = json_object_get(val, "special");
            if (!*key || *end || !json_is_string(content) || (special && !json_is_boolean(special))) {
                st = tkr_fail(err, TKR_ERR_FORMAT,
                              "tokenizer_config.json: added token '%.40s' needs an integer key, a string content and a boolean special", key);
                break;
            }
            int32_t type = json_is_true(special) ? TOK_CONTROL : TOK_USER_DEFINED;
            st = vocab_set(v, "tokenizer_config.json", id, json_string_value(content),
                           json_string_length(content), type, err);
        }
        json_decref(cfg);
        return st;
    }
    json_decref(cfg);
    json_t *added;
    st = load_json(dir, "added_tokens.json", false, &added, err);
    if (st != TKR_OK) return st;
    if (!added)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: no added tokens (tokenizer_config.json added_tokens_decoder or added_tokens.json); "
                        "the Ops-MM prompt needs <|im_start|> and friends", dir);
    const char *key;
    json_t *val;
    if (!json_is_object(added)) st = tkr_fail(err, TKR_ERR_FORMAT, "added_tokens.json: not a JSON object");
    json_object_foreach(added, key, val) {
        if (st != TKR_OK) break;
        if (!json_is_integer(val)) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "added_tokens.json: the id of '%.40s' is not an integer", key);
            break;
        }
        st = vocab_set(v, "added_tokens.json", json_integer_value(val), key, strlen(key),
                       looks_special(key) ? TOK_CONTROL : TOK_USER_DEFINED, err);
    }
    json_decref(added);
    return st;
}

/* merges.txt: an optional "#version" first line, then one "left right" pair per line in rank
 * order. The lines are split in place; each must hold exactly one space between two parts. */
static tkr_status read_merges(vocab *v, const char *dir, tkr_error *err) {
    char path[4096];
    if (!tkr_path_join(path, sizeof path, dir, "merges.txt"))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s/merges.txt: path too long", dir);
    size_t len = 0;
    tkr_status st = tkr_read_file(path, TOKENIZER_MAX_FILE, &v->merges_text, &len, err);
    if (st != TKR_OK) return st;
    if (memchr(v->merges_text, '\0', len)) return tkr_fail(err, TKR_ERR_FORMAT, "%s: NUL byte in the file", path);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += v->merges_text[i] == '\n';
    v->merges = malloc(lines * sizeof *v->merges);
    if (!v->merges) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    char *p = v->merges_text, *end = v->merges_text + len;
    for (size_t line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        if (eol > p && eol[-1] == '\r') eol[-1] = '\0';
        *eol = '\0';
        if (!(line == 1 && !strncmp(p, "#version", 8)) && *p) {
            char *sp = strchr(p, ' ');
            if (!sp || sp == p || !sp[1] || strchr(sp + 1, ' ') || strlen(p) > 2 * TOKEN_MAX_BYTES)
                return tkr_fail(err, TKR_ERR_FORMAT, "%s:%zu: expected 'left right', got '%.40s'", path, line, p);
            v->merges[v->n_merges++] = p;
        }
        p = eol + 1;
    }
    if (v->n_merges == 0) return tkr_fail(err, TKR_ERR_FORMAT, "%s: no merges", path);
    return TKR_OK;
}

static int32_t vocab_find(const vocab *v, const char *s) {
    for (int32_t i = v->n - 1; i >= 0; i--) /* added tokens sit at the top */
        if (v->text[i] && !strcmp(v->text[i], s)) return i;
    return -1;
}

/* tokenizer_config.json names bos/eos/pad as a string or {"content": ...}; Qwen2 has no bos
 * (null), for which llama.cpp's converter takes config.json's bos_token_id, <|endoftext|>. */
static int32_t special_id(const vocab *v, json_t *cfg, const char *key, const char *fallback) {
    json_t *t = cfg ? json_object_get(cfg, key) : NULL;
    if (json_is_object(t)) t = json_object_get(t, "content");
    int32_t id = json_is_string(t) ? vocab_find(v, json_string_value(t)) : -1;
    return id >= 0 ? id : vocab_find(v, fallback);
}

static tkr_status read_vocab(vocab *v, const char *dir, int32_t n_embd_rows, tkr_error *err) {
    memset(v, 0, sizeof *v);
    v->n = n_embd_rows;
    v->text = calloc((size_t)v->n, sizeof *v->text);
    v->type = calloc((size_t)v->n, sizeof *v->type);
    if (!v->text || !v->type) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    tkr_status st = read_vocab_json(v, dir, err);
    if (st == TKR_OK) st = read_added_tokens(v, dir, err);
    if (st == TKR_OK) st = read_merges(v, dir, err);
    if (st != TKR_OK) return st;
    for (int32_t i = 0; i < v->n; i++) {
        if (v->text[i]) continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)i);
        st = vocab_set(v, "padding", i, name, strlen(name), TOK_UNUSED, err);
        if (st != TKR_OK) return st;
    }
    json_t *cfg;
    st = load_json(dir, "tokenizer_config.json", false, &cfg, err);
    if (st != TKR_OK) return st;
    v->bos = special_id(v, cfg, "bos_token", "<|endoftext|>");
    v->eos = special_id(v, cfg, "eos_token", "<|im_end|>");
    v->pad = special_id(v, cfg, "pad_token", "<|endoftext|>");
    json_decref(cfg);
    return TKR_OK;
}

/* ---- tensors ---------------------------------------------------------------------------- */

typedef struct {
    char name[GGUF_MAX_NAME];
    const tkr_tensor *src;
    uint32_t type;         /* GGML_F32 / F16 / BF16 */
    int n_dims;
    int64_t ne[2];         /* ne[0] = the HF tensor's last (fastest) dim */
    uint64_t offset, nbytes;
} out_tensor;

typedef struct {
    out_tensor *t;
    size_t n, cap;
} tensor_plan;

static size_t ggml_type_size(uint32_t type) { return type == GGML_F32 ? 4 : 2; }

/* Adds one tensor to the plan: `suffix` is looked up in either HF name layout ("lm_head.weight"
 * exactly) and its shape checked against [d0] (d1 = 0) or [d0, d1]. */
static tkr_status plan_add(tensor_plan *p, const tkr_weights *w, const char *gguf_name,
                           const char *suffix, int64_t d0, int64_t d1, uint32_t type,
                           tkr_error *err) {
    int64_t shape[2] = {d0, d1};
    int ndim = d1 > 0 ? 2 : 1;
    const tkr_tensor *src = NULL;
    if (strcmp(suffix, "lm_head.weight") != 0) {
        tkr_status st = tkr_weights_require_text(w, suffix, ndim, shape, &src, err);
        if (st != TKR_OK) return st;
    } else {
        src = tkr_weights_get(w, suffix);
        if (!src || src->ndim != 2 || src->shape[0] != d0 || src->shape[1] != d1)
            return tkr_fail(err, TKR_ERR_FORMAT, "tensor 'lm_head.weight': expected shape [%lld, %lld]",
                            (long long)d0, (long long)d1);
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 512;
        out_tensor *t = realloc(p->t, cap * sizeof *t);
        if (!t) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        p->t = t;
        p->cap = cap;
    }
    out_tensor *o = &p->t[p->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", gguf_name);
    o->src = src;
    o->type = type;
    o->n_dims = ndim;
    o->ne[0] = ndim == 2 ? d1 : d0;
    o->ne[1] = ndim == 2 ? d0 : 1;
    size_t numel = tkr_tensor_numel(src), nbytes;
    if (!tkr_mul_size(numel, ggml_type_size(type), &nbytes))
        return tkr_fail(err, TKR_ERR_FORMAT, "tensor '%s': too large", src->name);
    o->nbytes = nbytes;
    return TKR_OK;
}

/* Every text-tower tensor llama.cpp's qwen2vl loader creates, with HF shapes from the config. */
static tkr_status plan_tensors(tensor_plan *p, const tkr_weights *w, const tkr_text_config *c,
                               uint32_t mat, tkr_error *err) {
    int64_t D = c->hidden_size, Q = (int64_t)c->num_heads * c->head_dim;
    int64_t KV = (int64_t)c->num_kv_heads * c->head_dim, I = c->intermediate_size, V = c->vocab_size;
    char g[GGUF_MAX_NAME], h[128];
    tkr_status st = plan_add(p, w, "token_embd.weight", "embed_tokens.weight", V, D, mat, err);
    for (int l = 0; l < c->num_layers && st == TKR_OK; l++) {
        static const struct { const char *gguf, *hf; int rows, cols; bool mat; } L[] = {
            /* rows/cols: 0 = D, 1 = Q, 2 = KV, 3 = I, -1 = none (1-D) */
            {"attn_norm.weight", "input_layernorm.weight", 0, -1, false},
            {"attn_q.weight", "self_attn.q_proj.weight", 1, 0, true},
            {"attn_q.bias", "self_attn.q_proj.bias", 1, -1, false},
            {"attn_k.weight", "self_attn.k_proj.weight", 2, 0, true},
            {"attn_k.bias", "self_attn.k_proj.bias", 2, -1, false},
            {"attn_v.weight", "self_attn.v_proj.weight", 2, 0, true},
            {"attn_v.bias", "self_attn.v_proj.bias", 2, -1, false},
            {"attn_output.weight", "self_attn.o_proj.weight", 0, 1, true},
            {"ffn_norm.weight", "post_attention_layernorm.weight", 0, -1, false},
            {"ffn_gate.weight", "mlp.gate_proj.weight", 3, 0, true},
            {"ffn_up.weight", "mlp.up_proj.weight", 3, 0, true},
            {"ffn_down.weight", "mlp.down_proj.weight", 0, 3, true},
        };
        const int64_t dims[4] = {D, Q, KV, I};
        for (size_t i = 0; i < sizeof L / sizeof L[0] && st == TKR_OK; i++) {
            snprintf(g, sizeof g, "blk.%d.%s", l, L[i].gguf);
            snprintf(h, sizeof h, "layers.%d.%s", l, L[i].hf);
            st = plan_add(p, w, g, h, dims[L[i].rows], L[i].cols < 0 ? 0 : dims[L[i].cols],
                          L[i].mat ? mat : GGML_F32, err);
        }
    }
    if (st == TKR_OK) st = plan_add(p, w, "output_norm.weight", "norm.weight", D, 0, GGML_F32, err);
    if (st == TKR_OK && !c->tie_word_embeddings && tkr_weights_get(w, "lm_head.weight"))
        st = plan_add(p, w, "output.weight", "lm_head.weight", V, D, mat, err);
    uint64_t off = 0;
    for (size_t i = 0; i < p->n && st == TKR_OK; i++) {
        p->t[i].offset = off;
        uint64_t padded = (p->t[i].nbytes + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
        if (padded < p->t[i].nbytes || off > UINT64_MAX - padded)
            return tkr_fail(err, TKR_ERR_FORMAT, "tensor data too large");
        off += padded;
    }
    return st;
}

/* One source element as float (the pointer may be unaligned: memcpy). */
static float src_value(const tkr_tensor *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data;
    if (t->dtype == TKR_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t->dtype == TKR_DT_F16 ? tkr_f16_to_f32(h) : tkr_bf16_to_f32(h);
}

static bool same_type(tkr_dtype src, uint32_t dst) {
    return (src == TKR_DT_F32 && dst == GGML_F32) || (src == TKR_DT_F16 && dst == GGML_F16) ||
           (src == TKR_DT_BF16 && dst == GGML_BF16);
}

/* Streams one tensor's data to f: copied as is when the type matches, else converted in chunks
 * of 64K values. A value that does not fit F16 stops the conversion (it would become inf). */
static tkr_status write_tensor(FILE *f, const out_tensor *t, tkr_error *err) {
    static const uint8_t zeros[GGUF_ALIGN];
    if (same_type(t->src->dtype, t->type)) {
        if (fwrite(t->src->data, 1, t->nbytes, f) != t->nbytes)
            return tkr_fail(err, TKR_ERR_IO, "write failed for tensor '%s'", t->name);
    } else {
        enum { CHUNK = 1 << 16 };
        uint8_t *out = malloc((size_t)CHUNK * 4); /* CHUNK values of at most 4 bytes */
        if (!out) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        size_t numel = tkr_tensor_numel(t->src), es = ggml_type_size(t->type);
        for (size_t start = 0; start < numel; start += CHUNK) {
            size_t n = numel - start < CHUNK ? numel - start : CHUNK;
            for (size_t i = 0; i < n; i++) {
                float x = src_value(t->src, start + i);
                if (t->type == GGML_F32) {
                    memcpy(out + 4 * i, &x, 4);
                    continue;
                }
                if (t->type == GGML_F16 && isfinite(x) && fabsf(x) > 65504.0f) {
                    free(out);
                    return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                                    "tensor '%s': value %g at %zu does not fit F16 (use --type bf16)",
                                    t->src->name, (double)x, start + i);
                }
                uint16_t h = t->type == GGML_F16 ? tkr_f32_to_f16(x) : tkr_f32_to_bf16(x);
                memcpy(out + 2 * i, &h, 2);
            }
            if (fwrite(out, es, n, f) != n) {
                free(out);
                return tkr_fail(err, TKR_ERR_IO, "write failed for tensor '%s'", t->name);
            }
        }
        free(out);
    }
    size_t pad = (size_t)((GGUF_ALIGN - t->nbytes % GGUF_ALIGN) % GGUF_ALIGN);
    if (pad && fwrite(zeros, 1, pad, f) != pad)
        return tkr_fail(err, TKR_ERR_IO, "write failed after tensor '%s'", t->name);
    return TKR_OK;
}

/* ---- the file --------------------------------------------------------------------------- */

typedef struct {
    uint32_t mat_type;     /* GGML type of the matrices */
    uint32_t pooling;      /* llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last */
} convert_options;

static void write_metadata(gguf_meta *m, const char *model_name, const tkr_model_config *cfg,
                           const vocab *v, const convert_options *o) {
    const tkr_text_config *c = &cfg->text;
    kv_str(m, "general.architecture", "qwen2vl");
    kv_str(m, "general.name", model_name);
    kv_u32(m, "general.alignment", GGUF_ALIGN);
    /* llama_ftype: 0 all F32, 1 mostly F16, 32 mostly BF16 */
    kv_u32(m, "general.file_type", o->mat_type == GGML_F32 ? 0 : o->mat_type == GGML_F16 ? 1 : 32);
    kv_u32(m, "qwen2vl.context_length", (uint32_t)c->max_position_embeddings);
    kv_u32(m, "qwen2vl.embedding_length", (uint32_t)c->hidden_size);
    kv_u32(m, "qwen2vl.block_count", (uint32_t)c->num_layers);
    kv_u32(m, "qwen2vl.feed_forward_length", (uint32_t)c->intermediate_size);
    kv_u32(m, "qwen2vl.attention.head_count", (uint32_t)c->num_heads);
    kv_u32(m, "qwen2vl.attention.head_count_kv", (uint32_t)c->num_kv_heads);
    kv_f32(m, "qwen2vl.attention.layer_norm_rms_epsilon", (float)c->rms_norm_eps);
    kv_f32(m, "qwen2vl.rope.freq_base", (float)c->rope_theta);
    int32_t sections[4] = {c->mrope_section[0], c->mrope_section[1], c->mrope_section[2], 0};
    kv_arr_i32(m, "qwen2vl.rope.dimension_sections", sections, 4);
    kv_u32(m, "qwen2vl.pooling_type", o->pooling);
    kv_str(m, "tokenizer.ggml.model", "gpt2");
    kv_str(m, "tokenizer.ggml.pre", "qwen2");
    kv_arr_str(m, "tokenizer.ggml.tokens", v->text, (size_t)v->n);
    kv_arr_i32(m, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
    kv_arr_str(m, "tokenizer.ggml.merges", v->merges, v->n_merges);
    if (v->bos >= 0) kv_u32(m, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) kv_u32(m, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->pad >= 0) kv_u32(m, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    kv_bool(m, "tokenizer.ggml.add_bos_token", false);
}

/* Header, metadata, tensor infos and padding in one buffer; then the data, tensor by tensor. */
static tkr_status write_gguf(const char *path, const gguf_meta *m, const tensor_plan *p,
                             tkr_error *err) {
    bytes_buf head = {0};
    buf_put(&head, "GGUF", 4);
    buf_u32(&head, 3);
    buf_u64(&head, (uint64_t)p->n);
    buf_u64(&head, (uint64_t)m->n_kv);
    buf_put(&head, m->kv.p, m->kv.n);
    for (size_t i = 0; i < p->n; i++) {
        const out_tensor *t = &p->t[i];
        buf_str(&head, t->name);
        buf_u32(&head, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) buf_u64(&head, (uint64_t)t->ne[d]);
        buf_u32(&head, t->type);
        buf_u64(&head, t->offset);
    }
    static const uint8_t zeros[GGUF_ALIGN];
    buf_put(&head, zeros, (GGUF_ALIGN - head.n % GGUF_ALIGN) % GGUF_ALIGN);
    if (head.oom || m->kv.oom) {
        free(head.p);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory building the GGUF header");
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(head.p);
        return tkr_fail(err, TKR_ERR_IO, "%s: cannot create", path);
    }
    tkr_status st = fwrite(head.p, 1, head.n, f) == head.n ? TKR_OK
                                                            : tkr_fail(err, TKR_ERR_IO, "%s: write failed", path);
    free(head.p);
    for (size_t i = 0; i < p->n && st == TKR_OK; i++) st = write_tensor(f, &p->t[i], err);
    if (fclose(f) != 0 && st == TKR_OK) st = tkr_fail(err, TKR_ERR_IO, "%s: write failed (disk full?)", path);
    return st;
}

/* The whole conversion; the output appears under its name only when complete (tmp + rename). */
static tkr_status convert(const char *dir, const char *out_path, const convert_options *o,
                          tkr_error *err) {
    tkr_model_config cfg;
    tkr_status st = tkr_config_load(dir, &cfg, err);
    if (st != TKR_OK) return st;
    if (cfg.text.head_dim * cfg.text.num_heads != cfg.text.hidden_size)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "llama.cpp's qwen2vl needs head_dim * heads == hidden_size");
    if (cfg.text.vocab_size > VOCAB_MAX)
        return tkr_fail(err, TKR_ERR_LIMIT, "vocab_size %d is over %d", cfg.text.vocab_size, VOCAB_MAX);
    tkr_weights *w = NULL;
    vocab v;
    memset(&v, 0, sizeof v);
    gguf_meta meta = {{0}, 0};
    tensor_plan plan = {0};
    char tmp[4096];
    st = tkr_weights_open(dir, 1, &w, err);
    if (st == TKR_OK) st = plan_tensors(&plan, w, &cfg.text, o->mat_type, err);
    if (st == TKR_OK) st = read_vocab(&v, dir, cfg.text.vocab_size, err);
    if (st == TKR_OK && snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp)
        st = tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: path too long", out_path);
    if (st == TKR_OK) {
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : dir;
        write_metadata(&meta, base, &cfg, &v, o);
        st = write_gguf(tmp, &meta, &plan, err);
        if (st == TKR_OK && rename(tmp, out_path) != 0)
            st = tkr_fail(err, TKR_ERR_IO, "%s: cannot rename to %s", tmp, out_path);
        if (st != TKR_OK) unlink(tmp);
        else
            printf("%s: %zu tensors, %d tokens, %zu merges, %.2f GB of tensor data\n", out_path, plan.n,
                   v.n, v.n_merges,
                   plan.n ? (double)(plan.t[plan.n - 1].offset + plan.t[plan.n - 1].nbytes) / 1e9 : 0.0);
    }
    free(meta.kv.p);
    free(plan.t);
    vocab_free(&v);
    tkr_weights_free(w);
    return st;
}

static int usage(void) {
    fprintf(stderr, "usage: st2gguf MODEL_DIR OUT.gguf [--type bf16|f16|f32] [--pooling last|none|mean|cls]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    convert_options o = {GGML_BF16, 3};
    for (int i = 3; i < argc; i += 2) {
        if (i + 1 >= argc) return usage();
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--type") && !strcmp(v, "bf16")) o.mat_type = GGML_BF16;
        else if (!strcmp(a, "--type") && !strcmp(v, "f16")) o.mat_type = GGML_F16;
        else if (!strcmp(a, "--type") && !strcmp(v, "f32")) o.mat_type = GGML_F32;
        else if (!strcmp(a, "--pooling") && !strcmp(v, "none")) o.pooling = 0;
        else if (!strcmp(a, "--pooling") && !strcmp(v, "mean")) o.pooling = 1;
        else if (!strcmp(a, "--pooling") && !strcmp(v, "cls")) o.pooling = 2;
        else if (!strcmp(a, "--pooling") && !strcmp(v, "last")) o.pooling = 3;
        else return usage();
    }
    tkr_error err = {TKR_OK, ""};
    if (convert(argv[1], argv[2], &o, &err) != TKR_OK) {
        fprintf(stderr, "st2gguf: %s\n", err.message);
        return 1;
    }
    return 0;
}

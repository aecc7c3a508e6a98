/* quantize.c - a HF directory or a GGUF pair to llama.cpp's GGUF pair (quantize.h).
 *
 * The work is a list of jobs, one per output tensor: its llama.cpp name, its source tensor (a
 * tkr_weights view: HF names of either layout, or a GGUF source registered under the same
 * names), which source rows make it (the q/k/v thirds of a fused qkv, the temporal halves of
 * the Conv3d patch embedding), its shape and its type. Each job is converted row by row:
 * source row -> float32 (tkr_weight_row_f32, dequantizing a quantized source) -> the output
 * type (tkr_quantize_row, ggml's reference quantizers), into one buffer per tensor. */
#include "model/quantize.h"
#include "io/gguf_write.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/threadpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* name, the base tensor type, llama.cpp's general.file_type (enum llama_ftype) */
static const struct {
    const char *name;
    tkr_dtype dt;
    uint32_t ftype;
} qtypes[TKR_QT_COUNT] = {
    [TKR_QT_F32] = {"f32", TKR_DT_F32, 0},        [TKR_QT_F16] = {"f16", TKR_DT_F16, 1},
    [TKR_QT_BF16] = {"bf16", TKR_DT_BF16, 32},    [TKR_QT_Q8_0] = {"q8_0", TKR_DT_Q8_0, 7},
    [TKR_QT_Q4_0] = {"q4_0", TKR_DT_Q4_0, 2},     [TKR_QT_Q4_K_M] = {"q4_k_m", TKR_DT_Q4_K, 15},
    [TKR_QT_Q4_K] = {"q4_k", TKR_DT_Q4_K, 14},    [TKR_QT_Q6_K] = {"q6_k", TKR_DT_Q6_K, 18},
};

bool tkr_qtype_from_name(const char *name, tkr_qtype *out) {
    for (int i = 0; i < TKR_QT_COUNT; i++)
        if (name && !strcasecmp(name, qtypes[i].name)) {
            *out = (tkr_qtype)i;
            return true;
        }
    return false;
}

const char *tkr_qtype_name(tkr_qtype t) {
    return (unsigned)t < TKR_QT_COUNT ? qtypes[t].name : "?";
}

tkr_quantize_params tkr_quantize_default_params(void) {
    tkr_quantize_params p;
    memset(&p, 0, sizeof p);
    p.type = TKR_QT_Q8_0;
    p.vision_type = TKR_QT_COUNT;
    return p;
}

/* llama-quantize's "use more bits" layers of the Q4_K_M mix. */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama.cpp's tensor_type_fallback for the types we write: a row that is not whole blocks of
 * a 256-value type tries Q8_0 (llama.cpp takes Q5_0 for Q4_K, a type we do not run), and a row
 * that is not whole blocks of 32 stays F16. */
static tkr_dtype fallback(tkr_dtype t, int64_t K) {
    if (K % tkr_dtype_block_elems(t) == 0) return t;
    tkr_dtype r = (t == TKR_DT_Q4_K || t == TKR_DT_Q6_K) ? TKR_DT_Q8_0 : t;
    return K % tkr_dtype_block_elems(r) == 0 ? r : TKR_DT_F16;
}

static bool has(const char *s, const char *part) { return strstr(s, part) != NULL; }

tkr_dtype tkr_quantize_pick_type(tkr_qtype type, bool vision, const char *name, int ndim, int64_t K,
                                 int layer, int n_layers, bool tied) {
    if (ndim < 2) return TKR_DT_F32;
    tkr_dtype base = qtypes[type].dt;
    if (vision) {
        if (has(name, "patch_embd")) return base == TKR_DT_F16 ? TKR_DT_F16 : TKR_DT_F32;
        return tkr_dtype_is_quant(base) ? fallback(base, K) : base;
    }
    if (!tkr_dtype_is_quant(base)) return base;
    tkr_dtype t = base;
    if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) {
        /* llama_tensor_get_type: the output matrix (or the tied embedding) gets Q6_K */
        if (K % tkr_dtype_block_elems(base) != 0) t = TKR_DT_Q8_0;
        else if (base != TKR_DT_Q8_0) t = TKR_DT_Q6_K;
    } else if (type == TKR_QT_Q4_K_M && layer >= 0 &&
               (has(name, "attn_v.weight") || has(name, "ffn_down")) &&
               use_more_bits(layer, n_layers)) {
        t = TKR_DT_Q6_K;
    }
    return fallback(t, K);
}

/* ---- jobs ------------------------------------------------------------------------------------ */

typedef struct {
    char name[64];
    const tkr_tensor *src;
    int64_t K;             /* values per converted row                                        */
    int64_t n_rows;        /* rows of K in the output                                         */
    int64_t row0;          /* mode 0: output row r is source row row0 + r of the [*, K] view  */
    int half, C;           /* mode 1: patch half t; output row e*C + c is source row
                              (e*C + c)*2 + t of the Conv3d [E*C*2, p*p] view                 */
    int mode;
    int ndim;
    int64_t shape[4];
    int layer;
    tkr_dtype type;
} qjob;

typedef struct {
    qjob *v;
    size_t n, cap;
} joblist;

static tkr_status push(joblist *l, qjob j, tkr_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        qjob *p = realloc(l->v, cap * sizeof *p);
        if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = j;
    return TKR_OK;
}

/* A job copying (rows row0.. of) a source tensor into an output of the given shape. */
static qjob job(const char *name, const tkr_tensor *src, int ndim, int64_t d0, int64_t d1,
                int64_t row0, int layer) {
    qjob j;
    memset(&j, 0, sizeof j);
    snprintf(j.name, sizeof j.name, "%s", name);
    j.src = src;
    j.ndim = ndim;
    j.shape[0] = d0;
    j.shape[1] = d1;
    j.K = ndim == 1 ? d0 : d1;
    j.n_rows = ndim == 1 ? 1 : d0;
    j.row0 = row0;
    j.layer = layer;
    return j;
}

#define TRY(call)                                                                               \
    do {                                                                                        \
        tkr_status st_ = (call);                                                                \
        if (st_ != TKR_OK) return st_;                                                          \
    } while (0)

/* Requires "<suffix>" (text or vision lookup) with a shape; then queues it under name. */
static tkr_status add(joblist *l, const tkr_weights *w, bool vision, const char *suffix,
                      const char *name, int ndim, int64_t d0, int64_t d1, int layer,
                      tkr_error *err) {
    int64_t shape[2] = {d0, d1};
    const tkr_tensor *t;
    TRY(vision ? tkr_weights_require_vision(w, suffix, ndim, shape, &t, err)
               : tkr_weights_require_text(w, suffix, ndim, shape, &t, err));
    return push(l, job(name, t, ndim, d0, d1, 0, layer), err);
}

static tkr_status text_jobs(joblist *l, const tkr_model_source *s, tkr_error *err) {
    const tkr_text_config *c = &s->cfg.text;
    const tkr_weights *w = s->weights;
    int64_t D = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim;
    int64_t kvd = (int64_t)c->num_kv_heads * c->head_dim, I = c->intermediate_size;
    char suf[128], nm[64];
    TRY(add(l, w, false, "embed_tokens.weight", "token_embd.weight", 2, c->vocab_size, D, -1, err));
    static const struct {
        const char *hf, *gg;
        int kind;   /* 0 norm [D], 1 q, 2 kv, 3 o, 4 gate/up, 5 down, 6 q bias, 7 kv bias */
    } L[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0},
        {"self_attn.q_proj.weight", "attn_q.weight", 1},
        {"self_attn.q_proj.bias", "attn_q.bias", 6},
        {"self_attn.k_proj.weight", "attn_k.weight", 2},
        {"self_attn.k_proj.bias", "attn_k.bias", 7},
        {"self_attn.v_proj.weight", "attn_v.weight", 2},
        {"self_attn.v_proj.bias", "attn_v.bias", 7},
        {"self_attn.o_proj.weight", "attn_output.weight", 3},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 4},
        {"mlp.up_proj.weight", "ffn_up.weight", 4},
        {"mlp.down_proj.weight", "ffn_down.weight", 5},
    };
    for (int i = 0; i < c->num_layers; i++)
        for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
            int64_t d0 = D, d1 = 0;
            int nd = 2;
            switch (L[k].kind) {
            case 0: nd = 1; break;
            case 1: d0 = qd; d1 = D; break;
            case 2: d0 = kvd; d1 = D; break;
            case 3: d0 = D; d1 = qd; break;
            case 4: d0 = I; d1 = D; break;
            case 5: d0 = D; d1 = I; break;
            case 6: nd = 1; d0 = qd; break;
            default: nd = 1; d0 = kvd; break;
            }
            snprintf(suf, sizeof suf, "layers.%d.%s", i, L[k].hf);
            snprintf(nm, sizeof nm, "blk.%d.%s", i, L[k].gg);
            TRY(add(l, w, false, suf, nm, nd, d0, d1, i, err));
        }
    TRY(add(l, w, false, "norm.weight", "output_norm.weight", 1, D, 0, -1, err));
    if (!c->tie_word_embeddings && tkr_weights_text(w, "lm_head.weight"))
        TRY(add(l, w, false, "lm_head.weight", "output.weight", 2, c->vocab_size, D, -1, err));
    return TKR_OK;
}

static bool has_vision(const tkr_model_source *s) {
    return s->cfg.has_vision && (tkr_weights_vision(s->weights, "patch_embed.proj.weight") ||
                                 tkr_weights_vision(s->weights, "patch_embed.proj.weight.t0"));
}

static tkr_status vision_jobs(joblist *l, const tkr_model_source *s, tkr_error *err) {
    const tkr_vision_config *v = &s->cfg.vision;
    const tkr_weights *w = s->weights;
    int64_t E = v->embed_dim, F = v->mlp_hidden, C = v->in_channels, p = v->patch_size;
    int64_t M4 = E * v->spatial_merge_size * v->spatial_merge_size, D = s->cfg.text.hidden_size;
    if (v->temporal_patch_size != 2)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "llama.cpp's mmproj needs temporal_patch_size 2");
    const tkr_tensor *pe = tkr_weights_vision(w, "patch_embed.proj.weight");
    for (int t = 0; t < 2; t++) {
        qjob j;
        const char *nm = t ? "v.patch_embd.weight.1" : "v.patch_embd.weight";
        if (pe) {
            if (pe->ndim != 5 || pe->shape[0] != E || pe->shape[1] != C || pe->shape[2] != 2 ||
                pe->shape[3] != p || pe->shape[4] != p)
                return tkr_fail(err, TKR_ERR_FORMAT, "tensor '%s': expected [%lld, %lld, 2, %lld, %lld]",
                                pe->name, (long long)E, (long long)C, (long long)p, (long long)p);
            j = job(nm, pe, 2, E, C * p * p, 0, -1);
            j.mode = 1;
            j.half = t;
            j.C = (int)C;
            j.K = p * p;
            j.n_rows = E * C;
        } else {
            int64_t shape[4] = {E, C, p, p};
            const tkr_tensor *h;
            TRY(tkr_weights_require_vision(w, t ? "patch_embed.proj.weight.t1"
                                                : "patch_embed.proj.weight.t0", 4, shape, &h, err));
            j = job(nm, h, 2, E, C * p * p, 0, -1);
            j.K = p * p;
            j.n_rows = E * C;
        }
        j.ndim = 4;
        j.shape[0] = E;
        j.shape[1] = C;
        j.shape[2] = p;
        j.shape[3] = p;
        TRY(push(l, j, err));
    }
    char suf[128], nm[64];
    for (int b = 0; b < v->depth; b++) {
        static const struct {
            const char *hf, *gg;
            int nd;
            int r0, r1; /* shape selectors: 0 E, 1 F, 2 none */
        } B[] = {
            {"norm1.weight", "ln1.weight", 1, 0, 2},  {"norm1.bias", "ln1.bias", 1, 0, 2},
            {"attn.proj.weight", "attn_out.weight", 2, 0, 0},
            {"attn.proj.bias", "attn_out.bias", 1, 0, 2},
            {"norm2.weight", "ln2.weight", 1, 0, 2},  {"norm2.bias", "ln2.bias", 1, 0, 2},
            {"mlp.fc1.weight", "ffn_up.weight", 2, 1, 0},
            {"mlp.fc1.bias", "ffn_up.bias", 1, 1, 2},
            {"mlp.fc2.weight", "ffn_down.weight", 2, 0, 1},
            {"mlp.fc2.bias", "ffn_down.bias", 1, 0, 2},
        };
        for (size_t k = 0; k < sizeof B / sizeof B[0]; k++) {
            snprintf(suf, sizeof suf, "blocks.%d.%s", b, B[k].hf);
            snprintf(nm, sizeof nm, "v.blk.%d.%s", b, B[k].gg);
            TRY(add(l, w, true, suf, nm, B[k].nd, B[k].r0 ? F : E,
                    B[k].r1 == 2 ? 0 : B[k].r1 ? F : E, b, err));
        }
        snprintf(suf, sizeof suf, "blocks.%d.attn.qkv.weight", b);
        static const char *const qkv[3] = {"q", "k", "v"};
        if (tkr_weights_vision(w, suf)) { /* HF: the thirds of the fused matrix and bias */
            int64_t sw[2] = {3 * E, E}, sb[1] = {3 * E};
            const tkr_tensor *tw, *tb;
            TRY(tkr_weights_require_vision(w, suf, 2, sw, &tw, err));
            snprintf(suf, sizeof suf, "blocks.%d.attn.qkv.bias", b);
            TRY(tkr_weights_require_vision(w, suf, 1, sb, &tb, err));
            for (int q = 0; q < 3; q++) {
                snprintf(nm, sizeof nm, "v.blk.%d.attn_%s.weight", b, qkv[q]);
                TRY(push(l, job(nm, tw, 2, E, E, q * E, b), err));
                snprintf(nm, sizeof nm, "v.blk.%d.attn_%s.bias", b, qkv[q]);
                TRY(push(l, job(nm, tb, 1, E, 0, q, b), err));
            }
        } else {
            for (int q = 0; q < 3; q++) {
                snprintf(suf, sizeof suf, "blocks.%d.attn.%s.weight", b, qkv[q]);
                snprintf(nm, sizeof nm, "v.blk.%d.attn_%s.weight", b, qkv[q]);
                TRY(add(l, w, true, suf, nm, 2, E, E, b, err));
                snprintf(suf, sizeof suf, "blocks.%d.attn.%s.bias", b, qkv[q]);
                snprintf(nm, sizeof nm, "v.blk.%d.attn_%s.bias", b, qkv[q]);
                TRY(add(l, w, true, suf, nm, 1, E, 0, b, err));
            }
        }
    }
    TRY(add(l, w, true, "merger.ln_q.weight", "v.post_ln.weight", 1, E, 0, -1, err));
    TRY(add(l, w, true, "merger.ln_q.bias", "v.post_ln.bias", 1, E, 0, -1, err));
    TRY(add(l, w, true, "merger.mlp.0.weight", "mm.0.weight", 2, M4, M4, -1, err));
    TRY(add(l, w, true, "merger.mlp.0.bias", "mm.0.bias", 1, M4, 0, -1, err));
    TRY(add(l, w, true, "merger.mlp.2.weight", "mm.2.weight", 2, D, M4, -1, err));
    TRY(add(l, w, true, "merger.mlp.2.bias", "mm.2.bias", 1, D, 0, -1, err));
    return TKR_OK;
}

/* ---- conversion ------------------------------------------------------------------------------ */

/* One slice of a job's rows, converted by one thread with its own float row. */
typedef struct {
    const qjob *j;
    const tkr_tensor *view;
    uint8_t *buf;
    size_t rb;
    float *rows;           /* [threads][K] */
    int n_tasks;
} convert_ctx;

static void convert_task(void *ctx, int task, int thread) {
    convert_ctx *c = ctx;
    const qjob *j = c->j;
    float *row = c->rows + (size_t)thread * (size_t)j->K;
    int64_t r0 = j->n_rows * task / c->n_tasks, r1 = j->n_rows * (task + 1) / c->n_tasks;
    for (int64_t r = r0; r < r1; r++) {
        int64_t sr = j->mode == 1 ? r * 2 + j->half : j->row0 + r;
        tkr_weight_row_f32(c->view, sr, row);
        tkr_quantize_row(j->type, row, c->buf + (size_t)r * c->rb, j->K);
    }
}

/* The job's bytes in its type: every output row from its source row (float32 in between),
 * rows split over the pool's threads. */
static tkr_status convert(const qjob *j, tkr_pool *pool, int64_t sample_rows, void **out,
                          size_t *nbytes, tkr_error *err) {
    size_t rb = tkr_dtype_row_bytes(j->type, j->K);
    size_t src_numel = tkr_tensor_numel(j->src);
    tkr_tensor view = *j->src; /* [src_numel / K, K] */
    view.ndim = 2;
    view.shape[0] = (int64_t)src_numel / j->K;
    view.shape[1] = j->K;
    int64_t last = j->mode == 1 ? (j->n_rows - 1) * 2 + j->half : j->row0 + j->n_rows - 1;
    if (rb == 0 || (int64_t)src_numel % j->K != 0 || last >= view.shape[0] ||
        (tkr_dtype_is_quant(view.dtype) && j->K % tkr_dtype_block_elems(view.dtype) != 0))
        return tkr_fail(err, TKR_ERR_FORMAT, "tensor '%s': cannot convert rows of %lld to %s",
                        j->name, (long long)j->K, tkr_dtype_name(j->type));
    int threads = tkr_pool_size(pool);
    uint8_t *buf = malloc(rb * (size_t)j->n_rows);
    float *rows = malloc(sizeof(float) * (size_t)j->K * (size_t)threads);
    if (!buf || !rows) {
        free(buf);
        free(rows);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for tensor '%s' (%zu MB)", j->name,
                        rb * (size_t)j->n_rows >> 20);
    }
    /* sample_rows (memory benchmarks of big shapes only): the first rows, repeated */
    int64_t n_conv = sample_rows > 0 && sample_rows < j->n_rows ? sample_rows : j->n_rows;
    qjob js = *j;
    js.n_rows = n_conv;
    int64_t tasks = n_conv < 4 * threads ? n_conv : 4 * threads;
    convert_ctx c = {&js, &view, buf, rb, rows, (int)tasks};
    tkr_pool_run(pool, (int)tasks, convert_task, &c);
    for (int64_t r = n_conv; r < j->n_rows; r++)
        memcpy(buf + (size_t)r * rb, buf + (size_t)(r % n_conv) * rb, rb);
    free(rows);
    *out = buf;
    *nbytes = rb * (size_t)j->n_rows;
    return TKR_OK;
}

typedef struct {
    const tkr_quantize_params *p;
    uint64_t done, total;
} progress_state;

/* Declares, then converts and writes, every job into path. */
static tkr_status write_file(tkr_gguf_writer *w, const joblist *l, const char *path,
                             tkr_pool *pool, progress_state *ps, tkr_error *err) {
    for (size_t i = 0; i < l->n; i++)
        TRY(tkr_gguf_add_tensor(w, l->v[i].name, l->v[i].type, l->v[i].ndim, l->v[i].shape, err));
    TRY(tkr_gguf_writer_begin(w, path, err));
    for (size_t i = 0; i < l->n; i++) {
        void *data = NULL;
        size_t nb = 0;
        TRY(convert(&l->v[i], pool, ps->p->sample_rows, &data, &nb, err));
        tkr_status st = tkr_gguf_write_tensor(w, data, nb, err);
        free(data);
        if (st != TKR_OK) return st;
        ps->done += nb;
        if (ps->p->progress) ps->p->progress(ps->p->progress_ctx, l->v[i].name, ps->done, ps->total);
    }
    return tkr_gguf_writer_finish(w, err);
}

static void assign_types(joblist *l, tkr_qtype type, bool vision, int n_layers, bool tied,
                         uint64_t *total) {
    for (size_t i = 0; i < l->n; i++) {
        qjob *j = &l->v[i];
        j->type = tkr_quantize_pick_type(type, vision, j->name, j->ndim, j->shape[j->ndim - 1],
                                         j->layer, n_layers, tied);
        *total += tkr_dtype_row_bytes(j->type, j->K) * (uint64_t)j->n_rows;
    }
}

#define SET(call)                                                                               \
    do {                                                                                        \
        if ((st = (call)) != TKR_OK) goto done;                                                 \
    } while (0)

static tkr_status text_metadata(tkr_gguf_writer *w, const tkr_model_source *s, const char *name,
                                tkr_qtype type, tkr_error *err) {
    const tkr_text_config *c = &s->cfg.text;
    tkr_tok_export e;
    memset(&e, 0, sizeof e);
    tkr_status st;
    SET(tkr_gguf_set_str(w, "general.architecture", "qwen2vl", err));
    SET(tkr_gguf_set_str(w, "general.type", "model", err));
    SET(tkr_gguf_set_str(w, "general.name", name, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.block_count", (uint32_t)c->num_layers, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.context_length", (uint32_t)c->max_position_embeddings, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.embedding_length", (uint32_t)c->hidden_size, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.feed_forward_length", (uint32_t)c->intermediate_size, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.attention.head_count", (uint32_t)c->num_heads, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.attention.head_count_kv", (uint32_t)c->num_kv_heads, err));
    int32_t sections[4] = {c->mrope_section[0], c->mrope_section[1], c->mrope_section[2], 0};
    SET(tkr_gguf_set_arr_i32(w, "qwen2vl.rope.dimension_sections", sections, 4, err));
    SET(tkr_gguf_set_f32(w, "qwen2vl.rope.freq_base", (float)c->rope_theta, err));
    SET(tkr_gguf_set_f32(w, "qwen2vl.attention.layer_norm_rms_epsilon", (float)c->rms_norm_eps, err));
    SET(tkr_gguf_set_u32(w, "qwen2vl.pooling_type", 3, err)); /* LAST: the Ops-MM recipe */
    SET(tkr_gguf_set_u32(w, "general.file_type", qtypes[type].ftype, err));
    SET(tkr_gguf_set_u32(w, "general.quantization_version", 2, err));
    SET(tkr_tokenizer_export(s->tok, c->vocab_size, &e, err));
    if (e.n_tokens != (size_t)c->vocab_size) {
        st = tkr_fail(err, TKR_ERR_FORMAT, "the tokenizer has %zu ids but the embedding %d rows",
                      e.n_tokens, c->vocab_size);
        goto done;
    }
    SET(tkr_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", err));
    SET(tkr_gguf_set_str(w, "tokenizer.ggml.pre", "qwen2", err));
    SET(tkr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)e.tokens, e.n_tokens, err));
    SET(tkr_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", e.types, e.n_tokens, err));
    SET(tkr_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)e.merges, e.n_merges, err));
    /* special ids: a GGUF source's own, else Qwen2-VL's (eos <|im_end|>, bos/pad <|endoftext|>) */
    static const char *const keys[3] = {"tokenizer.ggml.eos_token_id",
                                        "tokenizer.ggml.padding_token_id",
                                        "tokenizer.ggml.bos_token_id"};
    const char *toks[3] = {"<|im_end|>", "<|endoftext|>", "<|endoftext|>"};
    const tkr_gguf *g = s->gguf ? tkr_weights_gguf_model(s->weights) : NULL;
    for (int k = 0; k < 3; k++) {
        if (g && tkr_gguf_find(g, keys[k]) >= 0) {
            SET(tkr_gguf_set_copy(w, g, keys[k], err));
            continue;
        }
        int32_t id = tkr_tokenizer_token_id(s->tok, toks[k]);
        if (id >= 0) SET(tkr_gguf_set_u32(w, keys[k], (uint32_t)id, err));
    }
done:
    tkr_tokenizer_export_free(&e);
    return st;
}

static tkr_status vision_metadata(tkr_gguf_writer *w, const tkr_model_source *s, const char *name,
                                  tkr_qtype vtype, tkr_error *err) {
    const tkr_vision_config *v = &s->cfg.vision;
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    int ff = v->out_hidden_size > 0 ? v->out_hidden_size : s->cfg.text.hidden_size;
    tkr_status st;
    SET(tkr_gguf_set_str(w, "general.architecture", "clip", err));
    SET(tkr_gguf_set_str(w, "general.type", "mmproj", err));
    SET(tkr_gguf_set_str(w, "general.name", name, err));
    SET(tkr_gguf_set_u32(w, "general.file_type", qtypes[vtype].ftype, err));
    SET(tkr_gguf_set_bool(w, "clip.has_vision_encoder", true, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.projection_dim", (uint32_t)s->cfg.text.hidden_size, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.image_size", 560, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.patch_size", (uint32_t)v->patch_size, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.embedding_length", (uint32_t)v->embed_dim, err));
    /* llama.cpp's converter stores vision_config.hidden_size (the merger's output) here */
    SET(tkr_gguf_set_u32(w, "clip.vision.feed_forward_length", (uint32_t)ff, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.block_count", (uint32_t)v->depth, err));
    SET(tkr_gguf_set_u32(w, "clip.vision.attention.head_count", (uint32_t)v->num_heads, err));
    SET(tkr_gguf_set_arr_f32(w, "clip.vision.image_mean", mean, 3, err));
    SET(tkr_gguf_set_arr_f32(w, "clip.vision.image_std", stdv, 3, err));
    SET(tkr_gguf_set_str(w, "clip.projector_type", "qwen2vl_merger", err));
    SET(tkr_gguf_set_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f, err));
    SET(tkr_gguf_set_u32(w, "general.quantization_version", 2, err));
done:
    return st;
}

/* dirname(out)/mmproj-basename(out) */
static tkr_status mmproj_path(const char *out, char *buf, size_t cap, tkr_error *err) {
    const char *slash = strrchr(out, '/');
    int n = slash ? snprintf(buf, cap, "%.*s/mmproj-%s", (int)(slash - out), out, slash + 1)
                  : snprintf(buf, cap, "mmproj-%s", out);
    if (n < 0 || (size_t)n >= cap) return tkr_fail(err, TKR_ERR_INVALID_ARG, "output path too long");
    return TKR_OK;
}

/* The model's name: the source's base name without ".gguf". */
static void model_name(const char *src, char *buf, size_t cap) {
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && src[b - 1] != '/') b--;
    size_t len = n - b;
    if (len > 5 && !strncmp(src + n - 5, ".gguf", 5)) len -= 5;
    snprintf(buf, cap, "%.*s", (int)len, src + b);
}

tkr_status tkr_quantize_model(const char *src_path, const char *out_path,
                              const tkr_quantize_params *params, tkr_error *err) {
    tkr_quantize_params p = params ? *params : tkr_quantize_default_params();
    if ((unsigned)p.type >= TKR_QT_COUNT || p.type == TKR_QT_Q4_K)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "quantize: the text type must be one of f32, f16, "
                        "bf16, q8_0, q4_0, q4_k_m, q6_k");
    if ((unsigned)p.vision_type > TKR_QT_COUNT || p.vision_type == TKR_QT_Q4_K_M)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "quantize: the vision type must be one of f32, "
                        "f16, bf16, q8_0, q4_0, q4_k, q6_k");
    if (p.vision_type == TKR_QT_COUNT)
        p.vision_type = tkr_dtype_is_quant(qtypes[p.type].dt) ? TKR_QT_Q8_0 : p.type;
    if (!out_path || !*out_path) return tkr_fail(err, TKR_ERR_INVALID_ARG, "quantize: no output path");
    char mm_out[4200], name[256];
    TRY(mmproj_path(out_path, mm_out, sizeof mm_out, err));
    model_name(src_path, name, sizeof name);
    tkr_model_source s;
    TRY(tkr_model_source_open(src_path, p.mmproj, 1, &s, err));
    joblist text = {0}, vis = {0};
    tkr_gguf_writer *w = NULL;
    tkr_pool *pool = NULL;
    progress_state ps = {&p, 0, 0};
    bool vision = has_vision(&s);
    tkr_status st = text_jobs(&text, &s, err);
    if (st == TKR_OK && vision) st = vision_jobs(&vis, &s, err);
    if (st == TKR_OK) {
        bool tied = !tkr_weights_text(s.weights, "lm_head.weight") || s.cfg.text.tie_word_embeddings;
        assign_types(&text, p.type, false, s.cfg.text.num_layers, tied, &ps.total);
        assign_types(&vis, p.vision_type, true, s.cfg.vision.depth, false, &ps.total);
    }
    if (st == TKR_OK)
        st = tkr_pool_init(p.n_threads > 0 ? p.n_threads : tkr_cpu_count(), &pool, err);
    if (st == TKR_OK) st = tkr_gguf_writer_init(&w, err);
    if (st == TKR_OK) st = text_metadata(w, &s, name, p.type, err);
    if (st == TKR_OK) st = write_file(w, &text, out_path, pool, &ps, err);
    tkr_gguf_writer_free(w);
    w = NULL;
    if (st == TKR_OK && vision) {
        st = tkr_gguf_writer_init(&w, err);
        if (st == TKR_OK) st = vision_metadata(w, &s, name, p.vision_type, err);
        if (st == TKR_OK) st = write_file(w, &vis, mm_out, pool, &ps, err);
        tkr_gguf_writer_free(w);
    }
    tkr_pool_free(pool);
    free(text.v);
    free(vis.v);
    tkr_model_source_close(&s);
    return st;
}

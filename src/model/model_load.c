/* model_load.c - opening a Qwen2-VL model (a Hugging Face directory, or GGUF files: a text model
 * and its optional mmproj): config, weights, tokenizer, and
 * binding every tensor the forward passes use, with its shape checked once here so that the
 * compute code can trust them. */
#include "model/model.h"
#include "io/gguf.h"
#include "media/media.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/platform.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

tkr_model_params tkr_model_default_params(void) {
    tkr_model_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.min_image_tokens = 256;
    p.max_image_tokens = 1280;
    p.max_images_per_item = 64;   /* as many images as a default video gives */
    p.max_image_bytes = 32u << 20;
    p.max_image_pixels = 64ull << 20;
    p.max_tokens_per_item = 131072; /* a 64-frame video at 1280 tokens a frame is 81920 */
    p.max_batch_tokens = 8192;
    p.truncate = false;
    p.use_mmap = true;
    p.max_scratch_bytes = (size_t)256 << 20;
    p.release_vision_weights = false; /* costs a re-map per image pass: opt-in */
    p.repack_weights = true; /* pays back after a few items; a one-shot CLI call turns it off */
    p.media = tkr_media_default_limits();
    return p;
}

tkr_item tkr_item_default(void) {
    tkr_item it;
    memset(&it, 0, sizeof it);
    return it;
}

static tkr_status check_params(const tkr_model_params *p, tkr_error *err) {
    if (p->n_threads < 0 || p->n_threads > 1024)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "n_threads must be in [0, 1024], got %d", p->n_threads);
    if (p->min_image_tokens < 1 || p->max_image_tokens < p->min_image_tokens ||
        p->max_image_tokens > 16384)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "image tokens must satisfy 1 <= min (%d) <= max (%d) <= 16384",
                        p->min_image_tokens, p->max_image_tokens);
    if (p->max_images_per_item < 0 || p->max_images_per_item > 1024)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "max_images_per_item must be in [0, 1024]");
    if (p->max_tokens_per_item < 16 || p->max_tokens_per_item > (1 << 20))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "max_tokens_per_item must be in [16, 1048576]");
    if (p->max_batch_tokens < 16 || p->max_batch_tokens > (1 << 22))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "max_batch_tokens must be in [16, 4194304]");
    if (p->max_scratch_bytes < 1)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "max_scratch_bytes must be at least 1");
    return TKR_OK;
}

/* Binds "<group>.<index>.<suffix>" (or just "<suffix>" when index < 0) of the text decoder
 * ("layers") or the vision tower ("blocks") with an expected shape; the io layer resolves both
 * weight-name layouts (and, for GGUF files, maps llama.cpp's names to these). Any matrix may be
 * block-quantized when its rows are whole blocks; 1-D tensors (norms, biases) must be floats. */
static tkr_status bind(const tkr_model *m, bool vision, int index, const char *suffix, int ndim,
                       int64_t d0, int64_t d1, const tkr_tensor **out, tkr_error *err) {
    char name[256];
    if (index >= 0)
        snprintf(name, sizeof name, "%s.%d.%s", vision ? "blocks" : "layers", index, suffix);
    else
        snprintf(name, sizeof name, "%s", suffix);
    int64_t shape[2] = {d0, d1};
    tkr_status st = vision ? tkr_weights_require_vision(m->weights, name, ndim, shape, out, err)
                           : tkr_weights_require_text(m->weights, name, ndim, shape, out, err);
    if (st != TKR_OK) return st;
    tkr_dtype dt = (*out)->dtype;
    if (tkr_dtype_is_quant(dt) && (ndim != 2 || d1 % tkr_dtype_block_elems(dt) != 0))
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "tensor '%s' is %s, which needs a matrix whose rows are whole blocks of %d "
                        "(norms and biases must be F32, F16 or BF16)",
                        (*out)->name, tkr_dtype_name(dt), tkr_dtype_block_elems(dt));
    if (!tkr_dtype_is_quant(dt) && tkr_dtype_size(dt) == 0)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "tensor '%s' has an unsupported type", (*out)->name);
    return TKR_OK;
}
#define bind_text(m, i, s, nd, a, b, o, e) bind(m, false, i, s, nd, a, b, o, e)
#define bind_vision(m, i, s, nd, a, b, o, e) bind(m, true, i, s, nd, a, b, o, e)

#define BIND(call)                                                                              \
    do {                                                                                        \
        tkr_status st_ = (call);                                                                \
        if (st_ != TKR_OK) return st_;                                                          \
    } while (0)

static tkr_status bind_text_weights(tkr_model *m, tkr_error *err) {
    const tkr_text_config *c = &m->cfg.text;
    int64_t D = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim;
    int64_t kvd = (int64_t)c->num_kv_heads * c->head_dim, I = c->intermediate_size;
    BIND(bind_text(m, -1, "embed_tokens.weight", 2, c->vocab_size, D, &m->embed, err));
    BIND(bind_text(m, -1, "norm.weight", 1, D, 0, &m->final_norm, err));
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        tkr_text_layer *L = &m->layers[l];
        BIND(bind_text(m, l, "input_layernorm.weight", 1, D, 0, &L->input_norm, err));
        BIND(bind_text(m, l, "post_attention_layernorm.weight", 1, D, 0, &L->post_norm, err));
        BIND(bind_text(m, l, "self_attn.q_proj.weight", 2, qd, D, &L->q_w, err));
        BIND(bind_text(m, l, "self_attn.q_proj.bias", 1, qd, 0, &L->q_b, err));
        BIND(bind_text(m, l, "self_attn.k_proj.weight", 2, kvd, D, &L->k_w, err));
        BIND(bind_text(m, l, "self_attn.k_proj.bias", 1, kvd, 0, &L->k_b, err));
        BIND(bind_text(m, l, "self_attn.v_proj.weight", 2, kvd, D, &L->v_w, err));
        BIND(bind_text(m, l, "self_attn.v_proj.bias", 1, kvd, 0, &L->v_b, err));
        BIND(bind_text(m, l, "self_attn.o_proj.weight", 2, D, qd, &L->o_w, err));
        BIND(bind_text(m, l, "mlp.gate_proj.weight", 2, I, D, &L->gate_w, err));
        BIND(bind_text(m, l, "mlp.up_proj.weight", 2, I, D, &L->up_w, err));
        BIND(bind_text(m, l, "mlp.down_proj.weight", 2, D, I, &L->down_w, err));
    }
    return TKR_OK;
}

/* A GGUF mmproj splits the Conv3d patch embedding [E, C, 2, p, p] into its two temporal halves
 * [E, C, p, p] ("...weight.t0", "...weight.t1", as llama.cpp's converter does). The forward pass
 * wants HF's [E, C*2*p*p] rows in (c, t, ph, pw) order: rebuilt here once, in float32, owned by
 * the model. */
static tkr_status join_patch_halves(tkr_model *m, const tkr_tensor *h0, const tkr_tensor *h1,
                                    tkr_error *err) {
    const tkr_vision_config *v = &m->cfg.vision;
    int64_t E = v->embed_dim, C = v->in_channels, pp = (int64_t)v->patch_size * v->patch_size;
    if (v->temporal_patch_size != 2)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "a split patch embedding needs temporal_patch_size 2, config says %d",
                        v->temporal_patch_size);
    const tkr_tensor *h[2] = {h0, h1};
    for (int t = 0; t < 2; t++) {
        int64_t numel = 1;
        for (int i = 1; i < h[t]->ndim; i++) numel *= h[t]->shape[i];
        if (h[t]->ndim < 2 || h[t]->shape[0] != E || numel != C * pp)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "tensor '%s': expected %lld rows of %lld values (the patch embedding's "
                            "temporal half)", h[t]->name, (long long)E, (long long)(C * pp));
    }
    int64_t K = C * 2 * pp;
    float *w = malloc(sizeof(float) * (size_t)(E * K));
    float *row = malloc(sizeof(float) * (size_t)(C * pp));
    if (!w || !row) {
        free(w);
        free(row);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for the patch embedding");
    }
    for (int t = 0; t < 2; t++) {
        tkr_tensor view = *h[t];   /* [E, C*p*p] */
        view.ndim = 2;
        view.shape[1] = C * pp;
        for (int64_t e = 0; e < E; e++) {
            tkr_weight_row_f32(&view, e, row);
            for (int64_t c = 0; c < C; c++)
                memcpy(w + e * K + c * 2 * pp + t * pp, row + c * pp, sizeof(float) * (size_t)pp);
        }
    }
    free(row);
    m->vis.patch_embed_own = w;
    tkr_tensor *pe = &m->vis.patch_embed_t;
    memset(pe, 0, sizeof *pe);
    pe->name = "visual.patch_embed.proj.weight";
    pe->dtype = TKR_DT_F32;
    pe->ndim = 2;
    pe->shape[0] = E;
    pe->shape[1] = K;
    pe->data = w;
    pe->nbytes = sizeof(float) * (size_t)(E * K);
    pe->aligned = true;
    m->vis.patch_embed = pe;
    return TKR_OK;
}

/* The vision tower is optional: a text-only checkpoint simply has no visual.* tensors (a GGUF
 * text model without its mmproj neither). A checkpoint that has some of them must have all of
 * them with the right shapes. Attention is one fused qkv matrix (HF) or q, k, v (GGUF). */
static tkr_status bind_vision_weights(tkr_model *m, tkr_error *err) {
    const tkr_vision_config *v = &m->cfg.vision;
    const tkr_tensor *pe = tkr_weights_vision(m->weights, "patch_embed.proj.weight");
    const tkr_tensor *h0 = tkr_weights_vision(m->weights, "patch_embed.proj.weight.t0");
    const tkr_tensor *h1 = tkr_weights_vision(m->weights, "patch_embed.proj.weight.t1");
    if (!m->cfg.has_vision || (!pe && !h0 && !h1)) {
        m->has_vision = false;
        return TKR_OK;
    }
    int64_t E = v->embed_dim, F = v->mlp_hidden, M4 = E * v->spatial_merge_size * v->spatial_merge_size;
    int64_t patch = (int64_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    if (!pe) {
        if (!h0 || !h1)
            return tkr_fail(err, TKR_ERR_FORMAT, "the patch embedding has only one of its two "
                            "temporal halves (patch_embed.proj.weight.t0/.t1)");
        BIND(join_patch_halves(m, h0, h1, err));
    } else {
        int64_t numel = 1;
        for (int i = 1; i < pe->ndim; i++) numel *= pe->shape[i];
        if (pe->shape[0] != E || numel != patch)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "tensor 'patch_embed.proj.weight': expected %lld x %lld values per row",
                            (long long)E, (long long)patch);
        if (tkr_dtype_is_quant(pe->dtype))
            return tkr_fail(err, TKR_ERR_FORMAT, "tensor '%s': the patch embedding must be F32, "
                            "F16 or BF16", pe->name);
        m->vis.patch_embed = pe;
    }
    m->vis.blocks = calloc((size_t)v->depth, sizeof *m->vis.blocks);
    if (!m->vis.blocks) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (int b = 0; b < v->depth; b++) {
        tkr_vision_block *B = &m->vis.blocks[b];
        char qkv[64];
        snprintf(qkv, sizeof qkv, "blocks.%d.attn.qkv.weight", b);
        BIND(bind_vision(m, b, "norm1.weight", 1, E, 0, &B->norm1_w, err));
        BIND(bind_vision(m, b, "norm1.bias", 1, E, 0, &B->norm1_b, err));
        BIND(bind_vision(m, b, "norm2.weight", 1, E, 0, &B->norm2_w, err));
        BIND(bind_vision(m, b, "norm2.bias", 1, E, 0, &B->norm2_b, err));
        if (tkr_weights_vision(m->weights, qkv)) {
            BIND(bind_vision(m, b, "attn.qkv.weight", 2, 3 * E, E, &B->qkv_w, err));
            BIND(bind_vision(m, b, "attn.qkv.bias", 1, 3 * E, 0, &B->qkv_b, err));
        } else {
            BIND(bind_vision(m, b, "attn.q.weight", 2, E, E, &B->q_w, err));
            BIND(bind_vision(m, b, "attn.q.bias", 1, E, 0, &B->q_b, err));
            BIND(bind_vision(m, b, "attn.k.weight", 2, E, E, &B->k_w, err));
            BIND(bind_vision(m, b, "attn.k.bias", 1, E, 0, &B->k_b, err));
            BIND(bind_vision(m, b, "attn.v.weight", 2, E, E, &B->v_w, err));
            BIND(bind_vision(m, b, "attn.v.bias", 1, E, 0, &B->v_b, err));
        }
        BIND(bind_vision(m, b, "attn.proj.weight", 2, E, E, &B->proj_w, err));
        BIND(bind_vision(m, b, "attn.proj.bias", 1, E, 0, &B->proj_b, err));
        BIND(bind_vision(m, b, "mlp.fc1.weight", 2, F, E, &B->fc1_w, err));
        BIND(bind_vision(m, b, "mlp.fc1.bias", 1, F, 0, &B->fc1_b, err));
        BIND(bind_vision(m, b, "mlp.fc2.weight", 2, E, F, &B->fc2_w, err));
        BIND(bind_vision(m, b, "mlp.fc2.bias", 1, E, 0, &B->fc2_b, err));
    }
    BIND(bind_vision(m, -1, "merger.ln_q.weight", 1, E, 0, &m->vis.ln_q_w, err));
    BIND(bind_vision(m, -1, "merger.ln_q.bias", 1, E, 0, &m->vis.ln_q_b, err));
    BIND(bind_vision(m, -1, "merger.mlp.0.weight", 2, M4, M4, &m->vis.mlp0_w, err));
    BIND(bind_vision(m, -1, "merger.mlp.0.bias", 1, M4, 0, &m->vis.mlp0_b, err));
    BIND(bind_vision(m, -1, "merger.mlp.2.weight", 2, m->cfg.text.hidden_size, M4, &m->vis.mlp2_w, err));
    BIND(bind_vision(m, -1, "merger.mlp.2.bias", 1, m->cfg.text.hidden_size, 0, &m->vis.mlp2_b, err));
    m->has_vision = true;
    return TKR_OK;
}

/* The special tokens the prompt needs must exist in the tokenizer with the ids the config names. */
static tkr_status bind_tokens(tkr_model *m, tkr_error *err) {
    struct {
        const char *s;
        int32_t *dst;
        int expect;
    } t[] = {
        {"<|im_start|>", &m->tok_im_start, -1},
        {"<|im_end|>", &m->tok_im_end, -1},
        {"<|endoftext|>", &m->tok_endoftext, -1},
        {"<|vision_start|>", &m->tok_vision_start, m->cfg.vision_start_token_id},
        {"<|vision_end|>", &m->tok_vision_end, m->cfg.vision_end_token_id},
        {"<|image_pad|>", &m->tok_image_pad, m->cfg.image_token_id},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int32_t id = tkr_tokenizer_token_id(m->tok, t[i].s);
        if (id < 0) {
            if (i >= 3 && !m->has_vision) { /* vision tokens are only needed with images */
                *t[i].dst = -1;
                continue;
            }
            return tkr_fail(err, TKR_ERR_FORMAT, "tokenizer has no %s token", t[i].s);
        }
        if (t[i].expect >= 0 && id != t[i].expect)
            return tkr_fail(err, TKR_ERR_FORMAT, "tokenizer maps %s to %d but the model config says %d",
                            t[i].s, id, t[i].expect);
        if (id >= m->cfg.text.vocab_size)
            return tkr_fail(err, TKR_ERR_FORMAT, "token %s id %d is outside the embedding table (%d rows)",
                            t[i].s, id, m->cfg.text.vocab_size);
        *t[i].dst = id;
    }
    return TKR_OK;
}

/* What -m names: a HF directory (config.json), a .gguf text model, or a directory holding one
 * model .gguf and at most one mmproj*.gguf. */
typedef struct {
    bool gguf;
    char dir[4096];          /* the HF directory, or the directory of the GGUF files        */
    char model[4096];        /* GGUF: the text model file                                    */
    char mmproj[4096];       /* GGUF: the vision tower file, "" for none                     */
} model_files;

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static tkr_status copy_path(char *dst, size_t cap, const char *src, tkr_error *err) {
    size_t n = strlen(src);
    if (n >= cap) return tkr_fail(err, TKR_ERR_INVALID_ARG, "path too long: %.100s...", src);
    memcpy(dst, src, n + 1);
    return TKR_OK;
}

/* Finds the GGUF files of a directory without config.json. */
static tkr_status scan_gguf_dir(const char *dir, model_files *f, tkr_error *err) {
    DIR *d = opendir(dir);
    if (!d) return tkr_fail(err, TKR_ERR_IO, "%s: cannot list directory: %s", dir, strerror(errno));
    char model[256] = "", mmproj[256] = "";
    int n_model = 0, n_mmproj = 0;
    tkr_status st = TKR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (!ends_with(n, ".gguf") || n[0] == '.' || strlen(n) >= sizeof model) continue;
        bool is_mm = strncmp(n, "mmproj", 6) == 0;
        char *dst = is_mm ? mmproj : model;
        int *cnt = is_mm ? &n_mmproj : &n_model;
        if (++*cnt > 1) {
            st = tkr_fail(err, TKR_ERR_INVALID_ARG,
                          "%s: more than one %s GGUF ('%s' and '%s'): name the file with -m%s", dir,
                          is_mm ? "mmproj" : "model", dst, n, is_mm ? " and --mmproj" : "");
            break;
        }
        memcpy(dst, n, strlen(n) + 1);
    }
    closedir(d);
    if (st != TKR_OK) return st;
    if (n_model == 0)
        return tkr_fail(err, TKR_ERR_IO,
                        "%s: not a model directory (no config.json and no model .gguf file)", dir);
    if (!tkr_path_join(f->model, sizeof f->model, dir, model) ||
        (n_mmproj && !tkr_path_join(f->mmproj, sizeof f->mmproj, dir, mmproj)))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: path too long", dir);
    return TKR_OK;
}

static tkr_status resolve_files(const char *path, const char *mmproj, model_files *f,
                                tkr_error *err) {
    memset(f, 0, sizeof *f);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tkr_fail(err, TKR_ERR_IO, "%s: %s", path, strerror(errno));
    tkr_status st;
    if (S_ISDIR(sb.st_mode)) {
        if ((st = copy_path(f->dir, sizeof f->dir, path, err)) != TKR_OK) return st;
        char cfg[4200];
        if (!tkr_path_join(cfg, sizeof cfg, path, "config.json"))
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "path too long");
        if (tkr_file_exists(cfg)) {
            if (mmproj && *mmproj)
                return tkr_fail(err, TKR_ERR_INVALID_ARG,
                                "%s is a Hugging Face directory: --mmproj only goes with GGUF models",
                                path);
            return TKR_OK;
        }
        f->gguf = true;
        if ((st = scan_gguf_dir(path, f, err)) != TKR_OK) return st;
    } else {
        if (!ends_with(path, ".gguf"))
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "%s: expected a model directory or a .gguf file", path);
        f->gguf = true;
        if ((st = copy_path(f->model, sizeof f->model, path, err)) != TKR_OK) return st;
        if ((st = copy_path(f->dir, sizeof f->dir, path, err)) != TKR_OK) return st;
        char *slash = strrchr(f->dir, '/');
        if (slash) *(slash == f->dir ? slash + 1 : slash) = '\0';
        else strcpy(f->dir, ".");
    }
    if (mmproj && *mmproj) {
        if (!tkr_file_exists(mmproj)) return tkr_fail(err, TKR_ERR_IO, "%s: no such mmproj file", mmproj);
        if ((st = copy_path(f->mmproj, sizeof f->mmproj, mmproj, err)) != TKR_OK) return st;
    }
    return TKR_OK;
}

/* HF tokenizer files beside the model win; a GGUF otherwise carries its own. */
static tkr_status load_tokenizer(tkr_model_source *src, const model_files *f, tkr_error *err) {
    char p1[4200], p2[4200];
    if (!f->gguf) return tkr_tokenizer_load(f->dir, &src->tok, err);
    if (tkr_path_join(p1, sizeof p1, f->dir, "tokenizer.json") &&
        tkr_path_join(p2, sizeof p2, f->dir, "vocab.json") &&
        (tkr_file_exists(p1) || tkr_file_exists(p2)))
        return tkr_tokenizer_load(f->dir, &src->tok, err);
    tkr_status st = tkr_tokenizer_from_gguf(tkr_weights_gguf_model(src->weights), NULL, &src->tok, err);
    if (st != TKR_OK) tkr_error_prefix(err, "tokenizer: ");
    return st;
}

tkr_status tkr_model_source_open(const char *path, const char *mmproj, int use_mmap,
                                 tkr_model_source *src, tkr_error *err) {
    memset(src, 0, sizeof *src);
    if (!path || !*path) return tkr_fail(err, TKR_ERR_INVALID_ARG, "no model directory given");
    model_files *f = malloc(sizeof *f);
    if (!f) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    tkr_status st = resolve_files(path, mmproj, f, err);
    if (st == TKR_OK) {
        src->gguf = f->gguf;
        if (f->gguf) {
            st = tkr_weights_open_gguf(f->model, f->mmproj[0] ? f->mmproj : NULL, use_mmap,
                                       &src->weights, err);
            if (st == TKR_OK)
                st = tkr_config_from_gguf(tkr_weights_gguf_model(src->weights),
                                          tkr_weights_gguf_mmproj(src->weights), &src->cfg, err);
            if (st == TKR_OK) st = load_tokenizer(src, f, err);
        } else {
            st = tkr_config_load(path, &src->cfg, err);
            if (st == TKR_OK) st = load_tokenizer(src, f, err);
            if (st == TKR_OK) st = tkr_weights_open(path, use_mmap, &src->weights, err);
        }
    }
    free(f);
    if (st != TKR_OK) tkr_model_source_close(src);
    return st;
}

void tkr_model_source_close(tkr_model_source *src) {
    tkr_weights_free(src->weights);
    tkr_tokenizer_free(src->tok);
    memset(src, 0, sizeof *src);
}

/* Whether every weight file is a read-only file mapping (not a heap copy): only then may the
 * vision tower's pages be dropped and fetched again from the file. */
static bool weights_all_mapped(const tkr_weights *w) {
    size_t n = tkr_weights_shard_count(w);
    for (size_t i = 0; i < n; i++)
        if (!tkr_safetensors_mapped(tkr_weights_shard(w, i))) return false;
    if (n == 0) {
        const tkr_gguf *g[2] = {tkr_weights_gguf_model(w), tkr_weights_gguf_mmproj(w)};
        if (!g[0] && !g[1]) return false;
        for (int i = 0; i < 2; i++)
            if (g[i] && !tkr_gguf_mapped(g[i])) return false;
    }
    return true;
}

static void release_tensor(const tkr_tensor *t) {
    if (t) tkr_pages_release(t->data, t->nbytes);
}

/* Drops the pages of the vision tower's matrices (not the small norms and biases) from this
 * process's resident set; they stay in the page cache and fault back in from the file when an
 * image comes again. Only file mappings (m->vision_pages_droppable): a heap copy would read back
 * zeros. */
static void drop_vision_pages(const tkr_model *m) {
    if (!m->vision_pages_droppable) return;
    const tkr_vision_weights *v = &m->vis;
    if (!v->patch_embed_own) release_tensor(v->patch_embed);
    for (int b = 0; v->blocks && b < m->cfg.vision.depth; b++) {
        const tkr_vision_block *B = &v->blocks[b];
        const tkr_tensor *ts[] = {B->qkv_w, B->q_w, B->k_w, B->v_w, B->proj_w, B->fc1_w, B->fc2_w};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) release_tensor(ts[i]);
    }
    release_tensor(v->mlp0_w);
    release_tensor(v->mlp2_w);
}

/* The vision tower runs before the decoder: its weights (0.7 GB at Q8_0 for the 7B's tower)
 * would otherwise stay resident beside the decoder's for the whole decoder pass and set the
 * peak. Dropping their pages makes the peak max(tower, decoder) instead of the sum. Two ways:
 * - params.release_vision_weights (opt-in, e.g. a server on a small host): after every pass;
 *   the next image maps them again from the page cache, which costs time (1.8 s for 0.7 GB on
 *   the loaded test machine, docs/benchmarks.md "Memory");
 * - tkr_model_hint_no_more_images: the caller knows no image follows (the one-shot CLI, the end
 *   of an input file), so after the last pass of its embed call they are not needed again: the
 *   same peak at no cost (tkr_model_vision_done, from embed.c). */
void tkr_model_release_vision_pages(const tkr_model *m) {
    if (m->params.release_vision_weights) drop_vision_pages(m);
}

void tkr_model_vision_done(const tkr_model *m) {
    if (m->no_more_images) drop_vision_pages(m);
}

void tkr_model_hint_no_more_images(tkr_model *m, bool no_more) {
    if (m) m->no_more_images = no_more;
}

tkr_status tkr_model_load(const char *model_dir, const tkr_model_params *params, tkr_model **out,
                          tkr_error *err) {
    *out = NULL;
    if (!model_dir || !*model_dir) return tkr_fail(err, TKR_ERR_INVALID_ARG, "no model directory given");
    tkr_model_params p = params ? *params : tkr_model_default_params();
    tkr_status st = check_params(&p, err);
    if (st != TKR_OK) return st;
    size_t dl = strlen(model_dir);
    if (dl >= sizeof ((tkr_model *)0)->dir)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "model directory path too long");
    tkr_model *m = calloc(1, sizeof *m);
    if (!m) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    m->params = p;
    m->params.mmproj = NULL;   /* not kept: the caller owns that string */
    tkr_media_limits_resolve(&p.media, &m->params.media); /* zero fields: defaults */
    memcpy(m->dir, model_dir, dl + 1);
    while (dl > 1 && m->dir[dl - 1] == '/') m->dir[--dl] = '\0';
    const char *base = strrchr(m->dir, '/');
    base = base ? base + 1 : m->dir;
    size_t bl = strlen(base);
    if (ends_with(base, ".gguf")) bl -= 5;
    if (bl >= sizeof m->name) bl = sizeof m->name - 1;
    memcpy(m->name, base, bl);
    m->name[bl] = '\0';

    tkr_model_source src;
    if ((st = tkr_model_source_open(model_dir, p.mmproj, p.use_mmap, &src, err)) != TKR_OK) {
        free(m);
        return st;
    }
    m->gguf = src.gguf;
    m->weights = src.weights;
    m->tok = src.tok;
    m->cfg = src.cfg;
    if ((st = bind_text_weights(m, err)) != TKR_OK) goto fail_named;
    if ((st = bind_vision_weights(m, err)) != TKR_OK) goto fail_named;
    if ((st = bind_tokens(m, err)) != TKR_OK) goto fail_named;
    int hd = m->cfg.text.head_dim;
    m->inv_freq = malloc(sizeof(float) * (size_t)(hd / 2));
    if (!m->inv_freq) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* as HF computes it, in float32: 1 / theta ^ (2j / hd) */
    for (int j = 0; j < hd / 2; j++)
        m->inv_freq[j] = 1.0f / powf((float)m->cfg.text.rope_theta, (float)(2 * j) / (float)hd);
    int threads = p.n_threads > 0 ? p.n_threads : tkr_cpu_count();
    if ((st = tkr_pool_init(threads, &m->pool, err)) != TKR_OK) goto fail;
    const char *cap = p.kernels;
    if (getenv("TKR_KERNELS") && *getenv("TKR_KERNELS")) cap = getenv("TKR_KERNELS");
    if (getenv("TKR_FORCE_GENERIC")) cap = "generic";
    if (!tkr_kctx_init(&m->kctx, m->pool, cap)) {
        st = tkr_fail(err, TKR_ERR_INVALID_ARG,
                      "unknown kernel set '%.40s' (auto, generic, avx2, avx2-vnni, avx512, neon, neon-dot)", cap);
        goto fail;
    }
    m->kctx.fast_bf16 = p.fast_bf16;
    if ((st = tkr_backend_open(m, &m->backend, err)) != TKR_OK) goto fail;
    bool mapped = weights_all_mapped(m->weights);
    for (int l = 0; p.repack_weights && !m->backend && l < m->cfg.text.num_layers; l++) { /* kernels.h tkr_linear_repack */
        tkr_text_layer *L = &m->layers[l];
        const tkr_tensor **ws[] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
        if (tkr_linear_repack(&m->kctx, ws, 7, mapped, &m->packed) != TKR_OK) {
            st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory repacking the decoder weights");
            goto fail;
        }
    }
    m->vision_pages_droppable = m->has_vision && !m->backend && mapped;
    *out = m;
    return TKR_OK;
fail_named:
    tkr_error_prefix(err, "%s: ", model_dir);
fail:
    tkr_model_free(m);
    return st;
}

void tkr_model_free(tkr_model *m) {
    if (!m) return;
    tkr_backend_free(m->backend);
    tkr_pool_free(m->pool);
    free(m->inv_freq);
    free(m->layers);
    tkr_packed_set_free(m->packed);
    free(m->vis.blocks);
    free(m->vis.patch_embed_own);
    tkr_weights_free(m->weights);
    tkr_tokenizer_free(m->tok);
    free(m);
}

int tkr_model_dim(const tkr_model *m) { return m->cfg.text.hidden_size; }
int tkr_model_chunk_rows(const tkr_model *m, size_t bytes_per_row, int rows) {
    size_t c = bytes_per_row ? m->params.max_scratch_bytes / bytes_per_row : (size_t)rows;
    if (c < 1) c = 1;
    return c < (size_t)rows ? (int)c : (rows > 0 ? rows : 1);
}

void tkr_model_describe_kernels(const tkr_model *m, char *buf, size_t cap) {
    if (m->backend) {
        m->backend->ops->describe(m->backend, buf, cap);
        return;
    }
    tkr_kctx_describe(&m->kctx, buf, cap);
}
const tkr_tokenizer *tkr_model_tokenizer(const tkr_model *m) { return m->tok; }
const char *tkr_model_name(const tkr_model *m) { return m->name; }
bool tkr_model_has_vision(const tkr_model *m) { return m->has_vision; }

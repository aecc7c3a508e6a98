/* config.c - Qwen2-VL config.json in its flat and nested shapes (rules: config.h).
 *
 * Every value goes through one typed getter that searches an ordered list of JSON objects (a
 * "scope"), so the two shapes differ only in which scope is passed, and every error names the
 * key with the object it was found in ("config.json: 'text_config.hidden_size' ..."). */
#include "io/config.h"
#include "util/error.h"
#include "util/platform.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An object to search and the name it has in messages ("" for the top level). */
typedef struct {
    const json_t *obj;
    const char *prefix;   /* "text_config." */
} place;

typedef struct {
    place at[4];
    int n;
} scope;

typedef struct {
    const char *label;    /* "config.json" or the file path */
    tkr_error *err;
} ctx;

static void scope_add(scope *s, const json_t *obj, const char *prefix) {
    if (obj && s->n < 4) s->at[s->n++] = (place){obj, prefix};
}

/* First non-null value of key in scope; *where gets the prefix of the object it came from. */
static const json_t *scope_get(const scope *s, const char *key, const char **where) {
    for (int i = 0; i < s->n; i++) {
        const json_t *v = json_object_get(s->at[i].obj, key);
        if (v && !json_is_null(v)) {
            *where = s->at[i].prefix;
            return v;
        }
    }
    *where = s->n ? s->at[0].prefix : "";
    return NULL;
}

/* An integer in [lo, hi]; missing takes def, or fails when required. */
static tkr_status get_int(ctx *c, const scope *s, const char *key, int required, int def, long long lo,
                          long long hi, int *out) {
    const char *where;
    const json_t *v = scope_get(s, key, &where);
    if (!v) {
        if (required)
            return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: missing '%s%s'", c->label, where, key);
        *out = def;
        return TKR_OK;
    }
    if (!json_is_integer(v))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' must be an integer", c->label, where,
                        key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' = %lld is out of range [%lld, %lld]",
                        c->label, where, key, x, lo, hi);
    *out = (int)x;
    return TKR_OK;
}

/* A number (integer or real) in the interval lo..hi, each end open or closed. */
static tkr_status get_num(ctx *c, const scope *s, const char *key, double def, double lo,
                          int lo_open, double hi, int hi_open, double *out) {
    const char *where;
    const json_t *v = scope_get(s, key, &where);
    if (!v) {
        *out = def;
        return TKR_OK;
    }
    if (!json_is_number(v))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' must be a number", c->label, where, key);
    double x = json_number_value(v);
    if ((lo_open ? !(x > lo) : !(x >= lo)) || (hi_open ? !(x < hi) : !(x <= hi)))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' = %g is out of range %s%g, %g%s",
                        c->label, where, key, x, lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
    *out = x;
    return TKR_OK;
}

static tkr_status get_bool(ctx *c, const scope *s, const char *key, bool def, bool *out) {
    const char *where;
    const json_t *v = scope_get(s, key, &where);
    if (!v) {
        *out = def;
        return TKR_OK;
    }
    if (!json_is_boolean(v))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' must be true or false", c->label, where,
                        key);
    *out = json_is_true(v);
    return TKR_OK;
}

/* A string that fits buf (cap bytes with the NUL); missing takes def (NULL: leave buf ""). */
static tkr_status get_str(ctx *c, const scope *s, const char *key, const char *def, char *buf,
                          size_t cap) {
    const char *where;
    const json_t *v = scope_get(s, key, &where);
    const char *val = def ? def : "";
    if (v) {
        if (!json_is_string(v))
            return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' must be a string", c->label, where,
                            key);
        val = json_string_value(v);
        if (json_string_length(v) >= cap)
            return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' is too long (%zu bytes, max %zu)",
                            c->label, where, key, json_string_length(v), cap - 1);
    }
    memcpy(buf, val, strlen(val) + 1);
    return TKR_OK;
}

/* An optional nested object ("text_config"): absent or null is NULL, anything else must be an
 * object. */
static tkr_status get_object(ctx *c, const json_t *parent, const char *prefix, const char *key,
                             const json_t **out) {
    const json_t *v = json_object_get(parent, key);
    *out = NULL;
    if (!v || json_is_null(v)) return TKR_OK;
    if (!json_is_object(v))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: '%s%s' must be an object", c->label, prefix,
                        key);
    *out = v;
    return TKR_OK;
}

/* model_type "qwen2_vl", or no model_type and a Qwen2VL* architecture (older exports). */
static tkr_status check_model_type(ctx *c, const json_t *root, char *model_type, size_t cap) {
    scope top = {0};
    scope_add(&top, root, "");
    tkr_status rc = get_str(c, &top, "model_type", NULL, model_type, cap);
    if (rc != TKR_OK) return rc;
    if (model_type[0]) {
        if (strcmp(model_type, "qwen2_vl"))
            return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                            "%s: model_type '%s' is not supported (only qwen2_vl)", c->label,
                            model_type);
        return TKR_OK;
    }
    const json_t *arch = json_object_get(root, "architectures");
    if (arch && !json_is_array(arch))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: 'architectures' must be an array of strings",
                        c->label);
    for (size_t i = 0; i < json_array_size(arch); i++) {
        const json_t *a = json_array_get(arch, i);
        if (!json_is_string(a))
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: 'architectures' must be an array of strings", c->label);
        if (!strncmp(json_string_value(a), "Qwen2VL", 7)) {
            memcpy(model_type, "qwen2_vl", sizeof "qwen2_vl");
            return TKR_OK;
        }
    }
    if (json_array_size(arch) > 0)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: architecture '%.100s' is not supported (only Qwen2VL*)", c->label,
                        json_string_value(json_array_get(arch, 0)));
    return tkr_fail(c->err, TKR_ERR_FORMAT,
                    "%s: no 'model_type' and no Qwen2VL 'architectures'", c->label);
}

/* Finds the rope settings: the first of text_config.rope_parameters, text_config.rope_scaling,
 * rope_parameters, rope_scaling that has an mrope_section (the only rope Qwen2-VL uses). */
static tkr_status parse_rope(ctx *c, const json_t *root, const json_t *text, tkr_text_config *t) {
    static const char *const keys[2] = {"rope_parameters", "rope_scaling"};
    const json_t *rope = NULL;
    char where[64] = "";
    for (int level = 0; level < 2 && !rope; level++) {
        const json_t *parent = level == 0 ? text : root;
        const char *prefix = level == 0 ? "text_config." : "";
        if (!parent) continue;
        for (int k = 0; k < 2 && !rope; k++) {
            const json_t *o;
            tkr_status rc = get_object(c, parent, prefix, keys[k], &o);
            if (rc != TKR_OK) return rc;
            if (o && json_object_get(o, "mrope_section")) {
                rope = o;
                snprintf(where, sizeof where, "%s%s.", prefix, keys[k]);
            }
        }
    }
    if (!rope)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: missing 'mrope_section' (in rope_scaling or rope_parameters)", c->label);
    scope rs = {0};
    scope_add(&rs, rope, where);
    char type[32];
    tkr_status rc = get_str(c, &rs, "type", NULL, type, sizeof type);
    if (rc == TKR_OK && !type[0]) rc = get_str(c, &rs, "rope_type", "default", type, sizeof type);
    if (rc != TKR_OK) return rc;
    if (strcmp(type, "mrope") && strcmp(type, "default"))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: rope type '%s' is not supported (mrope/default only)", c->label, type);
    const json_t *sec = json_object_get(rope, "mrope_section");
    if (!json_is_array(sec) || json_array_size(sec) != 3)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: '%smrope_section' must be an array of 3 integers", c->label, where);
    long long sum = 0;
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_array_get(sec, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: '%smrope_section' must be an array of 3 positive integers",
                            c->label, where);
        t->mrope_section[i] = (int)json_integer_value(v);
        sum += t->mrope_section[i];
    }
    if (sum * 2 != t->head_dim)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: '%smrope_section' [%d, %d, %d] sums to %lld, not head_dim/2 = %d",
                        c->label, where, t->mrope_section[0], t->mrope_section[1],
                        t->mrope_section[2], sum, t->head_dim / 2);
    /* rope_theta: text_config, then the rope object (transformers 5), then the top level. */
    scope th = {0};
    scope_add(&th, text, "text_config.");
    scope_add(&th, rope, where);
    scope_add(&th, root, "");
    return get_num(c, &th, "rope_theta", 1000000.0, 0.0, 1, 1e12, 0, &t->rope_theta);
}

static tkr_status parse_text(ctx *c, const json_t *root, const json_t *text, tkr_text_config *t) {
    scope s = {0};
    scope_add(&s, text, "text_config.");
    scope_add(&s, root, "");
    tkr_status rc;
    if ((rc = get_int(c, &s, "hidden_size", 1, 0, 1, 65536, &t->hidden_size)) ||
        (rc = get_int(c, &s, "num_hidden_layers", 1, 0, 1, 1024, &t->num_layers)) ||
        (rc = get_int(c, &s, "num_attention_heads", 1, 0, 1, t->hidden_size, &t->num_heads)) ||
        (rc = get_int(c, &s, "num_key_value_heads", 1, 0, 1, t->num_heads, &t->num_kv_heads)) ||
        (rc = get_int(c, &s, "intermediate_size", 1, 0, 1, 1 << 20, &t->intermediate_size)) ||
        (rc = get_int(c, &s, "vocab_size", 1, 0, 1, 4 << 20, &t->vocab_size)) ||
        (rc = get_int(c, &s, "max_position_embeddings", 0, 32768, 1, 1 << 24,
                      &t->max_position_embeddings)) ||
        (rc = get_num(c, &s, "rms_norm_eps", 1e-6, 0.0, 1, 1.0, 1, &t->rms_norm_eps)) ||
        (rc = get_str(c, &s, "hidden_act", "silu", t->hidden_act, sizeof t->hidden_act)))
        return rc;
    if (t->hidden_size % t->num_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: num_attention_heads %d does not divide hidden_size %d", c->label,
                        t->num_heads, t->hidden_size);
    if (t->num_heads % t->num_kv_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                        c->label, t->num_kv_heads, t->num_heads);
    t->head_dim = t->hidden_size / t->num_heads;
    if (t->head_dim % 2)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: head_dim %d (hidden_size/heads) must be even",
                        c->label, t->head_dim);
    int explicit_head_dim = 0;
    if ((rc = get_int(c, &s, "head_dim", 0, t->head_dim, 1, 65536, &explicit_head_dim))) return rc;
    if (explicit_head_dim != t->head_dim)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: head_dim %d differs from hidden_size/num_attention_heads = %d",
                        c->label, explicit_head_dim, t->head_dim);
    if (strcmp(t->hidden_act, "silu"))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: text hidden_act '%s' is not supported (only silu)", c->label,
                        t->hidden_act);
    bool sliding = false;
    if ((rc = get_bool(c, &s, "use_sliding_window", false, &sliding))) return rc;
    if (sliding)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: use_sliding_window = true is not supported", c->label);
    /* Tied when either the top level or text_config says so (transformers writes either). */
    bool tie_top = false, tie_text = false;
    scope top = {0}, tx = {0};
    scope_add(&top, root, "");
    scope_add(&tx, text, "text_config.");
    if ((rc = get_bool(c, &top, "tie_word_embeddings", false, &tie_top)) ||
        (rc = get_bool(c, &tx, "tie_word_embeddings", false, &tie_text)))
        return rc;
    t->tie_word_embeddings = tie_top || tie_text;
    return parse_rope(c, root, text, t);
}

/* Two spellings of one key (in_channels / in_chans): the first wins, both must agree. */
static tkr_status get_int_alias(ctx *c, const scope *s, const char *key, const char *alias, int def,
                                long long lo, long long hi, int *out) {
    int a = 0, b = 0;
    const char *where;
    int has_a = scope_get(s, key, &where) != NULL, has_b = scope_get(s, alias, &where) != NULL;
    tkr_status rc;
    if ((rc = get_int(c, s, key, 0, def, lo, hi, &a)) || (rc = get_int(c, s, alias, 0, def, lo, hi, &b)))
        return rc;
    if (has_a && has_b && a != b)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: vision_config '%s' = %d and '%s' = %d disagree",
                        c->label, key, a, alias, b);
    *out = has_a ? a : b;
    return TKR_OK;
}

static tkr_status parse_vision(ctx *c, const json_t *vis, int text_hidden, tkr_vision_config *v) {
    scope s = {0};
    scope_add(&s, vis, "vision_config.");
    tkr_status rc;
    double mlp_ratio = 4.0;
    if ((rc = get_int(c, &s, "depth", 0, 32, 1, 1024, &v->depth)) ||
        (rc = get_int(c, &s, "embed_dim", 0, 1280, 1, 65536, &v->embed_dim)) ||
        (rc = get_int(c, &s, "num_heads", 0, 16, 1, v->embed_dim, &v->num_heads)) ||
        (rc = get_num(c, &s, "mlp_ratio", 4.0, 0.0, 1, 64.0, 0, &mlp_ratio)) ||
        (rc = get_int(c, &s, "hidden_size", 0, 3584, 1, 65536, &v->out_hidden_size)) ||
        (rc = get_int_alias(c, &s, "in_channels", "in_chans", 3, 1, 16, &v->in_channels)) ||
        (rc = get_int_alias(c, &s, "patch_size", "spatial_patch_size", 14, 1, 1024,
                            &v->patch_size)) ||
        (rc = get_int(c, &s, "temporal_patch_size", 0, 2, 1, 16, &v->temporal_patch_size)) ||
        (rc = get_int(c, &s, "spatial_merge_size", 0, 2, 1, 16, &v->spatial_merge_size)) ||
        (rc = get_str(c, &s, "hidden_act", "quick_gelu", v->hidden_act, sizeof v->hidden_act)))
        return rc;
    if (v->embed_dim % v->num_heads)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: vision num_heads %d does not divide embed_dim %d", c->label,
                        v->num_heads, v->embed_dim);
    v->head_dim = v->embed_dim / v->num_heads;
    if (v->head_dim % 4)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: vision head_dim %d must be a multiple of 4 (2-D rotary)", c->label,
                        v->head_dim);
    double mlp = (double)v->embed_dim * mlp_ratio;   /* int(embed_dim * mlp_ratio), as HF */
    if (mlp < 1.0 || mlp > (double)(1 << 20))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: vision MLP width %g (embed_dim x mlp_ratio) "
                        "is out of range [1, %d]", c->label, mlp, 1 << 20);
    v->mlp_hidden = (int)mlp;
    if (v->out_hidden_size != text_hidden)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: vision_config.hidden_size %d (merger output) != text hidden_size %d",
                        c->label, v->out_hidden_size, text_hidden);
    if (strcmp(v->hidden_act, "quick_gelu"))
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: vision hidden_act '%s' is not supported (only quick_gelu)", c->label,
                        v->hidden_act);
    return TKR_OK;
}

static tkr_status parse_root(ctx *c, const json_t *root, tkr_model_config *m) {
    tkr_status rc = check_model_type(c, root, m->model_type, sizeof m->model_type);
    if (rc != TKR_OK) return rc;
    const json_t *text, *vis;
    if ((rc = get_object(c, root, "", "text_config", &text)) ||
        (rc = get_object(c, root, "", "vision_config", &vis)) ||
        (rc = parse_text(c, root, text, &m->text)))
        return rc;
    m->has_vision = vis != NULL;
    if (vis && (rc = parse_vision(c, vis, m->text.hidden_size, &m->vision))) return rc;
    scope ids = {0};
    scope_add(&ids, root, "");
    scope_add(&ids, text, "text_config.");
    long long hi = (long long)m->text.vocab_size - 1;
    if ((rc = get_int(c, &ids, "image_token_id", 0, 151655, 0, hi, &m->image_token_id)) ||
        (rc = get_int(c, &ids, "video_token_id", 0, 151656, 0, hi, &m->video_token_id)) ||
        (rc = get_int(c, &ids, "vision_start_token_id", 0, 151652, 0, hi,
                      &m->vision_start_token_id)) ||
        (rc = get_int(c, &ids, "vision_end_token_id", 0, 151653, 0, hi, &m->vision_end_token_id)))
        return rc;
    return TKR_OK;
}

static tkr_status parse_labeled(const char *json, size_t len, const char *label,
                                tkr_model_config *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", label,
                        jerr.text, jerr.line, jerr.column);
    ctx c = {label, err};
    tkr_model_config m;
    memset(&m, 0, sizeof m);
    tkr_status rc = json_is_object(root)
                        ? parse_root(&c, root, &m)
                        : tkr_fail(err, TKR_ERR_FORMAT, "%s: not a JSON object", label);
    json_decref(root);
    if (rc == TKR_OK) *out = m;
    return rc;
}

tkr_status tkr_config_parse(const char *json, size_t len, tkr_model_config *out, tkr_error *err) {
    return parse_labeled(json, len, "config.json", out, err);
}

tkr_status tkr_config_load(const char *model_dir, tkr_model_config *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    size_t cap = strlen(model_dir) + sizeof "/config.json";
    char *path = malloc(cap);
    if (!path) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_dir);
    tkr_path_join(path, cap, model_dir, "config.json");
    char *text = NULL;
    size_t len = 0;
    tkr_status rc = tkr_read_file(path, TKR_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc == TKR_OK) rc = parse_labeled(text, len, path, out, err);
    free(text);
    free(path);
    return rc;
}

/* test_config.c - config.json parsing (src/io/config.c): the flat and nested shapes of the
 * Qwen2-VL-2B config give one struct, defaults apply where HF has them, and every wrong type or
 * out-of-range value is refused with a message naming the key. */
#include "test.h"
#include "io/config.h"

#include <jansson.h>
#include <stdint.h>
#include <unistd.h>

/* Qwen2-VL-2B-Instruct config.json as published (flat: text keys at the top). */
static const char flat_2b[] =
    "{\"architectures\": [\"Qwen2VLForConditionalGeneration\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"vision_start_token_id\": 151652,"
    " \"vision_end_token_id\": 151653, \"vision_token_id\": 151654, \"image_token_id\": 151655,"
    " \"video_token_id\": 151656, \"hidden_act\": \"silu\", \"hidden_size\": 1536,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 8960, \"max_position_embeddings\": 32768,"
    " \"max_window_layers\": 28, \"model_type\": \"qwen2_vl\", \"num_attention_heads\": 12,"
    " \"num_hidden_layers\": 28, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 1000000.0, \"sliding_window\": 32768, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.41.2\", \"use_cache\": true,"
    " \"use_sliding_window\": false, \"vision_config\": {\"depth\": 32, \"embed_dim\": 1280,"
    " \"mlp_ratio\": 4, \"num_heads\": 16, \"in_chans\": 3, \"hidden_size\": 1536,"
    " \"patch_size\": 14, \"spatial_merge_size\": 2, \"spatial_patch_size\": 14,"
    " \"temporal_patch_size\": 2}, \"rope_scaling\": {\"type\": \"mrope\","
    " \"mrope_section\": [16, 24, 24]}, \"vocab_size\": 151936}";

/* The same model as transformers 5.x saves it: text_config, rope_parameters inside it,
 * tie_word_embeddings only in text_config, in_channels spelled out, quick_gelu explicit. */
static const char nested_v5[] =
    "{\"architectures\": [\"Qwen2VLForConditionalGeneration\"], \"dtype\": \"bfloat16\","
    " \"image_token_id\": 151655, \"model_type\": \"qwen2_vl\","
    " \"text_config\": {\"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    "  \"eos_token_id\": 151645, \"hidden_act\": \"silu\", \"hidden_size\": 1536,"
    "  \"intermediate_size\": 8960, \"layer_types\": [\"full_attention\"],"
    "  \"max_position_embeddings\": 32768, \"model_type\": \"qwen2_vl_text\","
    "  \"num_attention_heads\": 12, \"num_hidden_layers\": 28, \"num_key_value_heads\": 2,"
    "  \"rms_norm_eps\": 1e-06, \"rope_parameters\": {\"mrope_section\": [16, 24, 24],"
    "  \"rope_theta\": 1000000.0, \"rope_type\": \"default\"}, \"sliding_window\": null,"
    "  \"tie_word_embeddings\": true, \"use_cache\": true, \"use_sliding_window\": false,"
    "  \"vocab_size\": 151936},"
    " \"transformers_version\": \"5.0.0\", \"video_token_id\": 151656,"
    " \"vision_config\": {\"depth\": 32, \"embed_dim\": 1280, \"hidden_act\": \"quick_gelu\","
    "  \"hidden_size\": 1536, \"in_channels\": 3, \"in_chans\": 3, \"initializer_range\": 0.02,"
    "  \"mlp_ratio\": 4, \"model_type\": \"qwen2_vl\", \"num_heads\": 16, \"patch_size\": 14,"
    "  \"spatial_merge_size\": 2, \"spatial_patch_size\": 14, \"temporal_patch_size\": 2},"
    " \"vision_end_token_id\": 151653, \"vision_start_token_id\": 151652}";

/* A 4.5x-style save: text_config with rope_scaling and rope_theta inside, token ids in
 * text_config, tie_word_embeddings at the top, minimal vision_config (defaults for the rest). */
static const char nested_v45[] =
    "{\"model_type\": \"qwen2_vl\", \"tie_word_embeddings\": true,"
    " \"text_config\": {\"hidden_size\": 1536, \"intermediate_size\": 8960,"
    "  \"num_attention_heads\": 12, \"num_hidden_layers\": 28, \"num_key_value_heads\": 2,"
    "  \"vocab_size\": 151936, \"rope_theta\": 1000000.0, \"image_token_id\": 151655,"
    "  \"video_token_id\": 151656, \"vision_start_token_id\": 151652,"
    "  \"vision_end_token_id\": 151653, \"rope_scaling\": {\"type\": \"default\","
    "  \"rope_type\": \"default\", \"mrope_section\": [16, 24, 24]}},"
    " \"vision_config\": {\"hidden_size\": 1536, \"in_chans\": 3, \"spatial_patch_size\": 14}}";

/* The values every 2B config must give. */
static void check_2b(const tkr_model_config *c, const char *what) {
    const tkr_text_config *t = &c->text;
    const tkr_vision_config *v = &c->vision;
    CHECK(!strcmp(c->model_type, "qwen2_vl"), "%s: model_type '%s'", what, c->model_type);
    CHECK(t->hidden_size == 1536 && t->num_layers == 28 && t->num_heads == 12 &&
              t->num_kv_heads == 2 && t->head_dim == 128 && t->intermediate_size == 8960 &&
              t->vocab_size == 151936 && t->max_position_embeddings == 32768,
          "%s: text dims %d %d %d %d %d %d %d %d", what, t->hidden_size, t->num_layers,
          t->num_heads, t->num_kv_heads, t->head_dim, t->intermediate_size, t->vocab_size,
          t->max_position_embeddings);
    CHECK(t->rms_norm_eps == 1e-6 && t->rope_theta == 1e6, "%s: eps %g theta %g", what,
          t->rms_norm_eps, t->rope_theta);
    CHECK(t->mrope_section[0] == 16 && t->mrope_section[1] == 24 && t->mrope_section[2] == 24,
          "%s: mrope_section", what);
    CHECK(t->tie_word_embeddings, "%s: tied", what);
    CHECK(!strcmp(t->hidden_act, "silu"), "%s: act '%s'", what, t->hidden_act);
    CHECK(c->has_vision, "%s: has vision", what);
    CHECK(v->depth == 32 && v->embed_dim == 1280 && v->num_heads == 16 && v->head_dim == 80 &&
              v->mlp_hidden == 5120 && v->out_hidden_size == 1536 && v->in_channels == 3 &&
              v->patch_size == 14 && v->temporal_patch_size == 2 && v->spatial_merge_size == 2,
          "%s: vision %d %d %d %d %d %d %d %d %d %d", what, v->depth, v->embed_dim, v->num_heads,
          v->head_dim, v->mlp_hidden, v->out_hidden_size, v->in_channels, v->patch_size,
          v->temporal_patch_size, v->spatial_merge_size);
    CHECK(!strcmp(v->hidden_act, "quick_gelu"), "%s: vision act '%s'", what, v->hidden_act);
    CHECK(c->image_token_id == 151655 && c->video_token_id == 151656 &&
              c->vision_start_token_id == 151652 && c->vision_end_token_id == 151653,
          "%s: token ids %d %d %d %d", what, c->image_token_id, c->video_token_id,
          c->vision_start_token_id, c->vision_end_token_id);
}

static tkr_status parse_str(const char *s, tkr_model_config *c, tkr_error *e) {
    return tkr_config_parse(s, strlen(s), c, e);
}

static void test_flat_2b(void) {
    tkr_model_config c;
    tkr_error e = {0};
    CHECK(parse_str(flat_2b, &c, &e) == TKR_OK, "flat: %s", e.message);
    check_2b(&c, "flat");
}

/* Field-by-field equality (struct padding is not compared). */
static int config_equal(const tkr_model_config *a, const tkr_model_config *b) {
    const tkr_text_config *x = &a->text, *y = &b->text;
    const tkr_vision_config *v = &a->vision, *w = &b->vision;
    return !strcmp(a->model_type, b->model_type) && x->hidden_size == y->hidden_size &&
           x->num_layers == y->num_layers && x->num_heads == y->num_heads &&
           x->num_kv_heads == y->num_kv_heads && x->head_dim == y->head_dim &&
           x->intermediate_size == y->intermediate_size && x->vocab_size == y->vocab_size &&
           x->max_position_embeddings == y->max_position_embeddings &&
           x->rms_norm_eps == y->rms_norm_eps && x->rope_theta == y->rope_theta &&
           !memcmp(x->mrope_section, y->mrope_section, sizeof x->mrope_section) &&
           x->tie_word_embeddings == y->tie_word_embeddings && !strcmp(x->hidden_act, y->hidden_act) &&
           v->depth == w->depth && v->embed_dim == w->embed_dim && v->num_heads == w->num_heads &&
           v->head_dim == w->head_dim && v->mlp_hidden == w->mlp_hidden &&
           v->out_hidden_size == w->out_hidden_size && v->in_channels == w->in_channels &&
           v->patch_size == w->patch_size && v->temporal_patch_size == w->temporal_patch_size &&
           v->spatial_merge_size == w->spatial_merge_size && !strcmp(v->hidden_act, w->hidden_act) &&
           a->has_vision == b->has_vision && a->image_token_id == b->image_token_id &&
           a->video_token_id == b->video_token_id &&
           a->vision_start_token_id == b->vision_start_token_id &&
           a->vision_end_token_id == b->vision_end_token_id;
}

static tkr_status parse_edited(const char *base, const char *path, const char *value_json,
                               tkr_model_config *c, tkr_error *e);

/* Both nested shapes give the same struct as the flat one, field for field. */
static void test_nested_shapes_match_flat(void) {
    tkr_model_config flat, v5, v45, changed;
    tkr_error e = {0};
    CHECK(parse_str(flat_2b, &flat, &e) == TKR_OK, "flat: %s", e.message);
    CHECK(parse_str(nested_v5, &v5, &e) == TKR_OK, "nested v5: %s", e.message);
    check_2b(&v5, "nested v5");
    CHECK(parse_str(nested_v45, &v45, &e) == TKR_OK, "nested v4.5: %s", e.message);
    check_2b(&v45, "nested v4.5");
    CHECK(config_equal(&flat, &v5), "flat and nested v5 structs differ");
    CHECK(config_equal(&flat, &v45), "flat and nested v4.5 structs differ");
    /* The comparison sees a single changed value. */
    CHECK(parse_edited(nested_v5, "video_token_id", "151650", &changed, &e) == TKR_OK &&
              changed.video_token_id == 151650 && !config_equal(&flat, &changed), "one change seen");
    /* In the nested shape the text_config value wins over a stale top-level one. */
    CHECK(parse_edited(nested_v5, "hidden_size", "4096", &changed, &e) == TKR_OK &&
              config_equal(&flat, &changed), "text_config first: %s", e.message);
}

/* ---- JSON editing helpers: apply one change to a fixture, parse the result ----------------- */

/* Sets (value_json != NULL) or deletes the dotted key path ("vision_config.hidden_size") in
 * the fixture and parses the result. */
static tkr_status parse_edited(const char *base, const char *path, const char *value_json,
                               tkr_model_config *c, tkr_error *e) {
    json_error_t je;
    json_t *root = json_loads(base, 0, &je);
    if (!root) {
        fprintf(stderr, "  fixture does not parse: %s\n", je.text);
        return TKR_ERR_INTERNAL;
    }
    json_t *obj = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *key = buf, *dot;
    while ((dot = strchr(key, '.')) != NULL) {
        *dot = '\0';
        json_t *next = json_object_get(obj, key);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(obj, key, next);
        }
        obj = next;
        key = dot + 1;
    }
    if (value_json) {
        json_t *v = json_loads(value_json, JSON_DECODE_ANY, &je);
        if (!v) {
            fprintf(stderr, "  value '%s' does not parse: %s\n", value_json, je.text);
            json_decref(root);
            return TKR_ERR_INTERNAL;
        }
        json_object_set_new(obj, key, v);
    } else {
        json_object_del(obj, key);
    }
    char *text = json_dumps(root, 0);
    json_decref(root);
    tkr_status rc = parse_str(text, c, e);
    free(text);
    return rc;
}

typedef struct {
    const char *path;
    const char *value;        /* JSON text; NULL = delete the key */
    tkr_status want;
    const char *msg;
} edit_case;

static void run_edit_cases(const char *base, const char *base_name, const edit_case *cases,
                           size_t n) {
    for (size_t i = 0; i < n; i++) {
        tkr_model_config c;
        tkr_error e = {0};
        memset(&c, 0x5a, sizeof c);
        tkr_status rc = parse_edited(base, cases[i].path, cases[i].value, &c, &e);
        CHECK(rc == cases[i].want, "%s: %s = %s: status %s, want %s (%s)", base_name,
              cases[i].path, cases[i].value ? cases[i].value : "(deleted)", tkr_status_name(rc),
              tkr_status_name(cases[i].want), e.message);
        if (cases[i].want == TKR_OK) continue;
        CHECK(strstr(e.message, "config.json: ") == e.message && strstr(e.message, cases[i].msg),
              "%s: %s = %s: message '%s' lacks '%s'", base_name, cases[i].path,
              cases[i].value ? cases[i].value : "(deleted)", e.message, cases[i].msg);
        tkr_model_config zero;
        memset(&zero, 0, sizeof zero);
        CHECK(!memcmp(&c, &zero, sizeof c), "%s: %s: output zeroed on failure", base_name,
              cases[i].path);
    }
}

static void test_bad_values_flat(void) {
    const edit_case cases[] = {
        {"hidden_size", "\"1536\"", TKR_ERR_FORMAT, "'hidden_size' must be an integer"},
        {"hidden_size", "1536.0", TKR_ERR_FORMAT, "'hidden_size' must be an integer"},
        {"hidden_size", "true", TKR_ERR_FORMAT, "'hidden_size' must be an integer"},
        {"hidden_size", "0", TKR_ERR_FORMAT, "'hidden_size' = 0 is out of range [1, 65536]"},
        {"hidden_size", "-1536", TKR_ERR_FORMAT, "out of range"},
        {"hidden_size", "70000", TKR_ERR_FORMAT, "out of range"},
        {"hidden_size", "9223372036854775807", TKR_ERR_FORMAT, "out of range"},
        {"hidden_size", NULL, TKR_ERR_FORMAT, "missing 'hidden_size'"},
        {"hidden_size", "null", TKR_ERR_FORMAT, "missing 'hidden_size'"},
        {"num_hidden_layers", NULL, TKR_ERR_FORMAT, "missing 'num_hidden_layers'"},
        {"num_hidden_layers", "2000", TKR_ERR_FORMAT, "'num_hidden_layers' = 2000 is out of range"},
        {"num_attention_heads", NULL, TKR_ERR_FORMAT, "missing 'num_attention_heads'"},
        {"num_attention_heads", "7", TKR_ERR_FORMAT,
         "num_attention_heads 7 does not divide hidden_size 1536"},
        {"num_attention_heads", "2000", TKR_ERR_FORMAT, "out of range"},
        {"num_key_value_heads", NULL, TKR_ERR_FORMAT, "missing 'num_key_value_heads'"},
        {"num_key_value_heads", "5", TKR_ERR_FORMAT, "num_key_value_heads 5 does not divide"},
        {"num_key_value_heads", "24", TKR_ERR_FORMAT, "out of range [1, 12]"},
        {"intermediate_size", NULL, TKR_ERR_FORMAT, "missing 'intermediate_size'"},
        {"intermediate_size", "\"big\"", TKR_ERR_FORMAT, "'intermediate_size' must be an integer"},
        {"vocab_size", NULL, TKR_ERR_FORMAT, "missing 'vocab_size'"},
        {"vocab_size", "5000000", TKR_ERR_FORMAT, "'vocab_size' = 5000000 is out of range"},
        {"vocab_size", "151000", TKR_ERR_FORMAT, "'image_token_id' = 151655 is out of range"},
        {"max_position_embeddings", "\"32k\"", TKR_ERR_FORMAT, "must be an integer"},
        {"max_position_embeddings", "0", TKR_ERR_FORMAT, "out of range"},
        {"rms_norm_eps", "0", TKR_ERR_FORMAT, "'rms_norm_eps' = 0 is out of range (0, 1)"},
        {"rms_norm_eps", "-1e-6", TKR_ERR_FORMAT, "out of range"},
        {"rms_norm_eps", "1.0", TKR_ERR_FORMAT, "'rms_norm_eps' = 1 is out of range (0, 1)"},
        {"rms_norm_eps", "\"1e-6\"", TKR_ERR_FORMAT, "'rms_norm_eps' must be a number"},
        {"rope_theta", "0", TKR_ERR_FORMAT, "'rope_theta' = 0 is out of range"},
        {"rope_theta", "-10000.0", TKR_ERR_FORMAT, "out of range"},
        {"rope_theta", "[1]", TKR_ERR_FORMAT, "'rope_theta' must be a number"},
        {"rope_scaling.mrope_section", "[16, 24, 23]", TKR_ERR_FORMAT,
         "[16, 24, 23] sums to 63, not head_dim/2 = 64"},
        {"rope_scaling.mrope_section", "[16, 48]", TKR_ERR_FORMAT,
         "'rope_scaling.mrope_section' must be an array of 3 integers"},
        {"rope_scaling.mrope_section", "[16, 24, -24]", TKR_ERR_FORMAT, "3 positive integers"},
        {"rope_scaling.mrope_section", "[16, 24, 24.0]", TKR_ERR_FORMAT, "3 positive integers"},
        {"rope_scaling.mrope_section", "\"16,24,24\"", TKR_ERR_FORMAT, "array of 3 integers"},
        {"rope_scaling.mrope_section", NULL, TKR_ERR_FORMAT, "missing 'mrope_section'"},
        {"rope_scaling", NULL, TKR_ERR_FORMAT, "missing 'mrope_section'"},
        {"rope_scaling", "\"mrope\"", TKR_ERR_FORMAT, "'rope_scaling' must be an object"},
        {"rope_scaling.type", "\"yarn\"", TKR_ERR_UNSUPPORTED, "rope type 'yarn' is not supported"},
        {"rope_scaling.type", "3", TKR_ERR_FORMAT, "'rope_scaling.type' must be a string"},
        {"hidden_act", "\"gelu\"", TKR_ERR_UNSUPPORTED, "text hidden_act 'gelu' is not supported"},
        {"hidden_act", "7", TKR_ERR_FORMAT, "'hidden_act' must be a string"},
        {"hidden_act", "\"an_activation_name_far_longer_than_the_field\"", TKR_ERR_FORMAT,
         "too long"},
        {"head_dim", "64", TKR_ERR_UNSUPPORTED, "head_dim 64 differs"},
        {"head_dim", "\"128\"", TKR_ERR_FORMAT, "'head_dim' must be an integer"},
        {"tie_word_embeddings", "\"yes\"", TKR_ERR_FORMAT,
         "'tie_word_embeddings' must be true or false"},
        {"tie_word_embeddings", "1", TKR_ERR_FORMAT, "must be true or false"},
        {"use_sliding_window", "true", TKR_ERR_UNSUPPORTED, "use_sliding_window"},
        {"image_token_id", "-1", TKR_ERR_FORMAT, "'image_token_id' = -1 is out of range"},
        {"video_token_id", "151936", TKR_ERR_FORMAT, "'video_token_id' = 151936 is out of range"},
        {"vision_start_token_id", "\"x\"", TKR_ERR_FORMAT, "must be an integer"},
        {"vision_end_token_id", "1e3", TKR_ERR_FORMAT, "must be an integer"},
        {"model_type", "\"qwen2_5_vl\"", TKR_ERR_UNSUPPORTED,
         "model_type 'qwen2_5_vl' is not supported"},
        {"model_type", "\"llama\"", TKR_ERR_UNSUPPORTED, "not supported"},
        {"model_type", "5", TKR_ERR_FORMAT, "'model_type' must be a string"},
        {"text_config", "[]", TKR_ERR_FORMAT, "'text_config' must be an object"},
        {"vision_config", "5", TKR_ERR_FORMAT, "'vision_config' must be an object"},
        {"vision_config.hidden_size", "1024", TKR_ERR_FORMAT,
         "vision_config.hidden_size 1024 (merger output) != text hidden_size 1536"},
        {"vision_config.hidden_size", NULL, TKR_ERR_FORMAT,
         "vision_config.hidden_size 3584 (merger output)"},
        {"vision_config.embed_dim", "1000", TKR_ERR_FORMAT,
         "vision num_heads 16 does not divide embed_dim 1000"},
        {"vision_config.embed_dim", "1200", TKR_ERR_FORMAT,
         "vision head_dim 75 must be a multiple of 4"},
        {"vision_config.embed_dim", "0", TKR_ERR_FORMAT, "'vision_config.embed_dim' = 0"},
        {"vision_config.num_heads", "0", TKR_ERR_FORMAT, "out of range"},
        {"vision_config.depth", "\"32\"", TKR_ERR_FORMAT, "'vision_config.depth' must be an integer"},
        {"vision_config.depth", "5000", TKR_ERR_FORMAT, "out of range"},
        {"vision_config.mlp_ratio", "\"4\"", TKR_ERR_FORMAT,
         "'vision_config.mlp_ratio' must be a number"},
        {"vision_config.mlp_ratio", "0", TKR_ERR_FORMAT, "out of range"},
        {"vision_config.mlp_ratio", "1e-9", TKR_ERR_FORMAT, "vision MLP width"},
        {"vision_config.in_channels", "4", TKR_ERR_FORMAT, "'in_channels' = 4 and 'in_chans' = 3"},
        {"vision_config.in_chans", "0", TKR_ERR_FORMAT, "out of range"},
        {"vision_config.patch_size", "16", TKR_ERR_FORMAT, "'patch_size' = 16 and "
                                                           "'spatial_patch_size' = 14 disagree"},
        {"vision_config.temporal_patch_size", "0", TKR_ERR_FORMAT, "out of range"},
        {"vision_config.spatial_merge_size", "2.5", TKR_ERR_FORMAT, "must be an integer"},
        {"vision_config.hidden_act", "\"gelu\"", TKR_ERR_UNSUPPORTED,
         "vision hidden_act 'gelu' is not supported"},
        /* Accepted variations. */
        {"vision_config.mlp_ratio", "4.0", TKR_OK, ""},
        {"rope_theta", "10000", TKR_OK, ""},
        {"rope_scaling.type", "\"default\"", TKR_OK, ""},
        {"head_dim", "128", TKR_OK, ""},
        {"sliding_window", "null", TKR_OK, ""},
        {"attention_dropout", "\"ignored\"", TKR_OK, ""},
    };
    run_edit_cases(flat_2b, "flat", cases, sizeof cases / sizeof cases[0]);
}

static void test_bad_values_nested(void) {
    const edit_case cases[] = {
        {"text_config.hidden_size", "\"1536\"", TKR_ERR_FORMAT,
         "'text_config.hidden_size' must be an integer"},
        {"text_config.hidden_size", NULL, TKR_ERR_FORMAT, "missing 'text_config.hidden_size'"},
        {"text_config.rope_parameters.mrope_section", "[8, 8, 8]", TKR_ERR_FORMAT,
         "'text_config.rope_parameters.mrope_section' [8, 8, 8] sums to 24"},
        {"text_config.rope_parameters.rope_type", "\"linear\"", TKR_ERR_UNSUPPORTED,
         "rope type 'linear'"},
        {"text_config.rope_parameters.rope_theta", "-1", TKR_ERR_FORMAT,
         "'text_config.rope_parameters.rope_theta' = -1 is out of range"},
        {"text_config.rope_parameters", "7", TKR_ERR_FORMAT,
         "'text_config.rope_parameters' must be an object"},
        {"text_config.tie_word_embeddings", "\"true\"", TKR_ERR_FORMAT,
         "'text_config.tie_word_embeddings' must be true or false"},
        {"text_config.vocab_size", "100000", TKR_ERR_FORMAT, "'image_token_id' = 151655"},
        {"image_token_id", "\"151655\"", TKR_ERR_FORMAT, "'image_token_id' must be an integer"},
        {"vision_config.in_channels", "\"3\"", TKR_ERR_FORMAT,
         "'vision_config.in_channels' must be an integer"},
        /* A top-level value is used when text_config lacks it. */
        {"text_config.hidden_act", NULL, TKR_OK, ""},
    };
    run_edit_cases(nested_v5, "nested", cases, sizeof cases / sizeof cases[0]);
}

/* Missing optional keys take the Hugging Face defaults. */
static void test_defaults(void) {
    const char *minimal =
        "{\"model_type\": \"qwen2_vl\", \"hidden_size\": 1536, \"num_hidden_layers\": 28,"
        " \"num_attention_heads\": 12, \"num_key_value_heads\": 2, \"intermediate_size\": 8960,"
        " \"vocab_size\": 151936, \"rope_scaling\": {\"mrope_section\": [16, 24, 24]},"
        " \"vision_config\": {\"hidden_size\": 1536}}";
    tkr_model_config c;
    tkr_error e = {0};
    CHECK(parse_str(minimal, &c, &e) == TKR_OK, "minimal: %s", e.message);
    CHECK(c.text.max_position_embeddings == 32768 && c.text.rms_norm_eps == 1e-6 &&
              c.text.rope_theta == 1e6 && !c.text.tie_word_embeddings &&
              !strcmp(c.text.hidden_act, "silu"), "text defaults");
    CHECK(c.vision.depth == 32 && c.vision.embed_dim == 1280 && c.vision.num_heads == 16 &&
              c.vision.mlp_hidden == 5120 && c.vision.in_channels == 3 &&
              c.vision.patch_size == 14 && c.vision.spatial_merge_size == 2 &&
              c.vision.temporal_patch_size == 2 && !strcmp(c.vision.hidden_act, "quick_gelu"),
          "vision defaults");
    CHECK(c.image_token_id == 151655 && c.video_token_id == 151656 &&
              c.vision_start_token_id == 151652 && c.vision_end_token_id == 151653, "id defaults");

    /* 7B-style values, untied, and a fractional mlp_ratio (int(embed_dim * ratio) as HF). */
    tkr_model_config c7;
    CHECK(parse_edited(minimal, "hidden_size", "3584", &c7, &e) == TKR_ERR_FORMAT,
          "3584 alone breaks the merger width: %s", e.message);
    const char *seven =
        "{\"architectures\": [\"Qwen2VLForConditionalGeneration\"], \"hidden_size\": 3584,"
        " \"num_hidden_layers\": 28, \"num_attention_heads\": 28, \"num_key_value_heads\": 4,"
        " \"intermediate_size\": 18944, \"vocab_size\": 152064, \"tie_word_embeddings\": false,"
        " \"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [16, 24, 24]},"
        " \"vision_config\": {\"mlp_ratio\": 2.5, \"in_chans\": 3}}";
    CHECK(parse_str(seven, &c7, &e) == TKR_OK, "7B (no model_type, Qwen2VL architecture): %s",
          e.message);
    CHECK(!strcmp(c7.model_type, "qwen2_vl") && c7.text.head_dim == 128 &&
              c7.text.num_kv_heads == 4 && !c7.text.tie_word_embeddings &&
              c7.vision.out_hidden_size == 3584 && c7.vision.mlp_hidden == 3200,
          "7B values: %s %d %d %d %d %d", c7.model_type, c7.text.head_dim, c7.text.num_kv_heads,
          c7.text.tie_word_embeddings, c7.vision.out_hidden_size, c7.vision.mlp_hidden);

    /* No vision_config: a text-only model. */
    tkr_model_config ct;
    CHECK(parse_edited(minimal, "vision_config", NULL, &ct, &e) == TKR_OK && !ct.has_vision &&
              ct.vision.depth == 0, "text only: %s", e.message);
    /* Tied when only the top level says so, or only text_config. */
    CHECK(parse_edited(minimal, "text_config.tie_word_embeddings", "true", &ct, &e) == TKR_OK &&
              ct.text.tie_word_embeddings, "tie in text_config: %s", e.message);
}

static void test_model_type_rules(void) {
    tkr_model_config c;
    tkr_error e = {0};
    const char *base = flat_2b;
    CHECK(parse_edited(base, "model_type", NULL, &c, &e) == TKR_OK &&
              !strcmp(c.model_type, "qwen2_vl"), "architectures alone: %s", e.message);
    const char *no_type =
        "{\"hidden_size\": 1536, \"num_hidden_layers\": 28, \"num_attention_heads\": 12,"
        " \"num_key_value_heads\": 2, \"intermediate_size\": 8960, \"vocab_size\": 151936,"
        " \"rope_scaling\": {\"mrope_section\": [16, 24, 24]}}";
    CHECK(parse_str(no_type, &c, &e) == TKR_ERR_FORMAT &&
              strstr(e.message, "no 'model_type' and no Qwen2VL 'architectures'"), "%s", e.message);
    CHECK(parse_edited(no_type, "architectures", "[\"LlamaForCausalLM\"]", &c, &e) ==
              TKR_ERR_UNSUPPORTED && strstr(e.message, "'LlamaForCausalLM' is not supported"),
          "%s", e.message);
    CHECK(parse_edited(no_type, "architectures", "\"Qwen2VLForConditionalGeneration\"", &c, &e) ==
              TKR_ERR_FORMAT && strstr(e.message, "array of strings"), "%s", e.message);
    CHECK(parse_edited(no_type, "architectures", "[1]", &c, &e) == TKR_ERR_FORMAT, "%s", e.message);
    CHECK(parse_edited(no_type, "architectures", "[\"Qwen2VLModel\"]", &c, &e) == TKR_OK,
          "Qwen2VLModel: %s", e.message);
}

static void test_not_json(void) {
    const char *bad[] = {"", "{", "[1, 2]", "\"qwen2_vl\"", "{\"hidden_size\": 1536,}",
                         "{\"a\": 1, \"a\": 2}", "{\"hidden_size\": 1e999}"};
    const char *msg[] = {"not valid JSON", "not valid JSON", "not a JSON object", "not valid JSON",
                         "not valid JSON", "duplicate", "not valid JSON"};
    for (int i = 0; i < 7; i++) {
        tkr_model_config c;
        tkr_error e = {0};
        CHECK(parse_str(bad[i], &c, &e) == TKR_ERR_FORMAT && strstr(e.message, "config.json: ") &&
                  strstr(e.message, msg[i]), "'%s': %s", bad[i], e.message);
    }
    /* Length is honoured: a prefix that ends mid-object is refused. */
    tkr_model_config c;
    tkr_error e = {0};
    CHECK(tkr_config_parse(flat_2b, 100, &c, &e) == TKR_ERR_FORMAT, "prefix: %s", e.message);
}

static void test_load_from_dir(void) {
    char dir[] = "/tmp/tkr-cfg-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    tkr_model_config c;
    tkr_error e = {0};
    CHECK(tkr_config_load(dir, &c, &e) == TKR_ERR_IO && strstr(e.message, dir) &&
              strstr(e.message, "config.json"), "missing file: %s", e.message);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs(flat_2b, f);
    fclose(f);
    CHECK(tkr_config_load(dir, &c, &e) == TKR_OK, "load: %s", e.message);
    check_2b(&c, "loaded");
    f = fopen(path, "w");
    fputs("{\"model_type\": \"qwen2_vl\", \"hidden_size\": \"x\"}", f);
    fclose(f);
    CHECK(tkr_config_load(dir, &c, &e) == TKR_ERR_FORMAT && strstr(e.message, path) == e.message &&
              strstr(e.message, "'hidden_size' must be an integer"), "message names path: %s",
          e.message);
    unlink(path);
    rmdir(dir);
}

/* Random byte changes in a valid config: never a crash, and anything accepted is in range. */
static void test_fuzz_config(void) {
    size_t n = strlen(flat_2b);
    char *buf = malloc(n);
    uint64_t rng = 0x2545f4914f6cdd1dull;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(buf, flat_2b, n);
        int flips = 1 + (int)(rng % 3);
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            buf[rng % n] = (char)(rng >> 40);
        }
        tkr_model_config c;
        tkr_error e = {0};
        if (tkr_config_parse(buf, n, &c, &e) == TKR_OK) {
            ok++;
            const tkr_text_config *t = &c.text;
            bad += t->hidden_size % t->num_heads != 0 || t->num_heads % t->num_kv_heads != 0 ||
                   2 * (t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2]) !=
                       t->head_dim || c.image_token_id >= t->vocab_size ||
                   (c.has_vision && c.vision.out_hidden_size != t->hidden_size);
        } else {
            bad += e.message[0] == '\0';
        }
    }
    CHECK(bad == 0, "%d invariant violations", bad);
    CHECK(ok > 0 && ok < 2000, "accepted %d of 2000", ok);
    printf("  fuzz: %d accepted, %d rejected\n", ok, 2000 - ok);
    free(buf);
}

int main(void) {
    RUN(test_flat_2b);
    RUN(test_nested_shapes_match_flat);
    RUN(test_bad_values_flat);
    RUN(test_bad_values_nested);
    RUN(test_defaults);
    RUN(test_model_type_rules);
    RUN(test_not_json);
    RUN(test_load_from_dir);
    RUN(test_fuzz_config);
    return test_summary();
}

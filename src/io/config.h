/* config.h - config.json of a Qwen2-VL (Ops-MM-embedding) model, parsed and range-checked.
 *
 * Two shapes are accepted and give the same struct:
 *   - flat (transformers < 4.5x, e.g. Qwen2-VL-2B-Instruct): text keys at the top level,
 *     "vision_config" nested, rope in "rope_scaling": {"type": "mrope", "mrope_section": [..]}
 *     and "rope_theta" at the top;
 *   - nested (transformers >= 4.5x / 5.x): "text_config": {...} and "vision_config": {...};
 *     rope in "rope_scaling" or "rope_parameters" ({"rope_type": "default", "mrope_section",
 *     "rope_theta"}), at the top or inside text_config.
 * Text keys are looked up in text_config first, then at the top; token ids at the top first,
 * then in text_config. tie_word_embeddings is true when either place says true.
 *
 * Required: hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * intermediate_size, vocab_size, and an mrope_section. Everything else takes the Hugging Face
 * default when missing (or null): max_position_embeddings 32768, rms_norm_eps 1e-6,
 * rope_theta 1e6, hidden_act "silu", token ids 151652/151653/151655/151656; vision keys the
 * Qwen2VLVisionConfig defaults (depth 32, embed_dim 1280, num_heads 16, mlp_ratio 4,
 * in_channels 3, patch 14, merge 2, temporal 2, quick_gelu, hidden_size 3584).
 * A config without "vision_config" is text-only (has_vision false, vision zeroed).
 *
 * Wrong JSON types and out-of-range values are TKR_ERR_FORMAT naming the key
 * ("config.json: 'hidden_size' must be an integer"); valid but unsupported settings (another
 * model_type such as qwen2_5_vl, another activation or rope type, sliding-window attention)
 * are TKR_ERR_UNSUPPORTED. */
#ifndef TKR_IO_CONFIG_H
#define TKR_IO_CONFIG_H

#include "io/gguf.h"
#include "tkr_embed.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int hidden_size, num_layers, num_heads, num_kv_heads, head_dim, intermediate_size, vocab_size;
    int max_position_embeddings;
    double rms_norm_eps, rope_theta;
    int mrope_section[3];          /* sums to head_dim/2 */
    bool tie_word_embeddings;
    char hidden_act[32];           /* "silu" */
} tkr_text_config;

typedef struct {
    int depth, embed_dim, num_heads, head_dim, mlp_hidden /* embed_dim*mlp_ratio */, out_hidden_size;
    int in_channels, patch_size, temporal_patch_size, spatial_merge_size;
    char hidden_act[32];           /* "quick_gelu" */
} tkr_vision_config;

typedef struct {
    char model_type[64];           /* "qwen2_vl" */
    tkr_text_config text;
    tkr_vision_config vision;
    bool has_vision;
    int image_token_id, video_token_id, vision_start_token_id, vision_end_token_id;
} tkr_model_config;

/* Largest config.json tkr_config_load reads. */
#define TKR_CONFIG_MAX_BYTES (4u << 20)

/* Parses json[0..len). On failure *out is zeroed and err says why ("config.json: ..."). */
tkr_status tkr_config_parse(const char *json, size_t len, tkr_model_config *out, tkr_error *err);
/* Reads model_dir/config.json; messages name that path. */
tkr_status tkr_config_load(const char *model_dir, tkr_model_config *out, tkr_error *err);

/* The same struct from a llama.cpp Qwen2-VL GGUF text model and (NULL: text-only, has_vision
 * false) its mmproj (config_gguf.c). Keys as llama.cpp's converter writes them:
 *   text (general.architecture "qwen2vl"; "clip" here is TKR_ERR_INVALID_ARG, another arch
 *   TKR_ERR_UNSUPPORTED): qwen2vl.embedding_length, .block_count, .attention.head_count,
 *   .feed_forward_length, .rope.dimension_sections (3 ints + a trailing 0) required;
 *   .attention.head_count_kv (default head_count), .context_length (32768),
 *   .attention.layer_norm_rms_epsilon (1e-6), .rope.freq_base (1e6), .attention.key_length
 *   (must be hidden/heads) optional. vocab_size = rows of token_embd.weight, else the length of
 *   tokenizer.ggml.tokens. tie_word_embeddings = no output.weight. hidden_act silu.
 *   vision (general.architecture "clip", clip.projector_type or clip.vision.projector_type
 *   "qwen2vl_merger"): clip.vision.block_count (32), .embedding_length (1280),
 *   .attention.head_count (16), .patch_size (14), .spatial_merge_size (2), .projection_dim
 *   (= text hidden; must equal it); image_mean/image_std, when present, must be the CLIP values
 *   src/image uses (else TKR_ERR_UNSUPPORTED). From the tensors: in_channels from
 *   v.patch_embd.weight [E, C, P, P]; temporal_patch_size 2 (v.patch_embd.weight.1 required);
 *   mlp_hidden from v.blk.0.ffn_up.weight [F, E] (clip.vision.feed_forward_length is NOT used:
 *   llama.cpp's converter stores the text hidden size there). hidden_act quick_gelu.
 *   Token ids are not in the GGUF: image/video/vision_start/vision_end take config.c's Qwen2-VL
 *   defaults (151655/151656/151652/151653), unchecked; the tokenizer confirms them.
 * Values are range-checked with config.c's bounds; a key of the wrong type is TKR_ERR_FORMAT
 * naming the file and key. */
tkr_status tkr_config_from_gguf(const tkr_gguf *model, const tkr_gguf *mmproj,
                                tkr_model_config *cfg, tkr_error *err);

#endif

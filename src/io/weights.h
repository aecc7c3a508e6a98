/* weights.h - every tensor of a Hugging Face model directory, from one or many safetensors.
 *
 * Which files (first match wins):
 *   1. model.safetensors;
 *   2. model.safetensors.index.json: {"metadata": {...}, "weight_map": {"<tensor>": "<shard>"}}.
 *      Shard names must be plain file names (no '/', '\\' or ".."); every listed shard is opened
 *      and validated, and every mapped tensor must be in the shard the map names;
 *   3. model-<i>-of-<n>.safetensors for i = 1..n, all present, one n (found by listing the dir).
 * A tensor name present in two shards is an error. Tensors of a shard that the index does not
 * list are kept (transformers loads them too).
 *
 * Name layouts: checkpoints saved before transformers 4.52 use "model.layers.*" and
 * "visual.blocks.*"; newer ones "model.language_model.layers.*" and "model.visual.blocks.*".
 * tkr_weights_text / _vision look up a layout-free suffix in both. */
#ifndef TKR_IO_WEIGHTS_H
#define TKR_IO_WEIGHTS_H

#include "io/safetensors.h"
#include "tkr_embed.h"

typedef struct tkr_weights tkr_weights;

typedef struct {
    tkr_safetensors_limits file;   /* per shard                                       */
    size_t max_shards;             /* default 4096                                    */
    size_t max_index_bytes;        /* model.safetensors.index.json; default 64 MiB    */
} tkr_weights_limits;

tkr_weights_limits tkr_weights_default_limits(void);

/* model.safetensors, or the shards listed by model.safetensors.index.json ("weight_map"), or
   (if no index) model-0000i-of-0000n.safetensors found in the dir. */
tkr_status tkr_weights_open(const char *model_dir, int use_mmap, tkr_weights **out, tkr_error *err);
/* Same with explicit limits (NULL = defaults). */
tkr_status tkr_weights_open_ex(const char *model_dir, int use_mmap, const tkr_weights_limits *limits,
                               tkr_weights **out, tkr_error *err);
void tkr_weights_free(tkr_weights *w);

/* All tensors: shard by shard (in shard-number / index order), each in data-offset order. */
size_t tkr_weights_count(const tkr_weights *w);
const tkr_tensor *tkr_weights_at(const tkr_weights *w, size_t i);
const tkr_tensor *tkr_weights_get(const tkr_weights *w, const char *name);       /* exact name */

size_t tkr_weights_shard_count(const tkr_weights *w);
const tkr_safetensors *tkr_weights_shard(const tkr_weights *w, size_t i);

/* Layout-independent lookups: text "layers.3.mlp.up_proj.weight" tries "model.layers.3..." then
   "model.language_model.layers.3..." (also "embed_tokens.weight", "norm.weight"); vision
   "blocks.0.attn.qkv.weight" tries "visual.blocks..." then "model.visual.blocks...". "lm_head.weight"
   is exact. Return NULL when absent. */
const tkr_tensor *tkr_weights_text(const tkr_weights *w, const char *suffix);
const tkr_tensor *tkr_weights_vision(const tkr_weights *w, const char *suffix);

/* Fetch + check shape in one call: fails with "tensor 'X': expected shape [a, b], file has [c, d]"
   or "missing tensor 'X' (looked for ... and ...)". ndim given by the number of dims passed
   (0..TKR_TENSOR_MAX_DIMS). The dtype is not checked: any of F32/F16/BF16 may come back. */
tkr_status tkr_weights_require_text(const tkr_weights *w, const char *suffix, int ndim,
                                    const int64_t *shape, const tkr_tensor **out, tkr_error *err);
tkr_status tkr_weights_require_vision(const tkr_weights *w, const char *suffix, int ndim,
                                      const int64_t *shape, const tkr_tensor **out,
                                      tkr_error *err);

#endif

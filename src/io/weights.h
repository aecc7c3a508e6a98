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
 * tkr_weights_text / _vision look up a layout-free suffix in both.
 *
 * GGUF (tkr_weights_open_gguf): llama.cpp's Qwen2-VL pair, a text model (arch "qwen2vl") and an
 * optional mmproj (arch "clip", projector "qwen2vl_merger"), or the same layout from our own
 * `quantize`. Every tensor is registered under the HF name of the old layout, so
 * tkr_weights_text/_vision find it as they do in a HF directory:
 *
 *   text GGUF                         registered as
 *   token_embd.weight                 model.embed_tokens.weight
 *   output_norm.weight                model.norm.weight
 *   output.weight                     lm_head.weight   (absent when the embeddings are tied)
 *   blk.N.attn_norm.weight            model.layers.N.input_layernorm.weight
 *   blk.N.attn_{q,k,v}.{weight,bias}  model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}
 *   blk.N.attn_output.weight          model.layers.N.self_attn.o_proj.weight
 *   blk.N.ffn_norm.weight             model.layers.N.post_attention_layernorm.weight
 *   blk.N.ffn_{gate,up,down}.weight   model.layers.N.mlp.{gate,up,down}_proj.weight
 *
 *   mmproj GGUF                       registered as
 *   v.blk.N.ln1.{weight,bias}         visual.blocks.N.norm1.{weight,bias}
 *   v.blk.N.ln2.{weight,bias}         visual.blocks.N.norm2.{weight,bias}
 *   v.blk.N.attn_out.{weight,bias}    visual.blocks.N.attn.proj.{weight,bias}
 *   v.blk.N.ffn_up.{weight,bias}      visual.blocks.N.mlp.fc1.{weight,bias}
 *   v.blk.N.ffn_down.{weight,bias}    visual.blocks.N.mlp.fc2.{weight,bias}
 *   v.post_ln.{weight,bias}           visual.merger.ln_q.{weight,bias}
 *   mm.0.{weight,bias}                visual.merger.mlp.0.{weight,bias}
 *   mm.2.{weight,bias}                visual.merger.mlp.2.{weight,bias}
 *   where llama.cpp splits an HF tensor, the pieces keep names of their own (no HF tensor
 *   "visual.blocks.N.attn.qkv.*" or "visual.patch_embed.proj.weight" exists for such a file):
 *   v.blk.N.attn_q.{weight,bias}      visual.blocks.N.attn.q.{weight,bias}   [E, E] / [E]: rows
 *   v.blk.N.attn_k.{weight,bias}      visual.blocks.N.attn.k.{weight,bias}   0..E, E..2E, 2E..3E
 *   v.blk.N.attn_v.{weight,bias}      visual.blocks.N.attn.v.{weight,bias}   of the HF qkv
 *   v.patch_embd.weight               visual.patch_embed.proj.weight.t0  [E, C, P, P]: HF's
 *   v.patch_embd.weight.1             visual.patch_embed.proj.weight.t1  [E, C, 2, P, P] at t=0, 1
 *   (a fused v.blk.N.attn_qkv.* would be visual.blocks.N.attn.qkv.*, v.patch_embd.bias
 *   visual.patch_embed.proj.bias).
 * Any other tensor keeps its GGUF name. A canonical name present twice (in both files) is an
 * error. The data are the GGUF tensors in place (any dtype of tensor.h, quantized included). */
#ifndef TKR_IO_WEIGHTS_H
#define TKR_IO_WEIGHTS_H

#include "io/gguf.h"
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
/* A safetensors file image held in memory, under its file name. */
typedef struct {
    const char *name;
    const void *data;
    size_t size;
} tkr_weights_shard_image;
/* Case 2 above from memory: index_json[0..len) is model.safetensors.index.json, and the shards it
 * names are looked up by name in shards[n_shards] (a name not given fails as a missing file
 * would). The same code, validation and messages as tkr_weights_open_ex on a directory holding
 * those files, with label standing for the directory (NULL = "(memory)"). The shard bytes are
 * borrowed: they must outlive the weights. Used by the fuzzers. */
tkr_status tkr_weights_open_index_memory(const char *index_json, size_t len,
                                         const tkr_weights_shard_image *shards, size_t n_shards,
                                         const char *label, const tkr_weights_limits *limits,
                                         tkr_weights **out, tkr_error *err);
/* A llama.cpp-layout GGUF text model and, optionally (NULL), its mmproj (see the top). Both are
 * validated in full (gguf.h); messages name the file. */
tkr_status tkr_weights_open_gguf(const char *model_gguf, const char *mmproj_gguf, int use_mmap,
                                 tkr_weights **out, tkr_error *err);
void tkr_weights_free(tkr_weights *w);

/* The GGUF files behind w (for metadata: config, tokenizer); NULL for a safetensors directory
 * and, for the mmproj, when none was given. Valid until tkr_weights_free. */
const tkr_gguf *tkr_weights_gguf_model(const tkr_weights *w);
const tkr_gguf *tkr_weights_gguf_mmproj(const tkr_weights *w);
/* The name tkr_weights_open_gguf registers GGUF tensor `name` under, into buf (cap >= 128). */
void tkr_weights_gguf_canonical(const char *name, char *buf, size_t cap);

/* All tensors: shard by shard (in shard-number / index order), each in data-offset order (GGUF:
 * the model's tensors, then the mmproj's, each in file order). */
size_t tkr_weights_count(const tkr_weights *w);
const tkr_tensor *tkr_weights_at(const tkr_weights *w, size_t i);
const tkr_tensor *tkr_weights_get(const tkr_weights *w, const char *name);       /* exact name */

/* Safetensors shards; 0 for GGUF-backed weights (use tkr_weights_gguf_model / _mmproj). */
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
   (0..TKR_TENSOR_MAX_DIMS). The dtype is not checked: any tkr_dtype may come back (GGUF files
   hold quantized ones). */
tkr_status tkr_weights_require_text(const tkr_weights *w, const char *suffix, int ndim,
                                    const int64_t *shape, const tkr_tensor **out, tkr_error *err);
tkr_status tkr_weights_require_vision(const tkr_weights *w, const char *suffix, int ndim,
                                      const int64_t *shape, const tkr_tensor **out,
                                      tkr_error *err);

#endif

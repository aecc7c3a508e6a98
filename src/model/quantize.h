/* quantize.h - a model (HF directory or GGUF) to llama.cpp's GGUF pair: the text model
 * (arch "qwen2vl") and its vision tower "mmproj-<name>" (arch "clip", projector
 * "qwen2vl_merger"), in the layout and metadata llama.cpp's converter writes, with the tensor
 * types llama-quantize chooses (see docs/gguf.md).
 *
 * One tensor at a time: each is converted row by row from the mapped source into one output
 * buffer and written, so memory holds at most one output tensor. Rows whose length is not a
 * multiple of the chosen block fall back to another type as llama.cpp does (Q6_K/Q4_K -> Q8_0,
 * then, like Q8_0/Q4_0, -> F16). Norms, biases and other 1-D tensors stay F32; the patch
 * embedding F16 (vision type f16) or F32. */
#ifndef TKR_MODEL_QUANTIZE_H
#define TKR_MODEL_QUANTIZE_H

#include "io/tensor.h"
#include "tkr_embed.h"

#include <stdbool.h>
#include <stdint.h>

/* The model-level types: llama.cpp's file types. */
typedef enum {
    TKR_QT_F32 = 0,
    TKR_QT_F16,
    TKR_QT_BF16,
    TKR_QT_Q8_0,
    TKR_QT_Q4_0,
    TKR_QT_Q4_K_M,    /* the mix: Q4_K, with Q6_K for output, attn_v and ffn_down of some layers */
    TKR_QT_Q4_K,      /* vision only: plain Q4_K */
    TKR_QT_Q6_K,
    TKR_QT_COUNT
} tkr_qtype;

/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q4_k", "q6_k" (case-insensitive). */
bool tkr_qtype_from_name(const char *name, tkr_qtype *out);
const char *tkr_qtype_name(tkr_qtype t);

typedef struct {
    tkr_qtype type;            /* the text model's type                                       */
    tkr_qtype vision_type;     /* the mmproj's; TKR_QT_COUNT = default: Q8_0 when type is a
                                  quantized type, else the same float type                    */
    const char *mmproj;        /* source is a GGUF text model: its mmproj (NULL: beside it)   */
    int n_threads;             /* rows are converted in parallel; 0 = all cores               */
    int64_t sample_rows;       /* > 0: benchmarks only: convert the first sample_rows rows of
                                  each tensor and repeat them (same types, shapes and layout,
                                  not the model's values: for memory measurements of big
                                  shapes, where a full quantize takes hours on 2 cores)      */
    /* progress: called after each tensor (done of total bytes of output); may be NULL */
    void (*progress)(void *ctx, const char *tensor, uint64_t done, uint64_t total);
    void *progress_ctx;
} tkr_quantize_params;

tkr_quantize_params tkr_quantize_default_params(void);

/* Which type one tensor gets (exposed for tests): name is the llama.cpp tensor name, K the row
 * length, layer / n_layers its block (-1 for none), tied true when there is no output.weight. */
tkr_dtype tkr_quantize_pick_type(tkr_qtype type, bool vision, const char *name, int ndim, int64_t K,
                                 int layer, int n_layers, bool tied);

/* Writes out_path (the text model) and, when the source has a vision tower,
 * dirname(out_path)/mmproj-basename(out_path). The files appear only when complete. */
tkr_status tkr_quantize_model(const char *src_path, const char *out_path,
                              const tkr_quantize_params *params, tkr_error *err);

#endif

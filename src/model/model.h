/* model.h - the loaded Qwen2-VL model (internal). */
#ifndef TKR_MODEL_H
#define TKR_MODEL_H

#include "tkr_embed.h"
#include "backend/backend.h"
#include "io/config.h"
#include "io/tensor.h"
#include "io/weights.h"
#include "kernels/kernels.h"
#include "util/threadpool.h"

typedef struct {
    const tkr_tensor *input_norm;     /* [D]                     */
    const tkr_tensor *q_w, *q_b;      /* [H*hd, D], [H*hd]       */
    const tkr_tensor *k_w, *k_b;      /* [KV*hd, D], [KV*hd]     */
    const tkr_tensor *v_w, *v_b;      /* [KV*hd, D], [KV*hd]     */
    const tkr_tensor *o_w;            /* [D, H*hd]               */
    const tkr_tensor *post_norm;      /* [D]                     */
    const tkr_tensor *gate_w, *up_w;  /* [I, D]                  */
    const tkr_tensor *down_w;         /* [D, I]                  */
} tkr_text_layer;

typedef struct {
    const tkr_tensor *norm1_w, *norm1_b;   /* [E]                */
    const tkr_tensor *qkv_w, *qkv_b;       /* [3E, E], [3E]; NULL when split:  */
    const tkr_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* [E, E], [E] each (GGUF) */
    const tkr_tensor *proj_w, *proj_b;     /* [E, E], [E]        */
    const tkr_tensor *norm2_w, *norm2_b;   /* [E]                */
    const tkr_tensor *fc1_w, *fc1_b;       /* [F, E], [F]        */
    const tkr_tensor *fc2_w, *fc2_b;       /* [E, F], [E]        */
} tkr_vision_block;

typedef struct {
    const tkr_tensor *patch_embed;         /* [E, C, tp, p, p] = [E, 1176] */
    float *patch_embed_own;                /* [E, 1176] F32, built at load from a GGUF's two
                                              temporal halves (NULL otherwise)        */
    tkr_tensor patch_embed_t;              /* the view of patch_embed_own           */
    tkr_vision_block *blocks;              /* [depth]                       */
    const tkr_tensor *ln_q_w, *ln_q_b;     /* [E]                           */
    const tkr_tensor *mlp0_w, *mlp0_b;     /* [4E, 4E], [4E]                */
    const tkr_tensor *mlp2_w, *mlp2_b;     /* [D, 4E], [D]                  */
} tkr_vision_weights;

struct tkr_model {
    char name[256];
    char dir[4096];
    tkr_model_params params;
    tkr_model_config cfg;
    tkr_weights *weights;
    bool gguf;                             /* loaded from GGUF files (model + mmproj) */
    tkr_tokenizer *tok;
    tkr_pool *pool;
    tkr_kctx kctx;
    tkr_backend *backend;                  /* NULL: the CPU computes (backend/backend.h) */
    const tkr_tensor *embed;               /* [V, D] */
    const tkr_tensor *final_norm;          /* [D]    */
    tkr_text_layer *layers;                /* [L]    */
    tkr_packed_set *packed;                /* decoder weights repacked at load (kernels.h) */
    float *inv_freq;                       /* [hd/2] text rotary frequencies */
    bool has_vision;
    tkr_vision_weights vis;
    bool vision_pages_droppable;           /* a CPU vision tower whose weight files are all
                                              read-only mappings (model_load.c)          */
    bool no_more_images;                   /* tkr_model_hint_no_more_images: drop the tower's
                                              pages after each call's last vision pass   */
    /* prompt pieces, tokenized once */
    int32_t tok_im_start, tok_im_end, tok_endoftext, tok_vision_start, tok_vision_end, tok_image_pad;
};

/* After one CPU vision pass: drops the vision tower's weight pages from the resident set when
 * params.release_vision_weights asks for it after every pass (model_load.c). */
void tkr_model_release_vision_pages(const tkr_model *m);
/* After the last vision pass of an embed call: drops them when the caller hinted that no image
 * item follows (tkr_model_hint_no_more_images), so that the decoder pass runs without them. */
void tkr_model_vision_done(const tkr_model *m);
/* Rows per chunk for buffers of bytes_per_row bytes a row within params.max_scratch_bytes: at
 * least 1, at most rows (model_load.c). */
int tkr_model_chunk_rows(const tkr_model *m, size_t bytes_per_row, int rows);
/* model_load.c: what a model path names (a HF directory, a .gguf text model plus an optional
 * mmproj, or a directory of GGUF files) opened: weights, config and tokenizer, nothing bound.
 * The model loader and `quantize` share it. */
typedef struct {
    bool gguf;
    tkr_weights *weights;
    tkr_model_config cfg;
    tkr_tokenizer *tok;
} tkr_model_source;
tkr_status tkr_model_source_open(const char *path, const char *mmproj, int use_mmap,
                                 tkr_model_source *src, tkr_error *err);
void tkr_model_source_close(tkr_model_source *src);

/* text.c: the decoder over packed sequences.
 *   x [T, D]: input embeddings (overwritten); pos [3][T]: M-RoPE positions (t, h, w);
 *   seq_start [n_seq + 1]; out [n_seq, D]: final-normed hidden state of each sequence's last token. */
tkr_status tkr_text_forward(tkr_model *m, float *x, int T, const int32_t *pos, const int *seq_start,
                            int n_seq, float *out, tkr_error *err);

/* vision.c: the vision tower + merger for one or more images packed along the patch axis.
 *   patches [P, 1176] in Qwen2-VL order, grids (gh, gw) per image; out [P/4, D]. */
tkr_status tkr_vision_forward(tkr_model *m, const float *patches, int n_images, const int *grid_h,
                              const int *grid_w, float *out, tkr_error *err);

#endif

/* backend.h - the seam between the model code and a compute device other than the CPU.
 *
 * The CPU path is the model code itself (text.c, vision.c over kernels/kernels.h); a backend
 * replaces a whole forward pass, not single kernels, so that weights are uploaded once at load
 * and activations stay on the device for the whole pass. tkr_model.backend is NULL on the CPU.
 *
 * A backend is chosen at load time from tkr_model_params.device (overridden by the environment
 * variable TKR_DEVICE): "cpu"; "cuda" or "cuda:N" (an error when the build has no CUDA or the
 * GPU cannot be used); NULL or "auto" = the first GPU when the build has CUDA and one is
 * present, else the CPU. Precision (tkr_model_params.precision, env TKR_PRECISION): "bf16"
 * (default: BF16 weights and GEMM inputs, float32 accumulation and activations) or "fp32"
 * (float32 weights and GEMMs without TF32: the exact mode). The CPU ignores it. */
#ifndef TKR_BACKEND_H
#define TKR_BACKEND_H

#include "tkr_embed.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tkr_backend tkr_backend;

/* One decoder batch: n_seq prompts packed along T. Token t's input row is the embedding of
 * ids[t], or, when extra_row[t] >= 0, row extra_row[t] of extra (image features). */
typedef struct {
    int T, n_seq;
    const int32_t *ids;        /* [T]                                              */
    const int32_t *pos;        /* [3][T] M-RoPE positions (t, h, w)                */
    const int *seq_start;      /* [n_seq + 1]                                      */
    const float *extra;        /* [n_extra, D] or NULL                             */
    const int32_t *extra_row;  /* [T] -1 or a row of extra; NULL = none            */
    int n_extra;
} tkr_text_batch;

typedef struct {
    const char *name;
    /* out [n_seq, D]: the final-normed hidden state of each sequence's last token. When b->extra
     * lies inside the out block of the backend's last vision_forward(_rgb) call, the backend may
     * read those rows from its own device copy (CUDA: nothing goes up again): the caller must not
     * change that block in between (the CUDA backend also compares its first and last values). */
    tkr_status (*text_forward)(tkr_backend *be, const tkr_text_batch *b, float *out, tkr_error *err);
    /* n_images images, image i with patches[i] [gh*gw, patch_dim] (Qwen2-VL order) and grid
     * (gh, gw), attending within itself; out [sum(gh*gw)/4, D] in image order. The images may
     * come from several items: the tower runs them as one batch. */
    tkr_status (*vision_forward)(tkr_backend *be, int n_images, const float *const *patches,
                                 const int *grid_h, const int *grid_w, float *out, tkr_error *err);
    /* e.g. "cuda:0 NVIDIA H200 (bf16, cuBLAS 13.0)"; always NUL-terminated. */
    void (*describe)(const tkr_backend *be, char *buf, size_t cap);
    void (*free)(tkr_backend *be);
    /* Optional (NULL = not offered): vision_forward from the resized images themselves, rgb[i]
     * [grid_h[i] * patch, grid_w[i] * patch, 3] uint8 row-major; the backend cuts and normalises
     * the patch rows (tkr_image_patchify's arithmetic, bit for bit), so an eighth of the bytes
     * travel and the host does no patch work. */
    tkr_status (*vision_forward_rgb)(tkr_backend *be, int n_images, const uint8_t *const *rgb,
                                     const int *grid_h, const int *grid_w, float *out, tkr_error *err);
    /* Memory held on the device and budgets for it (the byte fields and batch_* of *out). */
    void (*memory)(const tkr_backend *be, tkr_device_memory *out);
} tkr_backend_ops;

struct tkr_backend {
    const tkr_backend_ops *ops;
};

struct tkr_model;

/* Picks the device for m (params and environment, see above). *out = NULL means the CPU.
 * Called by tkr_model_load once the weights are bound. */
tkr_status tkr_backend_open(struct tkr_model *m, tkr_backend **out, tkr_error *err);
void tkr_backend_free(tkr_backend *be);

/* True when the library was built with CUDA (make CUDA=1). */
int tkr_backend_have_cuda(void);

#endif

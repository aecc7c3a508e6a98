/* cuda_internal.h - the CUDA backend's state and its kernels (C++, nvcc only).
 *
 * Precision: `G` is the type of every GEMM input (weights and activations): __nv_bfloat16 in
 * the default mode, float in fp32 mode. GEMMs accumulate and write float32; the residual
 * stream, norms, rotary, softmax and activations are float32 whatever the mode.
 *
 * Layouts are the CPU's (row-major [rows, cols], see kernels/kernels.h): a linear layer's weight
 * W [N, K] is stored as on disk, y [M, N] = x [M, K] W^T. Fused weights: the text q|k|v rows
 * are concatenated into one [(H + 2 KV) hd, D] matrix, gate|up into [2I, D]. */
#ifndef TKR_CUDA_INTERNAL_H
#define TKR_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend/cuda/cuda.h"
#include "model/model.h"
#include "util/error.h"
}

#include <stddef.h>
#include <stdint.h>

namespace tkrcuda {

/* Rows of a weight kept on the device in their stored type (a quantized GGUF tensor: ggml
 * blocks, see dequant_blocks.h): `rows` rows of `row_bytes` bytes of tkr_dtype `type`. */
struct RawPart {
    const uint8_t *q = nullptr;
    int type = 0;
    int rows = 0;
    size_t row_bytes = 0;
};

/* One linear layer on the device: W [N, K] of G, bias [N] float or NULL. A quantized layer has
 * w == NULL and n_raw parts stacked along N instead (cuda_quant.cu dequantizes them into
 * Backend::wtile, as G, right before its GEMM). */
struct Linear {
    void *w = nullptr;
    float *b = nullptr;
    int N = 0, K = 0;
    int n_raw = 0;
    RawPart raw[3];
};

struct TextLayer {
    float *in_norm = nullptr, *post_norm = nullptr;   /* [D]                  */
    Linear qkv, o, gateup, down;                        /* fused as said above  */
};

struct VisionBlock {
    float *n1w = nullptr, *n1b = nullptr, *n2w = nullptr, *n2b = nullptr; /* [E] */
    Linear qkv, proj, fc1, fc2;
};

/* A device buffer that only grows. */
struct DevBuf {
    void *p = nullptr;
    size_t cap = 0;
};

struct Prof;
struct LtPlan;   /* cuda_gemm.cu */
struct TuneRec;  /* cuda_gemm_tune.cu */

struct Backend {
    tkr_backend base;                 /* first: the C side sees a tkr_backend *     */
    const tkr_model *m = nullptr;
    int device = 0;
    bool fp32 = false;
    char name[400] = {0};
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    void *blas_ws = nullptr;          /* cuBLAS workspace (fixed, so runs repeat)    */
    cublasLtHandle_t lt = nullptr;    /* bf16 GEMMs with epilogues (cuda_gemm.cu)     */
    LtPlan *plans = nullptr;          /* one per GEMM shape seen, [cap_plans]          */
    int n_plans = 0, cap_plans = 0;
    int next_evict = 0;               /* the plan replaced next once the table is full  */
    bool lt_all = true;               /* every bf16 GEMM through cuBLASLt (TKR_CUDA_LT=1: those
                                         with an epilogue only; 0: none)                */
    int lt_tune_max = 64;             /* TKR_CUDA_LT_TUNE: buckets to time (cuda_gemm_tune.cu) */
    double lt_tune_min = 1e9;         /* TKR_CUDA_LT_TUNE_MIN: products of fewer FLOP are not tuned */
    TuneRec *tune = nullptr;          /* the decisions, [cap_tune]                      */
    int n_tune = 0, cap_tune = 0;
    DevBuf tune_y;                    /* scratch of the bit checks                      */
    bool resid_gemm = true;           /* TKR_CUDA_RESID=0: residual adds in the norm kernel,
                                         not in the GEMM (beta = 1)                     */
    /* weights */
    void *embed = nullptr;            /* [V, D] of G                                 */
    float *final_norm = nullptr;      /* [D]                                         */
    TextLayer *layers = nullptr;      /* [L]                                         */
    float *text_inv = nullptr;        /* [hd/2] rotary frequency                     */
    int *text_axis = nullptr;         /* [hd/2] which position axis (t, h, w)        */
    bool has_vision = false;
    Linear patch, mlp0, mlp2;
    float *lnq_w = nullptr, *lnq_b = nullptr;
    VisionBlock *blocks = nullptr;
    float *vis_inv = nullptr;         /* [hd/2]                                      */
    int *vis_axis = nullptr;          /* [hd/2] 0 = h, 1 = w                         */
    RawPart embed_raw;                /* the token embedding when quantized (embed NULL) */
    DevBuf wtile;                     /* [N, K] of G: a quantized weight, dequantized   */
    size_t wtile_bytes = 0;           /* the largest quantized weight, as G             */
    size_t total_mem = 0;             /* the GPU's memory, bytes                        */
    /* scratch, grown on demand */
    DevBuf act, att_s, host_in, host_out; /* host_* are pinned host memory           */
    /* The last vision pass's output [vis_rows, D] float, kept on the device (TKR_CUDA_KEEP_VISION=0:
       not used): a text pass whose image rows lie in the host block that pass wrote (vis_host,
       unchanged: vis_probe holds its first and last 4 floats) reads them from here instead of
       uploading them again. */
    DevBuf vis_keep;
    const float *vis_host = nullptr;
    size_t vis_rows = 0;
    float vis_probe[8] = {0};
    bool keep_vision = true;
    size_t weight_bytes = 0;
    void **allocs = nullptr;          /* every weight allocation, freed with the backend */
    int n_allocs = 0, cap_allocs = 0;
    void *stage = nullptr;            /* device staging for raw weight bytes          */
    size_t stage_cap = 0;
    int gemm_attn_min = 512;          /* vision sequences at least this long use GEMMs */
    int gemm_attn_max = 32768;        /* ... and at most this long (S is [L, L] floats) */
    bool flash = true;                /* bf16: tensor-core attention (cuda_flash.cu)   */
    int flash_variant = 3;            /* TKR_CUDA_FLASH=1 / 2 / 3 / 4: which flash kernel */
    bool wgmma = false;               /* the GPU runs this build's sm_90a code (v4)      */
    int n_sm = 132;                   /* the GPU's SM count (add_norm's grid)            */
    void *tma_encode = nullptr;       /* tma_encoder() where wgmma (AttnArgs::tma_encode) */
    int wg_cfg = 0;                   /* TKR_CUDA_WG_CFG: v4's tile shape (AttnArgs)      */
    int wg_min = 512;                 /* TKR_CUDA_WG_MIN: AttnArgs::wg_min_len (0: never) */
    int swiglu_min_rows = 512;        /* TKR_CUDA_SWIGLU_MIN: text MLPs of at least this many
                                         rows use the fused gate|up + SiLU GEMM (0: never) */
    int swiglu_cfg = 0;               /* TKR_CUDA_SWIGLU_CFG: its variant (measurements)  */
    int qgelu_min_rows = INT_MAX;     /* TKR_CUDA_QGELU_MIN: vision fc1 of at least this many
                                         rows fuses bias + QuickGELU (0 or unset: never)   */
    int flash2_min = 64;              /* TKR_CUDA_FLASH2_MIN: shortest max_len for v2/v3 */
    bool causal_lpt = true;           /* TKR_CUDA_CAUSAL_LPT=0: AttnArgs::longest_first off */
    bool causal_wide = false;         /* TKR_CUDA_CAUSAL_WIDE=1: AttnArgs::wide_causal       */
    bool rope_tab = true;             /* TKR_CUDA_ROPE_TABLE=0: bf16 rotary with the angles
                                         computed in every layer (bias_rope_g)          */
    Prof *prof = nullptr;             /* per-op timing (TKR_CUDA_PROFILE=1), else NULL  */
};

/* ---- per-op timing (cuda_prof.cu) ---- */
void prof_init(Backend *be);          /* reads TKR_CUDA_PROFILE                       */
void prof_flush(Backend *be);         /* sums the finished event pairs                */
void prof_pass_done(Backend *be);     /* end of a pass: flushes (or drops, while skipping) */
int prof_begin(Backend *be, const char *label); /* label: a string literal           */
void prof_end(Backend *be, int i);
void prof_pass(Backend *be, int vision, double ms);
void prof_report_free(Backend *be);   /* prints the totals to stderr, frees           */
/* Times the ops issued during its lifetime under `label` (nothing when profiling is off). */
struct ProfScope {
    Backend *be;
    int i;
    ProfScope(Backend *b, const char *label) : be(b->prof ? b : nullptr), i(be ? prof_begin(be, label) : 0) {}
    ~ProfScope() {
        if (be) prof_end(be, i);
    }
};
#define PROF(label, ...)                                                                            \
    do {                                                                                           \
        ::tkrcuda::ProfScope prof_scope_(be, label);                                               \
        __VA_ARGS__;                                                                               \
    } while (0)

/* ---- shared by the kernel files ---- */
/* Blocks of `threads` threads for n items, at most 65535 * 32 (the kernels launched with it loop
 * over the grid). */
inline unsigned blocks_for(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535u * 32u ? 65535u * 32u : (b ? b : 1));
}
/* 8 bf16 as one 16-byte access. */
union Pack8 {
    uint4 u;
    __nv_bfloat162 h[4];
};

/* ---- kernels (cuda_kernels.cu; the rotary in cuda_rope.cu) ---- */
enum Act { ACT_NONE = 0, ACT_QUICK_GELU = 1, ACT_GELU_ERF = 2 };

/* dst [n] of G from src [n] of dtype (F32/F16/BF16 bytes already on the device). */
void convert_to(bool fp32, void *dst, const void *src, tkr_dtype dt, size_t n, cudaStream_t s);
/* x [T, D] float: row t = embed[ids[t]] (G) or extra[extra_row[t]] (float). */
void embed_gather(bool fp32, float *x, const void *embed, const int32_t *ids,
                  const int32_t *extra_row, const float *extra, int T, int D, cudaStream_t s);
/* Per row of x [M, D] float: x += a (+ abias) when either is not NULL; then y = norm(x), of G (float
 * when out_f32). rms: RMSNorm (w), else LayerNorm (w, b). Sums in double, as the CPU does.
 * n_sm: the GPU's SM count (Backend::n_sm), which sizes the grid of the many-row kernel. */
void add_norm(bool fp32, float *x, const float *a, const float *abias, int M, int D, bool rms,
              const float *w, const float *b, float eps, void *y, bool out_f32, int n_sm, cudaStream_t s);
/* y = act(x + bias) as G (or float when out_f32). x [M, N] float. */
void bias_act(bool fp32, const float *x, const float *bias, int M, int N, Act act, void *y,
              bool out_f32, cudaStream_t s);
/* The same with x of G (y may be x). */
void bias_act_g(bool fp32, const void *x, const float *bias, int M, int N, Act act, void *y, cudaStream_t s);
/* x [M, 2I] of G = gate | up -> y [M, I] of G: silu(gate) * up (in float32). */
void silu_mul(bool fp32, const void *x, int M, int I, void *y, cudaStream_t s);
/* In place on x [M, row_stride] float: adds bias [n_cols] to the first n_cols columns, then
 * rotates heads [0, n_rope_heads) in NeoX pairs with angle pos[axis[j]][row] * inv[j].
 * pos is [n_axes][pos_T]; rows[r] gives the token of row r (NULL = r). xb (or NULL) gets a
 * bf16 copy of the n_cols results, same layout. */
void bias_rope(float *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads,
               int hd, const int32_t *pos, int pos_T, const int32_t *rows, const float *inv,
               const int *axis, cudaStream_t s, __nv_bfloat16 *xb = nullptr);
/* bias_rope on a bf16 x in place (rows r = token r; hd % 4 == 0, even column offsets): the bf16
 * mode's path when only the tensor-core attention reads q, k, v. */
void bias_rope_g(__nv_bfloat16 *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
                 const int32_t *pos, int pos_T, const float *inv, const int *axis, cudaStream_t s);
/* The rotary angles of a pass, once: cs [M][hd / 2] = (cos, sin) of pos[axis[j]][r] * inv[j]. */
void rope_table(float2 *cs, int M, int hd, const int32_t *pos, int pos_T, const float *inv, const int *axis,
                cudaStream_t s);
/* bias_rope_g from a rope table (rows r = token r): the same results, at HBM speed. false (and
 * nothing done) when the shape or alignment does not fit (hd % 16, 16-byte rows and bias); the
 * caller then uses bias_rope_g. */
bool rope_apply_g(__nv_bfloat16 *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
                  const float2 *cs, cudaStream_t s);
/* dst row r = src row rows[r]; rows of row_bytes bytes (a multiple of 2). */
void gather_rows(void *dst, const void *src, const int32_t *rows, int M, size_t row_bytes,
                 cudaStream_t s);
/* Patch rows of G [P, 3 * temporal * patch^2] from packed u8 RGB images (image i at byte img_off[i],
 * img_w[i] pixels wide, rows seq[i]..seq[i+1]); pos [2][P]: each row's patch row and column. */
void patchify(bool fp32, void *dst, const uint8_t *rgb, const int *seq, const int32_t *pos, int P, const int *img_w,
              const int *img_off, int n_images, int patch, int temporal, cudaStream_t s);
/* Float copy to G (strided rows): dst [M, N] ld_dst from src [M, N] ld_src. */
void to_g(bool fp32, void *dst, int ld_dst, const float *src, int ld_src, int M, int N,
          cudaStream_t s);
/* Row softmax of S [rows, L] float (scaled by `scale`, causal: row i of each head's [L, L]
 * block sees keys <= i) into P [rows, L] of G (P may be S in fp32 mode). */
void softmax_rows(bool fp32, const float *S, int rows, int L, float scale, bool causal, void *P,
                  cudaStream_t s);

/* ---- attention (cuda_attention.cu) ---- */
struct AttnArgs {
    const float *q, *k, *v;   /* float, strides in floats                      */
    int q_stride, kv_stride;
    void *out;                /* G, [rows, H*hd] stride out_stride             */
    int out_stride;
    int n_heads, n_kv, hd;
    const int *seq_start;     /* device [n_seq + 1]                            */
    int n_seq, max_len;
    bool causal, last_row_only;
    int skip_len, skip_max;   /* sequences with skip_len <= length <= skip_max
                                 are left alone (done by GEMMs)                  */
    /* bf16 copies of q, k, v (same strides) for the tensor-core kernel, or NULL */
    const __nv_bfloat16 *qh = nullptr, *kh = nullptr, *vh = nullptr;
    /* flash kernel version (TKR_CUDA_FLASH=1: the first, 4 warps of 16 rows; 2: 8 warps of 16
       rows, ldmatrix x4; 3 (default): 4 warps of 32 rows where the head size is <= 96, else as 2;
       4: wgmma, sm_90a, head sizes 80 and 128, else as 3), v2-v4 taken for batches whose longest
       sequence has at least v2_min_len rows; wg_cfg: v4's tile shape (cuda_flash_wg.cu);
       wg_min_len: version 3 hands causal batches of head size 128 and full-attention ones of
       head size 80 whose longest sequence has at least this many rows to version 4 (0: never;
       only where wgmma_available()) */
    int variant = 3, v2_min_len = 64, wg_cfg = 0, wg_min_len = 0;
    /* causal only: the flash kernels take their blocks' query tiles last tile first across all
       heads and sequences (the longest blocks first; cuda_flash_util.h); TKR_CUDA_CAUSAL_LPT=0 off */
    bool longest_first = true;
    /* version 3, causal, head size 128: blocks of 8 warps (128 rows) as before 2026-12-03
       instead of 4 (the ablation of tests/gpu/test_flash's "v3 wide") */
    bool wide_causal = false;
    /* rows of the q/k/v buffers (TMA descriptors need the extent; 0: unknown, no TMA) */
    int total_rows = 0;
    /* the driver's cuTensorMapEncodeTiled (tma_encoder(), looked up once), or NULL: no TMA */
    void *tma_encode = nullptr;
};
/* The direct kernel: one block per (query tile, head, sequence), online softmax in float32. */
tkr_status attention(bool fp32, const AttnArgs &a, cudaStream_t s);

/* ---- flash attention on the tensor cores (cuda_flash.cu), bf16 mode ---- */
bool flash_supported(int hd);
/* out is bf16; not for last_row_only. TKR_ERR_UNSUPPORTED when the shape or alignment does not
 * fit (the caller then uses attention()). */
tkr_status flash_attention(const AttnArgs &a, cudaStream_t s);
/* Version 4 (cuda_flash_wg.cu), called by flash_attention; TKR_ERR_UNSUPPORTED for head sizes
 * other than 80 and 128. Launch it only where wgmma_available(). */
tkr_status flash_attention_wg(const AttnArgs &a, cudaStream_t s);
/* Whether this build has sm_90a code for the current GPU (runs a probe kernel on s, synchronously). */
bool wgmma_available(cudaStream_t s);
/* The driver's cuTensorMapEncodeTiled for AttnArgs::tma_encode (cuda_flash_pp.cu), or NULL
 * where the driver has none; found through the runtime, so the build does not link libcuda. */
void *tma_encoder();

/* ---- GEMMs (cuda_gemm.cu) ---- */
/* y [M, N] float (or G when out_g) = x [M, K] (G, row stride ldx; 0 = K) @ L.w^T; with
 * accumulate, y += instead (float y only). With bias_done != NULL the GEMM also adds L.b where it
 * can (bf16 mode, cuBLASLt epilogue) and says so in *bias_done; otherwise the caller adds it. */
tkr_status linear(Backend *be, const void *x, int M, const Linear &L, void *y, tkr_error *err, int ldx = 0,
                  bool out_g = false, bool accumulate = false, bool *bias_done = nullptr);
/* ---- GEMMs with the MLP activation fused (cuda_gemm_swiglu.cu) ---- */
/* y [M, I] (G) = silu(x L.w[0, I)^T) * (x L.w[I, 2I)^T), I = L.N / 2: by the fused kernel where
 * the GPU, the shape and Backend::swiglu_min_rows allow, else by linear() into gu [M, 2I] (G)
 * and silu_mul(). */
tkr_status gate_up_silu(Backend *be, const void *x, int M, const Linear &L, void *gu, void *y, tkr_error *err);
/* Whether the fused kernel takes this shape: I % 128, K % 64, 16-byte aligned x and w. */
bool gateup_swiglu_fits(int M, int I, int K, const void *x, const void *w, const void *y);
/* Launches it on s (bf16 x [M, K], w [2I, K], y [M, I]; encode: tma_encoder(); n_sm: the grid;
 * cfg: 0 the default, 1-4 alternatives for measurements: Backend::swiglu_cfg);
 * false, launching nothing, where it does not fit. sm_90a only (Backend::wgmma). */
bool gateup_swiglu_launch(void *encode, int n_sm, const void *x, const void *w, int M, int I, int K, void *y,
                          cudaStream_t s, int cfg = 0);
/* y [M, N] (G) = quick_gelu(x L.w^T + L.b) by the same kernel with another epilogue, where the
 * GPU, the shape and Backend::qgelu_min_rows allow: *done says whether it ran; if not, the caller
 * runs linear() and bias_act_g(). */
tkr_status linear_quick_gelu(Backend *be, const void *x, int M, const Linear &L, void *y, bool *done,
                             tkr_error *err);
/* Whether it takes this shape (N % 256, K % 64, 16-byte aligned x and w), and its launch (bias
 * [N] float or NULL; as gateup_swiglu_launch). */
bool linear_qgelu_fits(int M, int N, int K, const void *x, const void *w, const void *y);
bool linear_qgelu_launch(void *encode, int n_sm, const void *x, const void *w, const float *bias, int M, int N, int K,
                         void *y, cudaStream_t s);

/* One cuBLASLt product to tune (cuda_gemm_tune.cu): its descriptors (the bias pointer already
 * set; b: x's layout, row stride ldx), the heuristic's algorithm ref and the live operands W, x. */
struct TuneShape {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    int M, N, K, ldx;
    bool out_g, bias, acc;
    const cublasLtMatmulAlgo_t *ref;
    const void *W, *x;
};
/* The tuning decision of one bucket of M (cuda_gemm_tune.cu). */
struct TuneRec {
    int N, K, ldx;
    bool out_g, bias, acc;
    int bucket;                       /* M in [2^bucket, 2^(bucket + 1))                */
    bool taken;                       /* algo beat the heuristic's with the same bits   */
    cublasLtMatmulAlgo_t algo;
};
/* *chosen = the fastest of cuBLASLt's candidates for s (at least 2% faster than ref) whose output
 * is bit-identical to ref's, else ref: timed on the first shape of s's bucket of M, bit-checked
 * on the later ones. Synchronizes the stream. */
void lt_tune(Backend *be, const TuneShape &s, cublasLtMatmulAlgo_t *chosen);
/* Frees the cuBLASLt plans and handle. */
void gemm_plans_free(Backend *be);

/* ---- quantized weights (cuda_quant.cu) ---- */
/* The G matrix [L.N, L.K] of L: L.w, or L's raw parts dequantized into be->wtile (stream
 * ordered: valid until the next call). */
tkr_status weight_of(Backend *be, const Linear &L, const void **w, tkr_error *err);
/* Rows [r0, r0 + n) of L (weights and bias), dense or quantized. */
Linear linear_rows(const Linear &L, int r0, int n, bool fp32);
/* embed_gather over be->embed, or over the quantized embedding (rows dequantized on the fly). */
void gather_embeddings(Backend *be, float *x, const int32_t *ids, const int32_t *extra_row,
                       const float *extra, int T, int D, cudaStream_t s);

/* ---- forward passes (cuda_forward.cu) ---- */
tkr_status text_forward(Backend *be, const tkr_text_batch *b, float *out, tkr_error *err);
/* From patch rows (patches) or from the resized RGB images (rgb; patches NULL). */
tkr_status vision_forward(Backend *be, int n_images, const float *const *patches, const uint8_t *const *rgb,
                          const int *grid_h, const int *grid_w, float *out, tkr_error *err);

/* Helpers shared by the .cu files. */
tkr_status cuda_fail(tkr_error *err, cudaError_t e, const char *what);
tkr_status blas_fail(tkr_error *err, cublasStatus_t e, const char *what);
/* Ensures buf holds at least bytes (device memory, or pinned host memory when host). */
tkr_status ensure(DevBuf &buf, size_t bytes, bool host, tkr_error *err);
inline size_t gsize(bool fp32) { return fp32 ? 4 : 2; }
inline size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

} // namespace tkrcuda

#endif

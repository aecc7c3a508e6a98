/* kernels.h - the compute kernels behind the model code.
 *
 * Each kernel has a portable reference version (plain C, float32 accumulation) and, where it
 * matters, a per-ISA version (*_avx2.c) chosen at run time. The model code only sees this header,
 * so other backends and quantized weight types plug in here.
 *
 * Shapes are row-major and written as [rows, cols]. Weights are tkr_tensor views (F32, F16 or BF16)
 * read in place; activations are float32.
 *
 * Batch invariance: every output element of tkr_linear is computed by the same instruction
 * sequence whatever the number of rows M and the thread count, and every attention row by the
 * same sequence whatever else is packed beside its sequence, so a vector never depends on what
 * else was batched. (The portable and the AVX2 kernels sum in different orders: a vector may
 * differ in the last bits between the two, never between two runs of one.)
 * Scratch memory is allocated per call (per thread); the kernels that need it return
 * TKR_ERR_NOMEM when it cannot be had and never abort. */
#ifndef TKR_KERNELS_H
#define TKR_KERNELS_H

#include "io/tensor.h"
#include "util/threadpool.h"

#include <stdbool.h>
#include <stdint.h>

/* Which kernels run: the ISA flags come from run-time CPU detection (cpu.c), lowered by a cap
 * for tests and benchmarks. A kernel uses the best flag it has a version for. */
typedef struct {
    tkr_pool *pool;          /* may be NULL: single-threaded                          */
    bool avx2;               /* x86: AVX2 + FMA + F16C                                */
    bool avx_vnni;           /* x86: AVX-VNNI (vpdpbusd on 256-bit registers)         */
    bool avx512;             /* x86: AVX-512 F + BW + VL + DQ                         */
    bool avx512_vnni;        /* x86: AVX512_VNNI                                      */
    bool avx512_bf16;        /* x86: AVX512_BF16                                      */
    bool neon;               /* arm64: Advanced SIMD (always on arm64)                */
    bool neon_dot;           /* arm64: FEAT_DotProd (sdot / udot)                     */
    bool fast_bf16;          /* opt-in: BF16 weights with activations rounded to bf16 */
} tkr_kctx;

/* Fills ctx for this CPU. cap limits the ISA: NULL or "auto" = the best this CPU has;
 * "generic" = portable C only; "avx2" = no AVX-512 or VNNI; "avx2-vnni" = AVX2 + AVX-VNNI;
 * "avx512" = everything x86 has; "neon" = NEON without the dot product; "neon-dot".
 * Returns false (ctx still filled, with the best kernels) for an unknown cap. The model reads
 * tkr_model_params.kernels, overridden by the environment: TKR_KERNELS=<cap>, or
 * TKR_FORCE_GENERIC (any value) for "generic". */
bool tkr_kctx_init(tkr_kctx *ctx, tkr_pool *pool, const char *cap);

/* A short description of the kernels ctx selects, for logs and every benchmark figure, e.g.
 * "avx512 vnni bf16 (AMD EPYC 9R45)" or "generic". Always NUL-terminated. */
void tkr_kctx_describe(const tkr_kctx *ctx, char *buf, size_t cap);

/* The CPU's model name (from /proc/cpuinfo or sysctl), or "unknown cpu". */
void tkr_cpu_model_name(char *buf, size_t cap);

/* Scalar conversions (exact: every F16/BF16 value is representable in float32). */
float tkr_f16_to_f32(uint16_t h);
float tkr_bf16_to_f32(uint16_t b);
uint16_t tkr_f32_to_bf16(float f);   /* round to nearest even */
uint16_t tkr_f32_to_f16(float f);    /* round to nearest even */

/* out[n] = float32 of row `row` of a 2-D weight W [rows, n] */
void tkr_weight_row_f32(const tkr_tensor *w, int64_t row, float *out);

/* y[M,N] = x[M,K] @ W[N,K]^T (+ bias[N]). W: F32/F16/BF16 [N, K]; bias F32/F16/BF16 or NULL.
 * Returns TKR_OK, or TKR_ERR_NOMEM when its per-thread scratch (< 1 MB) cannot be allocated. */
tkr_status tkr_linear(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                const tkr_tensor *bias, float *y);

/* Weights repacked at load (tensor.h tkr_layout) for the kernels ctx selects: today BF16 on
 * AVX-512, in 64-row pair panels, which the AVX-512 exact and fast tiles read in place instead of
 * packing a block of W on every call. The set owns the packed tensors and their memory. */
typedef struct tkr_packed_set tkr_packed_set;

/* For each *slots[i] (a weight only tkr_linear / tkr_linear_silu_gate read): if ctx's kernels
 * want it in another layout, packs it (work spread over ctx->pool) into memory owned by *set
 * (created on first use; NULL in, a set out) and points *slots[i] at the packed tensor, one
 * tensor at a time. release_src: the sources are file mappings, whose pages are dropped after
 * their tensor is packed (madvise), so that peak memory stays about the model's size. A
 * source met twice is packed once. The packing depends on the weight and the ISA only (not on
 * the thread count). Returns TKR_OK or TKR_ERR_NOMEM (every slot then still valid). */
tkr_status tkr_linear_repack(const tkr_kctx *ctx, const tkr_tensor **slots[], size_t n, bool release_src,
                             tkr_packed_set **set);
/* Bytes the set holds (packed weights), for logs. */
size_t tkr_packed_set_bytes(const tkr_packed_set *set);
void tkr_packed_set_free(tkr_packed_set *set);

/* RMSNorm per row: y = w * x / sqrt(mean(x^2) + eps). x, y [M, D] (y may equal x). */
void tkr_rmsnorm(const tkr_kctx *ctx, const float *x, int M, int D, const tkr_tensor *w, float eps,
                 float *y);

/* LayerNorm per row: y = (x - mean) / sqrt(var + eps) * w + b. */
void tkr_layernorm(const tkr_kctx *ctx, const float *x, int M, int D, const tkr_tensor *w,
                   const tkr_tensor *b, float eps, float *y);

/* gate[i] = silu(gate[i]) * up[i] over n values (the SwiGLU MLP). */
void tkr_silu_mul(const tkr_kctx *ctx, float *gate, const float *up, size_t n);

/* The gated MLP's first half: gate = silu(x Wg^T) * (x Wu^T), gate and up [M, N] (up is scratch):
 * the same bits as tkr_linear twice and tkr_silu_mul; for quantized weights of one type, one
 * pass that quantizes x once and never writes the two products (linear_quant.c). */
tkr_status tkr_linear_silu_gate(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *wg,
                                const tkr_tensor *wu, float *gate, float *up);
/* x * sigmoid(1.702 x) in place (the vision blocks' QuickGELU). */
void tkr_quick_gelu(const tkr_kctx *ctx, float *x, size_t n);
/* exact erf GELU in place (the patch merger). */
void tkr_gelu_erf(const tkr_kctx *ctx, float *x, size_t n);

/* x[i] += y[i] */
void tkr_add_inplace(float *x, const float *y, size_t n);

/* Rotary embedding in NeoX pairing (d, d + half) applied in place to x [T, n_heads, head_dim]
 * with per-token tables cos/sin [T, head_dim/2]. */
void tkr_rope_apply(float *x, int T, int n_heads, int head_dim, const float *cos_t,
                    const float *sin_t);
/* The same on rows of row_stride floats (e.g. q and k inside a fused qkv buffer). */
void tkr_rope_apply_strided(float *x, int T, int row_stride, int n_heads, int head_dim,
                            const float *cos_t, const float *sin_t);

/* Multi-head attention over one or more independent sequences packed along T.
 *   q [T, n_heads, hd], k/v [T, n_kv, hd] (rows of stride q_stride/kv_stride floats),
 *   out [T, n_heads, hd]; seq_start[n_seq + 1] gives the row ranges; causal masks the future.
 * Grouped-query: head h reads kv head h / (n_heads / n_kv). Softmax in float32.
 * last_row_only: only each sequence's last token is a query (the decoder's last layer, where
 *   nothing else is pooled): q and out then hold n_seq rows, row s for sequence s, and each
 *   result is bit for bit the one the full computation gives for that row.
 * q_row1 > 0 (and not last_row_only): only the packed rows [q_row0, q_row1) are queries, so that
 *   a long input's queries can go a chunk at a time against all its keys (bounded scratch): q and
 *   out then hold q_row1 - q_row0 rows, packed row r at r - q_row0; each result is again bit for
 *   bit the full computation's. Zero (the default) = every row. */
typedef struct {
    const float *q, *k, *v;
    int q_stride, kv_stride;        /* floats between consecutive token rows */
    float *out;
    int out_stride;
    int n_heads, n_kv, head_dim;
    const int *seq_start;
    int n_seq;
    bool causal;
    bool last_row_only;
    int q_row0, q_row1;             /* query row window (see above); 0, 0 = all rows */
} tkr_attention_args;

/* Returns TKR_OK, or TKR_ERR_NOMEM when its per-thread scratch cannot be allocated. */
tkr_status tkr_attention(const tkr_kctx *ctx, const tkr_attention_args *a);

#endif

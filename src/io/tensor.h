/* tensor.h - a named view of one weight tensor inside a loaded model file.
 *
 * A tkr_tensor never owns its data: `data` points into the safetensors file that was mapped (or
 * read) by safetensors.c and stays valid until that file (or the tkr_weights holding it) is
 * closed. Data is little-endian, row-major, with no strides. The pointer may be unaligned for
 * the element size (safetensors offsets need not be aligned): compute code must read it with
 * memcpy or unaligned-safe loads; `aligned` records whether it happens to be aligned. */
#ifndef TKR_IO_TENSOR_H
#define TKR_IO_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Five, not four: Qwen2-VL's patch embedding is a Conv3d weight [1280, 3, 2, 14, 14]
 * (visual.patch_embed.proj.weight), stored 5-D in the Hugging Face checkpoint. */
#define TKR_TENSOR_MAX_DIMS 5

/* Element types. The float types are stored one value per element; the quantized ones in blocks
 * whose byte layout is exactly ggml's (see kernels/quant.h): Q8_0 and Q4_0 hold 32 values per
 * block, Q4_K and Q6_K 256. A quantized 2-D tensor [rows, cols] needs cols % block == 0 and
 * stores each row as cols / block consecutive blocks, so rows stay independent. */
typedef enum {
    TKR_DT_F32 = 0,
    TKR_DT_F16,
    TKR_DT_BF16,
    TKR_DT_Q8_0,
    TKR_DT_Q4_0,
    TKR_DT_Q4_K,
    TKR_DT_Q6_K,
    TKR_DT_COUNT
} tkr_dtype;

/* Bytes per element (4, 2, 2) for the float types; 0 for quantized types and values outside the
 * enum (use the block functions below for those). */
size_t tkr_dtype_size(tkr_dtype t);
/* Elements per block: 1 for float types, 32 (Q8_0, Q4_0) or 256 (Q4_K, Q6_K); 0 if unknown. */
int tkr_dtype_block_elems(tkr_dtype t);
/* Bytes per block: 4/2/2 for float types, 34 (Q8_0), 18 (Q4_0), 144 (Q4_K), 210 (Q6_K). */
size_t tkr_dtype_block_bytes(tkr_dtype t);
bool tkr_dtype_is_quant(tkr_dtype t);
/* Bytes of n consecutive elements; 0 when n is not a multiple of the block or t is unknown. */
size_t tkr_dtype_row_bytes(tkr_dtype t, int64_t n);
/* The safetensors / ggml spelling ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K");
 * "?" for a value outside the enum. */
const char *tkr_dtype_name(tkr_dtype t);
/* The inverse of tkr_dtype_name, case-insensitive; returns false for an unknown name. */
bool tkr_dtype_from_name(const char *name, tkr_dtype *out);

/* How a 2-D weight's elements lie in `data`. Loaders give TKR_LAYOUT_ROWS; the others are made
 * at load by the kernels (kernels.h tkr_linear_repack) for the kernels that read them fastest,
 * and every kernel that takes a weight accepts them (the portable one through
 * tkr_weight_row_f32, which reads any layout).
 *   TKR_LAYOUT_PAIR_PANELS (BF16 [N, K]): panels of panel_rows weight rows, each panel
 *     [ceil(K/2)][panel_rows] 32-bit pairs, pair (i, j) = w[n, 2i] | w[n, 2i+1] << 16 for
 *     n = panel * panel_rows + j; zero past N and past K (an odd K's last upper half). nbytes =
 *     ceil(N / panel_rows) * panel_rows * ceil(K/2) * 4; data 64-byte aligned. */
typedef enum {
    TKR_LAYOUT_ROWS = 0,
    TKR_LAYOUT_PAIR_PANELS,
} tkr_layout;

typedef struct {
    const char *name;
    tkr_dtype dtype;
    int ndim;                 /* 0..TKR_TENSOR_MAX_DIMS (0 = a scalar, one element) */
    int64_t shape[TKR_TENSOR_MAX_DIMS]; /* shape[0] is the slowest-varying dim; unused are 0 */
    const void *data;         /* points into the mapped file (little-endian), read in place */
    size_t nbytes;            /* tkr_dtype_row_bytes(dtype, numel) */
    bool aligned;             /* data % (float types: element size; quantized: 2) == 0 */
    tkr_layout layout;        /* TKR_LAYOUT_ROWS (0) unless repacked at load */
    int panel_rows;           /* TKR_LAYOUT_PAIR_PANELS: rows per panel (64); else 0 */
} tkr_tensor;

/* Number of elements (product of the dims; 1 for ndim 0). Overflow is impossible for a tensor
 * that came out of a validated file (numel * size == nbytes fits in size_t). */
size_t tkr_tensor_numel(const tkr_tensor *t);

/* Writes "[a, b, c]" into buf (truncated to cap, always NUL-terminated) for error messages. */
void tkr_shape_format(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif

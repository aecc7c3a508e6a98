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

typedef enum { TKR_DT_F32 = 0, TKR_DT_F16, TKR_DT_BF16 } tkr_dtype;

/* Bytes per element (4, 2, 2); 0 for a value outside the enum. */
size_t tkr_dtype_size(tkr_dtype t);
/* The safetensors spelling ("F32", "F16", "BF16"); "?" for a value outside the enum. */
const char *tkr_dtype_name(tkr_dtype t);

typedef struct {
    const char *name;
    tkr_dtype dtype;
    int ndim;                 /* 0..TKR_TENSOR_MAX_DIMS (0 = a scalar, one element) */
    int64_t shape[TKR_TENSOR_MAX_DIMS]; /* shape[0] is the slowest-varying dim; unused are 0 */
    const void *data;         /* points into the mapped file (little-endian), read in place */
    size_t nbytes;            /* numel * dtype size */
    bool aligned;             /* data % tkr_dtype_size(dtype) == 0 */
} tkr_tensor;

/* Number of elements (product of the dims; 1 for ndim 0). Overflow is impossible for a tensor
 * that came out of a validated file (numel * size == nbytes fits in size_t). */
size_t tkr_tensor_numel(const tkr_tensor *t);

/* Writes "[a, b, c]" into buf (truncated to cap, always NUL-terminated) for error messages. */
void tkr_shape_format(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif

/* tensor.h - a named, typed view of weights read in place from a model file. */
#ifndef TKR_IO_TENSOR_H
#define TKR_IO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TKR_DT_F32 = 0, TKR_DT_F16, TKR_DT_BF16 } tkr_dtype;

size_t tkr_dtype_size(tkr_dtype t);
const char *tkr_dtype_name(tkr_dtype t);

typedef struct {
    const char *name;
    tkr_dtype dtype;
    int ndim;                 /* 0..4 */
    int64_t shape[4];
    const void *data;         /* points into the mapped file (little-endian), read in place */
    size_t nbytes;
} tkr_tensor;

#endif

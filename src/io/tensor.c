/* tensor.c - dtype table and small helpers shared by the loaders (see tensor.h). */
#include "io/tensor.h"

#include <stdio.h>

size_t tkr_dtype_size(tkr_dtype t) {
    switch (t) {
    case TKR_DT_F32: return 4;
    case TKR_DT_F16: return 2;
    case TKR_DT_BF16: return 2;
    }
    return 0;
}

const char *tkr_dtype_name(tkr_dtype t) {
    switch (t) {
    case TKR_DT_F32: return "F32";
    case TKR_DT_F16: return "F16";
    case TKR_DT_BF16: return "BF16";
    }
    return "?";
}

size_t tkr_tensor_numel(const tkr_tensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim && i < TKR_TENSOR_MAX_DIMS; i++) n *= (size_t)t->shape[i];
    return n;
}

/* Shapes appear in most loader errors, so one formatter keeps them identical everywhere. */
void tkr_shape_format(char *buf, size_t cap, int ndim, const int64_t *shape) {
    if (cap == 0) return;
    size_t used = 0;
    buf[0] = '\0';
    int n = snprintf(buf, cap, "[");
    if (n < 0 || (size_t)n >= cap) return;
    used = (size_t)n;
    for (int i = 0; i < ndim; i++) {
        n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (n < 0 || (size_t)n >= cap - used) return;
        used += (size_t)n;
    }
    snprintf(buf + used, cap - used, "]");
}

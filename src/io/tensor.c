/* tensor.c - dtype table and small helpers shared by the loaders (see tensor.h). */
#include "io/tensor.h"

#include <stdio.h>
#include <strings.h>

/* One table so that the block geometry of every type is stated once. */
static const struct {
    const char *name;
    int block_elems;
    size_t block_bytes;
} dtype_table[TKR_DT_COUNT] = {
    [TKR_DT_F32] = {"F32", 1, 4},     [TKR_DT_F16] = {"F16", 1, 2},
    [TKR_DT_BF16] = {"BF16", 1, 2},   [TKR_DT_Q8_0] = {"Q8_0", 32, 34},
    [TKR_DT_Q4_0] = {"Q4_0", 32, 18}, [TKR_DT_Q4_K] = {"Q4_K", 256, 144},
    [TKR_DT_Q6_K] = {"Q6_K", 256, 210},
};

static bool dtype_known(tkr_dtype t) { return (unsigned)t < (unsigned)TKR_DT_COUNT; }

size_t tkr_dtype_size(tkr_dtype t) {
    if (!dtype_known(t) || dtype_table[t].block_elems != 1) return 0;
    return dtype_table[t].block_bytes;
}

int tkr_dtype_block_elems(tkr_dtype t) { return dtype_known(t) ? dtype_table[t].block_elems : 0; }

size_t tkr_dtype_block_bytes(tkr_dtype t) { return dtype_known(t) ? dtype_table[t].block_bytes : 0; }

bool tkr_dtype_is_quant(tkr_dtype t) { return dtype_known(t) && dtype_table[t].block_elems > 1; }

size_t tkr_dtype_row_bytes(tkr_dtype t, int64_t n) {
    if (!dtype_known(t) || n < 0 || n % dtype_table[t].block_elems != 0) return 0;
    return (size_t)(n / dtype_table[t].block_elems) * dtype_table[t].block_bytes;
}

const char *tkr_dtype_name(tkr_dtype t) { return dtype_known(t) ? dtype_table[t].name : "?"; }

bool tkr_dtype_from_name(const char *name, tkr_dtype *out) {
    for (int i = 0; i < TKR_DT_COUNT; i++)
        if (name && strcasecmp(name, dtype_table[i].name) == 0) {
            *out = (tkr_dtype)i;
            return true;
        }
    return false;
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

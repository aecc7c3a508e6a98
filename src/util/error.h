/* error.h - filling tkr_error and small checked-arithmetic helpers shared by every module. */
#ifndef TKR_UTIL_ERROR_H
#define TKR_UTIL_ERROR_H

#include "tkr_embed.h"
#include <stdint.h>
#include <stddef.h>

#if defined(__GNUC__)
#define TKR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TKR_PRINTF(a, b)
#endif

/* Sets err (when not NULL) and returns code, so callers can write `return tkr_fail(...)`. */
tkr_status tkr_fail(tkr_error *err, tkr_status code, const char *fmt, ...) TKR_PRINTF(3, 4);

/* Prefixes an existing error message with context ("model.safetensors: "). */
void tkr_error_prefix(tkr_error *err, const char *fmt, ...) TKR_PRINTF(2, 3);

void tkr_error_clear(tkr_error *err);

/* Overflow-checked size arithmetic: return 0 on overflow, 1 on success. */
static inline int tkr_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int tkr_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

#endif

/* fuzz_util.h - helpers for the libFuzzer harnesses: splitting one input into several files (the
 * loaders that read files are fuzzed through their in-memory entry points, which run the same
 * parsing code, so no harness writes files). */
#ifndef TKR_FUZZ_UTIL_H
#define TKR_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Splits data at the first separator line "\n--8<--\n": part 1 before, part 2 after (empty
 * when there is none). */
#define FZ_SEP "\n--8<--\n"
static inline void fz_split(const uint8_t *data, size_t n, size_t *n1, const uint8_t **p2, size_t *n2) {
    const size_t k = sizeof FZ_SEP - 1;
    /* first byte checked inline: a memcmp per position costs a quarter of the run time under
     * libFuzzer's and ASan's memcmp interceptors */
    for (size_t i = 0; i + k <= n; i++)
        if (data[i] == '\n' && !memcmp(data + i, FZ_SEP, k)) {
            *n1 = i;
            *p2 = data + i + k;
            *n2 = n - i - k;
            return;
        }
    *n1 = n;
    *p2 = data + n;
    *n2 = 0;
}

#endif

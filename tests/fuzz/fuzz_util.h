/* fuzz_util.h - helpers for the libFuzzer harnesses: a private scratch directory for loaders that
 * read files, and splitting one input into several files. Harness state is process-global, as
 * libFuzzer's entry points require. */
#ifndef TKR_FUZZ_UTIL_H
#define TKR_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A directory of its own for this process, made on first use. */
static inline const char *fz_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/tkr-fuzz-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

static inline void fz_write(const char *name, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static inline void fz_remove(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    unlink(path);
}

/* Splits data at the first separator line "\n--8<--\n": part 1 before, part 2 after (empty
 * when there is none). */
#define FZ_SEP "\n--8<--\n"
static inline void fz_split(const uint8_t *data, size_t n, size_t *n1, const uint8_t **p2, size_t *n2) {
    const size_t k = sizeof FZ_SEP - 1;
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(data + i, FZ_SEP, k)) {
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

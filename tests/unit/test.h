/* test.h - the tiny test harness every tests/unit/test_*.c uses.
 *
 *   static void test_something(void) { CHECK(x == 1, "x was %d", x); }
 *   int main(void) { RUN(test_something); return test_summary(); }
 *
 * Each RUN prints "PASS name" or "FAIL name" (tests/run.sh counts those lines). A check that
 * fails prints where and why and marks the current test failed; the test goes on so that one run
 * shows every failure. */
#ifndef TKR_TEST_H
#define TKR_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_cur_failed;
static int test_n_pass, test_n_fail;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            test_cur_failed = 1;                                                             \
            fprintf(stderr, "  check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

#define RUN(fn)                                                                              \
    do {                                                                                     \
        test_cur_failed = 0;                                                                 \
        fn();                                                                                \
        if (test_cur_failed) {                                                               \
            test_n_fail++;                                                                   \
            printf("FAIL %s\n", #fn);                                                        \
        } else {                                                                             \
            test_n_pass++;                                                                   \
            printf("PASS %s\n", #fn);                                                        \
        }                                                                                    \
        fflush(stdout);                                                                      \
    } while (0)

static inline int test_summary(void) {
    printf("# %d passed, %d failed\n", test_n_pass, test_n_fail);
    return test_n_fail ? 1 : 0;
}

/* The shared test data (tokenizers, images): $TKR_TEST_DATA, else ../shared/data from the repo
 * root. Missing data is a failure with a clear message, never a silent pass. */
static inline const char *test_data_dir(void) {
    const char *d = getenv("TKR_TEST_DATA");
    if (!d || !*d) d = "../shared/data";
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "FATAL: test data directory '%s' not found. Set TKR_TEST_DATA to the shared/data "
                "folder (tokenizers, images).\n", d);
        printf("FAIL test_data_dir\n");
        exit(1);
    }
    return d;
}

/* Joins the data dir and a relative path into a static buffer (tests are single-threaded). */
static inline const char *test_data_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", test_data_dir(), rel);
    return buf;
}

static inline double test_cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa) * sqrt(bb) + 1e-300);
}

#endif

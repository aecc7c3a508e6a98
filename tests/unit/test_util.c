/* test_util.c - error reporting, checked arithmetic, file views and the thread pool. */
#include "util/sha256.h"
#include "test.h"
#include "util/error.h"
#include "util/platform.h"
#include "util/threadpool.h"

#include <time.h>

#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static void test_fail_sets_message(void) {
    tkr_error e;
    tkr_status st = tkr_fail(&e, TKR_ERR_FORMAT, "bad %s at %d", "thing", 7);
    CHECK(st == TKR_ERR_FORMAT, "status %d", st);
    CHECK(e.code == TKR_ERR_FORMAT, "code %d", e.code);
    CHECK(!strcmp(e.message, "bad thing at 7"), "message '%s'", e.message);
    tkr_error_prefix(&e, "%s: ", "file.bin");
    CHECK(!strcmp(e.message, "file.bin: bad thing at 7"), "prefixed '%s'", e.message);
    CHECK(!strcmp(tkr_status_name(TKR_ERR_LIMIT), "limit_exceeded"), "name");
    CHECK(tkr_fail(NULL, TKR_ERR_IO, "x") == TKR_ERR_IO, "NULL err allowed");
}

static void test_checked_arith(void) {
    size_t r = 0;
    CHECK(tkr_mul_size(3, 5, &r) && r == 15, "3*5");
    CHECK(!tkr_mul_size(SIZE_MAX / 2 + 1, 2, &r), "overflow detected");
    CHECK(!tkr_add_size(SIZE_MAX, 1, &r), "add overflow detected");
    CHECK(tkr_add_size(SIZE_MAX - 1, 1, &r) && r == SIZE_MAX, "add edge");
}

static void test_file_view(void) {
    tkr_error e;
    tkr_file_view v;
    CHECK(tkr_file_view_open("/nonexistent/x", 1, 0, &v, &e) == TKR_ERR_IO, "missing file");
    CHECK(strstr(e.message, "/nonexistent/x") != NULL, "message names file: %s", e.message);
    char path[] = "/tmp/tkr-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    fputs("hello", f);
    fclose(f);
    for (int m = 0; m < 2; m++) {
        CHECK(tkr_file_view_open(path, m, 0, &v, &e) == TKR_OK, "open: %s", e.message);
        CHECK(v.size == 5 && !memcmp(v.data, "hello", 5), "contents");
        tkr_file_view_close(&v);
    }
    CHECK(tkr_file_view_open(path, 1, 4, &v, &e) == TKR_ERR_LIMIT, "size cap");
    char *s = NULL;
    size_t n = 0;
    CHECK(tkr_read_file(path, 100, &s, &n, &e) == TKR_OK && n == 5 && !strcmp(s, "hello"), "read");
    free(s);
    CHECK(tkr_read_file("/", 100, &s, &n, &e) == TKR_ERR_IO, "directory refused");
    unlink(path);
}

typedef struct {
    atomic_int sum;
    int seen[1000];
} pool_ctx;

static void add_task(void *ctxp, int task, int thread) {
    pool_ctx *c = ctxp;
    atomic_fetch_add(&c->sum, task);
    c->seen[task]++;
}

static void test_pool(void) {
    tkr_error e;
    for (int nt = 1; nt <= 4; nt++) {
        tkr_pool *p = NULL;
        CHECK(tkr_pool_init(nt, &p, &e) == TKR_OK, "init %d", nt);
        for (int rep = 0; rep < 50; rep++) {
            pool_ctx c;
            memset(&c, 0, sizeof c);
            atomic_init(&c.sum, 0);
            tkr_pool_run(p, 1000, add_task, &c);
            int all_once = 1;
            for (int i = 0; i < 1000; i++) all_once &= c.seen[i] == 1;
            CHECK(atomic_load(&c.sum) == 999 * 1000 / 2 && all_once, "threads %d rep %d", nt, rep);
            if (rep % 10 == 9) { /* past the pool's spin: the workers sleep, the next run wakes them */
                struct timespec ms2 = {0, 2000000};
                nanosleep(&ms2, NULL);
            }
        }
        /* many short loops back to back (the spinning hand-over of a model pass): each must run
         * every task exactly once and return only when all are done */
        int bad = 0;
        for (int rep = 0; rep < 5000; rep++) {
            pool_ctx c;
            atomic_init(&c.sum, 0);
            for (int i = 0; i < nt + 1; i++) c.seen[i] = 0;
            tkr_pool_run(p, nt + 1, add_task, &c);
            for (int i = 0; i < nt + 1; i++) bad += c.seen[i] != 1;
            bad += atomic_load(&c.sum) != nt * (nt + 1) / 2;
        }
        CHECK(bad == 0, "threads %d: %d errors in 5000 short loops", nt, bad);
        tkr_pool_free(p);
    }
}

/* FIPS 180-4 / NIST test vectors, fed whole and in uneven pieces. */
static void test_sha256(void) {
    struct {
        const char *msg;
        int repeat;
        const char *hex;
    } v[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        tkr_sha256 s;
        tkr_sha256_init(&s);
        size_t n = strlen(v[i].msg);
        for (int r = 0; r < v[i].repeat; r++) {
            size_t off = 0, step = 1 + (size_t)r % 7; /* uneven pieces cross block edges */
            while (off < n) {
                size_t k = off + step <= n ? step : n - off;
                tkr_sha256_update(&s, v[i].msg + off, k);
                off += k;
            }
        }
        uint8_t d[32];
        char hex[65];
        tkr_sha256_final(&s, d);
        tkr_sha256_hex(d, hex);
        CHECK(!strcmp(hex, v[i].hex), "vector %zu: %s", i, hex);
    }
}

int main(void) {
    RUN(test_sha256);
    RUN(test_fail_sets_message);
    RUN(test_checked_arith);
    RUN(test_file_view);
    RUN(test_pool);
    return test_summary();
}

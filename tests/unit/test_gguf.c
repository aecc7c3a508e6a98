/* test_gguf.c - the GGUF reader and writer (src/io/gguf.c, gguf_write.c), the llama.cpp name
 * mapping (src/io/weights_gguf.c) and the config from GGUF metadata (src/io/config_gguf.c).
 *
 * Valid files come from the writer (every dtype, every metadata type) and are read back field
 * by field. Malformed files are built byte by byte below (gbuild), with the position of every
 * field recorded, then patched one field at a time: each defect must give its status and a
 * message naming the file. Every prefix of a valid file must fail cleanly (ASan/UBSan builds
 * catch what a crash would hide). */
#include "test.h"
#include "io/config.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/weights.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static char tmp_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Deterministic bytes for tensor k. */
static void fill_bytes(uint8_t *p, size_t n, int k) {
    uint32_t s = 0x9e3779b9u * (uint32_t)(k + 1);
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (uint8_t)(s >> 24);
    }
}

/* Opens image[0..n) from memory; expects `want` and, on failure, a message holding the label
 * and `needle`. Returns 1 when all holds. */
static int expect_open(const uint8_t *img, size_t n, tkr_status want, const char *needle,
                       const char *what) {
    tkr_gguf *g = NULL;
    tkr_error err = {0};
    tkr_status st = tkr_gguf_open_memory(img, n, "case.gguf", NULL, &g, &err);
    int ok = st == want;
    if (st != TKR_OK) {
        ok = ok && g == NULL && strstr(err.message, "case.gguf") == err.message;
        if (needle) ok = ok && strstr(err.message, needle) != NULL;
    }
    if (!ok)
        fprintf(stderr, "  case '%s': status %s (want %s), message: %s\n", what,
                tkr_status_name(st), tkr_status_name(want), st == TKR_OK ? "" : err.message);
    tkr_gguf_close(g);
    return ok;
}


/* ---- hand-built files ---------------------------------------------------------------------- */

/* A byte builder that records where each field went, so a test can patch one field. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} gbuild;

static size_t put(gbuild *g, uint64_t v, int bytes) {
    size_t at = g->n;
    for (int i = 0; i < bytes; i++) g->b[g->n++] = (uint8_t)(v >> (8 * i));
    return at;
}
static size_t put_str(gbuild *g, const char *s) {
    size_t at = put(g, strlen(s), 8);
    memcpy(g->b + g->n, s, strlen(s));
    g->n += strlen(s);
    return at;
}
static void patch(uint8_t *img, size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) img[at + i] = (uint8_t)(v >> (8 * i));
}

/* Field positions of the base file. */
typedef struct {
    size_t magic, version, n_tensors, n_kv;
    size_t k_arch_len, v_arch_len, k_align_type, v_align;
    size_t k_arr, k_arr_elem, k_arr_len;
    size_t k_strs_elem, k_strs_len, k_strs_e1_len;
    size_t k_flag_key, k_flag_type, v_flag;
    size_t t0_name_len, t0_name, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off;
    size_t t1_name, t1_ne0, t1_type, t1_off;
    size_t data_start, end_of_data;   /* end of the last tensor's bytes */
} fields;

/* GGUF v3, 5 kv pairs, tensors t0 (F32 [2, 32] at 0) and t1 (Q8_0 [32] at 256). */
static void build_base(gbuild *g, fields *f) {
    memset(g, 0, sizeof *g);
    f->magic = put(g, 0x46554747u, 4);   /* "GGUF" */
    f->version = put(g, 3, 4);
    f->n_tensors = put(g, 2, 8);
    f->n_kv = put(g, 5, 8);
    f->k_arch_len = put_str(g, "general.architecture");
    put(g, TKR_GGUF_STRING, 4);
    f->v_arch_len = put_str(g, "qwen2vl");
    put_str(g, "general.alignment");
    f->k_align_type = put(g, TKR_GGUF_UINT32, 4);
    f->v_align = put(g, 32, 4);
    put_str(g, "k.arr");
    put(g, TKR_GGUF_ARRAY, 4);
    f->k_arr = f->k_arr_elem = put(g, TKR_GGUF_INT32, 4);
    f->k_arr_len = put(g, 3, 8);
    put(g, 1, 4), put(g, 2, 4), put(g, 3, 4);
    put_str(g, "k.str");
    put(g, TKR_GGUF_ARRAY, 4);
    f->k_strs_elem = put(g, TKR_GGUF_STRING, 4);
    f->k_strs_len = put(g, 2, 8);
    put_str(g, "x");
    f->k_strs_e1_len = put_str(g, "yz");
    f->k_flag_key = put_str(g, "k.flg") + 8;
    f->k_flag_type = put(g, TKR_GGUF_BOOL, 4);
    f->v_flag = put(g, 1, 1);
    f->t0_name_len = put_str(g, "t0");
    f->t0_name = f->t0_name_len + 8;
    f->t0_ndims = put(g, 2, 4);
    f->t0_ne0 = put(g, 32, 8);
    f->t0_ne1 = put(g, 2, 8);
    f->t0_type = put(g, 0, 4);
    f->t0_off = put(g, 0, 8);
    f->t1_name = put_str(g, "t1") + 8;
    put(g, 1, 4);
    f->t1_ne0 = put(g, 32, 8);
    f->t1_type = put(g, 8, 4);
    f->t1_off = put(g, 256, 8);
    while (g->n % 32) put(g, 0, 1);
    f->data_start = g->n;
    for (int i = 0; i < 256 + 34; i++) put(g, (uint64_t)(i * 7), 1);
    f->end_of_data = g->n;
    while (g->n % 32) put(g, 0, 1);
}

static void test_base_file_valid(void) {
    gbuild g;
    fields f;
    build_base(&g, &f);
    tkr_gguf *gg = NULL;
    tkr_error err = {0};
    CHECK(tkr_gguf_open_memory(g.b, g.n, "base.gguf", NULL, &gg, &err) == TKR_OK, "%s",
          err.message);
    if (!gg) return;
    const tkr_tensor *t0 = tkr_gguf_tensor(gg, "t0"), *t1 = tkr_gguf_tensor(gg, "t1");
    CHECK(t0 && t0->ndim == 2 && t0->shape[0] == 2 && t0->shape[1] == 32 && t0->nbytes == 256 &&
          (const uint8_t *)t0->data == g.b + f.data_start, "t0");
    CHECK(t1 && t1->ndim == 1 && t1->shape[0] == 32 && t1->dtype == TKR_DT_Q8_0 &&
          t1->nbytes == 34 && (const uint8_t *)t1->data == g.b + f.data_start + 256, "t1");
    const char *s;
    size_t len;
    CHECK(tkr_gguf_get_str(gg, "general.architecture", &s, &len) && len == 7 &&
          !memcmp(s, "qwen2vl", 7), "arch");
    CHECK(tkr_gguf_arr_str(gg, "k.str", 1, &s, &len) && len == 2 && !memcmp(s, "yz", 2), "k.str");
    tkr_gguf_close(gg);
    /* version 2 has the same layout */
    patch(g.b, f.version, 2, 4);
    CHECK(expect_open(g.b, g.n, TKR_OK, NULL, "version 2"), "v2");
    /* a file without tensors and without padding */
    gbuild e;
    memset(&e, 0, sizeof e);
    put(&e, 0x46554747u, 4), put(&e, 3, 4), put(&e, 0, 8), put(&e, 0, 8);
    CHECK(expect_open(e.b, e.n, TKR_OK, NULL, "empty gguf"), "empty gguf");
}

typedef struct {
    const char *what;
    size_t field_off;   /* offsetof(fields, x) */
    uint64_t value;
    int bytes;
    tkr_status want;
    const char *needle;
} patch_case;

#define F(x) offsetof(fields, x)
#define BIG (1ull << 63)

static void test_malformed_fields(void) {
    static const patch_case cases[] = {
        {"bad magic", F(magic), 0x46554748u, 4, TKR_ERR_FORMAT, "no 'GGUF' magic"},
        {"version 1", F(version), 1, 4, TKR_ERR_UNSUPPORTED, "version 1 is not supported"},
        {"version 4", F(version), 4, 4, TKR_ERR_FORMAT, "version 4"},
        {"version 0", F(version), 0, 4, TKR_ERR_FORMAT, "version 0"},
        {"big-endian", F(version), 0x03000000u, 4, TKR_ERR_UNSUPPORTED, "big-endian"},
        {"tensor count 2^63", F(n_tensors), BIG, 8, TKR_ERR_FORMAT, "claims 9223372036854775808 tensors"},
        {"kv count 2^63", F(n_kv), BIG, 8, TKR_ERR_FORMAT, "claims 9223372036854775808 key/value"},
        {"kv count +1", F(n_kv), 6, 8, TKR_ERR_FORMAT, NULL},
        {"kv count -1", F(n_kv), 4, 8, TKR_ERR_FORMAT, NULL},
        {"tensor count +1", F(n_tensors), 3, 8, TKR_ERR_FORMAT, NULL},
        /* one tensor fewer: t1's info becomes padding and data, t0 still lies in the file: a
         * valid file (ggml reads it the same way) */
        {"tensor count -1", F(n_tensors), 1, 8, TKR_OK, NULL},
        {"key length 2^63", F(k_arch_len), BIG, 8, TKR_ERR_FORMAT, "key 0: key at byte 24 has length"},
        {"key length 0", F(k_arch_len), 0, 8, TKR_ERR_FORMAT, NULL},
        {"string length 2^63", F(v_arch_len), BIG, 8, TKR_ERR_FORMAT, "'general.architecture'"},
        {"string length +1", F(v_arch_len), 8, 8, TKR_ERR_FORMAT, NULL},
        {"array length 2^63", F(k_arr_len), BIG, 8, TKR_ERR_FORMAT, "claims 9223372036854775808 int32"},
        {"array length +1", F(k_arr_len), 4, 8, TKR_ERR_FORMAT, NULL},
        {"string array length 2^63", F(k_strs_len), BIG, 8, TKR_ERR_FORMAT, "'k.str' claims"},
        {"string element length 2^63", F(k_strs_e1_len), BIG, 8, TKR_ERR_FORMAT, "key 'k.str' [1]"},
        {"array of arrays", F(k_arr_elem), TKR_GGUF_ARRAY, 4, TKR_ERR_UNSUPPORTED, "array of arrays"},
        {"array of type 13", F(k_arr_elem), 13, 4, TKR_ERR_FORMAT, "array of unknown type 13"},
        {"value type 13", F(k_flag_type), 13, 4, TKR_ERR_FORMAT, "'k.flg' has unknown value type 13"},
        {"value type 2^32-1", F(k_flag_type), 0xFFFFFFFFu, 4, TKR_ERR_FORMAT, "unknown value type"},
        {"bool 2", F(v_flag), 2, 1, TKR_ERR_FORMAT, "bool value 2"},
        {"duplicate key", F(k_flag_key), 0x7272612e6bull /* "k.arr" */, 5, TKR_ERR_FORMAT,
         "duplicate key 'k.arr'"},
        {"alignment 0", F(v_align), 0, 4, TKR_ERR_FORMAT, "'general.alignment' = 0 is not a power of two"},
        {"alignment 48", F(v_align), 48, 4, TKR_ERR_FORMAT, "= 48 is not a power of two"},
        {"alignment 3", F(v_align), 3, 4, TKR_ERR_FORMAT, "not a power of two"},
        {"alignment 1024", F(v_align), 1024, 4, TKR_ERR_FORMAT, "offset 256 is not a multiple"},
        {"alignment 2^31", F(v_align), 1u << 31, 4, TKR_ERR_FORMAT, NULL},
        {"alignment int32", F(k_align_type), TKR_GGUF_INT32, 4, TKR_ERR_FORMAT, "must be a uint32, not int32"},
        {"tensor name length 2^63", F(t0_name_len), BIG, 8, TKR_ERR_FORMAT, "tensor 0: tensor name"},
        {"tensor name length 0", F(t0_name_len), 0, 8, TKR_ERR_FORMAT, NULL},
        {"tensor name 64 bytes", F(t0_name_len), 64, 8, TKR_ERR_FORMAT,
         "is 64 bytes (ggml allows at most 63)"},
        {"tensor name NUL", F(t0_name), 0, 1, TKR_ERR_FORMAT, "NUL"},
        {"duplicate tensor name", F(t1_name), 0x3074 /* "t0" */, 2, TKR_ERR_FORMAT,
         "duplicate tensor name 't0'"},
        {"n_dims 0", F(t0_ndims), 0, 4, TKR_ERR_FORMAT, "'t0' has 0 dims"},
        {"n_dims 5", F(t0_ndims), 5, 4, TKR_ERR_FORMAT, "'t0' has 5 dims"},
        {"n_dims 2^32-1", F(t0_ndims), 0xFFFFFFFFu, 4, TKR_ERR_FORMAT, "dims"},
        {"dim 0", F(t0_ne1), 0, 8, TKR_ERR_FORMAT, "ne[1] = 0"},
        {"dim 2^63", F(t0_ne1), BIG, 8, TKR_ERR_FORMAT, "ne[1] = 9223372036854775808"},
        {"dims overflow", F(t0_ne1), 1ull << 62, 8, TKR_ERR_FORMAT, "overflows"},
        {"huge dims in file", F(t0_ne1), 1ull << 40, 8, TKR_ERR_FORMAT, "past the end"},
        {"unknown type 4", F(t0_type), 4, 4, TKR_ERR_FORMAT, "unknown ggml type 4"},
        {"unknown type 43", F(t1_type), 43, 4, TKR_ERR_FORMAT, "'t1' has unknown ggml type 43"},
        {"unknown type 2^32-1", F(t1_type), 0xFFFFFFFFu, 4, TKR_ERR_FORMAT, "unknown ggml type"},
        {"Q4_K row 32", F(t1_type), 12, 4, TKR_ERR_FORMAT, "row length 32 is not a multiple of the Q4_K block (256)"},
        {"Q8_0 row 33", F(t1_ne0), 33, 8, TKR_ERR_FORMAT, "not a multiple of the Q8_0 block"},
        {"unsupported Q4_1", F(t1_type), 3, 4, TKR_ERR_UNSUPPORTED, "tensor 't1' has type Q4_1"},
        {"unsupported I32", F(t0_type), 26, 4, TKR_ERR_UNSUPPORTED, "tensor 't0' has type I32"},
        {"unaligned offset", F(t1_off), 272 - 8, 8, TKR_ERR_FORMAT, "offset 264 is not a multiple of the alignment 32"},
        {"overlap", F(t1_off), 224, 8, TKR_ERR_FORMAT, "tensors 't0' and 't1' overlap"},
        {"same offset", F(t1_off), 0, 8, TKR_ERR_FORMAT, "overlap"},
        {"offset past end", F(t1_off), 1ull << 40, 8, TKR_ERR_FORMAT, "'t1': bytes 1099511627776"},
        {"offset at end", F(t1_off), 288, 8, TKR_ERR_FORMAT, "past the end"},
        {"offset overflow", F(t1_off), 0xFFFFFFFFFFFFFFE0ull, 8, TKR_ERR_FORMAT, "overflows"},
    };
    gbuild g;
    fields f;
    build_base(&g, &f);
    uint8_t *img = malloc(g.n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const patch_case *c = &cases[i];
        memcpy(img, g.b, g.n);
        size_t at = *(const size_t *)((const char *)&f + c->field_off);
        patch(img, at, c->value, c->bytes);
        CHECK(expect_open(img, g.n, c->want, c->needle, c->what), "%s", c->what);
    }
    free(img);
}

/* Every prefix of the base file fails (FORMAT, naming the file) until the last tensor's bytes
 * are all there; from then on (trailing padding cut) it loads. */
static void test_truncated_everywhere(void) {
    gbuild g;
    fields f;
    build_base(&g, &f);
    int bad = 0;
    for (size_t n = 0; n <= g.n; n++) {
        uint8_t *img = malloc(n ? n : 1);   /* exact size: ASan sees any read past n */
        memcpy(img, g.b, n);
        tkr_status want = n >= f.end_of_data ? TKR_OK : TKR_ERR_FORMAT;
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", n);
        if (!expect_open(img, n, want, NULL, what)) bad++;
        free(img);
    }
    CHECK(bad == 0, "%d prefixes misbehaved", bad);
}

/* Limits give TKR_ERR_LIMIT (a valid file, but more than the caller allows). */
static void test_limits(void) {
    gbuild g;
    fields f;
    build_base(&g, &f);
    struct {
        tkr_gguf_limits lim;
        const char *needle;
    } cases[5];
    for (int i = 0; i < 5; i++) cases[i].lim = tkr_gguf_default_limits();
    cases[0].lim.max_tensors = 1, cases[0].needle = "2 tensors exceed the limit of 1";
    cases[1].lim.max_kv = 4, cases[1].needle = "5 key/value pairs exceed the limit of 4";
    cases[2].lim.max_string = 10, cases[2].needle = "has length 20 (limit 10)";
    cases[3].lim.max_array = 2, cases[3].needle = "'k.arr' has 3 elements (limit 2)";
    cases[4].lim.max_meta_bytes = 100, cases[4].needle = "exceed 100 bytes";
    for (int i = 0; i < 5; i++) {
        tkr_gguf *gg = NULL;
        tkr_error err = {0};
        tkr_status st = tkr_gguf_open_memory(g.b, g.n, "lim.gguf", &cases[i].lim, &gg, &err);
        CHECK(st == TKR_ERR_LIMIT && strstr(err.message, cases[i].needle) &&
              strstr(err.message, "lim.gguf: ") == err.message, "case %d: %s", i, err.message);
        tkr_gguf_close(gg);
    }
}

/* Fixed-seed random damage to the header region: never a crash, always a clean status. */
static void test_random_damage(void) {
    gbuild g;
    fields f;
    build_base(&g, &f);
    uint8_t *img = malloc(g.n);
    uint32_t s = 12345;
    int ok = 0, failed = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(img, g.b, g.n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            s = s * 1664525u + 1013904223u;
            size_t at = (s >> 8) % f.data_start;
            s = s * 1664525u + 1013904223u;
            img[at] = (it & 1) ? (uint8_t)(s >> 24) : (uint8_t)(img[at] ^ (1u << (s >> 29)));
        }
        tkr_gguf *gg = NULL;
        tkr_error err = {0};
        tkr_status st = tkr_gguf_open_memory(img, g.n, "rnd.gguf", NULL, &gg, &err);
        if (st == TKR_OK) {
            ok++;
            for (size_t i = 0; i < tkr_gguf_tensor_count(gg); i++) {
                const tkr_tensor *t = tkr_gguf_tensor_at(gg, i);
                const uint8_t *p = t->data;
                CHECK(p >= img && p + t->nbytes <= img + g.n, "tensor inside the image");
            }
        } else {
            failed++;
            CHECK(strstr(err.message, "rnd.gguf: ") == err.message && gg == NULL, "message %s",
                  err.message);
        }
        tkr_gguf_close(gg);
    }
    CHECK(ok > 0 && failed > 0, "ok %d failed %d", ok, failed);
    free(img);
}

/* ---- writer round trip --------------------------------------------------------------------- */

static void test_roundtrip_dtypes(void) {
    static const tkr_dtype types[] = {TKR_DT_F32, TKR_DT_F16, TKR_DT_BF16, TKR_DT_Q8_0,
                                      TKR_DT_Q4_0, TKR_DT_Q4_K, TKR_DT_Q6_K};
    static const uint32_t ggml_ids[] = {0, 1, 30, 8, 2, 12, 14};
    enum { NT = sizeof types / sizeof types[0] };
    tkr_gguf_writer *w = NULL;
    tkr_error err = {0};
    CHECK(tkr_gguf_writer_init(&w, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_set_str(w, "general.architecture", "test", &err) == TKR_OK, "%s", err.message);
    char names[NT * 2][32];
    int64_t shapes[NT * 2][4];
    int ndims[NT * 2];
    for (int k = 0; k < NT * 2; k++) {
        tkr_dtype t = types[k % NT];
        int blk = tkr_dtype_block_elems(t);
        snprintf(names[k], sizeof names[k], "t%d.%s", k, tkr_dtype_name(t));
        /* first round 2-D [3, 2 blocks]; second round 1-D..4-D */
        ndims[k] = k < NT ? 2 : 1 + k % 4;
        for (int d = 0; d < 4; d++) shapes[k][d] = 2 + d;
        shapes[k][ndims[k] - 1] = 2 * blk;
        CHECK(tkr_gguf_add_tensor(w, names[k], t, ndims[k], shapes[k], &err) == TKR_OK, "%s",
              err.message);
    }
    const char *path = tmp_path("rt.gguf");
    CHECK(tkr_gguf_writer_begin(w, path, &err) == TKR_OK, "%s", err.message);
    CHECK(!file_exists(path) && file_exists(tmp_path("rt.gguf.tmp")), "tmp file while writing");
    for (int k = 0; k < NT * 2; k++) {
        int64_t numel = 1;
        for (int d = 0; d < ndims[k]; d++) numel *= shapes[k][d];
        size_t nb = tkr_dtype_row_bytes(types[k % NT], numel);
        uint8_t *buf = malloc(nb);
        fill_bytes(buf, nb, k);
        CHECK(tkr_gguf_write_tensor(w, buf, nb, &err) == TKR_OK, "%s", err.message);
        free(buf);
    }
    CHECK(tkr_gguf_writer_finish(w, &err) == TKR_OK, "%s", err.message);
    tkr_gguf_writer_free(w);
    CHECK(file_exists(path) && !file_exists(tmp_path("rt.gguf.tmp")), "renamed");
    for (int mm = 0; mm < 2; mm++) {
        tkr_gguf *g = NULL;
        CHECK(tkr_gguf_open(path, mm, NULL, &g, &err) == TKR_OK, "%s", err.message);
        if (!g) return;
        CHECK(tkr_gguf_version(g) == 3, "version %u", tkr_gguf_version(g));
        CHECK(tkr_gguf_alignment(g) == 32, "alignment");
        CHECK(tkr_gguf_tensor_count(g) == NT * 2, "count %zu", tkr_gguf_tensor_count(g));
        for (int k = 0; k < NT * 2; k++) {
            const tkr_tensor *t = tkr_gguf_tensor(g, names[k]);
            CHECK(t && t == tkr_gguf_tensor_at(g, (size_t)k), "tensor %s", names[k]);
            if (!t) continue;
            CHECK(t->dtype == types[k % NT], "%s dtype %d", names[k], t->dtype);
            CHECK(t->ndim == ndims[k], "%s ndim %d", names[k], t->ndim);
            int64_t numel = 1;
            for (int d = 0; d < ndims[k]; d++) {
                CHECK(t->shape[d] == shapes[k][d], "%s shape[%d]", names[k], d);
                numel *= shapes[k][d];
            }
            size_t nb = tkr_dtype_row_bytes(types[k % NT], numel);
            CHECK(t->nbytes == nb, "%s nbytes %zu want %zu", names[k], t->nbytes, nb);
            CHECK(t->aligned && (uintptr_t)t->data % 32 == 0, "%s alignment", names[k]);
            uint8_t *want = malloc(nb);
            fill_bytes(want, nb, k);
            CHECK(memcmp(want, t->data, nb) == 0, "%s bytes", names[k]);
            free(want);
        }
        CHECK(tkr_gguf_tensor(g, "nope") == NULL, "absent tensor");
        tkr_gguf_close(g);
    }
    for (int i = 0; i < NT; i++) {
        tkr_dtype d;
        CHECK(tkr_gguf_dtype_to_ggml(types[i]) == ggml_ids[i], "ggml id of %s",
              tkr_dtype_name(types[i]));
        CHECK(tkr_gguf_dtype_from_ggml(ggml_ids[i], &d) && d == types[i], "from ggml %u",
              ggml_ids[i]);
    }
    tkr_dtype d;
    CHECK(!tkr_gguf_dtype_from_ggml(13, &d) && !tkr_gguf_dtype_from_ggml(4, &d) &&
          !tkr_gguf_dtype_from_ggml(1000, &d), "unsupported ids");
    CHECK(!strcmp(tkr_gguf_ggml_type_name(13), "Q5_K") && !strcmp(tkr_gguf_ggml_type_name(4), "?"),
          "type names");
}

static void test_roundtrip_kv_types(void) {
    tkr_gguf_writer *w = NULL;
    tkr_error err = {0};
    CHECK(tkr_gguf_writer_init(&w, &err) == TKR_OK, "%s", err.message);
    uint8_t u8 = 250;
    int8_t i8 = -100;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    uint32_t u32 = 4000000000u;
    int32_t i32 = -2000000000;
    float f32 = 1.5f;
    bool b = true;
    uint64_t u64 = 0xFFFFFFFFFFFFFFF0ull, u64s = 123;
    int64_t i64 = INT64_MIN + 5;
    double f64 = -2.25e100;
    tkr_gguf_set_scalar(w, "s.u8", TKR_GGUF_UINT8, &u8, &err);
    tkr_gguf_set_scalar(w, "s.i8", TKR_GGUF_INT8, &i8, &err);
    tkr_gguf_set_scalar(w, "s.u16", TKR_GGUF_UINT16, &u16, &err);
    tkr_gguf_set_scalar(w, "s.i16", TKR_GGUF_INT16, &i16, &err);
    tkr_gguf_set_u32(w, "s.u32", u32, &err);
    tkr_gguf_set_i32(w, "s.i32", i32, &err);
    tkr_gguf_set_f32(w, "s.f32", f32, &err);
    tkr_gguf_set_bool(w, "s.bool", b, &err);
    tkr_gguf_set_str(w, "s.str", "hello \xc3\xa9", &err);
    tkr_gguf_set_scalar(w, "s.u64", TKR_GGUF_UINT64, &u64, &err);
    tkr_gguf_set_scalar(w, "s.u64small", TKR_GGUF_UINT64, &u64s, &err);
    tkr_gguf_set_scalar(w, "s.i64", TKR_GGUF_INT64, &i64, &err);
    tkr_gguf_set_scalar(w, "s.f64", TKR_GGUF_FLOAT64, &f64, &err);
    const uint8_t au8[3] = {1, 2, 255};
    const int8_t ai8[2] = {-1, 7};
    const uint16_t au16[2] = {1, 65535};
    const int16_t ai16[2] = {-5, 5};
    const uint32_t au32[2] = {7, 4000000000u};
    const int32_t ai32[4] = {16, 24, 24, 0};
    const float af32[3] = {0.5f, -0.25f, 3.0f};
    const bool abool[3] = {true, false, true};
    const char *astr[3] = {"a", "", "\xe4\xb8\xad"};
    const uint64_t au64[2] = {1, 1ull << 40};
    const int64_t ai64[2] = {-1, 1ll << 50};
    const double af64[2] = {0.1, -1e300};
    tkr_gguf_set_arr(w, "a.u8", TKR_GGUF_UINT8, au8, 3, &err);
    tkr_gguf_set_arr(w, "a.i8", TKR_GGUF_INT8, ai8, 2, &err);
    tkr_gguf_set_arr(w, "a.u16", TKR_GGUF_UINT16, au16, 2, &err);
    tkr_gguf_set_arr(w, "a.i16", TKR_GGUF_INT16, ai16, 2, &err);
    tkr_gguf_set_arr(w, "a.u32", TKR_GGUF_UINT32, au32, 2, &err);
    tkr_gguf_set_arr_i32(w, "a.i32", ai32, 4, &err);
    tkr_gguf_set_arr_f32(w, "a.f32", af32, 3, &err);
    tkr_gguf_set_arr(w, "a.bool", TKR_GGUF_BOOL, abool, 3, &err);
    tkr_gguf_set_arr_str(w, "a.str", astr, 3, &err);
    tkr_gguf_set_arr(w, "a.u64", TKR_GGUF_UINT64, au64, 2, &err);
    tkr_gguf_set_arr(w, "a.i64", TKR_GGUF_INT64, ai64, 2, &err);
    tkr_gguf_set_arr(w, "a.f64", TKR_GGUF_FLOAT64, af64, 2, &err);
    tkr_gguf_set_arr(w, "a.empty", TKR_GGUF_INT32, NULL, 0, &err);
    const char *path = tmp_path("kv.gguf");
    CHECK(tkr_gguf_writer_begin(w, path, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_writer_finish(w, &err) == TKR_OK, "%s", err.message);
    tkr_gguf_writer_free(w);
    tkr_gguf *g = NULL;
    CHECK(tkr_gguf_open(path, 1, NULL, &g, &err) == TKR_OK, "%s", err.message);
    if (!g) return;
    CHECK(tkr_gguf_kv_count(g) == 26 && tkr_gguf_tensor_count(g) == 0, "counts %zu",
          tkr_gguf_kv_count(g));
    CHECK(!strcmp(tkr_gguf_kv_key(g, 0), "s.u8") && tkr_gguf_kv_type(g, 0) == TKR_GGUF_UINT8 &&
          tkr_gguf_kv_type(g, 13) == TKR_GGUF_ARRAY, "key order and types");
    int64_t v;
    double f;
    bool bb;
    CHECK(tkr_gguf_get_int(g, "s.u8", &v) && v == 250, "u8");
    CHECK(tkr_gguf_get_int(g, "s.i8", &v) && v == -100, "i8");
    CHECK(tkr_gguf_get_int(g, "s.u16", &v) && v == 65000, "u16");
    CHECK(tkr_gguf_get_int(g, "s.i16", &v) && v == -32000, "i16");
    CHECK(tkr_gguf_get_int(g, "s.u32", &v) && v == 4000000000ll, "u32");
    CHECK(tkr_gguf_get_int(g, "s.i32", &v) && v == -2000000000ll, "i32");
    CHECK(tkr_gguf_get_float(g, "s.f32", &f) && f == 1.5, "f32");
    CHECK(!tkr_gguf_get_int(g, "s.f32", &v), "float is not an int");
    CHECK(tkr_gguf_get_bool(g, "s.bool", &bb) && bb, "bool");
    CHECK(tkr_gguf_get_int(g, "s.bool", &v) && v == 1, "bool as int");
    CHECK(!tkr_gguf_get_bool(g, "s.u8", &bb), "u8 is not a bool");
    const char *s;
    size_t len;
    CHECK(tkr_gguf_get_str(g, "s.str", &s, &len) && len == 8 && !memcmp(s, "hello \xc3\xa9", 8),
          "str");
    CHECK(!tkr_gguf_get_int(g, "s.u64", &v), "u64 above INT64_MAX does not fit");
    CHECK(tkr_gguf_get_int(g, "s.u64small", &v) && v == 123, "u64");
    CHECK(tkr_gguf_get_int(g, "s.i64", &v) && v == INT64_MIN + 5, "i64");
    CHECK(tkr_gguf_get_float(g, "s.f64", &f) && f == -2.25e100, "f64");
    CHECK(tkr_gguf_get_float(g, "s.i32", &f) && f == -2e9, "int as float");
    CHECK(!tkr_gguf_get_str(g, "s.u8", &s, &len) && !tkr_gguf_get_int(g, "nope", &v), "misses");
    tkr_gguf_type et;
    CHECK(tkr_gguf_get_arr(g, "a.u8", &et, &len) && et == TKR_GGUF_UINT8 && len == 3, "a.u8");
    CHECK(tkr_gguf_arr_int(g, "a.u8", 2, &v) && v == 255, "a.u8[2]");
    CHECK(!tkr_gguf_arr_int(g, "a.u8", 3, &v), "a.u8[3] out of range");
    CHECK(tkr_gguf_arr_int(g, "a.i8", 0, &v) && v == -1, "a.i8");
    CHECK(tkr_gguf_arr_int(g, "a.u16", 1, &v) && v == 65535, "a.u16");
    CHECK(tkr_gguf_arr_int(g, "a.i16", 0, &v) && v == -5, "a.i16");
    CHECK(tkr_gguf_arr_int(g, "a.u32", 1, &v) && v == 4000000000ll, "a.u32");
    CHECK(tkr_gguf_get_arr(g, "a.i32", &et, &len) && et == TKR_GGUF_INT32 && len == 4, "a.i32");
    CHECK(tkr_gguf_arr_int(g, "a.i32", 1, &v) && v == 24, "a.i32[1]");
    CHECK(tkr_gguf_arr_float(g, "a.f32", 1, &f) && f == -0.25, "a.f32");
    CHECK(tkr_gguf_arr_int(g, "a.bool", 1, &v) && v == 0 && tkr_gguf_arr_int(g, "a.bool", 2, &v) &&
          v == 1, "a.bool");
    CHECK(tkr_gguf_arr_str(g, "a.str", 0, &s, &len) && len == 1 && s[0] == 'a', "a.str[0]");
    CHECK(tkr_gguf_arr_str(g, "a.str", 1, &s, &len) && len == 0, "a.str[1]");
    CHECK(tkr_gguf_arr_str(g, "a.str", 2, &s, &len) && len == 3 && !memcmp(s, "\xe4\xb8\xad", 3),
          "a.str[2]");
    CHECK(!tkr_gguf_arr_str(g, "a.str", 3, &s, &len) && !tkr_gguf_arr_int(g, "a.str", 0, &v),
          "a.str misuse");
    CHECK(tkr_gguf_arr_int(g, "a.u64", 1, &v) && v == 1ll << 40, "a.u64");
    CHECK(tkr_gguf_arr_int(g, "a.i64", 0, &v) && v == -1, "a.i64");
    CHECK(tkr_gguf_arr_float(g, "a.f64", 1, &f) && f == -1e300, "a.f64");
    CHECK(tkr_gguf_get_arr(g, "a.empty", &et, &len) && len == 0, "a.empty");
    CHECK(!tkr_gguf_get_arr(g, "s.u8", &et, &len), "scalar is not an array");
    /* set_copy reproduces a value byte for byte */
    tkr_gguf_writer *w2 = NULL;
    tkr_gguf_writer_init(&w2, &err);
    CHECK(tkr_gguf_set_copy(w2, g, "a.str", &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_set_copy(w2, g, "s.f64", &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_set_copy(w2, g, "nope", &err) != TKR_OK, "copy of an absent key");
    const char *p2 = tmp_path("kv2.gguf");
    CHECK(tkr_gguf_writer_begin(w2, p2, &err) == TKR_OK && tkr_gguf_writer_finish(w2, &err) == TKR_OK,
          "%s", err.message);
    tkr_gguf_writer_free(w2);
    tkr_gguf *g2 = NULL;
    CHECK(tkr_gguf_open(p2, 0, NULL, &g2, &err) == TKR_OK, "%s", err.message);
    if (g2) {
        CHECK(tkr_gguf_arr_str(g2, "a.str", 2, &s, &len) && len == 3, "copied a.str");
        CHECK(tkr_gguf_get_float(g2, "s.f64", &f) && f == -2.25e100, "copied s.f64");
    }
    tkr_gguf_close(g2);
    tkr_gguf_close(g);
}

/* The writer refuses bad declarations and never leaves a partial file at PATH. */
static void test_writer_failures(void) {
    tkr_error err = {0};
    tkr_gguf_writer *w = NULL;
    tkr_gguf_writer_init(&w, &err);
    int64_t bad_row[2] = {2, 33}, ok_shape[2] = {2, 32}, zero[2] = {0, 32};
    CHECK(tkr_gguf_add_tensor(w, "q", TKR_DT_Q8_0, 2, bad_row, &err) == TKR_ERR_INVALID_ARG,
          "row not a multiple of the block");
    CHECK(tkr_gguf_add_tensor(w, "z", TKR_DT_F32, 2, zero, &err) == TKR_ERR_INVALID_ARG, "zero dim");
    CHECK(tkr_gguf_add_tensor(w, "five", TKR_DT_F32, 5, ok_shape, &err) == TKR_ERR_INVALID_ARG,
          "5 dims");
    CHECK(tkr_gguf_add_tensor(w, "a_name_that_is_much_longer_than_the_sixty_three_bytes_ggml_allows",
                              TKR_DT_F32, 2, ok_shape, &err) == TKR_ERR_INVALID_ARG, "long name");
    CHECK(tkr_gguf_add_tensor(w, "x", TKR_DT_F32, 2, ok_shape, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_add_tensor(w, "x", TKR_DT_F32, 2, ok_shape, &err) == TKR_OK, "%s", err.message);
    const char *path = tmp_path("fail.gguf");
    CHECK(tkr_gguf_writer_begin(w, path, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "'x' set twice"), "duplicate tensor: %s", err.message);
    tkr_gguf_writer_free(w);
    CHECK(!file_exists(path) && !file_exists(tmp_path("fail.gguf.tmp")), "nothing written");

    /* an existing PATH survives a failed rewrite */
    FILE *f = fopen(path, "wb");
    fputs("old", f);
    fclose(f);
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_add_tensor(w, "x", TKR_DT_F32, 2, ok_shape, &err);
    tkr_gguf_add_tensor(w, "y", TKR_DT_F32, 2, ok_shape, &err);
    CHECK(tkr_gguf_writer_begin(w, path, &err) == TKR_OK, "%s", err.message);
    float data[64] = {0};
    CHECK(tkr_gguf_write_tensor(w, data, sizeof data - 4, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "'x' needs 256 bytes"), "short tensor: %s", err.message);
    CHECK(tkr_gguf_writer_finish(w, &err) != TKR_OK, "finish after failure");
    tkr_gguf_writer_free(w);
    size_t n = 0;
    uint8_t *old = read_whole(path, &n);
    CHECK(old && n == 3 && !memcmp(old, "old", 3), "old file kept");
    free(old);
    CHECK(!file_exists(tmp_path("fail.gguf.tmp")), "tmp removed");

    /* finish before every tensor was written */
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_add_tensor(w, "x", TKR_DT_F32, 2, ok_shape, &err);
    tkr_gguf_writer_begin(w, path, &err);
    CHECK(tkr_gguf_writer_finish(w, &err) == TKR_ERR_INVALID_ARG && strstr(err.message, "0 of 1"),
          "%s", err.message);
    tkr_gguf_writer_free(w);
    CHECK(!file_exists(tmp_path("fail.gguf.tmp")), "tmp removed");
    /* an unwritable directory */
    tkr_gguf_writer_init(&w, &err);
    CHECK(tkr_gguf_writer_begin(w, "/nonexistent-dir/x.gguf", &err) == TKR_ERR_IO &&
          strstr(err.message, "/nonexistent-dir/x.gguf.tmp"), "%s", err.message);
    tkr_gguf_writer_free(w);
    /* general.alignment other than 32 */
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_set_u32(w, "general.alignment", 64, &err);
    CHECK(tkr_gguf_writer_begin(w, path, &err) == TKR_ERR_INVALID_ARG, "alignment 64");
    tkr_gguf_writer_free(w);
    unlink(path);
}


/* Chunked writes give the same file as whole-tensor writes; a chunk past the size fails. */
static void test_writer_chunks(void) {
    tkr_error err = {0};
    const int64_t shape[2] = {2, 32}, qshape[2] = {3, 64};
    uint8_t a[256], q[3 * 68];
    fill_bytes(a, sizeof a, 1);
    fill_bytes(q, sizeof q, 2);
    const char *p1 = tmp_path("whole.gguf"), *p2 = tmp_path("chunks.gguf");
    for (int mode = 0; mode < 2; mode++) {
        tkr_gguf_writer *w = NULL;
        tkr_gguf_writer_init(&w, &err);
        tkr_gguf_add_tensor(w, "a", TKR_DT_F32, 2, shape, &err);
        tkr_gguf_add_tensor(w, "q", TKR_DT_Q8_0, 2, qshape, &err);
        CHECK(tkr_gguf_writer_begin(w, mode ? p2 : p1, &err) == TKR_OK, "%s", err.message);
        if (mode == 0) {
            CHECK(tkr_gguf_write_tensor(w, a, sizeof a, &err) == TKR_OK, "%s", err.message);
            CHECK(tkr_gguf_write_tensor(w, q, sizeof q, &err) == TKR_OK, "%s", err.message);
        } else {
            CHECK(tkr_gguf_write_chunk(w, a, 100, &err) == TKR_OK &&
                  tkr_gguf_write_chunk(w, a + 100, 0, &err) == TKR_OK &&
                  tkr_gguf_write_chunk(w, a + 100, 156, &err) == TKR_OK, "%s", err.message);
            for (int r = 0; r < 3; r++)   /* one row (2 blocks) at a time */
                CHECK(tkr_gguf_write_chunk(w, q + 68 * r, 68, &err) == TKR_OK, "%s", err.message);
        }
        CHECK(tkr_gguf_writer_finish(w, &err) == TKR_OK, "%s", err.message);
        tkr_gguf_writer_free(w);
    }
    size_t n1 = 0, n2 = 0;
    uint8_t *f1 = read_whole(p1, &n1), *f2 = read_whole(p2, &n2);
    CHECK(f1 && f2 && n1 == n2 && !memcmp(f1, f2, n1), "same bytes (%zu, %zu)", n1, n2);
    free(f1);
    free(f2);
    tkr_gguf_writer *w = NULL;
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_add_tensor(w, "a", TKR_DT_F32, 2, shape, &err);
    tkr_gguf_writer_begin(w, p2, &err);
    CHECK(tkr_gguf_write_chunk(w, a, 200, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_write_chunk(w, a, 100, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "'a' needs 256 bytes, 300 given"), "%s", err.message);
    CHECK(tkr_gguf_writer_finish(w, &err) != TKR_OK, "finish after a failed chunk");
    tkr_gguf_writer_free(w);
    tkr_gguf *g = NULL;
    CHECK(tkr_gguf_open(p2, 1, NULL, &g, &err) == TKR_OK, "the earlier file is intact: %s",
          err.message);
    tkr_gguf_close(g);
    CHECK(!file_exists(tmp_path("chunks.gguf.tmp")), "tmp removed");
}

/* ---- a synthetic llama.cpp-style Qwen2-VL pair ----------------------------------------------- */

/* Text: hidden 64, 4 heads (head_dim 16), 2 kv heads, 2 layers, ffn 128, vocab 100, sections
 * [2, 3, 3]. Vision: E 32, 2 heads, depth 3, MLP 128, patch 14, 3 channels, merger 128 -> 64.
 * Written exactly as llama.cpp's converter names and shapes them. */
enum { D = 64, NH = 4, NKV = 2, NL = 2, FF = 128, VOCAB = 100, E = 32, VH = 2, VD = 3, VF = 128 };

typedef struct {
    int tied;                  /* no output.weight */
    tkr_dtype wtype;           /* 2-D text weights */
    const char *arch;          /* general.architecture of the text file */
    const char *projector;     /* clip.projector_type */
    float mean0;               /* clip.vision.image_mean[0] */
    int proj_dim;              /* clip.vision.projection_dim */
    int drop_sections;         /* no rope.dimension_sections */
    int extra_in_mmproj;       /* also put output_norm.weight in the mmproj (a clash) */
} pair_opts;

static pair_opts default_opts(void) {
    pair_opts o = {0, TKR_DT_F32, "qwen2vl", "qwen2vl_merger", 0.48145466f, D, 0, 0};
    return o;
}

typedef struct {
    const char *name;
    tkr_dtype dt;
    int nd;
    int64_t s[4];
} tdecl;

/* Writes decls (data: fill_bytes with the tensor's index k + salt). */
static int write_file(tkr_gguf_writer *w, const char *path, const tdecl *d, int n, int salt) {
    tkr_error err = {0};
    for (int k = 0; k < n; k++)
        if (tkr_gguf_add_tensor(w, d[k].name, d[k].dt, d[k].nd, d[k].s, &err) != TKR_OK) {
            fprintf(stderr, "  add %s: %s\n", d[k].name, err.message);
            return 0;
        }
    if (tkr_gguf_writer_begin(w, path, &err) != TKR_OK) return 0;
    for (int k = 0; k < n; k++) {
        int64_t numel = 1;
        for (int i = 0; i < d[k].nd; i++) numel *= d[k].s[i];
        size_t nb = tkr_dtype_row_bytes(d[k].dt, numel);
        uint8_t *buf = malloc(nb);
        fill_bytes(buf, nb, k + salt);
        int ok = tkr_gguf_write_tensor(w, buf, nb, &err) == TKR_OK;
        free(buf);
        if (!ok) return 0;
    }
    int ok = tkr_gguf_writer_finish(w, &err) == TKR_OK;
    if (!ok) fprintf(stderr, "  finish: %s\n", err.message);
    return ok;
}

static char decl_names[256][64];

static int write_pair(const char *model_path, const char *mmproj_path, const pair_opts *o) {
    tdecl d[128];
    int n = 0, nn = 0;
#define ADD(dt_, nd_, ...)                                                                          \
    do {                                                                                           \
        tdecl x = {decl_names[nn - 1], dt_, nd_, {__VA_ARGS__}};                                   \
        d[n++] = x;                                                                                \
    } while (0)
#define NAME(...) snprintf(decl_names[nn++], 64, __VA_ARGS__)
    NAME("token_embd.weight"); ADD(o->wtype, 2, VOCAB, D);
    for (int l = 0; l < NL; l++) {
        NAME("blk.%d.attn_norm.weight", l); ADD(TKR_DT_F32, 1, D);
        NAME("blk.%d.attn_q.weight", l); ADD(o->wtype, 2, D, D);
        NAME("blk.%d.attn_q.bias", l); ADD(TKR_DT_F32, 1, D);
        NAME("blk.%d.attn_k.weight", l); ADD(o->wtype, 2, NKV * 16, D);
        NAME("blk.%d.attn_k.bias", l); ADD(TKR_DT_F32, 1, NKV * 16);
        NAME("blk.%d.attn_v.weight", l); ADD(o->wtype, 2, NKV * 16, D);
        NAME("blk.%d.attn_v.bias", l); ADD(TKR_DT_F32, 1, NKV * 16);
        NAME("blk.%d.attn_output.weight", l); ADD(o->wtype, 2, D, D);
        NAME("blk.%d.ffn_norm.weight", l); ADD(TKR_DT_F32, 1, D);
        NAME("blk.%d.ffn_gate.weight", l); ADD(o->wtype, 2, FF, D);
        NAME("blk.%d.ffn_up.weight", l); ADD(o->wtype, 2, FF, D);
        NAME("blk.%d.ffn_down.weight", l); ADD(o->wtype, 2, D, FF);
    }
    NAME("output_norm.weight"); ADD(TKR_DT_F32, 1, D);
    if (!o->tied) {
        NAME("output.weight"); ADD(o->wtype, 2, VOCAB, D);
    }
    NAME("rope_freqs.weight"); ADD(TKR_DT_F32, 1, 8);   /* unknown here: kept as is */
    tkr_error err = {0};
    tkr_gguf_writer *w = NULL;
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_set_str(w, "general.architecture", o->arch, &err);
    tkr_gguf_set_u32(w, "general.file_type", 0, &err);
    tkr_gguf_set_u32(w, "qwen2vl.context_length", 32768, &err);
    tkr_gguf_set_u32(w, "qwen2vl.embedding_length", D, &err);
    tkr_gguf_set_u32(w, "qwen2vl.block_count", NL, &err);
    tkr_gguf_set_u32(w, "qwen2vl.feed_forward_length", FF, &err);
    tkr_gguf_set_u32(w, "qwen2vl.attention.head_count", NH, &err);
    tkr_gguf_set_u32(w, "qwen2vl.attention.head_count_kv", NKV, &err);
    tkr_gguf_set_f32(w, "qwen2vl.rope.freq_base", 1000000.0f, &err);
    tkr_gguf_set_f32(w, "qwen2vl.attention.layer_norm_rms_epsilon", 1e-6f, &err);
    const int32_t sections[4] = {2, 3, 3, 0};
    if (!o->drop_sections) tkr_gguf_set_arr_i32(w, "qwen2vl.rope.dimension_sections", sections, 4, &err);
    tkr_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", &err);
    tkr_gguf_set_str(w, "tokenizer.ggml.pre", "qwen2", &err);
    int ok = write_file(w, model_path, d, n, 0);
    tkr_gguf_writer_free(w);
    if (!ok || !mmproj_path) return ok;

    n = 0;
    NAME("v.patch_embd.weight"); ADD(TKR_DT_F16, 4, E, 3, 14, 14);
    NAME("v.patch_embd.weight.1"); ADD(TKR_DT_F16, 4, E, 3, 14, 14);
    for (int b = 0; b < VD; b++) {
        const char *pieces[] = {"attn_q", "attn_k", "attn_v", "attn_out"};
        for (int k = 0; k < 4; k++) {
            NAME("v.blk.%d.%s.weight", b, pieces[k]); ADD(TKR_DT_F16, 2, E, E);
            NAME("v.blk.%d.%s.bias", b, pieces[k]); ADD(TKR_DT_F32, 1, E);
        }
        NAME("v.blk.%d.ln1.weight", b); ADD(TKR_DT_F32, 1, E);
        NAME("v.blk.%d.ln1.bias", b); ADD(TKR_DT_F32, 1, E);
        NAME("v.blk.%d.ln2.weight", b); ADD(TKR_DT_F32, 1, E);
        NAME("v.blk.%d.ln2.bias", b); ADD(TKR_DT_F32, 1, E);
        NAME("v.blk.%d.ffn_up.weight", b); ADD(TKR_DT_F16, 2, VF, E);
        NAME("v.blk.%d.ffn_up.bias", b); ADD(TKR_DT_F32, 1, VF);
        NAME("v.blk.%d.ffn_down.weight", b); ADD(TKR_DT_F16, 2, E, VF);
        NAME("v.blk.%d.ffn_down.bias", b); ADD(TKR_DT_F32, 1, E);
    }
    NAME("v.post_ln.weight"); ADD(TKR_DT_F32, 1, E);
    NAME("v.post_ln.bias"); ADD(TKR_DT_F32, 1, E);
    NAME("mm.0.weight"); ADD(TKR_DT_F16, 2, 4 * E, 4 * E);
    NAME("mm.0.bias"); ADD(TKR_DT_F32, 1, 4 * E);
    NAME("mm.2.weight"); ADD(TKR_DT_F16, 2, D, 4 * E);
    NAME("mm.2.bias"); ADD(TKR_DT_F32, 1, D);
    if (o->extra_in_mmproj) {
        NAME("output_norm.weight"); ADD(TKR_DT_F32, 1, D);
    }
#undef ADD
#undef NAME
    tkr_gguf_writer_init(&w, &err);
    tkr_gguf_set_str(w, "general.architecture", "clip", &err);
    tkr_gguf_set_bool(w, "clip.has_vision_encoder", true, &err);
    tkr_gguf_set_str(w, "clip.projector_type", o->projector, &err);
    tkr_gguf_set_u32(w, "clip.vision.projection_dim", (uint32_t)o->proj_dim, &err);
    tkr_gguf_set_u32(w, "clip.vision.image_size", 560, &err);
    tkr_gguf_set_u32(w, "clip.vision.patch_size", 14, &err);
    tkr_gguf_set_u32(w, "clip.vision.embedding_length", E, &err);
    tkr_gguf_set_u32(w, "clip.vision.feed_forward_length", D, &err);   /* as the converter: wrong */
    tkr_gguf_set_u32(w, "clip.vision.block_count", VD, &err);
    tkr_gguf_set_u32(w, "clip.vision.attention.head_count", VH, &err);
    tkr_gguf_set_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f, &err);
    const float mean[3] = {o->mean0, 0.4578275f, 0.40821073f};
    const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    tkr_gguf_set_arr_f32(w, "clip.vision.image_mean", mean, 3, &err);
    tkr_gguf_set_arr_f32(w, "clip.vision.image_std", stdv, 3, &err);
    ok = write_file(w, mmproj_path, d, n, 1000);
    tkr_gguf_writer_free(w);
    return ok;
}

/* The view registered under hf is the GGUF tensor gguf_name of file g, in place. */
static int same_view(const tkr_tensor *t, const tkr_gguf *g, const char *gguf_name, const char *hf) {
    const tkr_tensor *src = g ? tkr_gguf_tensor(g, gguf_name) : NULL;
    int ok = t && src && t->data == src->data && t->nbytes == src->nbytes &&
             t->dtype == src->dtype && t->ndim == src->ndim && !strcmp(t->name, hf) &&
             !memcmp(t->shape, src->shape, sizeof t->shape);
    if (!ok) fprintf(stderr, "  %s -> %s: not the same view\n", gguf_name, hf);
    return ok;
}

static void test_name_mapping(void) {
    char buf[128];
    static const char *const cases[][2] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output.weight", "lm_head.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.27.attn_q.bias", "model.layers.27.self_attn.q_proj.bias"},
        {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"},
        {"blk.10.ffn_down.weight", "model.layers.10.mlp.down_proj.weight"},
        {"v.blk.31.attn_k.weight", "visual.blocks.31.attn.k.weight"},
        {"v.blk.0.attn_out.bias", "visual.blocks.0.attn.proj.bias"},
        {"v.blk.0.attn_qkv.weight", "visual.blocks.0.attn.qkv.weight"},
        {"v.blk.2.ln2.bias", "visual.blocks.2.norm2.bias"},
        {"v.blk.2.ffn_up.weight", "visual.blocks.2.mlp.fc1.weight"},
        {"v.post_ln.bias", "visual.merger.ln_q.bias"},
        {"mm.0.weight", "visual.merger.mlp.0.weight"},
        {"mm.2.bias", "visual.merger.mlp.2.bias"},
        {"v.patch_embd.weight", "visual.patch_embed.proj.weight.t0"},
        {"v.patch_embd.weight.1", "visual.patch_embed.proj.weight.t1"},
        {"v.patch_embd.bias", "visual.patch_embed.proj.bias"},
        /* not the converter's names: kept */
        {"rope_freqs.weight", "rope_freqs.weight"},
        {"blk.01.attn_q.weight", "blk.01.attn_q.weight"},
        {"blk.x.attn_q.weight", "blk.x.attn_q.weight"},
        {"blk.0.attn_qq.weight", "blk.0.attn_qq.weight"},
        {"blk.0.attn_q.scale", "blk.0.attn_q.scale"},
        {"blk.0..weight", "blk.0..weight"},
        {"mm.1.weight", "mm.1.weight"},
        {".weight", ".weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tkr_weights_gguf_canonical(cases[i][0], buf, sizeof buf);
        CHECK(!strcmp(buf, cases[i][1]), "%s -> %s (want %s)", cases[i][0], buf, cases[i][1]);
    }
}

static void test_weights_from_gguf_pair(void) {
    const char *mp = tmp_path("qwen2vl.gguf"), *vp = tmp_path("mmproj-qwen2vl.gguf");
    pair_opts o = default_opts();
    o.wtype = TKR_DT_Q8_0;
    CHECK(write_pair(mp, vp, &o), "write pair");
    tkr_weights *w = NULL;
    tkr_error err = {0};
    CHECK(tkr_weights_open_gguf(mp, vp, 1, &w, &err) == TKR_OK, "%s", err.message);
    if (!w) return;
    const tkr_gguf *gm = tkr_weights_gguf_model(w), *gv = tkr_weights_gguf_mmproj(w);
    CHECK(gm && gv && !strcmp(tkr_gguf_path(gm), mp) && !strcmp(tkr_gguf_path(gv), vp), "handles");
    CHECK(tkr_weights_count(w) == tkr_gguf_tensor_count(gm) + tkr_gguf_tensor_count(gv), "count");
    CHECK(tkr_weights_shard_count(w) == 0, "no safetensors shards");
    CHECK(same_view(tkr_weights_text(w, "embed_tokens.weight"), gm, "token_embd.weight",
                    "model.embed_tokens.weight"), "embed");
    CHECK(same_view(tkr_weights_text(w, "lm_head.weight"), gm, "output.weight", "lm_head.weight"),
          "lm_head");
    CHECK(same_view(tkr_weights_text(w, "norm.weight"), gm, "output_norm.weight",
                    "model.norm.weight"), "norm");
    CHECK(same_view(tkr_weights_text(w, "layers.1.self_attn.k_proj.bias"), gm,
                    "blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"), "k bias");
    CHECK(same_view(tkr_weights_text(w, "layers.1.mlp.gate_proj.weight"), gm,
                    "blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight"), "gate");
    CHECK(tkr_weights_text(w, "layers.1.mlp.gate_proj.weight")->dtype == TKR_DT_Q8_0, "Q8_0 kept");
    CHECK(same_view(tkr_weights_vision(w, "blocks.2.attn.v.bias"), gv, "v.blk.2.attn_v.bias",
                    "visual.blocks.2.attn.v.bias"), "v bias");
    CHECK(same_view(tkr_weights_vision(w, "blocks.0.mlp.fc2.weight"), gv,
                    "v.blk.0.ffn_down.weight", "visual.blocks.0.mlp.fc2.weight"), "fc2");
    CHECK(same_view(tkr_weights_vision(w, "merger.mlp.2.weight"), gv, "mm.2.weight",
                    "visual.merger.mlp.2.weight"), "mm.2");
    CHECK(same_view(tkr_weights_vision(w, "merger.ln_q.bias"), gv, "v.post_ln.bias",
                    "visual.merger.ln_q.bias"), "ln_q");
    CHECK(same_view(tkr_weights_vision(w, "patch_embed.proj.weight.t0"), gv, "v.patch_embd.weight",
                    "visual.patch_embed.proj.weight.t0"), "patch t0");
    CHECK(same_view(tkr_weights_vision(w, "patch_embed.proj.weight.t1"), gv,
                    "v.patch_embd.weight.1", "visual.patch_embed.proj.weight.t1"), "patch t1");
    CHECK(tkr_weights_vision(w, "patch_embed.proj.weight") == NULL &&
          tkr_weights_vision(w, "blocks.0.attn.qkv.weight") == NULL, "no fused tensors invented");
    CHECK(same_view(tkr_weights_get(w, "rope_freqs.weight"), gm, "rope_freqs.weight",
                    "rope_freqs.weight"), "unknown kept");
    const tkr_tensor *t = NULL;
    const int64_t fc1[2] = {VF, E}, bad[2] = {VF, E + 1};
    CHECK(tkr_weights_require_vision(w, "blocks.1.mlp.fc1.weight", 2, fc1, &t, &err) == TKR_OK &&
          t, "%s", err.message);
    CHECK(tkr_weights_require_vision(w, "blocks.1.mlp.fc1.weight", 2, bad, &t, &err) ==
                  TKR_ERR_FORMAT && strstr(err.message, vp) == err.message,
          "shape error names the mmproj: %s", err.message);
    CHECK(tkr_weights_require_vision(w, "blocks.9.norm1.weight", 1, fc1, &t, &err) ==
                  TKR_ERR_FORMAT && strstr(err.message, vp) == err.message,
          "missing vision tensor names the mmproj: %s", err.message);
    tkr_weights_free(w);

    /* text only, tied embeddings, no mmproj */
    o = default_opts();
    o.tied = 1;
    CHECK(write_pair(mp, NULL, &o), "write text");
    CHECK(tkr_weights_open_gguf(mp, NULL, 0, &w, &err) == TKR_OK, "%s", err.message);
    if (w) {
        CHECK(tkr_weights_gguf_mmproj(w) == NULL && tkr_weights_text(w, "lm_head.weight") == NULL &&
              tkr_weights_vision(w, "merger.ln_q.weight") == NULL, "text only");
        tkr_weights_free(w);
    }
    /* a canonical name in both files */
    o = default_opts();
    o.extra_in_mmproj = 1;
    CHECK(write_pair(mp, vp, &o), "write clash");
    CHECK(tkr_weights_open_gguf(mp, vp, 1, &w, &err) == TKR_ERR_FORMAT && !w &&
          strstr(err.message, "'model.norm.weight' is in two"), "%s", err.message);
    /* a damaged mmproj fails the open, naming it */
    FILE *f = fopen(vp, "r+b");
    fseek(f, 8, SEEK_SET);
    fputc(0xff, f);   /* tensor count */
    fclose(f);
    CHECK(tkr_weights_open_gguf(mp, vp, 1, &w, &err) == TKR_ERR_FORMAT && !w &&
          strstr(err.message, vp) == err.message, "%s", err.message);
    CHECK(tkr_weights_open_gguf(tmp_path("none.gguf"), NULL, 1, &w, &err) == TKR_ERR_IO && !w,
          "%s", err.message);
    /* a safetensors-backed tkr_weights has no GGUF handles: checked by the model tests */
}

static void test_config_from_gguf(void) {
    const char *mp = tmp_path("cfg.gguf"), *vp = tmp_path("mmproj-cfg.gguf");
    pair_opts o = default_opts();
    CHECK(write_pair(mp, vp, &o), "write pair");
    tkr_gguf *gm = NULL, *gv = NULL;
    tkr_error err = {0};
    CHECK(tkr_gguf_open(mp, 1, NULL, &gm, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_gguf_open(vp, 1, NULL, &gv, &err) == TKR_OK, "%s", err.message);
    if (!gm || !gv) return;
    tkr_model_config c;
    CHECK(tkr_config_from_gguf(gm, gv, &c, &err) == TKR_OK, "%s", err.message);
    CHECK(!strcmp(c.model_type, "qwen2_vl") && c.has_vision, "type");
    CHECK(c.text.hidden_size == D && c.text.num_layers == NL && c.text.num_heads == NH &&
          c.text.num_kv_heads == NKV && c.text.head_dim == 16 && c.text.intermediate_size == FF &&
          c.text.vocab_size == VOCAB && c.text.max_position_embeddings == 32768, "text dims");
    /* float32 metadata comes back as the decimal config.json had, bit for bit */
    CHECK(c.text.rms_norm_eps == 1e-6 && c.text.rope_theta == 1e6, "eps %.17g theta %.17g",
          c.text.rms_norm_eps, c.text.rope_theta);
    CHECK(c.text.mrope_section[0] == 2 && c.text.mrope_section[1] == 3 &&
          c.text.mrope_section[2] == 3, "sections");
    CHECK(!c.text.tie_word_embeddings && !strcmp(c.text.hidden_act, "silu"), "tie/act");
    CHECK(c.vision.depth == VD && c.vision.embed_dim == E && c.vision.num_heads == VH &&
          c.vision.head_dim == 16 && c.vision.mlp_hidden == VF && c.vision.out_hidden_size == D &&
          c.vision.in_channels == 3 && c.vision.patch_size == 14 &&
          c.vision.temporal_patch_size == 2 && c.vision.spatial_merge_size == 2 &&
          !strcmp(c.vision.hidden_act, "quick_gelu"), "vision (MLP width %d from ffn_up)",
          c.vision.mlp_hidden);
    CHECK(c.image_token_id == 151655 && c.vision_start_token_id == 151652 &&
          c.vision_end_token_id == 151653 && c.video_token_id == 151656, "ids");
    CHECK(tkr_config_from_gguf(gm, NULL, &c, &err) == TKR_OK && !c.has_vision &&
          c.vision.depth == 0, "text only");
    CHECK(tkr_config_from_gguf(gv, NULL, &c, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "mmproj"), "mmproj as model: %s", err.message);
    CHECK(tkr_config_from_gguf(gm, gm, &c, &err) == TKR_ERR_INVALID_ARG, "model as mmproj");
    tkr_gguf_close(gm);
    tkr_gguf_close(gv);

    struct {
        pair_opts o;
        tkr_status want;
        const char *needle;
        int in_mmproj;
    } bad[5];
    for (int i = 0; i < 5; i++) bad[i].o = default_opts(), bad[i].in_mmproj = 1;
    bad[0].o.arch = "llama", bad[0].want = TKR_ERR_UNSUPPORTED, bad[0].needle = "'llama'",
    bad[0].in_mmproj = 0;
    bad[1].o.projector = "qwen2.5vl_merger", bad[1].want = TKR_ERR_UNSUPPORTED,
    bad[1].needle = "projector 'qwen2.5vl_merger'";
    bad[2].o.mean0 = 0.5f, bad[2].want = TKR_ERR_UNSUPPORTED, bad[2].needle = "image_mean";
    bad[3].o.proj_dim = 128, bad[3].want = TKR_ERR_FORMAT, bad[3].needle = "projection_dim 128";
    bad[4].o.drop_sections = 1, bad[4].want = TKR_ERR_FORMAT,
    bad[4].needle = "'qwen2vl.rope.dimension_sections'", bad[4].in_mmproj = 0;
    for (int i = 0; i < 5; i++) {
        CHECK(write_pair(mp, vp, &bad[i].o), "write %d", i);
        tkr_gguf_open(mp, 1, NULL, &gm, &err);
        tkr_gguf_open(vp, 1, NULL, &gv, &err);
        tkr_status st = tkr_config_from_gguf(gm, gv, &c, &err);
        CHECK(st == bad[i].want && strstr(err.message, bad[i].needle) &&
              strstr(err.message, bad[i].in_mmproj ? vp : mp) == err.message,
              "case %d: %s", i, err.message);
        tkr_gguf_close(gm);
        tkr_gguf_close(gv);
    }
}

/* The fuzzing seeds and regression inputs (tests/fuzz/corpus/gguf, run from the repo root):
 * the named seeds load (and the qwen2vl pair gives a config); every other file there (crashes
 * the fuzzer found, now fixed) must open or fail cleanly, naming the file. */
static void test_fuzz_corpus(void) {
    const char *dir = "tests/fuzz/corpus/gguf";
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s (run from the repo root)", dir);
    if (!d) return;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = 0;
        uint8_t *img = read_whole(path, &len);
        CHECK(img != NULL, "read %s", path);
        if (!img) continue;
        tkr_gguf *g = NULL;
        tkr_error err = {0};
        tkr_status st = tkr_gguf_open_memory(img, len, path, NULL, &g, &err);
        int seed = strstr(de->d_name, ".gguf") != NULL;
        CHECK(!seed || st == TKR_OK, "seed %s: %s", path, err.message);
        CHECK(st == TKR_OK || strstr(err.message, path) == err.message, "%s: %s", path, err.message);
        tkr_gguf_close(g);
        free(img);
        n++;
    }
    closedir(d);
    CHECK(n >= 4, "only %d corpus files", n);
    tkr_gguf *gm = NULL, *gv = NULL;
    tkr_error err = {0};
    tkr_model_config c;
    CHECK(tkr_gguf_open("tests/fuzz/corpus/gguf/qwen2vl_text.gguf", 1, NULL, &gm, &err) == TKR_OK &&
          tkr_gguf_open("tests/fuzz/corpus/gguf/qwen2vl_mmproj.gguf", 1, NULL, &gv, &err) == TKR_OK,
          "%s", err.message);
    if (gm && gv) {
        CHECK(tkr_config_from_gguf(gm, gv, &c, &err) == TKR_OK, "%s", err.message);
        CHECK(c.text.hidden_size == 32 && c.text.vocab_size == 4 && c.vision.embed_dim == 16 &&
              c.vision.mlp_hidden == 32 && c.vision.patch_size == 2, "seed config");
    }
    tkr_gguf_close(gm);
    tkr_gguf_close(gv);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/tkr_test_gguf_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        printf("FAIL mkdtemp\n");
        return 1;
    }
    RUN(test_base_file_valid);
    RUN(test_malformed_fields);
    RUN(test_truncated_everywhere);
    RUN(test_limits);
    RUN(test_random_damage);
    RUN(test_roundtrip_dtypes);
    RUN(test_roundtrip_kv_types);
    RUN(test_writer_failures);
    RUN(test_writer_chunks);
    RUN(test_name_mapping);
    RUN(test_weights_from_gguf_pair);
    RUN(test_config_from_gguf);
    RUN(test_fuzz_corpus);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp_dir);
    return test_summary();
}

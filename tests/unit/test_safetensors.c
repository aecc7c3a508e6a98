/* test_safetensors.c - safetensors files and model directories (src/io/safetensors.c, weights.c).
 *
 * A small writer below produces valid files (F32/F16/BF16, 0-D to 5-D, zero-size tensors,
 * __metadata__, both name layouts, sharded with and without an index); the tests load them and
 * check every tensor's shape, dtype, data pointer and values. Then every kind of damage, each
 * with its expected status and a message naming the file and the problem, and a fixed-seed
 * byte-flipping run that must never crash (ASan/UBSan builds catch what a crash would hide). */
#include "test.h"
#include "io/safetensors.h"
#include "io/weights.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* ---- writer -------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *dtype;      /* "F32", "F16", "BF16", or any other for unsupported-type tests */
    int ndim;
    int64_t shape[6];
} tspec;

static size_t dtype_bytes(const char *dt) {
    if (!strcmp(dt, "F32") || !strcmp(dt, "I32")) return 4;
    if (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) return 2;
    if (!strcmp(dt, "I64") || !strcmp(dt, "F64")) return 8;
    return 1;   /* U8, I8, F8_* */
}

static size_t spec_numel(const tspec *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* The value of element i of tensor k: small integers, exact in F16 and BF16 too. */
static float elem_value(int k, size_t i) { return (float)((k * 13 + (int)(i % 251)) % 251) - 100.0f; }

static uint16_t f32_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);   /* exact for the values above */
}

static uint16_t f32_to_f16(float f) {   /* normal numbers and zero only: enough for elem_value */
    uint32_t b;
    memcpy(&b, &f, 4);
    uint16_t sign = (uint16_t)(b >> 16 & 0x8000);
    if ((b & 0x7fffffff) == 0) return sign;
    int e = (int)(b >> 23 & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((b >> 13) & 0x3ff));
}

static float load_elem(const tkr_tensor *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data;
    if (t->dtype == TKR_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if (t->dtype == TKR_DT_BF16) {
        uint32_t b = (uint32_t)h << 16;
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    if ((h & 0x7fff) == 0) return (h & 0x8000) ? -0.0f : 0.0f;
    int e = (h >> 10 & 0x1f) - 15 + 127;
    uint32_t b = (uint32_t)(h & 0x8000) << 16 | (uint32_t)e << 23 | (uint32_t)(h & 0x3ff) << 13;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

__attribute__((format(printf, 2, 3)))
static void sb_add(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->len + (size_t)n + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
    }
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* [u64 N][header padded with spaces to a multiple of align][data]. */
static uint8_t *assemble(const char *header, size_t hlen, size_t align, const uint8_t *data,
                         size_t dlen, size_t *out_len) {
    size_t padded = hlen;
    while ((8 + padded) % align) padded++;
    uint8_t *img = malloc(8 + padded + dlen + 1);
    put_le64(img, padded);
    memcpy(img + 8, header, hlen);
    memset(img + 8 + hlen, ' ', padded - hlen);
    if (dlen) memcpy(img + 8 + padded, data, dlen);
    *out_len = 8 + padded + dlen;
    return img;
}

/* A valid file image of the given tensors, stored contiguously in spec order. meta is the JSON
 * text of a __metadata__ object or NULL. Tensor k's elements are elem_value(k + seed, i). */
static uint8_t *build_image(const tspec *ts, int n, const char *meta, size_t align, int seed,
                            size_t *out_len) {
    sbuf h = {0};
    sb_add(&h, "{");
    if (meta) sb_add(&h, "\"__metadata__\":%s", meta);
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        size_t nb = spec_numel(&ts[k]) * dtype_bytes(ts[k].dtype);
        sb_add(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", (meta || k) ? "," : "", ts[k].name,
               ts[k].dtype);
        for (int d = 0; d < ts[k].ndim; d++) sb_add(&h, "%s%lld", d ? "," : "", (long long)ts[k].shape[d]);
        sb_add(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    sb_add(&h, "}");
    uint8_t *data = malloc(off + 1);
    size_t pos = 0;
    for (int k = 0; k < n; k++) {
        size_t ne = spec_numel(&ts[k]);
        for (size_t i = 0; i < ne; i++) {
            float v = elem_value(k + seed, i);
            if (!strcmp(ts[k].dtype, "F32")) {
                memcpy(data + pos, &v, 4);
                pos += 4;
            } else if (!strcmp(ts[k].dtype, "BF16") || !strcmp(ts[k].dtype, "F16")) {
                uint16_t x = ts[k].dtype[0] == 'B' ? f32_to_bf16(v) : f32_to_f16(v);
                memcpy(data + pos, &x, 2);
                pos += 2;
            } else {
                size_t b = dtype_bytes(ts[k].dtype);
                memset(data + pos, (int)i, b);
                pos += b;
            }
        }
    }
    uint8_t *img = assemble(h.buf, h.len, align, data, off, out_len);
    free(h.buf);
    free(data);
    return img;
}

/* A file image with a given header text and dlen zero bytes of data (for corrupt headers). */
static uint8_t *raw_image(const char *header, size_t dlen, size_t *out_len) {
    uint8_t *zeros = calloc(1, dlen + 1);
    uint8_t *img = assemble(header, strlen(header), 1, zeros, dlen, out_len);
    free(zeros);
    return img;
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static char tmp_root[64];

/* A fresh empty directory under the test's temp root. */
static const char *fresh_dir(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    mkdir(path, 0700);
    return path;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int write_in(const char *dir, const char *name, const void *data, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return write_file(p, data, len);
}

/* Checks a loaded tensor against its spec: name, dtype, shape, size and every value. */
static void check_tensor(const tkr_tensor *t, const tspec *s, int k, int seed) {
    CHECK(t != NULL, "tensor '%s' found", s->name);
    if (!t) return;
    CHECK(!strcmp(t->name, s->name), "name '%s' vs '%s'", t->name, s->name);
    CHECK(!strcmp(tkr_dtype_name(t->dtype), s->dtype), "%s dtype %s", s->name,
          tkr_dtype_name(t->dtype));
    CHECK(t->ndim == s->ndim, "%s ndim %d", s->name, t->ndim);
    for (int d = 0; d < s->ndim && d < t->ndim; d++)
        CHECK(t->shape[d] == s->shape[d], "%s dim %d: %lld", s->name, d, (long long)t->shape[d]);
    size_t ne = spec_numel(s);
    CHECK(t->nbytes == ne * dtype_bytes(s->dtype), "%s nbytes %zu", s->name, t->nbytes);
    CHECK(tkr_tensor_numel(t) == ne, "%s numel", s->name);
    int bad = 0;
    for (size_t i = 0; i < ne; i++) bad += load_elem(t, i) != elem_value(k + seed, i);
    CHECK(bad == 0, "%s: %d of %zu values differ", s->name, bad, ne);
}

/* ---- single files --------------------------------------------------------------------------- */

static const tspec basic[] = {
    {"model.embed_tokens.weight", "BF16", 2, {16, 8}},
    {"model.layers.0.mlp.up_proj.weight", "F16", 2, {12, 8}},
    {"model.norm.weight", "F32", 1, {8}},
    {"visual.patch_embed.proj.weight", "BF16", 5, {4, 3, 2, 2, 2}},
    {"scalar", "F32", 0, {0}},
    {"empty", "F32", 2, {0, 5}},
    {"visual.blocks.0.attn.qkv.bias", "F32", 1, {3}},
};
#define N_BASIC (int)(sizeof basic / sizeof basic[0])

static void test_valid_file_loads(void) {
    size_t len;
    uint8_t *img = build_image(basic, N_BASIC, "{\"format\":\"pt\",\"note\":\"\\u00e9t\\u00e9\"}", 8,
                               0, &len);
    const char *dir = fresh_dir("single");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(write_file(path, img, len), "write %s", path);
    for (int mm = 0; mm < 3; mm++) {
        tkr_safetensors *st = NULL;
        tkr_error e = {0};
        tkr_status rc = mm < 2 ? tkr_safetensors_open(path, mm, &st, &e)
                               : tkr_safetensors_from_memory(img, len, "mem", NULL, &st, &e);
        CHECK(rc == TKR_OK, "open (mode %d): %s", mm, e.message);
        if (rc != TKR_OK) continue;
        CHECK(tkr_safetensors_count(st) == N_BASIC, "count %zu", tkr_safetensors_count(st));
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
        CHECK((8 + hlen) % 8 == 0, "padded header");
        size_t off = 0;
        for (int k = 0; k < N_BASIC; k++) {
            const tkr_tensor *t = tkr_safetensors_find(st, basic[k].name);
            check_tensor(t, &basic[k], k, 0);
            /* Listed in offset order, which is spec order for the writer. */
            CHECK(tkr_safetensors_at(st, (size_t)k) == t, "at(%d) is %s", k, basic[k].name);
            if (mm == 2 && t)   /* from memory: the pointer is exactly base + 8 + N + offset */
                CHECK((const uint8_t *)t->data == img + 8 + hlen + off, "%s data pointer",
                      basic[k].name);
            if (t) CHECK(t->aligned, "%s aligned", t->name);
            off += spec_numel(&basic[k]) * dtype_bytes(basic[k].dtype);
        }
        CHECK(tkr_safetensors_at(st, N_BASIC) == NULL, "at past end");
        CHECK(tkr_safetensors_find(st, "nope") == NULL, "absent name");
        CHECK(tkr_safetensors_find(st, "model.norm.weigh") == NULL, "prefix is not a match");
        CHECK(tkr_safetensors_metadata_count(st) == 2, "metadata count");
        const char *fmt = tkr_safetensors_metadata(st, "format");
        CHECK(fmt && !strcmp(fmt, "pt"), "metadata format");
        const char *note = tkr_safetensors_metadata(st, "note");
        CHECK(note && !strcmp(note, "\xc3\xa9t\xc3\xa9"), "metadata utf-8 value");
        const char *k0, *v0;
        CHECK(tkr_safetensors_metadata_at(st, 0, &k0, &v0) && !strcmp(k0, "format"), "sorted keys");
        CHECK(tkr_safetensors_metadata(st, "absent") == NULL, "absent metadata");
        CHECK(tkr_safetensors_unaligned_count(st) == 0, "all aligned");
        CHECK(!strcmp(tkr_safetensors_path(st), mm < 2 ? path : "mem"), "path");
        tkr_safetensors_close(st);
    }
    free(img);
}

/* An unpadded header leaves data at odd offsets: loading still works, alignment is recorded. */
static void test_unaligned_offsets(void) {
    const tspec ts[] = {{"a", "BF16", 1, {3}}, {"b", "F32", 1, {4}}, {"c", "F16", 1, {5}}};
    size_t len;
    uint8_t *img = build_image(ts, 3, NULL, 1, 5, &len);
    /* Copy to an 8-aligned buffer so only the file offsets decide the alignment. */
    uint64_t *aligned_buf = malloc(len + 8);
    memcpy(aligned_buf, img, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    CHECK(tkr_safetensors_from_memory(aligned_buf, len, "u", NULL, &st, &e) == TKR_OK, "%s",
          e.message);
    if (st) {
        size_t expect_unaligned = 0;
        size_t offs[3] = {0, 6, 22}, sizes[3] = {2, 4, 2};
        for (int k = 0; k < 3; k++) {
            const tkr_tensor *t = tkr_safetensors_find(st, ts[k].name);
            check_tensor(t, &ts[k], k, 5);
            int want = (8 + hlen + offs[k]) % sizes[k] == 0;
            expect_unaligned += !want;
            if (t) CHECK(t->aligned == want, "%s aligned flag %d, want %d", ts[k].name, t->aligned, want);
        }
        CHECK(expect_unaligned > 0, "test must produce an unaligned tensor (hlen %llu)",
              (unsigned long long)hlen);
        CHECK(tkr_safetensors_unaligned_count(st) == expect_unaligned, "unaligned count %zu",
              tkr_safetensors_unaligned_count(st));
        tkr_safetensors_close(st);
    }
    free(aligned_buf);
    free(img);
}

static void test_empty_header_object(void) {
    size_t len;
    uint8_t *img = raw_image("{}", 0, &len);
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    CHECK(tkr_safetensors_from_memory(img, len, "e", NULL, &st, &e) == TKR_OK, "%s", e.message);
    if (st) CHECK(tkr_safetensors_count(st) == 0, "no tensors");
    tkr_safetensors_close(st);
    free(img);
}

/* ---- corrupt headers ---------------------------------------------------------------------- */

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    tkr_status want;
    const char *msg;           /* substring the message must contain (beside the file name) */
} bad_case;

static const bad_case bad_cases[] = {
    {"non-JSON", "hello world", 0, TKR_ERR_FORMAT, "not valid JSON"},
    {"empty header", "", 0, TKR_ERR_FORMAT, "not valid JSON"},
    {"truncated JSON", "{\"a\":{\"dtype\":\"F32\"", 0, TKR_ERR_FORMAT, "not valid JSON"},
    {"JSON array", "[1,2,3]", 0, TKR_ERR_FORMAT, "not a JSON object"},
    {"trailing garbage", "{} x", 0, TKR_ERR_FORMAT, "not valid JSON"},
    {"invalid UTF-8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "not valid JSON"},
    {"NUL in name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "not valid JSON"},
    {"duplicate names",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, TKR_ERR_FORMAT,
     "duplicate"},
    {"entry not object", "{\"w\":[1,2]}", 0, TKR_ERR_FORMAT, "tensor 'w': entry is not an object"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, TKR_ERR_FORMAT,
     "'dtype' missing"},
    {"dtype not string", "{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "'dtype' missing or not a string"},
    {"bad dtype", "{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "unknown dtype 'Q7'"},
    {"lowercase dtype", "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "unknown dtype 'f32'"},
    {"unsupported I64", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
     TKR_ERR_UNSUPPORTED, "tensor 'ids' has dtype I64"},
    {"unsupported F8", "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_UNSUPPORTED, "tensor 'q' has dtype F8_E4M3"},
    {"unsupported U8 among valid",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"m\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, TKR_ERR_UNSUPPORTED,
     "tensor 'm' has dtype U8"},
    /* The header is validated in full before an unsupported dtype is reported. */
    {"unsupported then corrupt",
     "{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
     "\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, TKR_ERR_FORMAT,
     "reversed"},
    {"unsupported F64 with wrong span",
     "{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, TKR_ERR_FORMAT,
     "needs 16"},
    {"F4 odd count", "{\"f\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
     TKR_ERR_FORMAT, "whole bytes"},
    {"shape missing", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, TKR_ERR_FORMAT,
     "'shape' missing"},
    {"shape not array", "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
     TKR_ERR_FORMAT, "'shape' missing or not an array"},
    {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "shape[1] must be a non-negative integer"},
    {"float dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
     TKR_ERR_FORMAT, "shape[0] must be a non-negative integer"},
    {"string dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
     TKR_ERR_FORMAT, "shape[0] must be a non-negative integer"},
    {"6 dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "6 dims (at most 5 supported)"},
    {"numel overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
     "\"data_offsets\":[0,4]}}", 4, TKR_ERR_FORMAT, "overflows"},
    {"byte size overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
     "\"data_offsets\":[0,4]}}", 4, TKR_ERR_FORMAT, "overflows"},
    {"huge dim, small span", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1000000000000],"
     "\"data_offsets\":[0,4]}}", 4, TKR_ERR_FORMAT, "needs 2000000000000"},
    {"offsets missing", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, TKR_ERR_FORMAT,
     "'data_offsets' must be an array"},
    {"offsets 3 entries", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
     TKR_ERR_FORMAT, "'data_offsets' must be an array"},
    {"offsets negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
     TKR_ERR_FORMAT, "non-negative integers"},
    {"offsets float", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
     TKR_ERR_FORMAT, "non-negative integers"},
    {"offsets reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
     TKR_ERR_FORMAT, "tensor 'w': data_offsets [4, 0] are reversed"},
    {"offsets out of range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
     TKR_ERR_FORMAT, "run past the data section (4 bytes)"},
    {"offsets far out of range",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,"
     "9223372036854775804]}}", 4, TKR_ERR_FORMAT, "run past the data section"},
    {"span mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
     TKR_ERR_FORMAT, "span 20 bytes but shape [2, 3] x F32 needs 24"},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, TKR_ERR_FORMAT,
     "tensors 'a' and 'b' overlap"},
    {"same span twice",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, TKR_ERR_FORMAT,
     "overlap"},
    {"zero-size inside another",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, TKR_ERR_FORMAT,
     "overlap"},
    {"gap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, TKR_ERR_FORMAT,
     "gap of 4 bytes before tensor 'b'"},
    {"trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 10,
     TKR_ERR_FORMAT, "6 bytes after the last tensor"},
    {"data but no tensors", "{}", 3, TKR_ERR_FORMAT, "3 bytes after the last tensor"},
    {"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     TKR_ERR_FORMAT, "empty name"},
    {"metadata not object", "{\"__metadata__\":[\"x\"]}", 0, TKR_ERR_FORMAT,
     "'__metadata__' must be an object"},
    {"metadata value not string", "{\"__metadata__\":{\"format\":1}}", 0, TKR_ERR_FORMAT,
     "'__metadata__' value of 'format' must be a string"},
    {"metadata nested object", "{\"__metadata__\":{\"x\":{\"y\":\"z\"}}}", 0, TKR_ERR_FORMAT,
     "must be a string"},
};

/* Loads a damaged image from memory; checks status, and that the message names label + problem. */
static void expect_bad(const uint8_t *img, size_t len, const tkr_safetensors_limits *lim,
                       tkr_status want, const char *msg, const char *what) {
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    tkr_status rc = tkr_safetensors_from_memory(img, len, "bad.safetensors", lim, &st, &e);
    CHECK(rc == want, "%s: status %s, want %s (%s)", what, tkr_status_name(rc),
          tkr_status_name(want), e.message);
    CHECK(st == NULL, "%s: no object on failure", what);
    CHECK(strstr(e.message, "bad.safetensors: ") == e.message, "%s: message names file: %s", what,
          e.message);
    CHECK(strstr(e.message, msg) != NULL, "%s: message '%s' lacks '%s'", what, e.message, msg);
    tkr_safetensors_close(st);
}

static void test_corrupt_headers(void) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        size_t len;
        uint8_t *img = raw_image(c->header, c->data_len, &len);
        expect_bad(img, len, NULL, c->want, c->msg, c->what);
        free(img);
    }
}

/* The edge cases that are valid: a zero dim cancels a would-be overflow, zero-size tensors at
 * the same offset, an unknown extra field in an entry. */
static void test_valid_edge_headers(void) {
    const char *ok[] = {
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,0],"
        "\"data_offsets\":[0,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
        "\"c\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
        "{\"c\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4],\"extra\":true}}",
    };
    size_t dlen[] = {0, 4, 4}, count[] = {1, 3, 1};
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *img = raw_image(ok[i], dlen[i], &len);
        tkr_safetensors *st = NULL;
        tkr_error e = {0};
        CHECK(tkr_safetensors_from_memory(img, len, "edge", NULL, &st, &e) == TKR_OK, "case %d: %s",
              i, e.message);
        if (st) CHECK(tkr_safetensors_count(st) == count[i], "case %d count", i);
        if (st && i == 0) {
            const tkr_tensor *t = tkr_safetensors_find(st, "w");
            CHECK(t && t->nbytes == 0 && t->ndim == 3 && t->shape[0] == 1099511627776LL, "zero dim");
        }
        tkr_safetensors_close(st);
        free(img);
    }
}

static void test_bad_lengths_and_limits(void) {
    uint8_t small[8] = {0};
    expect_bad(small, 0, NULL, TKR_ERR_FORMAT, "file is empty", "empty");
    expect_bad(small, 5, NULL, TKR_ERR_FORMAT, "too short for the 8-byte header length", "5 bytes");
    expect_bad(small, 8, NULL, TKR_ERR_FORMAT, "not valid JSON", "zero header length");

    size_t len;
    uint8_t *img = raw_image("{}", 0, &len);
    put_le64(img, 3);   /* header says 3, file has 2 after the length */
    expect_bad(img, len, NULL, TKR_ERR_FORMAT, "header length 3 exceeds the file", "N > file");
    put_le64(img, UINT64_MAX);
    expect_bad(img, len, NULL, TKR_ERR_FORMAT, "header length 18446744073709551615 exceeds",
               "N = 2^64-1");
    put_le64(img, (uint64_t)1 << 63);
    expect_bad(img, len, NULL, TKR_ERR_FORMAT, "exceeds the file", "N = 2^63");
    free(img);

    /* Configured limits: header bytes, tensor count, name length. */
    const tspec ts[] = {{"a_rather_long_tensor_name", "F32", 1, {2}}, {"b", "F32", 1, {2}},
                        {"c", "F32", 1, {2}}};
    img = build_image(ts, 3, NULL, 8, 0, &len);
    tkr_safetensors_limits lim = tkr_safetensors_default_limits();
    lim.max_header_bytes = 64;
    expect_bad(img, len, &lim, TKR_ERR_LIMIT, "exceeds the limit of 64", "header cap");
    lim = tkr_safetensors_default_limits();
    lim.max_tensors = 2;
    expect_bad(img, len, &lim, TKR_ERR_LIMIT, "3 tensors exceed the limit of 2", "tensor cap");
    lim = tkr_safetensors_default_limits();
    lim.max_name_len = 10;
    expect_bad(img, len, &lim, TKR_ERR_LIMIT, "tensor name of 25 bytes", "name cap");
    lim = tkr_safetensors_default_limits();
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    CHECK(tkr_safetensors_from_memory(img, len, "ok", &lim, &st, &e) == TKR_OK, "defaults: %s",
          e.message);
    tkr_safetensors_close(st);
    free(img);
}

/* Every truncation of a valid file fails cleanly: in the length, the header, the data. */
static void test_truncation_everywhere(void) {
    size_t len;
    uint8_t *img = build_image(basic, N_BASIC, "{\"format\":\"pt\"}", 8, 0, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    int wrong = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* Exact-size heap copy so ASan sees any read past the truncated end. */
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, img, cut);
        tkr_safetensors *st = NULL;
        tkr_error e = {0};
        tkr_status rc = tkr_safetensors_from_memory(part, cut, "cut", NULL, &st, &e);
        if (rc != TKR_ERR_FORMAT || st || strncmp(e.message, "cut: ", 5)) {
            if (wrong++ < 5)
                fprintf(stderr, "  cut at %zu: %s %s\n", cut, tkr_status_name(rc), e.message);
        }
        const char *want = cut == 0 ? "empty" : cut < 8 ? "too short" : cut < 8 + hlen
                               ? "exceeds the file" : "run past the data section";
        if (rc == TKR_ERR_FORMAT && !strstr(e.message, want) && wrong++ < 5)
            fprintf(stderr, "  cut at %zu: '%s' lacks '%s'\n", cut, e.message, want);
        tkr_safetensors_close(st);
        free(part);
    }
    CHECK(wrong == 0, "%d of %zu truncations misreported", wrong, len);

    /* The same through real files (mmap and read), at the interesting points. */
    const char *dir = fresh_dir("trunc");
    char path[512];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    size_t cuts[] = {0, 3, 8, 8 + hlen / 2, 8 + hlen, 8 + hlen + 7, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(write_file(path, img, cuts[i]), "write");
        for (int mm = 0; mm < 2; mm++) {
            tkr_safetensors *st = NULL;
            tkr_error e = {0};
            tkr_status rc = tkr_safetensors_open(path, mm, &st, &e);
            CHECK(rc == TKR_ERR_FORMAT && !st, "file cut at %zu (mmap %d): %s", cuts[i], mm,
                  e.message);
            CHECK(strstr(e.message, path) == e.message, "names file: %s", e.message);
            tkr_safetensors_close(st);
        }
    }
    free(img);
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    CHECK(tkr_safetensors_open("/nonexistent/model.safetensors", 1, &st, &e) == TKR_ERR_IO &&
              strstr(e.message, "/nonexistent/model.safetensors"), "missing file: %s", e.message);
}

/* Flips random header bytes (the length included) of a valid file 2000 times with a fixed
 * seed: any status is fine, a crash or sanitizer report is not; what loads must be in bounds. */
static void test_fuzz_header_flips(void) {
    size_t len;
    uint8_t *img = build_image(basic, N_BASIC, "{\"format\":\"pt\"}", 8, 0, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    uint8_t *mut = malloc(len);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_ok = 0, n_fail = 0, bad = 0;
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(mut, img, len);
        int flips = 1 + (int)(rng % 4);
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = (size_t)(rng % (8 + hlen));
            uint8_t val = (uint8_t)(rng >> 32);
            if (rng >> 60 & 1) mut[pos] ^= (uint8_t)(1u << (val & 7));   /* one bit */
            else mut[pos] = val;                                          /* whole byte */
        }
        tkr_safetensors *st = NULL;
        tkr_error e = {0};
        tkr_status rc = tkr_safetensors_from_memory(mut, len, "fuzz", NULL, &st, &e);
        if (rc == TKR_OK) {
            n_ok++;
            for (size_t i = 0; i < tkr_safetensors_count(st); i++) {
                const tkr_tensor *t = tkr_safetensors_at(st, i);
                const uint8_t *p = t->data;
                bad += p < mut + 8 || p + t->nbytes > mut + len;
                bad += tkr_safetensors_find(st, t->name) != t;
            }
        } else {
            n_fail++;
            bad += st != NULL || e.message[0] == '\0' || strncmp(e.message, "fuzz: ", 6) != 0;
        }
        tkr_safetensors_close(st);
    }
    CHECK(bad == 0, "%d invariant violations", bad);
    CHECK(n_ok + n_fail == 2000 && n_fail > 1000, "ok %d, failed %d", n_ok, n_fail);
    printf("  fuzz: %d loaded, %d rejected\n", n_ok, n_fail);
    free(mut);
    free(img);
}

/* Offsets past 4 GiB (a 7B shard is ~4-5 GB): a sparse file, so nothing big is written. */
static void test_offsets_past_4gib(void) {
    const uint64_t big_elems = ((uint64_t)1 << 31) + 8;   /* BF16: 4 GiB + 16 bytes */
    char header[256];
    int hl = snprintf(header, sizeof header,
                      "{\"big\":{\"dtype\":\"BF16\",\"shape\":[%llu],\"data_offsets\":[0,%llu]},"
                      "\"tail\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[%llu,%llu]}}",
                      (unsigned long long)big_elems, (unsigned long long)(2 * big_elems),
                      (unsigned long long)(2 * big_elems), (unsigned long long)(2 * big_elems + 16));
    const float tail[4] = {1.5f, -2.0f, 3.25f, 4.0f};
    size_t len;
    uint8_t *img = assemble(header, (size_t)hl, 8, NULL, 0, &len);
    const char *dir = fresh_dir("big");
    char path[512];
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(img, 1, len, f) == len;
    ok = ok && fseeko(f, (off_t)(len + 2 * big_elems), SEEK_SET) == 0 &&
         fwrite(tail, 1, sizeof tail, f) == sizeof tail;
    if (f) ok = fclose(f) == 0 && ok;
    CHECK(ok, "write sparse %s", path);
    tkr_safetensors *st = NULL;
    tkr_error e = {0};
    CHECK(tkr_safetensors_open(path, 1, &st, &e) == TKR_OK, "open: %s", e.message);
    if (st) {
        const tkr_tensor *b = tkr_safetensors_find(st, "big"), *t = tkr_safetensors_find(st, "tail");
        CHECK(b && b->nbytes == 2 * big_elems && b->shape[0] == (int64_t)big_elems, "big tensor");
        CHECK(t && (const uint8_t *)t->data - (const uint8_t *)b->data == (ptrdiff_t)(2 * big_elems),
              "tail is 4 GiB after big");
        float got[4] = {0};
        if (t) memcpy(got, t->data, sizeof got);
        CHECK(!memcmp(got, tail, sizeof got), "tail values %g %g %g %g", got[0], got[1], got[2],
              got[3]);
        tkr_safetensors_close(st);
    }
    unlink(path);
    free(img);
}

/* ---- model directories ---------------------------------------------------------------------- */

static const tspec old_layout[] = {
    {"model.embed_tokens.weight", "BF16", 2, {32, 8}},
    {"model.layers.0.mlp.up_proj.weight", "BF16", 2, {16, 8}},
    {"model.layers.0.self_attn.q_proj.bias", "F32", 1, {8}},
    {"model.norm.weight", "F32", 1, {8}},
    {"lm_head.weight", "F16", 2, {32, 8}},
    {"visual.patch_embed.proj.weight", "F32", 5, {4, 3, 2, 2, 2}},
    {"visual.blocks.0.attn.qkv.weight", "F16", 2, {12, 4}},
    {"visual.merger.mlp.0.bias", "BF16", 1, {16}},
};
#define N_OLD (int)(sizeof old_layout / sizeof old_layout[0])

static const tspec new_layout_a[] = {
    {"model.language_model.embed_tokens.weight", "BF16", 2, {32, 8}},
    {"model.language_model.layers.0.mlp.up_proj.weight", "BF16", 2, {16, 8}},
    {"model.language_model.norm.weight", "F32", 1, {8}},
};
static const tspec new_layout_b[] = {
    {"model.visual.blocks.0.attn.qkv.weight", "F16", 2, {12, 4}},
    {"model.visual.patch_embed.proj.weight", "F32", 5, {4, 3, 2, 2, 2}},
    {"lm_head.weight", "F16", 2, {32, 8}},
};

static void write_image(const char *dir, const char *name, const tspec *ts, int n, int seed) {
    size_t len;
    uint8_t *img = build_image(ts, n, NULL, 8, seed, &len);
    CHECK(write_in(dir, name, img, len), "write %s/%s", dir, name);
    free(img);
}

/* Lookups the model code makes, the same whichever layout the checkpoint has. */
static void check_layout_lookups(const tkr_weights *w, const char *layout) {
    const tkr_tensor *t = tkr_weights_text(w, "layers.0.mlp.up_proj.weight");
    CHECK(t && t->shape[0] == 16 && t->dtype == TKR_DT_BF16, "%s: text layer lookup", layout);
    CHECK(tkr_weights_text(w, "embed_tokens.weight") != NULL, "%s: embed_tokens", layout);
    CHECK(tkr_weights_text(w, "norm.weight") != NULL, "%s: norm", layout);
    t = tkr_weights_text(w, "lm_head.weight");
    CHECK(t && !strcmp(t->name, "lm_head.weight"), "%s: lm_head exact", layout);
    t = tkr_weights_vision(w, "blocks.0.attn.qkv.weight");
    CHECK(t && t->dtype == TKR_DT_F16 && t->shape[1] == 4, "%s: vision block lookup", layout);
    t = tkr_weights_vision(w, "patch_embed.proj.weight");
    CHECK(t && t->ndim == 5 && t->shape[4] == 2, "%s: 5-D patch embedding", layout);
    CHECK(tkr_weights_text(w, "layers.1.mlp.up_proj.weight") == NULL, "%s: absent layer", layout);
    CHECK(tkr_weights_vision(w, "layers.0.mlp.up_proj.weight") == NULL, "%s: wrong tower", layout);
    CHECK(tkr_weights_text(w, "blocks.0.attn.qkv.weight") == NULL, "%s: wrong tower 2", layout);

    const tkr_tensor *out = NULL;
    tkr_error e = {0};
    int64_t good[2] = {16, 8}, wrong[2] = {8, 16};
    CHECK(tkr_weights_require_text(w, "layers.0.mlp.up_proj.weight", 2, good, &out, &e) == TKR_OK &&
              out != NULL, "%s: require ok: %s", layout, e.message);
    CHECK(tkr_weights_require_text(w, "layers.0.mlp.up_proj.weight", 2, wrong, &out, &e) ==
              TKR_ERR_FORMAT && out == NULL, "%s: wrong shape", layout);
    CHECK(strstr(e.message, "up_proj.weight': expected shape [8, 16], file has [16, 8]") &&
              strstr(e.message, ".safetensors: tensor '"), "%s: message '%s'", layout, e.message);
    CHECK(tkr_weights_require_text(w, "layers.0.mlp.up_proj.weight", 1, good, &out, &e) ==
              TKR_ERR_FORMAT && strstr(e.message, "expected shape [16], file has [16, 8]"),
          "%s: rank mismatch: %s", layout, e.message);
    CHECK(tkr_weights_require_text(w, "layers.9.mlp.up_proj.weight", 2, good, &out, &e) ==
              TKR_ERR_FORMAT, "%s: missing", layout);
    CHECK(strstr(e.message, "missing tensor 'layers.9.mlp.up_proj.weight' (looked for "
                            "'model.layers.9.mlp.up_proj.weight' and "
                            "'model.language_model.layers.9.mlp.up_proj.weight')"),
          "%s: message '%s'", layout, e.message);
    int64_t pe[5] = {4, 3, 2, 2, 2};
    CHECK(tkr_weights_require_vision(w, "patch_embed.proj.weight", 5, pe, &out, &e) == TKR_OK,
          "%s: require 5-D: %s", layout, e.message);
    CHECK(tkr_weights_require_vision(w, "blocks.7.attn.qkv.weight", 2, good, &out, &e) ==
              TKR_ERR_FORMAT && strstr(e.message, "(looked for 'visual.blocks.7.attn.qkv.weight' "
                                                  "and 'model.visual.blocks.7.attn.qkv.weight')"),
          "%s: vision missing: %s", layout, e.message);
    CHECK(tkr_weights_require_vision(w, "x", 6, pe, &out, &e) == TKR_ERR_INVALID_ARG, "rank 6");
}

static void test_weights_single_old_layout(void) {
    const char *dir = fresh_dir("old");
    write_image(dir, "model.safetensors", old_layout, N_OLD, 0);
    /* Decoys that must be ignored when model.safetensors exists. */
    CHECK(write_in(dir, "model.safetensors.index.json", "not json", 8), "decoy index");
    for (int mm = 0; mm < 2; mm++) {
        tkr_weights *w = NULL;
        tkr_error e = {0};
        CHECK(tkr_weights_open(dir, mm, &w, &e) == TKR_OK, "open (mmap %d): %s", mm, e.message);
        if (!w) continue;
        CHECK(tkr_weights_count(w) == N_OLD && tkr_weights_shard_count(w) == 1, "counts");
        for (int k = 0; k < N_OLD; k++) {
            check_tensor(tkr_weights_get(w, old_layout[k].name), &old_layout[k], k, 0);
            CHECK(tkr_weights_at(w, (size_t)k) == tkr_weights_get(w, old_layout[k].name), "at %d", k);
        }
        CHECK(tkr_weights_at(w, N_OLD) == NULL && tkr_weights_get(w, "model.") == NULL, "absent");
        check_layout_lookups(w, "old layout");
        tkr_weights_free(w);
    }
}

static void write_index(const char *dir, const char *body) {
    CHECK(write_in(dir, "model.safetensors.index.json", body, strlen(body)), "write index");
}

static const char new_index[] =
    "{\"metadata\":{\"total_size\":1234},\"weight_map\":{"
    "\"model.language_model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
    "\"model.language_model.layers.0.mlp.up_proj.weight\":\"model-00001-of-00002.safetensors\","
    "\"model.language_model.norm.weight\":\"model-00001-of-00002.safetensors\","
    "\"model.visual.blocks.0.attn.qkv.weight\":\"model-00002-of-00002.safetensors\","
    "\"model.visual.patch_embed.proj.weight\":\"model-00002-of-00002.safetensors\","
    "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}";

static void test_weights_sharded_new_layout(void) {
    const char *dir = fresh_dir("sharded");
    write_image(dir, "model-00001-of-00002.safetensors", new_layout_a, 3, 0);
    write_image(dir, "model-00002-of-00002.safetensors", new_layout_b, 3, 3);
    write_index(dir, new_index);
    for (int mm = 0; mm < 2; mm++) {
        tkr_weights *w = NULL;
        tkr_error e = {0};
        CHECK(tkr_weights_open(dir, mm, &w, &e) == TKR_OK, "open (mmap %d): %s", mm, e.message);
        if (!w) continue;
        CHECK(tkr_weights_count(w) == 6 && tkr_weights_shard_count(w) == 2, "counts");
        for (int k = 0; k < 3; k++) {
            check_tensor(tkr_weights_get(w, new_layout_a[k].name), &new_layout_a[k], k, 0);
            check_tensor(tkr_weights_get(w, new_layout_b[k].name), &new_layout_b[k], k, 3);
            CHECK(tkr_weights_at(w, (size_t)k) == tkr_weights_get(w, new_layout_a[k].name), "at");
        }
        check_layout_lookups(w, "new layout");
        tkr_weights_free(w);
    }
    /* Without the index, the shards are found by their names. */
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    tkr_weights *w = NULL;
    tkr_error e = {0};
    CHECK(tkr_weights_open(dir, 1, &w, &e) == TKR_OK, "pattern open: %s", e.message);
    if (w) {
        CHECK(tkr_weights_count(w) == 6 && tkr_weights_shard_count(w) == 2, "pattern counts");
        CHECK(strstr(tkr_safetensors_path(tkr_weights_shard(w, 0)), "model-00001-of-00002"),
              "shard order");
        check_layout_lookups(w, "pattern");
    }
    tkr_weights_free(w);
    /* A missing shard in the pattern set. */
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    w = NULL;
    CHECK(tkr_weights_open(dir, 1, &w, &e) == TKR_ERR_IO && !w &&
              strstr(e.message, "shard 2 of 2 (model-00002-of-00002.safetensors) is missing"),
          "missing pattern shard: %s", e.message);
    /* Shards of two different sets. */
    write_image(dir, "model-00001-of-00003.safetensors", new_layout_b, 3, 0);
    CHECK(tkr_weights_open(dir, 1, &w, &e) == TKR_ERR_FORMAT && !w &&
              strstr(e.message, "different sets"), "mixed sets: %s", e.message);
}

typedef struct {
    const char *what;
    const char *index;           /* NULL: no index file */
    tkr_status want;
    const char *msg;
} bad_dir_case;

static void test_weights_bad_dirs(void) {
    const bad_dir_case cases[] = {
        {"empty dir", NULL, TKR_ERR_IO, "no model.safetensors, model.safetensors.index.json"},
        {"index not JSON", "{weight_map", TKR_ERR_FORMAT, "model.safetensors.index.json: not valid JSON"},
        {"no weight_map", "{\"metadata\":{}}", TKR_ERR_FORMAT, "'weight_map' missing"},
        {"empty weight_map", "{\"weight_map\":{}}", TKR_ERR_FORMAT, "'weight_map' missing, empty"},
        {"weight_map value not string", "{\"weight_map\":{\"a\":3}}", TKR_ERR_FORMAT,
         "weight_map entry 'a' is not a string"},
        {"missing shard", "{\"weight_map\":{\"a\":\"model-00009-of-00009.safetensors\"}}",
         TKR_ERR_IO, "model-00009-of-00009.safetensors: cannot open"},
        {"dotdot shard", "{\"weight_map\":{\"a\":\"../shard1.safetensors\"}}", TKR_ERR_FORMAT,
         "shard '../shard1.safetensors' (for tensor 'a') is not a plain file name"},
        {"subdir shard", "{\"weight_map\":{\"a\":\"sub/shard1.safetensors\"}}", TKR_ERR_FORMAT,
         "not a plain file name"},
        {"absolute shard", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", TKR_ERR_FORMAT,
         "not a plain file name"},
        {"empty shard name", "{\"weight_map\":{\"a\":\"\"}}", TKR_ERR_FORMAT, "not a plain file name"},
        {"tensor not in its shard",
         "{\"weight_map\":{\"a\":\"shard1.safetensors\",\"b\":\"shard1.safetensors\"}}",
         TKR_ERR_FORMAT, "tensor 'b' is mapped to 'shard1.safetensors' but that shard does not"},
        {"tensor mapped to the other shard",
         "{\"weight_map\":{\"a\":\"shard2.safetensors\",\"c\":\"shard2.safetensors\"}}",
         TKR_ERR_FORMAT, "tensor 'a' is mapped to 'shard2.safetensors' but that shard"},
        {"duplicate across shards",
         "{\"weight_map\":{\"a\":\"shard1.safetensors\",\"c\":\"dup.safetensors\"}}", TKR_ERR_FORMAT,
         "tensor 'a' is in two shards"},
        {"corrupt shard", "{\"weight_map\":{\"a\":\"corrupt.safetensors\"}}", TKR_ERR_FORMAT,
         "corrupt.safetensors: header length"},
    };
    const tspec s1[] = {{"a", "F32", 1, {2}}}, s2[] = {{"c", "F32", 1, {2}}};
    const tspec sdup[] = {{"c", "F32", 1, {2}}, {"a", "F16", 1, {2}}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu", i);
        const char *dir = fresh_dir(name);
        if (cases[i].index) {
            write_image(dir, "shard1.safetensors", s1, 1, 0);
            write_image(dir, "shard2.safetensors", s2, 1, 0);
            write_image(dir, "dup.safetensors", sdup, 2, 0);
            CHECK(write_in(dir, "corrupt.safetensors", "\xff\xff\xff\x00\x00\x00\x00\x00{}", 10),
                  "write corrupt");
            write_index(dir, cases[i].index);
        }
        for (int mm = 0; mm < 2; mm++) {
            tkr_weights *w = NULL;
            tkr_error e = {0};
            tkr_status rc = tkr_weights_open(dir, mm, &w, &e);
            CHECK(rc == cases[i].want && !w, "%s: status %s (%s)", cases[i].what,
                  tkr_status_name(rc), e.message);
            CHECK(strstr(e.message, cases[i].msg) && strstr(e.message, dir),
                  "%s: message '%s' lacks '%s' or the dir", cases[i].what, e.message, cases[i].msg);
            tkr_weights_free(w);
        }
    }
    tkr_weights *w = NULL;
    tkr_error e = {0};
    CHECK(tkr_weights_open("/nonexistent/model", 1, &w, &e) == TKR_ERR_IO && !w, "no dir: %s",
          e.message);
    /* Extra tensors in a listed shard that the index does not name are kept. */
    const char *dir = fresh_dir("extra");
    write_image(dir, "shard.safetensors", sdup, 2, 0);
    write_index(dir, "{\"weight_map\":{\"a\":\"shard.safetensors\"}}");
    CHECK(tkr_weights_open(dir, 1, &w, &e) == TKR_OK && w && tkr_weights_count(w) == 2 &&
              tkr_weights_get(w, "c") != NULL, "unlisted tensor kept: %s", e.message);
    tkr_weights_free(w);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/tkr-st-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        printf("FAIL mkdtemp\n");
        return 1;
    }
    RUN(test_valid_file_loads);
    RUN(test_unaligned_offsets);
    RUN(test_empty_header_object);
    RUN(test_corrupt_headers);
    RUN(test_valid_edge_headers);
    RUN(test_bad_lengths_and_limits);
    RUN(test_truncation_everywhere);
    RUN(test_fuzz_header_flips);
    RUN(test_offsets_past_4gib);
    RUN(test_weights_single_old_layout);
    RUN(test_weights_sharded_new_layout);
    RUN(test_weights_bad_dirs);
    remove_tree(tmp_root);
    return test_summary();
}

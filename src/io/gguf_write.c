/* gguf_write.c - GGUF v3 writer, one tensor at a time (usage: gguf_write.h).
 *
 * Metadata values are serialized when set (type, then the value as it goes on disk), so begin
 * only concatenates them. Tensor offsets are fixed at begin from the declared shapes, each
 * tensor padded to the alignment as ggml does, so a reader (ours or llama.cpp's) finds every
 * tensor where the info says. Everything goes to PATH.tmp; finish renames it over PATH only
 * after every tensor has been written and the file flushed, so PATH is never partial. */
#include "io/gguf_write.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIGNMENT 32u
#define MAX_TENSOR_NAME 63u   /* ggml's GGML_MAX_NAME - 1 */

typedef struct {
    char *key;
    uint8_t *blob;            /* u32 type, then the value exactly as on disk */
    size_t len;
} wkv;

typedef struct {
    char *name;
    tkr_dtype dtype;
    int ndim;
    int64_t shape[4];         /* row-major, as given */
    uint64_t nbytes, offset;  /* offset relative to the data section */
} wtensor;

struct tkr_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    char *path, *tmp_path;    /* set at begin */
    FILE *f;
    size_t next;              /* next tensor to write */
    uint64_t part;            /* bytes of tensor `next` written so far (chunked writes) */
    int failed, finished;
};

/* A growable byte buffer for serializing one value. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} bbuf;

static void bb_put(bbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (n > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void bb_le(bbuf *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, tmp, (size_t)n);
}

static void bb_str(bbuf *b, const char *s, size_t len) {
    bb_le(b, len, 8);
    bb_put(b, s, len);
}

tkr_status tkr_gguf_writer_init(tkr_gguf_writer **out, tkr_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
    return TKR_OK;
}

void tkr_gguf_writer_free(tkr_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp_path && !w->finished) remove(w->tmp_path);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Takes ownership of b's bytes as the value of key. */
static tkr_status add_kv(tkr_gguf_writer *w, const char *key, bbuf *b, tkr_error *err) {
    if (b->oom) {
        free(b->p);
        return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory for key '%.200s'", key);
    }
    if (w->f) {
        free(b->p);
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "gguf writer: key '%.200s' set after begin", key);
    }
    if (!key[0]) {
        free(b->p);
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: empty key");
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *np = realloc(w->kv, cap * sizeof *np);
        if (!np) {
            free(b->p);
            return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->kv = np;
        w->cap_kv = cap;
    }
    char *k = dup_str(key);
    if (!k) {
        free(b->p);
        return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->kv[w->n_kv++] = (wkv){k, b->p, b->len};
    return TKR_OK;
}

static size_t scalar_size(tkr_gguf_type t) {
    static const uint8_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)t < 13 ? sz[t] : 0;
}

/* One value of a fixed-size type from host memory, little-endian on disk. */
static void put_fixed(bbuf *b, tkr_gguf_type type, const void *v) {
    size_t sz = scalar_size(type);
    uint64_t u = 0;
    if (type == TKR_GGUF_BOOL) {
        bool x;
        memcpy(&x, v, sizeof x);
        u = x ? 1 : 0;
    } else if (sz == 1) {
        uint8_t x;
        memcpy(&x, v, 1);
        u = x;
    } else if (sz == 2) {
        uint16_t x;
        memcpy(&x, v, 2);
        u = x;
    } else if (sz == 4) {
        uint32_t x;
        memcpy(&x, v, 4);
        u = x;
    } else {
        memcpy(&u, v, 8);
    }
    bb_le(b, u, (int)sz);
}

tkr_status tkr_gguf_set_scalar(tkr_gguf_writer *w, const char *key, tkr_gguf_type type,
                               const void *value, tkr_error *err) {
    if (type == TKR_GGUF_ARRAY || (unsigned)type > TKR_GGUF_FLOAT64 || !value)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: key '%.200s': bad scalar type %d",
                        key, (int)type);
    bbuf b = {0};
    bb_le(&b, (uint64_t)type, 4);
    if (type == TKR_GGUF_STRING) {
        const char *s = value;
        bb_str(&b, s, strlen(s));
    } else {
        put_fixed(&b, type, value);
    }
    return add_kv(w, key, &b, err);
}

tkr_status tkr_gguf_set_arr(tkr_gguf_writer *w, const char *key, tkr_gguf_type elem_type,
                            const void *values, size_t n, tkr_error *err) {
    if (elem_type == TKR_GGUF_ARRAY || (unsigned)elem_type > TKR_GGUF_FLOAT64 || (n && !values))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: key '%.200s': bad array type %d",
                        key, (int)elem_type);
    bbuf b = {0};
    bb_le(&b, TKR_GGUF_ARRAY, 4);
    bb_le(&b, (uint64_t)elem_type, 4);
    bb_le(&b, n, 8);
    if (elem_type == TKR_GGUF_STRING) {
        const char *const *s = values;
        for (size_t i = 0; i < n; i++) bb_str(&b, s[i] ? s[i] : "", s[i] ? strlen(s[i]) : 0);
    } else {
        size_t sz = elem_type == TKR_GGUF_BOOL ? sizeof(bool) : scalar_size(elem_type);
        for (size_t i = 0; i < n; i++) put_fixed(&b, elem_type, (const uint8_t *)values + i * sz);
    }
    return add_kv(w, key, &b, err);
}

tkr_status tkr_gguf_set_str(tkr_gguf_writer *w, const char *key, const char *value, tkr_error *err) {
    return tkr_gguf_set_scalar(w, key, TKR_GGUF_STRING, value, err);
}
tkr_status tkr_gguf_set_u32(tkr_gguf_writer *w, const char *key, uint32_t value, tkr_error *err) {
    return tkr_gguf_set_scalar(w, key, TKR_GGUF_UINT32, &value, err);
}
tkr_status tkr_gguf_set_i32(tkr_gguf_writer *w, const char *key, int32_t value, tkr_error *err) {
    return tkr_gguf_set_scalar(w, key, TKR_GGUF_INT32, &value, err);
}
tkr_status tkr_gguf_set_f32(tkr_gguf_writer *w, const char *key, float value, tkr_error *err) {
    return tkr_gguf_set_scalar(w, key, TKR_GGUF_FLOAT32, &value, err);
}
tkr_status tkr_gguf_set_bool(tkr_gguf_writer *w, const char *key, bool value, tkr_error *err) {
    return tkr_gguf_set_scalar(w, key, TKR_GGUF_BOOL, &value, err);
}
tkr_status tkr_gguf_set_arr_str(tkr_gguf_writer *w, const char *key, const char *const *values,
                                size_t n, tkr_error *err) {
    return tkr_gguf_set_arr(w, key, TKR_GGUF_STRING, values, n, err);
}
tkr_status tkr_gguf_set_arr_i32(tkr_gguf_writer *w, const char *key, const int32_t *values,
                                size_t n, tkr_error *err) {
    return tkr_gguf_set_arr(w, key, TKR_GGUF_INT32, values, n, err);
}
tkr_status tkr_gguf_set_arr_f32(tkr_gguf_writer *w, const char *key, const float *values,
                                size_t n, tkr_error *err) {
    return tkr_gguf_set_arr(w, key, TKR_GGUF_FLOAT32, values, n, err);
}

tkr_status tkr_gguf_set_copy(tkr_gguf_writer *w, const tkr_gguf *src, const char *key,
                             tkr_error *err) {
    int64_t i = tkr_gguf_find(src, key);
    const uint8_t *p;
    size_t n;
    if (i < 0 || !tkr_gguf_kv_raw(src, (size_t)i, &p, &n))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: no key '%.200s' to copy",
                        tkr_gguf_path(src), key);
    bbuf b = {0};
    bb_put(&b, p, n);
    return add_kv(w, key, &b, err);
}

tkr_status tkr_gguf_add_tensor(tkr_gguf_writer *w, const char *name, tkr_dtype type, int ndim,
                               const int64_t *shape, tkr_error *err) {
    if (w->f)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: tensor '%.200s' added after begin",
                        name);
    size_t nl = strlen(name);
    if (nl == 0 || nl > MAX_TENSOR_NAME)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "gguf writer: tensor name '%.200s' must be 1..%u bytes", name,
                        MAX_TENSOR_NAME);
    if (tkr_gguf_dtype_to_ggml(type) == UINT32_MAX)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: tensor '%s': bad dtype %d", name,
                        (int)type);
    if (ndim < 1 || ndim > 4 || !shape)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: tensor '%s': %d dims (1..4)",
                        name, ndim);
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1 || (uint64_t)shape[d] > (uint64_t)INT64_MAX / numel)
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "gguf writer: tensor '%s': dim %d = %lld (must be >= 1, product "
                            "below 2^63)", name, d, (long long)shape[d]);
        numel *= (uint64_t)shape[d];
    }
    int blk = tkr_dtype_block_elems(type);
    if (shape[ndim - 1] % blk)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "gguf writer: tensor '%s': row length %lld is not a multiple of the %s "
                        "block (%d)", name, (long long)shape[ndim - 1], tkr_dtype_name(type), blk);
    uint64_t blocks = numel / (uint64_t)blk, bb = tkr_dtype_block_bytes(type);
    if (blocks > (UINT64_MAX - ALIGNMENT) / bb)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: tensor '%s' is too large", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *np = realloc(w->t, cap * sizeof *np);
        if (!np) return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
        w->t = np;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = dup_str(name))) return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
    t->dtype = type;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = blocks * bb;
    w->n_t++;
    return TKR_OK;
}

/* Fails (and marks the writer failed) when the stream has an error. */
static tkr_status check_io(tkr_gguf_writer *w, int ok, tkr_error *err) {
    if (ok && !ferror(w->f)) return TKR_OK;
    w->failed = 1;
    return tkr_fail(err, TKR_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
}

static int pad_to(FILE *f, uint64_t pos) {
    static const uint8_t zeros[ALIGNMENT];
    size_t pad = (size_t)((ALIGNMENT - pos % ALIGNMENT) % ALIGNMENT);
    return pad == 0 || fwrite(zeros, 1, pad, f) == pad;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicate keys or tensor names make a file every reader refuses: caught before writing. */
static tkr_status check_unique(tkr_gguf_writer *w, tkr_error *err) {
    size_t n = w->n_kv > w->n_t ? w->n_kv : w->n_t;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
    tkr_status rc = TKR_OK;
    for (int pass = 0; pass < 2 && rc == TKR_OK; pass++) {
        size_t m = pass ? w->n_t : w->n_kv;
        for (size_t i = 0; i < m; i++) names[i] = pass ? w->t[i].name : w->kv[i].key;
        qsort(names, m, sizeof *names, name_cmp);
        for (size_t i = 1; i < m; i++)
            if (!strcmp(names[i - 1], names[i])) {
                rc = tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: %s '%.200s' set twice",
                              pass ? "tensor" : "key", names[i]);
                break;
            }
    }
    free(names);
    return rc;
}

tkr_status tkr_gguf_writer_begin(tkr_gguf_writer *w, const char *path, tkr_error *err) {
    if (w->f || w->tmp_path)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: begin called twice");
    tkr_status rc = check_unique(w, err);
    if (rc != TKR_OK) return rc;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment") &&
            (w->kv[i].len != 8 || memcmp(w->kv[i].blob, "\x04\0\0\0\x20\0\0\0", 8)))
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "gguf writer: general.alignment must be uint32 32 (or unset)");
    size_t pl = strlen(path);
    w->path = dup_str(path);
    w->tmp_path = malloc(pl + 5);
    if (!w->path || !w->tmp_path)
        return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(w->tmp_path, path, pl);
    memcpy(w->tmp_path + pl, ".tmp", 5);
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f) {
        int e = errno;
        free(w->tmp_path);   /* nothing was created: nothing to remove */
        w->tmp_path = NULL;
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_IO, "%s.tmp: cannot create: %s", path, strerror(e));
    }
    bbuf b = {0};
    bb_put(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, w->n_t, 8);
    bb_le(&b, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        bb_str(&b, w->kv[i].key, strlen(w->kv[i].key));
        bb_put(&b, w->kv[i].blob, w->kv[i].len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        bb_str(&b, t->name, strlen(t->name));
        bb_le(&b, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; d >= 0; d--) bb_le(&b, (uint64_t)t->shape[d], 8);
        bb_le(&b, tkr_gguf_dtype_to_ggml(t->dtype), 4);
        t->offset = off;
        bb_le(&b, off, 8);
        uint64_t padded = t->nbytes + (ALIGNMENT - t->nbytes % ALIGNMENT) % ALIGNMENT;
        if (off > UINT64_MAX - padded) {
            free(b.p);
            w->failed = 1;
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: tensors too large in total");
        }
        off += padded;
    }
    if (b.oom) {
        free(b.p);
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_NOMEM, "gguf writer: out of memory for the header");
    }
    int ok = fwrite(b.p, 1, b.len, w->f) == b.len && pad_to(w->f, b.len);
    free(b.p);
    return check_io(w, ok, err);
}

/* Appends n bytes to the current tensor; the tensor is done (padded, next one current) when
 * its size is reached. Both public write functions go through here. */
static tkr_status write_part(tkr_gguf_writer *w, const void *data, size_t n, tkr_error *err) {
    if (!w->f || w->failed)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: write without a good begin");
    if (w->next >= w->n_t) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: more tensor data written than declared "
                        "(%zu tensors)", w->path, w->n_t);
    }
    const wtensor *t = &w->t[w->next];
    if ((uint64_t)n > t->nbytes - w->part || (n && !data)) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "%s: tensor '%s' needs %llu bytes, %llu given", w->path, t->name,
                        (unsigned long long)t->nbytes, (unsigned long long)(w->part + n));
    }
    int ok = fwrite(data, 1, n, w->f) == n;
    w->part += n;
    if (ok && w->part == t->nbytes) {
        ok = pad_to(w->f, t->nbytes);
        w->next++;
        w->part = 0;
    }
    return check_io(w, ok, err);
}

tkr_status tkr_gguf_write_tensor(tkr_gguf_writer *w, const void *data, size_t nbytes,
                                 tkr_error *err) {
    if (w->f && !w->failed && w->next < w->n_t &&
        (w->part != 0 || (uint64_t)nbytes != w->t[w->next].nbytes)) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: tensor '%s' needs %llu bytes, %zu given%s",
                        w->path, w->t[w->next].name, (unsigned long long)w->t[w->next].nbytes,
                        nbytes, w->part ? " (after a partial chunked write)" : "");
    }
    return write_part(w, data, nbytes, err);
}

tkr_status tkr_gguf_write_chunk(tkr_gguf_writer *w, const void *data, size_t nbytes,
                                tkr_error *err) {
    return write_part(w, data, nbytes, err);
}

tkr_status tkr_gguf_writer_finish(tkr_gguf_writer *w, tkr_error *err) {
    if (!w->f || w->failed)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "gguf writer: finish without a good begin");
    if (w->next != w->n_t) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: %zu of %zu tensors written", w->path,
                        w->next, w->n_t);
    }
    int ok = fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    tkr_status rc = check_io(w, ok, err);
    int closed = fclose(w->f) == 0;
    w->f = NULL;
    if (rc != TKR_OK) return rc;
    if (!closed) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
    }
    if (rename(w->tmp_path, w->path) != 0) {
        w->failed = 1;
        return tkr_fail(err, TKR_ERR_IO, "%s: cannot rename to %s: %s", w->tmp_path, w->path,
                        strerror(errno));
    }
    w->finished = 1;
    return TKR_OK;
}

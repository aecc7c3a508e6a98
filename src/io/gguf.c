/* gguf.c - parse and validate one GGUF file (format and checks: gguf.h).
 *
 * Layout (little-endian, after ggml/docs/gguf.md; versions 2 and 3 have the same layout):
 *
 *     "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *     n_kv x      { string key, u32 type, value }          value: fixed-size scalar, string, or
 *                                                             u32 elem_type, u64 n, n values
 *     n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *     padding to general.alignment, then the data section (offsets are relative to it)
 *
 *     string = u64 length, then that many bytes (no NUL)
 *
 * The flow is one forward pass with a bounds-checked cursor: every count is checked against
 * the bytes left in the file (a lie is a format error before any allocation) and against the
 * limits; then duplicate keys, general.alignment, the tensors' placement (aligned, inside the
 * file, not overlapping) and unique names; only then a valid but unsupported tensor type is
 * reported. Nothing is handed out before the whole file has been checked. */
#include "io/gguf.h"
#include "util/error.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32u
/* ggml's GGML_MAX_NAME is 64 including the NUL: longer names cannot load in llama.cpp. */
#define GGUF_MAX_TENSOR_NAME 63u
#define GGUF_MAX_DIMS 4u

/* Every ggml type id a GGUF file may carry, with its block geometry, so that a valid file with
 * (say) Q5_K tensors is reported as unsupported, naming the type and tensor, after its layout
 * has been checked in full. Removed ids (4, 5, 31-33, 36-38) have block 0 = unknown. */
typedef struct {
    const char *name;
    uint32_t blck;        /* elements per block; 0 = not a valid type id */
    uint32_t size;        /* bytes per block                               */
    int supported;        /* 1: maps to dtype                             */
    tkr_dtype dtype;
} ggml_type_info;

static const ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4, 1, TKR_DT_F32},       [1] = {"F16", 1, 2, 1, TKR_DT_F16},
    [2] = {"Q4_0", 32, 18, 1, TKR_DT_Q4_0},   [3] = {"Q4_1", 32, 20, 0, TKR_DT_F32},
    [6] = {"Q5_0", 32, 22, 0, TKR_DT_F32},    [7] = {"Q5_1", 32, 24, 0, TKR_DT_F32},
    [8] = {"Q8_0", 32, 34, 1, TKR_DT_Q8_0},   [9] = {"Q8_1", 32, 36, 0, TKR_DT_F32},
    [10] = {"Q2_K", 256, 84, 0, TKR_DT_F32},  [11] = {"Q3_K", 256, 110, 0, TKR_DT_F32},
    [12] = {"Q4_K", 256, 144, 1, TKR_DT_Q4_K}, [13] = {"Q5_K", 256, 176, 0, TKR_DT_F32},
    [14] = {"Q6_K", 256, 210, 1, TKR_DT_Q6_K}, [15] = {"Q8_K", 256, 292, 0, TKR_DT_F32},
    [16] = {"IQ2_XXS", 256, 66, 0, TKR_DT_F32}, [17] = {"IQ2_XS", 256, 74, 0, TKR_DT_F32},
    [18] = {"IQ3_XXS", 256, 98, 0, TKR_DT_F32}, [19] = {"IQ1_S", 256, 50, 0, TKR_DT_F32},
    [20] = {"IQ4_NL", 32, 18, 0, TKR_DT_F32},  [21] = {"IQ3_S", 256, 110, 0, TKR_DT_F32},
    [22] = {"IQ2_S", 256, 82, 0, TKR_DT_F32},  [23] = {"IQ4_XS", 256, 136, 0, TKR_DT_F32},
    [24] = {"I8", 1, 1, 0, TKR_DT_F32},        [25] = {"I16", 1, 2, 0, TKR_DT_F32},
    [26] = {"I32", 1, 4, 0, TKR_DT_F32},       [27] = {"I64", 1, 8, 0, TKR_DT_F32},
    [28] = {"F64", 1, 8, 0, TKR_DT_F32},       [29] = {"IQ1_M", 256, 56, 0, TKR_DT_F32},
    [30] = {"BF16", 1, 2, 1, TKR_DT_BF16},     [34] = {"TQ1_0", 256, 54, 0, TKR_DT_F32},
    [35] = {"TQ2_0", 256, 66, 0, TKR_DT_F32},  [39] = {"MXFP4", 32, 17, 0, TKR_DT_F32},
    [40] = {"NVFP4", 64, 36, 0, TKR_DT_F32},   [41] = {"Q1_0", 128, 18, 0, TKR_DT_F32},
    [42] = {"Q2_0", 64, 18, 0, TKR_DT_F32},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

static const ggml_type_info *ggml_type_lookup(uint32_t id) {
    return id < N_GGML_TYPES && ggml_types[id].blck ? &ggml_types[id] : NULL;
}

/* Bytes of one fixed-size value; 0 for STRING and ARRAY (and unknown types). */
static size_t value_size(uint32_t type) {
    static const uint8_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < 13 ? sz[type] : 0;
}

static const char *type_name(uint32_t type) {
    static const char *const names[13] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                          "int32", "float32", "bool",  "string", "array",
                                          "uint64", "int64", "float64"};
    return type < 13 ? names[type] : "?";
}

typedef struct {
    const char *key;        /* NUL-terminated, in the names arena (set after parsing)   */
    size_t key_off;         /* its offset in the arena while the arena may still grow    */
    uint32_t type;          /* TKR_GGUF_*; ARRAY for arrays                              */
    uint32_t elem;          /* the element type of an array; == type for a scalar        */
    uint64_t n;             /* array length; 1 for a scalar                              */
    const uint8_t *val;     /* first value byte (a string's u64 length) in the file      */
    size_t str0;            /* string arrays: first index into g->str_pos                */
    const uint8_t *raw;     /* the u32 type field; raw..raw+raw_len is the typed value   */
    size_t raw_len;
} kv_entry;

typedef struct {
    size_t index;           /* file order */
    uint64_t begin, end;    /* relative to the data section */
} placement;

struct tkr_gguf {
    char *path;
    tkr_file_view view;     /* owned when opened from a file; zero when borrowed         */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t alignment;
    kv_entry *kv;           /* [n_kv] file order                                         */
    size_t n_kv;
    size_t *kv_sorted;      /* [n_kv] indices sorted by key                              */
    const uint8_t **str_pos;/* string-array elements: pointer to each u64 length         */
    size_t n_str_pos, cap_str_pos;
    tkr_tensor *tensors;    /* [n_tensors] file order                                    */
    size_t n_tensors;
    size_t *t_sorted;       /* [n_tensors] indices sorted by name                        */
    char *names;            /* arena: keys then tensor names                             */
    size_t names_used, names_cap;
};

tkr_gguf_limits tkr_gguf_default_limits(void) {
    tkr_gguf_limits l = {.max_tensors = 65536,
                         .max_kv = 65536,
                         .max_string = 16u << 20,
                         .max_array = 16u << 20,
                         .max_meta_bytes = 1u << 30};
    return l;
}

/* ---- bounded cursor ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *label;
    const tkr_gguf_limits *lim;
    tkr_error *err;
    char where[160];        /* "key 'x': " / "tensor 'y': " for messages; "" at the header */
} cursor;

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static size_t left(const cursor *c) { return c->size - c->pos; }

/* Fails unless n more bytes are in the file; `what` names the field for the message. */
static tkr_status need(cursor *c, uint64_t n, const char *what) {
    if (n > left(c))
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: %struncated: %s at byte %zu needs %llu bytes, %zu left", c->label,
                        c->where, what, c->pos, (unsigned long long)n, left(c));
    return TKR_OK;
}

static tkr_status rd(cursor *c, int n, const char *what, uint64_t *out) {
    tkr_status rc = need(c, (uint64_t)n, what);
    if (rc != TKR_OK) return rc;
    *out = le(c->base + c->pos, n);
    c->pos += (size_t)n;
    return TKR_OK;
}

static tkr_status rd32(cursor *c, const char *what, uint32_t *out) {
    uint64_t v = 0;
    tkr_status rc = rd(c, 4, what, &v);
    *out = (uint32_t)v;
    return rc;
}

/* A string's length and bytes: inside the file first (a lie is a format error), then within
 * max_string (a limit error). */
static tkr_status rd_str(cursor *c, const char *what, const uint8_t **s, uint64_t *len) {
    size_t at = c->pos;
    tkr_status rc = rd(c, 8, what, len);
    if (rc != TKR_OK) return rc;
    if (*len > left(c))
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: %s%s at byte %zu has length %llu but only %zu bytes remain", c->label,
                        c->where, what, at, (unsigned long long)*len, left(c));
    if (*len > c->lim->max_string)
        return tkr_fail(c->err, TKR_ERR_LIMIT,
                        "%s: %s%s at byte %zu has length %llu (limit %llu)", c->label, c->where,
                        what, at,
                        (unsigned long long)*len, (unsigned long long)c->lim->max_string);
    *s = c->base + c->pos;
    c->pos += (size_t)*len;
    return TKR_OK;
}

/* The header, metadata and tensor infos together stay under max_meta_bytes. */
static tkr_status check_meta(cursor *c) {
    if (c->pos > c->lim->max_meta_bytes)
        return tkr_fail(c->err, TKR_ERR_LIMIT,
                        "%s: header, metadata and tensor infos exceed %llu bytes", c->label,
                        (unsigned long long)c->lim->max_meta_bytes);
    return TKR_OK;
}

/* ---- storage ------------------------------------------------------------------------------- */

/* Copies s[0..len) NUL-terminated into the arena; *off gets its offset. The returned pointer
 * is valid until the next call (the arena grows by realloc); parse_file turns offsets into
 * pointers once all names are in. The total is below the file size, so growth is bounded. */
static const char *arena_add(tkr_gguf *g, cursor *c, const uint8_t *s, size_t len, size_t *off) {
    if (len + 1 > g->names_cap - g->names_used) {
        size_t cap = g->names_cap ? g->names_cap : 4096;
        while (len + 1 > cap - g->names_used) cap *= 2;   /* len < file size: cannot overflow */
        char *np = realloc(g->names, cap);
        if (!np) {
            tkr_fail(c->err, TKR_ERR_NOMEM, "%s: out of memory for names", c->label);
            return NULL;
        }
        g->names = np;
        g->names_cap = cap;
    }
    char *p = g->names + g->names_used;
    memcpy(p, s, len);
    p[len] = '\0';
    *off = g->names_used;
    g->names_used += len + 1;
    return p;
}

static tkr_status push_str_pos(tkr_gguf *g, const uint8_t *p, cursor *c) {
    if (g->n_str_pos == g->cap_str_pos) {
        size_t cap = g->cap_str_pos ? g->cap_str_pos * 2 : 256;
        const uint8_t **np = realloc(g->str_pos, cap * sizeof *np);
        if (!np) return tkr_fail(c->err, TKR_ERR_NOMEM, "%s: out of memory", c->label);
        g->str_pos = np;
        g->cap_str_pos = cap;
    }
    g->str_pos[g->n_str_pos++] = p;
    return TKR_OK;
}

/* Sort helpers use a file-scope pointer-free comparison: qsort gets (index, key) pairs. */
typedef struct {
    const char *name;
    size_t index;
} named;

static int named_cmp(const void *a, const void *b) {
    const named *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r) return r;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int placement_cmp(const void *a, const void *b) {
    const placement *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts names[0..n), fails on a repeat (what = "key" / "tensor name"), and stores the order. */
static tkr_status sort_unique(named *names, size_t n, size_t *order, const char *what,
                              const char *label, tkr_error *err) {
    qsort(names, n, sizeof *names, named_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !strcmp(names[i - 1].name, names[i].name))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: duplicate %s '%.200s' (entries %zu and %zu)",
                            label, what, names[i].name, names[i - 1].index, names[i].index);
        order[i] = names[i].index;
    }
    return TKR_OK;
}

/* ---- metadata ------------------------------------------------------------------------------ */

/* One value (or the elements of an array) of type `type` at the cursor, n of them. */
static tkr_status parse_values(tkr_gguf *g, cursor *c, const char *key, uint32_t type, uint64_t n,
                               int is_array) {
    size_t sz = value_size(type);
    if (type == TKR_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *s;
            uint64_t len;
            if (is_array) {
                tkr_status rc = push_str_pos(g, c->base + c->pos, c);
                if (rc != TKR_OK) return rc;
            }
            /* Name the element only when it is bad: formatting 150k token strings on every
             * open would cost more than parsing them. */
            if (left(c) < 8 || le(c->base + c->pos, 8) > left(c) - 8 ||
                le(c->base + c->pos, 8) > c->lim->max_string)
                snprintf(c->where, sizeof c->where, "key '%.100s' [%llu]: ", key,
                         (unsigned long long)i);
            tkr_status rc = rd_str(c, "string value", &s, &len);
            if (rc != TKR_OK) return rc;
        }
        return TKR_OK;
    }
    /* n <= left / sz was checked by the caller for arrays; a scalar has n = 1. */
    tkr_status rc = need(c, n * sz, "value");
    if (rc != TKR_OK) return rc;
    if (type == TKR_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++) {
            uint8_t b = c->base[c->pos + i];
            if (b > 1)
                return tkr_fail(c->err, TKR_ERR_FORMAT,
                                "%s: key '%.200s': bool value %u at byte %zu is not 0 or 1",
                                c->label, key, b, c->pos + (size_t)i);
        }
    c->pos += (size_t)(n * sz);
    return TKR_OK;
}

static tkr_status parse_kv(tkr_gguf *g, cursor *c, size_t i) {
    kv_entry *e = &g->kv[i];
    const uint8_t *ks;
    uint64_t kl;
    size_t at = c->pos;
    snprintf(c->where, sizeof c->where, "key %zu: ", i);
    tkr_status rc = rd_str(c, "key", &ks, &kl);
    if (rc != TKR_OK) return rc;
    if (kl == 0)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: key %zu (at byte %zu) is empty", c->label, i,
                        at);
    if (memchr(ks, 0, (size_t)kl))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: key %zu (at byte %zu) contains a NUL byte",
                        c->label, i, at);
    const char *key = arena_add(g, c, ks, (size_t)kl, &e->key_off);
    if (!key) return TKR_ERR_NOMEM;
    e->key = key;   /* valid until the next arena_add; fixed up in parse_file */
    snprintf(c->where, sizeof c->where, "key '%.100s': ", key);
    size_t raw_at = c->pos;
    uint32_t type;
    if ((rc = rd32(c, "value type", &type)) != TKR_OK) return rc;
    if (type > TKR_GGUF_FLOAT64)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: key '%.200s' has unknown value type %u",
                        c->label, e->key, type);
    e->type = e->elem = type;
    e->n = 1;
    if (type == TKR_GGUF_ARRAY) {
        uint32_t elem;
        uint64_t n;
        if ((rc = rd32(c, "array element type", &elem)) != TKR_OK ||
            (rc = rd(c, 8, "array length", &n)) != TKR_OK)
            return rc;
        if (elem == TKR_GGUF_ARRAY)
            return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                            "%s: key '%.200s' is an array of arrays (not supported; llama.cpp "
                            "does not read them either)", c->label, e->key);
        if (elem > TKR_GGUF_FLOAT64)
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: key '%.200s' is an array of unknown type %u", c->label, e->key,
                            elem);
        uint64_t min_elem = elem == TKR_GGUF_STRING ? 8 : value_size(elem);
        if (n > left(c) / min_elem)
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: key '%.200s' claims %llu %s elements but only %zu bytes remain",
                            c->label, e->key, (unsigned long long)n, type_name(elem), left(c));
        if (n > c->lim->max_array)
            return tkr_fail(c->err, TKR_ERR_LIMIT,
                            "%s: key '%.200s' has %llu elements (limit %llu)", c->label, e->key,
                            (unsigned long long)n, (unsigned long long)c->lim->max_array);
        e->elem = elem;
        e->n = n;
        e->str0 = g->n_str_pos;
    }
    e->val = c->base + c->pos;
    if ((rc = parse_values(g, c, key, e->elem, e->n, type == TKR_GGUF_ARRAY)) != TKR_OK) return rc;
    e->raw = c->base + raw_at;
    e->raw_len = c->pos - raw_at;
    return TKR_OK;
}

/* general.alignment: absent = 32; else a uint32 power of two (as ggml requires). */
static tkr_status read_alignment(tkr_gguf *g, const char *label, tkr_error *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = tkr_gguf_find(g, "general.alignment");
    if (i < 0) return TKR_OK;
    const kv_entry *e = &g->kv[i];
    if (e->type != TKR_GGUF_UINT32)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: 'general.alignment' must be a uint32, not %s",
                        label, type_name(e->type));
    uint64_t a = le(e->val, 4);
    if (a == 0 || (a & (a - 1)))
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: 'general.alignment' = %llu is not a power of two", label,
                        (unsigned long long)a);
    g->alignment = a;
    return TKR_OK;
}

/* ---- tensor infos -------------------------------------------------------------------------- */

/* One tensor info: name, dims, type, offset (checked against the alignment). The data pointer
 * is set later, once the data section's start is known. *bad_type gets an unsupported type. */
static tkr_status parse_tensor(tkr_gguf *g, cursor *c, size_t i, placement *pl,
                               size_t *name_off, const ggml_type_info **type_out) {
    tkr_tensor *t = &g->tensors[i];
    const uint8_t *ns;
    uint64_t nl;
    size_t at = c->pos;
    snprintf(c->where, sizeof c->where, "tensor %zu: ", i);
    tkr_status rc = rd_str(c, "tensor name", &ns, &nl);
    if (rc != TKR_OK) return rc;
    if (nl == 0)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor %zu (at byte %zu) has an empty name",
                        c->label, i, at);
    if (nl > GGUF_MAX_TENSOR_NAME)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: tensor %zu name '%.*s...' is %llu bytes (ggml allows at most %u)",
                        c->label, i, 60, (const char *)ns, (unsigned long long)nl,
                        GGUF_MAX_TENSOR_NAME);
    if (memchr(ns, 0, (size_t)nl))
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: tensor %zu (at byte %zu) has a name with a NUL byte", c->label, i, at);
    t->name = arena_add(g, c, ns, (size_t)nl, name_off);   /* fixed up in parse_file */
    if (!t->name) return TKR_ERR_NOMEM;
    snprintf(c->where, sizeof c->where, "tensor '%s': ", t->name);
    uint32_t nd;
    if ((rc = rd32(c, "n_dims", &nd)) != TKR_OK) return rc;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor '%s' has %u dims (1..%u allowed)",
                        c->label, t->name, nd, GGUF_MAX_DIMS);
    uint64_t ne[GGUF_MAX_DIMS], numel = 1;
    int overflow = 0;
    for (uint32_t d = 0; d < nd; d++) {
        if ((rc = rd(c, 8, "dimension", &ne[d])) != TKR_OK) return rc;
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX)
            return tkr_fail(c->err, TKR_ERR_FORMAT,
                            "%s: tensor '%s': ne[%u] = %llu (each dim must be in 1..2^63-1)",
                            c->label, t->name, d, (unsigned long long)ne[d]);
        if (numel > (uint64_t)INT64_MAX / ne[d]) overflow = 1;
        else numel *= ne[d];
    }
    t->ndim = (int)nd;
    for (uint32_t d = 0; d < nd; d++) t->shape[nd - 1 - d] = (int64_t)ne[d];
    char shp[160];
    tkr_shape_format(shp, sizeof shp, t->ndim, t->shape);
    if (overflow)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor '%s': element count of shape %s "
                        "overflows", c->label, t->name, shp);
    uint32_t type;
    if ((rc = rd32(c, "tensor type", &type)) != TKR_OK) return rc;
    const ggml_type_info *ti = ggml_type_lookup(type);
    if (!ti)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %u",
                        c->label, t->name, type);
    if (ne[0] % ti->blck)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: tensor '%s': row length %llu is not a multiple of the %s block (%u)",
                        c->label, t->name, (unsigned long long)ne[0], ti->name, ti->blck);
    uint64_t blocks = numel / ti->blck;
    if (blocks > (uint64_t)SIZE_MAX / ti->size || blocks > UINT64_MAX / ti->size)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor '%s': byte size of %s x %s overflows",
                        c->label, t->name, shp, ti->name);
    uint64_t nbytes = blocks * ti->size;
    uint64_t off;
    if ((rc = rd(c, 8, "tensor offset", &off)) != TKR_OK) return rc;
    if (off % g->alignment)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: tensor '%s': offset %llu is not a multiple of the alignment %llu",
                        c->label, t->name, (unsigned long long)off,
                        (unsigned long long)g->alignment);
    if (off > UINT64_MAX - nbytes)
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: tensor '%s': offset %llu + size %llu "
                        "overflows", c->label, t->name, (unsigned long long)off,
                        (unsigned long long)nbytes);
    t->dtype = ti->dtype;
    t->nbytes = (size_t)nbytes;
    pl->index = i;
    pl->begin = off;
    pl->end = off + nbytes;
    *type_out = ti;
    return TKR_OK;
}

/* Every tensor inside the file after data_start, none overlapping another. */
static tkr_status check_placement(tkr_gguf *g, placement *pl, size_t n, uint64_t data_start,
                                  const char *label, tkr_error *err) {
    uint64_t data_size = (uint64_t)g->size - data_start;
    for (size_t i = 0; i < n; i++)
        if (pl[i].end > data_size)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: tensor '%s': bytes %llu..%llu of the data section run past the "
                            "end of the file (data section is %llu bytes from byte %llu)", label,
                            g->tensors[pl[i].index].name, (unsigned long long)pl[i].begin,
                            (unsigned long long)pl[i].end, (unsigned long long)data_size,
                            (unsigned long long)data_start);
    qsort(pl, n, sizeof *pl, placement_cmp);
    for (size_t i = 1; i < n; i++)
        if (pl[i].begin < pl[i - 1].end)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)",
                            label, g->tensors[pl[i - 1].index].name, g->tensors[pl[i].index].name,
                            (unsigned long long)pl[i - 1].begin, (unsigned long long)pl[i - 1].end,
                            (unsigned long long)pl[i].begin, (unsigned long long)pl[i].end);
    return TKR_OK;
}

/* ---- whole file ---------------------------------------------------------------------------- */

static tkr_status parse_header(tkr_gguf *g, cursor *c, uint64_t *n_tensors, uint64_t *n_kv) {
    const char *label = c->label;
    if (c->size == 0) return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: file is empty", label);
    if (c->size < 4 || memcmp(c->base, "GGUF", 4))
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: not a GGUF file (no 'GGUF' magic)", label);
    c->pos = 4;
    tkr_status rc = rd32(c, "version", &g->version);
    if (rc != TKR_OK) return rc;
    if (g->version == 1)
        return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                        "%s: GGUF version 1 is not supported (only 2 and 3); convert the file "
                        "again with a current llama.cpp", label);
    if (g->version != 2 && g->version != 3) {
        if (g->version && (g->version & 0xFFFFu) == 0)
            return tkr_fail(c->err, TKR_ERR_UNSUPPORTED,
                            "%s: GGUF version %u: a big-endian file? (only little-endian "
                            "versions 2 and 3 are supported)", label, g->version);
        return tkr_fail(c->err, TKR_ERR_FORMAT, "%s: GGUF version %u (only 2 and 3 are supported)",
                        label, g->version);
    }
    if ((rc = rd(c, 8, "tensor count", n_tensors)) != TKR_OK ||
        (rc = rd(c, 8, "key/value count", n_kv)) != TKR_OK)
        return rc;
    /* Smallest entries: a kv of a 1-byte key and a uint8 (8+1+4+1 bytes); a tensor info of a
     * 1-byte name and one dim (8+1+4+8+4+8). A count beyond what the file can hold is a lie. */
    if (*n_kv > left(c) / 14)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: header claims %llu key/value pairs but only %zu bytes follow", label,
                        (unsigned long long)*n_kv, left(c));
    if (*n_tensors > left(c) / 33)
        return tkr_fail(c->err, TKR_ERR_FORMAT,
                        "%s: header claims %llu tensors but only %zu bytes follow", label,
                        (unsigned long long)*n_tensors, left(c));
    if (*n_kv > c->lim->max_kv)
        return tkr_fail(c->err, TKR_ERR_LIMIT, "%s: %llu key/value pairs exceed the limit of %llu",
                        label, (unsigned long long)*n_kv, (unsigned long long)c->lim->max_kv);
    if (*n_tensors > c->lim->max_tensors)
        return tkr_fail(c->err, TKR_ERR_LIMIT, "%s: %llu tensors exceed the limit of %llu", label,
                        (unsigned long long)*n_tensors, (unsigned long long)c->lim->max_tensors);
    return TKR_OK;
}

static tkr_status parse_file(tkr_gguf *g, const tkr_gguf_limits *lim, tkr_error *err) {
    cursor c = {g->base, g->size, 0, g->path, lim, err, ""};
    uint64_t n_tensors = 0, n_kv = 0;
    tkr_status rc = parse_header(g, &c, &n_tensors, &n_kv);
    if (rc != TKR_OK) return rc;
    size_t n_k = (size_t)n_kv, n_t = (size_t)n_tensors;   /* bounded by the file size */
    g->kv = calloc(n_k ? n_k : 1, sizeof *g->kv);
    g->kv_sorted = calloc(n_k ? n_k : 1, sizeof *g->kv_sorted);
    g->tensors = calloc(n_t ? n_t : 1, sizeof *g->tensors);
    g->t_sorted = calloc(n_t ? n_t : 1, sizeof *g->t_sorted);
    size_t n_named = n_k > n_t ? n_k : n_t;
    named *nm = calloc(n_named ? n_named : 1, sizeof *nm);
    placement *pl = calloc(n_t ? n_t : 1, sizeof *pl);
    size_t *name_off = calloc(n_t ? n_t : 1, sizeof *name_off);
    if (!name_off || !g->kv || !g->kv_sorted || !g->tensors || !g->t_sorted || !nm || !pl) {
        rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", g->path);
        goto done;
    }
    for (size_t i = 0; i < n_k; i++) {
        if ((rc = parse_kv(g, &c, i)) != TKR_OK || (rc = check_meta(&c)) != TKR_OK) goto done;
        g->n_kv = i + 1;
    }
    for (size_t i = 0; i < n_k; i++) g->kv[i].key = g->names + g->kv[i].key_off;
    for (size_t i = 0; i < n_k; i++) nm[i] = (named){g->kv[i].key, i};
    if ((rc = sort_unique(nm, n_k, g->kv_sorted, "key", g->path, err)) != TKR_OK) goto done;
    if ((rc = read_alignment(g, g->path, err)) != TKR_OK) goto done;

    const ggml_type_info *unsupported = NULL;
    size_t unsupported_i = 0;
    for (size_t i = 0; i < n_t; i++) {
        const ggml_type_info *ti = NULL;
        if ((rc = parse_tensor(g, &c, i, &pl[i], &name_off[i], &ti)) != TKR_OK ||
            (rc = check_meta(&c)) != TKR_OK)
            goto done;
        g->n_tensors = i + 1;
        if (!ti->supported && !unsupported) {
            unsupported = ti;
            unsupported_i = i;
        }
    }
    /* The arena is complete: turn offsets into pointers. */
    for (size_t i = 0; i < n_k; i++) g->kv[i].key = g->names + g->kv[i].key_off;
    for (size_t i = 0; i < n_t; i++) g->tensors[i].name = g->names + name_off[i];
    for (size_t i = 0; i < n_t; i++) nm[i] = (named){g->tensors[i].name, i};
    if ((rc = sort_unique(nm, n_t, g->t_sorted, "tensor name", g->path, err)) != TKR_OK) goto done;
    /* The data section starts at the next multiple of the alignment (ggml pads only when there
     * are tensors). */
    uint64_t data_start = c.pos;
    if (n_t > 0) {
        uint64_t pad = (g->alignment - data_start % g->alignment) % g->alignment;
        if (pad > left(&c)) {
            rc = tkr_fail(err, TKR_ERR_FORMAT,
                          "%s: truncated: the data section would start at byte %llu, past the end "
                          "of the file (%zu bytes)", g->path,
                          (unsigned long long)(data_start + pad), g->size);
            goto done;
        }
        data_start += pad;
    }
    if ((rc = check_placement(g, pl, n_t, data_start, g->path, err)) != TKR_OK) goto done;
    if (unsupported) {
        rc = tkr_fail(err, TKR_ERR_UNSUPPORTED,
                      "%s: tensor '%s' has type %s (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, "
                      "Q6_K)", g->path, g->tensors[unsupported_i].name, unsupported->name);
        goto done;
    }
    for (size_t k = 0; k < n_t; k++) {
        tkr_tensor *t = &g->tensors[pl[k].index];
        t->data = g->base + data_start + pl[k].begin;
        size_t unit = tkr_dtype_is_quant(t->dtype) ? 2 : tkr_dtype_size(t->dtype);
        t->aligned = ((uintptr_t)t->data % unit) == 0;
    }
done:
    free(nm);
    free(pl);
    free(name_off);
    return rc;
}

static tkr_gguf *new_handle(const char *label, tkr_error *err) {
    tkr_gguf *g = calloc(1, sizeof *g);
    size_t pl = strlen(label);
    char *p = g ? malloc(pl + 1) : NULL;
    if (!p) {
        free(g);
        tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", label);
        return NULL;
    }
    memcpy(p, label, pl + 1);
    g->path = p;
    return g;
}

static tkr_status finish_open(tkr_gguf *g, const tkr_gguf_limits *limits, tkr_gguf **out,
                              tkr_error *err) {
    tkr_gguf_limits lim = limits ? *limits : tkr_gguf_default_limits();
    tkr_status rc = parse_file(g, &lim, err);
    if (rc != TKR_OK) {
        tkr_gguf_close(g);
        return rc;
    }
    *out = g;
    return TKR_OK;
}

tkr_status tkr_gguf_open(const char *path, int use_mmap, const tkr_gguf_limits *limits,
                         tkr_gguf **out, tkr_error *err) {
    *out = NULL;
    tkr_gguf *g = new_handle(path, err);
    if (!g) return TKR_ERR_NOMEM;
    tkr_status rc = tkr_file_view_open(path, use_mmap, 0, &g->view, err);
    if (rc != TKR_OK) {
        tkr_gguf_close(g);
        return rc;
    }
    g->base = g->view.data;
    g->size = g->view.size;
    return finish_open(g, limits, out, err);
}

tkr_status tkr_gguf_open_memory(const void *data, size_t size, const char *label,
                                const tkr_gguf_limits *limits, tkr_gguf **out, tkr_error *err) {
    *out = NULL;
    tkr_gguf *g = new_handle(label ? label : "(memory)", err);
    if (!g) return TKR_ERR_NOMEM;
    g->base = data;
    g->size = data ? size : 0;
    return finish_open(g, limits, out, err);
}

void tkr_gguf_close(tkr_gguf *g) {
    if (!g) return;
    tkr_file_view_close(&g->view);
    free(g->kv);
    free(g->kv_sorted);
    free(g->str_pos);
    free(g->tensors);
    free(g->t_sorted);
    free(g->names);
    free(g->path);
    free(g);
}

const char *tkr_gguf_path(const tkr_gguf *g) { return g->path; }
bool tkr_gguf_mapped(const tkr_gguf *g) { return g->view.mapped == 1; }
uint32_t tkr_gguf_version(const tkr_gguf *g) { return g->version; }
uint64_t tkr_gguf_alignment(const tkr_gguf *g) { return g->alignment; }

/* ---- metadata access ----------------------------------------------------------------------- */

size_t tkr_gguf_kv_count(const tkr_gguf *g) { return g->n_kv; }

const char *tkr_gguf_kv_key(const tkr_gguf *g, size_t i) {
    return i < g->n_kv ? g->kv[i].key : NULL;
}

tkr_gguf_type tkr_gguf_kv_type(const tkr_gguf *g, size_t i) {
    return i < g->n_kv ? (tkr_gguf_type)g->kv[i].type : TKR_GGUF_ARRAY;
}

int64_t tkr_gguf_find(const tkr_gguf *g, const char *key) {
    size_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv[g->kv_sorted[mid]].key, key);
        if (c == 0) return (int64_t)g->kv_sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static const kv_entry *find_kv(const tkr_gguf *g, const char *key) {
    int64_t i = key ? tkr_gguf_find(g, key) : -1;
    return i < 0 ? NULL : &g->kv[i];
}

/* Reads value number idx of type `type` at p (fixed-size types only) as int64 / double. */
static bool value_int(uint32_t type, const uint8_t *p, int64_t *out) {
    uint64_t u;
    switch (type) {
    case TKR_GGUF_UINT8: case TKR_GGUF_BOOL: *out = p[0]; return true;
    case TKR_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case TKR_GGUF_UINT16: *out = (int64_t)le(p, 2); return true;
    case TKR_GGUF_INT16: *out = (int16_t)(uint16_t)le(p, 2); return true;
    case TKR_GGUF_UINT32: *out = (int64_t)le(p, 4); return true;
    case TKR_GGUF_INT32: *out = (int32_t)(uint32_t)le(p, 4); return true;
    case TKR_GGUF_UINT64:
        u = le(p, 8);
        if (u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)u;
        return true;
    case TKR_GGUF_INT64:
        u = le(p, 8);
        memcpy(out, &u, sizeof u);
        return true;
    default: return false;
    }
}

static bool value_float(uint32_t type, const uint8_t *p, double *out) {
    if (type == TKR_GGUF_FLOAT32) {
        uint32_t u = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        *out = f;
        return true;
    }
    if (type == TKR_GGUF_FLOAT64) {
        uint64_t u = le(p, 8);
        memcpy(out, &u, sizeof *out);
        return true;
    }
    int64_t i;
    if (type == TKR_GGUF_BOOL || !value_int(type, p, &i)) return false;
    *out = (double)i;
    return true;
}

bool tkr_gguf_kv_raw(const tkr_gguf *g, size_t i, const uint8_t **p, size_t *len) {
    if (i >= g->n_kv) return false;
    *p = g->kv[i].raw;
    *len = g->kv[i].raw_len;
    return true;
}

bool tkr_gguf_get_int(const tkr_gguf *g, const char *key, int64_t *out) {
    const kv_entry *e = find_kv(g, key);
    return e && e->type != TKR_GGUF_ARRAY && value_int(e->type, e->val, out);
}

bool tkr_gguf_get_float(const tkr_gguf *g, const char *key, double *out) {
    const kv_entry *e = find_kv(g, key);
    return e && e->type != TKR_GGUF_ARRAY && value_float(e->type, e->val, out);
}

bool tkr_gguf_get_bool(const tkr_gguf *g, const char *key, bool *out) {
    const kv_entry *e = find_kv(g, key);
    if (!e || e->type != TKR_GGUF_BOOL) return false;
    *out = e->val[0] != 0;
    return true;
}

/* A string at p (its u64 length, then the bytes), validated at open. */
static void string_at(const uint8_t *p, const char **s, size_t *len) {
    *len = (size_t)le(p, 8);
    *s = (const char *)p + 8;
}

bool tkr_gguf_get_str(const tkr_gguf *g, const char *key, const char **s, size_t *len) {
    const kv_entry *e = find_kv(g, key);
    if (!e || e->type != TKR_GGUF_STRING) return false;
    string_at(e->val, s, len);
    return true;
}

bool tkr_gguf_get_arr(const tkr_gguf *g, const char *key, tkr_gguf_type *elem_type, size_t *len) {
    const kv_entry *e = find_kv(g, key);
    if (!e || e->type != TKR_GGUF_ARRAY) return false;
    if (elem_type) *elem_type = (tkr_gguf_type)e->elem;
    if (len) *len = (size_t)e->n;
    return true;
}

/* The array entry for key when idx is in range (any element type). */
static const kv_entry *arr_elem(const tkr_gguf *g, const char *key, size_t idx) {
    const kv_entry *e = find_kv(g, key);
    return e && e->type == TKR_GGUF_ARRAY && idx < e->n ? e : NULL;
}

bool tkr_gguf_arr_int(const tkr_gguf *g, const char *key, size_t idx, int64_t *out) {
    const kv_entry *e = arr_elem(g, key, idx);
    if (!e || e->elem == TKR_GGUF_STRING) return false;
    return value_int(e->elem, e->val + idx * value_size(e->elem), out);
}

bool tkr_gguf_arr_float(const tkr_gguf *g, const char *key, size_t idx, double *out) {
    const kv_entry *e = arr_elem(g, key, idx);
    if (!e || e->elem == TKR_GGUF_STRING) return false;
    return value_float(e->elem, e->val + idx * value_size(e->elem), out);
}

bool tkr_gguf_arr_str(const tkr_gguf *g, const char *key, size_t idx, const char **s, size_t *len) {
    const kv_entry *e = arr_elem(g, key, idx);
    if (!e || e->elem != TKR_GGUF_STRING) return false;
    string_at(g->str_pos[e->str0 + idx], s, len);
    return true;
}

/* ---- tensors ------------------------------------------------------------------------------- */

size_t tkr_gguf_tensor_count(const tkr_gguf *g) { return g->n_tensors; }

const tkr_tensor *tkr_gguf_tensor_at(const tkr_gguf *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const tkr_tensor *tkr_gguf_tensor(const tkr_gguf *g, const char *name) {
    size_t lo = 0, hi = g->n_tensors;
    while (name && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensors[g->t_sorted[mid]].name, name);
        if (c == 0) return &g->tensors[g->t_sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

bool tkr_gguf_dtype_from_ggml(uint32_t ggml_type, tkr_dtype *out) {
    const ggml_type_info *ti = ggml_type_lookup(ggml_type);
    if (!ti || !ti->supported) return false;
    *out = ti->dtype;
    return true;
}

uint32_t tkr_gguf_dtype_to_ggml(tkr_dtype t) {
    for (uint32_t i = 0; i < N_GGML_TYPES; i++)
        if (ggml_types[i].blck && ggml_types[i].supported && ggml_types[i].dtype == t) return i;
    return UINT32_MAX;
}

const char *tkr_gguf_ggml_type_name(uint32_t ggml_type) {
    const ggml_type_info *ti = ggml_type_lookup(ggml_type);
    return ti ? ti->name : "?";
}

/* safetensors.c - parse and validate one safetensors file (format and checks: safetensors.h).
 *
 * The flow is: bound the header by the file, parse it with jansson (which checks UTF-8 and,
 * with JSON_REJECT_DUPLICATES, duplicate names), validate every entry into a temporary table,
 * check that the tensors tile the data section, and only then copy names into one arena and
 * free the JSON. Nothing from the file is used before it has been checked. */
#include "io/safetensors.h"
#include "util/error.h"
#include "util/platform.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Every dtype the format defines, so that a valid file with, say, I64 buffers is reported as
 * unsupported (naming the tensor) rather than as corrupt. Sizes are in bits: F4/F6 are
 * sub-byte types whose spans must end on a byte boundary. */
typedef struct {
    const char *name;
    unsigned bits;
    int supported;       /* 1: maps to tkr_dtype `dtype` */
    tkr_dtype dtype;
} dtype_info;

static const dtype_info dtype_table[] = {
    {"F32", 32, 1, TKR_DT_F32},     {"F16", 16, 1, TKR_DT_F16},     {"BF16", 16, 1, TKR_DT_BF16},
    {"F64", 64, 0, TKR_DT_F32},     {"I64", 64, 0, TKR_DT_F32},     {"U64", 64, 0, TKR_DT_F32},
    {"I32", 32, 0, TKR_DT_F32},     {"U32", 32, 0, TKR_DT_F32},     {"I16", 16, 0, TKR_DT_F32},
    {"U16", 16, 0, TKR_DT_F32},     {"I8", 8, 0, TKR_DT_F32},       {"U8", 8, 0, TKR_DT_F32},
    {"BOOL", 8, 0, TKR_DT_F32},     {"F8_E4M3", 8, 0, TKR_DT_F32},  {"F8_E5M2", 8, 0, TKR_DT_F32},
    {"F8_E8M0", 8, 0, TKR_DT_F32},  {"F6_E2M3", 6, 0, TKR_DT_F32},  {"F6_E3M2", 6, 0, TKR_DT_F32},
    {"F4", 4, 0, TKR_DT_F32},       {"C64", 64, 0, TKR_DT_F32},
};

static const dtype_info *dtype_lookup(const char *s) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (!strcmp(dtype_table[i].name, s)) return &dtype_table[i];
    return NULL;
}

struct tkr_safetensors {
    char *path;
    tkr_file_view view;           /* owned when opened from a file; zero when borrowed     */
    tkr_tensor *tensors;          /* [n_tensors], data-offset order                         */
    size_t n_tensors;
    const tkr_tensor **by_name;   /* [n_tensors], sorted by name for binary search          */
    char *names;                  /* arena: every tensor name, NUL-terminated               */
    const char **meta_keys;       /* [n_meta] sorted; point into meta_arena                 */
    const char **meta_values;     /* [n_meta]                                               */
    size_t n_meta;
    char *meta_arena;
    size_t n_unaligned;
};

/* One validated entry before names are copied: name points into the JSON tree. */
typedef struct {
    const char *name;
    uint64_t begin, end;
    size_t index;                 /* position in the header, for stable ordering            */
} span;

tkr_safetensors_limits tkr_safetensors_default_limits(void) {
    tkr_safetensors_limits l = {.max_header_bytes = 100000000u,
                                .max_tensors = 1000000u,
                                .max_name_len = 1024u};
    return l;
}

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Offsets sort by begin, then end, so zero-size tensors sit before the tensor sharing their
 * begin and the tiling check below stays a single pass. */
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int tensor_ptr_name_cmp(const void *a, const void *b) {
    const tkr_tensor *x = *(const tkr_tensor *const *)a, *y = *(const tkr_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* A non-negative JSON integer (rejects reals, strings, negatives). */
static int get_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t i = json_integer_value(v);
    if (i < 0) return 0;
    *out = (uint64_t)i;
    return 1;
}

/* Validates the __metadata__ object and copies it (sorted by key) into st. */
static tkr_status load_metadata(tkr_safetensors *st, const json_t *meta, const char *label,
                                const tkr_safetensors_limits *lim, tkr_error *err) {
    if (!json_is_object(meta))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: '__metadata__' must be an object of strings",
                        label);
    size_t n = json_object_size(meta), total = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)meta, key, val) {
        if (!json_is_string(val))
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: '__metadata__' value of '%.200s' must be a string", label, key);
        size_t kl = strlen(key);
        if (kl > lim->max_name_len)
            return tkr_fail(err, TKR_ERR_LIMIT, "%s: '__metadata__' key of %zu bytes (limit %zu)",
                            label, kl, lim->max_name_len);
        if (!tkr_add_size(total, kl + 1, &total) ||
            !tkr_add_size(total, json_string_length(val) + 1, &total))
            return tkr_fail(err, TKR_ERR_LIMIT, "%s: '__metadata__' too large", label);
    }
    if (n == 0) return TKR_OK;
    st->meta_keys = calloc(n, sizeof *st->meta_keys);
    st->meta_values = calloc(n, sizeof *st->meta_values);
    st->meta_arena = malloc(total);
    if (!st->meta_keys || !st->meta_values || !st->meta_arena)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory for metadata", label);
    /* Keys are copied, then sorted together with their values by an index sort. */
    char *p = st->meta_arena;
    size_t i = 0;
    json_object_foreach((json_t *)meta, key, val) {
        size_t kl = strlen(key), vl = json_string_length(val);
        memcpy(p, key, kl + 1);
        st->meta_keys[i] = p;
        p += kl + 1;
        memcpy(p, json_string_value(val), vl);   /* values are NUL-free (no JSON_ALLOW_NUL) */
        p[vl] = '\0';
        st->meta_values[i] = p;
        p += vl + 1;
        i++;
    }
    st->n_meta = n;
    for (size_t a = 1; a < n; a++) {   /* insertion sort: metadata maps are tiny */
        const char *k = st->meta_keys[a], *v = st->meta_values[a];
        size_t b = a;
        for (; b > 0 && strcmp(st->meta_keys[b - 1], k) > 0; b--) {
            st->meta_keys[b] = st->meta_keys[b - 1];
            st->meta_values[b] = st->meta_values[b - 1];
        }
        st->meta_keys[b] = k;
        st->meta_values[b] = v;
    }
    return TKR_OK;
}

/* Validates one header entry into t (all but name/data) and its byte span. Returns the dtype
 * table row through *info so the caller can report unsupported types after the full check. */
static tkr_status parse_entry(const char *label, const char *name, const json_t *entry,
                              uint64_t data_size, tkr_tensor *t, span *sp,
                              const dtype_info **info, tkr_error *err) {
    if (!json_is_object(entry))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': entry is not an object",
                        label, name);
    const json_t *jd = json_object_get(entry, "dtype");
    const json_t *js = json_object_get(entry, "shape");
    const json_t *jo = json_object_get(entry, "data_offsets");
    if (!json_is_string(jd))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': 'dtype' missing or not a string",
                        label, name);
    const dtype_info *di = dtype_lookup(json_string_value(jd));
    if (!di)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': unknown dtype '%.40s'", label,
                        name, json_string_value(jd));
    if (!json_is_array(js))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': 'shape' missing or not an array",
                        label, name);
    size_t ndim = json_array_size(js);
    if (ndim > TKR_TENSOR_MAX_DIMS)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': %zu dims (at most %d supported)",
                        label, name, ndim, TKR_TENSOR_MAX_DIMS);
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t dim;
        if (!get_u64(json_array_get(js, d), &dim))
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: tensor '%.200s': shape[%zu] must be a non-negative integer", label,
                            name, d);
        t->shape[d] = (int64_t)dim;
        if (dim != 0 && numel > UINT64_MAX / dim) overflow = 1;
        else numel *= dim;
    }
    t->ndim = (int)ndim;
    char shp[160];
    tkr_shape_format(shp, sizeof shp, t->ndim, t->shape);
    /* A zero dim makes the product 0 whatever came before; only a nonzero product can overflow. */
    int has_zero = 0;
    for (int d = 0; d < t->ndim; d++) has_zero |= t->shape[d] == 0;
    if (has_zero) numel = 0;
    else if (overflow || numel > UINT64_MAX / di->bits)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': element count of shape %s "
                        "overflows", label, name, shp);
    uint64_t bits = numel * di->bits;
    if (bits % 8 != 0)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': %s x %s does not fill whole "
                        "bytes", label, name, shp, di->name);
    uint64_t nbytes = bits / 8;
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: tensor '%.200s': 'data_offsets' must be an array [begin, end]", label,
                        name);
    uint64_t begin, end;
    if (!get_u64(json_array_get(jo, 0), &begin) || !get_u64(json_array_get(jo, 1), &end))
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: tensor '%.200s': data_offsets must be non-negative integers", label,
                        name);
    if (begin > end)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: tensor '%.200s': data_offsets [%llu, %llu] are reversed", label, name,
                        (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: tensor '%.200s': data_offsets [%llu, %llu] run past the data section "
                        "(%llu bytes)", label, name, (unsigned long long)begin,
                        (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != nbytes)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: tensor '%.200s': data_offsets span %llu bytes but shape %s x %s needs "
                        "%llu", label, name, (unsigned long long)(end - begin), shp, di->name,
                        (unsigned long long)nbytes);
    t->dtype = di->dtype;
    t->nbytes = (size_t)nbytes;   /* <= data_size <= file size: fits */
    sp->begin = begin;
    sp->end = end;
    *info = di;
    return TKR_OK;
}

/* The reference implementation accepts only files whose tensors, in offset order, cover the
 * data section exactly; an overlap would alias weights, a gap or tail means a damaged file. */
static tkr_status check_tiling(const char *label, span *spans, size_t n, uint64_t data_size,
                               tkr_error *err) {
    qsort(spans, n, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].begin < pos)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: tensors '%.150s' and '%.150s' overlap (bytes %llu..%llu)", label,
                            prev, spans[i].name, (unsigned long long)spans[i].begin,
                            (unsigned long long)pos);
        if (spans[i].begin > pos)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: gap of %llu bytes before tensor '%.200s' (data must be contiguous)",
                            label, (unsigned long long)(spans[i].begin - pos), spans[i].name);
        pos = spans[i].end;
        prev = spans[i].name;
    }
    if (pos != data_size)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: %llu bytes after the last tensor (data section is %llu bytes)", label,
                        (unsigned long long)(data_size - pos), (unsigned long long)data_size);
    return TKR_OK;
}

/* Validates the whole header of the file image base[0..size) and fills st (tensors, names,
 * metadata). On failure st may be partly filled; the caller closes it. */
static tkr_status parse_file(tkr_safetensors *st, const uint8_t *base, size_t size,
                             const char *label, const tkr_safetensors_limits *lim,
                             tkr_error *err) {
    if (size == 0) return tkr_fail(err, TKR_ERR_FORMAT, "%s: file is empty", label);
    if (size < 8)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: file is %zu bytes, too short for the 8-byte header length", label,
                        size);
    uint64_t hlen = read_le64(base);
    if (hlen > (uint64_t)(size - 8))
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: header length %llu exceeds the file (%zu bytes after the length)",
                        label, (unsigned long long)hlen, size - 8);
    if (hlen > lim->max_header_bytes)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: header of %llu bytes exceeds the limit of %zu",
                        label, (unsigned long long)hlen, lim->max_header_bytes);
    uint64_t data_size = (uint64_t)(size - 8) - hlen;
    const uint8_t *data = base + 8 + hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: header is not valid JSON: %s (at byte %d)",
                        label, jerr.text, jerr.position);
    tkr_status rc = TKR_OK;
    span *spans = NULL;
    const char *unsupported_name = NULL, *unsupported_dtype = NULL;
    if (!json_is_object(root)) {
        rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: header is not a JSON object", label);
        goto done;
    }
    size_t n_entries = json_object_size(root);
    const json_t *meta = json_object_get(root, "__metadata__");
    size_t n = n_entries - (meta != NULL);
    if (n > lim->max_tensors) {
        rc = tkr_fail(err, TKR_ERR_LIMIT, "%s: %zu tensors exceed the limit of %zu", label, n,
                      lim->max_tensors);
        goto done;
    }
    if (meta && (rc = load_metadata(st, meta, label, lim, err)) != TKR_OK) goto done;

    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    spans = calloc(n ? n : 1, sizeof *spans);
    if (!st->tensors || !spans) {
        rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory for %zu tensors", label, n);
        goto done;
    }
    size_t i = 0, names_total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        size_t kl = strlen(key);   /* jansson rejects NUL inside keys */
        if (kl == 0) {
            rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: a tensor has an empty name", label);
            goto done;
        }
        if (kl > lim->max_name_len) {
            rc = tkr_fail(err, TKR_ERR_LIMIT, "%s: tensor name of %zu bytes ('%.60s...') exceeds "
                          "the limit of %zu", label, kl, key, lim->max_name_len);
            goto done;
        }
        const dtype_info *di = NULL;
        spans[i].name = key;
        spans[i].index = i;
        rc = parse_entry(label, key, val, data_size, &st->tensors[i], &spans[i], &di, err);
        if (rc != TKR_OK) goto done;
        if (!di->supported && !unsupported_name) {
            unsupported_name = key;
            unsupported_dtype = di->name;
        }
        names_total += kl + 1;   /* bounded by hlen: cannot overflow */
        i++;
    }
    if ((rc = check_tiling(label, spans, n, data_size, err)) != TKR_OK) goto done;
    if (unsupported_name) {
        rc = tkr_fail(err, TKR_ERR_UNSUPPORTED,
                      "%s: tensor '%.200s' has dtype %s (only F32, F16 and BF16 are supported)",
                      label, unsupported_name, unsupported_dtype);
        goto done;
    }

    /* Reorder into offset order while copying names out of the JSON tree. */
    tkr_tensor *ordered = calloc(n ? n : 1, sizeof *ordered);
    st->names = malloc(names_total ? names_total : 1);
    st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
    if (!ordered || !st->names || !st->by_name) {
        free(ordered);
        rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory for %zu tensors", label, n);
        goto done;
    }
    char *np = st->names;
    for (size_t k = 0; k < n; k++) {
        tkr_tensor t = st->tensors[spans[k].index];
        size_t kl = strlen(spans[k].name);
        memcpy(np, spans[k].name, kl + 1);
        t.name = np;
        np += kl + 1;
        t.data = data + spans[k].begin;
        size_t es = tkr_dtype_size(t.dtype);
        t.aligned = ((uintptr_t)t.data % es) == 0;
        if (!t.aligned) st->n_unaligned++;
        ordered[k] = t;
    }
    free(st->tensors);
    st->tensors = ordered;
    st->n_tensors = n;
    for (size_t k = 0; k < n; k++) st->by_name[k] = &st->tensors[k];
    qsort(st->by_name, n, sizeof *st->by_name, tensor_ptr_name_cmp);

done:
    free(spans);
    json_decref(root);
    return rc;
}

static tkr_status finish_open(tkr_safetensors *st, const uint8_t *base, size_t size,
                              const tkr_safetensors_limits *limits, tkr_safetensors **out,
                              tkr_error *err) {
    tkr_safetensors_limits lim = limits ? *limits : tkr_safetensors_default_limits();
    tkr_status rc = parse_file(st, base, size, st->path, &lim, err);
    if (rc != TKR_OK) {
        tkr_safetensors_close(st);
        return rc;
    }
    *out = st;
    return TKR_OK;
}

static tkr_safetensors *new_handle(const char *path, tkr_error *err) {
    tkr_safetensors *st = calloc(1, sizeof *st);
    size_t pl = strlen(path);
    char *p = st ? malloc(pl + 1) : NULL;
    if (!p) {
        free(st);
        tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    memcpy(p, path, pl + 1);
    st->path = p;
    return st;
}

tkr_status tkr_safetensors_open_ex(const char *path, int use_mmap,
                                   const tkr_safetensors_limits *limits, tkr_safetensors **out,
                                   tkr_error *err) {
    *out = NULL;
    tkr_safetensors *st = new_handle(path, err);
    if (!st) return TKR_ERR_NOMEM;
    tkr_status rc = tkr_file_view_open(path, use_mmap, 0, &st->view, err);
    if (rc != TKR_OK) {
        tkr_safetensors_close(st);
        return rc;
    }
    return finish_open(st, st->view.data, st->view.size, limits, out, err);
}

tkr_status tkr_safetensors_open(const char *path, int use_mmap, tkr_safetensors **out,
                                tkr_error *err) {
    return tkr_safetensors_open_ex(path, use_mmap, NULL, out, err);
}

tkr_status tkr_safetensors_from_memory(const void *data, size_t size, const char *label,
                                       const tkr_safetensors_limits *limits,
                                       tkr_safetensors **out, tkr_error *err) {
    *out = NULL;
    tkr_safetensors *st = new_handle(label ? label : "(memory)", err);
    if (!st) return TKR_ERR_NOMEM;
    return finish_open(st, data, size, limits, out, err);
}

void tkr_safetensors_close(tkr_safetensors *st) {
    if (!st) return;
    tkr_file_view_close(&st->view);
    free(st->tensors);
    free(st->by_name);
    free(st->names);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->meta_arena);
    free(st->path);
    free(st);
}

size_t tkr_safetensors_count(const tkr_safetensors *st) { return st->n_tensors; }

const tkr_tensor *tkr_safetensors_at(const tkr_safetensors *st, size_t i) {
    return i < st->n_tensors ? &st->tensors[i] : NULL;
}

const tkr_tensor *tkr_safetensors_find(const tkr_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *tkr_safetensors_path(const tkr_safetensors *st) { return st->path; }
bool tkr_safetensors_mapped(const tkr_safetensors *st) { return st->view.mapped == 1; }

const char *tkr_safetensors_metadata(const tkr_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

size_t tkr_safetensors_metadata_count(const tkr_safetensors *st) { return st->n_meta; }

int tkr_safetensors_metadata_at(const tkr_safetensors *st, size_t i, const char **key,
                                const char **value) {
    if (i >= st->n_meta) return 0;
    *key = st->meta_keys[i];
    *value = st->meta_values[i];
    return 1;
}

size_t tkr_safetensors_unaligned_count(const tkr_safetensors *st) { return st->n_unaligned; }

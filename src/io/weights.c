/* weights.c - a model directory's tensors across shards, with layout-free lookups (weights.h). */
#include "io/weights.h"
#include "io/weights_internal.h"
#include "util/error.h"
#include "util/platform.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

typedef tkr_weights_entry entry;   /* the struct itself is in weights_internal.h */

tkr_weights_limits tkr_weights_default_limits(void) {
    tkr_weights_limits l = {.file = tkr_safetensors_default_limits(),
                            .max_shards = 4096,
                            .max_index_bytes = 64u << 20};
    return l;
}

static int entry_name_cmp(const void *a, const void *b) {
    return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Compares name with the concatenation prefix+suffix without building it, so lookups need no
 * buffer whatever the name length. */
static int cmp_concat(const char *name, const char *prefix, const char *suffix) {
    for (; *prefix; prefix++, name++)
        if (*name != *prefix) return (unsigned char)*name < (unsigned char)*prefix ? -1 : 1;
    return strcmp(name, suffix);
}

static const entry *find_entry(const tkr_weights *w, const char *prefix, const char *suffix) {
    size_t lo = 0, hi = w->n_all;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_concat(w->by_name[mid].t->name, prefix, suffix);
        if (c == 0) return &w->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Where shards come from: files in w->dir (read or mapped), or file images the caller holds
 * (tkr_weights_open_index_memory, the fuzzers). */
typedef struct {
    int use_mmap;
    const tkr_weights_shard_image *images;   /* [n_images]; NULL: files */
    size_t n_images;
} shard_source;

/* Opens dir/name as shard number w->n_shards (the array has room: the caller sized it). */
static tkr_status open_shard(tkr_weights *w, const char *name, const shard_source *src,
                             const tkr_weights_limits *lim, tkr_error *err) {
    size_t cap = strlen(w->dir) + strlen(name) + 2;
    char *path = malloc(cap);
    if (!path) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", w->dir);
    tkr_path_join(path, cap, w->dir, name);
    tkr_status rc;
    if (!src->images) {
        rc = tkr_safetensors_open_ex(path, src->use_mmap, &lim->file, &w->shards[w->n_shards], err);
    } else {
        size_t i = 0;
        while (i < src->n_images && (!src->images[i].name || strcmp(src->images[i].name, name)))
            i++;
        rc = i == src->n_images
                 ? tkr_fail(err, TKR_ERR_IO, "%s: no such shard", path)
                 : tkr_safetensors_from_memory(src->images[i].data, src->images[i].size, path,
                                               &lim->file, &w->shards[w->n_shards], err);
    }
    free(path);
    if (rc == TKR_OK) w->n_shards++;
    return rc;
}

/* A shard name from the index must stay inside the model directory. */
static int plain_file_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= 255 && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

/* Sharded checkpoint described by model.safetensors.index.json. */
static tkr_status open_from_index(tkr_weights *w, const char *text, size_t len,
                                  const char *index_path, const shard_source *src,
                                  const tkr_weights_limits *lim, tkr_error *err) {
    tkr_status rc = TKR_OK;
    if (len > lim->max_index_bytes)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: file too large (%zu bytes)", index_path, len);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char **files = NULL;
    if (!root)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: not valid JSON: %s (line %d)", index_path,
                        jerr.text, jerr.line);
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: 'weight_map' missing, empty or not an object",
                      index_path);
        goto done;
    }
    /* Unique shard names: sort the values, drop repeats. */
    size_t n_map = json_object_size(map), n_files = 0;
    files = calloc(n_map, sizeof *files);
    if (!files) {
        rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        if (!json_is_string(val)) {
            rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: weight_map entry '%.200s' is not a string",
                          index_path, key);
            goto done;
        }
        if (!plain_file_name(json_string_value(val))) {
            rc = tkr_fail(err, TKR_ERR_FORMAT,
                          "%s: shard '%.200s' (for tensor '%.100s') is not a plain file name",
                          index_path, json_string_value(val), key);
            goto done;
        }
        files[n_files++] = json_string_value(val);
    }
    qsort(files, n_files, sizeof *files, str_ptr_cmp);
    size_t n_unique = 0;
    for (size_t i = 0; i < n_files; i++)
        if (n_unique == 0 || strcmp(files[n_unique - 1], files[i])) files[n_unique++] = files[i];
    if (n_unique > lim->max_shards) {
        rc = tkr_fail(err, TKR_ERR_LIMIT, "%s: %zu shards exceed the limit of %zu", index_path,
                      n_unique, lim->max_shards);
        goto done;
    }
    w->shards = calloc(n_unique, sizeof *w->shards);
    if (!w->shards) {
        rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < n_unique; i++)
        if ((rc = open_shard(w, files[i], src, lim, err)) != TKR_OK) goto done;
    /* Every mapped tensor must be where the map says. */
    json_object_foreach(map, key, val) {
        const char *f = json_string_value(val);
        const char **hit = bsearch(&f, files, n_unique, sizeof *files, str_ptr_cmp);
        if (!hit || !tkr_safetensors_find(w->shards[hit - files], key)) {
            rc = tkr_fail(err, TKR_ERR_FORMAT,
                          "%s: tensor '%.200s' is mapped to '%.200s' but that shard does not "
                          "contain it", index_path, key, f);
            goto done;
        }
    }
done:
    free(files);
    json_decref(root);
    return rc;
}

/* Parses "model-<i>-of-<n>.safetensors" (decimal, 1..9 digits each). */
static int parse_shard_name(const char *s, long *i, long *n) {
    static const char pre[] = "model-", mid[] = "-of-", suf[] = ".safetensors";
    if (strncmp(s, pre, sizeof pre - 1)) return 0;
    s += sizeof pre - 1;
    long v[2];
    for (int k = 0; k < 2; k++) {
        int digits = 0;
        v[k] = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (++digits > 9) return 0;
            v[k] = v[k] * 10 + (*s - '0');
        }
        if (digits == 0) return 0;
        const char *sep = k == 0 ? mid : suf;
        size_t sl = strlen(sep);
        if (strncmp(s, sep, sl)) return 0;
        s += sl;
    }
    if (*s) return 0;
    *i = v[0];
    *n = v[1];
    return 1;
}

/* No index: find model-<i>-of-<n>.safetensors by listing the directory. Returns TKR_OK with no
 * shards opened when there is none at all. */
static tkr_status open_from_pattern(tkr_weights *w, const shard_source *src,
                                    const tkr_weights_limits *lim, tkr_error *err) {
    DIR *d = opendir(w->dir);
    if (!d) return tkr_fail(err, TKR_ERR_IO, "%s: cannot list directory: %s", w->dir,
                            strerror(errno));
    long n_set = 0;
    char **names = NULL;   /* [n_set], names[i-1] for shard i */
    tkr_status rc = TKR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long i, n;
        if (!parse_shard_name(de->d_name, &i, &n)) continue;
        if (n_set == 0) {
            if (n < 1 || (unsigned long)n > lim->max_shards) {
                rc = tkr_fail(err, TKR_ERR_LIMIT, "%s: '%s' names %ld shards (limit %zu)",
                              w->dir, de->d_name, n, lim->max_shards);
                break;
            }
            n_set = n;
            names = calloc((size_t)n, sizeof *names);
            if (!names) {
                rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", w->dir);
                break;
            }
        }
        if (n != n_set) {
            rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: shard files of different sets (of %ld and "
                          "of %ld), e.g. '%s'", w->dir, n_set, n, de->d_name);
            break;
        }
        if (i < 1 || i > n) {
            rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: '%s': shard number out of range", w->dir,
                          de->d_name);
            break;
        }
        if (names[i - 1]) {
            rc = tkr_fail(err, TKR_ERR_FORMAT, "%s: shard %ld appears twice ('%s' and '%s')",
                          w->dir, i, names[i - 1], de->d_name);
            break;
        }
        size_t l = strlen(de->d_name);
        names[i - 1] = malloc(l + 1);
        if (!names[i - 1]) {
            rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", w->dir);
            break;
        }
        memcpy(names[i - 1], de->d_name, l + 1);
    }
    closedir(d);
    if (rc == TKR_OK) {
        for (long i = 0; i < n_set; i++)
            if (!names[i]) {
                rc = tkr_fail(err, TKR_ERR_IO, "%s: shard %ld of %ld (model-%05ld-of-%05ld"
                              ".safetensors) is missing", w->dir, i + 1, n_set, i + 1, n_set);
                break;
            }
    }
    if (rc == TKR_OK && n_set > 0) {
        w->shards = calloc((size_t)n_set, sizeof *w->shards);
        if (!w->shards) rc = tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", w->dir);
        for (long i = 0; rc == TKR_OK && i < n_set; i++)
            rc = open_shard(w, names[i], src, lim, err);
    }
    for (long i = 0; names && i < n_set; i++) free(names[i]);
    free(names);
    return rc;
}

/* The file an entry came from, for messages. */
static const char *entry_path(const tkr_weights *w, const entry *e) {
    if (w->n_shards) return tkr_safetensors_path(w->shards[e->shard]);
    return w->gguf[e->shard] ? tkr_gguf_path(w->gguf[e->shard]) : w->dir;
}

tkr_status tkr_weights_sort_index(tkr_weights *w, tkr_error *err) {
    size_t total = w->n_all;
    memcpy(w->by_name, w->all, total * sizeof *w->all);
    qsort(w->by_name, total, sizeof *w->by_name, entry_name_cmp);
    for (size_t i = 1; i < total; i++)
        if (!strcmp(w->by_name[i - 1].t->name, w->by_name[i].t->name))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s' is in two shards: '%s' and "
                            "'%s'", w->dir, w->by_name[i].t->name,
                            entry_path(w, &w->by_name[i - 1]), entry_path(w, &w->by_name[i]));
    return TKR_OK;
}

/* Builds the flat list and the name index; a name in two shards is an error. */
static tkr_status build_index(tkr_weights *w, tkr_error *err) {
    size_t total = 0;
    for (size_t s = 0; s < w->n_shards; s++) total += tkr_safetensors_count(w->shards[s]);
    w->all = calloc(total ? total : 1, sizeof *w->all);
    w->by_name = calloc(total ? total : 1, sizeof *w->by_name);
    if (!w->all || !w->by_name) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", w->dir);
    size_t k = 0;
    for (size_t s = 0; s < w->n_shards; s++)
        for (size_t i = 0; i < tkr_safetensors_count(w->shards[s]); i++) {
            w->all[k].t = tkr_safetensors_at(w->shards[s], i);
            w->all[k++].shard = s;
        }
    w->n_all = total;
    return tkr_weights_sort_index(w, err);
}

/* A new, empty tkr_weights for directory (or label) dir. */
static tkr_weights *new_weights(const char *dir) {
    tkr_weights *w = calloc(1, sizeof *w);
    size_t dl = strlen(dir);
    if (w) w->dir = malloc(dl + 1);
    if (!w || !w->dir) {
        free(w);
        return NULL;
    }
    memcpy(w->dir, dir, dl + 1);
    return w;
}

/* Reads the index file (size-capped) and opens what it lists. */
static tkr_status open_index_file(tkr_weights *w, const char *index_path, const shard_source *src,
                                  const tkr_weights_limits *lim, tkr_error *err) {
    char *text = NULL;
    size_t len = 0;
    tkr_status rc = tkr_read_file(index_path, lim->max_index_bytes, &text, &len, err);
    if (rc != TKR_OK) return rc;
    rc = open_from_index(w, text, len, index_path, src, lim, err);
    free(text);
    return rc;
}

tkr_status tkr_weights_open_ex(const char *model_dir, int use_mmap, const tkr_weights_limits *limits,
                               tkr_weights **out, tkr_error *err) {
    *out = NULL;
    tkr_weights_limits lim = limits ? *limits : tkr_weights_default_limits();
    const shard_source src = {use_mmap, NULL, 0};
    tkr_weights *w = new_weights(model_dir);
    if (!w) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_dir);
    tkr_status rc;
    size_t cap = strlen(model_dir) + sizeof INDEX_NAME + 2;
    char *path = malloc(cap);
    if (!path) {
        tkr_weights_free(w);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_dir);
    }
    tkr_path_join(path, cap, model_dir, SINGLE_NAME);
    if (tkr_file_exists(path)) {
        w->shards = calloc(1, sizeof *w->shards);
        rc = w->shards ? open_shard(w, SINGLE_NAME, &src, &lim, err)
                       : tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", model_dir);
    } else {
        tkr_path_join(path, cap, model_dir, INDEX_NAME);
        if (tkr_file_exists(path)) {
            rc = open_index_file(w, path, &src, &lim, err);
        } else {
            rc = open_from_pattern(w, &src, &lim, err);
            if (rc == TKR_OK && w->n_shards == 0)
                rc = tkr_fail(err, TKR_ERR_IO, "%s: no " SINGLE_NAME ", " INDEX_NAME
                              " or model-NNNNN-of-NNNNN.safetensors", model_dir);
        }
    }
    free(path);
    if (rc == TKR_OK) rc = build_index(w, err);
    if (rc != TKR_OK) {
        tkr_weights_free(w);
        return rc;
    }
    *out = w;
    return TKR_OK;
}

tkr_status tkr_weights_open_index_memory(const char *index_json, size_t len,
                                         const tkr_weights_shard_image *shards, size_t n_shards,
                                         const char *label, const tkr_weights_limits *limits,
                                         tkr_weights **out, tkr_error *err) {
    *out = NULL;
    if (!label) label = "(memory)";
    if (!index_json || (n_shards && !shards))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: no index or shards given", label);
    tkr_weights_limits lim = limits ? *limits : tkr_weights_default_limits();
    const shard_source src = {0, shards, n_shards};
    tkr_weights *w = new_weights(label);
    size_t cap = strlen(label) + sizeof INDEX_NAME + 2;
    char *path = w ? malloc(cap) : NULL;
    if (!path) {
        tkr_weights_free(w);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", label);
    }
    tkr_path_join(path, cap, label, INDEX_NAME);
    tkr_status rc = open_from_index(w, index_json, len, path, &src, &lim, err);
    free(path);
    if (rc == TKR_OK) rc = build_index(w, err);
    if (rc != TKR_OK) {
        tkr_weights_free(w);
        return rc;
    }
    *out = w;
    return TKR_OK;
}

tkr_status tkr_weights_open(const char *model_dir, int use_mmap, tkr_weights **out, tkr_error *err) {
    return tkr_weights_open_ex(model_dir, use_mmap, NULL, out, err);
}

void tkr_weights_free(tkr_weights *w) {
    if (!w) return;
    for (size_t s = 0; s < w->n_shards; s++) tkr_safetensors_close(w->shards[s]);
    free(w->shards);
    tkr_gguf_close(w->gguf[0]);
    tkr_gguf_close(w->gguf[1]);
    free(w->renamed);
    free(w->renamed_names);
    free(w->all);
    free(w->by_name);
    free(w->dir);
    free(w);
}

size_t tkr_weights_count(const tkr_weights *w) { return w->n_all; }

const tkr_tensor *tkr_weights_at(const tkr_weights *w, size_t i) {
    return i < w->n_all ? w->all[i].t : NULL;
}

const tkr_tensor *tkr_weights_get(const tkr_weights *w, const char *name) {
    const entry *e = find_entry(w, "", name);
    return e ? e->t : NULL;
}

size_t tkr_weights_shard_count(const tkr_weights *w) { return w->n_shards; }

const tkr_safetensors *tkr_weights_shard(const tkr_weights *w, size_t i) {
    return i < w->n_shards ? w->shards[i] : NULL;
}

/* The two prefixes a layout-free suffix may carry, per tower (see weights.h). */
static const char *const text_prefixes[2] = {"model.", "model.language_model."};
static const char *const vision_prefixes[2] = {"visual.", "model.visual."};

static const entry *find_layout(const tkr_weights *w, const char *const prefixes[2],
                                const char *suffix) {
    if (prefixes == text_prefixes && !strcmp(suffix, "lm_head.weight"))
        return find_entry(w, "", suffix);
    for (int i = 0; i < 2; i++) {
        const entry *e = find_entry(w, prefixes[i], suffix);
        if (e) return e;
    }
    return NULL;
}

const tkr_tensor *tkr_weights_text(const tkr_weights *w, const char *suffix) {
    const entry *e = find_layout(w, text_prefixes, suffix);
    return e ? e->t : NULL;
}

const tkr_tensor *tkr_weights_vision(const tkr_weights *w, const char *suffix) {
    const entry *e = find_layout(w, vision_prefixes, suffix);
    return e ? e->t : NULL;
}

static tkr_status require(const tkr_weights *w, const char *const prefixes[2], const char *suffix,
                          int ndim, const int64_t *shape, const tkr_tensor **out,
                          tkr_error *err) {
    *out = NULL;
    if (ndim < 0 || ndim > TKR_TENSOR_MAX_DIMS || (ndim > 0 && !shape))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tensor '%.200s': bad expected rank %d", suffix,
                        ndim);
    const entry *e = find_layout(w, prefixes, suffix);
    if (!e) {
        /* GGUF: a vision tensor is missing from the mmproj */
        const char *label = prefixes == vision_prefixes && w->gguf[1] ? tkr_gguf_path(w->gguf[1])
                                                                        : w->dir;
        if (prefixes == text_prefixes && !strcmp(suffix, "lm_head.weight"))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: missing tensor 'lm_head.weight'", label);
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: missing tensor '%.150s' (looked for '%s%.150s' and '%s%.150s')",
                        label, suffix, prefixes[0], suffix, prefixes[1], suffix);
    }
    int same = e->t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = e->t->shape[d] == shape[d];
    if (!same) {
        char want[160], have[160];
        tkr_shape_format(want, sizeof want, ndim, shape);
        tkr_shape_format(have, sizeof have, e->t->ndim, e->t->shape);
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: tensor '%.200s': expected shape %s, file has %s",
                        entry_path(w, e), e->t->name, want, have);
    }
    *out = e->t;
    return TKR_OK;
}

tkr_status tkr_weights_require_text(const tkr_weights *w, const char *suffix, int ndim,
                                    const int64_t *shape, const tkr_tensor **out, tkr_error *err) {
    return require(w, text_prefixes, suffix, ndim, shape, out, err);
}

tkr_status tkr_weights_require_vision(const tkr_weights *w, const char *suffix, int ndim,
                                      const int64_t *shape, const tkr_tensor **out,
                                      tkr_error *err) {
    return require(w, vision_prefixes, suffix, ndim, shape, out, err);
}

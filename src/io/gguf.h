/* gguf.h - a strict reader of GGUF files (versions 2 and 3), llama.cpp's model format.
 *
 * The file is memory-mapped (or read, when mmap is off) and every field is validated before use:
 * magic and version; every count and string length against the limits below; every key/value
 * type and array length; tensor dims (1..4, each >= 1, product without overflow); known tensor
 * types (the tkr_dtype ones: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K); the row length a multiple of
 * the block; offsets aligned to general.alignment, inside the file, not overlapping; unique
 * tensor and key names. Every defect is a TKR_ERR_FORMAT (or TKR_ERR_UNSUPPORTED for a valid
 * but unsupported tensor type) whose message names the file.
 *
 * Tensors come back as tkr_tensor views read in place. GGUF stores dims innermost first (ne[0]
 * is the row length); the views use row-major order like safetensors: shape[ndim-1] = ne[0].
 * Strings in the file are not NUL-terminated; the reader copies keys and tensor names (which
 * must not contain NUL) into its own NUL-terminated storage; string values are returned as
 * (pointer, length) into the file. */
#ifndef TKR_IO_GGUF_H
#define TKR_IO_GGUF_H

#include "io/tensor.h"
#include "tkr_embed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkr_gguf tkr_gguf;

/* GGUF value types, with the file format's numbering. */
typedef enum {
    TKR_GGUF_UINT8 = 0,
    TKR_GGUF_INT8 = 1,
    TKR_GGUF_UINT16 = 2,
    TKR_GGUF_INT16 = 3,
    TKR_GGUF_UINT32 = 4,
    TKR_GGUF_INT32 = 5,
    TKR_GGUF_FLOAT32 = 6,
    TKR_GGUF_BOOL = 7,
    TKR_GGUF_STRING = 8,
    TKR_GGUF_ARRAY = 9,
    TKR_GGUF_UINT64 = 10,
    TKR_GGUF_INT64 = 11,
    TKR_GGUF_FLOAT64 = 12
} tkr_gguf_type;

typedef struct {
    uint64_t max_tensors;      /* default 65536                                    */
    uint64_t max_kv;           /* default 65536                                    */
    uint64_t max_string;       /* bytes of one string; default 16 MiB              */
    uint64_t max_array;        /* elements of one array; default 16M               */
    uint64_t max_meta_bytes;   /* header + metadata + tensor infos; default 1 GiB  */
} tkr_gguf_limits;

tkr_gguf_limits tkr_gguf_default_limits(void);

/* Opens and validates path. limits NULL = defaults. */
tkr_status tkr_gguf_open(const char *path, int use_mmap, const tkr_gguf_limits *limits,
                         tkr_gguf **out, tkr_error *err);
void tkr_gguf_close(tkr_gguf *g);

const char *tkr_gguf_path(const tkr_gguf *g);
uint32_t tkr_gguf_version(const tkr_gguf *g);
uint64_t tkr_gguf_alignment(const tkr_gguf *g);   /* general.alignment, default 32 */

/* ---- metadata ---------------------------------------------------------------------------- */

size_t tkr_gguf_kv_count(const tkr_gguf *g);
const char *tkr_gguf_kv_key(const tkr_gguf *g, size_t i);
tkr_gguf_type tkr_gguf_kv_type(const tkr_gguf *g, size_t i);
/* Index of key, or -1 when absent. */
int64_t tkr_gguf_find(const tkr_gguf *g, const char *key);

/* Typed getters by key. Each returns false when the key is absent or its value does not fit the
 * requested kind: get_int accepts any integer type (and bool) whose value fits int64; get_float
 * accepts FLOAT32/FLOAT64 (and integers); get_str a STRING. */
bool tkr_gguf_get_int(const tkr_gguf *g, const char *key, int64_t *out);
bool tkr_gguf_get_float(const tkr_gguf *g, const char *key, double *out);
bool tkr_gguf_get_bool(const tkr_gguf *g, const char *key, bool *out);
bool tkr_gguf_get_str(const tkr_gguf *g, const char *key, const char **s, size_t *len);

/* Arrays: element type and length (false when key is absent or not an array). */
bool tkr_gguf_get_arr(const tkr_gguf *g, const char *key, tkr_gguf_type *elem_type, size_t *len);
/* Element idx of an array (idx < len checked): as int (any integer type), float, or string. */
bool tkr_gguf_arr_int(const tkr_gguf *g, const char *key, size_t idx, int64_t *out);
bool tkr_gguf_arr_float(const tkr_gguf *g, const char *key, size_t idx, double *out);
bool tkr_gguf_arr_str(const tkr_gguf *g, const char *key, size_t idx, const char **s, size_t *len);

/* ---- tensors ----------------------------------------------------------------------------- */

size_t tkr_gguf_tensor_count(const tkr_gguf *g);
const tkr_tensor *tkr_gguf_tensor_at(const tkr_gguf *g, size_t i);  /* in file order */
const tkr_tensor *tkr_gguf_tensor(const tkr_gguf *g, const char *name);  /* NULL if absent */

/* ggml type id <-> tkr_dtype (false for types we do not load). */
bool tkr_gguf_dtype_from_ggml(uint32_t ggml_type, tkr_dtype *out);
uint32_t tkr_gguf_dtype_to_ggml(tkr_dtype t);

#endif

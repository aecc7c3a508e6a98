/* gguf.h - a strict reader of GGUF files (versions 2 and 3), llama.cpp's model format.
 *
 * The file is memory-mapped (or read, when mmap is off) and every field is validated before use
 * (any failure: a status plus "<file>: <problem>", nothing leaks, nothing is handed out):
 *   - magic "GGUF"; version 2 or 3 (same layout, 64-bit counts); version 1 (32-bit counts) and
 *     byte-swapped files are TKR_ERR_UNSUPPORTED, other versions TKR_ERR_FORMAT;
 *   - the tensor and key/value counts, every string length and array length: first against the
 *     bytes left in the file (a count the file cannot hold is TKR_ERR_FORMAT, before anything is
 *     allocated), then against the limits below (TKR_ERR_LIMIT);
 *   - keys non-empty without NUL bytes, unique; value types 0..12; arrays of arrays are
 *     TKR_ERR_UNSUPPORTED (llama.cpp never writes them and refuses them); bools are 0 or 1;
 *   - general.alignment, when present, a uint32 power of two (default 32);
 *   - tensor infos: names 1..63 bytes (ggml's GGML_MAX_NAME), no NUL, unique; n_dims 1..4; every
 *     dim >= 1, the element count below 2^63; a known ggml type id (else TKR_ERR_FORMAT); the row
 *     length ne[0] a multiple of the type's block; the byte size (blocks x block bytes) without
 *     overflow; the offset a multiple of the alignment;
 *   - the data section starts at the first aligned byte after the tensor infos; every tensor
 *     lies inside the file and no two overlap (gaps are allowed);
 *   - only then: a valid ggml type we do not load (Q5_K, IQ4_XS, I32, ...) is
 *     TKR_ERR_UNSUPPORTED naming the type and the tensor.
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
/* Validates a file image already in memory. The bytes are borrowed: they must outlive the
 * returned object. label names the data in messages (NULL: "(memory)"). Tests and fuzzing. */
tkr_status tkr_gguf_open_memory(const void *data, size_t size, const char *label,
                                const tkr_gguf_limits *limits, tkr_gguf **out, tkr_error *err);
void tkr_gguf_close(tkr_gguf *g);

const char *tkr_gguf_path(const tkr_gguf *g);
/* true when the tensors are read in place from a file mapping (not a heap copy or a borrowed buffer) */
bool tkr_gguf_mapped(const tkr_gguf *g);
uint32_t tkr_gguf_version(const tkr_gguf *g);
uint64_t tkr_gguf_alignment(const tkr_gguf *g);   /* general.alignment, default 32 */

/* ---- metadata ---------------------------------------------------------------------------- */

size_t tkr_gguf_kv_count(const tkr_gguf *g);
const char *tkr_gguf_kv_key(const tkr_gguf *g, size_t i);
tkr_gguf_type tkr_gguf_kv_type(const tkr_gguf *g, size_t i);
/* The value of entry i exactly as in the file: its u32 type field through the last value byte
 * (for tkr_gguf_set_copy: copying metadata between files without interpreting it). */
bool tkr_gguf_kv_raw(const tkr_gguf *g, size_t i, const uint8_t **p, size_t *len);
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

/* ggml type id <-> tkr_dtype (false for types we do not load; to_ggml gives UINT32_MAX for a
 * value outside the enum). F32=0, F16=1, Q4_0=2, Q8_0=8, Q4_K=12, Q6_K=14, BF16=30. */
bool tkr_gguf_dtype_from_ggml(uint32_t ggml_type, tkr_dtype *out);
uint32_t tkr_gguf_dtype_to_ggml(tkr_dtype t);
/* ggml's name of a type id ("Q5_K"); "?" for an id that is not a ggml type. */
const char *tkr_gguf_ggml_type_name(uint32_t ggml_type);

#endif

/* safetensors.h - one .safetensors file, validated in full before any tensor is handed out.
 *
 * Format (huggingface/safetensors):
 *
 *     [u64 little-endian N][N bytes of UTF-8 JSON header][data section ...... to end of file]
 *
 *     header = {"<name>": {"dtype": "BF16", "shape": [d0, d1, ...],
 *                          "data_offsets": [begin, end]},          (relative to the data section)
 *               ...,
 *               "__metadata__": {"<key>": "<string>", ...}}        (optional)
 *
 * What is checked on open (any failure: a status plus "<file>: <problem>", nothing leaks):
 *   - the file holds the 8-byte length; N <= file size - 8 (else format error) and
 *     N <= limits.max_header_bytes (else limit error);
 *   - the header is valid UTF-8 JSON, an object, without duplicate keys;
 *   - every entry: an object with a known dtype string, a shape of at most TKR_TENSOR_MAX_DIMS
 *     non-negative integers, data_offsets [begin, end] of two non-negative integers with
 *     begin <= end <= data section size, and end - begin == numel * dtype size (products
 *     overflow-checked); names non-empty and at most limits.max_name_len bytes;
 *   - as the reference implementation requires: in offset order the tensors tile the data
 *     section exactly (no overlap, no gap, nothing after the last one);
 *   - __metadata__, when present, is an object of strings;
 *   - only then: a tensor with a valid dtype other than F32/F16/BF16 (I64, F64, U8, F8_*, ...)
 *     fails the open with TKR_ERR_UNSUPPORTED naming that tensor.
 * Offsets need not be aligned to the element size; each tensor records whether it is.
 *
 * Tensors are listed in data-offset order; lookups by name are binary searches. */
#ifndef TKR_IO_SAFETENSORS_H
#define TKR_IO_SAFETENSORS_H

#include "io/tensor.h"
#include "tkr_embed.h"

typedef struct tkr_safetensors tkr_safetensors;

typedef struct {
    size_t max_header_bytes;   /* JSON header length N; default 100,000,000 (as the reference) */
    size_t max_tensors;        /* entries in one file; default 1,000,000                     */
    size_t max_name_len;       /* bytes in a tensor name or metadata key; default 1024       */
} tkr_safetensors_limits;

tkr_safetensors_limits tkr_safetensors_default_limits(void);

/* Opens and validates path. use_mmap != 0 maps the file (the default everywhere); 0 reads it
 * into memory. The tensors' data stays valid until tkr_safetensors_close. */
tkr_status tkr_safetensors_open(const char *path, int use_mmap, tkr_safetensors **out,
                                tkr_error *err);
/* Same with explicit limits (NULL = defaults). */
tkr_status tkr_safetensors_open_ex(const char *path, int use_mmap,
                                   const tkr_safetensors_limits *limits, tkr_safetensors **out,
                                   tkr_error *err);
/* Validates a file image already in memory. The bytes are borrowed: they must outlive the
 * returned object. label names the data in error messages. Used by tests and fuzzing. */
tkr_status tkr_safetensors_from_memory(const void *data, size_t size, const char *label,
                                       const tkr_safetensors_limits *limits,
                                       tkr_safetensors **out, tkr_error *err);
void tkr_safetensors_close(tkr_safetensors *st);

size_t tkr_safetensors_count(const tkr_safetensors *st);
/* i < count, in data-offset order; NULL when out of range. */
const tkr_tensor *tkr_safetensors_at(const tkr_safetensors *st, size_t i);
/* Exact name; NULL when absent. */
const tkr_tensor *tkr_safetensors_find(const tkr_safetensors *st, const char *name);

/* The path (or label) given at open. */
const char *tkr_safetensors_path(const tkr_safetensors *st);
/* true when the tensors are read in place from a file mapping (not a heap copy or a borrowed buffer) */
bool tkr_safetensors_mapped(const tkr_safetensors *st);

/* __metadata__: value of key, or NULL when absent; and the pairs by index (sorted by key). */
const char *tkr_safetensors_metadata(const tkr_safetensors *st, const char *key);
size_t tkr_safetensors_metadata_count(const tkr_safetensors *st);
int tkr_safetensors_metadata_at(const tkr_safetensors *st, size_t i, const char **key,
                                const char **value);

/* How many tensors have data not aligned to their element size (informational). */
size_t tkr_safetensors_unaligned_count(const tkr_safetensors *st);

#endif

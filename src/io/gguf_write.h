/* gguf_write.h - writing GGUF v3 files as llama.cpp reads them, one tensor at a time.
 *
 * Usage: init; set metadata; add every tensor's name, type and shape; begin (writes the header,
 * the metadata and the tensor infos to PATH.tmp); write each tensor's bytes in the order they
 * were added (so a converter never holds more than one tensor); finish (pads, flushes, and
 * renames PATH.tmp to PATH). Any failure leaves no file at PATH (an existing PATH is kept until
 * the rename). Shapes are row-major as in tkr_tensor (they are reversed into ggml's ne[] order on
 * disk); alignment is 32 and general.alignment is not written (setting it to anything but uint32
 * 32 fails at begin). Tensor names are 1..63 bytes (ggml's limit). Each tensor's data is padded
 * to 32 bytes, offsets in declaration order, as ggml writes them. */
#ifndef TKR_IO_GGUF_WRITE_H
#define TKR_IO_GGUF_WRITE_H

#include "io/gguf.h"

typedef struct tkr_gguf_writer tkr_gguf_writer;

tkr_status tkr_gguf_writer_init(tkr_gguf_writer **out, tkr_error *err);
void tkr_gguf_writer_free(tkr_gguf_writer *w);   /* also removes PATH.tmp if not finished */

/* Metadata, in the order set (a key set twice is an error at begin). */
tkr_status tkr_gguf_set_str(tkr_gguf_writer *w, const char *key, const char *value, tkr_error *err);
tkr_status tkr_gguf_set_u32(tkr_gguf_writer *w, const char *key, uint32_t value, tkr_error *err);
tkr_status tkr_gguf_set_i32(tkr_gguf_writer *w, const char *key, int32_t value, tkr_error *err);
tkr_status tkr_gguf_set_f32(tkr_gguf_writer *w, const char *key, float value, tkr_error *err);
tkr_status tkr_gguf_set_bool(tkr_gguf_writer *w, const char *key, bool value, tkr_error *err);
tkr_status tkr_gguf_set_arr_str(tkr_gguf_writer *w, const char *key, const char *const *values,
                                size_t n, tkr_error *err);
tkr_status tkr_gguf_set_arr_i32(tkr_gguf_writer *w, const char *key, const int32_t *values,
                                size_t n, tkr_error *err);
tkr_status tkr_gguf_set_arr_f32(tkr_gguf_writer *w, const char *key, const float *values,
                                size_t n, tkr_error *err);

/* Any type: a scalar (value points to the host value: uint8_t ... double, bool; for STRING a
 * NUL-terminated char *), or an array of n such values (strings: const char *const *). */
tkr_status tkr_gguf_set_scalar(tkr_gguf_writer *w, const char *key, tkr_gguf_type type,
                               const void *value, tkr_error *err);
tkr_status tkr_gguf_set_arr(tkr_gguf_writer *w, const char *key, tkr_gguf_type elem_type,
                            const void *values, size_t n, tkr_error *err);
/* Copies key's value (any type, arrays included) from an open GGUF file unchanged. */
tkr_status tkr_gguf_set_copy(tkr_gguf_writer *w, const tkr_gguf *src, const char *key,
                             tkr_error *err);

/* Declares a tensor (ndim 1..4; the last dim a multiple of the type's block). */
tkr_status tkr_gguf_add_tensor(tkr_gguf_writer *w, const char *name, tkr_dtype type, int ndim,
                               const int64_t *shape, tkr_error *err);

tkr_status tkr_gguf_writer_begin(tkr_gguf_writer *w, const char *path, tkr_error *err);
/* Writes the next tensor's data (nbytes must equal its size). */
tkr_status tkr_gguf_write_tensor(tkr_gguf_writer *w, const void *data, size_t nbytes, tkr_error *err);
/* The same in pieces (e.g. a few rows at a time, so a converter never holds a whole large
 * tensor): bytes go to the current tensor; once its size is reached the next one is current.
 * Writing past a tensor's size is an error (the writer is then failed). */
tkr_status tkr_gguf_write_chunk(tkr_gguf_writer *w, const void *data, size_t nbytes, tkr_error *err);
tkr_status tkr_gguf_writer_finish(tkr_gguf_writer *w, tkr_error *err);

#endif

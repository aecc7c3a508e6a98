/* base64.h - RFC 4648 base64 (standard alphabet, '=' padding), used for data: URIs, image
 * payloads in requests and the "base64" encoding_format of embeddings. */
#ifndef TKR_UTIL_BASE64_H
#define TKR_UTIL_BASE64_H

#include "tkr_embed.h"
#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes, plus the terminating NUL. 0 on overflow. */
size_t tkr_base64_encoded_size(size_t n);

/* Writes the encoding of data[0..n) and a NUL into out (tkr_base64_encoded_size(n) bytes). */
void tkr_base64_encode(const uint8_t *data, size_t n, char *out);

/* Decodes text[0..len). Accepts padded or unpadded input and skips ASCII whitespace (line
 * breaks are common in pasted payloads); anything else is an error naming the offset. Output
 * is malloc'ed; max_out caps the decoded size (0 = no cap). */
tkr_status tkr_base64_decode(const char *text, size_t len, size_t max_out, uint8_t **out,
                             size_t *out_len, tkr_error *err);

#endif

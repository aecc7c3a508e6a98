/* sha256.h - SHA-256 (FIPS 180-4), for verifying downloaded files against their LFS hashes. */
#ifndef TKR_UTIL_SHA256_H
#define TKR_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;          /* message bytes so far */
    uint8_t block[64];
    size_t used;             /* bytes in block */
} tkr_sha256;

void tkr_sha256_init(tkr_sha256 *s);
void tkr_sha256_update(tkr_sha256 *s, const void *data, size_t n);
/* Writes the 32-byte digest. */
void tkr_sha256_final(tkr_sha256 *s, uint8_t out[32]);
/* The digest as 64 lowercase hex digits + NUL. */
void tkr_sha256_hex(const uint8_t digest[32], char out[65]);

#endif

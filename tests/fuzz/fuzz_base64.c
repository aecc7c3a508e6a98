/* fuzz_base64.c - base64 decoding of arbitrary text; whatever decodes must encode back to a text
 * that decodes to the same bytes. */
#include "util/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *out = NULL;
    size_t n = 0;
    tkr_error err;
    if (tkr_base64_decode((const char *)data, size, (size_t)1 << 20, &out, &n, &err) != TKR_OK) return 0;
    char *enc = malloc(tkr_base64_encoded_size(n) + 1);
    if (!enc) abort();
    tkr_base64_encode(out, n, enc);
    uint8_t *back = NULL;
    size_t m = 0;
    if (tkr_base64_decode(enc, strlen(enc), (size_t)1 << 20, &back, &m, &err) != TKR_OK) abort();
    if (m != n || (n && memcmp(out, back, n) != 0)) abort();
    free(back);
    free(enc);
    free(out);
    return 0;
}

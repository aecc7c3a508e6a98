/* image_helpers.h - helpers shared by the image tests (include after test.h and image/image.h). */
#ifndef TKR_TEST_IMAGE_HELPERS_H
#define TKR_TEST_IMAGE_HELPERS_H

#include <stdint.h>

/* Reads a whole file through the library's own reader; a failure is a failed check. */
static uint8_t *read_all(const char *path, size_t *n) {
    uint8_t *bytes = NULL;
    tkr_error err = {0};
    tkr_status st = tkr_image_read_source(path, 0, &bytes, n, &err);
    CHECK(st == TKR_OK, "cannot read %s: %s", path, err.message);
    return st == TKR_OK ? bytes : NULL;
}

/* PNG chunk CRC (the zlib/PNG polynomial), for tests that craft or mutate PNG files. */
static uint32_t crc32_bytes(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

#endif

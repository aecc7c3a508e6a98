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

#endif

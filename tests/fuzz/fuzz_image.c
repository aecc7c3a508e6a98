/* fuzz_image.c - the whole image path on arbitrary bytes: format sniffing, JPEG/PNG/WebP decode
 * under pixel limits, smart_resize, bicubic resize and patchify (small token bounds so that each
 * run is fast), plus the server's header probe, which must agree with the decoder on the size. */
#include "image/image.h"
#include "server/image_probe.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tkr_image_params p = tkr_image_default_params();
    p.min_tokens = 4;
    p.max_tokens = 16;
    p.limits.max_pixels = (uint64_t)1 << 20;
    p.limits.lenient_jpeg = size & 1;
    float *patches = NULL;
    int gh = 0, gw = 0;
    tkr_error err;
    if (tkr_image_preprocess(data, size, &p, &patches, &gh, &gw, &err) == TKR_OK) {
        if (gh <= 0 || gw <= 0 || gh % 2 || gw % 2) abort();
        free(patches);
    }
    tkr_image_format fmt;
    int w = 0, h = 0;
    (void)tkr_image_probe(data, size, &fmt, &w, &h, &err);
    return 0;
}

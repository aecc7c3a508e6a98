/* test_image_reference.c - every image against Pillow 12.3 + HF transformers 5.17.
 *
 * tests/fixtures/images/pil_reference.json (made by tools/gen_reference.py) records, per file of
 * shared/data/images/{photos,pngsuite,seeds,malformed} and per synthetic fixture: Pillow's mode,
 * the SHA-256 of convert("RGB"), the Ops-MM smart_resize size, the SHA-256 of the bicubic
 * resize, and statistics and samples of the HF pixel_values. We must reproduce the bytes
 * exactly, and the float32 pixel values bit for bit (same float32 formula as HF).
 *
 * Deliberate differences, each checked here so that a change is noticed:
 *   - GIF / BMP / TIFF: Pillow opens them, we refuse them as unsupported;
 *   - a few corrupt files Pillow still decodes are rejected by us (stricter_than_pillow[]):
 *     IDAT CRCs Pillow does not verify, an IDAT longer than the file;
 *   - one corrupt file Pillow refuses is decoded by us (more_lenient_than_pillow[]).
 * Any other file Pillow refuses must be refused by us too. */
#include "test.h"
#include "sha256.h"
#include "image/image.h"

#include <jansson.h>
#include <stdint.h>

#define REFERENCE_JSON "tests/fixtures/images/pil_reference.json"

/* Corrupt files Pillow decodes but we reject, with why. */
static const struct {
    const char *file;
    const char *why;
} stricter_than_pillow[] = {
    {"images/malformed/libpng-crasher-badcrc.png", "IDAT CRC mismatch (Pillow skips IDAT CRCs)"},
    {"images/malformed/pngsuite-corrupt-xcsn0g01.png", "IDAT CRC mismatch"},
    {"images/malformed/libpng-crasher-huge_IDAT.png",
     "IDAT claims 1 GiB, the file ends after 79 bytes (Pillow stops once the rows are done)"},
};

/* Corrupt files Pillow refuses but we decode, with why. */
static const struct {
    const char *file;
    const char *why;
} more_lenient_than_pillow[] = {
    {"images/malformed/libpng-crasher-empty_ancillary_chunks.png",
     "Pillow's chunk parsers fail on zero-length ancillary chunks; libpng skips them"},
};

static const char *stricter_reason(const char *file) {
    for (size_t i = 0; i < sizeof stricter_than_pillow / sizeof *stricter_than_pillow; i++)
        if (!strcmp(stricter_than_pillow[i].file, file)) return stricter_than_pillow[i].why;
    return NULL;
}

static const char *lenient_reason(const char *file) {
    for (size_t i = 0; i < sizeof more_lenient_than_pillow / sizeof *more_lenient_than_pillow; i++)
        if (!strcmp(more_lenient_than_pillow[i].file, file)) return more_lenient_than_pillow[i].why;
    return NULL;
}

static json_t *load_reference(void) {
    json_error_t jerr;
    json_t *root = json_load_file(REFERENCE_JSON, 0, &jerr);
    CHECK(root != NULL, "missing fixture " REFERENCE_JSON " (%s, line %d): run from the repo "
          "root; the file is made by tools/gen_reference.py", jerr.text, jerr.line);
    if (root && !json_is_array(root)) {
        CHECK(0, REFERENCE_JSON ": not a JSON array");
        json_decref(root);
        return NULL;
    }
    return root;
}

static const char *entry_path(json_t *e, char *buf, size_t cap) {
    const char *file = json_string_value(json_object_get(e, "file"));
    if (json_is_true(json_object_get(e, "fixture")))
        snprintf(buf, cap, "tests/fixtures/%s", file);
    else
        snprintf(buf, cap, "%s", test_data_path(file));
    return buf;
}

static int json_int(json_t *o, const char *key) {
    return (int)json_integer_value(json_object_get(o, key));
}

/* Compares our pixel_values with the recorded statistics: shape, sums and 24 samples. */
static void check_pixel_values(const char *file, json_t *e, const float *pv, int gh, int gw) {
    json_t *grid = json_object_get(e, "grid_thw");
    json_t *shape = json_object_get(e, "pv_shape");
    CHECK(json_integer_value(json_array_get(grid, 0)) == 1 &&
              json_integer_value(json_array_get(grid, 1)) == gh &&
              json_integer_value(json_array_get(grid, 2)) == gw,
          "%s: grid %dx%d, reference [%lld, %lld, %lld]", file, gh, gw,
          json_integer_value(json_array_get(grid, 0)), json_integer_value(json_array_get(grid, 1)),
          json_integer_value(json_array_get(grid, 2)));
    long long rows = json_integer_value(json_array_get(shape, 0));
    long long cols = json_integer_value(json_array_get(shape, 1));
    CHECK(rows == (long long)gh * gw && cols == 1176, "%s: pv_shape [%lld, %lld] vs [%d, 1176]",
          file, rows, cols, gh * gw);
    if (rows != (long long)gh * gw || cols != 1176) return;
    double sum = 0, abs_sum = 0;
    for (size_t i = 0; i < (size_t)rows * 1176; i++) {
        sum += pv[i];
        abs_sum += fabs(pv[i]);
    }
    double ref_sum = json_real_value(json_object_get(e, "pv_sum"));
    double ref_abs = json_real_value(json_object_get(e, "pv_abs_sum"));
    CHECK(fabs(sum - ref_sum) <= 1e-6 * ref_abs + 1e-6, "%s: pv_sum %.9g vs %.9g", file, sum,
          ref_sum);
    CHECK(fabs(abs_sum - ref_abs) <= 1e-6 * ref_abs + 1e-6, "%s: pv_abs_sum %.9g vs %.9g", file,
          abs_sum, ref_abs);
    json_t *samples = json_object_get(e, "pv_samples");
    CHECK(json_array_size(samples) > 0, "%s: no pv_samples", file);
    for (size_t i = 0; i < json_array_size(samples); i++) {
        json_t *s = json_array_get(samples, i);
        long long r = json_integer_value(json_array_get(s, 0));
        long long c = json_integer_value(json_array_get(s, 1));
        float want = (float)json_real_value(json_array_get(s, 2));
        if (r < 0 || r >= rows || c < 0 || c >= cols) {
            CHECK(0, "%s: sample index (%lld, %lld) out of range", file, r, c);
            continue;
        }
        float got = pv[r * 1176 + c];
        int32_t ig, iw;
        memcpy(&ig, &got, 4);
        memcpy(&iw, &want, 4);
        int ulps = abs(ig - iw);
        CHECK(ulps == 0, "%s: pixel_values[%lld][%lld] = %.9g, reference %.9g (%d ulp)", file,
              r, c, got, want, ulps);
    }
}

/* One entry Pillow decoded: we must decode it identically (or refuse it knowingly). */
static void check_decoded_entry(json_t *e, const char *file, const uint8_t *bytes, size_t n) {
    const char *format = json_string_value(json_object_get(e, "format"));
    tkr_error err = {0};
    tkr_rgb_image img;
    tkr_status st = tkr_image_decode(bytes, n, NULL, &img, &err);
    if (format && (!strcmp(format, "GIF") || !strcmp(format, "BMP") || !strcmp(format, "TIFF"))) {
        CHECK(st == TKR_ERR_UNSUPPORTED, "%s: %s should be refused as unsupported, got %s", file,
              format, tkr_status_name(st));
        CHECK(strstr(err.message, format) != NULL, "%s: message should name %s: %s", file,
              format, err.message);
        if (st == TKR_OK) tkr_rgb_image_free(&img);
        return;
    }
    const char *why = stricter_reason(file);
    if (why) {
        CHECK(st != TKR_OK, "%s: expected to be rejected (%s) but decoded", file, why);
        if (st == TKR_OK) tkr_rgb_image_free(&img);
        return;
    }
    CHECK(st == TKR_OK, "%s: Pillow decodes it, we failed: %s", file, err.message);
    if (st != TKR_OK) return;
    const char *mode = json_string_value(json_object_get(e, "pil_mode"));
    CHECK(img.width == json_int(e, "width") && img.height == json_int(e, "height"),
          "%s: size %dx%d vs %dx%d", file, img.width, img.height, json_int(e, "width"),
          json_int(e, "height"));
    CHECK(mode && !strcmp(img.source_mode, mode), "%s: mode %s vs Pillow %s", file,
          img.source_mode, mode ? mode : "?");
    CHECK(format && !strcmp(img.format, format), "%s: format %s vs %s", file, img.format,
          format ? format : "?");
    char hex[65];
    test_sha256_hex(img.rgb, (size_t)img.width * img.height * 3, hex);
    const char *want_rgb = json_string_value(json_object_get(e, "rgb_sha256"));
    CHECK(want_rgb && !strcmp(hex, want_rgb), "%s: RGB bytes differ from Pillow's convert(\"RGB\")",
          file);

    int rh = 0, rw = 0;
    st = tkr_smart_resize(img.height, img.width, 28, 256 * 784, 1280 * 784, &rh, &rw, &err);
    CHECK(st == TKR_OK && rw == json_int(e, "resized_width") && rh == json_int(e, "resized_height"),
          "%s: smart_resize %dx%d vs %dx%d", file, rw, rh, json_int(e, "resized_width"),
          json_int(e, "resized_height"));
    tkr_rgb_image res;
    st = tkr_image_resize_bicubic(&img, json_int(e, "resized_width"), json_int(e, "resized_height"),
                                  &res, &err);
    CHECK(st == TKR_OK, "%s: resize failed: %s", file, err.message);
    if (st == TKR_OK) {
        test_sha256_hex(res.rgb, (size_t)res.width * res.height * 3, hex);
        const char *want = json_string_value(json_object_get(e, "resized_sha256"));
        CHECK(want && !strcmp(hex, want), "%s: bicubic resize differs from Pillow", file);
        float *pv = NULL;
        int gh = 0, gw = 0;
        st = tkr_image_patchify(&res, 14, 2, 2, &pv, &gh, &gw, &err);
        CHECK(st == TKR_OK, "%s: patchify failed: %s", file, err.message);
        if (st == TKR_OK) check_pixel_values(file, e, pv, gh, gw);
        free(pv);
        tkr_rgb_image_free(&res);
    }
    tkr_rgb_image_free(&img);
}

/* Checks the reference entries whose file starts with prefix (fixtures when prefix is NULL);
 * expects at least min_entries of them. */
static void check_reference_subset(const char *prefix, size_t min_entries) {
    json_t *root = load_reference();
    if (!root) return;
    size_t n_entries = json_array_size(root), n_seen = 0, n_ok = 0, n_refused = 0;
    for (size_t i = 0; i < n_entries; i++) {
        json_t *e = json_array_get(root, i);
        const char *file = json_string_value(json_object_get(e, "file"));
        if (!file) {
            CHECK(0, "entry %zu has no file", i);
            continue;
        }
        int is_fixture = json_is_true(json_object_get(e, "fixture"));
        if (prefix ? (is_fixture || strncmp(file, prefix, strlen(prefix))) : !is_fixture) continue;
        n_seen++;
        char path[4096];
        entry_path(e, path, sizeof path);
        uint8_t *bytes = NULL;
        size_t n = 0;
        tkr_error err = {0};
        tkr_status st = tkr_image_read_source(path, 0, &bytes, &n, &err);
        CHECK(st == TKR_OK, "%s: cannot read: %s", file, err.message);
        if (st != TKR_OK) continue;
        if (json_object_get(e, "pil_error")) {
            tkr_rgb_image img;
            st = tkr_image_decode(bytes, n, NULL, &img, &err);
            const char *why = lenient_reason(file);
            if (why)
                CHECK(st == TKR_OK, "%s: expected to decode (%s): %s", file, why, err.message);
            else
                CHECK(st != TKR_OK, "%s: Pillow refuses it (%s) but we decoded it", file,
                      json_string_value(json_object_get(e, "pil_error")));
            CHECK(st == TKR_OK || strlen(err.message) > 8, "%s: unclear message '%s'", file,
                  err.message);
            if (st == TKR_OK) tkr_rgb_image_free(&img);
            n_refused++;
        } else {
            check_decoded_entry(e, file, bytes, n);
            n_ok++;
        }
        free(bytes);
    }
    CHECK(n_seen >= min_entries, "%s: only %zu reference entries", prefix ? prefix : "fixtures",
          n_seen);
    printf("  %s: %zu decoded by Pillow, %zu refused by Pillow\n", prefix ? prefix : "fixtures",
           n_ok, n_refused);
    json_decref(root);
}

static void test_reference_photos(void) { check_reference_subset("images/photos/", 22); }
static void test_reference_pngsuite(void) { check_reference_subset("images/pngsuite/", 14); }
static void test_reference_seeds(void) { check_reference_subset("images/seeds/", 8); }
static void test_reference_malformed(void) { check_reference_subset("images/malformed/", 45); }
static void test_reference_synthetic_fixtures(void) { check_reference_subset(NULL, 11); }


int main(void) {
    RUN(test_reference_photos);
    RUN(test_reference_pngsuite);
    RUN(test_reference_seeds);
    RUN(test_reference_malformed);
    RUN(test_reference_synthetic_fixtures);
    return test_summary();
}

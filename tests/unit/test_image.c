/* test_image.c - smart_resize, the bicubic resampler, patch order, decoding of every format in
 * shared/data, data: URIs and the limits. The bit-exact comparison with Pillow/HF on every file
 * is test_image_reference.c; hostile input is test_image_malformed.c. */
#include "test.h"
#include "image/image.h"
#include "util/base64.h"

#include <dirent.h>
#include <stdint.h>

/* ---- helpers ---------------------------------------------------------------------------- */

#include "image_helpers.h"

/* Decodes a shared-data file; NULL rgb on failure (already reported). */
static tkr_rgb_image decode_file(const char *rel) {
    tkr_rgb_image img = {0};
    size_t n = 0;
    uint8_t *bytes = read_all(test_data_path(rel), &n);
    if (!bytes) return img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(bytes, n, NULL, &img, &err);
    CHECK(st == TKR_OK, "%s: %s", rel, err.message);
    free(bytes);
    return img;
}

static int is_gray(const tkr_rgb_image *img) {
    for (size_t i = 0; i < (size_t)img->width * img->height; i++)
        if (img->rgb[3 * i] != img->rgb[3 * i + 1] || img->rgb[3 * i] != img->rgb[3 * i + 2])
            return 0;
    return 1;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- smart_resize ------------------------------------------------------------------------ */

static void expect_resize(int h, int w, int64_t lo, int64_t hi, int want_h, int want_w) {
    int rh = -1, rw = -1;
    tkr_error err = {0};
    tkr_status st = tkr_smart_resize(h, w, 28, lo, hi, &rh, &rw, &err);
    CHECK(st == TKR_OK && rh == want_h && rw == want_w, "smart_resize(%d, %d) = %dx%d (%s), want %dx%d",
          h, w, rh, rw, err.message, want_h, want_w);
}

static void test_smart_resize_worked_examples(void) {
    const int64_t lo = 256 * 28 * 28, hi = 1280 * 28 * 28;
    /* spec 1.3 table (h x w) */
    expect_resize(480, 640, lo, hi, 476, 644);
    expect_resize(1024, 1024, lo, hi, 980, 980);
    expect_resize(224, 224, lo, hi, 448, 448);
    expect_resize(1080, 1920, lo, hi, 728, 1316);
    /* Python's round() is half-to-even: 70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4, 126/28 = 4.5 -> 4 */
    expect_resize(70, 70, 0, hi, 56, 56);
    expect_resize(98, 98, 0, hi, 112, 112);
    expect_resize(126, 126, 0, hi, 112, 112);
    expect_resize(71, 69, 0, hi, 84, 56);
    /* never below one factor per side */
    expect_resize(3, 5, 0, hi, 28, 28);
    /* long/short over 200 after rounding: the long side is clamped to short * 200 */
    expect_resize(28, 10000, 0, (int64_t)1 << 40, 28, 5600);
    expect_resize(10000, 28, 0, (int64_t)1 << 40, 5600, 28);
    /* exactly 200 is allowed */
    expect_resize(28, 5600, 0, (int64_t)1 << 40, 28, 5600);
}

static void test_smart_resize_errors(void) {
    int rh, rw;
    tkr_error err = {0};
    CHECK(tkr_smart_resize(0, 10, 28, 0, 1000000, &rh, &rw, &err) == TKR_ERR_INVALID_ARG,
          "zero height");
    CHECK(strstr(err.message, "10x0") != NULL, "message names the size: %s", err.message);
    CHECK(tkr_smart_resize(10, -1, 28, 0, 1000000, &rh, &rw, &err) == TKR_ERR_INVALID_ARG,
          "negative width");
    CHECK(tkr_smart_resize(10, 10, 0, 0, 1000000, &rh, &rw, &err) == TKR_ERR_INVALID_ARG,
          "zero factor");
    CHECK(tkr_smart_resize(10, 10, 28, 2000, 1000, &rh, &rw, &err) == TKR_ERR_INVALID_ARG,
          "min > max");
    /* 1 x 100000 cannot keep a 28-pixel short side inside 1280 tokens: Python divides by 0 */
    tkr_status st = tkr_smart_resize(1, 100000, 28, 256 * 784, 1280 * 784, &rh, &rw, &err);
    CHECK(st == TKR_ERR_IMAGE, "degenerate aspect ratio: %s", tkr_status_name(st));
}

/* ---- bicubic resize ---------------------------------------------------------------------- */

static tkr_rgb_image make_image(int w, int h) {
    tkr_rgb_image img = {0};
    img.width = w;
    img.height = h;
    img.rgb = malloc((size_t)w * h * 3);
    return img;
}

static void test_resize_same_size_is_copy(void) {
    tkr_rgb_image in = make_image(37, 23), out;
    for (size_t i = 0; i < 37 * 23 * 3; i++) in.rgb[i] = (uint8_t)(i * 131 + 7);
    tkr_error err = {0};
    CHECK(tkr_image_resize_bicubic(&in, 37, 23, &out, &err) == TKR_OK, "%s", err.message);
    CHECK(out.width == 37 && out.height == 23 && out.rgb != in.rgb &&
              !memcmp(out.rgb, in.rgb, 37 * 23 * 3), "same size must copy the bytes");
    tkr_rgb_image_free(&out);
    tkr_rgb_image_free(&in);
}

static void test_resize_constant_stays_constant(void) {
    static const int sizes[][2] = {{64, 48}, {13, 48}, {64, 7}, {200, 150}, {5, 3}, {28, 560}};
    tkr_rgb_image in = make_image(50, 40);
    for (size_t i = 0; i < 50 * 40; i++) {
        in.rgb[3 * i] = 200;
        in.rgb[3 * i + 1] = 17;
        in.rgb[3 * i + 2] = 255;
    }
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        tkr_rgb_image out;
        tkr_error err = {0};
        tkr_status st = tkr_image_resize_bicubic(&in, sizes[s][0], sizes[s][1], &out, &err);
        CHECK(st == TKR_OK, "%s", err.message);
        if (st != TKR_OK) continue;
        int bad = 0;
        for (size_t i = 0; i < (size_t)out.width * out.height; i++)
            bad += out.rgb[3 * i] != 200 || out.rgb[3 * i + 1] != 17 || out.rgb[3 * i + 2] != 255;
        CHECK(bad == 0, "50x40 -> %dx%d: %d pixels changed", sizes[s][0], sizes[s][1], bad);
        tkr_rgb_image_free(&out);
    }
    tkr_rgb_image_free(&in);
}

/* A 4 -> 2 pixel shrink worked by hand: scale 2, support 4, taps at (x - c + 0.5) / 2.
 * Output 0 (center 1): kernel(-0.25, 0.25, 0.75, 1.25) = .8671875 .8671875 .2265625 -.0703125,
 * sum 1.890625, on [0 0 255 255]: 255 * .15625 / 1.890625 = 21.07 -> 21.
 * Output 1 (center 3): the mirror image: 255 * 1.734375 / 1.890625 = 233.93 -> 234. */
static void test_resize_hand_computed(void) {
    tkr_rgb_image in = make_image(4, 1), out;
    const uint8_t row[4] = {0, 0, 255, 255};
    for (int x = 0; x < 4; x++) in.rgb[3 * x] = in.rgb[3 * x + 1] = in.rgb[3 * x + 2] = row[x];
    tkr_error err = {0};
    CHECK(tkr_image_resize_bicubic(&in, 2, 1, &out, &err) == TKR_OK, "%s", err.message);
    CHECK(out.rgb && out.rgb[0] == 21 && out.rgb[3] == 234, "got %d %d, want 21 234",
          out.rgb ? out.rgb[0] : -1, out.rgb ? out.rgb[3] : -1);
    tkr_rgb_image_free(&out);
    /* the vertical pass is the same filter: a 1x4 column gives the same two values */
    tkr_rgb_image col = make_image(1, 4);
    for (int y = 0; y < 4; y++) col.rgb[3 * y] = col.rgb[3 * y + 1] = col.rgb[3 * y + 2] = row[y];
    CHECK(tkr_image_resize_bicubic(&col, 1, 2, &out, &err) == TKR_OK, "%s", err.message);
    CHECK(out.rgb && out.rgb[0] == 21 && out.rgb[3] == 234, "vertical: got %d %d",
          out.rgb ? out.rgb[0] : -1, out.rgb ? out.rgb[3] : -1);
    tkr_rgb_image_free(&out);
    tkr_rgb_image_free(&col);
    tkr_rgb_image_free(&in);
}

static void test_resize_rejects_bad_sizes(void) {
    tkr_rgb_image in = make_image(4, 4), out;
    memset(in.rgb, 9, 48);
    tkr_error err = {0};
    CHECK(tkr_image_resize_bicubic(&in, 0, 4, &out, &err) == TKR_ERR_INVALID_ARG, "zero width");
    CHECK(tkr_image_resize_bicubic(&in, 4, -3, &out, &err) == TKR_ERR_INVALID_ARG, "negative");
    CHECK(tkr_image_resize_bicubic(&in, 1 << 25, 4, &out, &err) == TKR_ERR_LIMIT, "huge");
    tkr_rgb_image_free(&in);
}

/* ---- patchify ---------------------------------------------------------------------------- */

/* Inverts the normalisation to recover the byte a value came from. */
static int unnormalise(float v, int c) {
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double stdv[3] = {0.26862954, 0.26130258, 0.27577711};
    return (int)lround(v * stdv[c] * 255.0 + mean[c] * 255.0);
}

/* 56x84 image: 4x6 patches of 14 px, merge blocks 2x3. Channel R holds the patch row, G the
 * patch column, B the pixel's py*14+px inside its patch, so every value says where it came
 * from. Rows must run over 2x2 blocks in raster order, then the block's 4 patches; columns
 * over (channel, t, py, px) with the frame repeated for t = 0, 1. */
static void test_patch_order(void) {
    tkr_rgb_image img = make_image(84, 56);
    for (int y = 0; y < 56; y++)
        for (int x = 0; x < 84; x++) {
            uint8_t *p = img.rgb + ((size_t)y * 84 + x) * 3;
            p[0] = (uint8_t)(y / 14 * 10);
            p[1] = (uint8_t)(x / 14 * 10);
            p[2] = (uint8_t)((y % 14) * 14 + x % 14);
        }
    float *pv = NULL;
    int gh = 0, gw = 0;
    tkr_error err = {0};
    tkr_status st = tkr_image_patchify(&img, 14, 2, 2, &pv, &gh, &gw, &err);
    CHECK(st == TKR_OK && gh == 4 && gw == 6, "patchify: %s grid %dx%d", err.message, gh, gw);
    if (st == TKR_OK) {
        /* hand-listed (patch row, patch col) of the first 12 rows */
        static const int want[12][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3},
                                        {1, 2}, {1, 3}, {0, 4}, {0, 5}, {1, 4}, {1, 5}};
        for (int r = 0; r < 12; r++) {
            const float *row = pv + (size_t)r * 1176;
            CHECK(unnormalise(row[0], 0) == want[r][0] * 10 &&
                      unnormalise(row[392], 1) == want[r][1] * 10,
                  "row %d is patch (%d, %d), want (%d, %d)", r, unnormalise(row[0], 0) / 10,
                  unnormalise(row[392], 1) / 10, want[r][0], want[r][1]);
        }
        /* row 12 starts the second block row: patch (2, 0); the last row is patch (3, 5) */
        CHECK(unnormalise(pv[12 * 1176], 0) == 20 && unnormalise(pv[12 * 1176 + 392], 1) == 0,
              "row 12");
        CHECK(unnormalise(pv[23 * 1176], 0) == 30 && unnormalise(pv[23 * 1176 + 392], 1) == 50,
              "row 23");
        /* inside a row: column c*392 + t*196 + py*14 + px */
        int bad = 0;
        for (int r = 0; r < 24; r++)
            for (int t = 0; t < 2; t++)
                for (int k = 0; k < 196; k++) {
                    const float *row = pv + (size_t)r * 1176;
                    bad += unnormalise(row[2 * 392 + t * 196 + k], 2) != k;
                    bad += row[t * 196 + k] != row[k] || row[392 + t * 196 + k] != row[392 + k];
                }
        CHECK(bad == 0, "%d values out of (channel, t, py, px) order", bad);
        /* the normalisation itself: (0 - 255*mean) / (255*std) for a zero byte of red */
        CHECK(fabsf(pv[0] - (float)(-0.48145466 / 0.26862954)) < 1e-6f, "pv[0] = %.8f", pv[0]);
    }
    free(pv);
    tkr_rgb_image_free(&img);
}

static void test_patchify_rejects_bad_sizes(void) {
    tkr_rgb_image img = make_image(30, 28);
    memset(img.rgb, 0, 30 * 28 * 3);
    float *pv = NULL;
    int gh, gw;
    tkr_error err = {0};
    CHECK(tkr_image_patchify(&img, 14, 2, 2, &pv, &gh, &gw, &err) == TKR_ERR_INVALID_ARG &&
              pv == NULL, "30 wide is not a multiple of 28");
    CHECK(tkr_image_patchify(&img, 0, 2, 2, &pv, &gh, &gw, &err) == TKR_ERR_INVALID_ARG, "patch 0");
    tkr_rgb_image_free(&img);
}

/* ---- decoding shared/data ---------------------------------------------------------------- */

static void test_decode_every_photo(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_data_path("images/photos"));
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n_images = 0, n_jpeg = 0, n_png = 0, n_webp = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *dot = strrchr(ent->d_name, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".jpg") && strcmp(dot, ".jpeg") &&
                     strcmp(dot, ".webp")))
            continue;
        char rel[512];
        snprintf(rel, sizeof rel, "images/photos/%s", ent->d_name);
        tkr_rgb_image img = decode_file(rel);
        if (!img.rgb) continue;
        n_images++;
        n_jpeg += !strcmp(img.format, "JPEG");
        n_png += !strcmp(img.format, "PNG");
        n_webp += !strcmp(img.format, "WEBP");
        CHECK(img.width > 0 && img.height > 0, "%s: %dx%d", rel, img.width, img.height);
        if (!strcmp(img.source_mode, "L"))
            CHECK(is_gray(&img), "%s: gray source must give R = G = B", rel);
        /* the whole Ops-MM path on the same bytes gives the token count smart_resize predicts */
        size_t n = 0;
        uint8_t *bytes = read_all(test_data_path(rel), &n);
        tkr_image_params p = tkr_image_default_params();
        float *pv = NULL;
        int gh = 0, gw = 0, rh = 0, rw = 0;
        tkr_error err = {0};
        CHECK(bytes && tkr_image_preprocess(bytes, n, &p, &pv, &gh, &gw, &err) == TKR_OK,
              "%s: preprocess: %s", rel, err.message);
        tkr_smart_resize(img.height, img.width, 28, 256 * 784, 1280 * 784, &rh, &rw, &err);
        CHECK(gh * 14 == rh && gw * 14 == rw, "%s: grid %dx%d vs %dx%d", rel, gh, gw, rh, rw);
        CHECK(gh * gw / 4 >= 256 && gh * gw / 4 <= 1280, "%s: %d tokens", rel, gh * gw / 4);
        free(pv);
        free(bytes);
        tkr_rgb_image_free(&img);
    }
    closedir(d);
    CHECK(n_images == 22 && n_jpeg >= 8 && n_png >= 7 && n_webp >= 5,
          "photos: %d images (%d JPEG, %d PNG, %d WebP)", n_images, n_jpeg, n_png, n_webp);
}

static void test_png_colour_types_and_depths(void) {
    static const struct {
        const char *file, *mode;
    } suite[] = {
        {"basn0g01", "1"},   {"basn0g08", "L"},    {"basn0g16", "I;16"}, {"basn2c08", "RGB"},
        {"basn2c16", "RGB"}, {"basn3p01", "P"},    {"basn3p08", "P"},    {"basn4a08", "LA"},
        {"basn6a08", "RGBA"}, {"basn6a16", "RGBA"}, {"ftbrn2c08", "RGB"}, {"ftp0n3p08", "P"},
        {"ibasn2c08", "RGB"}, {"ibasn6a08", "RGBA"},
    };
    for (size_t i = 0; i < sizeof suite / sizeof *suite; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "images/pngsuite/%s.png", suite[i].file);
        tkr_rgb_image img = decode_file(rel);
        if (!img.rgb) continue;
        CHECK(img.width == 32 && img.height == 32, "%s: %dx%d", rel, img.width, img.height);
        CHECK(!strcmp(img.source_mode, suite[i].mode), "%s: mode %s, want %s", rel,
              img.source_mode, suite[i].mode);
        tkr_rgb_image_free(&img);
    }
    /* 1-bit gray is 0 or 255 only */
    tkr_rgb_image g1 = decode_file("images/pngsuite/basn0g01.png");
    int other = 0;
    for (size_t i = 0; g1.rgb && i < 32 * 32 * 3; i++) other += g1.rgb[i] != 0 && g1.rgb[i] != 255;
    CHECK(g1.rgb && other == 0 && is_gray(&g1), "1-bit gray: %d values not 0/255", other);
    tkr_rgb_image_free(&g1);
    /* 16-bit gray: Pillow clips (I;16 -> RGB), it does not scale: most of this ramp is 255 */
    tkr_rgb_image g16 = decode_file("images/pngsuite/basn0g16.png");
    int n255 = 0;
    for (size_t i = 0; g16.rgb && i < 32 * 32; i++) n255 += g16.rgb[3 * i] == 255;
    CHECK(g16.rgb && is_gray(&g16) && n255 > 32 * 32 / 2, "16-bit gray: %d of 1024 at 255", n255);
    tkr_rgb_image_free(&g16);
    /* Adam7 interlacing changes the bytes on disk, not the pixels */
    const char *pairs[][2] = {{"images/pngsuite/basn2c08.png", "images/pngsuite/ibasn2c08.png"},
                              {"images/pngsuite/basn6a08.png", "images/pngsuite/ibasn6a08.png"}};
    for (int k = 0; k < 2; k++) {
        tkr_rgb_image a = decode_file(pairs[k][0]), b = decode_file(pairs[k][1]);
        CHECK(a.rgb && b.rgb && !memcmp(a.rgb, b.rgb, 32 * 32 * 3), "%s vs %s", pairs[k][0],
              pairs[k][1]);
        tkr_rgb_image_free(&a);
        tkr_rgb_image_free(&b);
    }
    /* a 1-bit palette image uses at most two colours */
    tkr_rgb_image p1 = decode_file("images/pngsuite/basn3p01.png");
    int distinct = 0;
    uint8_t seen[4][3];
    for (size_t i = 0; p1.rgb && i < 32 * 32 && distinct <= 2; i++) {
        int found = 0;
        for (int k = 0; k < distinct; k++) found |= !memcmp(seen[k], p1.rgb + 3 * i, 3);
        if (!found) memcpy(seen[distinct++], p1.rgb + 3 * i, 3);
    }
    CHECK(p1.rgb && distinct == 2, "1-bit palette: %d colours", distinct);
    tkr_rgb_image_free(&p1);
}

/* syn-gray16.png holds v = x*400 + y*7 (tools/gen_reference.py): RGB must be min(v, 255). */
static void test_gray16_clips_like_pillow(void) {
    size_t n = 0;
    uint8_t *bytes = read_all("tests/fixtures/images/syn-gray16.png", &n);
    if (!bytes) return;
    tkr_rgb_image img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(bytes, n, NULL, &img, &err);
    CHECK(st == TKR_OK && img.width == 160 && img.height == 120, "%s", err.message);
    if (st == TKR_OK) {
        int bad = 0;
        for (int y = 0; y < 120; y++)
            for (int x = 0; x < 160; x++) {
                int v = x * 400 + y * 7;
                int want = v > 255 ? 255 : v;
                const uint8_t *p = img.rgb + ((size_t)y * 160 + x) * 3;
                bad += p[0] != want || p[1] != want || p[2] != want;
            }
        CHECK(bad == 0, "%d pixels differ from min(v, 255)", bad);
        tkr_rgb_image_free(&img);
    }
    free(bytes);
}

static void test_decode_seeds_and_refusals(void) {
    static const struct {
        const char *file;
        tkr_status want;
        const char *fragment;
    } seeds[] = {
        {"images/seeds/afl-not_kitty.jpg", TKR_OK, NULL},
        {"images/seeds/afl-not_kitty.png", TKR_OK, NULL},
        {"images/seeds/afl-not_kitty_alpha.png", TKR_OK, NULL},
        {"images/seeds/afl-not_kitty_icc.png", TKR_OK, NULL},
        {"images/seeds/afl-not_kitty.webp", TKR_OK, NULL},
        {"images/seeds/afl-not_kitty.gif", TKR_ERR_UNSUPPORTED, "GIF"},
        {"images/seeds/afl-not_kitty.bmp", TKR_ERR_UNSUPPORTED, "BMP"},
        {"images/seeds/afl-not_kitty.tiff", TKR_ERR_UNSUPPORTED, "TIFF"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        size_t n = 0;
        uint8_t *bytes = read_all(test_data_path(seeds[i].file), &n);
        if (!bytes) continue;
        tkr_rgb_image img;
        tkr_error err = {0};
        tkr_status st = tkr_image_decode(bytes, n, NULL, &img, &err);
        CHECK(st == seeds[i].want, "%s: %s (%s)", seeds[i].file, tkr_status_name(st), err.message);
        if (seeds[i].fragment)
            CHECK(strstr(err.message, seeds[i].fragment) != NULL, "%s: message '%s'",
                  seeds[i].file, err.message);
        if (st == TKR_OK) {
            CHECK(img.width == 32 && img.height == 32, "%s: %dx%d", seeds[i].file, img.width,
                  img.height);
            tkr_rgb_image_free(&img);
        }
        free(bytes);
    }
    tkr_rgb_image img;
    tkr_error err = {0};
    const uint8_t junk[] = "hello, this is not an image";
    CHECK(tkr_image_decode(junk, sizeof junk, NULL, &img, &err) == TKR_ERR_IMAGE &&
              strstr(err.message, "unknown format"), "junk: %s", err.message);
    CHECK(tkr_image_decode(junk, 0, NULL, &img, &err) == TKR_ERR_IMAGE, "empty input");
}

/* Pillow's Image.open does not apply EXIF orientation: neither do we. An APP1 Exif segment with
 * Orientation = 6 (rotate 90) spliced after SOI changes nothing. */
static void test_exif_orientation_ignored(void) {
    size_t n = 0;
    uint8_t *orig = read_all(test_data_path("images/photos/wuffs-peacock.s2x1-422.jpeg"), &n);
    if (!orig) return;
    static const uint8_t app1[] = {
        0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,            /* APP1, length 34      */
        'M', 'M', 0x00, 0x2a, 0x00, 0x00, 0x00, 0x08,                /* TIFF header, IFD at 8 */
        0x00, 0x01,                                                  /* one entry            */
        0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, /* Orientation=6 */
        0x00, 0x00, 0x00, 0x00};                                     /* no next IFD          */
    uint8_t *rot = malloc(n + sizeof app1);
    memcpy(rot, orig, 2);
    memcpy(rot + 2, app1, sizeof app1);
    memcpy(rot + 2 + sizeof app1, orig + 2, n - 2);
    tkr_rgb_image a, b;
    tkr_error err = {0};
    CHECK(tkr_image_decode(orig, n, NULL, &a, &err) == TKR_OK, "%s", err.message);
    CHECK(tkr_image_decode(rot, n + sizeof app1, NULL, &b, &err) == TKR_OK, "%s", err.message);
    CHECK(a.rgb && b.rgb && a.width == b.width && a.height == b.height && a.width == 100 &&
              !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3),
          "EXIF orientation must not change the pixels");
    tkr_rgb_image_free(&a);
    tkr_rgb_image_free(&b);
    free(rot);
    free(orig);
}

/* ---- sources and limits ------------------------------------------------------------------ */

static char *make_data_uri(const char *prefix, const uint8_t *bytes, size_t n) {
    size_t b64 = tkr_base64_encoded_size(n);
    char *uri = malloc(strlen(prefix) + b64);
    strcpy(uri, prefix);
    tkr_base64_encode(bytes, n, uri + strlen(prefix));
    return uri;
}

static void test_data_uris(void) {
    size_t n = 0;
    uint8_t *png = read_all(test_data_path("images/pngsuite/basn2c08.png"), &n);
    if (!png) return;
    const char *ok_prefixes[] = {"data:image/png;base64,", "data:image;base64,",
                                 "data:application/octet-stream;base64,",
                                 "DATA:image/jpeg;name=x.png;base64,", "data:;base64,"};
    for (size_t i = 0; i < sizeof ok_prefixes / sizeof *ok_prefixes; i++) {
        char *uri = make_data_uri(ok_prefixes[i], png, n);
        uint8_t *got = NULL;
        size_t got_n = 0;
        tkr_error err = {0};
        tkr_status st = tkr_image_read_source(uri, 0, &got, &got_n, &err);
        CHECK(st == TKR_OK && got_n == n && !memcmp(got, png, n), "%s: %s", ok_prefixes[i],
              err.message);
        free(got);
        free(uri);
    }
    static const struct {
        const char *uri;
        tkr_status want;
    } bad[] = {
        {"data:text/plain;base64,aGVsbG8=", TKR_ERR_UNSUPPORTED},
        {"data:image/png,rawbytes", TKR_ERR_UNSUPPORTED},
        {"data:image/png;base64", TKR_ERR_INVALID_ARG},
        {"data:image/png;base64,@@@@", TKR_ERR_INVALID_ARG},
        {"data:image/png;base64,", TKR_ERR_INVALID_ARG},
        {"https://example.com/cat.png", TKR_ERR_UNSUPPORTED},
        {"", TKR_ERR_INVALID_ARG},
        {"/nonexistent/dir/cat.png", TKR_ERR_IO},
        {"file:///nonexistent/cat.png", TKR_ERR_IO},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *got = (uint8_t *)1;
        size_t got_n = 7;
        tkr_error err = {0};
        tkr_status st = tkr_image_read_source(bad[i].uri, 0, &got, &got_n, &err);
        CHECK(st == bad[i].want && got == NULL && got_n == 0 && err.message[0],
              "'%s': %s (%s)", bad[i].uri, tkr_status_name(st), err.message);
    }
    /* file:// and a plain path give the same bytes */
    char uri[4200];
    snprintf(uri, sizeof uri, "file://%s", test_data_path("images/pngsuite/basn2c08.png"));
    uint8_t *got = NULL;
    size_t got_n = 0;
    tkr_error err = {0};
    CHECK(tkr_image_read_source(uri, 0, &got, &got_n, &err) == TKR_OK && got_n == n &&
              !memcmp(got, png, n), "file URI: %s", err.message);
    free(got);
    free(png);
}

static void test_max_bytes(void) {
    size_t n = 0;
    uint8_t *png = read_all(test_data_path("images/pngsuite/basn2c08.png"), &n);
    if (!png) return;
    char *uri = make_data_uri("data:image/png;base64,", png, n);
    uint8_t *got = NULL;
    size_t got_n = 0;
    tkr_error err = {0};
    CHECK(tkr_image_read_source(uri, n - 1, &got, &got_n, &err) == TKR_ERR_LIMIT && !got,
          "data URI over max_bytes: %s", err.message);
    CHECK(tkr_image_read_source(uri, n, &got, &got_n, &err) == TKR_OK && got_n == n,
          "exactly max_bytes: %s", err.message);
    free(got);
    got = NULL;
    CHECK(tkr_image_read_source(test_data_path("images/pngsuite/basn2c08.png"), 100, &got,
                                &got_n, &err) == TKR_ERR_LIMIT && !got,
          "file over max_bytes: %s", err.message);
    tkr_image_limits lim = tkr_image_default_limits();
    lim.max_bytes = n - 1;
    tkr_rgb_image img;
    CHECK(tkr_image_decode(png, n, &lim, &img, &err) == TKR_ERR_LIMIT &&
              strstr(err.message, "limit"), "decode over max_bytes: %s", err.message);
    free(uri);
    free(png);
}

/* A PNG whose IHDR claims 100000 x 100000 (10 Gpx) and has no pixel data: refused from the
 * header with a limit error, not an allocation or a truncation error. */
static void test_pixel_limit_from_png_header(void) {
    uint8_t png[8 + 25 + 12];
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(png, sig, 8);
    uint8_t *ihdr = png + 8;
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, 100000);
    put_be32(ihdr + 12, 100000);
    ihdr[16] = 8;  /* bit depth */
    ihdr[17] = 2;  /* RGB */
    ihdr[18] = ihdr[19] = ihdr[20] = 0;
    put_be32(ihdr + 21, crc32_bytes(ihdr + 4, 17));
    uint8_t *iend = ihdr + 25;
    put_be32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put_be32(iend + 8, crc32_bytes(iend + 4, 4));
    tkr_rgb_image img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(png, sizeof png, NULL, &img, &err);
    CHECK(st == TKR_ERR_LIMIT && strstr(err.message, "100000x100000"), "PNG 100000^2: %s (%s)",
          tkr_status_name(st), err.message);
    /* a small claimed size passes the budget and fails later, for the missing data */
    put_be32(ihdr + 8, 64);
    put_be32(ihdr + 12, 64);
    put_be32(ihdr + 21, crc32_bytes(ihdr + 4, 17));
    st = tkr_image_decode(png, sizeof png, NULL, &img, &err);
    CHECK(st == TKR_ERR_IMAGE, "PNG 64^2 without IDAT: %s (%s)", tkr_status_name(st), err.message);
    /* and the budget is configurable */
    tkr_image_limits lim = tkr_image_default_limits();
    lim.max_pixels = 64 * 64 - 1;
    st = tkr_image_decode(png, sizeof png, &lim, &img, &err);
    CHECK(st == TKR_ERR_LIMIT, "PNG 64^2 over a 4095-pixel budget: %s", err.message);
}

/* A JPEG header (SOI, SOF0 65000 x 65000, SOS) with no tables or data: refused as too large. */
static void test_pixel_limit_from_jpeg_header(void) {
    static const uint8_t jpg[] = {
        0xff, 0xd8,                                             /* SOI */
        0xff, 0xc0, 0x00, 0x11, 0x08, 0xfd, 0xe8, 0xfd, 0xe8,   /* SOF0, 8 bit, 65000 x 65000 */
        0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
        0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00,
        0x00, 0x00, 0x00, 0x00};
    tkr_rgb_image img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(jpg, sizeof jpg, NULL, &img, &err);
    CHECK(st == TKR_ERR_LIMIT && strstr(err.message, "65000x65000"), "JPEG 65000^2: %s (%s)",
          tkr_status_name(st), err.message);
}

/* A lossless WebP header (VP8L) claiming 16384 x 16384 (268 Mpx). */
static void test_pixel_limit_from_webp_header(void) {
    uint8_t webp[12 + 8 + 5 + 16] = {0};
    memcpy(webp, "RIFF", 4);
    uint32_t riff = sizeof webp - 8;
    webp[4] = (uint8_t)riff; /* little endian */
    memcpy(webp + 8, "WEBPVP8L", 8);
    webp[16] = (uint8_t)(sizeof webp - 20);
    uint8_t *b = webp + 20;
    b[0] = 0x2f;                               /* VP8L signature */
    uint32_t bits = 16383u | 16383u << 14;     /* width-1, height-1, no alpha, version 0 */
    b[1] = (uint8_t)bits;
    b[2] = (uint8_t)(bits >> 8);
    b[3] = (uint8_t)(bits >> 16);
    b[4] = (uint8_t)(bits >> 24);
    tkr_rgb_image img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(webp, sizeof webp, NULL, &img, &err);
    CHECK(st == TKR_ERR_LIMIT && strstr(err.message, "16384x16384"), "WebP 16384^2: %s (%s)",
          tkr_status_name(st), err.message);
}

static void test_preprocess_rejects_bad_params(void) {
    size_t n = 0;
    uint8_t *png = read_all(test_data_path("images/pngsuite/basn2c08.png"), &n);
    if (!png) return;
    tkr_image_params p = tkr_image_default_params();
    float *pv = NULL;
    int gh, gw;
    tkr_error err = {0};
    p.min_tokens = 2000;
    CHECK(tkr_image_preprocess(png, n, &p, &pv, &gh, &gw, &err) == TKR_ERR_INVALID_ARG && !pv,
          "min > max tokens");
    p = tkr_image_default_params();
    p.min_tokens = 4;
    p.max_tokens = 16;
    CHECK(tkr_image_preprocess(png, n, &p, &pv, &gh, &gw, &err) == TKR_OK, "%s", err.message);
    CHECK(gh * gw / 4 >= 4 && gh * gw / 4 <= 16, "32x32 with 4..16 tokens: grid %dx%d", gh, gw);
    free(pv);
    free(png);
}

int main(void) {
    RUN(test_smart_resize_worked_examples);
    RUN(test_smart_resize_errors);
    RUN(test_resize_same_size_is_copy);
    RUN(test_resize_constant_stays_constant);
    RUN(test_resize_hand_computed);
    RUN(test_resize_rejects_bad_sizes);
    RUN(test_patch_order);
    RUN(test_patchify_rejects_bad_sizes);
    RUN(test_decode_every_photo);
    RUN(test_png_colour_types_and_depths);
    RUN(test_gray16_clips_like_pillow);
    RUN(test_decode_seeds_and_refusals);
    RUN(test_exif_orientation_ignored);
    RUN(test_data_uris);
    RUN(test_max_bytes);
    RUN(test_pixel_limit_from_png_header);
    RUN(test_pixel_limit_from_jpeg_header);
    RUN(test_pixel_limit_from_webp_header);
    RUN(test_preprocess_rejects_bad_params);
    return test_summary();
}

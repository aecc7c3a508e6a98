/* test_image_malformed.c - hostile and broken input: every file of shared/data/images/malformed,
 * truncations, strict versus lenient JPEG, and seeded byte-flip fuzzing of valid images. Each
 * decode must either succeed with a sane image or fail with a message naming the format; it
 * must never crash, leak or hang (run under ASan/UBSan by tests/run.sh). */
#include "test.h"
#include "image/image.h"
#include "util/platform.h"

#include <dirent.h>
#include <stdint.h>

#include "image_helpers.h"

static int has_format_prefix(const char *msg) {
    return !strncmp(msg, "PNG: ", 5) || !strncmp(msg, "JPEG: ", 6) || !strncmp(msg, "WebP: ", 6) ||
           !strncmp(msg, "image: ", 7);
}

/* Decodes and checks the contract: OK with a buffer of the stated size, or an error code with
 * a message that names the format. Returns the status. */
static tkr_status decode_checked(const char *what, const uint8_t *bytes, size_t n,
                                 const tkr_image_limits *lim) {
    tkr_rgb_image img;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(bytes, n, lim, &img, &err);
    if (st == TKR_OK) {
        CHECK(img.rgb && img.width > 0 && img.height > 0, "%s: decoded to %dx%d", what, img.width,
              img.height);
        /* touch every byte: ASan flags a buffer smaller than width*height*3 */
        unsigned sum = 0;
        for (size_t i = 0; img.rgb && i < (size_t)img.width * img.height * 3; i++) sum += img.rgb[i];
        (void)sum;
        tkr_rgb_image_free(&img);
    } else {
        CHECK(img.rgb == NULL, "%s: failed but left a buffer", what);
        CHECK(has_format_prefix(err.message) && strlen(err.message) > 10,
              "%s: unclear message '%s'", what, err.message);
    }
    return st;
}

static void test_every_malformed_file(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_data_path("images/malformed"));
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n_files = 0, n_rejected = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *dot = strrchr(ent->d_name, '.');
        if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".jpg") && strcmp(dot, ".jpeg")))
            continue;
        char path[4608];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        size_t n = 0;
        uint8_t *bytes = read_all(path, &n);
        if (!bytes) continue;
        n_files++;
        tkr_status st = decode_checked(ent->d_name, bytes, n, NULL);
        n_rejected += st != TKR_OK;
        if (strstr(ent->d_name, "truncated") || strstr(ent->d_name, "huge_") ||
            strstr(ent->d_name, "pngsuite-corrupt-x") || strstr(ent->d_name, "badadler") ||
            strstr(ent->d_name, "cgbi"))
            CHECK(st != TKR_OK, "%s must be rejected", ent->d_name);
        /* the lenient JPEG mode must be just as safe */
        tkr_image_limits lim = tkr_image_default_limits();
        lim.lenient_jpeg = 1;
        decode_checked(ent->d_name, bytes, n, &lim);
        free(bytes);
    }
    closedir(d);
    CHECK(n_files == 45, "expected the 45 malformed files, found %d", n_files);
    CHECK(n_rejected >= 38, "only %d of %d malformed files rejected", n_rejected, n_files);
    printf("  malformed: %d files, %d rejected\n", n_files, n_rejected);
}

static const char *const seed_files[] = {
    "images/seeds/afl-not_kitty.jpg",          "images/seeds/afl-not_kitty.png",
    "images/seeds/afl-not_kitty.webp",         "images/photos/wuffs-peacock.progressive.jpeg",
    "images/pngsuite/ibasn2c08.png",           "images/photos/wuffs-hippopotamus.lossless.webp",
    "images/pngsuite/basn3p01.png",            "images/photos/wuffs-peacock.grayscale.jpeg",
};
#define N_SEEDS (sizeof seed_files / sizeof *seed_files)

/* Truncating a valid file anywhere must fail cleanly (JPEG and PNG say "truncated"). */
static void test_truncations(void) {
    for (size_t s = 0; s < N_SEEDS; s++) {
        size_t n = 0;
        uint8_t *bytes = read_all(test_data_path(seed_files[s]), &n);
        if (!bytes) continue;
        for (int k = 1; k < 8; k++) {
            size_t cut = n * (size_t)k / 8;
            char what[600];
            snprintf(what, sizeof what, "%s cut to %zu of %zu", seed_files[s], cut, n);
            tkr_rgb_image img;
            tkr_error err = {0};
            tkr_status st = tkr_image_decode(bytes, cut, NULL, &img, &err);
            CHECK(st != TKR_OK, "%s: decoded", what);
            if (st == TKR_OK) tkr_rgb_image_free(&img);
            if (!strstr(seed_files[s], ".webp"))
                CHECK(strstr(err.message, "truncated") != NULL, "%s: '%s'", what, err.message);
        }
        free(bytes);
    }
}

/* Junk between two JPEG markers is a libjpeg "corrupt data" warning: an error by default, and
 * with lenient_jpeg (Pillow's behaviour) the same pixels as the clean file. */
static void test_strict_and_lenient_jpeg(void) {
    size_t n = 0;
    uint8_t *clean = read_all(test_data_path("images/photos/wuffs-peacock.s2x1-422.jpeg"), &n);
    if (!clean) return;
    /* after SOI and the first marker segment (FF xx, 2-byte length) */
    size_t at = 4 + ((size_t)clean[4] << 8 | clean[5]);
    CHECK(clean[2] == 0xff && at < n, "unexpected JPEG layout");
    uint8_t *dirty = malloc(n + 3);
    memcpy(dirty, clean, at);
    dirty[at] = 0x00;
    dirty[at + 1] = 0x17;
    dirty[at + 2] = 0x2a;
    memcpy(dirty + at + 3, clean + at, n - at);
    tkr_rgb_image a, b;
    tkr_error err = {0};
    tkr_status st = tkr_image_decode(dirty, n + 3, NULL, &b, &err);
    CHECK(st == TKR_ERR_IMAGE && strstr(err.message, "Corrupt JPEG data") &&
              strstr(err.message, "extraneous"), "strict: %s (%s)", tkr_status_name(st), err.message);
    tkr_image_limits lim = tkr_image_default_limits();
    lim.lenient_jpeg = 1;
    CHECK(tkr_image_decode(clean, n, &lim, &a, &err) == TKR_OK, "clean: %s", err.message);
    CHECK(tkr_image_decode(dirty, n + 3, &lim, &b, &err) == TKR_OK, "lenient: %s", err.message);
    CHECK(a.rgb && b.rgb && a.width == b.width && a.height == b.height &&
              !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3),
          "lenient decode must equal the clean decode");
    tkr_rgb_image_free(&a);
    tkr_rgb_image_free(&b);
    free(dirty);
    free(clean);
}

/* xorshift64*: a fixed seed makes every run mutate the same bytes. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Rewrites every PNG chunk CRC so mutations reach libpng's inflate and our conversion instead
 * of stopping at the checksum. */
static void fix_png_crcs(uint8_t *d, size_t n) {
    size_t pos = 8;
    while (pos <= n && n - pos >= 12) {
        uint32_t len = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 |
                       (uint32_t)d[pos + 2] << 8 | d[pos + 3];
        if ((uint64_t)len + 12 > n - pos) break;
        uint32_t c = crc32_bytes(d + pos + 4, (size_t)len + 4);
        uint8_t *p = d + pos + 8 + len;
        p[0] = (uint8_t)(c >> 24);
        p[1] = (uint8_t)(c >> 16);
        p[2] = (uint8_t)(c >> 8);
        p[3] = (uint8_t)c;
        pos += 12 + (size_t)len;
    }
}

/* 8 seeds x 150 mutants: 1-8 random bytes replaced, sometimes a cut, PNG CRCs repaired in half
 * the cases, JPEG decoded strict and lenient. Time-boxed so a hang shows up as a failure.
 * TKR_FUZZ_ITERS=N runs N mutants per seed instead (a longer local campaign). */
static void test_byte_flip_fuzz(void) {
    uint64_t rng = 0x5eed1234abcdULL;
    int iters = 150;
    const char *env = getenv("TKR_FUZZ_ITERS");
    if (env && atoi(env) > 0) iters = atoi(env);
    tkr_image_limits lim = tkr_image_default_limits();
    lim.max_pixels = 1 << 20; /* mutated headers may claim big images: keep each decode small */
    double t0 = tkr_now_seconds();
    int n_runs = 0, n_ok = 0;
    for (size_t s = 0; s < N_SEEDS; s++) {
        size_t n = 0;
        uint8_t *orig = read_all(test_data_path(seed_files[s]), &n);
        if (!orig) continue;
        int is_png = n > 8 && orig[1] == 'P', is_jpeg = orig[0] == 0xff;
        uint8_t *buf = malloc(n);
        for (int it = 0; it < iters; it++) {
            memcpy(buf, orig, n);
            int flips = 1 + (int)(rng_next(&rng) % 8);
            for (int f = 0; f < flips; f++) {
                /* bias half the flips into the first 256 bytes, where the headers are */
                size_t span = (rng_next(&rng) & 1) && n > 256 ? 256 : n;
                buf[rng_next(&rng) % span] = (uint8_t)rng_next(&rng);
            }
            size_t len = n;
            if (rng_next(&rng) % 8 == 0) len = (size_t)(rng_next(&rng) % n) + 1;
            if (is_png && (it & 1)) fix_png_crcs(buf, len);
            char what[600];
            snprintf(what, sizeof what, "%s mutant %d", seed_files[s], it);
            lim.lenient_jpeg = is_jpeg && (it & 1);
            n_ok += decode_checked(what, buf, len, &lim) == TKR_OK;
            n_runs++;
        }
        free(buf);
        free(orig);
    }
    double secs = tkr_now_seconds() - t0;
    CHECK(n_runs == (int)N_SEEDS * iters, "ran %d mutants", n_runs);
    CHECK(secs < 60 || iters != 150, "fuzzing took %.1f s: something is too slow or hanging", secs);
    printf("  fuzz: %d mutants, %d still decoded, %.2f s\n", n_runs, n_ok, secs);
}

int main(void) {
    RUN(test_every_malformed_file);
    RUN(test_truncations);
    RUN(test_strict_and_lenient_jpeg);
    RUN(test_byte_flip_fuzz);
    return test_summary();
}

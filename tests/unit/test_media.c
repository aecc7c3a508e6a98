/* test_media.c - the frame-sampling rule of MTEB's FramesCollator, page ranges, and the public
 * video/PDF entry points on a fixture video and on bad input. Expected index lists are worked
 * out by hand from the rule's Python (range(0, n, step)[:target]). */
#include "test.h"
#include "media/media.h"

static int same(const int64_t *got, int n_got, const int64_t *want, int n_want) {
    if (n_got != n_want) return 0;
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static void test_sample_fps_mode(void) {
    int64_t out[256];
    int64_t w1[] = {0, 12, 24, 36, 48, 60};
    int n = tkr_video_sample_indices(75, 3.0, 2.0, 64, 0, out, 256);
    CHECK(same(out, n, w1, 6), "75 frames, 3 s: n=%d", n);
    /* 200 frames, 40 s: target min(80, 64) = 64, step 200 // 64 = 3 */
    n = tkr_video_sample_indices(200, 40.0, 2.0, 64, 0, out, 256);
    CHECK(n == 64 && out[0] == 0 && out[1] == 3 && out[63] == 189, "n=%d last=%lld", n, (long long)out[n - 1]);
    /* int(0.2) = 0 -> at least one frame */
    int64_t w3[] = {0};
    n = tkr_video_sample_indices(5, 0.1, 2.0, 64, 0, out, 256);
    CHECK(same(out, n, w3, 1), "short clip n=%d", n);
    /* fewer frames than the target: every frame once (fps mode never repeats) */
    int64_t w4[] = {0, 1, 2, 3, 4};
    n = tkr_video_sample_indices(5, 1.0, 30.0, 64, 0, out, 256);
    CHECK(same(out, n, w4, 5), "sparse n=%d", n);
    /* int() truncates: 2.9999999 * 2 = 5.9999998 -> 5 frames, step 75 // 5 = 15 */
    int64_t w5[] = {0, 15, 30, 45, 60};
    n = tkr_video_sample_indices(75, 2.9999999, 2.0, 64, 0, out, 256);
    CHECK(same(out, n, w5, 5), "truncation n=%d", n);
    /* step leaves fewer than target: range(0, 10, 3) = 0 3 6 9 -> target 3 keeps 0 3 6 */
    int64_t w6[] = {0, 3, 6};
    n = tkr_video_sample_indices(10, 1.5, 2.0, 64, 0, out, 256);
    CHECK(same(out, n, w6, 3), "n=%d", n);
}

static void test_sample_fixed_mode(void) {
    int64_t out[64];
    int64_t w1[] = {0, 1, 2, 3, 4, 0, 1, 2};
    int n = tkr_video_sample_indices(5, 1.0, 2.0, 64, 8, out, 64);
    CHECK(same(out, n, w1, 8), "cyclic n=%d", n);
    int64_t w2[] = {0, 8, 16, 24, 32, 40, 48, 56, 64};
    n = tkr_video_sample_indices(75, 3.0, 2.0, 64, 9, out, 64);
    CHECK(same(out, n, w2, 9), "uniform n=%d", n);
    /* num_frames wins over fps and max_frames, as in the wrapper */
    n = tkr_video_sample_indices(75, 100.0, 2.0, 4, 9, out, 64);
    CHECK(n == 9, "n=%d", n);
}

static void test_sample_bad_arguments(void) {
    int64_t out[8];
    CHECK(tkr_video_sample_indices(0, 1.0, 2.0, 64, 0, out, 8) == -1, "no frames");
    CHECK(tkr_video_sample_indices(10, 1.0, 0.0, 64, 0, out, 8) == -1, "fps 0");
    CHECK(tkr_video_sample_indices(10, 100.0, 2.0, 64, 0, out, 8) == -1, "cap below target");
    CHECK(tkr_video_sample_indices(10, 0.0 / 0.0, 2.0, 64, 0, out, 8) == 1, "NaN duration: 1 frame");
    CHECK(tkr_video_sample_indices(10, 1e300, 2.0, 8, 0, out, 8) == 8, "huge duration: max_frames");
}

static void test_page_ranges(void) {
    int *p = NULL, n = 0;
    tkr_error e;
    CHECK(tkr_pdf_parse_pages("1-3,7", 10, 64, &p, &n, &e) == TKR_OK && n == 4 && p[0] == 1 &&
          p[2] == 3 && p[3] == 7, "1-3,7");
    free(p);
    CHECK(tkr_pdf_parse_pages(" 3 , 1 ", 10, 64, &p, &n, &e) == TKR_OK && n == 2 && p[0] == 3 && p[1] == 1, "3,1");
    free(p);
    CHECK(tkr_pdf_parse_pages("5-", 6, 64, &p, &n, &e) == TKR_OK && n == 2 && p[1] == 6, "5-");
    free(p);
    CHECK(tkr_pdf_parse_pages(NULL, 3, 64, &p, &n, &e) == TKR_OK && n == 3 && p[2] == 3, "all");
    free(p);
    const char *bad[] = {"0", "3-1", "1,,2", "abc", "2-x", "1-2,", "-3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(tkr_pdf_parse_pages(bad[i], 10, 64, &p, &n, &e) == TKR_ERR_INVALID_ARG && !p, "'%s'", bad[i]);
    CHECK(tkr_pdf_parse_pages("11", 10, 64, &p, &n, &e) == TKR_ERR_INVALID_ARG, "past the end");
    CHECK(tkr_pdf_parse_pages("", 70, 64, &p, &n, &e) == TKR_ERR_LIMIT, "all of 70 over 64");
    CHECK(tkr_pdf_parse_pages("1-65", 70, 64, &p, &n, &e) == TKR_ERR_LIMIT, "65 selected");
    CHECK(tkr_pdf_parse_pages("1", 0, 64, &p, &n, &e) == TKR_ERR_FORMAT, "no pages");
}

static void test_video_decode_fixture(void) {
    tkr_video_input v = {.path = "tests/fixtures/media/h264.mp4"};
    tkr_media_frames f;
    tkr_error e;
    tkr_status st = tkr_video_decode(&v, NULL, &f, &e);
    CHECK(st == TKR_OK, "%s", e.message);
    if (st != TKR_OK) return;
    CHECK(f.n == 6 && f.n_source == 75 && fabs(f.duration_s - 3.0) < 1e-9, "n=%d src=%lld dur=%f", f.n,
          (long long)f.n_source, f.duration_s);
    for (int i = 0; i < f.n; i++)
        CHECK(f.frames[i].index == 12 * i && f.frames[i].width == 160 && f.frames[i].height == 120 &&
              f.frames[i].rgb, "frame %d: index %lld", i, (long long)f.frames[i].index);
    tkr_media_frames_free(&f);
    /* probing agrees with decoding */
    int n = 0, w = 0, h = 0;
    CHECK(tkr_video_probe(&v, NULL, &n, &w, &h, &e) == TKR_OK && n == 6 && w == 160 && h == 120,
          "probe n=%d %dx%d", n, w, h);
    tkr_video_input fixed = {.path = v.path, .num_frames = 80};
    CHECK(tkr_video_decode(&fixed, NULL, &f, &e) == TKR_OK && f.n == 80 && f.frames[75].index == 0 &&
          f.frames[79].index == 4, "cyclic fixed mode");
    tkr_media_frames_free(&f);
}

static void test_video_bad_input(void) {
    tkr_media_frames f;
    tkr_error e;
    static const uint8_t junk[4096] = {1, 2, 3};
    tkr_video_input v = {.data = junk, .size = sizeof junk};
    CHECK(tkr_video_decode(&v, NULL, &f, &e) == TKR_ERR_FORMAT && f.n == 0 && !f.frames, "junk: %s", e.message);
    CHECK(tkr_video_decode(NULL, NULL, &f, &e) == TKR_ERR_INVALID_ARG, "NULL");
    tkr_video_input neg = {.path = "tests/fixtures/media/h264.mp4", .fps = -1};
    CHECK(tkr_video_decode(&neg, NULL, &f, &e) == TKR_ERR_INVALID_ARG, "fps -1");
    tkr_media_limits lim = tkr_media_default_limits();
    lim.max_frames = 4;
    tkr_video_input many = {.path = "tests/fixtures/media/h264.mp4", .num_frames = 5};
    CHECK(tkr_video_decode(&many, &lim, &f, &e) == TKR_ERR_LIMIT, "over max_frames: %s", e.message);
    lim = tkr_media_default_limits();
    lim.max_pixels = 100;
    tkr_video_input big = {.path = "tests/fixtures/media/h264.mp4"};
    CHECK(tkr_video_decode(&big, &lim, &f, &e) == TKR_ERR_LIMIT, "over max_pixels: %s", e.message);
    tkr_video_input missing = {.path = "/nonexistent/video.mp4"};
    CHECK(tkr_video_decode(&missing, NULL, &f, &e) == TKR_ERR_IO, "missing file: %s", e.message);
    tkr_video_input remote = {.path = "https://example.com/a.mp4"};
    CHECK(tkr_video_decode(&remote, NULL, &f, &e) == TKR_ERR_UNSUPPORTED, "remote URL");
}

static void test_pdf_bad_input(void) {
    tkr_media_frames f;
    tkr_error e;
    static const uint8_t text[] = "hello, this is not a PDF";
    tkr_pdf_input p = {.data = text, .size = sizeof text};
    tkr_status st = tkr_pdf_render(&p, NULL, &f, &e);
#ifdef TKR_HAVE_PDF
    CHECK(tkr_pdf_supported(), "PDF build");
    CHECK(st == TKR_ERR_FORMAT && f.n == 0, "not a PDF: %d %s", st, e.message);
    tkr_pdf_input d = {.data = text, .size = sizeof text, .dpi = 5};
    CHECK(tkr_pdf_render(&d, NULL, &f, &e) == TKR_ERR_INVALID_ARG, "dpi 5");
#else
    CHECK(!tkr_pdf_supported() && st == TKR_ERR_UNSUPPORTED, "PDF=0 build");
#endif
}

int main(void) {
    RUN(test_sample_fps_mode);
    RUN(test_sample_fixed_mode);
    RUN(test_sample_bad_arguments);
    RUN(test_page_ranges);
    RUN(test_video_decode_fixture);
    RUN(test_video_bad_input);
    RUN(test_pdf_bad_input);
    return test_summary();
}

/* resize.c - Ops-MM's smart_resize and Pillow's bicubic resampler, reproduced bit for bit.
 *
 * The resampler follows Pillow's libImaging/Resample.c algorithm (written anew here):
 *   - per output pixel i: center = (i + 0.5) * scale, scale = in / out;
 *   - support = 2 * max(scale, 1) (the kernel widens when shrinking, i.e. antialiasing);
 *   - taps xmin = (int)(center - support + 0.5) .. xmax = (int)(center + support + 0.5), clamped
 *     to the image; weight of tap x = cubic((x + xmin - center + 0.5) / max(scale, 1)), a = -0.5,
 *     normalised by their sum, all in double;
 *   - weights to int32 with 22 fraction bits, rounded half away from zero;
 *   - accumulate u8 * weight from 1 << 21, shift right 22, clamp to 0..255;
 *   - horizontal pass first, only over the rows the vertical pass reads, then vertical.
 * Any change in the order of these double operations can flip a pixel by one, so keep them. */
#include "image/image.h"
#include "util/error.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- smart_resize ---------------------------------------------------------------------- */

tkr_status tkr_smart_resize(int height, int width, int factor, int64_t min_pixels,
                            int64_t max_pixels, int *out_height, int *out_width, tkr_error *err) {
    if (height <= 0 || width <= 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "smart_resize: invalid image size %dx%d", width,
                        height);
    if (factor <= 0 || min_pixels < 0 || max_pixels <= 0 || min_pixels > max_pixels)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "smart_resize: invalid factor %d or pixel range [%lld, %lld]", factor,
                        (long long)min_pixels, (long long)max_pixels);
    /* Python: h_bar = max(factor, round(h / factor) * factor), round() is half-to-even. */
    double h = height, w = width, f = factor;
    double h_bar = fmax(f, nearbyint(h / f) * f);
    double w_bar = fmax(f, nearbyint(w / f) * f);
    double area = (double)((int64_t)height * width); /* exact: < 2^62 only matters past 2^53 */
    if (h_bar * w_bar > (double)max_pixels) {
        double beta = sqrt(area / (double)max_pixels);
        h_bar = floor(h / beta / f) * f;
        w_bar = floor(w / beta / f) * f;
    } else if (h_bar * w_bar < (double)min_pixels) {
        double beta = sqrt((double)min_pixels / area);
        h_bar = ceil(h * beta / f) * f;
        w_bar = ceil(w * beta / f) * f;
    }
    if (h_bar < 1 || w_bar < 1) /* Python would divide by zero in the ratio test below */
        return tkr_fail(err, TKR_ERR_IMAGE,
                        "smart_resize: %dx%d is too elongated to fit %lld pixels in multiples of %d",
                        width, height, (long long)max_pixels, factor);
    if (fmax(h_bar, w_bar) / fmin(h_bar, w_bar) > TKR_IMAGE_MAX_RATIO) {
        if (h_bar > w_bar)
            h_bar = w_bar * TKR_IMAGE_MAX_RATIO;
        else
            w_bar = h_bar * TKR_IMAGE_MAX_RATIO;
    }
    if (h_bar > INT_MAX || w_bar > INT_MAX)
        return tkr_fail(err, TKR_ERR_LIMIT, "smart_resize: target size %.0fx%.0f is too large",
                        w_bar, h_bar);
    *out_height = (int)h_bar;
    *out_width = (int)w_bar;
    return TKR_OK;
}

/* ---- Pillow bicubic ---------------------------------------------------------------------- */

#define RESAMPLE_PRECISION_BITS 22 /* 32 - 8 - 2: 8 bits of pixel, 2 of headroom */

/* Keys' cubic convolution kernel with a = -0.5, support 2; written as Pillow evaluates it. */
static double bicubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* One axis of the resampling: for each output index, the first input tap and the tap count
 * (bounds[2*i], bounds[2*i+1]) and ksize fixed-point weights (zero past the count). */
typedef struct {
    int ksize;
    int *bounds;     /* [out_size][2] */
    int32_t *coeffs; /* [out_size][ksize] */
} resample_axis;

static void axis_free(resample_axis *a) {
    free(a->bounds);
    free(a->coeffs);
    memset(a, 0, sizeof *a);
}

static tkr_status axis_build(int in_size, int out_size, resample_axis *a, tkr_error *err) {
    memset(a, 0, sizeof *a);
    double scale = (double)(float)in_size / out_size; /* Pillow: (double)(float box) / out */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)INT_MAX / 8 || (double)out_size * ksize_d > (double)(SIZE_MAX / 16))
        return tkr_fail(err, TKR_ERR_LIMIT, "resize: %d -> %d needs too many filter taps", in_size,
                        out_size);
    int ksize = (int)ksize_d;
    double *w = malloc(sizeof(double) * (size_t)ksize);
    a->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    a->coeffs = malloc(sizeof(int32_t) * (size_t)out_size * (size_t)ksize);
    if (!w || !a->bounds || !a->coeffs) {
        free(w);
        axis_free(a);
        return tkr_fail(err, TKR_ERR_NOMEM, "resize: out of memory for filter weights");
    }
    a->ksize = ksize;
    double inv_filterscale = 1.0 / filterscale;
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double sum = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic_kernel((x + xmin - center + 0.5) * inv_filterscale);
            sum += w[x];
        }
        int32_t *k = a->coeffs + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (sum != 0.0 ? w[x] / sum : w[x]) : 0.0;
            double scaled = v * (1 << RESAMPLE_PRECISION_BITS);
            k[x] = (int32_t)(v < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
        a->bounds[2 * i] = xmin;
        a->bounds[2 * i + 1] = xmax;
    }
    free(w);
    return TKR_OK;
}

static inline uint8_t clip_fixed(int32_t v) {
    int32_t s = v >> RESAMPLE_PRECISION_BITS; /* arithmetic shift: floor, as in Pillow */
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* rows [row0, row0 + n_rows) of src (width in_w) -> dst rows 0..n_rows, width out_w. */
static void pass_horizontal(const uint8_t *src, int in_w, int row0, int n_rows, uint8_t *dst,
                            int out_w, const resample_axis *a) {
    const int32_t half = 1 << (RESAMPLE_PRECISION_BITS - 1);
    for (int y = 0; y < n_rows; y++) {
        const uint8_t *s = src + (size_t)(row0 + y) * in_w * 3;
        uint8_t *d = dst + (size_t)y * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            int xmin = a->bounds[2 * x], n = a->bounds[2 * x + 1];
            const int32_t *k = a->coeffs + (size_t)x * a->ksize;
            const uint8_t *p = s + (size_t)xmin * 3;
            int32_t r = half, g = half, b = half;
            for (int t = 0; t < n; t++, p += 3) {
                r += p[0] * k[t];
                g += p[1] * k[t];
                b += p[2] * k[t];
            }
            d[3 * x] = clip_fixed(r);
            d[3 * x + 1] = clip_fixed(g);
            d[3 * x + 2] = clip_fixed(b);
        }
    }
}

/* src rows are indexed from row_shift (the first row the horizontal pass produced). */
static void pass_vertical(const uint8_t *src, int width, int row_shift, uint8_t *dst, int out_h,
                          const resample_axis *a) {
    const int32_t half = 1 << (RESAMPLE_PRECISION_BITS - 1);
    size_t stride = (size_t)width * 3;
    for (int y = 0; y < out_h; y++) {
        int ymin = a->bounds[2 * y] - row_shift, n = a->bounds[2 * y + 1];
        const int32_t *k = a->coeffs + (size_t)y * a->ksize;
        uint8_t *d = dst + (size_t)y * stride;
        for (size_t c = 0; c < stride; c++) {
            const uint8_t *p = src + (size_t)ymin * stride + c;
            int32_t acc = half;
            for (int t = 0; t < n; t++, p += stride) acc += *p * k[t];
            d[c] = clip_fixed(acc);
        }
    }
}

tkr_status tkr_image_resize_bicubic(const tkr_rgb_image *in, int out_width, int out_height,
                                    tkr_rgb_image *out, tkr_error *err) {
    if (!in || !out || !in->rgb || in->width <= 0 || in->height <= 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "resize: invalid input image");
    memset(out, 0, sizeof *out);
    if (out_width <= 0 || out_height <= 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "resize: invalid target size %dx%d", out_width,
                        out_height);
    /* Pillow's float box: sizes past 2^24 would not be exact and are absurd anyway. */
    if (in->width > (1 << 24) || in->height > (1 << 24) || out_width > (1 << 24) ||
        out_height > (1 << 24))
        return tkr_fail(err, TKR_ERR_LIMIT, "resize: %dx%d -> %dx%d is too large", in->width,
                        in->height, out_width, out_height);
    size_t out_bytes;
    if (!tkr_mul_size((size_t)out_width * (size_t)out_height, 3, &out_bytes))
        return tkr_fail(err, TKR_ERR_LIMIT, "resize: target too large");
    out->rgb = malloc(out_bytes);
    if (!out->rgb) return tkr_fail(err, TKR_ERR_NOMEM, "resize: out of memory");
    out->width = out_width;
    out->height = out_height;
    out->format = in->format;
    out->source_mode = in->source_mode;

    int need_h = out_width != in->width, need_v = out_height != in->height;
    if (!need_h && !need_v) { /* Image.resize returns a copy for the same size */
        memcpy(out->rgb, in->rgb, out_bytes);
        return TKR_OK;
    }
    resample_axis ax = {0}, ay = {0};
    uint8_t *tmp = NULL;
    tkr_status st = axis_build(in->height, out_height, &ay, err);
    if (st == TKR_OK && need_h) st = axis_build(in->width, out_width, &ax, err);
    if (st != TKR_OK) goto done;

    if (need_h && need_v) {
        /* only the source rows some output row reads: [first, last) */
        int first = ay.bounds[0];
        int last = ay.bounds[2 * (out_height - 1)] + ay.bounds[2 * (out_height - 1) + 1];
        size_t tmp_bytes = (size_t)out_width * (size_t)(last - first) * 3;
        tmp = malloc(tmp_bytes ? tmp_bytes : 1);
        if (!tmp) {
            st = tkr_fail(err, TKR_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        pass_horizontal(in->rgb, in->width, first, last - first, tmp, out_width, &ax);
        pass_vertical(tmp, out_width, first, out->rgb, out_height, &ay);
    } else if (need_h) {
        pass_horizontal(in->rgb, in->width, 0, in->height, out->rgb, out_width, &ax);
    } else {
        pass_vertical(in->rgb, in->width, 0, out->rgb, out_height, &ay);
    }
done:
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    if (st != TKR_OK) tkr_rgb_image_free(out);
    return st;
}

/* decode_png.c - PNG through libpng (full API, errors longjmp back here), converted to RGB the
 * way Pillow opens PNGs and converts them (PngImagePlugin modes, Convert.c):
 *
 *   gray 1 bit  "1"    -> 0 / 255            gray 2/4 bit "L" -> v*85 / v*17, replicated
 *   gray 8 bit  "L"    -> replicated         gray 16 bit "I;16" -> min(v, 255): Pillow CLIPS
 *   gray+alpha 8 "LA", 16 "RGBA" (!)         -> gray (high byte) replicated, alpha dropped
 *   RGB 8/16, RGBA 8/16                      -> R,G,B (high byte of 16-bit), alpha dropped
 *   palette 1/2/4/8 bit "P"                  -> palette colour; tRNS ignored; indices past the
 *                                               PLTE map to black (Pillow's zeroed palette)
 *
 * No gamma, sBIT, iCCP or tRNS handling is applied, as in Pillow. libpng warnings are ignored;
 * its errors (bad CRC in critical chunks, bad zlib data, truncation) reject the image. Problems
 * found after the last row was decoded (trailing chunks, missing IEND) are ignored, since
 * Pillow never reads past the image data. */
#include "image/decode_internal.h"
#include "util/error.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The row layout after the transforms set in png_run: 1 byte per sample (1/2/4-bit unpacked,
 * 16-bit stripped to the high byte) except 16-bit gray, which stays big-endian 16-bit. */
typedef struct {
    int color_type, bit_depth;
    uint8_t palette[256][3];
} png_layout;

/* State shared with libpng's callbacks and the longjmp target; lives on the heap so that what
 * the decode changed survives the jump. */
typedef struct {
    const uint8_t *data;
    size_t size, pos;
    png_structp png;
    png_infop info;
    uint8_t *pixels;      /* decoded rows: one row, or all of them when interlaced */
    uint8_t **row_ptrs;   /* [height] into pixels (interlaced only) */
    int rows_done;        /* every row converted: later libpng errors are ignored */
    png_layout layout;
    char message[200];
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->size - job->pos) png_error(png, "image file is truncated");
    memcpy(dst, job->data + job->pos, n);
    job->pos += n;
}

static void convert_row(const png_layout *l, const uint8_t *in, uint8_t *out, int width) {
    switch (l->color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (l->bit_depth == 16) {
            for (int x = 0; x < width; x++, out += 3) {
                uint8_t v = in[2 * x] ? 255 : in[2 * x + 1];
                out[0] = out[1] = out[2] = v;
            }
        } else {
            int scale = l->bit_depth == 1 ? 255 : l->bit_depth == 2 ? 85 : l->bit_depth == 4 ? 17 : 1;
            for (int x = 0; x < width; x++, out += 3) out[0] = out[1] = out[2] = (uint8_t)(in[x] * scale);
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        for (int x = 0; x < width; x++, out += 3) out[0] = out[1] = out[2] = in[2 * x];
        break;
    case PNG_COLOR_TYPE_RGB:
        memcpy(out, in, (size_t)width * 3);
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        for (int x = 0; x < width; x++, out += 3, in += 4) {
            out[0] = in[0];
            out[1] = in[1];
            out[2] = in[2];
        }
        break;
    default: /* palette */
        for (int x = 0; x < width; x++, out += 3) memcpy(out, l->palette[in[x]], 3);
        break;
    }
}

static const char *pil_mode(int color_type, int bit_depth) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return bit_depth == 1 ? "1" : bit_depth == 16 ? "I;16" : "L";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return bit_depth == 16 ? "RGBA" : "LA";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
    default: return "P";
    }
}

static tkr_status png_run(png_job *job, const tkr_image_limits *lim, tkr_rgb_image *out,
                          tkr_error *err) {
    png_layout *layout = &job->layout;
    if (setjmp(png_jmpbuf(job->png))) {
        if (job->rows_done) return TKR_OK;
        return tkr_fail(err, TKR_ERR_IMAGE, "PNG: %s", job->message);
    }
    png_set_read_fn(job->png, job, png_read_mem);
    /* Our own pixel budget (with its own message) decides; libpng's default 1e6 cap would not. */
    png_set_user_limits(job->png, 0x7fffffff, 0x7fffffff);
    png_read_info(job->png, job->info);

    png_uint_32 w, h;
    int bit_depth, color_type, interlace;
    png_get_IHDR(job->png, job->info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
    tkr_status st = tkr_image_alloc_rgb(w, h, lim, "PNG", out, err);
    if (st != TKR_OK) return st;
    out->source_mode = pil_mode(color_type, bit_depth);

    layout->color_type = color_type;
    layout->bit_depth = bit_depth;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int n_pal = 0;
        if (png_get_PLTE(job->png, job->info, &pal, &n_pal) & PNG_INFO_PLTE) {
            for (int i = 0; i < n_pal && i < 256; i++) {
                layout->palette[i][0] = pal[i].red;
                layout->palette[i][1] = pal[i].green;
                layout->palette[i][2] = pal[i].blue;
            }
        }
    }
    if (bit_depth < 8) png_set_packing(job->png);
    if (bit_depth == 16 && color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(job->png);
    int passes = png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    size_t rowbytes = png_get_rowbytes(job->png, job->info);
    size_t min_rowbytes = (size_t)w * (color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 16 ? 2 : 1);
    if (rowbytes < min_rowbytes) {
        return tkr_fail(err, TKR_ERR_INTERNAL, "PNG: unexpected row size %zu", rowbytes);
    }

    size_t stride = (size_t)out->width * 3;
    if (passes > 1) {
        size_t total;
        if (!tkr_mul_size(rowbytes, h, &total)) {
                return tkr_fail(err, TKR_ERR_LIMIT, "PNG: image too large");
        }
        job->pixels = malloc(total);
        job->row_ptrs = malloc(sizeof(uint8_t *) * h);
        if (!job->pixels || !job->row_ptrs) {
                return tkr_fail(err, TKR_ERR_NOMEM, "PNG: out of memory for an interlaced image");
        }
        for (png_uint_32 y = 0; y < h; y++) job->row_ptrs[y] = job->pixels + (size_t)y * rowbytes;
        png_read_image(job->png, job->row_ptrs);
        for (png_uint_32 y = 0; y < h; y++)
            convert_row(layout, job->row_ptrs[y], out->rgb + (size_t)y * stride, out->width);
    } else {
        job->pixels = malloc(rowbytes);
        if (!job->pixels) {
                return tkr_fail(err, TKR_ERR_NOMEM, "PNG: out of memory");
        }
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(job->png, job->pixels, NULL);
            convert_row(layout, job->pixels, out->rgb + (size_t)y * stride, out->width);
        }
    }
    job->rows_done = 1;
    png_read_end(job->png, NULL);
    return TKR_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the chunk list before libpng sees it.
 * - The IHDR size is checked against the pixel budget here, so the limit holds whatever
 *   libpng would complain about first (libpng only reports the size after finding IDAT).
 * - libpng allocates (and zero-fills) a buffer of the declared length before reading an
 *   ancillary chunk, so a 60-byte file claiming a 1 GiB tEXt chunk would cost 1 GiB. A non-IDAT
 *   chunk longer than the rest of the file is a truncated file, which Pillow also refuses
 *   ("Truncated File Read"); an IDAT that runs past the end is left to libpng, as the rows may
 *   be complete before the data ends. */
static tkr_status png_prescan(const uint8_t *d, size_t n, const tkr_image_limits *lim,
                              tkr_error *err) {
    if (n >= 8 + 8 + 13 && be32(d + 8) == 13 && !memcmp(d + 12, "IHDR", 4)) {
        uint64_t w = be32(d + 16), h = be32(d + 20);
        uint64_t max_pixels = lim->max_pixels ? lim->max_pixels : TKR_IMAGE_DEFAULT_MAX_PIXELS;
        if (w * h > max_pixels)
            return tkr_fail(err, TKR_ERR_LIMIT,
                            "PNG: image is %llux%llu = %llu pixels, over the limit of %llu pixels",
                            (unsigned long long)w, (unsigned long long)h,
                            (unsigned long long)(w * h), (unsigned long long)max_pixels);
    }
    size_t pos = 8;
    while (n - pos >= 8) {
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        size_t avail = n - pos - 8;
        if (!memcmp(type, "IEND", 4) || !memcmp(type, "IDAT", 4)) return TKR_OK;
        if ((uint64_t)len + 4 > avail) {
            char name[5];
            for (int i = 0; i < 4; i++)
                name[i] = (type[i] >= 'A' && type[i] <= 'z') ? (char)type[i] : '?';
            name[4] = '\0';
            return tkr_fail(err, TKR_ERR_IMAGE,
                            "PNG: chunk '%s' claims %u bytes but only %zu remain (truncated file)",
                            name, len, avail);
        }
        pos += 12 + (size_t)len;
    }
    return TKR_OK;
}

tkr_status tkr_decode_png(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                          tkr_rgb_image *out, tkr_error *err) {
    tkr_status pre = png_prescan(data, size, lim, err);
    if (pre != TKR_OK) return pre;
    png_job *job = calloc(1, sizeof *job);
    if (!job) return tkr_fail(err, TKR_ERR_NOMEM, "PNG: out of memory");
    job->data = data;
    job->size = size;
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    if (job->png) job->info = png_create_info_struct(job->png);
    tkr_status st;
    if (!job->png || !job->info)
        st = tkr_fail(err, TKR_ERR_NOMEM, "PNG: cannot create the libpng reader");
    else
        st = png_run(job, lim, out, err);
    png_destroy_read_struct(job->png ? &job->png : NULL, job->info ? &job->info : NULL, NULL);
    free(job->pixels);
    free(job->row_ptrs);
    free(job);
    return st;
}

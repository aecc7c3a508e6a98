/* decode_jpeg.c - JPEG through libjpeg-turbo, configured as Pillow configures it so the pixels
 * match: ISLOW IDCT, fancy upsampling, libjpeg's own colour-space guess, output RGB/L/CMYK.
 *
 * Pillow (JpegDecode.c) feeds libjpeg through a *suspending* source and reports "image file is
 * truncated" when libjpeg still wants bytes after the whole file was given. We do the same: all
 * bytes are in the buffer, fill_input_buffer answers "suspend", and any suspension before the
 * last scanline is a truncation error. (A suspension inside jpeg_finish_decompress, i.e. a
 * missing EOI after complete image data, is accepted, as Pillow accepts it.)
 *
 * libjpeg errors longjmp back here instead of exit()ing. Its warnings are corrupt-data reports;
 * Pillow silences them, we reject the image unless limits->lenient_jpeg (see image.h). */
#include "image/decode_internal.h"
#include "util/error.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr pub; /* first member: libjpeg gives us back a pointer to it */
    jmp_buf jump;
    int lenient;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_error_ctx;

/* Everything the longjmp target needs lives here, in the caller's frame, so nothing the decode
 * changed is lost when libjpeg jumps back (C11 7.13.2.1: locals of the setjmp frame would be). */
typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_ctx jerr;
    struct jpeg_source_mgr src;
    struct jpeg_progress_mgr progress;
    uint8_t *row; /* one output scanline [width * components] */
    int created;
} jpeg_job;

static void on_error_exit(j_common_ptr c) {
    jpeg_error_ctx *e = (jpeg_error_ctx *)c->err;
    (*c->err->format_message)(c, e->message);
    longjmp(e->jump, 1);
}

/* Warnings (level < 0) about corrupt data end the decode unless lenient; two warnings only
 * describe metadata we do not use and never affect pixels, so they always pass. */
static void on_emit_message(j_common_ptr c, int level) {
    jpeg_error_ctx *e = (jpeg_error_ctx *)c->err;
    if (level >= 0) return; /* trace output */
    c->err->num_warnings++;
    int code = c->err->msg_code;
    if (e->lenient || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
    char text[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, text);
    snprintf(e->message, sizeof e->message, "%s (corrupt JPEG data)", text);
    longjmp(e->jump, 1);
}

static void on_output_message(j_common_ptr c) { (void)c; }

/* Bounds the work a hostile progressive file can ask for: each scan is a pass over the image. */
static void on_progress(j_common_ptr c) {
    if (!c->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > TKR_IMAGE_MAX_JPEG_SCANS) {
        jpeg_error_ctx *e = (jpeg_error_ctx *)c->err;
        snprintf(e->message, sizeof e->message, "more than %d progressive scans",
                 TKR_IMAGE_MAX_JPEG_SCANS);
        longjmp(e->jump, 1);
    }
}

static void src_init(j_decompress_ptr c) { (void)c; }
static void src_term(j_decompress_ptr c) { (void)c; }

/* The whole file is already in the buffer: wanting more means the file is truncated. */
static boolean src_fill(j_decompress_ptr c) {
    (void)c;
    return FALSE;
}

static void src_skip(j_decompress_ptr c, long n) {
    struct jpeg_source_mgr *s = c->src;
    if (n <= 0) return;
    if ((unsigned long)n >= s->bytes_in_buffer) {
        s->next_input_byte += s->bytes_in_buffer;
        s->bytes_in_buffer = 0;
    } else {
        s->next_input_byte += n;
        s->bytes_in_buffer -= (size_t)n;
    }
}

/* Pillow's CMYK path: the JPEG plugin always assumes Adobe's inverted CMYK ("CMYK;I" unpacks
 * with ~), then Convert.c cmyk2rgb: nk = 255 - K; R = nk - nk*C/255 (rounded MULDIV255). */
static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_inverted_to_rgb(const uint8_t *in, uint8_t *out, int width) {
    for (int x = 0; x < width; x++, in += 4, out += 3) {
        int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], k = 255 - in[3];
        int nk = 255 - k;
        /* nk - muldiv255(v, nk) is always in 0..255: no clipping needed */
        out[0] = (uint8_t)(nk - muldiv255(c, nk));
        out[1] = (uint8_t)(nk - muldiv255(m, nk));
        out[2] = (uint8_t)(nk - muldiv255(y, nk));
    }
}

static tkr_status truncated(tkr_error *err, const char *where) {
    return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: image file is truncated (%s)", where);
}

static tkr_status jpeg_run(jpeg_job *job, const uint8_t *data, size_t size,
                           const tkr_image_limits *lim, tkr_rgb_image *out, tkr_error *err) {
    struct jpeg_decompress_struct *ci = &job->cinfo;
    if (setjmp(job->jerr.jump))
        return tkr_fail(err, TKR_ERR_IMAGE, "JPEG: %s", job->jerr.message);

    jpeg_create_decompress(ci);
    job->created = 1;
    job->src.init_source = src_init;
    job->src.fill_input_buffer = src_fill;
    job->src.skip_input_data = src_skip;
    job->src.resync_to_restart = jpeg_resync_to_restart;
    job->src.term_source = src_term;
    job->src.next_input_byte = data;
    job->src.bytes_in_buffer = size;
    ci->src = &job->src;
    job->progress.progress_monitor = on_progress;
    ci->progress = &job->progress;

    if (jpeg_read_header(ci, TRUE) != JPEG_HEADER_OK) return truncated(err, "header");
    if (ci->data_precision != 8)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "JPEG: %d-bit samples are not supported",
                        ci->data_precision);
    const char *mode;
    switch (ci->num_components) {
    case 1: ci->out_color_space = JCS_GRAYSCALE; mode = "L"; break;
    case 3: ci->out_color_space = JCS_RGB; mode = "RGB"; break;
    case 4: ci->out_color_space = JCS_CMYK; mode = "CMYK"; break;
    default:
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "JPEG: %d-component images are not supported",
                        ci->num_components);
    }
    tkr_status st = tkr_image_alloc_rgb(ci->image_width, ci->image_height, lim, "JPEG", out, err);
    if (st != TKR_OK) return st;
    out->source_mode = mode;
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;

    if (!jpeg_start_decompress(ci)) return truncated(err, "before the first scanline");
    int comps = ci->output_components;
    if ((int)ci->output_width != out->width || (int)ci->output_height != out->height ||
        comps != ci->num_components)
        return tkr_fail(err, TKR_ERR_INTERNAL, "JPEG: unexpected output geometry");
    job->row = malloc((size_t)out->width * (size_t)comps);
    if (!job->row) return tkr_fail(err, TKR_ERR_NOMEM, "JPEG: out of memory");

    size_t stride = (size_t)out->width * 3;
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW rows[1] = {job->row};
        JDIMENSION y = ci->output_scanline;
        if (jpeg_read_scanlines(ci, rows, 1) != 1) return truncated(err, "in the image data");
        uint8_t *dst = out->rgb + (size_t)y * stride;
        if (comps == 3) {
            memcpy(dst, job->row, stride);
        } else if (comps == 1) {
            for (int x = 0; x < out->width; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] =
                                                     job->row[x];
        } else {
            cmyk_inverted_to_rgb(job->row, dst, out->width);
        }
    }
    (void)jpeg_finish_decompress(ci); /* suspension here = missing EOI: accepted, as in Pillow */
    return TKR_OK;
}

tkr_status tkr_decode_jpeg(const uint8_t *data, size_t size, const tkr_image_limits *lim,
                           tkr_rgb_image *out, tkr_error *err) {
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return tkr_fail(err, TKR_ERR_NOMEM, "JPEG: out of memory");
    job->cinfo.err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = on_error_exit;
    job->jerr.pub.emit_message = on_emit_message;
    job->jerr.pub.output_message = on_output_message;
    job->jerr.lenient = lim->lenient_jpeg;
    tkr_status st = jpeg_run(job, data, size, lim, out, err);
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
    free(job->row);
    free(job);
    return st;
}

/* video.c - video files to RGB frames with FFmpeg (libavformat, libavcodec, libswscale).
 *
 * Two passes over the file, both from memory (a custom AVIOContext; nested opens, which HLS or
 * concat playlists would use to reach other files, are refused):
 *   1. demux only: count the video stream's packets (n_source) and find the end of the stream,
 *      max(pts + duration) in seconds. This is what torchcodec's exact-mode metadata reports
 *      (num_frames, end_stream_seconds) and what MTEB's FramesCollator samples with; it works
 *      for variable frame rate and for containers that store no frame count.
 *   2. decode: frame i is the first decoded frame whose pts is at or after the i-th smallest
 *      packet pts (torchcodec's get_frames_at). Frames the sample does not use are decoded but
 *      not converted. When the stream ends before a wanted frame (undecodable trailing frames),
 *      the sample is recomputed with one frame fewer until it fits, as the wrapper retries.
 *
 * Conversion to RGB24 (docs/media.md): libswscale at the frame's own size with
 * SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT (bicubic chroma upsampling,
 * what torchcodec's flag-less context resolves to, made exact and CPU-independent), the
 * frame's YUV matrix (BT.601 when untagged) and range (limited unless tagged full / yuvj*).
 * Alpha is dropped, as Pillow's convert("RGB") does. */
#ifdef TKR_NO_VIDEO
/* Built with VIDEO=0 (no FFmpeg): video items get a clear error; the rest of the library is the
 * same. The ARM64 CI leg builds this way, and so may a minimal build. */
#include "media/media.h"
#include "util/error.h"
#include <stdlib.h>
#include <string.h>

static tkr_status no_video(tkr_error *err) {
    return tkr_fail(err, TKR_ERR_UNSUPPORTED, "this build has no video support (built with VIDEO=0, without FFmpeg)");
}
tkr_status tkr_video_decode_each(const tkr_video_input *v, const tkr_media_limits *lim, tkr_video_frame_fn fn,
                                 void *user, tkr_video_info *info, tkr_error *err) {
    (void)v, (void)lim, (void)fn, (void)user, (void)info;
    return no_video(err);
}
tkr_status tkr_video_decode(const tkr_video_input *video, const tkr_media_limits *lim, tkr_media_frames *out,
                            tkr_error *err) {
    (void)video, (void)lim;
    memset(out, 0, sizeof *out);
    return no_video(err);
}
void tkr_media_frames_free(tkr_media_frames *f) {
    if (!f) return;
    for (int i = 0; f->frames && i < f->n; i++) free(f->frames[i].rgb);
    free(f->frames);
    memset(f, 0, sizeof *f);
}
tkr_status tkr_video_probe(const tkr_video_input *v, const tkr_media_limits *lim, int *n_frames, int *width,
                           int *height, tkr_error *err) {
    (void)v, (void)lim, (void)n_frames, (void)width, (void)height;
    return no_video(err);
}
#else
#include "media/media.h"
#include "util/error.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SWS_FLAGS (SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT)

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    double deadline;         /* tkr_now_seconds() limit */
} mem_io;

static int mem_read(void *opaque, uint8_t *buf, int n) {
    mem_io *m = opaque;
    if (m->pos >= m->size) return AVERROR_EOF;
    size_t k = m->size - m->pos;
    if (k > (size_t)n) k = (size_t)n;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
    mem_io *m = opaque;
    if (whence & AVSEEK_SIZE) return (int64_t)m->size;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)m->pos
                 : whence == SEEK_END ? (int64_t)m->size : -1;
    if (base < 0) return AVERROR(EINVAL);
    int64_t p = base + off;
    if (p < 0 || p > (int64_t)m->size) return AVERROR(EINVAL);
    m->pos = (size_t)p;
    return p;
}

/* Stops demuxing/decoding once the wall-clock budget is spent. */
static int interrupt_cb(void *opaque) {
    const mem_io *m = opaque;
    return tkr_now_seconds() > m->deadline;
}

/* Playlists (hls, concat, dash...) open further URLs through io_open: refuse every one. */
static int refuse_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                       AVDictionary **options) {
    (void)s; (void)pb; (void)url; (void)flags; (void)options;
    return AVERROR(EPERM);
}

typedef struct {
    mem_io io;
    AVFormatContext *fmt;
    AVIOContext *avio;
    int stream;
    const AVCodec *codec;
} demux;

static void demux_close(demux *d) {
    if (d->fmt) avformat_close_input(&d->fmt);
    if (d->avio) {
        av_freep(&d->avio->buffer);
        avio_context_free(&d->avio);
    }
    d->fmt = NULL;
}

static tkr_status av_fail(tkr_error *err, tkr_status code, int ret, const char *what) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(ret, buf, sizeof buf);
    return tkr_fail(err, code, "%s: %s", what, buf);
}

static tkr_status demux_open(demux *d, const uint8_t *data, size_t size, double deadline,
                             tkr_error *err) {
    memset(d, 0, sizeof *d);
    d->io.data = data;
    d->io.size = size;
    d->io.deadline = deadline;
    d->stream = -1;
    uint8_t *buf = av_malloc(1 << 16);
    if (!buf) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    d->avio = avio_alloc_context(buf, 1 << 16, 0, &d->io, mem_read, NULL, mem_seek);
    d->fmt = avformat_alloc_context();
    if (!d->avio || !d->fmt) {
        if (!d->avio) av_free(buf);
        if (d->fmt) avformat_free_context(d->fmt);
        d->fmt = NULL;
        demux_close(d);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    d->fmt->pb = d->avio;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fmt->io_open = refuse_open;
    d->fmt->interrupt_callback.callback = interrupt_cb;
    d->fmt->interrupt_callback.opaque = &d->io;
    int ret = avformat_open_input(&d->fmt, NULL, NULL, NULL);
    if (ret < 0) {
        d->fmt = NULL; /* freed by avformat_open_input on failure */
        demux_close(d);
        if (tkr_now_seconds() > deadline)
            return tkr_fail(err, TKR_ERR_LIMIT, "video: the time limit ran out while probing");
        return av_fail(err, TKR_ERR_FORMAT, ret, "video: not a readable container");
    }
    ret = avformat_find_stream_info(d->fmt, NULL);
    if (ret < 0) {
        demux_close(d);
        return av_fail(err, TKR_ERR_FORMAT, ret, "video: cannot read the stream information");
    }
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &d->codec, 0);
    if (d->stream == AVERROR_DECODER_NOT_FOUND) {
        demux_close(d);
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "video: no decoder for this video codec");
    }
    if (d->stream < 0) {
        demux_close(d);
        return tkr_fail(err, TKR_ERR_FORMAT, "video: the file has no video stream");
    }
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != d->stream) d->fmt->streams[i]->discard = AVDISCARD_ALL;
    return TKR_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Pass 1: the sorted packet timestamps (pts, or dts without pts) and the stream's end. */
static tkr_status scan_packets(demux *d, const tkr_media_limits *lim, int64_t **pts_out,
                               int64_t *n_out, double *end_s, tkr_error *err) {
    AVStream *s = d->fmt->streams[d->stream];
    AVPacket *pkt = av_packet_alloc();
    int64_t *pts = NULL, n = 0, cap = 0, end = INT64_MIN;
    tkr_status st = TKR_OK;
    if (!pkt) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (;;) {
        int ret = av_read_frame(d->fmt, pkt);
        if (ret == AVERROR_EOF) break;
        if (ret < 0) {
            if (tkr_now_seconds() > d->io.deadline)
                st = tkr_fail(err, TKR_ERR_LIMIT, "video: the time limit of %.0f s ran out", lim->timeout_s);
            else if (n == 0)
                st = av_fail(err, TKR_ERR_FORMAT, ret, "video: cannot read packets");
            break; /* a damaged tail ends the stream where the packets stop */
        }
        if (pkt->stream_index == d->stream && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
            if (n == lim->max_source_frames) {
                st = tkr_fail(err, TKR_ERR_LIMIT, "video: more than %lld frames",
                              (long long)lim->max_source_frames);
                av_packet_unref(pkt);
                break;
            }
            if (n == cap) {
                int64_t nc = cap ? cap * 2 : 1024;
                int64_t *np = realloc(pts, sizeof(int64_t) * (size_t)nc);
                if (!np) {
                    st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
                    av_packet_unref(pkt);
                    break;
                }
                pts = np;
                cap = nc;
            }
            int64_t t = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
            pts[n++] = t;
            if (t != AV_NOPTS_VALUE && t + pkt->duration > end) end = t + pkt->duration;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    if (st == TKR_OK && n == 0) st = tkr_fail(err, TKR_ERR_FORMAT, "video: the stream has no frames");
    if (st != TKR_OK) {
        free(pts);
        return st;
    }
    qsort(pts, (size_t)n, sizeof *pts, cmp_i64);
    *end_s = end == INT64_MIN ? 0.0 : (double)end * av_q2d(s->time_base);
    *pts_out = pts;
    *n_out = n;
    return TKR_OK;
}

/* One wanted source frame: its index, its target pts and the output positions it fills. */
typedef struct {
    int64_t index, pts;
    int first_pos, n_pos;     /* into the position list, sorted by index */
} wanted;

typedef struct {
    struct SwsContext *sws;
    uint8_t *rgb;             /* [h][w][3] */
    size_t rgb_cap;
} converter;

/* YUV -> RGB24 at the frame's size (flags and matrix in the header comment). */
static tkr_status convert_frame(converter *c, const AVFrame *f, uint64_t max_pixels,
                                tkr_rgb_image *out, tkr_error *err) {
    if (f->width <= 0 || f->height <= 0)
        return tkr_fail(err, TKR_ERR_FORMAT, "video: a frame has no size");
    if ((uint64_t)f->width * (uint64_t)f->height > max_pixels)
        return tkr_fail(err, TKR_ERR_LIMIT, "video: a %dx%d frame is over the limit of %llu pixels",
                        f->width, f->height, (unsigned long long)max_pixels);
    size_t need = (size_t)f->width * (size_t)f->height * 3;
    if (need > c->rgb_cap) {
        uint8_t *p = realloc(c->rgb, need);
        if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for a %dx%d frame", f->width, f->height);
        c->rgb = p;
        c->rgb_cap = need;
    }
    enum AVPixelFormat fmt = (enum AVPixelFormat)f->format;
    c->sws = sws_getCachedContext(c->sws, f->width, f->height, fmt, f->width, f->height,
                                  AV_PIX_FMT_RGB24, SWS_FLAGS, NULL, NULL, NULL);
    if (!c->sws)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "video: cannot convert pixel format %s to RGB",
                        av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?");
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(fmt);
    if (desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_PAL)) {
        int full = f->color_range == AVCOL_RANGE_JPEG || fmt == AV_PIX_FMT_YUVJ420P ||
                   fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUVJ444P ||
                   fmt == AV_PIX_FMT_YUVJ440P || fmt == AV_PIX_FMT_YUVJ411P;
        int cs = f->colorspace;
        if (cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_RGB || cs < 0) cs = SWS_CS_DEFAULT;
        sws_setColorspaceDetails(c->sws, sws_getCoefficients(cs), full,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    }
    uint8_t *dst[4] = {c->rgb, NULL, NULL, NULL};
    int dst_stride[4] = {f->width * 3, 0, 0, 0};
    int h = sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
                      dst_stride);
    if (h != f->height) return tkr_fail(err, TKR_ERR_FORMAT, "video: frame conversion failed");
    out->width = f->width;
    out->height = f->height;
    out->rgb = c->rgb;
    out->format = "VIDEO";
    out->source_mode = "RGB";
    return TKR_OK;
}

typedef struct {
    const tkr_media_limits *lim;
    tkr_video_frame_fn fn;
    void *user;
    double time_base;
} pass_ctx;

/* Pass 2: decodes from the start and hands each wanted frame to fn. *reached = how many of the
 * wanted frames were found; *max_pts = the largest pts decoded (to recompute after a short
 * stream). */
static tkr_status decode_pass(demux *d, const pass_ctx *pc, const wanted *w, int n_w,
                              const int *positions, int *reached, int64_t *max_pts,
                              tkr_error *err) {
    AVStream *s = d->fmt->streams[d->stream];
    AVCodecContext *cc = avcodec_alloc_context3(d->codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    converter conv = {0};
    tkr_status st = TKR_OK;
    int k = 0;
    *max_pts = INT64_MIN;
    if (!cc || !pkt || !f) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        goto done;
    }
    int ret = avcodec_parameters_to_context(cc, s->codecpar);
    cc->pkt_timebase = s->time_base;
    cc->thread_count = 1;   /* prepare already runs one item per thread */
    if (ret >= 0) ret = avcodec_open2(cc, d->codec, NULL);
    if (ret < 0) {
        st = av_fail(err, TKR_ERR_UNSUPPORTED, ret, "video: cannot open the decoder");
        goto done;
    }
    int eof = 0;
    while (k < n_w && st == TKR_OK) {
        if (tkr_now_seconds() > d->io.deadline) {
            st = tkr_fail(err, TKR_ERR_LIMIT, "video: the time limit of %.0f s ran out", pc->lim->timeout_s);
            break;
        }
        ret = avcodec_receive_frame(cc, f);
        if (ret == AVERROR(EAGAIN)) {
            if (eof) break;
            ret = av_read_frame(d->fmt, pkt);
            if (ret < 0) {
                eof = 1;
                avcodec_send_packet(cc, NULL); /* drain */
                continue;
            }
            if (pkt->stream_index == d->stream && !(pkt->flags & AV_PKT_FLAG_DISCARD))
                avcodec_send_packet(cc, pkt); /* a damaged packet is skipped, as decoders do */
            av_packet_unref(pkt);
            continue;
        }
        if (ret == AVERROR_EOF) break;
        if (ret < 0) continue; /* a frame that failed to decode */
        int64_t t = f->pts != AV_NOPTS_VALUE ? f->pts : f->pkt_dts;
        if (t != AV_NOPTS_VALUE && t > *max_pts) *max_pts = t;
        /* this frame serves every wanted target at or before its pts */
        int k0 = k;
        while (k < n_w && t != AV_NOPTS_VALUE && t >= w[k].pts) k++;
        for (int j = k0; j < k && st == TKR_OK; j++) {
            tkr_rgb_image img;
            st = convert_frame(&conv, f, pc->lim->max_pixels, &img, err);
            if (st == TKR_OK)
                st = pc->fn(pc->user, &img, w[j].index, (double)t * pc->time_base,
                            positions + w[j].first_pos, w[j].n_pos, err);
        }
        av_frame_unref(f);
    }
    *reached = k;
done:
    sws_freeContext(conv.sws);
    free(conv.rgb);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    return st;
}

typedef struct {
    int64_t idx;
    int pos;
} idx_pos;

static int cmp_idx_pos(const void *a, const void *b) {
    const idx_pos *x = a, *y = b;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    return x->pos - y->pos;
}

/* Groups a sample (output order, repeats allowed) into unique source frames in index order. */
static int group_sample(const int64_t *sample, int n, const int64_t *pts, wanted *w, int *positions,
                        idx_pos *tmp) {
    for (int i = 0; i < n; i++) tmp[i] = (idx_pos){sample[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_idx_pos);
    int n_w = 0;
    for (int i = 0; i < n; i++) {
        positions[i] = tmp[i].pos;
        if (n_w == 0 || w[n_w - 1].index != tmp[i].idx) {
            w[n_w] = (wanted){tmp[i].idx, pts[tmp[i].idx], i, 0};
            n_w++;
        }
        w[n_w - 1].n_pos++;
    }
    return n_w;
}

/* What one call asks for, checked once for decode and probe alike: the limits resolved, the
 * sampling options (fps 2 and 64 frames unless given) and the frame cap within the limit, and
 * the bytes opened (the caller closes them). */
typedef struct {
    tkr_media_limits lim;
    double fps;
    int max_frames, cap; /* cap: the most frames the sample can hold */
    tkr_media_bytes bytes;
} video_request;

static tkr_status video_request_open(const tkr_video_input *v, const tkr_media_limits *lim_in,
                                     video_request *rq, tkr_error *err) {
    tkr_media_limits_resolve(lim_in, &rq->lim);
    rq->fps = v->fps == 0 ? 2.0 : v->fps;
    rq->max_frames = v->max_frames == 0 ? 64 : v->max_frames;
    if (v->num_frames < 0 || v->max_frames < 0 || !(rq->fps > 0) || !isfinite(rq->fps))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "video: fps must be > 0, max_frames and num_frames >= 0");
    rq->cap = v->num_frames > 0 ? v->num_frames : rq->max_frames;
    if (rq->cap > rq->lim.max_frames)
        return tkr_fail(err, TKR_ERR_LIMIT, "video: %d frames asked for, more than the limit of %d",
                        rq->cap, rq->lim.max_frames);
    tkr_status st = tkr_media_bytes_open(v->path, v->data, v->size, rq->lim.max_bytes, &rq->bytes, err);
    if (st != TKR_OK) tkr_error_prefix(err, "video: ");
    return st;
}

tkr_status tkr_video_decode_each(const tkr_video_input *v, const tkr_media_limits *lim_in,
                                 tkr_video_frame_fn fn, void *user, tkr_video_info *info,
                                 tkr_error *err) {
    memset(info, 0, sizeof *info);
    if (!v || !fn) return tkr_fail(err, TKR_ERR_INVALID_ARG, "video: NULL argument");
    video_request rq;
    tkr_status st = video_request_open(v, lim_in, &rq, err);
    if (st != TKR_OK) return st;
    double deadline = tkr_now_seconds() + rq.lim.timeout_s;
    demux d;
    int64_t *pts = NULL, n_source = 0;
    double end_s = 0;
    int64_t *sample = malloc(sizeof(int64_t) * (size_t)rq.cap);
    wanted *w = malloc(sizeof(wanted) * (size_t)rq.cap);
    int *positions = malloc(sizeof(int) * (size_t)rq.cap);
    idx_pos *tmp = malloc(sizeof(idx_pos) * (size_t)rq.cap);
    if (!sample || !w || !positions || !tmp) {
        st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = demux_open(&d, rq.bytes.data, rq.bytes.size, deadline, err);
    if (st != TKR_OK) goto done;
    st = scan_packets(&d, &rq.lim, &pts, &n_source, &end_s, err);
    double time_base = av_q2d(d.fmt->streams[d.stream]->time_base);
    demux_close(&d);
    if (st != TKR_OK) goto done;
    pass_ctx pc = {&rq.lim, fn, user, time_base};
    int64_t n = n_source;
    for (int attempt = 0; attempt < 2; attempt++) {
        int n_out = tkr_video_sample_indices(n, end_s, rq.fps, rq.max_frames, v->num_frames, sample, rq.cap);
        if (n_out <= 0) {
            st = tkr_fail(err, TKR_ERR_INTERNAL, "video: bad sample");
            break;
        }
        int n_w = group_sample(sample, n_out, pts, w, positions, tmp);
        st = demux_open(&d, rq.bytes.data, rq.bytes.size, deadline, err);
        if (st != TKR_OK) break;
        int reached = 0;
        int64_t max_pts = INT64_MIN;
        st = decode_pass(&d, &pc, w, n_w, positions, &reached, &max_pts, err);
        demux_close(&d);
        if (st != TKR_OK) break;
        if (reached == n_w) {
            info->n = n_out;
            info->dropped = (int)(n_source - n);
            break;
        }
        /* trailing frames did not decode: the wrapper retries with n - 1 frames until every
         * sampled index is at or before the last decodable pts */
        if (attempt == 1 || max_pts == INT64_MIN) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "video: no decodable frames");
            break;
        }
        for (n = n - 1; n > 0; n--) {
            int m = tkr_video_sample_indices(n, end_s, rq.fps, rq.max_frames, v->num_frames, sample, rq.cap);
            int ok = m > 0;
            for (int i = 0; ok && i < m; i++) ok = pts[sample[i]] <= max_pts;
            if (ok) break;
        }
        if (n <= 0) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "video: no decodable frames");
            break;
        }
    }
    info->n_source = n_source;
    info->duration_s = end_s;
done:
    free(pts);
    free(sample);
    free(w);
    free(positions);
    free(tmp);
    tkr_media_bytes_close(&rq.bytes);
    return st;
}

/* ---- the public decode: frames as copies, in output order ---------------------------------- */

static tkr_status keep_frame(void *user, const tkr_rgb_image *img, int64_t index, double time_s,
                             const int *positions, int n_positions, tkr_error *err) {
    tkr_media_frames *out = user;
    size_t bytes = (size_t)img->width * img->height * 3;
    for (int i = 0; i < n_positions; i++) {
        tkr_media_frame *fr = &out->frames[positions[i]];
        free(fr->rgb);
        fr->rgb = malloc(bytes);
        if (!fr->rgb) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for frames");
        memcpy(fr->rgb, img->rgb, bytes);
        fr->width = img->width;
        fr->height = img->height;
        fr->index = index;
        fr->time_s = time_s;
    }
    return TKR_OK;
}

tkr_status tkr_video_decode(const tkr_video_input *video, const tkr_media_limits *lim,
                            tkr_media_frames *out, tkr_error *err) {
    if (!out) return tkr_fail(err, TKR_ERR_INVALID_ARG, "video: NULL argument");
    memset(out, 0, sizeof *out);
    if (!video) return tkr_fail(err, TKR_ERR_INVALID_ARG, "video: NULL argument");
    tkr_media_limits l;
    tkr_media_limits_resolve(lim, &l);
    int cap = video->num_frames > 0 ? video->num_frames : video->max_frames > 0 ? video->max_frames : 64;
    if (cap > l.max_frames) cap = l.max_frames; /* decode_each reports the limit */
    out->frames = calloc((size_t)(cap > 0 ? cap : 1), sizeof *out->frames);
    if (!out->frames) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    out->n = cap;
    tkr_video_info info;
    tkr_status st = tkr_video_decode_each(video, &l, keep_frame, out, &info, err);
    if (st != TKR_OK) {
        tkr_media_frames_free(out);
        return st;
    }
    for (int i = info.n; i < out->n; i++) free(out->frames[i].rgb);
    out->n = info.n;
    out->n_source = info.n_source;
    out->duration_s = info.duration_s;
    out->dropped = info.dropped;
    return TKR_OK;
}

void tkr_media_frames_free(tkr_media_frames *f) {
    if (!f) return;
    for (int i = 0; f->frames && i < f->n; i++) free(f->frames[i].rgb);
    free(f->frames);
    memset(f, 0, sizeof *f);
}

/* ---- probe: the sample's size without decoding (servers count tokens before the work) ------- */

tkr_status tkr_video_probe(const tkr_video_input *v, const tkr_media_limits *lim_in, int *n_frames,
                           int *width, int *height, tkr_error *err) {
    *n_frames = *width = *height = 0;
    if (!v) return tkr_fail(err, TKR_ERR_INVALID_ARG, "video: NULL argument");
    video_request rq;
    tkr_status st = video_request_open(v, lim_in, &rq, err);
    if (st != TKR_OK) return st;
    demux d;
    int64_t *pts = NULL, n = 0;
    double end_s = 0;
    int64_t *sample = malloc(sizeof(int64_t) * (size_t)rq.cap);
    if (!sample) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    double deadline = tkr_now_seconds() + rq.lim.timeout_s;
    if (st == TKR_OK) st = demux_open(&d, rq.bytes.data, rq.bytes.size, deadline, err);
    if (st == TKR_OK) {
        AVCodecParameters *cp = d.fmt->streams[d.stream]->codecpar;
        *width = cp->width;
        *height = cp->height;
        st = scan_packets(&d, &rq.lim, &pts, &n, &end_s, err);
        demux_close(&d);
    }
    if (st == TKR_OK && (*width <= 0 || *height <= 0))
        st = tkr_fail(err, TKR_ERR_FORMAT, "video: the stream has no frame size");
    if (st == TKR_OK && (uint64_t)*width * (uint64_t)*height > rq.lim.max_pixels)
        st = tkr_fail(err, TKR_ERR_LIMIT, "video: %dx%d frames are over the limit of %llu pixels",
                      *width, *height, (unsigned long long)rq.lim.max_pixels);
    if (st == TKR_OK)
        *n_frames = tkr_video_sample_indices(n, end_s, rq.fps, rq.max_frames, v->num_frames, sample, rq.cap);
    free(pts);
    free(sample);
    tkr_media_bytes_close(&rq.bytes);
    return st;
}

#endif /* TKR_NO_VIDEO */

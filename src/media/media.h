/* media.h - videos and PDFs as images (internal): reading the encoded bytes, the frame-sampling
 * rule, frame decoding with a per-frame callback, and the PDF renderer's child process.
 * The public side is in tkr_embed.h (tkr_video_decode, tkr_pdf_render); docs/media.md says what
 * each step does and why. */
#ifndef TKR_MEDIA_MEDIA_H
#define TKR_MEDIA_MEDIA_H

#include "tkr_embed.h"
#include "image/image.h"
#include "util/platform.h"

#include <stdint.h>

/* The encoded bytes of a video or PDF: caller's memory, a mapped file, or a decoded data: URI
 * (any media type: "data:video/mp4;base64,...", "data:application/pdf;base64,..."). */
typedef struct {
    const uint8_t *data;
    size_t size;
    uint8_t *owned;          /* decoded data URI (free)   */
    tkr_file_view view;      /* mapped file (close)       */
    int has_view;
} tkr_media_bytes;

tkr_status tkr_media_bytes_open(const char *path_or_uri, const uint8_t *data, size_t size,
                                size_t max_bytes, tkr_media_bytes *out, tkr_error *err);
void tkr_media_bytes_close(tkr_media_bytes *b);

/* Fills zero fields of *lim with the defaults. */
void tkr_media_limits_resolve(const tkr_media_limits *in, tkr_media_limits *out);

/* The wrapper's sampling rule (tkr_video_input in tkr_embed.h) for a stream of n_source frames
 * lasting duration_s. Writes at most cap indices to out (cap >= the target) and returns how
 * many, or -1 on bad arguments. fps <= 0 with num_frames == 0 is refused. */
int tkr_video_sample_indices(int64_t n_source, double duration_s, double fps, int max_frames,
                             int num_frames, int64_t *out, int cap);

/* Called once per decoded source frame that the sample uses, in decoding order, with every
 * output position it fills (a frame repeats in fixed mode when the video is short). A second
 * call for a position replaces the first (trailing frames that fail to decode restart the
 * sampling with fewer frames, as the wrapper does). A non-OK return stops decoding. */
typedef tkr_status (*tkr_video_frame_fn)(void *user, const tkr_rgb_image *frame, int64_t index,
                                         double time_s, const int *positions, int n_positions,
                                         tkr_error *err);

typedef struct {
    int n;                   /* output frames                                   */
    int64_t n_source;        /* frames (packets) of the stream                   */
    double duration_s;       /* end of the stream, as the fps rule uses it       */
    int dropped;             /* undecodable trailing frames dropped              */
} tkr_video_info;

/* Resolves the video's options against lim (max_frames caps), decodes and calls fn. */
tkr_status tkr_video_decode_each(const tkr_video_input *v, const tkr_media_limits *lim,
                                 tkr_video_frame_fn fn, void *user, tkr_video_info *info,
                                 tkr_error *err);

/* Demuxes only (no decoding): how many frames the sample will have (trailing frames that turn
 * out undecodable can make it fewer) and the stream's frame size. */
tkr_status tkr_video_probe(const tkr_video_input *v, const tkr_media_limits *lim, int *n_frames,
                           int *width, int *height, tkr_error *err);

/* Parses a page range "1-3,7" against n_pages into 1-based page numbers, in the listed order.
 * NULL/"" = every page. More than max_pages pages is a TKR_ERR_LIMIT. *pages is malloc'ed. */
tkr_status tkr_pdf_parse_pages(const char *spec, int n_pages, int max_pages, int **pages, int *n,
                               tkr_error *err);

#endif

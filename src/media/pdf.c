/* pdf.c - PDF pages to RGB images with Poppler (GLib API, cairo backend), in a child process.
 *
 * Parsing and rendering PDF is a large attack surface, so it never runs in the caller's process:
 * tkr_pdf_render forks, and the child, under setrlimit limits on its address space (the
 * parent's mappings plus media.pdf_memory), CPU time (media.pdf_cpu_s), file writes (none) and
 * core dumps (none), opens the document, renders the selected pages and writes them to a pipe.
 * The parent reads with a wall-clock deadline (media.timeout_s) and a cap on the bytes it
 * accepts, kills the child when either runs out, and turns a child killed by a signal into a
 * clear error. The parent never calls into Poppler, GLib or cairo, so no lock of theirs can be
 * held across fork; malloc is fork-safe in glibc and macOS libc. The child only _exit()s.
 *
 * Rendering (docs/media.md): a page of W x H points at d dpi is ceil(W*d/72) x ceil(H*d/72)
 * pixels (pdftoppm's rule), painted white, then poppler_page_render at scale d/72 (the page's
 * /Rotate applies), cairo RGB24 (anti-aliased), alpha-free. */
/* wait4 (the child's own CPU time) is a BSD name that _POSIX_C_SOURCE alone hides */
#define _DEFAULT_SOURCE

#include "media/media.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

#ifdef TKR_HAVE_PDF
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <poppler.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Records on the pipe: a 1-byte tag, then native int32s (same machine, same build):
 *   'N' n_pages_in_document
 *   'P' page_number width height, then width*height*3 bytes of RGB
 *   'E' status message_length, then the message
 *   'D' (done) */

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        b += k;
        n -= (size_t)k;
    }
    return 1;
}

static void child_error(int fd, tkr_status code, const char *msg) {
    int32_t h[2] = {(int32_t)code, (int32_t)strlen(msg)};
    write_all(fd, "E", 1);
    write_all(fd, h, sizeof h);
    write_all(fd, msg, strlen(msg));
}

/* Limits the child: address space above what it already maps, CPU time, no files, no cores. */
static void child_limits(const tkr_media_limits *lim) {
    struct rlimit r;
    /* soft below hard: the kernel sends SIGXCPU (reported as the CPU limit) at the soft limit;
     * with soft == hard it sends SIGKILL, which reads like the memory limit */
    r.rlim_cur = (rlim_t)lim->pdf_cpu_s;
    r.rlim_max = (rlim_t)lim->pdf_cpu_s + 5;
    setrlimit(RLIMIT_CPU, &r);
    r.rlim_cur = r.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &r);
    setrlimit(RLIMIT_FSIZE, &r);
#ifdef __linux__
    /* RLIMIT_AS counts the parent's mappings (model weights, thread stacks) that the child
     * inherits: the cap is what is mapped now plus the budget. */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    if (pages) {
        r.rlim_cur = r.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)lim->pdf_memory;
        setrlimit(RLIMIT_AS, &r);
    }
#endif
}

static void child_render(int fd, const uint8_t *data, size_t size, const char *spec, double dpi,
                         const tkr_media_limits *lim) {
    GError *ge = NULL;
    GBytes *gb = g_bytes_new_static(data, size);
    PopplerDocument *doc = poppler_document_new_from_bytes(gb, NULL, &ge);
    if (!doc) {
        char msg[300];
        if (ge && ge->domain == POPPLER_ERROR && ge->code == POPPLER_ERROR_ENCRYPTED)
            child_error(fd, TKR_ERR_UNSUPPORTED, "PDF: the document is encrypted (needs a password)");
        else {
            snprintf(msg, sizeof msg, "PDF: cannot open the document: %s", ge ? ge->message : "unknown error");
            child_error(fd, TKR_ERR_FORMAT, msg);
        }
        return;
    }
    int n_doc = poppler_document_get_n_pages(doc);
    int32_t nrec = n_doc;
    write_all(fd, "N", 1);
    write_all(fd, &nrec, sizeof nrec);
    int *pages = NULL, n = 0;
    tkr_error e;
    tkr_error_clear(&e);
    if (tkr_pdf_parse_pages(spec, n_doc, lim->max_pages, &pages, &n, &e) != TKR_OK) {
        child_error(fd, e.code, e.message);
        return;
    }
    double scale = dpi / 72.0;
    for (int i = 0; i < n; i++) {
        PopplerPage *pg = poppler_document_get_page(doc, pages[i] - 1);
        char msg[200];
        if (!pg) {
            snprintf(msg, sizeof msg, "PDF: page %d cannot be read", pages[i]);
            child_error(fd, TKR_ERR_FORMAT, msg);
            return;
        }
        double wpt = 0, hpt = 0;
        poppler_page_get_size(pg, &wpt, &hpt);
        double wpx = ceil(wpt * scale), hpx = ceil(hpt * scale);
        if (!(wpx >= 1 && hpx >= 1) || wpx > 32767 || hpx > 32767 ||
            wpx * hpx > (double)lim->max_pixels) {
            snprintf(msg, sizeof msg, "PDF: page %d is %.0fx%.0f pixels at %.0f dpi, over the limit "
                     "of %llu pixels", pages[i], wpx, hpx, dpi, (unsigned long long)lim->max_pixels);
            child_error(fd, TKR_ERR_LIMIT, msg);
            return;
        }
        int w = (int)wpx, h = (int)hpx;
        cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
        if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
            child_error(fd, TKR_ERR_NOMEM, "PDF: out of memory for a page");
            return;
        }
        cairo_t *cr = cairo_create(surf);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        cairo_scale(cr, scale, scale);
        poppler_page_render(pg, cr);
        cairo_destroy(cr);
        cairo_surface_flush(surf);
        const uint8_t *px = cairo_image_surface_get_data(surf);
        int stride = cairo_image_surface_get_stride(surf);
        uint8_t *row = malloc((size_t)w * 3);
        if (!row) {
            child_error(fd, TKR_ERR_NOMEM, "PDF: out of memory");
            return;
        }
        int32_t hdr[3] = {pages[i], w, h};
        if (!write_all(fd, "P", 1) || !write_all(fd, hdr, sizeof hdr)) return;
        for (int y = 0; y < h; y++) {
            const uint32_t *src = (const uint32_t *)(const void *)(px + (size_t)y * stride);
            for (int x = 0; x < w; x++) {
                uint32_t v = src[x];   /* CAIRO_FORMAT_RGB24: native-endian xRGB */
                row[3 * x] = (uint8_t)(v >> 16);
                row[3 * x + 1] = (uint8_t)(v >> 8);
                row[3 * x + 2] = (uint8_t)v;
            }
            if (!write_all(fd, row, (size_t)w * 3)) return;
        }
        free(row);
        cairo_surface_destroy(surf);
        g_object_unref(pg);
    }
    write_all(fd, "D", 1);
}

/* Reads exactly n bytes before the deadline: 1 ok, 0 end of stream, -1 timeout, -2 error. */
static int read_full(int fd, void *p, size_t n, double deadline) {
    uint8_t *b = p;
    while (n) {
        double left = deadline - tkr_now_seconds();
        if (left <= 0) return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -2;
        if (r == 0) continue;
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -2;
        if (k == 0) return 0;
        b += k;
        n -= (size_t)k;
    }
    return 1;
}

static tkr_status parent_read(int fd, const tkr_media_limits *lim, double deadline,
                              tkr_media_frames *out, int *timed_out, tkr_error *err) {
    size_t budget = lim->pdf_memory; /* bytes of pixels accepted in all */
    int cap = 0, r = 0;
    *timed_out = 0;
    for (;;) {
        char tag;
        r = read_full(fd, &tag, 1, deadline);
        if (r == -1) { *timed_out = 1; return TKR_ERR_LIMIT; }
        if (r <= 0) return TKR_ERR_INTERNAL;       /* the child died: the caller says why */
        if (tag == 'D') return TKR_OK;
        if (tag == 'N') {
            int32_t n;
            if ((r = read_full(fd, &n, sizeof n, deadline)) != 1) break;
            out->n_source = n;
        } else if (tag == 'E') {
            int32_t h[2];
            if ((r = read_full(fd, h, sizeof h, deadline)) != 1) break;
            char msg[TKR_ERROR_MESSAGE_MAX];
            int len = h[1] < 0 ? 0 : h[1] >= (int)sizeof msg ? (int)sizeof msg - 1 : h[1];
            if ((r = read_full(fd, msg, (size_t)len, deadline)) != 1) break;
            msg[len] = '\0';
            tkr_status code = h[0] > TKR_OK && h[0] <= TKR_ERR_INTERNAL ? (tkr_status)h[0] : TKR_ERR_FORMAT;
            return tkr_fail(err, code, "%s", msg);
        } else if (tag == 'P') {
            int32_t h[3];
            if ((r = read_full(fd, h, sizeof h, deadline)) != 1) break;
            if (h[1] <= 0 || h[2] <= 0 || (uint64_t)h[1] * (uint64_t)h[2] > lim->max_pixels)
                return tkr_fail(err, TKR_ERR_FORMAT, "PDF: the renderer sent a bad page size");
            size_t bytes = (size_t)h[1] * (size_t)h[2] * 3;
            if (bytes > budget)
                return tkr_fail(err, TKR_ERR_LIMIT, "PDF: the rendered pages exceed %zu MB",
                                lim->pdf_memory >> 20);
            budget -= bytes;
            if (out->n == cap) {
                int nc = cap ? cap * 2 : 8;
                tkr_media_frame *nf = realloc(out->frames, sizeof *nf * (size_t)nc);
                if (!nf) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
                out->frames = nf;
                cap = nc;
            }
            tkr_media_frame *fr = &out->frames[out->n];
            memset(fr, 0, sizeof *fr);
            fr->rgb = malloc(bytes);
            if (!fr->rgb) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for a page");
            out->n++;
            fr->index = h[0];
            fr->width = h[1];
            fr->height = h[2];
            if ((r = read_full(fd, fr->rgb, bytes, deadline)) != 1) break;
        } else {
            return tkr_fail(err, TKR_ERR_INTERNAL, "PDF: bad record from the renderer");
        }
    }
    if (r == -1) { *timed_out = 1; return TKR_ERR_LIMIT; }
    return TKR_ERR_INTERNAL;
}

bool tkr_pdf_supported(void) { return true; }

tkr_status tkr_pdf_render(const tkr_pdf_input *pdf, const tkr_media_limits *lim_in,
                          tkr_media_frames *out, tkr_error *err) {
    if (!out) return tkr_fail(err, TKR_ERR_INVALID_ARG, "PDF: NULL argument");
    memset(out, 0, sizeof *out);
    if (!pdf) return tkr_fail(err, TKR_ERR_INVALID_ARG, "PDF: NULL argument");
    tkr_media_limits lim;
    tkr_media_limits_resolve(lim_in, &lim);
    double dpi = pdf->dpi == 0 ? TKR_PDF_DEFAULT_DPI : pdf->dpi;
    if (!(dpi >= 10 && dpi <= 1200))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "PDF: dpi must be in [10, 1200]");
    tkr_media_bytes bytes;
    tkr_status st = tkr_media_bytes_open(pdf->path, pdf->data, pdf->size, lim.max_bytes, &bytes, err);
    if (st != TKR_OK) {
        tkr_error_prefix(err, "PDF: ");
        return st;
    }
    if (bytes.size < 5 || memcmp(bytes.data, "%PDF-", 5) != 0) {
        /* Poppler accepts junk before the header; refusing non-PDFs early gives a clear error */
        const uint8_t *hit = NULL;
        for (size_t i = 0; i + 5 <= bytes.size && i < 1024 && !hit; i++)
            if (!memcmp(bytes.data + i, "%PDF-", 5)) hit = bytes.data + i;
        if (!hit) {
            tkr_media_bytes_close(&bytes);
            return tkr_fail(err, TKR_ERR_FORMAT, "PDF: not a PDF file (no %%PDF- header)");
        }
    }
    int fds[2];
    if (pipe(fds) != 0) {
        tkr_media_bytes_close(&bytes);
        return tkr_fail(err, TKR_ERR_INTERNAL, "PDF: pipe failed");
    }
    double deadline = tkr_now_seconds() + lim.timeout_s;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        tkr_media_bytes_close(&bytes);
        return tkr_fail(err, TKR_ERR_NOMEM, "PDF: cannot start the renderer process");
    }
    if (pid == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGXFSZ, SIG_IGN); /* fontconfig's cache writes fail instead of killing us */
        child_limits(&lim);
        child_render(fds[1], bytes.data, bytes.size, pdf->pages, dpi, &lim);
        _exit(0);
    }
    close(fds[1]);
    int timed_out = 0;
    tkr_error perr;
    tkr_error_clear(&perr);
    st = parent_read(fds[0], &lim, deadline, out, &timed_out, &perr);
    close(fds[0]);
    if (st != TKR_OK) kill(pid, SIGKILL);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    double child_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                       1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    tkr_media_bytes_close(&bytes);
    if (st == TKR_OK) return TKR_OK;
    tkr_media_frames_free(out);
    if (timed_out)
        return tkr_fail(err, TKR_ERR_LIMIT, "PDF: rendering took longer than %.0f s", lim.timeout_s);
    if (perr.code != TKR_OK && st != TKR_ERR_INTERNAL) {
        *err = perr;
        return st;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGXCPU || (sig == SIGKILL && child_cpu >= (double)lim.pdf_cpu_s))
            return tkr_fail(err, TKR_ERR_LIMIT, "PDF: rendering used more than %d s of CPU", lim.pdf_cpu_s);
        return tkr_fail(err, TKR_ERR_FORMAT, "PDF: the renderer stopped on signal %d (a malformed "
                        "document, or over the %zu MB memory limit)", sig, lim.pdf_memory >> 20);
    }
    if (perr.code != TKR_OK) {
        *err = perr;
        return perr.code;
    }
    return tkr_fail(err, TKR_ERR_FORMAT, "PDF: the renderer stopped early (a malformed document, "
                    "or over the %zu MB memory limit)", lim.pdf_memory >> 20);
}

#else /* !TKR_HAVE_PDF */

bool tkr_pdf_supported(void) { return false; }

tkr_status tkr_pdf_render(const tkr_pdf_input *pdf, const tkr_media_limits *lim,
                          tkr_media_frames *out, tkr_error *err) {
    (void)pdf;
    (void)lim;
    if (out) memset(out, 0, sizeof *out);
    return tkr_fail(err, TKR_ERR_UNSUPPORTED, "PDF: this build has no PDF support (built with PDF=0)");
}

#endif

/* batch.c - result sinks, resume, shards and the progress bar of JSONL jobs (see batch.h). */
#define _POSIX_C_SOURCE 200809L
#include "cli/batch.h"
#include "cli/cli.h"
#include "util/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct batch_out {
    batch_opts o;
    int dim;
    int fd;                 /* jsonl: the output; npy: OUT.rows              */
    int ids_fd, err_fd;     /* npy only: OUT.ids and OUT.errors.jsonl        */
    long rows;              /* npy: rows in OUT.rows                         */
    uint8_t *done;          /* bit per item index already in the output      */
    size_t done_cap;        /* bytes of done                                 */
    char *path_rows, *path_ids, *path_err;
    /* progress */
    bool bar;
    double t0, last_draw;
    long n_done, n_resumed;
    long long tokens;
    bool ready;             /* opened fully: closing may write the npy       */
};

static char *str_cat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

bool batch_parse_shard(const char *s, long *index, long *count) {
    char *end;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/') return false;
    const char *t = end + 1;
    long n = strtol(t, &end, 10);
    if (errno || end == t || *end || n < 1 || n > 1000000 || i < 0 || i >= n) return false;
    *index = i;
    *count = n;
    return true;
}

bool batch_mine(const batch_opts *o, long index) {
    return o->shard_count <= 1 || index % o->shard_count == o->shard_index;
}

/* Marks an index as done, growing the bit set; indices are line numbers, so they stay small. */
static int mark_done(batch_out *b, long index) {
    if (index < 0 || index > (1L << 40)) return -1;
    size_t byte = (size_t)index / 8;
    if (byte >= b->done_cap) {
        size_t cap = b->done_cap ? b->done_cap : 1024;
        while (cap <= byte) cap *= 2;
        uint8_t *d = realloc(b->done, cap);
        if (!d) return -1;
        memset(d + b->done_cap, 0, cap - b->done_cap);
        b->done = d;
        b->done_cap = cap;
    }
    b->done[byte] |= (uint8_t)(1u << (index % 8));
    return 0;
}

bool batch_done(const batch_out *b, long index) {
    size_t byte = (size_t)index / 8;
    return index >= 0 && byte < b->done_cap && (b->done[byte] >> (index % 8) & 1);
}

/* Reads the complete lines of an existing result file, marks their indices done and cuts off a
 * partial last line (a process killed mid-write). ids_only: lines are bare indices (OUT.ids).
 * Returns the number of complete lines, or -1 (printed). */
static long resume_lines(batch_out *b, int fd, const char *path, bool ids_only) {
    FILE *f = fdopen(dup(fd), "rb");
    if (!f) {
        fprintf(stderr, "tkr-embed: cannot read %s to resume: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0;
    off_t good = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break; /* the partial tail */
        long index = -1;
        if (ids_only) {
            char *end;
            index = strtol(line, &end, 10);
            if (end == line || *end != '\n') index = -1;
        } else {
            json_t *j = json_loadb(line, (size_t)len, 0, NULL);
            json_t *ji = j ? json_object_get(j, "index") : NULL;
            if (json_is_integer(ji)) index = (long)json_integer_value(ji);
            json_decref(j);
        }
        if (index < 0 || mark_done(b, index) != 0) {
            fprintf(stderr, "tkr-embed: %s line %ld is not a result line of this tool: not resuming into it\n",
                    path, n + 1);
            free(line);
            fclose(f);
            return -1;
        }
        good += len;
        n++;
    }
    free(line);
    fclose(f);
    if (ftruncate(fd, good) != 0 || lseek(fd, 0, SEEK_END) < 0) {
        fprintf(stderr, "tkr-embed: cannot truncate %s: %s\n", path, strerror(errno));
        return -1;
    }
    return n;
}

/* A finished job removed OUT.rows; a rerun (more items, or after --limit) recovers the rows from
 * OUT's payload (after its npy header). Returns 0 when there is nothing to recover or it worked. */
static int recover_rows(const char *npy, const char *rows) {
    if (tkr_file_exists(rows) || !tkr_file_exists(npy)) return 0;
    FILE *in = fopen(npy, "rb");
    unsigned char head[10];
    int rc = -1;
    if (in && fread(head, 1, 10, in) == 10 && !memcmp(head, "\x93NUMPY\x01\x00", 8) &&
        fseek(in, 10 + (long)(head[8] | head[9] << 8), SEEK_SET) == 0) {
        FILE *out = fopen(rows, "wb");
        if (out) {
            char buf[1 << 16];
            size_t r;
            rc = 0;
            while (rc == 0 && (r = fread(buf, 1, sizeof buf, in)) > 0)
                if (fwrite(buf, 1, r, out) != r) rc = -1;
            if (fclose(out) != 0) rc = -1;
        }
    }
    if (in) fclose(in);
    if (rc != 0) fprintf(stderr, "tkr-embed: cannot resume from %s (not an npy file of this tool?)\n", npy);
    return rc;
}

static int open_append(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) fprintf(stderr, "tkr-embed: cannot open %s: %s\n", path, strerror(errno));
    return fd;
}

batch_out *batch_open(const batch_opts *o, int dim) {
    batch_out *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->o = *o;
    b->dim = dim;
    b->fd = b->ids_fd = b->err_fd = -1;
    b->bar = o->progress > 0 || (o->progress < 0 && isatty(STDERR_FILENO));
    b->t0 = b->last_draw = tkr_now_seconds();
    if (!o->output) {
        b->fd = STDOUT_FILENO;
        b->ready = true;
        return b;
    }
    long resumed = 0;
    if (o->format == BATCH_JSONL) {
        if ((b->fd = open_append(o->output)) < 0 || (resumed = resume_lines(b, b->fd, o->output, false)) < 0)
            goto fail;
    } else {
        b->path_rows = str_cat(o->output, ".rows");
        b->path_ids = str_cat(o->output, ".ids");
        b->path_err = str_cat(o->output, ".errors.jsonl");
        if (!b->path_rows || !b->path_ids || !b->path_err) goto fail;
        if (recover_rows(o->output, b->path_rows) != 0) goto fail;
        if ((b->ids_fd = open_append(b->path_ids)) < 0 || (b->fd = open_append(b->path_rows)) < 0 ||
            (b->err_fd = open_append(b->path_err)) < 0)
            goto fail;
        long rows = resume_lines(b, b->ids_fd, b->path_ids, true);
        if (rows < 0) goto fail;
        /* a row is written before its id: the rows file holds at least `rows` complete rows */
        struct stat st;
        off_t want = (off_t)rows * dim * (off_t)sizeof(float);
        if (fstat(b->fd, &st) != 0 || st.st_size < want) {
            fprintf(stderr, "tkr-embed: %s is shorter than %s says: not resuming\n", b->path_rows, b->path_ids);
            goto fail;
        }
        if (ftruncate(b->fd, want) != 0 || lseek(b->fd, 0, SEEK_END) < 0) goto fail;
        b->rows = rows;
        long errs = resume_lines(b, b->err_fd, b->path_err, false);
        if (errs < 0) goto fail;
        resumed = rows + errs;
    }
    b->n_resumed = resumed;
    b->ready = true;
    if (resumed > 0) fprintf(stderr, "tkr-embed: resuming %s: %ld items already done\n", o->output, resumed);
    return b;
fail:
    batch_close(b);
    return NULL;
}

/* write() until all is written (regular files rarely write short, pipes may). */
static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "tkr-embed: write failed: %s\n", strerror(errno));
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The progress bar: items, items/s, tokens/s and ETA, redrawn at most 5 times a second. */
static void draw(batch_out *b, bool final) {
    if (!b->bar) return;
    double now = tkr_now_seconds();
    if (!final && now - b->last_draw < 0.2) return;
    b->last_draw = now;
    double el = now - b->t0 > 1e-6 ? now - b->t0 : 1e-6;
    double ips = (double)b->n_done / el, tps = (double)b->tokens / el;
    long total = b->o.total_items >= 0 ? b->o.total_items - b->n_resumed : -1;
    char eta[32] = "?";
    if (total > 0 && ips > 0) {
        long s = (long)((double)(total - b->n_done) / ips);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    }
    char bar[31];
    int fill = total > 0 ? (int)(30.0 * (double)b->n_done / (double)total) : 0;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    if (total >= 0)
        fprintf(stderr, "\r[%s] %ld/%ld items  %.1f items/s  %.0f tokens/s  ETA %s ", bar, b->n_done, total,
                ips, tps, eta);
    else
        fprintf(stderr, "\r%ld items  %.1f items/s  %.0f tokens/s ", b->n_done, ips, tps);
    if (final) fputc('\n', stderr);
}

int batch_ok(batch_out *b, long index, const float *vec, int prompt_tokens) {
    b->n_done++;
    b->tokens += prompt_tokens;
    int rc;
    if (b->o.format == BATCH_NPY && b->o.output) {
        char id[32];
        int n = snprintf(id, sizeof id, "%ld\n", index);
        rc = write_all(b->fd, vec, sizeof(float) * (size_t)b->dim);
        if (rc == 0) rc = write_all(b->ids_fd, id, (size_t)n);
        if (rc == 0) b->rows++;
    } else {
        char *line = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&line, &len);
        if (!m) return -1;
        fprintf(m, "{\"index\": %ld, \"embedding\": ", index);
        tkr_cli_print_floats(m, vec, b->dim);
        fprintf(m, ", \"prompt_tokens\": %d}\n", prompt_tokens);
        rc = fclose(m) == 0 ? write_all(b->fd, line, len) : -1;
        free(line);
    }
    draw(b, false);
    return rc;
}

int batch_error(batch_out *b, long index, const char *message) {
    b->n_done++;
    json_t *o = json_pack("{s:I, s:{s:s}}", "index", (json_int_t)index, "error", "message", message);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return -1;
    char *line = str_cat(s, "\n");
    free(s);
    if (!line) return -1;
    int fd = b->o.format == BATCH_NPY && b->o.output ? b->err_fd : b->fd;
    int rc = write_all(fd, line, strlen(line));
    free(line);
    draw(b, false);
    return rc;
}

/* OUT = npy v1.0 header + OUT.rows, written to OUT.tmp and renamed; the rows file goes away. */
static int write_npy(batch_out *b) {
    char *tmp = str_cat(b->o.output, ".tmp");
    if (!tmp) return -1;
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d), }",
                      b->rows, b->dim);
    size_t hl = 10 + (size_t)dl + 1, pad = (64 - hl % 64) % 64; /* magic+ver+len, dict, '\n' */
    size_t header_len = (size_t)dl + pad + 1;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header_len & 0xff),
                              (unsigned char)(header_len >> 8)};
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = out < 0 ? -1 : 0;
    if (rc == 0) rc = write_all(out, head, sizeof head);
    if (rc == 0) rc = write_all(out, dict, (size_t)dl);
    for (size_t i = 0; rc == 0 && i < pad; i++) rc = write_all(out, " ", 1);
    if (rc == 0) rc = write_all(out, "\n", 1);
    if (rc == 0 && lseek(b->fd, 0, SEEK_SET) == 0) {
        char buf[1 << 16];
        ssize_t r;
        while (rc == 0 && (r = read(b->fd, buf, sizeof buf)) > 0) rc = write_all(out, buf, (size_t)r);
    }
    if (out >= 0 && close(out) != 0) rc = -1;
    if (rc == 0 && rename(tmp, b->o.output) != 0) rc = -1;
    if (rc == 0) unlink(b->path_rows);
    else {
        fprintf(stderr, "tkr-embed: cannot write %s: %s\n", b->o.output, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int batch_close(batch_out *b) {
    if (!b) return 0;
    int rc = 0;
    if (b->ready) draw(b, true);
    if (b->ready && b->o.output && b->o.format == BATCH_NPY) rc = write_npy(b);
    if (b->fd >= 0 && b->fd != STDOUT_FILENO && close(b->fd) != 0) rc = -1;
    if (b->ids_fd >= 0) close(b->ids_fd);
    if (b->err_fd >= 0) close(b->err_fd);
    free(b->path_rows);
    free(b->path_ids);
    free(b->path_err);
    free(b->done);
    free(b);
    return rc;
}

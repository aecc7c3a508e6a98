/* batch.h - the output side of `tkr-embed embed --input`: where result lines go (stdout, or a
 * file that an interrupted job resumes), which items this process owns (--shard i/n), the
 * formats (JSON lines, or a float32 .npy matrix with an ids file) and the progress bar.
 *
 * Resuming: each result is appended with one write() of a whole line, so after a crash the file
 * holds complete lines plus at most one partial last line; batch_open drops that tail and
 * reports which indices are already done, so the job skips them and every item ends up exactly
 * once. With --format npy the rows go to OUT.rows (raw float32, [n, dim]) and their item indices
 * to OUT.ids (one per line, written after the row); finishing writes OUT (header + rows) and
 * removes OUT.rows. Failed items go to OUT.errors.jsonl in npy mode. */
#ifndef TKR_CLI_BATCH_H
#define TKR_CLI_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { BATCH_JSONL = 0, BATCH_NPY } batch_format;

typedef struct {
    const char *output;      /* NULL: JSON lines on stdout, no resume               */
    batch_format format;
    long shard_index, shard_count;   /* item k is ours when k % count == index       */
    int progress;            /* -1 auto (stderr is a terminal), 0 off, 1 on          */
    long total_items;        /* items this shard will see (-1 unknown), for the bar  */
} batch_opts;

typedef struct batch_out batch_out;

/* Opens (or resumes) the output. On failure prints why to stderr and returns NULL. */
batch_out *batch_open(const batch_opts *o, int dim);
/* True when item `index` is already in the output (resumed) - skip it. */
bool batch_done(const batch_out *b, long index);
/* True when item `index` belongs to this shard. */
bool batch_mine(const batch_opts *o, long index);
/* One result line; returns 0 on success, -1 on a write error (printed). */
int batch_ok(batch_out *b, long index, const float *vec, int prompt_tokens);
int batch_error(batch_out *b, long index, const char *message);
/* Finishes the output (npy: writes the matrix) and frees b. Returns 0 on success. */
int batch_close(batch_out *b);

/* Parses "i/n" with 0 <= i < n <= 1e6; returns false on a bad value. */
bool batch_parse_shard(const char *s, long *index, long *count);

#endif

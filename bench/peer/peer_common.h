/* peer_common.h - what the two timing drivers of bench/bench_peer.sh share, so that tkr-embed
 * (bench/bench_peer_tkr.c, built by the Makefile) and llama.cpp (bench/peer/peer_llama.c, built
 * by the script against the peer's libraries) read the same input and report the same way.
 *
 * Input, one item per line: the space-separated token ids of the WHOLE Ops-MM prompt (template
 * included), as `tkr-embed tokenize` prints them for the prompt string. Both drivers feed exactly
 * these ids; neither tokenizes, so tokenization is not timed on either side.
 * Output on stdout, one "key value" per line: "load_s X" (model load + context setup), "items N",
 * "tokens N", then one "run_s X" per timed run. --dump writes the L2-normalised vectors of the
 * last run, one item per line.
 * With --stdin a driver stays loaded and takes commands, one per line, so that the script can
 * alternate two loaded engines run by run: "run" (one timed run; answers "run_s X"), "dump FILE"
 * (answers "dumped"); end of input ends it. It prints "ready" once loaded and warmed up.
 * Header-only (static inline functions): each driver is one program. */
#ifndef TKR_BENCH_PEER_COMMON_H
#define TKR_BENCH_PEER_COMMON_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEER_MAX_ITEMS 4096
#define PEER_MAX_ITEM_TOKENS 32768
#define PEER_MAX_TOKEN_ID (1 << 24)

typedef struct {
    int32_t *ids;      /* [n_ids] all items' ids back to back            */
    size_t n_ids;
    int n_items;
    size_t *start;     /* [n_items + 1] item i is ids[start[i] .. start[i+1]) */
    int max_len;       /* longest item                                    */
} peer_items;

static inline void peer_items_free(peer_items *it) {
    free(it->ids);
    free(it->start);
    memset(it, 0, sizeof *it);
}

/* Reads the ids file; on failure returns -1 with a message naming the file and line. */
static inline int peer_read_items(const char *path, peer_items *it, char *msg, size_t cap) {
    memset(it, 0, sizeof *it);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, cap, "%s: cannot open", path);
        return -1;
    }
    size_t ids_cap = 1024;
    it->ids = malloc(ids_cap * sizeof *it->ids);
    it->start = malloc((PEER_MAX_ITEMS + 1) * sizeof *it->start);
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0, lineno = 0;
    if (!it->ids || !it->start) {
        snprintf(msg, cap, "out of memory");
        rc = -1;
    }
    while (rc == 0 && getline(&line, &line_cap, f) > 0) {
        lineno++;
        char *p = line, *end;
        size_t first = it->n_ids;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
            if (!*p) break;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v >= PEER_MAX_TOKEN_ID) {
                snprintf(msg, cap, "%s:%d: expected token ids in [0, %d)", path, lineno, PEER_MAX_TOKEN_ID);
                rc = -1;
                break;
            }
            if (it->n_ids - first >= PEER_MAX_ITEM_TOKENS) {
                snprintf(msg, cap, "%s:%d: more than %d tokens", path, lineno, PEER_MAX_ITEM_TOKENS);
                rc = -1;
                break;
            }
            if (it->n_ids == ids_cap) {
                int32_t *grown = realloc(it->ids, 2 * ids_cap * sizeof *grown);
                if (!grown) {
                    snprintf(msg, cap, "out of memory");
                    rc = -1;
                    break;
                }
                it->ids = grown;
                ids_cap *= 2;
            }
            it->ids[it->n_ids++] = (int32_t)v;
            p = end;
        }
        if (rc || it->n_ids == first) continue; /* blank lines are skipped */
        if (it->n_items == PEER_MAX_ITEMS) {
            snprintf(msg, cap, "%s: more than %d items", path, PEER_MAX_ITEMS);
            rc = -1;
            break;
        }
        it->start[it->n_items++] = first;
        if ((int)(it->n_ids - first) > it->max_len) it->max_len = (int)(it->n_ids - first);
    }
    free(line);
    fclose(f);
    if (rc == 0 && it->n_items == 0) {
        snprintf(msg, cap, "%s: no items", path);
        rc = -1;
    }
    if (rc) {
        peer_items_free(it);
        return -1;
    }
    it->start[it->n_items] = it->n_ids;
    return 0;
}

static inline double peer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void peer_l2_normalize(float *v, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

/* vecs [n_items, dim], one line per item. */
static inline int peer_dump(const char *path, const float *vecs, int n_items, int dim) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < n_items; i++)
        for (int j = 0; j < dim; j++) fprintf(f, "%.8g%c", vecs[(size_t)i * dim + j], j + 1 < dim ? ' ' : '\n');
    return fclose(f) == 0 ? 0 : -1;
}

/* One engine as the command loop sees it: run() does one timed run's work, dump() writes the
 * last run's vectors. Both return 0 on success. */
typedef struct {
    int (*run)(void *ctx);
    int (*dump)(void *ctx, const char *path);
    void *ctx;
} peer_engine;

static inline int peer_timed_run(const peer_engine *e) {
    double t0 = peer_now();
    if (e->run(e->ctx)) return -1;
    printf("run_s %.6f\n", peer_now() - t0);
    fflush(stdout);
    return 0;
}

/* Without --stdin: `runs` timed runs, then the dump if asked. With it: the command loop. */
static inline int peer_drive(const peer_engine *e, int use_stdin, int runs, const char *dump_path) {
    if (!use_stdin) {
        for (int r = 0; r < runs; r++)
            if (peer_timed_run(e)) return -1;
        return dump_path ? e->dump(e->ctx, dump_path) : 0;
    }
    printf("ready\n");
    fflush(stdout);
    char line[4200];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strcmp(line, "run")) {
            if (peer_timed_run(e)) return -1;
        } else if (!strncmp(line, "dump ", 5) && line[5]) {
            if (e->dump(e->ctx, line + 5)) return -1;
            printf("dumped\n");
            fflush(stdout);
        } else {
            fprintf(stderr, "unknown command '%.40s' (expected 'run' or 'dump FILE')\n", line);
            return -1;
        }
    }
    return 0;
}

#endif

/* linear_pack.c - weights repacked once at load into the layout the selected linear kernel
 * reads (kernels.h tkr_linear_repack, tensor.h tkr_layout).
 *
 * Why: at a 128-token prompt the AVX-512 kernel spent about a sixth of its time packing BF16
 * weight blocks into its tile's panels, on every call, for every layer. Packing once at load
 * removes that, and the tile then streams the panels in order. Memory: each tensor is packed
 * into anonymous memory and its source pages (a read-only file mapping) are dropped at once, so
 * the resident set grows by one tensor at most, never by the model. */
#include "kernels/kernels_impl.h"
#include "util/platform.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const tkr_tensor *src;
    tkr_tensor *dst;        /* owns dst->data */
} packed_entry;

struct tkr_packed_set {
    packed_entry *e;        /* [n] of [cap] */
    size_t n, cap;
    size_t bytes;
};

enum { PANEL_ROWS = 64 };

/* The layout ctx's kernels want for w (TKR_LAYOUT_ROWS: leave it as it is). */
static tkr_layout wanted_layout(const tkr_kctx *ctx, const tkr_tensor *w) {
#ifdef TKR_HAVE_X86
    if (ctx->avx512 && w->dtype == TKR_DT_BF16 && w->layout == TKR_LAYOUT_ROWS && w->ndim == 2 &&
        w->shape[0] > 0 && w->shape[1] > 0 && w->shape[0] <= (1 << 30) && w->shape[1] <= (1 << 30))
        return TKR_LAYOUT_PAIR_PANELS;
#else
    (void)ctx;
    (void)w;
#endif
    return TKR_LAYOUT_ROWS;
}

typedef struct {
    const tkr_tensor *src;
    uint32_t *dst;
    int N, K;
} pack_job;

/* Task p: panel p (rows [64 p, 64 p + 64)). */
static void pack_task(void *arg, int task, int thread) {
    (void)thread;
#ifdef TKR_HAVE_X86
    pack_job *j = arg;
    int n0 = task * PANEL_ROWS, nr = j->N - n0 < PANEL_ROWS ? j->N - n0 : PANEL_ROWS;
    size_t kp = ((size_t)j->K + 1) / 2;
    tkr_linear_pack_pairs_avx512((const uint16_t *)j->src->data, j->K, n0, nr,
                                 j->dst + (size_t)task * kp * PANEL_ROWS);
#else
    (void)arg;
    (void)task;
#endif
}

/* One tensor into a new entry of set (grown as needed). */
static tkr_status pack_one(const tkr_kctx *ctx, const tkr_tensor *src, tkr_packed_set *set,
                           bool release_src, const tkr_tensor **out) {
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        packed_entry *e = realloc(set->e, cap * sizeof *e);
        if (!e) return TKR_ERR_NOMEM;
        set->e = e;
        set->cap = cap;
    }
    int N = (int)src->shape[0], K = (int)src->shape[1];
    size_t panels = ((size_t)N + PANEL_ROWS - 1) / PANEL_ROWS, kp = ((size_t)K + 1) / 2;
    size_t bytes = panels * kp * PANEL_ROWS * 4; /* [panels][kp][64] pairs */
    tkr_tensor *t = malloc(sizeof *t);
    void *data = NULL;
    /* huge-page aligned (a hint to the kernel): about 500 times fewer page faults while packing
     * and fewer TLB misses in the tile */
    size_t align = bytes >= ((size_t)2 << 20) ? (size_t)2 << 20 : 64;
    if (!t || posix_memalign(&data, align, bytes) != 0) {
        free(t);
        return TKR_ERR_NOMEM;
    }
    tkr_pages_hint_huge(data, bytes);
    pack_job j = {src, data, N, K};
    tkr_pool_run(ctx->pool, (int)panels, pack_task, &j);
    *t = *src;
    t->data = data;
    t->nbytes = bytes;
    t->aligned = true;
    t->layout = TKR_LAYOUT_PAIR_PANELS;
    t->panel_rows = PANEL_ROWS;
    if (release_src) tkr_pages_release(src->data, src->nbytes);
    set->e[set->n++] = (packed_entry){src, t};
    set->bytes += bytes;
    *out = t;
    return TKR_OK;
}

tkr_status tkr_linear_repack(const tkr_kctx *ctx, const tkr_tensor **slots[], size_t n, bool release_src,
                             tkr_packed_set **set) {
    for (size_t i = 0; i < n; i++) {
        const tkr_tensor *w = *slots[i];
        if (!w || wanted_layout(ctx, w) == TKR_LAYOUT_ROWS) continue;
        if (!*set && !(*set = calloc(1, sizeof **set))) return TKR_ERR_NOMEM;
        const tkr_tensor *done = NULL; /* packed before (a tensor bound twice) */
        for (size_t k = 0; k < (*set)->n && !done; k++)
            if ((*set)->e[k].src == w) done = (*set)->e[k].dst;
        if (!done) {
            tkr_status st = pack_one(ctx, w, *set, release_src, &done);
            if (st != TKR_OK) return st;
        }
        *slots[i] = done;
    }
    return TKR_OK;
}

size_t tkr_packed_set_bytes(const tkr_packed_set *set) { return set ? set->bytes : 0; }

void tkr_packed_set_free(tkr_packed_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n; i++) {
        free((void *)set->e[i].dst->data);
        free(set->e[i].dst);
    }
    free(set->e);
    free(set);
}

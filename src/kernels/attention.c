/* attention.c - softmax(q k^T / sqrt(d)) v for packed sequences, grouped-query heads.
 *
 * Tasks are (sequence, head, chunk of query rows). The portable kernel here is the reference:
 * one query row at a time, a row of scores, a plain softmax and a weighted sum of v rows. The
 * AVX2 kernel (attention_avx2.c) computes the same thing blocked for long sequences, and the
 * AVX-512 one (attention_avx512.c) the AVX2 bits with wider tiles. Sequences
 * in a batch never see each other, so a vector does not depend on its batch; each thread has its
 * own scratch, allocated once per call. */
#include "kernels/kernels_impl.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    int seq, head, i0, i1;   /* query rows [i0, i1) of the sequence, relative to its start */
} att_task_def;

typedef struct {
    const tkr_kctx *ctx;
    const tkr_attention_args *a;
    const att_task_def *tasks;
    float *scratch;          /* [threads][scratch_floats] */
    size_t scratch_floats;
    bool avx2;
    bool avx512;             /* AVX-512 tiles, the AVX2 kernel's bits */
    bool neon;
} att_job;

static inline float dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The reference: rows [i0, i1) of sequence s, head h. scratch: T + hd floats. */
static void attention_rows_generic(const tkr_attention_args *a, int s, int h, int i0, int i1,
                                   float *scratch) {
    int t0 = a->seq_start[s], T = a->seq_start[s + 1] - t0;
    int kvh = h / (a->n_heads / a->n_kv);
    int hd = a->head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = scratch;    /* [T]  */
    float *acc = scratch + T;   /* [hd] */
    for (int i = i0; i < i1; i++) {
        const float *q = a->q + tkr_att_q_row(a, s, i) * a->q_stride + (size_t)h * hd;
        int n = a->causal ? i + 1 : T;
        float mx = -INFINITY;
        for (int jj = 0; jj < n; jj++) {
            const float *k = a->k + (size_t)(t0 + jj) * a->kv_stride + (size_t)kvh * hd;
            float sc = dot_f32(q, k, hd) * scale;
            scores[jj] = sc;
            if (sc > mx) mx = sc;
        }
        float sum = 0.0f;
        for (int jj = 0; jj < n; jj++) {
            scores[jj] = expf(scores[jj] - mx);
            sum += scores[jj];
        }
        float inv = 1.0f / sum;
        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        for (int jj = 0; jj < n; jj++) {
            const float *v = a->v + (size_t)(t0 + jj) * a->kv_stride + (size_t)kvh * hd;
            float pw = scores[jj] * inv;
            for (int d = 0; d < hd; d++) acc[d] += pw * v[d];
        }
        float *o = a->out + tkr_att_q_row(a, s, i) * a->out_stride + (size_t)h * hd;
        for (int d = 0; d < hd; d++) o[d] = acc[d];
    }
}

static void att_task(void *p, int task, int thread) {
    att_job *j = p;
    const att_task_def *t = &j->tasks[task];
    float *scratch = j->scratch + (size_t)thread * j->scratch_floats;
#ifdef TKR_HAVE_X86
    if (j->avx512) {
        tkr_attention_rows_avx512(j->a, t->seq, t->head, t->i0, t->i1, scratch);
        return;
    }
    if (j->avx2) {
        tkr_attention_rows_avx2(j->a, t->seq, t->head, t->i0, t->i1, scratch);
        return;
    }
#endif
#ifdef TKR_HAVE_NEON
    if (j->neon) {
        tkr_attention_rows_neon(j->a, t->seq, t->head, t->i0, t->i1, scratch);
        return;
    }
#endif
    attention_rows_generic(j->a, t->seq, t->head, t->i0, t->i1, scratch);
}

/* Query rows per task for a sequence of T tokens: the whole sequence when there are enough
 * (sequence, head) pairs to keep every thread busy, else chunks of at least 48 rows (the AVX2
 * kernel packs the keys once per task, so chunks must not be tiny). */
static int chunk_rows(int T, int pairs, int threads) {
    int want = threads * 4;
    int chunks = pairs >= want ? 1 : (want + pairs - 1) / pairs;
    int rows = (T + chunks - 1) / chunks;
    rows = (rows + 5) / 6 * 6;
    return rows < 48 ? 48 : rows;
}

/* The query rows [lo, hi) of sequence s (relative to its start) this call computes: all of
 * them, or those inside the window [q_row0, q_row1) of packed rows (empty when outside). */
static void query_window(const tkr_attention_args *a, int s, int *lo, int *hi) {
    int t0 = a->seq_start[s], T = a->seq_start[s + 1] - t0;
    *lo = 0;
    *hi = T;
    if (a->q_row1 > 0 && !a->last_row_only) {
        if (a->q_row0 - t0 > *lo) *lo = a->q_row0 - t0;
        if (a->q_row1 - t0 < *hi) *hi = a->q_row1 - t0;
        if (*hi < *lo) *hi = *lo;
    }
}

tkr_status tkr_attention(const tkr_kctx *ctx, const tkr_attention_args *a) {
    int threads = tkr_pool_size(ctx->pool);
    int max_T = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int T = a->seq_start[s + 1] - a->seq_start[s];
        if (T > max_T) max_T = T;
    }
    if (max_T == 0 || a->n_heads <= 0) return TKR_OK;
    int pairs = a->n_seq * a->n_heads;
    size_t n_tasks = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int T = a->seq_start[s + 1] - a->seq_start[s], lo, hi;
        query_window(a, s, &lo, &hi);
        int rows = chunk_rows(hi - lo, pairs, threads);
        if (T > 0 && a->last_row_only) n_tasks += (size_t)a->n_heads;
        else if (hi > lo) n_tasks += (size_t)a->n_heads * (size_t)((hi - lo + rows - 1) / rows);
    }
    bool avx2 = false;
#ifdef TKR_HAVE_X86
    avx2 = ctx->avx2 && a->head_dim % 8 == 0;
#endif
    bool avx512 = false;
#ifdef TKR_HAVE_X86
    avx512 = avx2 && ctx->avx512;
#endif
    bool neon = false;
#ifdef TKR_HAVE_NEON
    neon = ctx->neon && a->head_dim % 4 == 0;
#endif
    size_t per_thread = (size_t)max_T + (size_t)a->head_dim + 16;
#ifdef TKR_HAVE_X86
    if (avx2) per_thread = tkr_attention_avx2_scratch_floats(max_T, a->head_dim);
#endif
#ifdef TKR_HAVE_NEON
    if (neon) per_thread = tkr_attention_neon_scratch_floats(max_T, a->head_dim);
#endif
    per_thread = (per_thread + 15) & ~(size_t)15; /* 64-byte aligned slices */
    att_task_def *tasks = malloc(sizeof *tasks * (n_tasks ? n_tasks : 1));
    float *scratch = NULL;
    if (!tasks || posix_memalign((void **)&scratch, 64, sizeof(float) * per_thread * (size_t)threads)) {
        free(tasks);
        return TKR_ERR_NOMEM;
    }
    size_t t = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int T = a->seq_start[s + 1] - a->seq_start[s], lo, hi;
        query_window(a, s, &lo, &hi);
        int rows = chunk_rows(hi - lo, pairs, threads);
        for (int h = 0; h < a->n_heads && T > 0; h++) {
            if (a->last_row_only) {
                tasks[t++] = (att_task_def){s, h, T - 1, T};
                continue;
            }
            for (int i0 = lo; i0 < hi; i0 += rows)
                tasks[t++] = (att_task_def){s, h, i0, i0 + rows < hi ? i0 + rows : hi};
        }
    }
    att_job j = {ctx, a, tasks, scratch, per_thread, avx2, avx512, neon};
    tkr_pool_run(ctx->pool, (int)n_tasks, att_task, &j);
    free(tasks);
    free(scratch);
    return TKR_OK;
}

/* attention.c - softmax(q k^T / sqrt(d)) v for packed sequences, grouped-query heads.
 *
 * Tasks are (sequence, head, block of query rows); each keeps one row of scores. Sequences in a
 * batch never see each other, so a vector does not depend on its batch. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

enum { ATT_QBLOCK = 16 };

typedef struct {
    const tkr_attention_args *a;
    int *task_seq;       /* task -> sequence */
    int *task_first;     /* task -> first task index of that sequence */
    int blocks_per_head; /* unused when sequences differ; computed per sequence */
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

static void att_task(void *p, int task, int thread) {
    att_job *j = p;
    const tkr_attention_args *a = j->a;
    int s = j->task_seq[task];
    int local = task - j->task_first[s];
    int t0 = a->seq_start[s], T = a->seq_start[s + 1] - t0;
    int qblocks = (T + ATT_QBLOCK - 1) / ATT_QBLOCK;
    int h = local / qblocks, qb = local % qblocks;
    int kvh = h / (a->n_heads / a->n_kv);
    int hd = a->head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = malloc(sizeof(float) * (size_t)T + sizeof(float) * (size_t)hd);
    if (!scores) return;
    float *acc = scores + T;
    int i0 = qb * ATT_QBLOCK, i1 = i0 + ATT_QBLOCK < T ? i0 + ATT_QBLOCK : T;
    for (int i = i0; i < i1; i++) {
        const float *q = a->q + (size_t)(t0 + i) * a->q_stride + (size_t)h * hd;
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
        float *o = a->out + (size_t)(t0 + i) * a->out_stride + (size_t)h * hd;
        for (int d = 0; d < hd; d++) o[d] = acc[d];
    }
    free(scores);
}

void tkr_attention(const tkr_kctx *ctx, const tkr_attention_args *a) {
    int total = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int T = a->seq_start[s + 1] - a->seq_start[s];
        total += a->n_heads * ((T + ATT_QBLOCK - 1) / ATT_QBLOCK);
    }
    if (total == 0) return;
    int *task_seq = malloc(sizeof(int) * (size_t)total + sizeof(int) * (size_t)(a->n_seq + 1));
    if (!task_seq) return;
    int *task_first = task_seq + total;
    int t = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int T = a->seq_start[s + 1] - a->seq_start[s];
        int n = a->n_heads * ((T + ATT_QBLOCK - 1) / ATT_QBLOCK);
        task_first[s] = t;
        for (int i = 0; i < n; i++) task_seq[t++] = s;
    }
    att_job j = {a, task_seq, task_first, 0};
    tkr_pool_run(ctx->pool, total, att_task, &j);
    free(task_seq);
}

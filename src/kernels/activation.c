/* activation.c - element-wise functions of the MLPs, the residual add and the rotary embedding.
 * silu and QuickGELU have AVX2 versions (activation_avx2.c); these are the portable ones. */
#include "kernels/kernels_impl.h"

#include <math.h>

typedef struct {
    float *a;
    const float *b;
    size_t n;
    int kind;
    bool avx2;
    bool neon;
} act_job;

enum { ACT_SILU_MUL, ACT_QUICK_GELU, ACT_GELU_ERF };
enum { ACT_CHUNK = 16384 };

static void act_task(void *p, int task, int thread) {
    act_job *j = p;
    size_t i0 = (size_t)task * ACT_CHUNK;
    size_t i1 = i0 + ACT_CHUNK < j->n ? i0 + ACT_CHUNK : j->n;
    float *a = j->a;
#ifdef TKR_HAVE_X86
    if (j->avx2 && j->kind == ACT_SILU_MUL) {
        tkr_silu_mul_avx2(a + i0, j->b + i0, i1 - i0);
        return;
    }
    if (j->avx2 && j->kind == ACT_QUICK_GELU) {
        tkr_quick_gelu_avx2(a + i0, i1 - i0);
        return;
    }
#endif
#ifdef TKR_HAVE_NEON
    if (j->neon && j->kind == ACT_SILU_MUL) {
        tkr_silu_mul_neon(a + i0, j->b + i0, i1 - i0);
        return;
    }
    if (j->neon && j->kind == ACT_QUICK_GELU) {
        tkr_quick_gelu_neon(a + i0, i1 - i0);
        return;
    }
#endif
    switch (j->kind) {
    case ACT_SILU_MUL:
        for (size_t i = i0; i < i1; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * j->b[i];
        break;
    case ACT_QUICK_GELU:
        for (size_t i = i0; i < i1; i++) a[i] = a[i] / (1.0f + expf(-1.702f * a[i]));
        break;
    case ACT_GELU_ERF:
        for (size_t i = i0; i < i1; i++) a[i] = 0.5f * a[i] * (1.0f + erff(a[i] * 0.70710678118654752f));
        break;
    }
}

static void run_act(const tkr_kctx *ctx, float *a, const float *b, size_t n, int kind) {
    act_job j = {a, b, n, kind, ctx->avx2, ctx->neon};
    tkr_pool_run(ctx->pool, (int)((n + ACT_CHUNK - 1) / ACT_CHUNK), act_task, &j);
}

void tkr_silu_mul(const tkr_kctx *ctx, float *gate, const float *up, size_t n) {
    run_act(ctx, gate, up, n, ACT_SILU_MUL);
}
void tkr_quick_gelu(const tkr_kctx *ctx, float *x, size_t n) { run_act(ctx, x, NULL, n, ACT_QUICK_GELU); }
void tkr_gelu_erf(const tkr_kctx *ctx, float *x, size_t n) { run_act(ctx, x, NULL, n, ACT_GELU_ERF); }

void tkr_add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void tkr_rope_apply(float *x, int T, int n_heads, int head_dim, const float *cos_t,
                    const float *sin_t) {
    tkr_rope_apply_strided(x, T, n_heads * head_dim, n_heads, head_dim, cos_t, sin_t);
}

void tkr_rope_apply_strided(float *x, int T, int row_stride, int n_heads, int head_dim,
                            const float *cos_t, const float *sin_t) {
    int half = head_dim / 2;
    for (int t = 0; t < T; t++) {
        const float *c = cos_t + (size_t)t * half;
        const float *s = sin_t + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)t * row_stride + (size_t)h * head_dim;
            for (int d = 0; d < half; d++) {
                float a = v[d], b = v[d + half];
                v[d] = a * c[d] - b * s[d];
                v[d + half] = b * c[d] + a * s[d];
            }
        }
    }
}

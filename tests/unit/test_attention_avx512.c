/* test_attention_avx512.c - the AVX-512 attention gives the AVX2 kernel's bits, on the head sizes
 * the models use (80: the vision tower; 128: the 2B/7B decoder) and on awkward ones (8, 24:
 * a half-wide last chunk; 40; 176: more chunks than one tile holds), causal and not, GQA, with
 * sequence lengths that cross the score tile (64 keys), the PV tile (4 rows) and the 256-key
 * steps, packed in one batch, on a pool of 3 threads. test_kernels checks every variant against
 * a double-precision reference; this checks that choosing AVX-512 changes no vector.
 * On a CPU without AVX-512 the test says so and fails nothing: there is no second kernel to
 * compare there (the avx512 variant of test_kernels is then absent too). */
#include "test.h"
#include "kernels/kernels.h"
#include "util/threadpool.h"

#include <stdint.h>

static uint32_t rng = 12345u;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

static void check_same(int HD, int H, int KV, const int *seq, int n_seq, tkr_pool *pool) {
    int T = seq[n_seq];
    size_t nq = (size_t)T * H * HD, nkv = (size_t)T * KV * HD;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nkv);
    float *v = malloc(sizeof(float) * nkv), *o2 = malloc(sizeof(float) * nq);
    float *o5 = malloc(sizeof(float) * nq);
    for (size_t i = 0; i < nq; i++) q[i] = frand() * 3;
    for (size_t i = 0; i < nkv; i++) {
        k[i] = frand() * 3;
        v[i] = frand();
    }
    tkr_kctx c2, c5;
    tkr_kctx_init(&c2, pool, "avx2");
    tkr_kctx_init(&c5, pool, "avx512");
    for (int causal = 0; causal < 2; causal++) {
        tkr_attention_args a = {q, k, v, H * HD, KV * HD, o2, H * HD, H, KV, HD, seq, n_seq, causal, false, 0, 0};
        CHECK(tkr_attention(&c2, &a) == TKR_OK, "avx2 status");
        a.out = o5;
        CHECK(tkr_attention(&c5, &a) == TKR_OK, "avx512 status");
        size_t diff = 0;
        for (size_t i = 0; i < nq; i++) diff += memcmp(&o2[i], &o5[i], sizeof(float)) != 0;
        CHECK(diff == 0, "hd %d H %d KV %d causal=%d: %zu of %zu outputs differ from AVX2", HD, H, KV,
              causal, diff, nq);
        double mx = 0;
        for (size_t i = 0; i < nq; i++) mx = fmax(mx, fabs(o5[i]));
        CHECK(mx > 0.01 && mx <= 1.0, "hd %d: outputs look wrong (max |o| %g)", HD, mx);
    }
    free(q);
    free(k);
    free(v);
    free(o2);
    free(o5);
}

static void test_avx512_matches_avx2(void) {
    tkr_kctx c;
    tkr_kctx_init(&c, NULL, NULL);
    if (!c.avx2 || !c.avx512) {
        printf("  (no AVX-512 on this CPU: the AVX-512 attention is not built in or not chosen here)\n");
        return;
    }
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(3, &pool, &e) == TKR_OK, "pool");
    int seq[4] = {0, 7, 300, 365};       /* 7: under a tile; 293: 2 key steps; 65: 64 + 1 */
    int hds[] = {8, 24, 40, 80, 128, 176};
    for (size_t i = 0; i < sizeof hds / sizeof hds[0]; i++) check_same(hds[i], 4, 2, seq, 3, pool);
    int one[2] = {0, 1030};              /* a vision-sized run: many query blocks and tasks */
    check_same(80, 2, 2, one, 1, pool);
    tkr_pool_free(pool);
}

int main(void) {
    RUN(test_avx512_matches_avx2);
    return test_summary();
}

/* test_kernels_pack.c - weights repacked at load (kernels.h tkr_linear_repack, tensor.h
 * TKR_LAYOUT_PAIR_PANELS): the packed weight gives the unpacked one's results bit for bit in
 * every kernel variant (exact and fast), stays batch- and thread-invariant, reads back row by
 * row as the same values, and a source bound twice is packed once. On a CPU without AVX-512
 * nothing is packed, which is checked too. */
#include "test.h"
#include "kernels/kernels.h"

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}

static bool have_avx512(void) {
    tkr_kctx c;
    tkr_kctx_init(&c, NULL, NULL);
    return c.avx512;
}

/* y [M, N] for ctx on w; false on a failed call. */
static bool run(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w, const tkr_tensor *b,
                float *y) {
    return tkr_linear(ctx, x, M, K, w, b, y) == TKR_OK;
}

/* One shape: a BF16 weight [N, K], x [M, K]; every variant (generic, avx2, avx512, fast) on
 * the row-major weight and on the packed one. */
static void check_shape(int M, int K, int N, tkr_pool *pool) {
    size_t nw = (size_t)N * K;
    uint16_t *wd = malloc(nw * 2);
    float *x = malloc(sizeof(float) * (size_t)M * K), *bias_v = malloc(sizeof(float) * (size_t)N);
    float *ya = malloc(sizeof(float) * (size_t)M * N), *yb = malloc(sizeof(float) * (size_t)M * N);
    float *r0 = malloc(sizeof(float) * (size_t)K), *r1 = malloc(sizeof(float) * (size_t)K);
    for (size_t i = 0; i < nw; i++) wd[i] = tkr_f32_to_bf16(frand());
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    for (int i = 0; i < N; i++) bias_v[i] = frand();
    tkr_tensor w = {.name = "w", .dtype = TKR_DT_BF16, .ndim = 2, .shape = {N, K}, .data = wd,
                    .nbytes = nw * 2};
    tkr_tensor b = {.name = "b", .dtype = TKR_DT_F32, .ndim = 1, .shape = {N}, .data = bias_v,
                    .nbytes = (size_t)N * 4};
    tkr_kctx best;
    tkr_kctx_init(&best, pool, NULL);
    const tkr_tensor *pw = &w, *again = &w;
    const tkr_tensor **slots[] = {&pw, &again};
    tkr_packed_set *set = NULL;
    CHECK(tkr_linear_repack(&best, slots, 2, false, &set) == TKR_OK, "repack status");
    if (!have_avx512()) {
        CHECK(pw == &w && set == NULL, "M%d K%d N%d: packed without AVX-512", M, K, N);
    } else {
        CHECK(pw != &w && pw->layout == TKR_LAYOUT_PAIR_PANELS && pw->panel_rows == 64, "not packed");
        CHECK(again == pw, "a source bound twice was packed twice");
        size_t want = (size_t)(N + 63) / 64 * 64 * (size_t)((K + 1) / 2) * 4;
        CHECK(pw->nbytes == want && tkr_packed_set_bytes(set) == want, "packed bytes %zu, want %zu",
              pw->nbytes, want);
        CHECK(((uintptr_t)pw->data & 63) == 0, "packed data not 64-byte aligned");
        int bad = 0;
        for (int n = 0; n < N; n++) {
            tkr_weight_row_f32(&w, n, r0);
            tkr_weight_row_f32(pw, n, r1);
            bad += memcmp(r0, r1, sizeof(float) * (size_t)K) != 0;
        }
        CHECK(bad == 0, "M%d K%d N%d: %d packed rows read back differently", M, K, N, bad);
    }
    const char *caps[] = {"generic", "avx2", "avx512", "avx512"};
    for (int v = 0; v < 4; v++) {
        tkr_kctx c, c1;
        tkr_kctx_init(&c, pool, caps[v]);
        tkr_kctx_init(&c1, NULL, caps[v]);
        c.fast_bf16 = c1.fast_bf16 = v == 3;
        /* the reference: row-major weight; the AVX2 and NEON kernels read rows only, so with a
         * packed weight they fall back to the portable kernel (never the case after a load,
         * where the weight is packed for the kernels that run) */
        tkr_kctx ref = c;
        if (pw->layout != TKR_LAYOUT_ROWS && !c.avx512) tkr_kctx_init(&ref, pool, "generic");
        CHECK(run(&ref, x, M, K, &w, &b, ya) && run(&c, x, M, K, pw, &b, yb), "linear status");
        CHECK(memcmp(ya, yb, sizeof(float) * (size_t)M * N) == 0, "%s%s M%d K%d N%d: packed differs",
              caps[v], v == 3 ? " fast" : "", M, K, N);
        CHECK(run(&c1, x, M, K, pw, &b, ya), "linear status");
        CHECK(memcmp(ya, yb, sizeof(float) * (size_t)M * N) == 0, "%s%s M%d K%d N%d: 1 and 3 threads differ",
              caps[v], v == 3 ? " fast" : "", M, K, N);
        int moved = 0;
        for (int m = 0; m < M; m += M / 3 + 1) {
            CHECK(run(&c, x + (size_t)m * K, 1, K, pw, &b, ya), "linear status");
            moved += memcmp(ya, yb + (size_t)m * N, sizeof(float) * (size_t)N) != 0;
        }
        CHECK(moved == 0, "%s%s M%d K%d N%d: a row alone differs from the batch", caps[v],
              v == 3 ? " fast" : "", M, K, N);
    }
    tkr_packed_set_free(set);
    free(wd);
    free(x);
    free(bias_v);
    free(ya);
    free(yb);
    free(r0);
    free(r1);
}

/* Shapes: N around and across the 64-row panel (1, 63, 64, 65, 200), K odd (a zero upper half
 * in the last pair), below and across the 256-wide k-block; M from 1 to a 128-token prompt
 * (the large-x loop nest, M K > 128 K floats). */
static void test_repack_linear(void) {
    tkr_error e;
    tkr_pool *pool = NULL;
    CHECK(tkr_pool_init(3, &pool, &e) == TKR_OK, "pool");
    int shapes[][3] = {{1, 8, 1},      {7, 37, 63},   {6, 256, 64},  {13, 513, 65},
                       {128, 1537, 200}, {3, 1, 70},  {40, 3400, 37}, {130, 1030, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_shape(shapes[s][0], shapes[s][1], shapes[s][2], pool);
    tkr_pool_free(pool);
}

/* Only BF16 2-D weights are packed, and a packed one is not packed again. */
static void test_repack_skips(void) {
    tkr_kctx c;
    tkr_kctx_init(&c, NULL, NULL);
    float f[64] = {0};
    uint16_t h[64] = {0};
    tkr_tensor wf = {.name = "f", .dtype = TKR_DT_F32, .ndim = 2, .shape = {8, 8}, .data = f, .nbytes = 256};
    tkr_tensor w1 = {.name = "v", .dtype = TKR_DT_BF16, .ndim = 1, .shape = {64}, .data = h, .nbytes = 128};
    tkr_tensor wb = {.name = "b", .dtype = TKR_DT_BF16, .ndim = 2, .shape = {8, 8}, .data = h, .nbytes = 128};
    const tkr_tensor *a = &wf, *b = &w1, *d = &wb, *none = NULL;
    const tkr_tensor **slots[] = {&a, &b, &none};
    tkr_packed_set *set = NULL;
    CHECK(tkr_linear_repack(&c, slots, 3, false, &set) == TKR_OK, "status");
    CHECK(a == &wf && b == &w1 && none == NULL && set == NULL, "packed a tensor that is not a BF16 matrix");
    const tkr_tensor **one[] = {&d};
    CHECK(tkr_linear_repack(&c, one, 1, false, &set) == TKR_OK, "status");
    const tkr_tensor *packed = d;
    CHECK(tkr_linear_repack(&c, one, 1, false, &set) == TKR_OK && d == packed, "packed twice");
    CHECK(c.avx512 ? d != &wb : d == &wb, "AVX-512 %d, packed %d", c.avx512, d != &wb);
    tkr_packed_set_free(set);
}

int main(void) {
    RUN(test_repack_linear);
    RUN(test_repack_skips);
    return test_summary();
}

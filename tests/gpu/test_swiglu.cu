/* test_swiglu.cu - the GEMMs with a fused activation (cuda_gemm_swiglu.cu): gate|up + SiLU-gate
 * and fc1 + bias + QuickGELU, against a float64 CPU reference (GPU only: tests/gpu/run.sh builds
 * and runs it).
 *
 * Inputs are random bf16 x [M, K] and W [2I, K] (gate rows, then up rows) or W [N, K] and a float
 * bias. Shapes cover one row, partial and exact 64-row tiles, more tiles than SMs, the models' K,
 * and batches whose x exceeds half the L2 (tiles in groups). An element passes when
 * |y - ref| <= 2^-7 |ref| + 1e-3 max|ref| (the bf16 output rounds at 2^-9; the products sum in
 * float32). Also: the same call twice gives the same bits; the first rows of a batch are the same
 * bits as those rows alone (each output is one thread's sum in a fixed order: docs/backends.md,
 * determinism); shapes the kernel does not take are refused without a launch. */
#include "backend/cuda/cuda_internal.h"
extern "C" {
#include "kernels/kernels.h" /* tkr_f32_to_bf16, tkr_bf16_to_f32 */
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

using namespace tkrcuda;

namespace {

#define CK(x)                                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (x);                                                                          \
        if (e_ != cudaSuccess) {                                                                       \
            fprintf(stderr, "test_swiglu: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

/* Deterministic values in [-scale/2, scale/2), rounded to bf16. */
std::vector<uint16_t> random_bf16(size_t n, uint32_t seed, float scale) {
    std::vector<uint16_t> v(n);
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        v[i] = tkr_f32_to_bf16(((float)(s >> 8) / 16777216.0f - 0.5f) * scale);
    }
    return v;
}

struct DevMem {
    void *p = nullptr;
    explicit DevMem(size_t bytes) { CK(cudaMalloc(&p, bytes)); }
    ~DevMem() { cudaFree(p); }
};

/* One kernel under test: the SiLU-gate (W [2I, K], N = I outputs a row) or the bias + QuickGELU
 * (W [N, K], bias [N] or none). */
struct Epi {
    bool qgelu;
    std::vector<float> bias; /* empty: none */
    int w_rows(int N) const { return qgelu ? N : 2 * N; }
};

/* Runs the kernel on x [M, K], w; the output [M, N] as bf16 bits (empty if refused). */
std::vector<uint16_t> run(void *enc, int n_sm, const Epi &e, const std::vector<uint16_t> &x,
                          const std::vector<uint16_t> &w, int M, int N, int K, int cfg) {
    DevMem dx(x.size() * 2), dw(w.size() * 2), dy((size_t)M * N * 2), db(e.bias.size() * 4 + 4);
    CK(cudaMemcpy(dx.p, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dw.p, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db.p, e.bias.data(), e.bias.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(dy.p, 0xff, (size_t)M * N * 2)); /* NaN bits: a row left unwritten fails */
    std::vector<uint16_t> y((size_t)M * N);
    const bool ok = e.qgelu ? linear_qgelu_launch(enc, n_sm, dx.p, dw.p, e.bias.empty() ? nullptr : (const float *)db.p,
                                                  M, N, K, dy.p, 0)
                            : gateup_swiglu_launch(enc, n_sm, dx.p, dw.p, M, N, K, dy.p, 0, cfg);
    if (!ok) {
        fprintf(stderr, "test_swiglu: M %d N %d K %d refused\n", M, N, K);
        return {};
    }
    CK(cudaGetLastError());
    CK(cudaMemcpy(y.data(), dy.p, y.size() * 2, cudaMemcpyDeviceToHost));
    return y;
}

/* One shape against the float64 reference (every row, or every 61st and the last 64 of a large
 * batch); returns the number of failures (0 or 1). */
int check_shape(void *enc, int n_sm, const Epi &e, int M, int N, int K, int cfg) {
    const std::vector<uint16_t> x = random_bf16((size_t)M * K, 1u + M, 2.0f);
    const std::vector<uint16_t> w = random_bf16((size_t)e.w_rows(N) * K, 7u + K, 0.2f);
    const std::vector<uint16_t> y = run(enc, n_sm, e, x, w, M, N, K, cfg);
    if (y.empty()) return 1;
    const int step = M > 4096 ? 61 : 1;
    std::vector<int> rows;
    for (int r = 0; r < M; r++)
        if (r % step == 0 || r >= M - 64) rows.push_back(r);
    std::vector<double> ref(rows.size() * N);
    double max_ref = 0, worst = 0;
    for (size_t i = 0; i < rows.size(); i++)
        for (int c = 0; c < N; c++) {
            const int r = rows[i];
            double g = 0, u = 0;
            for (int k = 0; k < K; k++) {
                const double xv = tkr_bf16_to_f32(x[(size_t)r * K + k]);
                g += xv * tkr_bf16_to_f32(w[(size_t)c * K + k]);
                if (!e.qgelu) u += xv * tkr_bf16_to_f32(w[(size_t)(N + c) * K + k]);
            }
            const double v = g + (e.qgelu && !e.bias.empty() ? e.bias[c] : 0.0);
            ref[i * N + c] = e.qgelu ? v / (1.0 + exp(-1.702 * v)) : g / (1.0 + exp(-g)) * u;
            max_ref = fmax(max_ref, fabs(ref[i * N + c]));
        }
    size_t bad = 0;
    for (size_t i = 0; i < rows.size(); i++)
        for (int c = 0; c < N; c++) {
            const double err = fabs((double)tkr_bf16_to_f32(y[(size_t)rows[i] * N + c]) - ref[i * N + c]);
            if (!(err <= fabs(ref[i * N + c]) / 128 + 1e-3 * max_ref)) bad++;
            if (!(err <= worst)) worst = err;
        }
    size_t unwritten = 0; /* NaN: the memset's bits, rows outside the sample included */
    for (uint16_t v : y) unwritten += !(tkr_bf16_to_f32(v) == tkr_bf16_to_f32(v));
    bad += unwritten;
    /* the same call again: the same bits */
    const bool same = run(enc, n_sm, e, x, w, M, N, K, cfg) == y;
    /* the first rows alone (a smaller batch): the same bits as in this batch */
    const int m1 = M > 1 ? M / 2 + 1 : 1;
    const std::vector<uint16_t> x1(x.begin(), x.begin() + (size_t)m1 * K), y1 = run(enc, n_sm, e, x1, w, m1, N, K, cfg);
    const bool batch_same = y1.size() == (size_t)m1 * N && !memcmp(y1.data(), y.data(), y1.size() * 2);
    const bool ok = bad == 0 && same && batch_same;
    printf("%s %s cfg %d M %5d N %5d K %5d: max err %.3g (max |ref| %.3g), %zu out of tolerance, repeat %s, first %d "
           "rows alone %s\n",
           ok ? "PASS" : "FAIL", e.qgelu ? (e.bias.empty() ? "quick-gelu" : "bias+quick-gelu") : "silu-gate", cfg, M, N,
           K, worst, max_ref, bad, same ? "identical" : "DIFFERENT", m1, batch_same ? "identical" : "DIFFERENT");
    return ok ? 0 : 1;
}

} // namespace

int main() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        fprintf(stderr, "test_swiglu: no CUDA GPU\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("test_swiglu: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    if (!wgmma_available(0)) {
        printf("test_swiglu: FAIL: this build has no sm_90a code for this GPU (the kernel is sm_90a only)\n");
        return 1;
    }
    void *enc = tma_encoder();
    if (!enc) {
        printf("test_swiglu: FAIL: the driver has no tensor-map encoder\n");
        return 1;
    }
    int fails = 0;
    /* n_sm 3: several tiles per block, so the stage ring and the warpgroups' turns wrap around;
       the 20480-row shapes have x larger than half the L2: tiles in groups of m-tiles (and their
       first half in fewer groups) */
    const Epi silu{false, {}};
    const int shapes[][4] = {{1, 128, 64, 132},   {63, 256, 128, 132}, {64, 128, 64, 1},      {65, 384, 192, 3},
                             {300, 512, 768, 3}, {1000, 256, 1536, 132}, {777, 1024, 320, 7}};
    for (int cfg = 0; cfg < 5; cfg++) /* the default and the variants of TKR_CUDA_SWIGLU_CFG */
        for (const auto &s : shapes) fails += check_shape(enc, s[3], silu, s[0], s[1], s[2], cfg);
    fails += check_shape(enc, 132, silu, 20480, 128, 1536, 0);
    /* the vision fc1: bias + QuickGELU, N outputs of 256-row W tiles */
    Epi qg{true, {}};
    const int qshapes[][4] = {{1, 256, 64, 132}, {65, 512, 192, 3}, {300, 768, 1280, 7}, {1000, 512, 128, 132},
                              {20480, 256, 1280, 132}};
    for (const auto &s : qshapes) {
        qg.bias.resize(s[1]);
        for (int c = 0; c < s[1]; c++) qg.bias[c] = (float)((c * 37) % 101 - 50) / 25.0f;
        fails += check_shape(enc, s[3], qg, s[0], s[1], s[2], 0);
    }
    fails += check_shape(enc, 132, Epi{true, {}}, 129, 256, 320, 0);
    { /* the variants differ in stages and turn timing only: the same sums, the same bits */
        const int M = 1000, I = 512, K = 1536;
        const std::vector<uint16_t> x = random_bf16((size_t)M * K, 3u, 2.0f);
        const std::vector<uint16_t> w = random_bf16((size_t)2 * I * K, 5u, 0.2f);
        const std::vector<uint16_t> y0 = run(enc, 132, silu, x, w, M, I, K, 0);
        bool same = !y0.empty();
        for (int cfg = 1; cfg < 5; cfg++) same = same && run(enc, 132, silu, x, w, M, I, K, cfg) == y0;
        printf("%s every variant gives the same bits (M %d I %d K %d)\n", same ? "PASS" : "FAIL", M, I, K);
        fails += !same;
    }
    /* refused: I not a multiple of 128, K not of 64, no rows */
    const bool refused = !gateup_swiglu_fits(64, 100, 64, nullptr, nullptr, nullptr) &&
                         !gateup_swiglu_fits(64, 128, 96, nullptr, nullptr, nullptr) &&
                         !gateup_swiglu_fits(0, 128, 64, nullptr, nullptr, nullptr) &&
                         !gateup_swiglu_launch(enc, 132, nullptr, nullptr, 64, 100, 64, nullptr, 0) &&
                         !linear_qgelu_fits(64, 128, 64, nullptr, nullptr, nullptr) &&
                         !linear_qgelu_fits(64, 256, 96, nullptr, nullptr, nullptr) &&
                         !linear_qgelu_launch(enc, 132, nullptr, nullptr, nullptr, 64, 384, 64, nullptr, 0);
    printf("%s shapes the kernel does not take are refused\n", refused ? "PASS" : "FAIL");
    fails += !refused;
    printf("test_swiglu: %d failure%s\n", fails, fails == 1 ? "" : "s");
    return fails ? 1 : 0;
}

/* bench_gemm_swiglu.cu - the gate|up GEMM with the SiLU-gate in its epilogue: the backend's
 * kernel (cuda_gemm_swiglu.cu, its configurations) and the designs it beat, against cuBLAS's
 * GEMM followed by the separate SiLU-gate kernel, on the 2B (or 7B) text MLP shape.
 *   build-cuda/bench/bench_gemm_swiglu [M (8192)] [rounds (15)] [2b|7b|fc1]
 * (fc1: the vision MLP's fc1 with bias + QuickGELU, the same kernel's other epilogue.)
 * y [M, I] = silu(x Wg^T) * (x Wu^T), x [M, K] bf16, W [2I, K] bf16 (gate rows, then up rows, as
 * the backend fuses them), y bf16. Each kernel's output is checked against cuBLAS's float32
 * GEMM + a float SiLU-gate ("no silu" variants are timing only and fail it), then all are timed
 * in turn, round after round (median): the H200's clock follows its power draw over a run.
 * The designs kept here for comparison: the cooperative kernel (a block of 3 warpgroups, one
 * thread of the last streaming x and W tiles by TMA into 4 stages; the two consumer warpgroups
 * each own 64 rows of one 128 x 256 accumulator tile, gate columns then up columns), persistent,
 * with the backend's SiLU (EPI 0), the division by the MUFU reciprocal (1) or none (2). The
 * same in clusters of 2 with the W tile multicast is in this file at d2d41e7; the pingpong
 * variants that lost were measured, not kept (docs/benchmarks.md). Measured on the H200 (2026-12-03;
 * docs/benchmarks.md, "The fused gate|up + SiLU-gate GEMM"): at M 8192 the backend's pingpong
 * kernel 0.647-0.676 ms against cuBLAS + SiLU-gate 0.789-0.808 and the cooperative designs
 * 0.72-0.81. fc1 (same day): the fused bias + QuickGELU 2.15 ms at M 81920 against cuBLAS + the
 * separate kernel's 2.07. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_wgmma.h"

#include <cublas_v2.h>
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

using namespace tkrcuda::wg;

#define CK(x)                                                                                                   \
    do {                                                                                                        \
        cudaError_t e_ = (x);                                                                                   \
        if (e_ != cudaSuccess) {                                                                                \
            fprintf(stderr, "bench_gemm_swiglu: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                                            \
        }                                                                                                       \
    } while (0)

namespace {

constexpr int BM = 128, BK = 64;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
template <int NB> __device__ inline void wgmma_ss(float (&d)[NB / 2], uint64_t da, uint64_t db, int scale_d) {
    static_assert(NB == 256, "BNO 128 only (BNO 64, on m64n128k16, was slower: see the file comment)");
    wgmma_ss_n256(d, da, db, scale_d);
}
#endif

__device__ inline float silu_f(float g) { return g / (1.0f + __expf(-g)); }

/* The epilogue's product for EPI 0 (as the backend's SiLU-gate kernel: IEEE division), 1 (the
 * division by the MUFU reciprocal), 2 (no SiLU at all: timing of the GEMM alone, fails the check). */
template <int EPI> __device__ inline float swiglu(float g, float u) {
    if (EPI == 0) return silu_f(g) * u;
    if (EPI == 1) return __fdividef(g, 1.0f + __expf(-g)) * u;
    return g * u;
}

/* Rows r0 and r0 + 8 of the tile's BNO outputs from a consumer thread's accumulators (gate
 * columns in d[0, BNO/2), up columns after; the m64nNk16 layout: 4 floats per 8 columns). */
template <int BNO, int EPI>
__device__ inline void store_swiglu(const float *d, __nv_bfloat16 *y, size_t r0, int I, int n0, int tq) {
    __nv_bfloat16 *y0 = y + r0 * I + n0 + 2 * tq, *y1 = y0 + (size_t)8 * I;
#pragma unroll
    for (int nb = 0; nb < BNO / 8; nb++) {
        const float *gt = d + 4 * nb, *up = d + 4 * (nb + BNO / 8);
        *(__nv_bfloat162 *)(y0 + nb * 8) = __floats2bfloat162_rn(swiglu<EPI>(gt[0], up[0]), swiglu<EPI>(gt[1], up[1]));
        *(__nv_bfloat162 *)(y1 + nb * 8) = __floats2bfloat162_rn(swiglu<EPI>(gt[2], up[2]), swiglu<EPI>(gt[3], up[3]));
    }
}

/* See the file comment. Needs M % BM == 0, I % BNO == 0, K % BK == 0 (the host checks). A
 * persistent grid (one block per SM walking tiles t, t + gridDim.x, ... m-tile fastest), the
 * stage ring running on across tiles, so that the next tile's first loads overlap this tile's
 * epilogue. */
template <int BNO, int ST, int EPI>
__global__ void __launch_bounds__(384, 1) k_gateup_silu(const __grid_constant__ CUtensorMap tx,
                                                         const __grid_constant__ CUtensorMap tw, int M, int I, int K,
                                                         __nv_bfloat16 *y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NB = 2 * BNO, A_EL = BM * BK, STAGE_EL = A_EL + NB * BK;
    constexpr uint32_t STAGE_BYTES = STAGE_EL * 2;
    extern __shared__ __align__(1024) unsigned char smraw[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)(smraw + ((1024 - (saddr(smraw) & 1023)) & 1023));
    uint64_t *full = (uint64_t *)(sm + ST * STAGE_EL), *empty = full + ST;
    const int tid = threadIdx.x, wg = tid >> 7, KT = K / BK, MT = M / BM;
    const int n_tiles = MT * (I / BNO), t0 = blockIdx.x, t_step = gridDim.x;
    auto tile_m0 = [&](int t) { return (t % MT) * BM; };
    auto tile_n0 = [&](int t) { return (t / MT) * BNO; };
    if (tid == 0) {
        for (int s = 0; s < ST; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 256);
        }
        fence_proxy_async();
    }
    __syncthreads();
    if (wg == 2) { /* the producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid != 256) return;
        int it = 0;
        for (int t = t0; t < n_tiles; t += t_step) {
            const int m0 = tile_m0(t), n0 = tile_n0(t);
            for (int kt = 0; kt < KT; kt++, it++) {
                const int s = it % ST;
                if (it >= ST) mbar_wait(&empty[s], (it / ST - 1) & 1);
                __nv_bfloat16 *As = sm + s * STAGE_EL, *Bs = As + A_EL;
                mbar_expect_tx(&full[s], STAGE_BYTES);
                tma_load_2d(As, &tx, kt * BK, m0, &full[s]);
                tma_load_2d(Bs, &tw, kt * BK, n0, &full[s]);
                tma_load_2d(Bs + BNO * BK, &tw, kt * BK, I + n0, &full[s]);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    int it = 0;
    for (int t = t0; t < n_tiles; t += t_step) {
        const int m0 = tile_m0(t), n0 = tile_n0(t);
        float d[NB / 2];
#pragma unroll
        for (int i = 0; i < NB / 2; i++) d[i] = 0.f;
        for (int kt = 0; kt < KT; kt++, it++) {
            const int s = it % ST;
            mbar_wait(&full[s], (it / ST) & 1);
            const __nv_bfloat16 *As = sm + s * STAGE_EL + wg * 64 * BK, *Bs = sm + s * STAGE_EL + A_EL;
#pragma unroll
            for (int i = 0; i < NB / 2; i++) reg_fence(d[i]);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++)
                wgmma_ss<NB>(d, smem_desc_sw(As + kk * 16, 16, 1024, 1), smem_desc_sw(Bs + kk * 16, 16, 1024, 1), 1);
            wg_commit();
            wg_wait<1>();
            if (kt > 0) mbar_arrive(&empty[(it - 1) % ST]);
        }
        wg_wait<0>();
        mbar_arrive(&empty[(it - 1) % ST]); /* the tile's last stage, for the next tile's loads */
#pragma unroll
        for (int i = 0; i < NB / 2; i++) reg_fence(d[i]);
        store_swiglu<BNO, EPI>(d, y, (size_t)m0 + wg * 64 + warp * 16 + g, I, n0, tq);
    }
#endif
}

/* max |y - silu(g) u| over the matrix, with g | u the float32 GEMM (err[0]), and max |reference|
 * (err[1]); non-negative floats compare as their bits. */
__global__ void k_check(const __nv_bfloat16 *y, const float *gu, size_t M, int I, unsigned *err) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < M * I; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / I, c = i % I;
        const float ref = silu_f(gu[r * 2 * I + c]) * gu[r * 2 * I + I + c];
        const float e = fabsf(__bfloat162float(y[i]) - ref);
        atomicMax(&err[0], __float_as_uint(e));
        atomicMax(&err[1], __float_as_uint(fabsf(ref)));
    }
}

/* The same for y = quick_gelu(ref + bias), ref [M, N] float32 (the vision fc1). */
__global__ void k_check_qgelu(const __nv_bfloat16 *y, const float *ref, const float *bias, size_t M, int N,
                              unsigned *err) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < M * N; i += (size_t)gridDim.x * blockDim.x) {
        const float v = ref[i] + bias[i % N], r = v / (1.0f + __expf(-1.702f * v));
        atomicMax(&err[0], __float_as_uint(fabsf(__bfloat162float(y[i]) - r)));
        atomicMax(&err[1], __float_as_uint(fabsf(r)));
    }
}

__global__ void k_fill(__nv_bfloat16 *p, size_t n, uint32_t seed, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        p[i] = __float2bfloat16(((float)(h & 0xffff) / 65536.0f - 0.5f) * scale);
    }
}

bool encode(CUtensorMap *m, const void *base, int cols, int rows, int box_rows) {
    void *fn = tkrcuda::tma_encoder(); /* the backend's lookup of the driver's encoder */
    return fn && encode_map((PFN_cuTensorMapEncodeTiled_v12000)fn, m, base, cols, rows, cols, BK, box_rows,
                            CU_TENSOR_MAP_SWIZZLE_128B);
}

/* One kernel under test: how to launch it, its check against the float reference, its timings. */
struct Variant {
    std::string name;
    std::function<void()> launch;
    float err = 0, ref = 0;
    bool checked = false;
    std::vector<float> ms;
};

struct Ctx {
    int M, I, K; /* I: the outputs a row */
    __nv_bfloat16 *y;
    const float *gu; /* float32 gate | up (or fc1's product), the reference */
    unsigned *err;
    std::vector<Variant> vs;
    const float *bias = nullptr; /* the vision fc1: y = quick_gelu(gu + bias) */
};

/* Runs the launch once and checks y against the float reference (check: false for cuBLAS and
 * the SiLU-gate alone, whose outputs are not y); the timing comes later, interleaved. */
void add(Ctx &c, const std::string &name, std::function<void()> launch, bool check = true) {
    Variant v;
    v.name = name;
    v.launch = std::move(launch);
    if (check) {
        CK(cudaMemset(c.y, 0, (size_t)c.M * c.I * 2));
        v.launch();
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        CK(cudaMemset(c.err, 0, 8));
        if (c.bias) k_check_qgelu<<<4096, 256>>>(c.y, c.gu, c.bias, c.M, c.I, c.err);
        else k_check<<<4096, 256>>>(c.y, c.gu, c.M, c.I, c.err);
        unsigned h[2];
        CK(cudaMemcpy(h, c.err, 8, cudaMemcpyDeviceToHost));
        memcpy(&v.err, &h[0], 4);
        memcpy(&v.ref, &h[1], 4);
        v.checked = true;
    }
    c.vs.push_back(std::move(v));
}

/* The backend's path without the fused kernel: cuBLAS's GEMM, then the activation kernel (also
 * each alone, timing only). */
void add_two_kernels(Ctx &c, const std::function<void()> &gemm, const std::function<void()> &act, const char *name) {
    add(c, "cublas gemm (bf16 out)", gemm, false);
    add(c, std::string(name) + " alone", act, false);
    add(c, "cublas gemm + " + std::string(name), [=] { gemm(); act(); });
}

/* Rounds over all variants, each round starting at the next one, REP launches timed per entry:
 * the GPU's clock drifts with its power draw over a run, and interleaving spreads that drift over
 * every variant alike instead of favouring the first ones. Median per variant. */
void time_all(Ctx &c, int rounds, int rep) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    const int n = (int)c.vs.size();
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < n; k++) {
            Variant &v = c.vs[(r + k) % n];
            CK(cudaEventRecord(a));
            for (int i = 0; i < rep; i++) v.launch();
            CK(cudaEventRecord(b));
            CK(cudaEventSynchronize(b));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, a, b));
            v.ms.push_back(ms / rep);
        }
}

void report(Ctx &c, double flop) {
    for (Variant &v : c.vs) {
        std::sort(v.ms.begin(), v.ms.end());
        const float ms = v.ms[v.ms.size() / 2];
        printf("{\"bench\": \"gemm_swiglu\", \"kernel\": \"%s\", \"M\": %d, \"ms\": %.4f, \"tflops\": %.1f",
               v.name.c_str(), c.M, ms, flop / ms / 1e9);
        if (v.checked)
            printf(", \"max_err\": %.3g, \"max_ref\": %.3g, \"check\": \"%s\"", v.err, v.ref,
                   v.err <= 0.02f * v.ref ? "ok" : "FAIL");
        printf("}\n");
    }
}

int n_sms() {
    int n = 0;
    CK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, 0));
    return n;
}

template <int BNO, int ST, int EPI> void add_coop(Ctx &c, const char *name, CUtensorMap tx, CUtensorMap tw) {
    const size_t smem = 1024 + (size_t)ST * (BM * BK + 2 * BNO * BK) * 2 + 2 * ST * 8;
    CK(cudaFuncSetAttribute(k_gateup_silu<BNO, ST, EPI>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)smem));
    const int tiles = c.M / BM * (c.I / BNO), grid = std::min(tiles, n_sms());
    const int M = c.M, I = c.I, K = c.K;
    __nv_bfloat16 *y = c.y;
    add(c, name, [=] { k_gateup_silu<BNO, ST, EPI><<<grid, 384, smem>>>(tx, tw, M, I, K, y); });
}

} // namespace

/* The vision MLP's fc1 (K 1280, N 5120) with bias + QuickGELU: cuBLAS's GEMM and the backend's
 * separate bias + QuickGELU kernel against the fused kernel. */
int bench_fc1(int M, int rounds) {
    const int K = 1280, N = 5120;
    __nv_bfloat16 *x, *w, *y;
    float *ref, *bias;
    unsigned *err;
    CK(cudaMalloc(&x, (size_t)M * K * 2));
    CK(cudaMalloc(&w, (size_t)N * K * 2));
    CK(cudaMalloc(&y, (size_t)M * N * 2));
    CK(cudaMalloc(&ref, (size_t)M * N * 4));
    CK(cudaMalloc(&bias, (size_t)N * 4));
    CK(cudaMalloc(&err, 8));
    k_fill<<<4096, 256>>>(x, (size_t)M * K, 1u, 2.0f);
    k_fill<<<4096, 256>>>(w, (size_t)N * K, 7u, 0.1f);
    std::vector<float> hb(N);
    for (int c = 0; c < N; c++) hb[c] = (float)((c * 37) % 101 - 50) / 50.0f;
    CK(cudaMemcpy(bias, hb.data(), (size_t)N * 4, cudaMemcpyHostToDevice));
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    static const float one = 1.f, zero = 0.f;
    if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, ref,
                     CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        return 1;
    Ctx c{M, N, K, y, ref, err, {}};
    c.bias = bias;
    auto gemm = [=] {
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, y,
                     CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    auto act = [=] { tkrcuda::bias_act_g(false, y, bias, M, N, tkrcuda::ACT_QUICK_GELU, y, 0); };
    add_two_kernels(c, gemm, act, "bias + quick-gelu");
    void *enc = tkrcuda::tma_encoder();
    const int nsm = n_sms();
    if (!enc || !tkrcuda::linear_qgelu_fits(M, N, K, x, w, y)) {
        printf("bench_gemm_swiglu: no tensor-map encoder, or the shape does not fit\n");
        return 1;
    }
    add(c, "fused bias + quick-gelu (backend)",
        [=] { tkrcuda::linear_qgelu_launch(enc, nsm, x, w, bias, M, N, K, y, 0); });
    time_all(c, rounds, 3);
    report(c, 2.0 * M * N * K);
    cublasDestroy(h);
    return 0;
}

int main(int argc, char **argv) {
    const int M = argc > 1 ? atoi(argv[1]) : 8192, rounds = argc > 2 ? atoi(argv[2]) : 15;
    const bool big = argc > 3 && !strcmp(argv[3], "7b");
    if (argc > 3 && !strcmp(argv[3], "fc1") && M > 0 && rounds > 0) return bench_fc1(M, rounds);
    const int K = big ? 3584 : 1536, I = big ? 18944 : 8960; /* Qwen2-VL 2B / 7B: hidden, intermediate */
    if (M <= 0 || M % 64 || rounds <= 0) {
        fprintf(stderr, "usage: bench_gemm_swiglu [M (8192, a multiple of 64)] [rounds (15)] [2b|7b|fc1]\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("bench_gemm_swiglu: %s (sm_%d%d), M %d, K %d, I %d\n", prop.name, prop.major, prop.minor, M, K, I);
    if (prop.major != 9) {
        printf("bench_gemm_swiglu: needs sm_90a (wgmma, TMA)\n");
        return 1;
    }
    __nv_bfloat16 *x, *w, *gu, *y;
    float *gu32;
    unsigned *err;
    CK(cudaMalloc(&x, (size_t)M * K * 2));
    CK(cudaMalloc(&w, (size_t)2 * I * K * 2));
    CK(cudaMalloc(&gu, (size_t)M * 2 * I * 2));
    CK(cudaMalloc(&gu32, (size_t)M * 2 * I * 4));
    CK(cudaMalloc(&y, (size_t)M * I * 2));
    CK(cudaMalloc(&err, 8));
    k_fill<<<4096, 256>>>(x, (size_t)M * K, 1u, 2.0f);
    k_fill<<<4096, 256>>>(w, (size_t)2 * I * K, 7u, big ? 0.06f : 0.1f);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    const float one = 1.f, zero = 0.f;
    const double flop = 2.0 * M * (2.0 * I) * K;
    /* reference: float32 output of the same product */
    if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, gu32,
                     CUDA_R_32F, 2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        return 1;
    Ctx c{M, I, K, y, gu32, err, {}};
    /* cuBLAS bf16 GEMM + the separate SiLU-gate, as the backend runs them below TKR_CUDA_SWIGLU_MIN */
    auto gemm = [=, &one, &zero] {
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, gu,
                     CUDA_R_16BF, 2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    auto silu = [=] { tkrcuda::silu_mul(false, gu, M, I, y, 0); }; /* the backend's kernel */
    add_two_kernels(c, gemm, silu, "silu-gate");
    void *enc = tkrcuda::tma_encoder();
    const int nsm = n_sms();
    if (!enc || !tkrcuda::gateup_swiglu_fits(M, I, K, x, w, y)) {
        printf("bench_gemm_swiglu: no tensor-map encoder, or the shape does not fit\n");
        return 1;
    }
    const char *cfg_name[5] = {"backend cfg 0: 4 stages, turn once the products are issued",
                               "backend cfg 1: 5 stages, turn once the products are issued",
                               "backend cfg 2: 5 stages, turn after the products",
                               "backend cfg 3: 3 stages, turn once the products are issued",
                               "backend cfg 4: 4 stages, turn after the products"};
    for (int cfg = 0; cfg < 5; cfg++)
        add(c, cfg_name[cfg], [=] { tkrcuda::gateup_swiglu_launch(enc, nsm, x, w, M, I, K, y, 0, cfg); });
    CUtensorMap tx128, tw128;
    if (M % (2 * BM) == 0 && encode(&tx128, x, K, M, 128) && encode(&tw128, w, K, 2 * I, 128)) {
        /* EPI 0: the backend's SiLU; 1: its division by the MUFU reciprocal; 2: no SiLU (timing only) */
        add_coop<128, 4, 0>(c, "cooperative 128 x 128, persistent", tx128, tw128);
        add_coop<128, 4, 1>(c, "cooperative, fast silu", tx128, tw128);
        add_coop<128, 4, 2>(c, "cooperative, no silu (timing only)", tx128, tw128);
    }
    time_all(c, rounds, 3);
    report(c, flop);
    cublasDestroy(h);
    return 0;
}

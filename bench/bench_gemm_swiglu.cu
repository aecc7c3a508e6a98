/* bench_gemm_swiglu.cu - a gate|up GEMM with the SiLU-gate in its epilogue (wgmma + TMA, our own),
 * against cuBLAS's GEMM followed by the separate SiLU-gate kernel, on the 2B text MLP shape.
 *
 * Why: a 16 x 512 text pass spends 15.5 of its 36 ms in the gate|up GEMM (cuBLASLt, ~790
 * TFLOP/s) and 2.95 ms in the SiLU-gate that reads the GEMM's 8192 x 17920 bf16 output back from
 * HBM; cuBLASLt has no SwiGLU epilogue. Our own GEMM saves that pass only if it runs near
 * cuBLASLt's speed: this prototype measures it before the backend takes it.
 *   build-cuda/bench/bench_gemm_swiglu [M (8192)] [runs (20)]
 * Kernel: y [M, I] = silu(x Wg^T) * (x Wu^T), x [M, K] bf16, W [2I, K] bf16 (gate rows, then up
 * rows, as the backend fuses them), y bf16. A block of 3 warpgroups: one thread of the last
 * streams x and W tiles by TMA into ST stages (128-byte swizzle; each stage's "full" mbarrier
 * completes when its bytes land, the consumers' arrivals on its "empty" one free it); the two
 * consumer warpgroups each own 64 rows and 2 BNO accumulator columns (BNO gate columns, then the
 * same BNO up columns), both operands from shared memory by descriptor, one wgmma group in
 * flight while the next stage is waited for. The epilogue forms silu(gate) * up in float and
 * stores bf16 pairs. Checked against cuBLAS's float32 GEMM + a float SiLU-gate.
 * Measured on the H200 (2026-12-03, every variant's check ok, max error 0.0156 of 7.4): at M 8192
 * cuBLAS's GEMM (cublasGemmEx, bf16 out) 0.597 ms (756 TFLOP/s) + the SiLU-gate 0.109 = 0.706;
 * fused, persistent, BN 128: 0.674 (670 TFLOP/s; one block per tile 0.683, BN 64 0.73-0.79).
 * The backend's tuned cuBLASLt GEMM takes 0.565-0.577, so the fused kernel saves about 1% of a
 * pass as it is. At M 20480 it loses (1.89 ms against 1.71): x (63 MB) leaves L2 between
 * n-tiles in the M-fastest order. Missing against cuBLASLt's ~790: W multicast in clusters of
 * 2 (half the W bytes from L2), a grouped tile order, the epilogue overlapped with products. */
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
/* D [64, 256] (+)= A [64, 16] B [16, 256], both from shared memory by descriptor (K-major). */
__device__ inline void wgmma_ss_n256(float (&d)[128], uint64_t da, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, "
                 "%14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, "
                 "%28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "
                 "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "
                 "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, "
                 "%70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
                 "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, "
                 "%98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, "
                 "%126, %127"
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
                   "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
                   "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
                   "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),
                   "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),
                   "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),
                   "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
                   "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),
                   "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]),
                   "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]),
                   "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),
                   "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db), "r"(scale_d));
}

template <int NB> __device__ inline void wgmma_ss(float (&d)[NB / 2], uint64_t da, uint64_t db, int scale_d) {
    static_assert(NB == 256, "BNO 128 only (BNO 64, on m64n128k16, was slower: see the file comment)");
    wgmma_ss_n256(d, da, db, scale_d);
}
#endif

__device__ inline float silu_f(float g) { return g / (1.0f + __expf(-g)); }

/* See the file comment. Needs M % BM == 0, I % BNO == 0, K % BK == 0 (the host checks). PERS:
 * a persistent grid (one block per SM walking tiles t, t + gridDim.x, ... m-tile fastest), the
 * stage ring running on across tiles, so that the next tile's first loads overlap this tile's
 * epilogue; else one block per tile. */
template <int BNO, int ST, bool PERS>
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
    const int n_tiles = PERS ? MT * (I / BNO) : 1;
    const int t0 = PERS ? blockIdx.x : 0, t_step = PERS ? gridDim.x : 1;
    auto tile_m0 = [&](int t) { return PERS ? (t % MT) * BM : blockIdx.x * BM; };
    auto tile_n0 = [&](int t) { return PERS ? (t / MT) * BNO : blockIdx.y * BNO; };
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
        const size_t r0 = (size_t)m0 + wg * 64 + warp * 16 + g;
        __nv_bfloat16 *y0 = y + r0 * I + n0 + 2 * tq, *y1 = y0 + (size_t)8 * I;
#pragma unroll
        for (int nb = 0; nb < BNO / 8; nb++) {
            const float *gt = d + 4 * nb, *up = d + 4 * (nb + BNO / 8);
            *(__nv_bfloat162 *)(y0 + nb * 8) = __floats2bfloat162_rn(silu_f(gt[0]) * up[0], silu_f(gt[1]) * up[1]);
            *(__nv_bfloat162 *)(y1 + nb * 8) = __floats2bfloat162_rn(silu_f(gt[2]) * up[2], silu_f(gt[3]) * up[3]);
        }
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
    if (!fn) return false;
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)cols * 2};
    const cuuint32_t box[2] = {(cuuint32_t)BK, (cuuint32_t)box_rows}, es[2] = {1, 1};
    return ((PFN_cuTensorMapEncodeTiled_v12000)fn)(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(base),
                                                   dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename F> float time_ms(int runs, F f) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    f(); /* warm-up */
    CK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int r = 0; r < runs; r++) {
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/* Runs f once and checks y against the float reference gu, then times it. */
template <typename F>
void check_and_time(const char *name, F f, int M, int I, __nv_bfloat16 *y, const float *gu, unsigned *err, int runs,
                    double flop) {
    CK(cudaMemset(y, 0, (size_t)M * I * 2));
    f();
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemset(err, 0, 8));
    k_check<<<4096, 256>>>(y, gu, M, I, err);
    unsigned h[2];
    CK(cudaMemcpy(h, err, 8, cudaMemcpyDeviceToHost));
    float e, r;
    memcpy(&e, &h[0], 4);
    memcpy(&r, &h[1], 4);
    const float ms = time_ms(runs, f);
    const bool ok = e <= 0.02f * r;
    printf("{\"bench\": \"gemm_swiglu\", \"kernel\": \"%s\", \"M\": %d, \"ms\": %.4f, \"tflops\": %.1f, "
           "\"max_err\": %.3g, \"max_ref\": %.3g, \"check\": \"%s\"}\n",
           name, M, ms, flop / ms / 1e9, e, r, ok ? "ok" : "FAIL");
}

template <int BNO, int ST, bool PERS>
void run_fused(const char *name, const CUtensorMap &tx, const CUtensorMap &tw, int M, int I, int K, __nv_bfloat16 *y,
               const float *gu, unsigned *err, int runs, double flop) {
    const size_t smem = 1024 + (size_t)ST * (BM * BK + 2 * BNO * BK) * 2 + 2 * ST * 8;
    CK(cudaFuncSetAttribute(k_gateup_silu<BNO, ST, PERS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int n_sm = 0;
    CK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, 0));
    const int tiles = M / BM * (I / BNO);
    dim3 grid = PERS ? dim3(tiles < n_sm ? tiles : n_sm) : dim3(M / BM, I / BNO);
    auto f = [&] { k_gateup_silu<BNO, ST, PERS><<<grid, 384, smem>>>(tx, tw, M, I, K, y); };
    check_and_time(name, f, M, I, y, gu, err, runs, flop);
}

} // namespace

int main(int argc, char **argv) {
    const int M = argc > 1 ? atoi(argv[1]) : 8192, runs = argc > 2 ? atoi(argv[2]) : 20;
    const int K = 1536, I = 8960; /* Qwen2-VL 2B: hidden 1536, intermediate 8960 */
    if (M <= 0 || M % BM) {
        fprintf(stderr, "bench_gemm_swiglu: M must be a positive multiple of %d\n", BM);
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
    k_fill<<<4096, 256>>>(w, (size_t)2 * I * K, 7u, 0.1f);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    const float one = 1.f, zero = 0.f;
    const double flop = 2.0 * M * (2.0 * I) * K;
    /* reference: float32 output of the same product */
    if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, gu32,
                     CUDA_R_32F, 2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        return 1;
    /* cuBLAS bf16 GEMM + the separate SiLU-gate, as the backend runs them now */
    auto gemm = [&] {
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, M, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K, &zero, gu,
                     CUDA_R_16BF, 2 * I, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    auto silu = [&] { tkrcuda::silu_mul(false, gu, M, I, y, 0); }; /* the backend's kernel */
    const float tg = time_ms(runs, gemm), ts = time_ms(runs, silu);
    printf("{\"bench\": \"gemm_swiglu\", \"kernel\": \"cublas gemm (bf16 out)\", \"M\": %d, \"ms\": %.4f, "
           "\"tflops\": %.1f}\n",
           M, tg, flop / tg / 1e9);
    printf("{\"bench\": \"gemm_swiglu\", \"kernel\": \"silu-gate alone\", \"M\": %d, \"ms\": %.4f}\n", M, ts);
    printf("{\"bench\": \"gemm_swiglu\", \"kernel\": \"cublas gemm + silu-gate\", \"M\": %d, \"ms\": %.4f, "
           "\"tflops\": %.1f}\n",
           M, tg + ts, flop / (tg + ts) / 1e9);
    CUtensorMap tx, tw128;
    if (!encode(&tx, x, K, M, BM) || !encode(&tw128, w, K, 2 * I, 128)) {
        printf("bench_gemm_swiglu: no tensor-map encoder\n");
        return 1;
    }
    run_fused<128, 4, false>("fused BN 128 x 2, 4 stages", tx, tw128, M, I, K, y, gu32, err, runs, flop);
    run_fused<128, 4, true>("fused BN 128 x 2, 4 stages, persistent", tx, tw128, M, I, K, y, gu32, err, runs, flop);
    cublasDestroy(h);
    return 0;
}

/* cuda_gemm_swiglu.cu - GEMMs with the MLP activation in their epilogue (bf16, sm_90a):
 *   the text MLP's gate|up product with the SiLU-gate, y [M, I] = silu(x Wg^T) * (x Wu^T),
 *   x [M, K], W [2I, K] = gate rows | up rows;
 *   the vision MLP's fc1 with its bias and QuickGELU, y [M, N] = quick_gelu(x W^T + b), W [N, K].
 *
 * Why: cuBLASLt has neither epilogue, so the backend wrote the product (M x 2I or M x N bf16) to
 * HBM and read it back in a separate activation pass: for the SiLU-gate 2.95 of the 36 ms of a
 * 16 x 512 text pass on the H200. Here the products never leave the registers. The fc1 form is
 * off by default (Backend::qgelu_min_rows): on the H200 it measured 2.15 ms at 81920 rows against
 * cuBLAS + the separate kernel's 2.07 (twice the SwiGLU's outputs per thread: a longer epilogue),
 * 35.0 against 35.9 images of 1280 tokens a second in the model.
 * How (bench/bench_gemm_swiglu.cu measured the alternatives): a persistent grid, blocks of three
 * warpgroups. One thread of the last streams x and W tiles by TMA (128-byte swizzle) into ST
 * stages; each stage's "full" mbarrier completes when its bytes land, the consumer's arrivals on
 * its "empty" one free it. The two consumer warpgroups play pingpong: each owns whole tiles of
 * 64 rows x 256 W rows (a wgmma m64n256k16 a 16 of K; 128 float accumulators a thread: 128
 * SwiGLU outputs from 128 gate and the same 128 up rows, or 256 QuickGELU outputs) and they take
 * turns on the tensor cores (named barriers 1 and 2), so one's epilogue runs while the other's
 * products do. Tile t of a block goes to warpgroup t % 2; the producer loads every tile's stages
 * in order.
 * Each output is one thread's sum over K in a fixed order: the same bits whatever the batch. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_wgmma.h"

#include <limits.h>
#include <stdint.h>

namespace tkrcuda {

namespace {

constexpr int SW_BK = 64, SW_ROWS = 64, SW_NB = 256; /* k per stage, rows and W rows per tile */
/* the stage ring (bf16 elements of x rows then W rows), its barriers, the 1024-byte alignment */
constexpr size_t sw_smem(int st) { return 1024 + (size_t)st * (SW_ROWS + SW_NB) * SW_BK * 2 + 2 * st * 8; }

/* The epilogues: EPI_SWIGLU, y [M, I] = silu(gate) * up, the tile's W rows being 128 gate rows
 * n0.. and the same 128 up rows I + n0..; EPI_QGELU, y [M, N] = quick_gelu(x W^T + b), the tile's
 * W rows 256 rows n0.. (the vision tower's fc1). */
enum { EPI_SWIGLU = 0, EPI_QGELU = 1 };

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* As the backend's separate kernels (k_silu_mul_g, k_bias_quick_gelu_g): IEEE division, __expf. */
__device__ inline float swiglu(float g, float u) { return g / (1.0f + __expf(-g)) * u; }
__device__ inline float quick_gelu(float v) { return v / (1.0f + __expf(-1.702f * v)); }

/* Tile t's first row and first output column. Tiles go in groups of G m-tiles, m fastest inside
 * a group, then n: a wave of blocks shares W tiles, and a group's x rows (G x 64 x K, sized by
 * the host to half the L2) are read from HBM once for all n. */
__device__ inline void tile_at(int t, int MT, int NT, int G, int bno, int *m0, int *n0) {
    const int grp = t / (G * NT), local = t % (G * NT), gm = min(G, MT - grp * G);
    *m0 = (grp * G + local % gm) * SW_ROWS;
    *n0 = local / gm * bno;
}
#endif

/* ST stages; EARLY: the other warpgroup's turn starts once this one's last products are issued
 * (they overlap its first ones), else once they are done. N: the outputs a row (I or N above). */
template <int ST, bool EARLY, int EPI>
__global__ void __launch_bounds__(384, 1) k_gemm_act(const __grid_constant__ CUtensorMap tx,
                                                      const __grid_constant__ CUtensorMap tw, int M, int N, int K,
                                                      int G, const float *bias, __nv_bfloat16 *y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using namespace wg;
    constexpr int BK = SW_BK, NB = SW_NB, BNO = EPI == EPI_SWIGLU ? NB / 2 : NB, A_EL = SW_ROWS * BK;
    constexpr int STAGE_EL = A_EL + NB * BK;
    constexpr uint32_t STAGE_BYTES = STAGE_EL * 2; /* out-of-range x rows arrive as zeros, counted */
    extern __shared__ __align__(1024) unsigned char smraw[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)(smraw + ((1024 - (saddr(smraw) & 1023)) & 1023));
    uint64_t *full = (uint64_t *)(sm + ST * STAGE_EL), *empty = full + ST; /* [ST] each */
    const int tid = threadIdx.x, wgi = tid >> 7, KT = K / BK, MT = (M + SW_ROWS - 1) / SW_ROWS, NT = N / BNO;
    const int n_tiles = MT * NT;
    const int n_mine = (n_tiles - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x;
    if (tid == 0) {
        for (int s = 0; s < ST; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 128);
        }
        fence_proxy_async();
    }
    __syncthreads();
    if (wgi == 2) { /* the producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid != 256) return;
        int it = 0;
        for (int j = 0; j < n_mine; j++) {
            int m0, n0;
            tile_at(blockIdx.x + j * gridDim.x, MT, NT, G, BNO, &m0, &n0);
            const int w1 = EPI == EPI_SWIGLU ? N + n0 : n0 + NB / 2; /* the second 128 W rows */
            for (int kt = 0; kt < KT; kt++, it++) {
                const int s = it % ST;
                if (it >= ST) mbar_wait(&empty[s], (it / ST - 1) & 1);
                __nv_bfloat16 *As = sm + s * STAGE_EL, *Bs = As + A_EL;
                mbar_expect_tx(&full[s], STAGE_BYTES);
                tma_load_2d(As, &tx, kt * BK, m0, &full[s]);
                tma_load_2d(Bs, &tw, kt * BK, n0, &full[s]);
                tma_load_2d(Bs + NB / 2 * BK, &tw, kt * BK, w1, &full[s]);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    for (int j = wgi; j < n_mine; j += 2) {
        int m0, n0;
        tile_at(blockIdx.x + j * gridDim.x, MT, NT, G, BNO, &m0, &n0);
        /* the m64n256 accumulators (SwiGLU: gate [0, 64), up after); QuickGELU's start at the bias,
           loaded while the other warpgroup multiplies (in the epilogue, each load would wait for
           the stores before it: the compiler cannot tell bias from y) */
        float d[NB / 2];
#pragma unroll
        for (int nb = 0; nb < NB / 8; nb++) {
            float b0 = 0.f, b1 = 0.f;
            if (EPI == EPI_QGELU && bias) {
                b0 = __ldg(bias + n0 + nb * 8 + 2 * tq);
                b1 = __ldg(bias + n0 + nb * 8 + 2 * tq + 1);
            }
            d[4 * nb] = d[4 * nb + 2] = b0;
            d[4 * nb + 1] = d[4 * nb + 3] = b1;
        }
        if (j > 0) bar_sync(1 + wgi, 256); /* my turn: the other finished its products */
        int it = j * KT;
        for (int kt = 0; kt < KT; kt++, it++) {
            const int s = it % ST;
            mbar_wait(&full[s], (it / ST) & 1);
            const __nv_bfloat16 *As = sm + s * STAGE_EL, *Bs = As + A_EL;
#pragma unroll
            for (int i = 0; i < NB / 2; i++) reg_fence(d[i]);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++)
                wgmma_ss_n256(d, smem_desc_sw(As + kk * 16, 16, 1024, 1), smem_desc_sw(Bs + kk * 16, 16, 1024, 1), 1);
            wg_commit();
            wg_wait<1>();
            if (kt > 0) mbar_arrive(&empty[(it - 1) % ST]);
        }
        if (EARLY && j + 1 < n_mine) bar_arrive(2 - wgi, 256); /* the other's turn (it has tile j + 1) */
        wg_wait<0>();
        mbar_arrive(&empty[(it - 1) % ST]);
        if (!EARLY && j + 1 < n_mine) bar_arrive(2 - wgi, 256);
#pragma unroll
        for (int i = 0; i < NB / 2; i++) reg_fence(d[i]);
        /* rows r and r + 8, 2 columns per 8 (the m64nNk16 accumulator layout) */
        const int r = m0 + warp * 16 + g;
        __nv_bfloat16 *y0 = y + (size_t)r * N + n0 + 2 * tq, *y1 = y0 + (size_t)8 * N;
#pragma unroll
        for (int nb = 0; nb < BNO / 8; nb++) {
            float v[4];
            if constexpr (EPI == EPI_SWIGLU) {
                const float *gt = d + 4 * nb, *up = d + 4 * (nb + BNO / 8);
#pragma unroll
                for (int e = 0; e < 4; e++) v[e] = swiglu(gt[e], up[e]);
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) v[e] = quick_gelu(d[4 * nb + e]);
            }
            if (r < M) *(__nv_bfloat162 *)(y0 + nb * 8) = __floats2bfloat162_rn(v[0], v[1]);
            if (r + 8 < M) *(__nv_bfloat162 *)(y1 + nb * 8) = __floats2bfloat162_rn(v[2], v[3]);
        }
    }
#endif
}

template <int ST, bool EARLY, int EPI>
bool launch(const CUtensorMap &tx, const CUtensorMap &tw, int n_sm, int M, int N, int K, const float *bias, void *y,
            cudaStream_t s) {
    if (cudaFuncSetAttribute(k_gemm_act<ST, EARLY, EPI>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)sw_smem(ST)) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    /* m-tiles a group: their x rows in half the L2 (all of them where x fits) */
    int dev = 0, l2 = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess)
        l2 = 0;
    const int MT = (M + SW_ROWS - 1) / SW_ROWS;
    const long per_tile = (long)SW_ROWS * K * 2, fit = l2 > 0 ? (long)l2 / 2 / per_tile : MT;
    const int G = fit >= MT ? MT : fit < 1 ? 1 : (int)fit;
    const long tiles = (long)MT * (N / (EPI == EPI_SWIGLU ? SW_NB / 2 : SW_NB));
    const int grid = tiles < n_sm ? (int)tiles : n_sm;
    k_gemm_act<ST, EARLY, EPI><<<grid, 384, sw_smem(ST), s>>>(tx, tw, M, N, K, G, bias, (__nv_bfloat16 *)y);
    return true;
}

/* x [M, K] and w [wrows, K] as TMA maps: boxes of 64 x rows and 128 W rows, 64 k wide */
bool make_maps(void *encode, const void *x, const void *w, int M, int wrows, int K, CUtensorMap *tx, CUtensorMap *tw) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = (PFN_cuTensorMapEncodeTiled_v12000)encode;
    return wg::encode_map(enc, tx, x, K, M, K, SW_BK, SW_ROWS, CU_TENSOR_MAP_SWIZZLE_128B) &&
           wg::encode_map(enc, tw, w, K, wrows, K, SW_BK, SW_NB / 2, CU_TENSOR_MAP_SWIZZLE_128B);
}

bool fits(int M, int N, int K, int n_mult, const void *x, const void *w, const void *y) {
    return M > 0 && N > 0 && K > 0 && N % n_mult == 0 && K % SW_BK == 0 && (size_t)2 * N * K < ((size_t)1 << 40) &&
           (long long)((M + SW_ROWS - 1) / SW_ROWS) * (N / n_mult) < INT_MAX && !((uintptr_t)x & 15) &&
           !((uintptr_t)w & 15) && !((uintptr_t)y & 3);
}

} // namespace

bool gateup_swiglu_fits(int M, int I, int K, const void *x, const void *w, const void *y) {
    return fits(M, I, K, SW_NB / 2, x, w, y);
}

bool gateup_swiglu_launch(void *encode, int n_sm, const void *x, const void *w, int M, int I, int K, void *y,
                          cudaStream_t s, int cfg) {
    CUtensorMap tx, tw;
    if (!encode || n_sm <= 0 || !gateup_swiglu_fits(M, I, K, x, w, y) ||
        !make_maps(encode, x, w, M, 2 * I, K, &tx, &tw))
        return false;
    switch (cfg) { /* in the model, 16 x 512 text (H200): cfg 0 +3.0% against the two kernels, 1 +1.2%, 2 +0.4% */
    case 1: return launch<5, true, EPI_SWIGLU>(tx, tw, n_sm, M, I, K, nullptr, y, s);
    case 2: return launch<5, false, EPI_SWIGLU>(tx, tw, n_sm, M, I, K, nullptr, y, s);
    case 3: return launch<3, true, EPI_SWIGLU>(tx, tw, n_sm, M, I, K, nullptr, y, s); /* -8.5% against cfg 0 */
    case 4: return launch<4, false, EPI_SWIGLU>(tx, tw, n_sm, M, I, K, nullptr, y, s); /* within 0.3% of cfg 0 */
    default: return launch<4, true, EPI_SWIGLU>(tx, tw, n_sm, M, I, K, nullptr, y, s);
    }
}

bool linear_qgelu_fits(int M, int N, int K, const void *x, const void *w, const void *y) {
    return fits(M, N, K, SW_NB, x, w, y);
}

bool linear_qgelu_launch(void *encode, int n_sm, const void *x, const void *w, const float *bias, int M, int N, int K,
                         void *y, cudaStream_t s) {
    CUtensorMap tx, tw;
    if (!encode || n_sm <= 0 || !linear_qgelu_fits(M, N, K, x, w, y) || !make_maps(encode, x, w, M, N, K, &tx, &tw))
        return false;
    return launch<4, true, EPI_QGELU>(tx, tw, n_sm, M, N, K, bias, y, s);
}

tkr_status gate_up_silu(Backend *be, const void *x, int M, const Linear &L, void *gu, void *y, tkr_error *err) {
    const int I = L.N / 2;
    if (!be->fp32 && be->tma_encode && !L.b && M >= be->swiglu_min_rows && L.N % 2 == 0) {
        const void *W = nullptr;
        tkr_status st = weight_of(be, L, &W, err);
        if (st != TKR_OK) return st;
        if (gateup_swiglu_launch(be->tma_encode, be->n_sm, x, W, M, I, L.K, y, be->stream, be->swiglu_cfg))
            return TKR_OK;
    }
    tkr_status st = linear(be, x, M, L, gu, err, 0, true);
    if (st != TKR_OK) return st;
    silu_mul(be->fp32, gu, M, I, y, be->stream);
    return TKR_OK;
}

tkr_status linear_quick_gelu(Backend *be, const void *x, int M, const Linear &L, void *y, bool *done,
                             tkr_error *err) {
    *done = false;
    if (be->fp32 || !be->tma_encode || M < be->qgelu_min_rows || !linear_qgelu_fits(M, L.N, L.K, x, nullptr, y))
        return TKR_OK;
    const void *W = nullptr;
    tkr_status st = weight_of(be, L, &W, err);
    if (st != TKR_OK) return st;
    *done = linear_qgelu_launch(be->tma_encode, be->n_sm, x, W, L.b, M, L.N, L.K, y, be->stream);
    return TKR_OK;
}

} // namespace tkrcuda

/* cuda_gemm_swiglu.cu - the text MLP's gate|up product with the SiLU-gate in its epilogue (bf16,
 * sm_90a): y [M, I] = silu(x Wg^T) * (x Wu^T), x [M, K], W [2I, K] = gate rows | up rows.
 *
 * Why: cuBLASLt has no SwiGLU epilogue, so the backend wrote the gate|up product (M x 2I bf16)
 * to HBM and read it back in a separate SiLU-gate pass: 2.95 of the 36 ms of a 16 x 512 text
 * pass on the H200. Here the products never leave the registers.
 * How (bench/bench_gemm_swiglu.cu measured the alternatives): a persistent grid, blocks of three
 * warpgroups. One thread of the last streams x and W tiles by TMA (128-byte swizzle) into ST
 * stages; each stage's "full" mbarrier completes when its bytes land, the consumer's arrivals on
 * its "empty" one free it. The two consumer warpgroups play pingpong: each owns whole tiles of
 * 64 rows x 128 outputs (a wgmma m64n256k16 over 128 gate columns, then the same 128 up
 * columns; 128 float accumulators a thread) and they take turns on the tensor cores (named
 * barriers 1 and 2), so one's SiLU epilogue runs while the other's products do. Tile t of a
 * block goes to warpgroup t % 2; the producer loads every tile's stages in order.
 * Each output is one thread's sum over K in a fixed order: the same bits whatever the batch. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_wgmma.h"

#include <stdint.h>

namespace tkrcuda {

namespace {

constexpr int SW_BK = 64, SW_ROWS = 64, SW_OUT = 128;
/* the stage ring (bf16 elements of x rows then W rows), its barriers, the 1024-byte alignment */
constexpr size_t sw_smem(int st) { return 1024 + (size_t)st * (SW_ROWS + 2 * SW_OUT) * SW_BK * 2 + 2 * st * 8; }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* As the backend's separate SiLU-gate kernel (k_silu_mul_g): IEEE division, __expf. */
__device__ inline float swiglu(float g, float u) { return g / (1.0f + __expf(-g)) * u; }
#endif

/* ST stages; EARLY: the other warpgroup's turn starts once this one's last products are issued
 * (they overlap its first ones), else once they are done. */
template <int ST, bool EARLY>
__global__ void __launch_bounds__(384, 1) k_gateup_swiglu(const __grid_constant__ CUtensorMap tx,
                                                           const __grid_constant__ CUtensorMap tw, int M, int I,
                                                           int K, __nv_bfloat16 *y) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using namespace wg;
    constexpr int BK = SW_BK, BNO = SW_OUT, NB = 2 * BNO, A_EL = SW_ROWS * BK, STAGE_EL = A_EL + NB * BK;
    constexpr uint32_t STAGE_BYTES = STAGE_EL * 2; /* out-of-range x rows arrive as zeros, counted */
    extern __shared__ __align__(1024) unsigned char smraw[];
    __nv_bfloat16 *sm = (__nv_bfloat16 *)(smraw + ((1024 - (saddr(smraw) & 1023)) & 1023));
    uint64_t *full = (uint64_t *)(sm + ST * STAGE_EL), *empty = full + ST; /* [ST] each */
    const int tid = threadIdx.x, wgi = tid >> 7, KT = K / BK, MT = (M + SW_ROWS - 1) / SW_ROWS;
    const int n_tiles = MT * (I / BNO);
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
            const int t = blockIdx.x + j * gridDim.x, m0 = t % MT * SW_ROWS, n0 = t / MT * BNO;
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
    for (int j = wgi; j < n_mine; j += 2) {
        const int t = blockIdx.x + j * gridDim.x, m0 = t % MT * SW_ROWS, n0 = t / MT * BNO;
        if (j > 0) bar_sync(1 + wgi, 256); /* my turn: the other finished its products */
        float d[NB / 2];                    /* gate columns' accumulators [0, 64), up's [64, 128) */
#pragma unroll
        for (int i = 0; i < NB / 2; i++) d[i] = 0.f;
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
        __nv_bfloat16 *y0 = y + (size_t)r * I + n0 + 2 * tq, *y1 = y0 + (size_t)8 * I;
#pragma unroll
        for (int nb = 0; nb < BNO / 8; nb++) {
            const float *gt = d + 4 * nb, *up = d + 4 * (nb + BNO / 8);
            if (r < M)
                *(__nv_bfloat162 *)(y0 + nb * 8) = __floats2bfloat162_rn(swiglu(gt[0], up[0]), swiglu(gt[1], up[1]));
            if (r + 8 < M)
                *(__nv_bfloat162 *)(y1 + nb * 8) = __floats2bfloat162_rn(swiglu(gt[2], up[2]), swiglu(gt[3], up[3]));
        }
    }
#endif
}

template <int ST, bool EARLY>
bool launch(const CUtensorMap &tx, const CUtensorMap &tw, int n_sm, int M, int I, int K, void *y, cudaStream_t s) {
    if (cudaFuncSetAttribute(k_gateup_swiglu<ST, EARLY>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)sw_smem(ST)) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    const long tiles = (long)((M + SW_ROWS - 1) / SW_ROWS) * (I / SW_OUT);
    const int grid = tiles < n_sm ? (int)tiles : n_sm;
    k_gateup_swiglu<ST, EARLY><<<grid, 384, sw_smem(ST), s>>>(tx, tw, M, I, K, (__nv_bfloat16 *)y);
    return true;
}

} // namespace

bool gateup_swiglu_fits(int M, int I, int K, const void *x, const void *w, const void *y) {
    return M > 0 && I > 0 && K > 0 && I % SW_OUT == 0 && K % SW_BK == 0 && (size_t)2 * I * K < ((size_t)1 << 40) &&
           !((uintptr_t)x & 15) && !((uintptr_t)w & 15) && !((uintptr_t)y & 3);
}

bool gateup_swiglu_launch(void *encode, int n_sm, const void *x, const void *w, int M, int I, int K, void *y,
                          cudaStream_t s, int cfg) {
    if (!encode || n_sm <= 0 || !gateup_swiglu_fits(M, I, K, x, w, y)) return false;
    PFN_cuTensorMapEncodeTiled_v12000 enc = (PFN_cuTensorMapEncodeTiled_v12000)encode;
    CUtensorMap tx, tw;
    if (!wg::encode_map(enc, &tx, x, K, M, K, SW_BK, SW_ROWS, CU_TENSOR_MAP_SWIZZLE_128B) ||
        !wg::encode_map(enc, &tw, w, K, 2 * I, K, SW_BK, SW_OUT, CU_TENSOR_MAP_SWIZZLE_128B))
        return false;
    switch (cfg) { /* in the model, 16 x 512 text (H200): cfg 0 +3.0% against the two kernels, 1 +1.2%, 2 +0.4% */
    case 1: return launch<5, true>(tx, tw, n_sm, M, I, K, y, s);
    case 2: return launch<5, false>(tx, tw, n_sm, M, I, K, y, s);
    case 3: return launch<3, true>(tx, tw, n_sm, M, I, K, y, s); /* -8.5% against cfg 0 */
    case 4: return launch<4, false>(tx, tw, n_sm, M, I, K, y, s); /* within 0.3% of cfg 0 */
    default: return launch<4, true>(tx, tw, n_sm, M, I, K, y, s);
    }
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

} // namespace tkrcuda

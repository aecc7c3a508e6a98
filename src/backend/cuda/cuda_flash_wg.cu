/* cuda_flash_wg.cu - flash attention on Hopper's warpgroup MMA (wgmma, sm_90a), bf16 mode: the
 * fourth version (TKR_CUDA_FLASH=4).
 *
 * Versions 1-3 (cuda_flash.cu) multiply 16 x 8 x 16 tiles per warp with mma.sync; wgmma.mma_async,
 * issued by a warpgroup of 4 warps, multiplies 64 x N x 16 asynchronously with B read straight
 * from shared memory (Hopper's full-rate path). One block of NWG warpgroups per (64 NWG query
 * rows, head, sequence); each warpgroup owns 64 rows (each warp 16, as in mma.sync's A layout).
 * Per tile of BK keys:
 *   S [64, BK] = Q K^T: wgmma m64nBKk16, A = the warp's Q fragments (registers), B = the K tile;
 *   the online softmax on S in registers (the accumulator layout is mma.sync's C layout repeated
 *   over N / 8: d[4 j + e] is row g (+8 for e >= 2), column 8 j + 2 t + (e & 1));
 *   O [64, HD] += P V: wgmma m64nHDk16, A = P packed to bf16 from S, B = the V tile transposed.
 * K and V tiles stream into shared memory (TMA in k_flash_pp and the plain schedule, cp.async in
 * the others and where TMA cannot take the buffers), by default as rows of 128 bytes with the
 * 128-byte swizzle (load_tile_sw in cuda_wgmma.h: what the tensor cores read at full rate),
 * or (wg_cfg 2) as 8 x 8 "core matrices" of 128 contiguous bytes (the no-swizzle layout): element
 * (key j, dim d) at ((j / 8) * HD / 8 + d / 8) * 64 + (j % 8) * 8 + d % 8. Either layout serves K
 * as B of Q K^T (K-major: d is the reduction) and V as B of P V (MN-major: d is N). Schedules:
 * plain (S, wait, softmax, P V, wait; two stages), pipelined (S of the next tile in flight during
 * the softmax; three stages; core-matrix tiles), and k_flash_pp (cuda_flash_pp.cu).
 *
 * k_flash_pp adds FlashAttention-3's structure: a producer warpgroup, mbarrier-signalled stages,
 * register reallocation and two consumer warpgroups taking turns (its own comment).
 *
 * Measured on the H200 (tests/gpu/test_flash --bench, swizzled tiles): long causal text at head
 * size 128 283 TFLOP/s (plain) against version 3's 202, 16 x 512 176 against 154; the vision
 * tower's head size 80 at 5120 patches 489 (k_flash_pp, TMA) against 303-317, at 1024 patches 392
 * against 277; so version 3 hands sequences of 512 rows or more of those two kinds here
 * (AttnArgs::wg_min_len). cuDNN's kernel under torch reaches about 410 at 5120 patches.
 *
 * Built for sm_90a only (__CUDA_ARCH_FEAT_SM90_ALL); wgmma_available() tells at run time
 * whether this build's code for the GPU has it (the compute_90 PTX, JIT-compiled for newer
 * GPUs, does not). Head sizes 80 (vision) and 128 (text). */
#include "backend/cuda/cuda_wgmma.h"

namespace tkrcuda {

namespace {

using namespace flash;
using namespace wg;

/* The plain schedule: per tile, S, wait, softmax, P V, wait; K/V two stages deep, loaded by
 * every thread's cp.asyncs (LD 0: core-matrix tiles, 1: swizzled) or by thread 0's TMA copies
 * (LD 2: swizzled; the stage's mbarrier completes when they land). */
template <int HD, int BK, int NWG, int LD>
__global__ void __launch_bounds__(NWG * 128, 1) k_flash_wg(AttnArgs a, const __grid_constant__ TmaMaps tm) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 64 * NWG, NT = NWG * 128, TILE = BK * HD;
    constexpr bool SW = LD >= 1, TMA = LD == 2;
    extern __shared__ __align__(128) unsigned char smraw[];
    /* 2 stages x (K, V) (load_tile's or load_tile_sw's layout) from the first 1024-byte boundary
       (swizzled tiles need it; the launch asks for 1024 bytes more), then Q [BQ][QS], then the
       stages' mbarriers (TMA) */
    __nv_bfloat16 *KV = (__nv_bfloat16 *)(smraw + (SW ? (1024 - (saddr(smraw) & 1023)) & 1023 : 0));
    __nv_bfloat16 *Qs = KV + 4 * TILE;
    uint64_t *bar = (uint64_t *)(Qs + BQ * (HD + PAD));
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    FlashSeq<HD, NT> fs;
    if (!fs.setup(a, BQ, BK)) return;
    const int col = fs.h / (a.n_heads / a.n_kv) * HD;
    auto load = [&](int stage, int k0) {
        __nv_bfloat16 *dst = KV + stage * 2 * TILE;
        if constexpr (TMA) {
            if (tid == 0) tma_stage<HD, BK>(tm, dst, col, fs.start + k0, &bar[stage]);
        } else {
            load_kv<SW, HD, BK, NT>(fs, a, dst, k0, tid);
        }
    };
    if constexpr (TMA) {
        if (tid == 0) {
            mbar_init(&bar[0], 1);
            mbar_init(&bar[1], 1);
            fence_proxy_async();
        }
        __syncthreads();
    }
    fs.load_q(a, Qs, BQ, tid);
    load(0, 0);
    cp_commit();
    WgRows<HD, BK, SW> w;
    w.init(fs.q0, warp, g);
    for (int it = 0; it < fs.ntiles; it++) {
        const int k0 = it * BK;
        if constexpr (TMA) {
            /* stage (it + 1) & 1 was last read in tile it - 1, before its closing barrier */
            if (it + 1 < fs.ntiles) load((it + 1) & 1, k0 + BK);
            if (it == 0) cp_wait<0>(); /* Q */
            mbar_wait(&bar[it & 1], (it >> 1) & 1);
        } else if (it + 1 < fs.ntiles) {
            load((it + 1) & 1, k0 + BK);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        fence_proxy_async();
        __syncthreads();
        if (it == 0) w.load_q(Qs, fs.q0, t);
        const __nv_bfloat16 *Ks = KV + (it & 1) * 2 * TILE;
        if (w.active(a, fs.L, k0)) {
            float s[BK / 2];
            w.issue_s(s, Ks);
            wg_wait<0>();
            w.softmax_issue_pv(a, fs.L, k0, fs.sl2, t, s, Ks + TILE);
            wg_wait<0>();
            w.fence_o();
        }
        __syncthreads(); /* this stage is loaded again two tiles on */
    }
    w.store(a, fs, t);
#endif
}

/* The pipelined schedule: S of tile j + 1 runs on the tensor cores while the softmax of tile j
 * runs on the other units; K/V three stages deep. Per tile j (stage j % 3):
 *   wait for tile j + 1's loads, barrier (every warpgroup is done with tile j - 1);
 *   load tile j + 2 into tile j - 1's stage; issue S(j + 1);
 *   softmax of S(j) (finished); issue O += P(j) V(j); wait for both. */
template <int HD, int BK, int NWG>
__global__ void __launch_bounds__(NWG * 128, 1) k_flash_wgp(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 64 * NWG, NT = NWG * 128, QS = HD + PAD, TILE = BK * HD;
    extern __shared__ __align__(128) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [BQ][QS]                                   */
    __nv_bfloat16 *KV = Qs + BQ * QS;           /* 3 stages x (K, V), each [BK / 8][CH][8][8] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    FlashSeq<HD, NT> fs;
    if (!fs.setup(a, BQ, BK)) return;
    const int n = fs.ntiles;
    auto stage = [&](int j) { return KV + (j % 3) * 2 * TILE; };
    fs.load_q(a, Qs, BQ, tid);
    load_tile<HD, BK, NT>(fs, a, stage(0), 0, tid);
    cp_commit();
    if (n > 1) load_tile<HD, BK, NT>(fs, a, stage(1), BK, tid);
    cp_commit(); /* (an empty group when n == 1) */
    cp_wait<1>();
    fence_proxy_async();
    __syncthreads();
    WgRows<HD, BK> w;
    w.init(fs.q0, warp, g);
    w.load_q(Qs, fs.q0, t);
    /* s: S(j), finished; sn: S(j + 1), in flight during the softmax of tile j. Every warpgroup
     * computes every tile of the block (no per-warpgroup skipping as in k_flash_wg: wgmma under
     * a branch the compiler cannot prove uniform gets serialized); rows before a causal tile see
     * only masked keys. sn is copied to s once both products are done, so that no register of
     * an unfinished wgmma is touched across the loop's back edge (that serializes them too). */
    float s[BK / 2], sn[BK / 2];
    w.issue_s(sn, stage(0));
    wg_wait<0>();
#pragma unroll
    for (int i = 0; i < BK / 2; i++) {
        reg_fence(sn[i]);
        s[i] = sn[i];
    }
    for (int j = 0; j < n; j++) {
        if (j + 1 < n) {
            cp_wait<0>(); /* tile j + 1 */
            fence_proxy_async();
        }
        __syncthreads();
        if (j + 2 < n) {
            load_tile<HD, BK, NT>(fs, a, stage(j + 2), (j + 2) * BK, tid);
            cp_commit();
        }
        if (j + 1 < n) w.issue_s(sn, stage(j + 1));
        w.softmax_issue_pv(a, fs.L, j * BK, fs.sl2, t, s, stage(j) + TILE);
        wg_wait<0>();
        w.fence_o();
#pragma unroll
        for (int i = 0; i < BK / 2; i++) {
            reg_fence(sn[i]);
            s[i] = sn[i];
        }
    }
    w.store(a, fs, t);
#endif
}

/* The pipelined schedule (core-matrix tiles). */
template <int HD, int BK, int NWG>
tkr_status launch_wgp(const AttnArgs &a, cudaStream_t s) {
    constexpr int BQ = 64 * NWG;
    const size_t smem = sizeof(__nv_bfloat16) * ((size_t)BQ * (HD + PAD) + 2 * 3 * (size_t)BK * HD);
    if (cudaFuncSetAttribute(k_flash_wgp<HD, BK, NWG>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + BQ - 1) / BQ, a.n_heads, a.n_seq);
    k_flash_wgp<HD, BK, NWG><<<grid, NWG * 128, smem, s>>>(a);
    return TKR_OK;
}

/* The plain schedule with loader LD (k_flash_wg); LD 2 falls back to 1 where TMA cannot take the
 * buffers. */
template <int HD, int BK, int NWG, int LD>
tkr_status launch_wg(const AttnArgs &a, cudaStream_t s) {
    constexpr int BQ = 64 * NWG;
    TmaMaps tm;
    memset(&tm, 0, sizeof tm);
    if constexpr (LD == 2)
        if (!make_maps(a, BK, &tm)) return launch_wg<HD, BK, NWG, 1>(a, s);
    const size_t smem = (LD ? 1024 : 0) + 16 +
                        sizeof(__nv_bfloat16) * ((size_t)BQ * (HD + PAD) + 2 * 2 * (size_t)BK * HD);
    if (cudaFuncSetAttribute(k_flash_wg<HD, BK, NWG, LD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + BQ - 1) / BQ, a.n_heads, a.n_seq);
    k_flash_wg<HD, BK, NWG, LD><<<grid, NWG * 128, smem, s>>>(a, tm);
    return TKR_OK;
}

/* The kernel per head size: wg_cfg 0 the fastest measured on the H200 (tests/gpu/test_flash
 * --bench), 1 the runner-up, 2 the fastest with core-matrix tiles (the default before the
 * swizzled ones), 3 swizzled tiles loaded by cp.async instead of TMA. Head size 80 (vision, 16 x
 * 5120 patches): k_flash_pp with swizzled 128-key tiles in 3 stages, loaded by TMA 489-512
 * TFLOP/s, by cp.async 419-433 (core-matrix tiles 345-350); the pipelined schedule with 64-key
 * tiles and 3 warpgroups 280-295 (version 3: 303-317). 128 (causal text): plain, 64-key swizzled
 * tiles, 3 warpgroups, loaded by TMA: 16 x 512 179 (cp.async 173; core-matrix tiles 134; version
 * 3 154), 16 x 1290 288 (cp.async 282, core-matrix tiles 208, version 3 202); pipelined with 2
 * warpgroups 127-167. (Plain with 128-key tiles and 2 warpgroups gave wrong results at head size
 * 128 in the test, cause not found: not offered.) */
template <int HD>
tkr_status launch_hd(const AttnArgs &a, cudaStream_t s) {
    const bool other = a.wg_cfg == 1, core = a.wg_cfg == 2, cpa = a.wg_cfg == 3;
    if constexpr (HD == 80) return other ? launch_wgp<80, 64, 3>(a, s) : flash_pp_hd80(a, s, core ? 0 : cpa ? 1 : 2);
    else if (other) return launch_wgp<HD, 64, 2>(a, s);
    else if (core) return launch_wg<HD, 64, 3, 0>(a, s);
    else return cpa ? launch_wg<HD, 64, 3, 1>(a, s) : launch_wg<HD, 64, 3, 2>(a, s);
}

__global__ void k_wgmma_probe(int *has) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *has = 1;
#else
    *has = 0;
#endif
}

} // namespace

bool wgmma_available(cudaStream_t s) {
    int *d = nullptr, h = 0;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    k_wgmma_probe<<<1, 1, 0, s>>>(d);
    bool ok = cudaMemcpyAsync(&h, d, sizeof(int), cudaMemcpyDeviceToHost, s) == cudaSuccess &&
              cudaStreamSynchronize(s) == cudaSuccess;
    cudaFree(d);
    cudaGetLastError();
    return ok && h == 1;
}

tkr_status flash_attention_wg(const AttnArgs &a, cudaStream_t s) {
    if (a.hd == 80) return launch_hd<80>(a, s);
    if (a.hd == 128) return launch_hd<128>(a, s);
    return TKR_ERR_UNSUPPORTED;
}

} // namespace tkrcuda

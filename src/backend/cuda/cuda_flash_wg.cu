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
 * K and V tiles stream into shared memory with cp.async, stored as 8 x 8 "core matrices" of 128
 * contiguous bytes (the no-swizzle layout a wgmma descriptor reads): element (key j, dim d) at
 * ((j / 8) * HD / 8 + d / 8) * 64 + (j % 8) * 8 + d % 8. The same layout serves K as B of Q K^T
 * (K-major: d is the reduction) and V as B of P V (MN-major: d is N). Two schedules: plain (S,
 * wait, softmax, P V, wait; two stages) and pipelined (S of the next tile in flight during the
 * softmax; three stages).
 *
 * Measured on the H200 (tests/gpu/test_flash --bench): long causal text at head size 128 199
 * TFLOP/s against version 3's 170, so version 3 hands those batches here (AttnArgs::wg_min_len);
 * the vision tower's head size 80 292 against 317, where version 3 stays. All warpgroups of a
 * block meet at a barrier per tile, so their softmax phases coincide instead of overlapping
 * each other's products: beating cuDNN's ~410 needs FlashAttention-3's design (a producer warp
 * loading with TMA, warpgroups ping-ponging on named barriers).
 *
 * Built for sm_90a only (__CUDA_ARCH_FEAT_SM90_ALL); wgmma_available() tells at run time
 * whether this build's code for the GPU has it (the compute_90 PTX, JIT-compiled for newer
 * GPUs, does not). Head sizes 80 (vision) and 128 (text). */
#include "backend/cuda/cuda_flash_util.h"

namespace tkrcuda {

namespace {

using namespace flash;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) /* the device code of the sm_90a pass only */

/* ---- wgmma wrappers: D [64, N] (+)= A [64, 16] B [16, N], A from registers, B by descriptor;
 * TB = 1: B is MN-major (transposed); scale_d = 0: D = A B (the old D ignored). ---- */

template <int TB>
__device__ inline void wgmma_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d), "n"(TB));
}

template <int TB>
__device__ inline void wgmma_n80(float (&d)[40], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %45, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n80k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39"
                 "}, {%40, %41, %42, %43}, %44, p, 1, 1, %46;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d), "n"(TB));
}

template <int TB>
__device__ inline void wgmma_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d), "n"(TB));
}

template <int N, int TB>
__device__ inline void wgmma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    if constexpr (N == 64) wgmma_n64<TB>(d, a, desc, scale_d);
    else if constexpr (N == 80) wgmma_n80<TB>(d, a, desc, scale_d);
    else wgmma_n128<TB>(d, a, desc, scale_d);
}

__device__ inline void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ inline void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ inline void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/* Keeps the compiler from moving accesses of r across the asynchronous MMA's issue or wait. */
__device__ inline void reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }
/* Makes this thread's shared-memory writes (cp.async) visible to the async proxy wgmma reads through. */
__device__ inline void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* A shared-memory matrix descriptor, no swizzle: start address, then the byte distances between
 * core matrices adjacent along K (lbo) and along M or N (sbo), each in 16-byte units. */
__device__ inline uint64_t smem_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32;
}

/* Keys and values [k0, k0 + BK) into Ks (K, then V at Ks + BK HD; core-matrix layout, zeros
 * past L), asynchronously. Lanes 8i..8i+7 fill one core matrix (8 keys of one 16-byte column):
 * conflict-free stores, and the two halves of each 32-byte global sector in one request. */
template <int HD, int BK, int NT>
__device__ void load_tile(const FlashSeq<HD, NT> &fs, const AttnArgs &a, __nv_bfloat16 *Ks, int k0, int tid) {
    constexpr int CH = HD / 8;
    __nv_bfloat16 *Vs = Ks + BK * HD;
    for (int i = tid; i < BK * CH; i += NT) {
        const int kl = i & 7, c = (i >> 3) % CH, kg = (i >> 3) / CH, j = kg * 8 + kl;
        const bool ok = k0 + j < fs.L;
        const size_t off = ok ? (size_t)(k0 + j) * a.kv_stride + c * 8 : 0;
        const int so = (kg * CH + c) * 64 + kl * 8;
        cp16(Ks + so, fs.kb + off, ok);
        cp16(Vs + so, fs.vb + off, ok);
    }
}

/* One warpgroup's rows: their Q fragments, output accumulators and softmax state; the two
 * products of a tile as asynchronous wgmma groups, and the softmax between them. */
template <int HD, int BK> struct WgRows {
    static constexpr int CH = HD / 8, KD = HD / 16, NB = BK / 8;
    static constexpr uint32_t K_LBO = 128, K_SBO = CH * 128; /* K: next 8 dims, next 8 keys */
    static constexpr uint32_t V_LBO = CH * 128, V_SBO = 128; /* V: next 8 keys, next 8 dims */
    uint32_t qf[KD][4];
    float o[HD / 2];
    float m0, m1, l0, l1; /* rows g and g + 8: raw (unscaled) maxima, sums */
    int wq0, qp0, qp1;    /* the warpgroup's first query position; the thread's two rows */

    __device__ void init(int q0, int warp, int g) {
        wq0 = q0 + 64 * (warp >> 2);
        qp0 = wq0 + 16 * (warp & 3) + g;
        qp1 = qp0 + 8;
#pragma unroll
        for (int i = 0; i < HD / 2; i++) o[i] = 0.f;
        m0 = m1 = -INFINITY;
        l0 = l1 = 0.f;
    }
    /* warpgroup-uniform: whether the tile at k0 has work (rows not all past the end, nor,
     * causal, all before the tile) */
    __device__ bool active(const AttnArgs &a, int L, int k0) const {
        return wq0 < L && !(a.causal && k0 > wq0 + 63);
    }
    /* S = Q K^T for the K tile at Ks: one committed wgmma group */
    __device__ void issue_s(float (&s)[BK / 2], const __nv_bfloat16 *Ks) {
#pragma unroll
        for (int i = 0; i < BK / 2; i++) reg_fence(s[i]); /* no zeroing: the first step has scale_d = 0 */
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < KD; kk++) wgmma<BK, 0>(s, qf[kk], smem_desc(Ks + kk * 128, K_LBO, K_SBO), kk);
        wg_commit();
    }
    /* The online softmax of the finished S of the tile at k0, O rescaled, then O += P V for the
     * V tile at Vs: one committed wgmma group. */
    __device__ void softmax_issue_pv(const AttnArgs &a, int L, int k0, float sl2, int t, float (&s)[BK / 2],
                                     const __nv_bfloat16 *Vs) {
#pragma unroll
        for (int i = 0; i < BK / 2; i++) reg_fence(s[i]);
        /* keys past the end or (causal) after the row: only near the end / the diagonal */
        if (k0 + BK > L || (a.causal && k0 + BK - 1 > wq0)) {
#pragma unroll
            for (int i = 0; i < BK / 2; i++) {
                const int key = k0 + (i >> 2) * 8 + 2 * t + (i & 1), qp = (i & 2) ? qp1 : qp0;
                if (!(key < L && (!a.causal || key <= qp))) s[i] = -INFINITY;
            }
        }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            mx0 = fmaxf(mx0, fmaxf(s[4 * nb], s[4 * nb + 1]));
            mx1 = fmaxf(mx1, fmaxf(s[4 * nb + 2], s[4 * nb + 3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float b0 = mx0 == -INFINITY ? 0.f : mx0 * sl2, b1 = mx1 == -INFINITY ? 0.f : mx1 * sl2;
        const float c0 = ex2(fmaf(m0, sl2, -b0)), c1 = ex2(fmaf(m1, sl2, -b1));
        m0 = mx0;
        m1 = mx1;
        float ps0 = 0.f, ps1 = 0.f;
        uint32_t pa[BK / 16][4];
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            const float p0 = ex2(fmaf(s[4 * nb], sl2, -b0)), p1 = ex2(fmaf(s[4 * nb + 1], sl2, -b0));
            const float p2 = ex2(fmaf(s[4 * nb + 2], sl2, -b1)), p3 = ex2(fmaf(s[4 * nb + 3], sl2, -b1));
            ps0 += p0 + p1;
            ps1 += p2 + p3;
            /* P as A fragments: keys 16 kk + [0, 8) in registers 0 (row g), 1 (g + 8); + [8, 16) in 2, 3 */
            pa[nb >> 1][(nb & 1) * 2] = pack_bf16(p0, p1);
            pa[nb >> 1][(nb & 1) * 2 + 1] = pack_bf16(p2, p3);
        }
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
#pragma unroll
        for (int nd = 0; nd < HD / 8; nd++) {
            o[4 * nd] *= c0;
            o[4 * nd + 1] *= c0;
            o[4 * nd + 2] *= c1;
            o[4 * nd + 3] *= c1;
        }
#pragma unroll
        for (int i = 0; i < HD / 2; i++) reg_fence(o[i]);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) wgmma<HD, 1>(o, pa[kk], smem_desc(Vs + kk * 2 * CH * 64, V_LBO, V_SBO), 1);
        wg_commit();
    }
    __device__ void fence_o() {
#pragma unroll
        for (int i = 0; i < HD / 2; i++) reg_fence(o[i]);
    }
    __device__ void load_q(const __nv_bfloat16 *Qs, int q0, int t) { q_frags<KD>(qf, Qs, HD + PAD, qp0 - q0, t); }
    /* O / l as bf16 into rows qp0, qp1 (those before L) of head h */
    template <class FS> __device__ void store(const AttnArgs &a, const FS &fs, int t) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
        __nv_bfloat16 *out = (__nv_bfloat16 *)a.out;
#pragma unroll
        for (int nd = 0; nd < HD / 8; nd++) {
            const int d = fs.h * HD + nd * 8 + 2 * t;
            if (qp0 < fs.L)
                *(__nv_bfloat162 *)&out[(size_t)(fs.start + qp0) * a.out_stride + d] =
                    __floats2bfloat162_rn(o[4 * nd] * i0, o[4 * nd + 1] * i0);
            if (qp1 < fs.L)
                *(__nv_bfloat162 *)&out[(size_t)(fs.start + qp1) * a.out_stride + d] =
                    __floats2bfloat162_rn(o[4 * nd + 2] * i1, o[4 * nd + 3] * i1);
        }
    }
};

#endif

/* The plain schedule: per tile, S, wait, softmax, P V, wait; K/V two stages deep. */
template <int HD, int BK, int NWG>
__global__ void __launch_bounds__(NWG * 128, 1) k_flash_wg(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 64 * NWG, NT = NWG * 128, QS = HD + PAD, TILE = BK * HD;
    extern __shared__ __align__(128) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [BQ][QS]                                   */
    __nv_bfloat16 *KV = Qs + BQ * QS;           /* 2 stages x (K, V), each [BK / 8][CH][8][8] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    FlashSeq<HD, NT> fs;
    if (!fs.setup(a, BQ, BK)) return;
    fs.load_q(a, Qs, BQ, tid);
    load_tile<HD, BK, NT>(fs, a, KV + 0, 0, tid);
    cp_commit();
    WgRows<HD, BK> w;
    w.init(fs.q0, warp, g);
    for (int it = 0; it < fs.ntiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < fs.ntiles) {
            load_tile<HD, BK, NT>(fs, a, KV + ((it + 1) & 1) * 2 * TILE, k0 + BK, tid);
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

template <int HD, int BK, int NWG, bool PIPE>
tkr_status launch_wg(const AttnArgs &a, cudaStream_t s) {
    constexpr int BQ = 64 * NWG, STAGES = PIPE ? 3 : 2;
    void (*kern)(AttnArgs);
    if constexpr (PIPE) kern = k_flash_wgp<HD, BK, NWG>;
    else kern = k_flash_wg<HD, BK, NWG>;
    const size_t smem = sizeof(__nv_bfloat16) * ((size_t)BQ * (HD + PAD) + 2 * STAGES * (size_t)BK * HD);
    if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + BQ - 1) / BQ, a.n_heads, a.n_seq);
    kern<<<grid, NWG * 128, smem, s>>>(a);
    return TKR_OK;
}

/* The tile shape and schedule per head size: wg_cfg 0 the faster of the two measured on the H200
 * (tests/gpu/test_flash --bench), 1 the other. Head size 80 (vision, 16 x 5120 patches): the
 * pipelined schedule with 64-key tiles and 3 warpgroups 292 TFLOP/s, the plain one with 128-key
 * tiles 269 (version 3: 317). 128 (causal text, 16 x 1290): plain, 64-key tiles, 3 warpgroups
 * 199, pipelined with 2 warpgroups 159 (version 3: 170). (Plain with 128-key tiles and 2
 * warpgroups gave wrong results at head size 128 in the test, cause not found: not offered.) */
template <int HD>
tkr_status launch_hd(const AttnArgs &a, cudaStream_t s) {
    const bool other = a.wg_cfg == 1;
    if constexpr (HD == 80) return other ? launch_wg<80, 128, 3, false>(a, s) : launch_wg<80, 64, 3, true>(a, s);
    else return other ? launch_wg<HD, 64, 2, true>(a, s) : launch_wg<HD, 64, 3, false>(a, s);
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

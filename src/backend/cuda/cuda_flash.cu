/* cuda_flash.cu - attention on the tensor cores (bf16 mode), flash style.
 *
 * One block of 4 warps per (64 query rows, head, sequence); each warp owns 16 rows. Q, K and V
 * come from the bf16 copy of the fused qkv buffer (written by bias_rope); K and V tiles of 64
 * keys stream into shared memory with cp.async, two stages deep, so the next tile loads while
 * this one computes (V is read back transposed with ldmatrix.trans); mma.sync m16n8k16 (bf16
 * in, float32 accumulate) gives S = Q K^T for the tile, then the online softmax in float32 on the S fragments (the running
 * maximum and sum of each row are shared by the 4 lanes of a quad), then O += P V with P
 * taken straight from the S fragments as bf16. S never leaves registers. Causal masking
 * (text) skips key tiles past the block's last row; grouped-query heads read kv head
 * h / (n_heads / n_kv). Head sizes 64, 80, 96, 128 (text 128, vision 80).
 *
 * Three versions here (TKR_CUDA_FLASH=1/2/3; 4 is cuda_flash_wg.cu): the first (k_flash, above for short sequences); for
 * batches whose longest sequence has at least TKR_CUDA_FLASH2_MIN (64) rows, k_flash2 with
 * 8 warps of one 16-row m-tile (2) or, by default, 4 warps of two m-tiles (3; head sizes <= 96,
 * 128 spills there and takes 2's shape, with 4 warps for causal text). Measured on the H200, vision tower at 5120 patches, hd 80:
 * about 185 / 240 / 285 TFLOP/s (cuDNN's wgmma kernel under torch sdpa: about 410).
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): lane = 4 g + t. A (16x16, row-major):
 * a0 = (g, 2t..2t+1), a1 = (g + 8, 2t..), a2 = (g, 2t + 8..), a3 = (g + 8, 2t + 8..).
 * B (16x8, "col"): b0 = (k 2t..2t+1, n g), b1 = (k 2t + 8.., n g). C (16x8 float):
 * c0, c1 = (g, 2t..2t+1), c2, c3 = (g + 8, 2t..). */
#include "backend/cuda/cuda_flash_util.h"

namespace tkrcuda {

namespace {

using namespace flash;

constexpr int BQ = 64, BK = 64;

__device__ inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two 8x8 bf16 matrices transposed: lanes 0-7 address the rows of the first, 8-15 the second. */
__device__ inline void ldsm_x2_trans(uint32_t &r0, uint32_t &r1, const __nv_bfloat16 *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(addr));
}

/* Versions 1-3 keep K and V tiles of BK keys as rows of HD + PAD, like Q. */
template <int HD, int NT> struct PaddedSeq : FlashSeq<HD, NT> {
    using Base = FlashSeq<HD, NT>;
    /* setup, then starts the loads of the Q tile (bq rows into Qs) and of the first K/V tile
     * (stage 0 of KV) */
    __device__ bool begin(const AttnArgs &a, int bq, __nv_bfloat16 *Qs, __nv_bfloat16 *KV, int tid) {
        if (!this->setup(a, bq, BK)) return false;
        this->load_q(a, Qs, bq, tid);
        load_kv(a, KV, 0, 0, tid);
        cp_commit();
        return true;
    }
    /* Keys and values [k0, k0 + BK) into stage `stage` of KV (K [BK][QS], then V), asynchronously. */
    __device__ void load_kv(const AttnArgs &a, __nv_bfloat16 *KV, int stage, int k0, int tid) const {
        constexpr int QS = Base::QS, CH = Base::CH;
        __nv_bfloat16 *Ks = KV + stage * 2 * BK * QS, *Vs = Ks + BK * QS;
        for (int i = tid; i < BK * CH; i += NT) {
            int j = i / CH, c = (i % CH) * 8;
            bool ok = k0 + j < this->L;
            size_t off = ok ? (size_t)(k0 + j) * a.kv_stride + c : 0;
            cp16(&Ks[j * QS + c], this->kb + off, ok);
            cp16(&Vs[j * QS + c], this->vb + off, ok);
        }
    }
};

template <int HD>
__global__ void __launch_bounds__(128) k_flash(AttnArgs a) {
    constexpr int QS = HD + PAD, KD = HD / 16, ND = HD / 8, NB = BK / 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [BQ][QS]                        */
    __nv_bfloat16 *KV = Qs + BQ * QS;           /* 2 stages x (K [BK][QS], V [BK][QS]) */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    PaddedSeq<HD, 128> fs;
    if (!fs.begin(a, BQ, Qs, KV, tid)) return;
    const int h = fs.h, start = fs.start, L = fs.L, q0 = fs.q0, ntiles = fs.ntiles;
    const float sl2 = fs.sl2;
    auto load_kv = [&](int stage, int k0) { fs.load_kv(a, KV, stage, k0, tid); };
    uint32_t qf[KD][4];
    const int r0 = warp * 16 + g;
    float o[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    const int qp0 = q0 + r0, qp1 = qp0 + 8;

    for (int it = 0; it < ntiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < ntiles) {
            load_kv((it + 1) & 1, k0 + BK);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        if (it == 0) q_frags<KD>(qf, Qs, QS, r0, t);
        const __nv_bfloat16 *Ks = KV + (it & 1) * 2 * BK * QS, *Vs = Ks + BK * QS;
        float sc[NB][4];
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KD; kk++) {
                const __nv_bfloat16 *kr = &Ks[(nb * 8 + g) * QS + kk * 16 + 2 * t];
                mma_bf16(sc[nb], qf[kk], ld32(kr), ld32(kr + 8));
            }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + nb * 8 + 2 * t + (e & 1);
                int qp = e < 2 ? qp0 : qp1;
                bool ok = key < L && (!a.causal || key <= qp);
                sc[nb][e] = ok ? sc[nb][e] * sl2 : -INFINITY;
            }
            mx0 = fmaxf(mx0, fmaxf(sc[nb][0], sc[nb][1]));
            mx1 = fmaxf(mx1, fmaxf(sc[nb][2], sc[nb][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float b0 = mn0 == -INFINITY ? 0.f : mn0, b1 = mn1 == -INFINITY ? 0.f : mn1;
        float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
        m0 = mn0;
        m1 = mn1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            sc[nb][0] = exp2f(sc[nb][0] - b0);
            sc[nb][1] = exp2f(sc[nb][1] - b0);
            sc[nb][2] = exp2f(sc[nb][2] - b1);
            sc[nb][3] = exp2f(sc[nb][3] - b1);
            ps0 += sc[nb][0] + sc[nb][1];
            ps1 += sc[nb][2] + sc[nb][3];
        }
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            o[nd][0] *= c0;
            o[nd][1] *= c0;
            o[nd][2] *= c1;
            o[nd][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pa[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                              pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                              pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int nd = 0; nd < ND; nd++) {
                uint32_t v0, v1;
                ldsm_x2_trans(v0, v1, &Vs[(kk * 16 + (lane & 15)) * QS + nd * 8]);
                mma_bf16(o[nd], pa, v0, v1);
            }
        }
        __syncthreads(); /* this stage is loaded again two tiles on */
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
    __nv_bfloat16 *out = (__nv_bfloat16 *)a.out;
#pragma unroll
    for (int nd = 0; nd < ND; nd++) {
        int d = h * HD + nd * 8 + 2 * t;
        if (qp0 < L)
            *(__nv_bfloat162 *)&out[(size_t)(start + qp0) * a.out_stride + d] =
                __floats2bfloat162_rn(o[nd][0] * i0, o[nd][1] * i0);
        if (qp1 < L)
            *(__nv_bfloat162 *)&out[(size_t)(start + qp1) * a.out_stride + d] =
                __floats2bfloat162_rn(o[nd][2] * i1, o[nd][3] * i1);
    }
}

/* Eight 8x8 bf16 matrices' worth of fragments in one instruction: lanes 8i..8i+7 address the
 * rows of matrix i (x4), or lanes 0-15 those of two matrices (x2); .trans transposes each. */
__device__ inline void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const __nv_bfloat16 *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ inline void ldsm_x2(uint32_t &r0, uint32_t &r1, const __nv_bfloat16 *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(addr));
}
__device__ inline void ldsm_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                     const __nv_bfloat16 *p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

/* The second version, for long sequences (the vision tower's images): W warps share each K/V
 * tile, each warp owning MT m-tiles of 16 query rows (BQ = 16 MT W rows per block: MT = 1, W = 8
 * halves the shared-memory fills per product of v1; MT = 2, W = 4 also reuses every K and V
 * fragment for two products); K and V fragments come from ldmatrix x4 (one instruction per two
 * products instead of two loads per product); the scale is folded into the exp2 argument (one
 * FFMA per score, ex2.approx); only tiles that can hold a masked key (the sequence's last tile,
 * the causal diagonal) test keys. */
template <int HD, int MT, int W>
__global__ void __launch_bounds__(W * 32, MT == 1 ? (HD <= 96 ? 2 : 1) : 2) k_flash2(AttnArgs a) {
    constexpr int QS = HD + PAD, KD = HD / 16, ND = HD / 8, NB = BK / 8, BQ2 = 16 * MT * W, NT = W * 32;
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [BQ2][QS]                          */
    __nv_bfloat16 *KV = Qs + BQ2 * QS;          /* 2 stages x (K [BK][QS], V [BK][QS]) */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    PaddedSeq<HD, NT> fs;
    if (!fs.begin(a, BQ2, Qs, KV, tid)) return;
    const int h = fs.h, start = fs.start, L = fs.L, q0 = fs.q0, ntiles = fs.ntiles;
    const float sl2 = fs.sl2;
    auto load_kv = [&](int stage, int k0) { fs.load_kv(a, KV, stage, k0, tid); };
    uint32_t qf[MT][KD][4];
    const int wr0 = warp * 16 * MT;   /* the warp's first row in the block */
    const int wq0 = q0 + wr0;         /* ... as a query position            */
    float o[MT][ND][4];
    float m[MT][2], l[MT][2];         /* per m-tile, rows g and g + 8: raw (unscaled) maxima, sums */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int nd = 0; nd < ND; nd++) o[mt][nd][0] = o[mt][nd][1] = o[mt][nd][2] = o[mt][nd][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    for (int it = 0; it < ntiles; it++) {
        const int k0 = it * BK;
        if (it + 1 < ntiles) {
            load_kv((it + 1) & 1, k0 + BK);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++) q_frags<KD>(qf[mt], Qs, QS, wr0 + mt * 16 + g, t);
        }
        const __nv_bfloat16 *Ks = KV + (it & 1) * 2 * BK * QS, *Vs = Ks + BK * QS;
        /* causal: a warp whose rows all precede this tile has nothing to do in it */
        if (!(a.causal && k0 > wq0 + 16 * MT - 1)) {
            float sc[MT][NB][4];
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++) sc[mt][nb][0] = sc[mt][nb][1] = sc[mt][nb][2] = sc[mt][nb][3] = 0.f;
                const __nv_bfloat16 *kr = &Ks[(nb * 8 + (lane & 7)) * QS + (lane >> 3) * 8];
#pragma unroll
                for (int kk = 0; kk + 1 < KD; kk += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, kr + kk * 16);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma_bf16(sc[mt][nb], qf[mt][kk], b0, b1);
                        mma_bf16(sc[mt][nb], qf[mt][kk + 1], b2, b3);
                    }
                }
                if (KD & 1) {
                    uint32_t b0, b1;
                    ldsm_x2(b0, b1, &Ks[(nb * 8 + (lane & 7)) * QS + (KD - 1) * 16 + ((lane >> 3) & 1) * 8]);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) mma_bf16(sc[mt][nb], qf[mt][KD - 1], b0, b1);
                }
            }
            /* keys past the end or (causal) after the row: only near the end / the diagonal */
            if (k0 + BK > L || (a.causal && k0 + BK - 1 > wq0)) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int nb = 0; nb < NB; nb++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = k0 + nb * 8 + 2 * t + (e & 1);
                            int qp = wq0 + mt * 16 + g + (e < 2 ? 0 : 8);
                            if (!(key < L && (!a.causal || key <= qp))) sc[mt][nb][e] = -INFINITY;
                        }
            }
            uint32_t pa[MT][BK / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                float mx0 = m[mt][0], mx1 = m[mt][1];
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    mx0 = fmaxf(mx0, fmaxf(sc[mt][nb][0], sc[mt][nb][1]));
                    mx1 = fmaxf(mx1, fmaxf(sc[mt][nb][2], sc[mt][nb][3]));
                }
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                const float b0 = mx0 == -INFINITY ? 0.f : mx0 * sl2, b1 = mx1 == -INFINITY ? 0.f : mx1 * sl2;
                const float c0 = ex2(fmaf(m[mt][0], sl2, -b0)), c1 = ex2(fmaf(m[mt][1], sl2, -b1));
                m[mt][0] = mx0;
                m[mt][1] = mx1;
                float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    sc[mt][nb][0] = ex2(fmaf(sc[mt][nb][0], sl2, -b0));
                    sc[mt][nb][1] = ex2(fmaf(sc[mt][nb][1], sl2, -b0));
                    sc[mt][nb][2] = ex2(fmaf(sc[mt][nb][2], sl2, -b1));
                    sc[mt][nb][3] = ex2(fmaf(sc[mt][nb][3], sl2, -b1));
                    ps0 += sc[mt][nb][0] + sc[mt][nb][1];
                    ps1 += sc[mt][nb][2] + sc[mt][nb][3];
                }
                l[mt][0] = l[mt][0] * c0 + ps0;
                l[mt][1] = l[mt][1] * c1 + ps1;
#pragma unroll
                for (int nd = 0; nd < ND; nd++) {
                    o[mt][nd][0] *= c0;
                    o[mt][nd][1] *= c0;
                    o[mt][nd][2] *= c1;
                    o[mt][nd][3] *= c1;
                }
#pragma unroll
                for (int kk = 0; kk < BK / 16; kk++) {
                    pa[mt][kk][0] = pack_bf16(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
                    pa[mt][kk][1] = pack_bf16(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
                    pa[mt][kk][2] = pack_bf16(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
                    pa[mt][kk][3] = pack_bf16(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
                }
            }
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++) {
                const __nv_bfloat16 *vr = &Vs[(kk * 16 + (lane & 15)) * QS + (lane >> 4) * 8];
#pragma unroll
                for (int nd = 0; nd < ND; nd += 2) {
                    uint32_t v0, v1, v2, v3;
                    ldsm_x4_trans(v0, v1, v2, v3, vr + nd * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma_bf16(o[mt][nd], pa[mt][kk], v0, v1);
                        mma_bf16(o[mt][nd + 1], pa[mt][kk], v2, v3);
                    }
                }
            }
        }
        __syncthreads(); /* this stage is loaded again two tiles on */
    }
    __nv_bfloat16 *out = (__nv_bfloat16 *)a.out;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float l0 = l[mt][0], l1 = l[mt][1];
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
        const int qp0 = wq0 + mt * 16 + g, qp1 = qp0 + 8;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            int d = h * HD + nd * 8 + 2 * t;
            if (qp0 < L)
                *(__nv_bfloat162 *)&out[(size_t)(start + qp0) * a.out_stride + d] =
                    __floats2bfloat162_rn(o[mt][nd][0] * i0, o[mt][nd][1] * i0);
            if (qp1 < L)
                *(__nv_bfloat162 *)&out[(size_t)(start + qp1) * a.out_stride + d] =
                    __floats2bfloat162_rn(o[mt][nd][2] * i1, o[mt][nd][3] * i1);
        }
    }
}

template <int HD, int MT, int W>
tkr_status launch2(const AttnArgs &a, cudaStream_t s) {
    constexpr int BQ2 = 16 * MT * W;
    size_t smem = sizeof(__nv_bfloat16) * (size_t)(BQ2 + 4 * BK) * (HD + PAD);
    if (cudaFuncSetAttribute(k_flash2<HD, MT, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + BQ2 - 1) / BQ2, a.n_heads, a.n_seq);
    k_flash2<HD, MT, W><<<grid, W * 32, smem, s>>>(a);
    return TKR_OK;
}

template <int HD>
tkr_status launch(const AttnArgs &a, cudaStream_t s) {
    const bool long_seq = a.max_len >= a.v2_min_len;
    /* version 3's long sequences go to 4 where it measured faster: causal text of head size 128
       (16 x 1290 tokens: 199 TFLOP/s against 170), the vision tower's head size 80 (16 x 5120
       patches: 344 against 317) */
    const bool handed = a.variant == 3 && a.wg_min_len > 0 && a.max_len >= a.wg_min_len &&
                        ((a.causal && HD == 128) || (!a.causal && HD == 80));
    if ((long_seq && a.variant == 4) || handed) { /* head sizes other than 80 and 128: as 3 */
        tkr_status st = flash_attention_wg(a, s);
        if (st != TKR_ERR_UNSUPPORTED) return st;
    }
    if (long_seq && a.variant == 2) return launch2<HD, 1, 8>(a, s);
    if (long_seq && a.variant >= 3) { /* two m-tiles per warp spill at head size 128 */
        if constexpr (HD <= 96) return launch2<HD, 2, 4>(a, s);
        /* causal text: blocks of 4 warps (64 rows) where 8 ran one block per SM (222 registers a
           thread) and left the rows above the diagonal idle: 16 x 512 156.4 TFLOP/s against 145.6,
           64 x 128 68.5 against 60.4 (tests/gpu/test_flash --bench, H200) */
        else if (a.causal && !a.wide_causal) return launch2<HD, 1, 4>(a, s);
        else return launch2<HD, 1, 8>(a, s);
    }
    size_t smem = sizeof(__nv_bfloat16) * (size_t)(BQ + 4 * BK) * (HD + PAD);
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(k_flash<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + BQ - 1) / BQ, a.n_heads, a.n_seq);
    k_flash<HD><<<grid, 128, smem, s>>>(a);
    return TKR_OK;
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

} // namespace

bool flash_supported(int hd) { return hd == 64 || hd == 80 || hd == 96 || hd == 128; }

tkr_status flash_attention(const AttnArgs &a, cudaStream_t s) {
    if (a.n_seq <= 0 || a.n_heads <= 0) return TKR_OK;
    if (!flash_supported(a.hd) || a.last_row_only || a.n_kv <= 0 || a.n_heads % a.n_kv || a.q_stride % 8 ||
        a.kv_stride % 8 || a.out_stride % 2 || !a.qh || !a.kh || !a.vh || !aligned16(a.qh) || !aligned16(a.kh) ||
        !aligned16(a.vh))
        return TKR_ERR_UNSUPPORTED;
    switch (a.hd) {
    case 64: return launch<64>(a, s);
    case 80: return launch<80>(a, s);
    case 96: return launch<96>(a, s);
    default: return launch<128>(a, s);
    }
}

} // namespace tkrcuda

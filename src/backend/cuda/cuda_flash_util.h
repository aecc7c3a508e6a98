/* cuda_flash_util.h - what the flash attention kernels share: cuda_flash.cu (mma.sync, versions
 * 1-3) and cuda_flash_wg.cu (Hopper's wgmma, version 4). nvcc only.
 *
 * Each kernel runs one block per (query tile, head, sequence): grid (query tiles, heads,
 * sequences). FlashSeq finds the block's sequence, head and rows, and loads its Q tile into
 * shared memory as rows of HD + PAD bf16 (the padding spreads rows over the banks). */
#ifndef TKR_CUDA_FLASH_UTIL_H
#define TKR_CUDA_FLASH_UTIL_H

#include "backend/cuda/cuda_internal.h"

#include <math.h>

namespace tkrcuda {
namespace flash {

constexpr int PAD = 8;

__device__ inline uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

__device__ inline uint32_t ld32(const __nv_bfloat16 *p) { return *(const uint32_t *)p; }

/* 16 bytes global -> shared, asynchronously; zero-filled when !ok. */
__device__ inline void cp16(void *smem, const void *gmem, bool ok) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(ok ? 16 : 0));
}
__device__ inline void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ inline void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* One MUFU instruction: 2^x (flush-to-zero; the softmax never needs denormals). */
__device__ inline float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* The mma A fragments of Q rows r and r + 8 (Qs: rows of qs bf16): lane 4 g + t holds
 * (row, 2t..2t+1), (row + 8, 2t..), (row, 2t + 8..), (row + 8, 2t + 8..) of each 16-column step. */
template <int KD> __device__ inline void q_frags(uint32_t (&qf)[KD][4], const __nv_bfloat16 *Qs, int qs, int r, int t) {
#pragma unroll
    for (int kk = 0; kk < KD; kk++) {
        qf[kk][0] = ld32(&Qs[r * qs + kk * 16 + 2 * t]);
        qf[kk][1] = ld32(&Qs[(r + 8) * qs + kk * 16 + 2 * t]);
        qf[kk][2] = ld32(&Qs[r * qs + kk * 16 + 2 * t + 8]);
        qf[kk][3] = ld32(&Qs[(r + 8) * qs + kk * 16 + 2 * t + 8]);
    }
}

/* The block's sequence, head and first query row, the K/V base pointers of its kv head, the
 * number of key tiles of bk keys it visits; NT threads take part in the loads. (Launching the
 * causal blocks with the most keys first, sequences fastest, measured slower at 64 x 128 and
 * 16 x 512.) */
template <int HD, int NT> struct FlashSeq {
    static constexpr int QS = HD + PAD, CH = HD / 8; /* smem row stride; 16-byte chunks per row */
    int start, L, q0, h, ntiles;
    float sl2; /* softmax scale * log2(e): the kernels exponentiate with exp2 */
    const __nv_bfloat16 *kb, *vb;
    /* false when the block has nothing to do (empty or skipped sequence, rows past its end) */
    __device__ bool setup(const AttnArgs &a, int bq, int bk) {
        /* the grid is (query tiles, heads, sequences); blocks start roughly in linear order, so
           for causal attention, where a tile's work grows with its index, the linear index is
           read tile-major from the last tile down: the longest blocks start first and the short
           ones fill the tail */
        int s = blockIdx.z, qt = blockIdx.x;
        h = blockIdx.y;
        if (a.causal && a.longest_first && gridDim.x > 1) {
            const unsigned hs = gridDim.y * gridDim.z;
            const unsigned lin = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
            qt = (int)(gridDim.x - 1 - lin / hs);
            h = (int)(lin % hs % gridDim.y);
            s = (int)(lin % hs / gridDim.y);
        }
        start = a.seq_start[s];
        L = a.seq_start[s + 1] - start;
        if (L <= 0 || (L >= a.skip_len && L <= a.skip_max)) return false;
        q0 = qt * bq;
        if (q0 >= L) return false;
        const int kvh = h / (a.n_heads / a.n_kv);
        kb = a.kh + (size_t)start * a.kv_stride + (size_t)kvh * HD;
        vb = a.vh + (size_t)start * a.kv_stride + (size_t)kvh * HD;
        sl2 = 1.4426950408889634f / sqrtf((float)HD);
        const int kend = a.causal ? (q0 + bq < L ? q0 + bq : L) : L;
        ntiles = (kend + bk - 1) / bk;
        return true;
    }
    /* Q rows [q0, q0 + bq) of head h into Qs [bq][QS] (zeros past L), asynchronously. */
    __device__ void load_q(const AttnArgs &a, __nv_bfloat16 *Qs, int bq, int tid) const {
        for (int i = tid; i < bq * CH; i += NT) {
            int r = i / CH, c = (i % CH) * 8;
            bool ok = q0 + r < L;
            cp16(&Qs[r * QS + c], a.qh + (ok ? (size_t)(start + q0 + r) * a.q_stride + (size_t)h * HD + c : 0),
                 ok);
        }
    }
};

} // namespace flash
} // namespace tkrcuda

#endif

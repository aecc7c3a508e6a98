/* cuda_attention.cu - attention over packed variable-length sequences, computed directly.
 *
 * One block of 4 warps per (query tile of 16 rows, head, sequence); each warp owns 4 query
 * rows. Keys and values stream through shared memory in tiles of 32; each lane scores one key
 * of the tile, and the running maximum / sum / output of every row are rescaled as each tile
 * arrives (online softmax), all in float32. Causal masking (text) limits every row to keys at
 * or before it; grouped-query heads read kv head h / (n_heads / n_kv). Long vision sequences
 * go through GEMMs instead (cuda_forward.cu), which this kernel then skips (skip_len).
 *
 * Shared memory [floats]: q [16][hd], k [32][hd + 1] (padded: lane j reads row j without bank
 * conflicts), v [32][hd], p [4 warps][4 rows][32]. */
#include "backend/cuda/cuda_internal.h"

#include <math.h>

namespace tkrcuda {

namespace {

constexpr int QT = 16, KT = 32, ROWS = 4, WARPS = 4;

__device__ inline void store_out(float *p, float v) { *p = v; }
__device__ inline void store_out(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

template <int DPL, typename T>
__global__ void __launch_bounds__(128) k_attention(AttnArgs a, T *out) {
    extern __shared__ float sm[];
    const int hd = a.hd;
    float *qs = sm;                       /* [QT][hd]      */
    float *ks = qs + QT * hd;             /* [KT][hd + 1]  */
    float *vs = ks + KT * (hd + 1);       /* [KT][hd]      */
    float *ps = vs + KT * hd;             /* [WARPS][ROWS][KT] */
    const int s = blockIdx.z, h = blockIdx.y;
    const int start = a.seq_start[s], L = a.seq_start[s + 1] - start;
    if (L <= 0 || (L >= a.skip_len && L <= a.skip_max)) return;
    int q0, nq, qrow0;                    /* first query position, rows, first q buffer row */
    if (a.last_row_only) {
        if (blockIdx.x > 0) return;
        q0 = L - 1;
        nq = 1;
        qrow0 = s;
    } else {
        q0 = blockIdx.x * QT;
        if (q0 >= L) return;
        nq = L - q0 < QT ? L - q0 : QT;
        qrow0 = start + q0;
    }
    const int kvh = h / (a.n_heads / a.n_kv);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int i = tid; i < QT * hd; i += blockDim.x) {
        int r = i / hd, d = i % hd;
        qs[i] = r < nq ? a.q[(size_t)(qrow0 + r) * a.q_stride + (size_t)h * hd + d] : 0.0f;
    }
    const int kend = a.causal ? q0 + nq : L;
    float m[ROWS], l[ROWS], o[ROWS][DPL];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int dd = 0; dd < DPL; dd++) o[r][dd] = 0.0f;
    }
    const float *kb = a.k + (size_t)start * a.kv_stride + (size_t)kvh * hd;
    const float *vb = a.v + (size_t)start * a.kv_stride + (size_t)kvh * hd;
    for (int k0 = 0; k0 < kend; k0 += KT) {
        __syncthreads();
        for (int i = tid; i < KT * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd;
            bool ok = k0 + j < kend;
            ks[j * (hd + 1) + d] = ok ? kb[(size_t)(k0 + j) * a.kv_stride + d] : 0.0f;
            vs[j * hd + d] = ok ? vb[(size_t)(k0 + j) * a.kv_stride + d] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const int row = warp * ROWS + r;
            if (row >= nq) break;                         /* warp-uniform */
            const int qpos = q0 + row, key = k0 + lane;
            const float *qr = qs + row * hd, *kr = ks + lane * (hd + 1);
            float dot = 0.0f;
            for (int d = 0; d < hd; d++) dot += qr[d] * kr[d];
            bool ok = key < kend && (!a.causal || key <= qpos);
            float sc = ok ? dot * scale : -INFINITY;
            float mt = sc;
            for (int off = 16; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));
            float mn = fmaxf(m[r], mt);
            if (mn == -INFINITY) continue;                /* warp-uniform: nothing visible yet */
            float p = ok ? expf(sc - mn) : 0.0f;
            float corr = expf(m[r] - mn);
            float ps_sum = p;
            for (int off = 16; off > 0; off >>= 1) ps_sum += __shfl_xor_sync(0xffffffffu, ps_sum, off);
            l[r] = l[r] * corr + ps_sum;
            m[r] = mn;
            float *pw = ps + (warp * ROWS + r) * KT;
            pw[lane] = p;
            __syncwarp();
#pragma unroll
            for (int dd = 0; dd < DPL; dd++) {
                int d = lane + 32 * dd;
                float acc = 0.0f;
                if (d < hd)
                    for (int j = 0; j < KT; j++) acc += pw[j] * vs[j * hd + d];
                o[r][dd] = o[r][dd] * corr + acc;
            }
            __syncwarp();
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const int row = warp * ROWS + r;
        if (row >= nq) break;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        T *orow = out + (size_t)(a.last_row_only ? s : qrow0 + row) * a.out_stride + (size_t)h * hd;
#pragma unroll
        for (int dd = 0; dd < DPL; dd++) {
            int d = lane + 32 * dd;
            if (d < hd) store_out(orow + d, o[r][dd] * inv);
        }
    }
}

template <int DPL, typename T>
tkr_status launch(const AttnArgs &a, cudaStream_t s) {
    size_t smem = sizeof(float) * ((size_t)QT * a.hd + (size_t)KT * (a.hd + 1) + (size_t)KT * a.hd + WARPS * ROWS * KT);
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(k_attention<DPL, T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    int tiles = a.last_row_only ? 1 : (a.max_len + QT - 1) / QT;
    dim3 grid(tiles > 0 ? tiles : 1, a.n_heads, a.n_seq);
    k_attention<DPL, T><<<grid, 128, smem, s>>>(a, (T *)a.out);
    return TKR_OK;
}

template <typename T>
tkr_status dispatch(const AttnArgs &a, cudaStream_t s) {
    switch ((a.hd + 31) / 32) {
    case 1: return launch<1, T>(a, s);
    case 2: return launch<2, T>(a, s);
    case 3: return launch<3, T>(a, s);
    case 4: return launch<4, T>(a, s);
    case 5: return launch<5, T>(a, s);
    case 6: return launch<6, T>(a, s);
    case 7: return launch<7, T>(a, s);
    case 8: return launch<8, T>(a, s);
    default: return TKR_ERR_UNSUPPORTED;
    }
}

} // namespace

tkr_status attention(bool fp32, const AttnArgs &a, cudaStream_t s) {
    if (a.n_seq <= 0 || a.n_heads <= 0) return TKR_OK;
    if (a.hd <= 0 || a.n_kv <= 0 || a.n_heads % a.n_kv != 0) return TKR_ERR_UNSUPPORTED;
    return fp32 ? dispatch<float>(a, s) : dispatch<__nv_bfloat16>(a, s);
}

} // namespace tkrcuda

/* cuda_quant.cu - quantized weights on the GPU (GGUF Q8_0, Q4_0, Q4_K, Q6_K).
 *
 * The blocks are uploaded as stored (cuda_backend.cu): GPU memory holds 8.5 bits a weight for
 * Q8_0, so the 7B model fits a small GPU. Before each GEMM over a quantized weight, one kernel
 * dequantizes the whole matrix into a scratch tile of G (bf16, or float32 in fp32 mode) and
 * cuBLAS runs as for dense weights: at the batch sizes the GPU is for (hundreds to thousands of
 * rows) the GEMM dominates, and a 1536 x 8960 tile is 27 MB written at HBM speed (~10 us). The
 * arithmetic is dequant_blocks.h's, which the host unit test checks against the library's
 * dequantizer. The token embedding stays quantized too: rows are dequantized when gathered. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/dequant_blocks.h"

namespace tkrcuda {

namespace {

unsigned blocks_of(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

template <typename T> __device__ __forceinline__ void store8(T *dst, const float *v);
template <> __device__ __forceinline__ void store8<float>(float *dst, const float *v) {
    ((float4 *)dst)[0] = make_float4(v[0], v[1], v[2], v[3]);
    ((float4 *)dst)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
template <> __device__ __forceinline__ void store8<__nv_bfloat16>(__nv_bfloat16 *dst, const float *v) {
    union {
        __nv_bfloat162 h[4];
        uint4 u;
    } p;
    for (int i = 0; i < 4; i++) p.h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *(uint4 *)dst = p.u;
}

/* dst [rows, K] of T (row-major, 16-byte aligned rows: K % 8 == 0) from rows of `type`. One
 * thread per 8 values. */
template <typename T>
__global__ void k_dequant(T *dst, const uint8_t *src, size_t row_bytes, int type, int K, size_t n8) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    size_t per_row = (size_t)K / 8, r = i / per_row;
    int k0 = (int)(i % per_row) * 8;
    float v[8];
    tkr_dq8(type, src + r * row_bytes, k0, v);
    store8(dst + r * K + k0, v);
}

/* x [T, D] float: row t = the dequantized embedding row ids[t], or extra row extra_row[t]. */
__global__ void k_gather_q(float *x, const uint8_t *embed, size_t row_bytes, int type, const int32_t *ids,
                           const int32_t *extra_row, const float *extra, int D, size_t n8) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    size_t per_row = (size_t)D / 8, t = i / per_row;
    int k0 = (int)(i % per_row) * 8;
    float v[8];
    int e = extra_row ? extra_row[t] : -1;
    if (e >= 0)
        for (int j = 0; j < 8; j++) v[j] = extra[(size_t)e * D + k0 + j];
    else
        tkr_dq8(type, embed + (size_t)ids[t] * row_bytes, k0, v);
    store8(x + t * D + k0, v);
}

} // namespace

tkr_status weight_of(Backend *be, const Linear &L, const void **w, tkr_error *err) {
    *w = L.w;
    if (L.w || L.n_raw == 0) return TKR_OK;
    size_t g = gsize(be->fp32);
    size_t need = (size_t)L.N * L.K * g;
    if (L.K % 8 != 0)
        return tkr_fail(err, TKR_ERR_INTERNAL, "CUDA: quantized weight with %d columns (not a multiple of 8)", L.K);
    tkr_status st = ensure(be->wtile, need, false, err);
    if (st != TKR_OK) return st;
    char *dst = (char *)be->wtile.p;
    for (int p = 0; p < L.n_raw; p++) {
        const RawPart &R = L.raw[p];
        size_t n8 = (size_t)R.rows * L.K / 8;
        if (n8 == 0) continue;
        if (be->fp32)
            k_dequant<float><<<blocks_of(n8, 256), 256, 0, be->stream>>>((float *)dst, R.q, R.row_bytes, R.type, L.K, n8);
        else
            k_dequant<__nv_bfloat16><<<blocks_of(n8, 256), 256, 0, be->stream>>>((__nv_bfloat16 *)dst, R.q, R.row_bytes,
                                                                                R.type, L.K, n8);
        dst += (size_t)R.rows * L.K * g;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_fail(err, e, "dequantize weights");
    *w = be->wtile.p;
    return TKR_OK;
}

Linear linear_rows(const Linear &L, int r0, int n, bool fp32) {
    Linear s = L;
    s.N = n;
    s.b = L.b ? L.b + r0 : nullptr;
    if (L.w) {
        s.w = (char *)L.w + (size_t)r0 * L.K * gsize(fp32);
        return s;
    }
    s.n_raw = 0;
    int start = 0; /* first row of part p */
    for (int p = 0; p < L.n_raw; p++) {
        const RawPart &R = L.raw[p];
        int lo = r0 > start ? r0 : start, hi = r0 + n < start + R.rows ? r0 + n : start + R.rows;
        if (lo < hi) {
            RawPart q = R;
            q.q = R.q + (size_t)(lo - start) * R.row_bytes;
            q.rows = hi - lo;
            s.raw[s.n_raw++] = q;
        }
        start += R.rows;
    }
    return s;
}

void gather_embeddings(Backend *be, float *x, const int32_t *ids, const int32_t *extra_row, const float *extra,
                       int T, int D, cudaStream_t s) {
    if (be->embed) {
        embed_gather(be->fp32, x, be->embed, ids, extra_row, extra, T, D, s);
        return;
    }
    size_t n8 = (size_t)T * D / 8;
    if (n8 == 0) return;
    const RawPart &E = be->embed_raw;
    k_gather_q<<<blocks_of(n8, 256), 256, 0, s>>>(x, E.q, E.row_bytes, E.type, ids, extra_row, extra, D, n8);
}

} // namespace tkrcuda

/* cuda_kernels.cu - the CUDA backend's element-wise and row kernels (norms, activations, gathers,
 * softmax, patches; the rotary is in cuda_rope.cu). Float32 arithmetic throughout; G-typed
 * outputs are rounded once at the end. Every kernel is launched on the backend's stream; errors
 * surface at the next check (cudaGetLastError / the final synchronisation). */
#include "backend/cuda/cuda_internal.h"

#include <cuda_fp16.h>
#include <math.h>

namespace tkrcuda {

namespace {

__device__ inline float to_f(float x) { return x; }
__device__ inline float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ inline T from_f(float x);
template <> __device__ inline float from_f<float>(float x) { return x; }
template <> __device__ inline __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
__device__ double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0;
    int nw = blockDim.x >> 5;
    for (int i = 0; i < nw; i++) t += sh[i];
    return t;
}

template <typename T>
__global__ void k_convert(T *dst, const void *src, int dt, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v;
        if (dt == TKR_DT_F32) v = ((const float *)src)[i];
        else if (dt == TKR_DT_F16) v = __half2float(((const __half *)src)[i]);
        else v = __uint_as_float((unsigned)((const uint16_t *)src)[i] << 16);
        dst[i] = from_f<T>(v);
    }
}

template <typename T>
__global__ void k_embed_gather(float *x, const T *embed, const int32_t *ids, const int32_t *extra_row,
                               const float *extra, int D) {
    int t = blockIdx.x;
    int e = extra_row ? extra_row[t] : -1;
    float *row = x + (size_t)t * D;
    if (e >= 0) {
        const float *src = extra + (size_t)e * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x) row[i] = src[i];
    } else {
        const T *src = embed + (size_t)ids[t] * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x) row[i] = to_f(src[i]);
    }
}

template <typename T>
__global__ void k_add_norm(float *x, const float *a, const float *abias, int D, int rms, const float *w,
                           const float *b, float eps, T *y) {
    __shared__ double sh[32];
    float *xr = x + (size_t)blockIdx.x * D;
    const float *ar = a ? a + (size_t)blockIdx.x * D : nullptr;
    double s = 0, ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = xr[i];
        if (ar || abias) {
            v += (ar ? ar[i] : 0.0f) + (abias ? abias[i] : 0.0f);
            xr[i] = v;
        }
        s += v;
        ss += (double)v * v;
    }
    T *yr = y + (size_t)blockIdx.x * D;
    if (rms) {
        ss = block_sum(ss, sh);
        float inv = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = threadIdx.x; i < D; i += blockDim.x) yr[i] = from_f<T>(w[i] * (xr[i] * inv));
        return;
    }
    double mean = block_sum(s, sh) / D;
    double var = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        double d = (double)xr[i] - mean;
        var += d * d;
    }
    var = block_sum(var, sh);
    float inv = (float)(1.0 / sqrt(var / D + eps));
    float fm = (float)mean;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        yr[i] = from_f<T>((xr[i] - fm) * inv * w[i] + (b ? b[i] : 0.0f));
}

__device__ inline float act_apply(float v, int act) {
    if (act == ACT_QUICK_GELU) return v / (1.0f + expf(-1.702f * v));
    if (act == ACT_GELU_ERF) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    return v;
}

template <typename TI, typename T>
__global__ void k_bias_act(const TI *x, const float *bias, size_t M, int N, int act, T *y) {
    size_t n = M * (size_t)N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = to_f(x[i]) + (bias ? bias[i % N] : 0.0f);
        y[i] = from_f<T>(act_apply(v, act));
    }
}

template <typename T>
__global__ void k_silu_mul(const T *x, size_t M, int I, T *y) {
    size_t n = M * (size_t)I;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / I, c = i % I;
        float g = to_f(x[r * 2 * I + c]), u = to_f(x[r * 2 * I + I + c]);
        y[i] = from_f<T>(g / (1.0f + expf(-g)) * u);
    }
}

__global__ void k_gather(uint16_t *dst, const uint16_t *src, const int32_t *rows, size_t row_elems) {
    const uint16_t *s = src + (size_t)rows[blockIdx.x] * row_elems;
    uint16_t *d = dst + (size_t)blockIdx.x * row_elems;
    for (size_t i = threadIdx.x; i < row_elems; i += blockDim.x) d[i] = s[i];
}

template <typename T>
__global__ void k_to_g(T *dst, int ldd, const float *src, int lds, int M, int N) {
    size_t n = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / N, c = i % N;
        dst[r * ldd + c] = from_f<T>(src[r * lds + c]);
    }
}

template <typename T>
__global__ void k_softmax(const float *S, int L, float scale, int causal, T *P) {
    __shared__ float shf[32];
    size_t row = blockIdx.x;
    int qi = (int)(row % L);
    int n = causal ? qi + 1 : L;
    const float *sr = S + row * L;
    T *pr = P + row * L;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, sr[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) shf[warp] = mx;
    __syncthreads();
    mx = shf[0];
    for (int i = 1; i < nw; i++) mx = fmaxf(mx, shf[i]);
    __syncthreads();
    float sum = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) sum += expf((sr[j] - mx) * scale);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) shf[warp] = sum;
    __syncthreads();
    sum = 0;
    for (int i = 0; i < nw; i++) sum += shf[i];
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < L; j += blockDim.x)
        pr[j] = from_f<T>(j < n ? expf((sr[j] - mx) * scale) * inv : 0.0f);
}

/* ---- fast kernels for the bf16 mode: 16-byte accesses ---- */

/* QuickGELU in place as a flat kernel: EW_U 16-byte items per thread, at i, i + 256, ... from the
 * block's first item, all loaded before any is computed (grid-stride beyond blocks_for's cap);
 * indices of type IT (32 bits where they fit: cheaper divisions). One block per row (a loop of
 * one load, compute, store per thread) held it at about 3.2 TB/s on the H200; this form takes
 * 17% less time (16 images of 1280 tokens). SiLU-gate (two loads an item) kept its row form: the
 * flat one was no faster (2.95 against 2.87 ms a 16 x 512 text pass). */
constexpr int EW_U = 4;
inline unsigned ew_blocks(size_t items) { return blocks_for((items + EW_U - 1) / EW_U, 256); }

/* x [M, N] bf16 in place: quick_gelu(x + bias) (bias [N] float or NULL; N % 8 == 0, x and bias
 * 16-byte aligned), items = M N / 8. */
template <typename IT>
__global__ void __launch_bounds__(256) k_bias_quick_gelu_g(__nv_bfloat16 *x, const float *bias, int N, IT items) {
    uint4 *xv = (uint4 *)x;
    for (IT i0 = (IT)blockIdx.x * 256 * EW_U + threadIdx.x; i0 < items; i0 += (IT)gridDim.x * 256 * EW_U) {
        Pack8 p[EW_U];
#pragma unroll
        for (int u = 0; u < EW_U; u++)
            if (i0 + u * 256 < items) p[u].u = xv[i0 + u * 256];
#pragma unroll
        for (int u = 0; u < EW_U; u++) {
            const IT i = i0 + u * 256;
            if (i >= items) break;
            float bv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (bias) {
                const float4 *bp = (const float4 *)(bias + (size_t)(i % (IT)(N / 8)) * 8);
                float4 b0 = bp[0], b1 = bp[1];
                bv[0] = b0.x, bv[1] = b0.y, bv[2] = b0.z, bv[3] = b0.w;
                bv[4] = b1.x, bv[5] = b1.y, bv[6] = b1.z, bv[7] = b1.w;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f = __bfloat1622float2(p[u].h[k]);
                if (bias) {
                    f.x += bv[2 * k];
                    f.y += bv[2 * k + 1];
                }
                f.x = f.x / (1.0f + __expf(-1.702f * f.x));
                f.y = f.y / (1.0f + __expf(-1.702f * f.y));
                p[u].h[k] = __float22bfloat162_rn(f);
            }
            xv[i] = p[u].u;
        }
    }
}

/* y row [I] = silu(gate) * up from x row [2I] = gate | up, bf16 (I % 8 == 0). */
__global__ void k_silu_mul_g(const __nv_bfloat16 *x, int I, __nv_bfloat16 *y) {
    const uint4 *g = (const uint4 *)(x + (size_t)blockIdx.x * 2 * I), *u = g + I / 8;
    uint4 *o = (uint4 *)(y + (size_t)blockIdx.x * I);
    for (int v = threadIdx.x; v < I / 8; v += blockDim.x) {
        Pack8 pg, pu, po;
        pg.u = g[v];
        pu.u = u[v];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 a = __bfloat1622float2(pg.h[k]), b = __bfloat1622float2(pu.h[k]);
            a.x = a.x / (1.0f + __expf(-a.x)) * b.x;
            a.y = a.y / (1.0f + __expf(-a.y)) * b.y;
            po.h[k] = __float22bfloat162_rn(a);
        }
        o[v] = po.u;
    }
}

/* Four values to 4 consecutive T (one 16-byte float store, or one 8-byte bf16 store). */
__device__ inline void store4(float *dst, const float *r) { *(float4 *)dst = make_float4(r[0], r[1], r[2], r[3]); }
__device__ inline void store4(__nv_bfloat16 *dst, const float *r) {
    union {
        __nv_bfloat162 h[2];
        uint2 u;
    } p;
    p.h[0] = __floats2bfloat162_rn(r[0], r[1]);
    p.h[1] = __floats2bfloat162_rn(r[2], r[3]);
    *(uint2 *)dst = p.u;
}

/* Float4 i of a row: x (+ a + abias, written back to x when either is given). */
__device__ inline float4 add_row4(float4 *xr, const float4 *ar, const float *abias, int i) {
    float4 t = xr[i];
    if (ar || abias) {
        float4 q = ar ? ar[i] : make_float4(0.f, 0.f, 0.f, 0.f);
        float4 bb = abias ? ((const float4 *)abias)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
        t.x += q.x + bb.x;
        t.y += q.y + bb.y;
        t.z += q.z + bb.z;
        t.w += q.w + bb.w;
        xr[i] = t;
    }
    return t;
}

/* Sum of the squared deviations of v's four values from mean, in double. */
__device__ inline double sq_dev4(float4 v, double mean) {
    double d0 = (double)v.x - mean, d1 = (double)v.y - mean, d2 = (double)v.z - mean, d3 = (double)v.w - mean;
    return d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3;
}

/* Values 4i .. 4i + 3 of a normed row from v: RMSNorm w (v inv), else LayerNorm (v - fm) inv w + b. */
template <typename T>
__device__ inline void norm_out4(T *yr, float4 v, int i, int rms, const float *w, const float *b, float inv, float fm) {
    float e[4] = {v.x, v.y, v.z, v.w};
    float4 wv = ((const float4 *)w)[i];
    float wa[4] = {wv.x, wv.y, wv.z, wv.w}, r[4];
#pragma unroll
    for (int c = 0; c < 4; c++) {
        int d = 4 * i + c;
        r[c] = rms ? wa[c] * (e[c] * inv) : (e[c] - fm) * inv * wa[c] + (b ? b[d] : 0.0f);
    }
    store4(yr + 4 * i, r);
}

/* add_norm with the row in registers: x [M, D] float (D % 4 == 0, D <= 4 * 256 * NV), float4
 * accesses, sums in double as k_add_norm. */
template <typename T, int NV>
__global__ void __launch_bounds__(256) k_add_norm_v(float *x, const float *a, const float *abias, int D, int rms,
                                                    const float *w, const float *b, float eps, T *y) {
    __shared__ double sh[32];
    float4 *xr = (float4 *)(x + (size_t)blockIdx.x * D);
    const float4 *ar = a ? (const float4 *)(a + (size_t)blockIdx.x * D) : nullptr;
    const int D4 = D / 4;
    float4 v[NV];
    double s = 0, ss = 0;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = threadIdx.x + k * 256;
        if (i < D4) {
            v[k] = add_row4(xr, ar, abias, i);
            s += (double)v[k].x + v[k].y + v[k].z + v[k].w;
            ss += (double)v[k].x * v[k].x + (double)v[k].y * v[k].y + (double)v[k].z * v[k].z +
                  (double)v[k].w * v[k].w;
        }
    }
    T *yr = y + (size_t)blockIdx.x * D;
    float inv, fm = 0.f;
    if (rms) {
        ss = block_sum(ss, sh);
        inv = (float)(1.0 / sqrt(ss / D + eps));
    } else {
        double mean = block_sum(s, sh) / D;
        double var = 0;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = threadIdx.x + k * 256;
            if (i < D4) var += sq_dev4(v[k], mean);
        }
        __syncthreads(); /* sh is reused */
        var = block_sum(var, sh);
        inv = (float)(1.0 / sqrt(var / D + eps));
        fm = (float)mean;
    }
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = threadIdx.x + k * 256;
        if (i < D4) norm_out4(yr, v[k], i, rms, w, b, inv, fm);
    }
}

/* add_norm for rows of at most 128 NV floats (the 2B's 1536, the vision tower's 1280): one warp
 * per row, no shared memory and no block barriers, the row in registers (float4 accesses), sums
 * in double with warp shuffles. Each warp takes rows row, row + step, ... (step = 4 gridDim.x)
 * and issues the next row's loads before this row's sums, shuffles and stores, in a grid of 4
 * blocks of 128 threads per SM: one row per warp in blocks of 8 rows (2.6 waves at 8192 rows:
 * load, then reduce, then store) ran at about half of HBM speed. */
template <typename T, int NV>
__global__ void __launch_bounds__(128) k_add_norm_wp(float *x, const float *a, const float *abias, int M, int D,
                                                     int rms, const float *w, const float *b, float eps, T *y) {
    const int lane = threadIdx.x & 31, D4 = D / 4, step = gridDim.x * 4;
    int row = blockIdx.x * 4 + (threadIdx.x >> 5);
    if (row >= M) return;
    float4 v[NV], vn[NV];
    auto load = [&](float4 (&dst)[NV], int r) {
        float4 *xr = (float4 *)(x + (size_t)r * D);
        const float4 *ar = a ? (const float4 *)(a + (size_t)r * D) : nullptr;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = lane + k * 32;
            if (i < D4) dst[k] = add_row4(xr, ar, abias, i);
        }
    };
    load(v, row);
    for (; row < M; row += step) {
        if (row + step < M) load(vn, row + step);
        double s = 0, ss = 0;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = lane + k * 32;
            if (i < D4) {
                s += (double)v[k].x + v[k].y + v[k].z + v[k].w;
                ss += (double)v[k].x * v[k].x + (double)v[k].y * v[k].y + (double)v[k].z * v[k].z +
                      (double)v[k].w * v[k].w;
            }
        }
        T *yr = y + (size_t)row * D;
        float inv, fm = 0.f;
        if (rms) {
            for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
            inv = (float)(1.0 / sqrt(ss / D + eps));
        } else {
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            double mean = s / D, var = 0;
#pragma unroll
            for (int k = 0; k < NV; k++) {
                int i = lane + k * 32;
                if (i < D4) var += sq_dev4(v[k], mean);
            }
            for (int o = 16; o > 0; o >>= 1) var += __shfl_xor_sync(0xffffffffu, var, o);
            inv = (float)(1.0 / sqrt(var / D + eps));
            fm = (float)mean;
        }
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = lane + k * 32;
            if (i < D4) norm_out4(yr, v[k], i, rms, w, b, inv, fm);
        }
#pragma unroll
        for (int k = 0; k < NV; k++) v[k] = vn[k];
    }
}

/* One patch row per block: rgb of image img_of(p) [H, W, 3] u8 -> dst row p [3][temporal][patch][patch] as
 * tkr_image_patchify computes it: v = f32(f32(u - f32(mean * 255)) / f32(std * 255)), each op rounded
 * on its own (no FMA contraction), the frame repeated over t. */
template <typename T>
__global__ void k_patchify(T *dst, const uint8_t *rgb, const int *seq, const int32_t *pos, int P, const int *img_w,
                           const int *img_off, int n_images, int patch, int temporal) {
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    int p = blockIdx.x;
    int lo = 0, hi = n_images - 1; /* the image: last i with seq[i] <= p */
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (seq[mid] <= p) lo = mid;
        else hi = mid - 1;
    }
    const int prow = pos[p], pcol = pos[P + p], W = img_w[lo], plane = patch * patch;
    const uint8_t *img = rgb + img_off[lo];
    T *d = dst + (size_t)p * 3 * temporal * plane;
    for (int e = threadIdx.x; e < 3 * plane; e += blockDim.x) {
        int c = e / plane, r = e % plane, py = r / patch, px = r % patch;
        unsigned u = img[((size_t)(prow * patch + py) * W + (size_t)pcol * patch + px) * 3 + c];
        float v = __fdiv_rn(__fsub_rn((float)u, __fmul_rn(mean[c], 255.0f)), __fmul_rn(stdv[c], 255.0f));
        for (int t = 0; t < temporal; t++) d[(size_t)(c * temporal + t) * plane + r] = from_f<T>(v);
    }
}

} // namespace

void patchify(bool fp32, void *dst, const uint8_t *rgb, const int *seq, const int32_t *pos, int P, const int *img_w,
              const int *img_off, int n_images, int patch, int temporal, cudaStream_t s) {
    if (P <= 0) return;
    if (fp32)
        k_patchify<float><<<P, 256, 0, s>>>((float *)dst, rgb, seq, pos, P, img_w, img_off, n_images, patch, temporal);
    else
        k_patchify<__nv_bfloat16><<<P, 256, 0, s>>>((__nv_bfloat16 *)dst, rgb, seq, pos, P, img_w, img_off, n_images,
                                                     patch, temporal);
}

void convert_to(bool fp32, void *dst, const void *src, tkr_dtype dt, size_t n, cudaStream_t s) {
    if (fp32) k_convert<float><<<blocks_for(n, 256), 256, 0, s>>>((float *)dst, src, (int)dt, n);
    else k_convert<__nv_bfloat16><<<blocks_for(n, 256), 256, 0, s>>>((__nv_bfloat16 *)dst, src, (int)dt, n);
}

void embed_gather(bool fp32, float *x, const void *embed, const int32_t *ids, const int32_t *extra_row,
                  const float *extra, int T, int D, cudaStream_t s) {
    if (T <= 0) return;
    if (fp32) k_embed_gather<float><<<T, 256, 0, s>>>(x, (const float *)embed, ids, extra_row, extra, D);
    else k_embed_gather<__nv_bfloat16><<<T, 256, 0, s>>>(x, (const __nv_bfloat16 *)embed, ids, extra_row, extra, D);
}

void add_norm(bool fp32, float *x, const float *a, const float *abias, int M, int D, bool rms, const float *w,
              const float *b, float eps, void *y, bool out_f32, int n_sm, cudaStream_t s) {
    if (M <= 0) return;
    bool vec = D % 4 == 0 && D <= 4 * 256 * 4 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)a & 15) == 0 &&
               ((uintptr_t)abias & 15) == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)y & 15) == 0;
    bool wide = D > 4 * 256 * 2; /* the 7B's 3584: four float4 per thread */
    if (vec && D <= 4 * 32 * 12 && M >= 1024) { /* warps over rows; few rows keep one block a row */
        unsigned nb = (unsigned)((M + 3) / 4), cap = 4u * (unsigned)(n_sm > 0 ? n_sm : 1);
        if (nb > cap) nb = cap;
        float *yf = (float *)y;
        __nv_bfloat16 *yg = (__nv_bfloat16 *)y;
        const bool of = fp32 || out_f32, n10 = D <= 4 * 32 * 10; /* 10 or 12 float4 a lane */
        if (n10 && of) k_add_norm_wp<float, 10><<<nb, 128, 0, s>>>(x, a, abias, M, D, rms, w, b, eps, yf);
        else if (n10) k_add_norm_wp<__nv_bfloat16, 10><<<nb, 128, 0, s>>>(x, a, abias, M, D, rms, w, b, eps, yg);
        else if (of) k_add_norm_wp<float, 12><<<nb, 128, 0, s>>>(x, a, abias, M, D, rms, w, b, eps, yf);
        else k_add_norm_wp<__nv_bfloat16, 12><<<nb, 128, 0, s>>>(x, a, abias, M, D, rms, w, b, eps, yg);
        return;
    }
    if (vec && wide && (fp32 || out_f32))
        k_add_norm_v<float, 4><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (float *)y);
    else if (vec && wide)
        k_add_norm_v<__nv_bfloat16, 4><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (__nv_bfloat16 *)y);
    else if (vec && (fp32 || out_f32))
        k_add_norm_v<float, 2><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (float *)y);
    else if (vec) k_add_norm_v<__nv_bfloat16, 2><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (__nv_bfloat16 *)y);
    else if (fp32 || out_f32) k_add_norm<float><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (float *)y);
    else k_add_norm<__nv_bfloat16><<<M, 256, 0, s>>>(x, a, abias, D, rms, w, b, eps, (__nv_bfloat16 *)y);
}

void bias_act(bool fp32, const float *x, const float *bias, int M, int N, Act act, void *y, bool out_f32,
              cudaStream_t s) {
    size_t n = (size_t)M * N;
    if (n == 0) return;
    if (fp32 || out_f32) k_bias_act<float, float><<<blocks_for(n, 256), 256, 0, s>>>(x, bias, M, N, act, (float *)y);
    else k_bias_act<float, __nv_bfloat16><<<blocks_for(n, 256), 256, 0, s>>>(x, bias, M, N, act, (__nv_bfloat16 *)y);
}

void bias_act_g(bool fp32, const void *x, const float *bias, int M, int N, Act act, void *y, cudaStream_t s) {
    size_t n = (size_t)M * N;
    if (n == 0) return;
    if (!fp32 && act == ACT_QUICK_GELU && x == y && N % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
        ((uintptr_t)bias & 15) == 0) {
        const size_t it = n / 8;
        __nv_bfloat16 *yg = (__nv_bfloat16 *)y;
        if (it <= 0x7fff0000u) k_bias_quick_gelu_g<<<ew_blocks(it), 256, 0, s>>>(yg, bias, N, (uint32_t)it);
        else k_bias_quick_gelu_g<<<ew_blocks(it), 256, 0, s>>>(yg, bias, N, it);
        return;
    }
    if (fp32)
        k_bias_act<float, float><<<blocks_for(n, 256), 256, 0, s>>>((const float *)x, bias, M, N, act, (float *)y);
    else
        k_bias_act<__nv_bfloat16, __nv_bfloat16><<<blocks_for(n, 256), 256, 0, s>>>(
            (const __nv_bfloat16 *)x, bias, M, N, act, (__nv_bfloat16 *)y);
}

void silu_mul(bool fp32, const void *x, int M, int I, void *y, cudaStream_t s) {
    size_t n = (size_t)M * I;
    if (n == 0) return;
    if (!fp32 && I % 8 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)y & 15) == 0) {
        k_silu_mul_g<<<M, 256, 0, s>>>((const __nv_bfloat16 *)x, I, (__nv_bfloat16 *)y);
        return;
    }
    if (fp32) k_silu_mul<float><<<blocks_for(n, 256), 256, 0, s>>>((const float *)x, M, I, (float *)y);
    else
        k_silu_mul<__nv_bfloat16><<<blocks_for(n, 256), 256, 0, s>>>((const __nv_bfloat16 *)x, M, I,
                                                                     (__nv_bfloat16 *)y);
}

void gather_rows(void *dst, const void *src, const int32_t *rows, int M, size_t row_bytes, cudaStream_t s) {
    if (M <= 0) return;
    k_gather<<<M, 256, 0, s>>>((uint16_t *)dst, (const uint16_t *)src, rows, row_bytes / 2);
}

void to_g(bool fp32, void *dst, int ld_dst, const float *src, int ld_src, int M, int N, cudaStream_t s) {
    size_t n = (size_t)M * N;
    if (n == 0) return;
    if (fp32) k_to_g<float><<<blocks_for(n, 256), 256, 0, s>>>((float *)dst, ld_dst, src, ld_src, M, N);
    else k_to_g<__nv_bfloat16><<<blocks_for(n, 256), 256, 0, s>>>((__nv_bfloat16 *)dst, ld_dst, src, ld_src, M, N);
}

void softmax_rows(bool fp32, const float *S, int rows, int L, float scale, bool causal, void *P, cudaStream_t s) {
    if (rows <= 0) return;
    if (fp32) k_softmax<float><<<rows, 256, 0, s>>>(S, L, scale, causal, (float *)P);
    else k_softmax<__nv_bfloat16><<<rows, 256, 0, s>>>(S, L, scale, causal, (__nv_bfloat16 *)P);
}

} // namespace tkrcuda

/* cuda_rope.cu - the rotary embeddings on the GPU: M-RoPE for the text decoder, the 2D rotary of
 * the vision tower (NeoX pairs: column j with j + hd/2 of each rotated head), with the q|k|v bias
 * add folded in. Float32 arithmetic; bf16 rows are rounded once at the end. Three paths:
 * bias_rope on the float q|k|v (fp32 mode, the last text layer's rows), bias_rope_g on the bf16
 * copy the flash kernel reads (angles per row in each layer), and rope_table + rope_apply_g (the
 * default with the flash kernel: the angles once per pass, same bits as bias_rope_g). */
#include "backend/cuda/cuda_internal.h"

#include <math.h>

namespace tkrcuda {

namespace {

/* bias_rope: one block per row r (token rows[r], or r), float32 in place, the bf16 copy into xb. */
__global__ void k_bias_rope(float *x, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
                            const int32_t *pos, int pos_T, const int32_t *rows, const float *inv,
                            const int *axis, __nv_bfloat16 *xb) {
    int r = blockIdx.x;
    int tok = rows ? rows[r] : r;
    float *xr = x + (size_t)r * row_stride;
    __nv_bfloat16 *br = xb ? xb + (size_t)r * row_stride : nullptr;
    int half = hd / 2, pairs = n_rope_heads * half;
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        int h = p / half, j = p % half;
        int c0 = h * hd + j, c1 = c0 + half;
        float a = xr[c0], b = xr[c1];
        if (bias) {
            a += bias[c0];
            b += bias[c1];
        }
        float ang = (float)pos[(size_t)axis[j] * pos_T + tok] * inv[j];
        float c = cosf(ang), s = sinf(ang);
        float y0 = a * c - b * s, y1 = b * c + a * s;
        xr[c0] = y0;
        xr[c1] = y1;
        if (br) {
            br[c0] = __float2bfloat16_rn(y0);
            br[c1] = __float2bfloat16_rn(y1);
        }
    }
    for (int c = n_rope_heads * hd + threadIdx.x; c < n_cols; c += blockDim.x) {
        float v = xr[c] + (bias ? bias[c] : 0.0f);
        if (bias) xr[c] = v;
        if (br) br[c] = __float2bfloat16_rn(v);
    }
}

/* The rotary on a bf16 row in place: bias added to the first n_cols columns, heads
 * [0, n_rope_heads) rotated in NeoX pairs. cos/sin per frequency once per row (shared memory),
 * not once per head. */
__global__ void k_bias_rope_g(__nv_bfloat16 *x, int row_stride, int n_cols, const float *bias, int n_rope_heads,
                              int hd, const int32_t *pos, int pos_T, const float *inv, const int *axis) {
    extern __shared__ float cs[]; /* [half] cos, [half] sin */
    const int r = blockIdx.x, half = hd / 2;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float ang = (float)pos[(size_t)axis[j] * pos_T + r] * inv[j];
        cs[j] = cosf(ang);
        cs[half + j] = sinf(ang);
    }
    __syncthreads();
    __nv_bfloat16 *xr = x + (size_t)r * row_stride;
    const int pairs2 = n_rope_heads * half / 2; /* two pairs per thread step (half is even) */
    for (int p = threadIdx.x; p < pairs2; p += blockDim.x) {
        int h = (2 * p) / half, j = (2 * p) % half;
        int c0 = h * hd + j, c1 = c0 + half;
        float2 a = __bfloat1622float2(*(__nv_bfloat162 *)&xr[c0]);
        float2 b = __bfloat1622float2(*(__nv_bfloat162 *)&xr[c1]);
        if (bias) {
            a.x += bias[c0];
            a.y += bias[c0 + 1];
            b.x += bias[c1];
            b.y += bias[c1 + 1];
        }
        float cx = cs[j], cy = cs[j + 1], sx = cs[half + j], sy = cs[half + j + 1];
        float2 y0 = make_float2(a.x * cx - b.x * sx, a.y * cy - b.y * sy);
        float2 y1 = make_float2(b.x * cx + a.x * sx, b.y * cy + a.y * sy);
        *(__nv_bfloat162 *)&xr[c0] = __float22bfloat162_rn(y0);
        *(__nv_bfloat162 *)&xr[c1] = __float22bfloat162_rn(y1);
    }
    if (bias)
        for (int c = n_rope_heads * hd + 2 * threadIdx.x; c < n_cols; c += 2 * blockDim.x) {
            float2 v = __bfloat1622float2(*(__nv_bfloat162 *)&xr[c]);
            v.x += bias[c];
            v.y += bias[c + 1];
            *(__nv_bfloat162 *)&xr[c] = __float22bfloat162_rn(v);
        }
}

/* cs [M][half] = (cos, sin) of pos[axis[j]][r] * inv[j]: the rotary angles of one pass, made
 * once and read by every layer, instead of k_bias_rope_g's trig and block barrier per row in each
 * of the 28-32 layers. The same float operations as k_bias_rope_g, so the same bits. */
__global__ void k_rope_table(float2 *cs, int M, int half, const int32_t *pos, int pos_T, const float *inv,
                             const int *axis) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)M * half;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / half), j = (int)(i % half);
        float ang = (float)pos[(size_t)axis[j] * pos_T + r] * inv[j];
        cs[i] = make_float2(cosf(ang), sinf(ang));
    }
}

/* Loads 8 floats (two float4) from p (16-byte aligned). */
__device__ inline void load8(float (&v)[8], const float *p) {
    float4 a = ((const float4 *)p)[0], b = ((const float4 *)p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/* One item of k_rope_apply_g: 8 columns at c0 of a rotated head with the matching 8 at c1 = c0 +
 * half, angles cr (4 float4 of cos, sin, cos, sin). */
__device__ inline void rope8(__nv_bfloat16 *xr, int c0, int c1, const float *bias, const float4 *cr) {
    Pack8 pa, pb;
    pa.u = *(const uint4 *)&xr[c0];
    pb.u = *(const uint4 *)&xr[c1];
    float ba[8] = {0}, bb[8] = {0};
    if (bias) {
        load8(ba, bias + c0);
        load8(bb, bias + c1);
    }
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float4 c = cr[q];
        float2 a = __bfloat1622float2(pa.h[q]), b = __bfloat1622float2(pb.h[q]);
        if (bias) {
            a.x += ba[2 * q];
            a.y += ba[2 * q + 1];
            b.x += bb[2 * q];
            b.y += bb[2 * q + 1];
        }
        float2 y0 = make_float2(a.x * c.x - b.x * c.y, a.y * c.z - b.y * c.w);
        float2 y1 = make_float2(b.x * c.x + a.x * c.y, b.y * c.z + a.y * c.w);
        pa.h[q] = __float22bfloat162_rn(y0);
        pb.h[q] = __float22bfloat162_rn(y1);
    }
    *(uint4 *)&xr[c0] = pa.u;
    *(uint4 *)&xr[c1] = pb.u;
}

/* k_bias_rope_g's work from a rope table, as a flat grid of 16-byte items: item k of row r is 8
 * columns of the first half of a rotated head with the matching 8 of its second half, or (with
 * a bias) 8 columns past the rotated heads that only get their bias. half % 8 == 0, rows and
 * bias 16-byte aligned (rope_apply_g checks). */
__global__ void k_rope_apply_g(__nv_bfloat16 *x, int M, int row_stride, int n_cols, const float *bias,
                               int n_rope_heads, int hd, const float2 *cs) {
    const int half = hd / 2, hc = half / 8, n_rot = n_rope_heads * hc;
    const int per_row = n_rot + (bias ? (n_cols - n_rope_heads * hd) / 8 : 0);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)M * per_row;
         i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / per_row), k = (int)(i % per_row);
        __nv_bfloat16 *xr = x + (size_t)r * row_stride;
        if (k < n_rot) {
            const int h = k / hc, j = (k % hc) * 8, c0 = h * hd + j;
            rope8(xr, c0, c0 + half, bias, (const float4 *)(cs + (size_t)r * half + j));
            continue;
        }
        const int c = n_rope_heads * hd + (k - n_rot) * 8;
        Pack8 p;
        p.u = *(const uint4 *)&xr[c];
        float bv[8];
        load8(bv, bias + c);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float2 v = __bfloat1622float2(p.h[q]);
            v.x += bv[2 * q];
            v.y += bv[2 * q + 1];
            p.h[q] = __float22bfloat162_rn(v);
        }
        *(uint4 *)&xr[c] = p.u;
    }
}

} // namespace

void bias_rope(float *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
               const int32_t *pos, int pos_T, const int32_t *rows, const float *inv, const int *axis,
               cudaStream_t s, __nv_bfloat16 *xb) {
    if (M <= 0) return;
    k_bias_rope<<<M, 128, 0, s>>>(x, row_stride, n_cols, bias, n_rope_heads, hd, pos, pos_T, rows, inv, axis, xb);
}

void bias_rope_g(__nv_bfloat16 *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
                 const int32_t *pos, int pos_T, const float *inv, const int *axis, cudaStream_t s) {
    if (M <= 0) return;
    k_bias_rope_g<<<M, 256, sizeof(float) * hd, s>>>(x, row_stride, n_cols, bias, n_rope_heads, hd, pos, pos_T, inv,
                                                      axis);
}

void rope_table(float2 *cs, int M, int hd, const int32_t *pos, int pos_T, const float *inv, const int *axis,
                cudaStream_t s) {
    size_t n = (size_t)M * (hd / 2);
    if (n == 0) return;
    k_rope_table<<<blocks_for(n, 256), 256, 0, s>>>(cs, M, hd / 2, pos, pos_T, inv, axis);
}

bool rope_apply_g(__nv_bfloat16 *x, int M, int row_stride, int n_cols, const float *bias, int n_rope_heads, int hd,
                  const float2 *cs, cudaStream_t s) {
    const int half = hd / 2, tail = n_cols - n_rope_heads * hd;
    if (half % 8 || row_stride % 8 || tail < 0 || tail % 8 || ((uintptr_t)x & 15) || ((uintptr_t)bias & 15) ||
        ((uintptr_t)cs & 15))
        return false;
    if (M <= 0) return true;
    size_t n = (size_t)M * (n_rope_heads * (half / 8) + (bias ? tail / 8 : 0));
    k_rope_apply_g<<<blocks_for(n, 256), 256, 0, s>>>(x, M, row_stride, n_cols, bias, n_rope_heads, hd, cs);
    return true;
}

} // namespace tkrcuda

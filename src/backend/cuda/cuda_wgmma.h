/* cuda_wgmma.h - what the wgmma flash kernels share (cuda_flash_wg.cu, cuda_flash_pp.cu): the
 * wgmma.mma_async wrappers, shared-memory descriptors, mbarriers, the K/V tile loader in the
 * core-matrix and the swizzled layouts, and one warpgroup's rows (WgRows). Device code for sm_90a only: empty in
 * every other compilation pass. nvcc only. */
#ifndef TKR_CUDA_WGMMA_H
#define TKR_CUDA_WGMMA_H

#include "backend/cuda/cuda_flash_util.h"

#include <cuda.h>
#include <cudaTypedefs.h>

namespace tkrcuda {
namespace wg {

using namespace flash;

/* k_flash_pp (cuda_flash_pp.cu) at head size 80 with 128-key tiles in 3 stages; layout 0: K/V
 * tiles in load_tile's core-matrix layout, 1: swizzled (load_tile_sw), 2: swizzled, loaded by TMA
 * (1 where the buffers do not fit TMA). */
tkr_status flash_pp_hd80(const AttnArgs &a, cudaStream_t s, int layout);

/* The TMA descriptors of the K and V parts of the q|k|v rows: dims [0, 64) of a head as boxes of
 * 64 x BK with the 128-byte swizzle, the rest (64 dims, or 16 at head size 80) as boxes of
 * 64 x BK with the 128-byte swizzle or 16 x BK with the 32-byte one: load_tile_sw's layout,
 * written by the copy engine. */
struct TmaMaps {
    CUtensorMap ka, kb, va, vb;
};
/* Encodes them (cuda_flash_pp.cu) for tiles of bk keys: false when the driver has no encoder or
 * the buffers do not fit TMA (head sizes 80 and 128, 16-byte aligned bases and pitch, the rows
 * known: AttnArgs::total_rows). */
bool make_maps(const AttnArgs &a, int bk, TmaMaps *tm);
/* A 2D map of rows x cols bf16 (row pitch stride elements) read in boxes of box_cols x box_rows
 * (cuda_flash_pp.cu); false where the driver refuses it. */
bool encode_map(PFN_cuTensorMapEncodeTiled_v12000 enc, CUtensorMap *m, const void *base, int cols, int rows,
                int stride, int box_cols, int box_rows, CUtensorMapSwizzle sw);

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

/* N = 16, on d [0, 8) of the given accumulators (the last 16 columns of a head of 80). */
template <int TB>
__device__ inline void wgmma_n16(float *d, const uint32_t (&a)[4], uint64_t desc, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, %14;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d), "n"(TB));
}

/* D [64, 256] (+)= A [64, 16] B [16, 256], both from shared memory by descriptor, K-major (the
 * gate|up GEMM of cuda_gemm_swiglu.cu). */
__device__ inline void wgmma_ss_n256(float (&d)[128], uint64_t da, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, "
                 "%14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, "
                 "%28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "
                 "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "
                 "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, "
                 "%70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
                 "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, "
                 "%98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, "
                 "%126, %127"
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
                   "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
                   "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
                   "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),
                   "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),
                   "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),
                   "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
                   "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),
                   "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]),
                   "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]),
                   "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),
                   "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db), "r"(scale_d));
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

/* mbarriers in shared memory: init (one thread, before a block barrier), arrive, wait for the
 * phase of the given parity to complete; the arrive of a thread's cp.asyncs once they land. */
__device__ inline uint32_t saddr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ inline void mbar_init(uint64_t *b, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(saddr(b)), "r"(count) : "memory");
}
__device__ inline void mbar_arrive(uint64_t *b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(saddr(b)) : "memory");
}
__device__ inline void mbar_wait(uint64_t *b, int parity) {
    asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W;\n}\n" ::"r"(
                     saddr(b)),
                 "r"(parity)
                 : "memory");
}
__device__ inline void cp_arrive(uint64_t *b) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(saddr(b)) : "memory");
}
/* Named barriers: wait until n threads arrived at id (this one included); arrive without waiting. */
__device__ inline void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ inline void bar_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

/* 2D tile copy global -> shared by the tensor memory accelerator; completes bytes on bar. */
__device__ inline void tma_load_2d(void *dst, const CUtensorMap *map, int col, int row, uint64_t *bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
                 "%3}], [%4];\n" ::"r"(saddr(dst)),
                 "l"((uint64_t)map), "r"(col), "r"(row), "r"(saddr(bar))
                 : "memory");
}
/* This thread's arrival on b, announcing bytes more to come from TMA copies. */
__device__ inline void mbar_expect_tx(uint64_t *b, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(saddr(b)), "r"(bytes) : "memory");
}
/* One stage by TMA (one thread): keys [row, row + BK) of the K and V parts at column col into
 * Kd (K, then V at Kd + BK HD, load_tile_sw's layout); bar (count 1) completes when all land.
 * Rows past the sequence come from the next one (finite values the softmax masks), zeros past
 * the buffer. */
template <int HD, int BK>
__device__ void tma_stage(const TmaMaps &tm, __nv_bfloat16 *Kd, int col, int row, uint64_t *bar) {
    __nv_bfloat16 *Vd = Kd + BK * HD;
    mbar_expect_tx(bar, 2 * BK * HD * (uint32_t)sizeof(__nv_bfloat16));
    tma_load_2d(Kd, &tm.ka, col, row, bar);
    tma_load_2d(Kd + BK * 64, &tm.kb, col + 64, row, bar);
    tma_load_2d(Vd, &tm.va, col, row, bar);
    tma_load_2d(Vd + BK * 64, &tm.vb, col + 64, row, bar);
}

/* A shared-memory matrix descriptor, no swizzle: start address, then the byte distances between
 * core matrices adjacent along K (lbo) and along M or N (sbo), each in 16-byte units. */
__device__ inline uint64_t smem_desc(const void *p, uint32_t lbo, uint32_t sbo) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32;
}

/* A swizzled descriptor: mode 1 = 128-byte swizzle (rows of 128 bytes, 8-row atoms of 1024), 3 =
 * 32-byte (rows of 32, atoms of 256). The hardware XORs the 16-byte chunk index of an address
 * (bits 4-6) with its bits 7-9 (128B) or bit 4 with bit 7 (32B): absolute addresses, so each
 * region starts on its atom size, and a start inside a row (the k-steps) keeps that alignment. */
__device__ inline uint64_t smem_desc_sw(const void *p, uint32_t lbo, uint32_t sbo, uint32_t mode) {
    return smem_desc(p, lbo, sbo) | (uint64_t)mode << 62;
}

/* The swizzled tile (heads of 80 or 128), for K and for V alike: dims [0, 64) as BK rows of 128
 * bytes, 128B-swizzled (element (j, d) at j 64 + ((d / 8) ^ (j % 8)) 8 + d % 8); then dims [64,
 * 128) the same way (head size 128), or dims [64, 80) as BK rows of 32 bytes, 32B-swizzled (at
 * BK 64 + j 16 + (((d - 64) / 8) ^ (j / 4 % 2)) 8 + d % 8). Rows of 128 bytes are how Hopper's
 * tensor cores read shared memory at full rate: the no-swizzle core-matrix layout (load_tile)
 * held k_flash_pp at 350 TFLOP/s, these tiles 426 (16 x 5120 patches). As B of Q K^T (K-major)
 * the k-steps 0-3 read the first part, the rest the second; as B of P V (MN-major) N = HD splits
 * into a wgmma of N 64 on the first part and one of N 64 or 16 on the second. */
template <int HD, int BK, int NT, class FS>
__device__ void load_tile_sw(const FS &fs, const AttnArgs &a, __nv_bfloat16 *Ks, int k0, int tid) {
    static_assert(HD == 80 || HD == 128, "swizzled tiles: head sizes 80 and 128");
    constexpr int CH = HD / 8;
    __nv_bfloat16 *Vs = Ks + BK * HD;
    for (int i = tid; i < BK * CH; i += NT) {
        const int j = i / CH, c = i - j * CH; /* key, 16-byte chunk: a row is contiguous in memory */
        const bool ok = k0 + j < fs.L;
        const size_t off = ok ? (size_t)(k0 + j) * a.kv_stride + c * 8 : 0;
        int so;
        if (c < 8) so = j * 64 + ((c ^ (j & 7)) << 3);
        else if (HD == 128) so = BK * 64 + j * 64 + (((c - 8) ^ (j & 7)) << 3);
        else so = BK * 64 + j * 16 + (((c - 8) ^ ((j >> 2) & 1)) << 3);
        cp16(Ks + so, fs.kb + off, ok);
        cp16(Vs + so, fs.vb + off, ok);
    }
}

/* Keys and values [k0, k0 + BK) into Ks (K, then V at Ks + BK HD; core-matrix layout, zeros
 * past L), asynchronously. Lanes 8i..8i+7 fill one core matrix (8 keys of one 16-byte column):
 * conflict-free stores, and the two halves of each 32-byte global sector in one request. */
template <int HD, int BK, int NT, class FS>
__device__ void load_tile(const FS &fs, const AttnArgs &a, __nv_bfloat16 *Ks, int k0, int tid) {
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

/* load_tile_sw (SW) or load_tile: the K/V tile layout a kernel was built for. */
template <bool SW, int HD, int BK, int NT, class FS>
__device__ void load_kv(const FS &fs, const AttnArgs &a, __nv_bfloat16 *Ks, int k0, int tid) {
    if constexpr (SW) load_tile_sw<HD, BK, NT>(fs, a, Ks, k0, tid);
    else load_tile<HD, BK, NT>(fs, a, Ks, k0, tid);
}

/* One warpgroup's rows: their Q fragments, output accumulators and softmax state; the two
 * products of a tile as asynchronous wgmma groups (reading K/V tiles in load_tile_sw's layout
 * when SW, else load_tile's), and the softmax between them. */
template <int HD, int BK, bool SW = false> struct WgRows {
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
    /* S = Q K^T for the K tile at Ks: one committed wgmma group. Swizzled tiles: k-steps 0-3
     * in the first part (128B), the rest in the second (128B at head size 128, 32B at 80). */
    __device__ void issue_s(float (&s)[BK / 2], const __nv_bfloat16 *Ks) {
#pragma unroll
        for (int i = 0; i < BK / 2; i++) reg_fence(s[i]); /* no zeroing: the first step has scale_d = 0 */
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
            if constexpr (!SW) wgmma<BK, 0>(s, qf[kk], smem_desc(Ks + kk * 128, K_LBO, K_SBO), kk);
            else if (kk < 4) wgmma<BK, 0>(s, qf[kk], smem_desc_sw(Ks + kk * 16, 16, 1024, 1), kk);
            else if (HD == 128) wgmma<BK, 0>(s, qf[kk], smem_desc_sw(Ks + BK * 64 + (kk - 4) * 16, 16, 1024, 1), 1);
            else wgmma<BK, 0>(s, qf[kk], smem_desc_sw(Ks + BK * 64, 16, 256, 3), 1);
        }
        wg_commit();
    }
    /* The online softmax of the finished S of the tile at k0, in place: s becomes P (float), the
     * row sums are updated; *c0, *c1 are the factors O must be scaled by before P V is added. */
    __device__ void softmax(const AttnArgs &a, int L, int k0, float sl2, int t, float (&s)[BK / 2], float *c0,
                            float *c1) {
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
        *c0 = ex2(fmaf(m0, sl2, -b0));
        *c1 = ex2(fmaf(m1, sl2, -b1));
        m0 = mx0;
        m1 = mx1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            s[4 * nb] = ex2(fmaf(s[4 * nb], sl2, -b0));
            s[4 * nb + 1] = ex2(fmaf(s[4 * nb + 1], sl2, -b0));
            s[4 * nb + 2] = ex2(fmaf(s[4 * nb + 2], sl2, -b1));
            s[4 * nb + 3] = ex2(fmaf(s[4 * nb + 3], sl2, -b1));
            ps0 += s[4 * nb] + s[4 * nb + 1];
            ps1 += s[4 * nb + 2] + s[4 * nb + 3];
        }
        l0 = l0 * *c0 + ps0;
        l1 = l1 * *c1 + ps1;
    }
    /* O scaled by c0 (row g), c1 (row g + 8); P (s) packed as A fragments: keys 16 kk + [0, 8) in
     * registers 0 (row g), 1 (g + 8); + [8, 16) in 2, 3 */
    __device__ void rescale_pack(float c0, float c1, const float (&s)[BK / 2], uint32_t (&pa)[BK / 16][4]) {
#pragma unroll
        for (int nd = 0; nd < HD / 8; nd++) {
            o[4 * nd] *= c0;
            o[4 * nd + 1] *= c0;
            o[4 * nd + 2] *= c1;
            o[4 * nd + 3] *= c1;
        }
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            pa[nb >> 1][(nb & 1) * 2] = pack_bf16(s[4 * nb], s[4 * nb + 1]);
            pa[nb >> 1][(nb & 1) * 2 + 1] = pack_bf16(s[4 * nb + 2], s[4 * nb + 3]);
        }
    }
    /* O += P V for the V tile at Vs: one committed wgmma group. Swizzled tiles: per 16 keys,
     * N 64 on dims [0, 64) (o [0, 32)), then N 64 or 16 on the rest (o [32, HD / 2)); MN-major,
     * the offset along N (lbo) goes unused with one atom per wgmma, so both offsets are the one
     * between 8-key groups. */
    __device__ void issue_pv(const uint32_t (&pa)[BK / 16][4], const __nv_bfloat16 *Vs) {
#pragma unroll
        for (int i = 0; i < HD / 2; i++) reg_fence(o[i]);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            if constexpr (!SW) {
                wgmma<HD, 1>(o, pa[kk], smem_desc(Vs + kk * 2 * CH * 64, V_LBO, V_SBO), 1);
            } else {
                wgmma_n64<1>(*reinterpret_cast<float(*)[32]>(&o[0]), pa[kk], smem_desc_sw(Vs + kk * 1024, 1024, 1024, 1),
                             1);
                if constexpr (HD == 128)
                    wgmma_n64<1>(*reinterpret_cast<float(*)[32]>(&o[32]), pa[kk],
                                 smem_desc_sw(Vs + BK * 64 + kk * 1024, 1024, 1024, 1), 1);
                else wgmma_n16<1>(&o[32], pa[kk], smem_desc_sw(Vs + BK * 64 + kk * 256, 256, 256, 3), 1);
            }
        }
        wg_commit();
    }
    /* softmax, rescale_pack and issue_pv in a row */
    __device__ void softmax_issue_pv(const AttnArgs &a, int L, int k0, float sl2, int t, float (&s)[BK / 2],
                                     const __nv_bfloat16 *Vs) {
        float c0, c1;
        uint32_t pa[BK / 16][4];
        softmax(a, L, k0, sl2, t, s, &c0, &c1);
        rescale_pack(c0, c1, s, pa);
        issue_pv(pa, Vs);
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

} // namespace wg
} // namespace tkrcuda

#endif

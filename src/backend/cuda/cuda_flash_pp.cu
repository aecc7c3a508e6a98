/* cuda_flash_pp.cu - flash attention version 4's kernel for the vision tower (head size 80):
 * FlashAttention-3's structure on wgmma (see cuda_flash_wg.cu for the layouts). sm_90a only.
 * Measured on the H200 at 16 x 5120 patches (tests/gpu/test_flash --bench): 489 TFLOP/s with
 * swizzled tiles loaded by TMA, 426-433 loaded by cp.async, 345-350 with core-matrix tiles
 * (version 3: 303-317); swizzled 128-key tiles in 3 stages beat 4 stages (411) and 64-key tiles
 * in 5 (368); with core-matrix tiles, 3 stages of 128 keys beat 64-key tiles in 4 (330) and 128
 * in 2 (233). */
#include "backend/cuda/cuda_wgmma.h"

#include <cudaTypedefs.h>

namespace tkrcuda {
namespace wg {

namespace {

/* FlashAttention-3's structure: 2 consumer warpgroups of 64 rows and a producer warpgroup that
 * streams K/V tiles into ST stages (LD 2: one thread issues 4 TMA copies a stage, which may bring
 * rows of the next sequence past this one's end, and zeros past the buffer; the softmax sets
 * their scores to -inf whatever the keys hold, and their values meet P = 0: finite, as V is a
 * projection of a normed row, so 0 V = 0 unless the weights themselves are not finite, which
 * spoils every item anyway; LD 0-1: the warpgroup's cp.asyncs, zeros past the end) (each stage's
 * "full" mbarrier completes when its copies land; the consumers arrive on its "empty" one when
 * done with it) and gives its registers
 * to the consumers (setmaxnreg: 40 for it, 232 for them; launched at 168). The consumers take
 * turns to issue their products (named barriers 2, 3), so one's softmax runs beside the other's
 * products, and each issues P(j - 1) V(j - 1) together with S(j), so that product runs during
 * softmax(j). Every warpgroup computes every tile of the block (causal rows before a tile see
 * masked keys only): wgmma under conditions the compiler cannot resolve is serialized. */
template <int HD, int BK, int ST, int LD>
__global__ void __launch_bounds__(384, 1) k_flash_pp(AttnArgs a, const __grid_constant__ TmaMaps tm) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 128, NC = 256, TILE = BK * HD;
    constexpr bool SW = LD >= 1, TMA = LD == 2;
    extern __shared__ __align__(128) unsigned char smraw[];
    /* swizzled tiles need 1024-byte aligned stages: the stages first, from the first 1024-byte
     * boundary (the launch asks for 1024 bytes more) */
    unsigned char *sm = smraw;
    if constexpr (SW) sm += (1024 - (saddr(smraw) & 1023)) & 1023;
    __nv_bfloat16 *KV = (__nv_bfloat16 *)sm;                          /* ST stages x (K, V)  */
    uint64_t *full = (uint64_t *)(sm + sizeof(__nv_bfloat16) * 2 * ST * TILE), *empty = full + ST;
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)((unsigned char *)full + 128); /* [BQ][HD + PAD]      */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3, wg = warp >> 2;
    FlashSeq<HD, NC> fs;
    if (!fs.setup(a, BQ, BK)) return;
    if (tid == 0) {
        for (int i = 0; i < ST; i++) {
            mbar_init(&full[i], TMA ? 1 : 128);
            mbar_init(&empty[i], NC);
        }
        fence_proxy_async(); /* the barriers visible to the TMA copies' completions */
    }
    __syncthreads();
    const int n = fs.ntiles;
    if (wg == 2) { /* the producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if constexpr (TMA) { /* one thread issues the copies */
            if (tid != NC) return;
            const int col = fs.h / (a.n_heads / a.n_kv) * HD;
            for (int j = 0; j < n; j++) {
                const int sidx = j % ST;
                if (j >= ST) mbar_wait(&empty[sidx], (j / ST - 1) & 1);
                tma_stage<HD, BK>(tm, KV + sidx * 2 * TILE, col, fs.start + j * BK, &full[sidx]);
            }
        } else {
            for (int j = 0; j < n; j++) {
                const int sidx = j % ST;
                if (j >= ST) mbar_wait(&empty[sidx], (j / ST - 1) & 1);
                load_kv<SW, HD, BK, 128>(fs, a, KV + sidx * 2 * TILE, j * BK, tid - NC);
                cp_arrive(&full[sidx]);
            }
            cp_wait<0>();
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int turn = 2 + wg, next = 3 - wg;
    fs.load_q(a, Qs, BQ, tid);
    cp_commit();
    cp_wait<0>();
    bar_sync(1, NC); /* the consumers only */
    WgRows<HD, BK, SW> w;
    w.init(fs.q0, warp, g);
    w.load_q(Qs, fs.q0, t);
    if (wg == 1) bar_arrive(2, NC); /* warpgroup 0 goes first */
    float s[BK / 2], c0, c1;
    uint32_t pa[BK / 16][4];
    /* tile 0: S only (the loop body below is straight-line code) */
    mbar_wait(&full[0], 0);
    fence_proxy_async();
    bar_sync(turn, NC);
    w.issue_s(s, KV);
    bar_arrive(next, NC);
    wg_wait<0>();
    w.softmax(a, fs.L, 0, fs.sl2, t, s, &c0, &c1);
    w.rescale_pack(c0, c1, s, pa);
    for (int j = 1; j < n; j++) {
        const __nv_bfloat16 *Ks = KV + (j % ST) * 2 * TILE, *Vp = KV + ((j - 1) % ST) * 2 * TILE + TILE;
        mbar_wait(&full[j % ST], (j / ST) & 1);
        fence_proxy_async();
        bar_sync(turn, NC);
        w.issue_s(s, Ks);
        w.issue_pv(pa, Vp);
        bar_arrive(next, NC);
        wg_wait<1>(); /* S(j); P(j - 1) V(j - 1) still runs */
        w.softmax(a, fs.L, j * BK, fs.sl2, t, s, &c0, &c1);
        wg_wait<0>();
        w.fence_o();
        mbar_arrive(&empty[(j - 1) % ST]);
        w.rescale_pack(c0, c1, s, pa);
    }
    /* the last tile's P V; warpgroup 1's final hand-over would have no taker */
    bar_sync(turn, NC);
    w.issue_pv(pa, KV + ((n - 1) % ST) * 2 * TILE + TILE);
    if (wg == 0) bar_arrive(next, NC);
    wg_wait<0>();
    w.fence_o();
    mbar_arrive(&empty[(n - 1) % ST]);
    w.store(a, fs, t);
#endif
}

} // namespace

bool encode_map(PFN_cuTensorMapEncodeTiled_v12000 enc, CUtensorMap *m, const void *base, int cols, int rows,
                int stride, int box_cols, int box_rows, CUtensorMapSwizzle sw) {
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)stride * 2};
    const cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows}, es[2] = {1, 1};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(base), dims, strides, box, es,
               CU_TENSOR_MAP_INTERLEAVE_NONE, sw, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* The maps of the TMA loaders (head sizes 80 and 128): false without an encoder
 * (AttnArgs::tma_encode) or where the buffers do not fit TMA (16-byte aligned bases and pitch;
 * the rows must be known). */
bool make_maps(const AttnArgs &a, int bk, TmaMaps *tm) {
    if ((a.hd != 80 && a.hd != 128) || !a.tma_encode || a.total_rows <= 0 || ((uintptr_t)a.kh & 15) ||
        ((uintptr_t)a.vh & 15) || (a.kv_stride * 2) % 16)
        return false;
    PFN_cuTensorMapEncodeTiled_v12000 enc = (PFN_cuTensorMapEncodeTiled_v12000)a.tma_encode;
    const int cols = a.n_kv * a.hd, R = a.total_rows, S = a.kv_stride, rest = a.hd - 64;
    const CUtensorMapSwizzle sw2 = rest == 64 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_32B;
    return encode_map(enc, &tm->ka, a.kh, cols, R, S, 64, bk, CU_TENSOR_MAP_SWIZZLE_128B) &&
           encode_map(enc, &tm->kb, a.kh, cols, R, S, rest, bk, sw2) &&
           encode_map(enc, &tm->va, a.vh, cols, R, S, 64, bk, CU_TENSOR_MAP_SWIZZLE_128B) &&
           encode_map(enc, &tm->vb, a.vh, cols, R, S, rest, bk, sw2);
}

namespace {

template <int HD, int BK, int ST, int LD>
tkr_status launch_pp(const AttnArgs &a, cudaStream_t s) {
    TmaMaps tm;
    memset(&tm, 0, sizeof tm);
    if constexpr (LD == 2)
        if (!make_maps(a, BK, &tm)) return launch_pp<HD, BK, ST, 1>(a, s);
    const size_t smem = (LD ? 1024 : 0) + 128 +
                        sizeof(__nv_bfloat16) * ((size_t)128 * (HD + PAD) + 2 * ST * (size_t)BK * HD);
    if (cudaFuncSetAttribute(k_flash_pp<HD, BK, ST, LD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + 127) / 128, a.n_heads, a.n_seq);
    k_flash_pp<HD, BK, ST, LD><<<grid, 384, smem, s>>>(a, tm);
    return TKR_OK;
}

} // namespace

tkr_status flash_pp_hd80(const AttnArgs &a, cudaStream_t s, int layout) {
    if (layout == 2) return launch_pp<80, 128, 3, 2>(a, s);
    return layout == 1 ? launch_pp<80, 128, 3, 1>(a, s) : launch_pp<80, 128, 3, 0>(a, s);
}

} // namespace wg

/* Looked up once (the backend's init), not at every launch of k_flash_pp: 32 a vision pass. */
void *tma_encoder() {
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
        cudaGetLastError();
        return nullptr;
    }
    return fn;
}

} // namespace tkrcuda

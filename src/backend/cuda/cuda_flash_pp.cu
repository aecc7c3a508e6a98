/* cuda_flash_pp.cu - flash attention version 4's kernel for the vision tower (head size 80):
 * FlashAttention-3's structure on wgmma (see cuda_flash_wg.cu for the layouts). sm_90a only.
 * Measured on the H200 at 16 x 5120 patches (tests/gpu/test_flash --bench): 426-431 TFLOP/s with
 * swizzled tiles against 345-350 with core-matrix tiles and version 3's 303-317; swizzled
 * 128-key tiles in 3 stages beat 4 stages (411) and 64-key tiles in 5 (368); with core-matrix
 * tiles, 3 stages of 128 keys beat 64-key tiles in 4 (330) and 128 in 2 (233). */
#include "backend/cuda/cuda_wgmma.h"

namespace tkrcuda {
namespace wg {

namespace {

/* FlashAttention-3's structure: 2 consumer warpgroups of 64 rows and a producer warpgroup that
 * streams K/V tiles with cp.async into ST stages (each stage's "full" mbarrier completes when its
 * copies land; the consumers arrive on its "empty" one when done with it) and gives its registers
 * to the consumers (setmaxnreg: 40 for it, 232 for them; launched at 168). The consumers take
 * turns to issue their products (named barriers 2, 3), so one's softmax runs beside the other's
 * products, and each issues P(j - 1) V(j - 1) together with S(j), so that product runs during
 * softmax(j). Every warpgroup computes every tile of the block (causal rows before a tile see
 * masked keys only): wgmma under conditions the compiler cannot resolve is serialized. */
template <int HD, int BK, int ST, bool SW>
__global__ void __launch_bounds__(384, 1) k_flash_pp(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 128, NC = 256, TILE = BK * HD;
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
            mbar_init(&full[i], 128);
            mbar_init(&empty[i], NC);
        }
    }
    __syncthreads();
    const int n = fs.ntiles;
    if (wg == 2) { /* the producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        for (int j = 0; j < n; j++) {
            const int sidx = j % ST;
            if (j >= ST) mbar_wait(&empty[sidx], (j / ST - 1) & 1);
            if constexpr (SW) load_tile_sw<HD, BK, 128>(fs, a, KV + sidx * 2 * TILE, j * BK, tid - NC);
            else load_tile<HD, BK, 128>(fs, a, KV + sidx * 2 * TILE, j * BK, tid - NC);
            cp_arrive(&full[sidx]);
        }
        cp_wait<0>();
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int turn = 2 + wg, next = 3 - wg;
    fs.load_q(a, Qs, BQ, tid);
    cp_commit();
    cp_wait<0>();
    bar_sync(1, NC); /* the consumers only */
    WgRows<HD, BK> w;
    w.init(fs.q0, warp, g);
    w.load_q(Qs, fs.q0, t);
    auto issue_s = [](WgRows<HD, BK> &r, float (&sc)[BK / 2], const __nv_bfloat16 *Ks) {
        if constexpr (SW) r.issue_s_sw(sc, Ks);
        else r.issue_s(sc, Ks);
    };
    auto issue_pv = [](WgRows<HD, BK> &r, const uint32_t (&p)[BK / 16][4], const __nv_bfloat16 *Vs) {
        if constexpr (SW) r.issue_pv_sw(p, Vs);
        else r.issue_pv(p, Vs);
    };
    if (wg == 1) bar_arrive(2, NC); /* warpgroup 0 goes first */
    float s[BK / 2], c0, c1;
    uint32_t pa[BK / 16][4];
    /* tile 0: S only (the loop body below is straight-line code) */
    mbar_wait(&full[0], 0);
    fence_proxy_async();
    bar_sync(turn, NC);
    issue_s(w, s, KV);
    bar_arrive(next, NC);
    wg_wait<0>();
    w.softmax(a, fs.L, 0, fs.sl2, t, s, &c0, &c1);
    w.rescale_pack(c0, c1, s, pa);
    for (int j = 1; j < n; j++) {
        const __nv_bfloat16 *Ks = KV + (j % ST) * 2 * TILE, *Vp = KV + ((j - 1) % ST) * 2 * TILE + TILE;
        mbar_wait(&full[j % ST], (j / ST) & 1);
        fence_proxy_async();
        bar_sync(turn, NC);
        issue_s(w, s, Ks);
        issue_pv(w, pa, Vp);
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
    issue_pv(w, pa, KV + ((n - 1) % ST) * 2 * TILE + TILE);
    if (wg == 0) bar_arrive(next, NC);
    wg_wait<0>();
    w.fence_o();
    mbar_arrive(&empty[(n - 1) % ST]);
    w.store(a, fs, t);
#endif
}

template <int HD, int BK, int ST, bool SW>
tkr_status launch_pp(const AttnArgs &a, cudaStream_t s) {
    const size_t smem = (SW ? 1024 : 0) + 128 +
                        sizeof(__nv_bfloat16) * ((size_t)128 * (HD + PAD) + 2 * ST * (size_t)BK * HD);
    if (cudaFuncSetAttribute(k_flash_pp<HD, BK, ST, SW>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + 127) / 128, a.n_heads, a.n_seq);
    k_flash_pp<HD, BK, ST, SW><<<grid, 384, smem, s>>>(a);
    return TKR_OK;
}

} // namespace

tkr_status flash_pp_hd80(const AttnArgs &a, cudaStream_t s, bool swizzled) {
    return swizzled ? launch_pp<80, 128, 3, true>(a, s) : launch_pp<80, 128, 3, false>(a, s);
}

} // namespace wg
} // namespace tkrcuda

/* cuda_flash_pp.cu - flash attention version 4's kernel for the vision tower (head size 80):
 * FlashAttention-3's structure on wgmma (see cuda_flash_wg.cu for the layouts). sm_90a only.
 * Measured on the H200 at 16 x 5120 patches: 344-350 TFLOP/s against version 3's 315-317
 * (tests/gpu/test_flash --bench); 128-key tiles in 3 stages beat 64-key tiles in 4 (330) and
 * 128 in 2 (233). */
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
template <int HD, int BK, int ST>
__global__ void __launch_bounds__(384, 1) k_flash_pp(AttnArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BQ = 128, NC = 256, TILE = BK * HD;
    extern __shared__ __align__(128) unsigned char smraw[];
    uint64_t *full = (uint64_t *)smraw, *empty = full + ST; /* [ST] each                     */
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)(smraw + 128);    /* [BQ][HD + PAD]                */
    __nv_bfloat16 *KV = Qs + BQ * (HD + PAD);               /* ST stages x (K, V) core layout */
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
            load_tile<HD, BK, 128>(fs, a, KV + sidx * 2 * TILE, j * BK, tid - NC);
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

template <int HD, int BK, int ST>
tkr_status launch_pp(const AttnArgs &a, cudaStream_t s) {
    const size_t smem = 128 + sizeof(__nv_bfloat16) * ((size_t)128 * (HD + PAD) + 2 * ST * (size_t)BK * HD);
    if (cudaFuncSetAttribute(k_flash_pp<HD, BK, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) !=
        cudaSuccess)
        return TKR_ERR_UNSUPPORTED;
    dim3 grid((a.max_len + 127) / 128, a.n_heads, a.n_seq);
    k_flash_pp<HD, BK, ST><<<grid, 384, smem, s>>>(a);
    return TKR_OK;
}

} // namespace

tkr_status flash_pp_hd80(const AttnArgs &a, cudaStream_t s) { return launch_pp<80, 128, 3>(a, s); }

} // namespace wg
} // namespace tkrcuda

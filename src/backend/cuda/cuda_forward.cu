/* cuda_forward.cu - the text decoder and the vision tower on the GPU, one pass each.
 *
 * The same computation as model/text.c and model/vision.c (read those first), with these
 * differences: the inputs (token ids, positions, image features or patches) go up once through
 * pinned memory and everything stays on the device until the pooled rows come back; q|k|v and
 * gate|up are single fused GEMMs; residual adds, biases and the next norm are fused into one
 * row kernel; the text embedding rows are gathered on the device. The last decoder layer runs
 * its query, o_proj and MLP on each sequence's last row only, as on the CPU. */
#include "backend/cuda/cuda_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <thread>

namespace tkrcuda {

namespace {

/* Adds the host wall time of one pass to the profile (TKR_CUDA_PROFILE=1) when it goes out of scope. */
struct PassTimer {
    Backend *be;
    int vision;
    std::chrono::steady_clock::time_point t0;
    PassTimer(Backend *b, int v) : be(b), vision(v), t0(std::chrono::steady_clock::now()) {}
    ~PassTimer() {
        if (be->prof)
            prof_pass(be, vision, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
};

/* Carves aligned pieces out of one device (or pinned host) allocation. */
struct Carver {
    char *base;
    size_t off = 0;
    explicit Carver(void *b) : base((char *)b) {}
    template <typename T> T *take(size_t bytes) {
        T *p = (T *)(base ? base + off : nullptr);
        off += align256(bytes);
        return p;
    }
};

/* The device copy of b's image rows (see Backend::vis_keep), or NULL when they must go up. */
const float *kept_rows(const Backend *be, const tkr_text_batch *b, int D) {
    if (!be->keep_vision || !be->vis_host || !b->extra || b->n_extra <= 0) return nullptr;
    uintptr_t lo = (uintptr_t)be->vis_host, hi = lo + be->vis_rows * D * sizeof(float);
    uintptr_t e0 = (uintptr_t)b->extra, e1 = e0 + (size_t)b->n_extra * D * sizeof(float);
    if (e0 < lo || e1 > hi || (e0 - lo) % sizeof(float)) return nullptr;
    const float *h = be->vis_host, *t = h + be->vis_rows * D - 4;
    for (int i = 0; i < 4; i++) /* the block still holds what the vision pass wrote */
        if (memcmp(&h[i], &be->vis_probe[i], 4) || memcmp(&t[i], &be->vis_probe[4 + i], 4)) return nullptr;
    return (const float *)be->vis_keep.p + (b->extra - be->vis_host);
}

/* Writes one byte of each 4 KiB page of dst (a block about to be overwritten whole): the page
 * faults of a freshly allocated output block (about 60 ms for the 100 MB of 64 images' features
 * on the accelerator machine) then happen while the GPU is still busy with the pass. */
void prefault(void *dst, size_t bytes) {
    volatile char *p = (volatile char *)dst;
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 0;
    if (bytes) p[bytes - 1] = 0;
}

/* Runs work(0) .. work(nt - 1) (nt <= 8), work(0) here and the others on their own threads; a
 * thread that cannot start runs its work here instead. */
template <typename Work> void run_on_threads(int nt, const Work &work) {
    std::thread th[8];
    int started = 0;
    for (int t = 1; t < nt && t < 8; t++) {
        try {
            th[started] = std::thread(work, t);
            started++;
        } catch (...) {
            work(t);
        }
    }
    work(0);
    for (int i = 0; i < started; i++) th[i].join();
}

/* memcpy on up to 8 threads for large blocks (one thread copies pinned memory at ~10 GB/s). */
void host_copy(void *dst, const void *src, size_t bytes) {
    const size_t min_part = (size_t)8 << 20;
    int n = (int)(bytes / min_part);
    n = n < 1 ? 1 : n > 8 ? 8 : n;
    const size_t part = (bytes / n + 63) & ~(size_t)63;
    run_on_threads(n, [=](int t) {
        size_t o = part * t, len = o >= bytes ? 0 : (bytes - o < part ? bytes - o : part);
        if (len) memcpy((char *)dst + o, (const char *)src + o, len);
    });
}

/* n blocks, block i: bytes[i] from src[i] to dst[i]; on up to 8 threads when there are many bytes
 * (the vision pass's resized images into the pinned input buffer). */
void host_copy_many(int n, char *const *dst, const void *const *src, const size_t *bytes) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += bytes[i];
    int nt = (int)(total / ((size_t)4 << 20));
    nt = nt < 1 ? 1 : nt > 8 ? 8 : nt > n ? n : nt;
    run_on_threads(nt, [=](int t) {
        for (int i = t; i < n; i += nt) memcpy(dst[i], src[i], bytes[i]);
    });
}

tkr_status finish(Backend *be, void *host_dst, const void *dev_src, size_t bytes, tkr_error *err) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_fail(err, e, "kernel launch");
    e = cudaMemcpyAsync(be->host_out.p, dev_src, bytes, cudaMemcpyDeviceToHost, be->stream);
    if (e == cudaSuccess && bytes >= ((size_t)1 << 20)) prefault(host_dst, bytes); /* while the GPU works */
    if (e == cudaSuccess) e = cudaStreamSynchronize(be->stream);
    if (e != cudaSuccess) return cuda_fail(err, e, "forward pass");
    host_copy(host_dst, be->host_out.p, bytes);
    if (be->prof) prof_pass_done(be);
    return TKR_OK;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        tkr_status st_ = (call);                                                                   \
        if (st_ != TKR_OK) return st_;                                                             \
    } while (0)

tkr_status attn_status(tkr_status st, int hd, tkr_error *err) {
    if (st == TKR_OK) return TKR_OK;
    return tkr_fail(err, st, "CUDA attention: head size %d is not supported (at most 256)", hd);
}

/* Full attention inside one image of L patches with cuBLAS: S = Q K^T per head (float), row
 * softmax, O = P V. qkv [.., 3E] of G (rows of this image from `start`), att [.., E] of G.
 * Heads go in chunks so that S stays under 2 GiB. */
tkr_status gemm_attention(Backend *be, const void *qkv, void *att, int start, int L, int E, int H, int hd,
                          tkr_error *err) {
    bool f = be->fp32;
    size_t g = gsize(f);
    size_t per_head = (size_t)L * L * (f ? 4 : 6);
    size_t limit = (size_t)2 << 30;
    int hc = (int)(limit / per_head);
    hc = hc < 1 ? 1 : hc > H ? H : hc;
    TRY(ensure(be->att_s, per_head * hc, false, err));
    float *S = (float *)be->att_s.p;
    void *P = f ? (void *)S : (void *)((char *)S + (size_t)hc * L * L * 4);
    cudaDataType_t gt = f ? CUDA_R_32F : CUDA_R_16BF;
    const char *base = (const char *)qkv + (size_t)start * 3 * E * g;
    const float one = 1.0f, zero = 0.0f;
    long long LL = (long long)L * L;
    for (int h0 = 0; h0 < H; h0 += hc) {
        int nb = H - h0 < hc ? H - h0 : hc;
        const char *q = base + (size_t)h0 * hd * g, *k = q + (size_t)E * g, *v = q + (size_t)2 * E * g;
        cublasStatus_t st = cublasGemmStridedBatchedEx(
            be->blas, CUBLAS_OP_T, CUBLAS_OP_N, L, L, hd, &one, k, gt, 3 * E, hd, q, gt, 3 * E, hd, &zero, S,
            CUDA_R_32F, L, LL, nb, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(err, st, "attention scores");
        softmax_rows(f, S, nb * L, L, 1.0f / sqrtf((float)hd), false, P, be->stream);
        char *o = (char *)att + ((size_t)start * E + (size_t)h0 * hd) * g;
        st = cublasGemmStridedBatchedEx(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, L, L, &one, v, gt, 3 * E, hd, P, gt,
                                        L, LL, &zero, o, gt, E, hd, nb, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(err, st, "attention values");
    }
    return TKR_OK;
}

/* bf16 mode uses the tensor-core kernel where it applies (TKR_CUDA_FLASH=0 turns it off). */
bool use_flash(const Backend *be, int hd) { return !be->fp32 && be->flash && flash_supported(hd); }

/* bf16_only: q, k, v exist only as the bf16 copies (the float ones were never written), so the
 * float kernel cannot stand in for the tensor-core one. */
tkr_status run_attention(Backend *be, const AttnArgs &a0, bool bf16_only = false) {
    AttnArgs a = a0;
    a.variant = be->flash_variant == 4 && !be->wgmma ? 3 : be->flash_variant;
    a.v2_min_len = be->flash2_min;
    a.wg_cfg = be->wg_cfg;
    a.wg_min_len = be->wgmma ? be->wg_min : 0;
    a.tma_encode = be->tma_encode;
    a.longest_first = be->causal_lpt;
    a.wide_causal = be->causal_wide;
    if (use_flash(be, a.hd) && !a.last_row_only) {
        tkr_status st = flash_attention(a, be->stream);
        if (st != TKR_ERR_UNSUPPORTED || bf16_only) return st;
    }
    return attention(be->fp32, a, be->stream);
}

} // namespace

tkr_status text_forward(Backend *be, const tkr_text_batch *b, float *out, tkr_error *err) {
    PassTimer pass_timer(be, 0);
    const tkr_text_config *c = &be->m->cfg.text;
    const int T = b->T, n = b->n_seq, D = c->hidden_size, H = c->num_heads, KV = c->num_kv_heads;
    const int hd = c->head_dim, I = c->intermediate_size, QKV = (H + 2 * KV) * hd, NL = c->num_layers;
    const bool f = be->fp32;
    const size_t g = gsize(f);
    const float eps = (float)c->rms_norm_eps;
    if (T <= 0 || n <= 0 || b->seq_start[0] != 0 || b->seq_start[n] != T)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "CUDA text batch: bad sequence layout");
    int max_len = 0;
    for (int s = 0; s < n; s++) {
        int len = b->seq_start[s + 1] - b->seq_start[s];
        if (len <= 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "CUDA text batch: empty sequence %d", s);
        if (len > max_len) max_len = len;
    }
    for (int t = 0; t < T; t++) {
        if (b->ids[t] < 0 || b->ids[t] >= c->vocab_size)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "token id %d outside the vocabulary", b->ids[t]);
        if (b->extra_row && (b->extra_row[t] >= b->n_extra || (b->extra_row[t] >= 0 && !b->extra)))
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "CUDA text batch: bad image feature row");
    }
    const size_t nT = (size_t)T, nn = (size_t)n;
    const float *kept = b->extra_row ? kept_rows(be, b, D) : nullptr;
    const size_t n_extra = b->extra_row && !kept ? (size_t)b->n_extra : 0; /* rows to upload */
    /* inputs: ids, extra_row, pos [3][T], seq [n + 1], last [n]; extra rows */
    size_t in_int = nT * 5 + (nn + 1) + nn;
    size_t in_bytes = align256(in_int * 4) + align256(n_extra * D * 4);
    Carver sizer(nullptr);
    sizer.take<char>(in_bytes);
    const bool fl = use_flash(be, hd);
    size_t acts[] = {nT * D * 4, nT * D * g, nT * QKV * 4, nT * H * hd * g, nT * D * 4, nT * 2 * I * g, nT * I * g,
                     nn * D * g, nn * H * hd * 4, nn * D * 4, nn * D * 4, fl ? nT * QKV * 2 : 0,
                     fl && be->rope_tab ? nT * (hd / 2) * sizeof(float2) : 0};
    for (size_t a : acts) sizer.take<char>(a);
    TRY(ensure(be->act, sizer.off, false, err));
    TRY(ensure(be->host_in, in_bytes, true, err));
    TRY(ensure(be->host_out, nn * D * 4, true, err));

    auto t_pack = std::chrono::steady_clock::now();
    int32_t *hi = (int32_t *)be->host_in.p;
    memcpy(hi, b->ids, nT * 4);
    if (b->extra_row) memcpy(hi + nT, b->extra_row, nT * 4);
    memcpy(hi + 2 * nT, b->pos, nT * 3 * 4);
    memcpy(hi + 5 * nT, b->seq_start, (nn + 1) * 4);
    for (int s = 0; s < n; s++) hi[5 * nT + nn + 1 + s] = b->seq_start[s + 1] - 1;
    if (n_extra) memcpy((char *)hi + align256(in_int * 4), b->extra, n_extra * D * 4);
    if (be->prof)
        prof_pass(be, 2, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_pack).count());

    Carver cv(be->act.p);
    char *din = cv.take<char>(in_bytes);
    const int32_t *ids = (const int32_t *)din, *extra_row = ids + nT, *pos = ids + 2 * nT;
    const int *seq = (const int *)(ids + 5 * nT);
    const int32_t *last = (const int32_t *)(seq + nn + 1);
    const float *extra = kept ? kept : (const float *)(din + align256(in_int * 4));
    float *x = cv.take<float>(acts[0]);
    void *xn = cv.take<char>(acts[1]);
    float *qkv = cv.take<float>(acts[2]);
    void *att = cv.take<char>(acts[3]);
    float *tmp = cv.take<float>(acts[4]);
    void *gu = cv.take<char>(acts[5]);
    void *gg = cv.take<char>(acts[6]);
    void *xq = cv.take<char>(acts[7]);
    float *ql = cv.take<float>(acts[8]);
    float *xl = cv.take<float>(acts[9]);
    float *od = cv.take<float>(acts[10]);
    __nv_bfloat16 *qkvb = fl ? cv.take<__nv_bfloat16>(acts[11]) : nullptr; /* [T, QKV] for flash */
    float2 *rtab = acts[12] ? cv.take<float2>(acts[12]) : nullptr;       /* [T, hd / 2] (cos, sin) */
    cudaStream_t st = be->stream;
    cudaError_t e = cudaMemcpyAsync(din, hi, in_bytes, cudaMemcpyHostToDevice, st);
    if (e != cudaSuccess) return cuda_fail(err, e, "input upload");
    if (rtab && NL > 1) PROF("t.rope", rope_table(rtab, T, hd, pos, T, be->text_inv, be->text_axis, st));

    PROF("t.embed", gather_embeddings(be, x, ids, b->extra_row ? extra_row : nullptr, extra, T, D, st));
    if (NL == 0) {
        gather_rows(xl, x, last, n, (size_t)D * 4, st);
        add_norm(f, xl, nullptr, nullptr, n, D, true, be->final_norm, nullptr, eps, od, true, be->n_sm, st);
        return finish(be, out, od, nn * D * 4, err);
    }
    PROF("t.norm",
         add_norm(f, x, nullptr, nullptr, T, D, true, be->layers[0].in_norm, nullptr, eps, xn, false, be->n_sm, st));
    for (int l = 0; l + 1 < NL; l++) {
        const TextLayer &L = be->layers[l];
        if (qkvb) { /* flash: q|k|v straight to bf16 (the bias in the GEMM where cuBLASLt can), rotated in place */
            bool bd = false;
            PROF("t.gemm.qkv", TRY(linear(be, xn, T, L.qkv, qkvb, err, 0, true, false, &bd)));
            const float *qb = bd ? nullptr : L.qkv.b;
            PROF("t.rope", if (!rtab || !rope_apply_g(qkvb, T, QKV, QKV, qb, H + KV, hd, rtab, st))
                               bias_rope_g(qkvb, T, QKV, QKV, qb, H + KV, hd, pos, T, be->text_inv, be->text_axis, st));
        } else {
            PROF("t.gemm.qkv", TRY(linear(be, xn, T, L.qkv, qkv, err)));
            PROF("t.rope", bias_rope(qkv, T, QKV, QKV, L.qkv.b, H + KV, hd, pos, T, nullptr, be->text_inv,
                                     be->text_axis, st, qkvb));
        }
        AttnArgs a = {qkv, qkv + (size_t)H * hd, qkv + (size_t)(H + KV) * hd, QKV, QKV, att, H * hd, H, KV, hd,
                      seq, n, max_len, true, false, INT_MAX, INT_MAX};
        a.total_rows = T;
        if (qkvb) {
            a.qh = qkvb;
            a.kh = qkvb + (size_t)H * hd;
            a.vh = qkvb + (size_t)(H + KV) * hd;
        }
        PROF("t.attn", TRY(attn_status(run_attention(be, a, qkvb != nullptr), hd, err)));
        /* the residual adds: in the GEMM (x += att W^T, beta = 1), or in the norm kernel (TKR_CUDA_RESID=0) */
        const bool rg = be->resid_gemm;
        PROF("t.gemm.o", TRY(linear(be, att, T, L.o, rg ? x : tmp, err, 0, false, rg)));
        PROF("t.norm", add_norm(f, x, rg ? nullptr : tmp, nullptr, T, D, true, L.post_norm, nullptr, eps, xn, false,
                                be->n_sm, st));
        PROF("t.gemm.gateup", TRY(gate_up_silu(be, xn, T, L.gateup, gu, gg, err)));
        PROF("t.gemm.down", TRY(linear(be, gg, T, L.down, rg ? x : tmp, err, 0, false, rg)));
        PROF("t.norm", add_norm(f, x, rg ? nullptr : tmp, nullptr, T, D, true, be->layers[l + 1].in_norm, nullptr, eps,
                                xn, false, be->n_sm, st));
    }
    /* the last layer: keys and values for every row, the rest for each sequence's last row */
    const TextLayer &L = be->layers[NL - 1];
    Linear qL = linear_rows(L.qkv, 0, H * hd, f), kvL = linear_rows(L.qkv, H * hd, 2 * KV * hd, f);
    PROF("t.last", TRY(linear(be, xn, T, kvL, qkv, err)));
    PROF("t.last", bias_rope(qkv, T, 2 * KV * hd, 2 * KV * hd, kvL.b, KV, hd, pos, T, nullptr, be->text_inv, be->text_axis, st));
    gather_rows(xq, xn, last, n, (size_t)D * g, st);
    PROF("t.last", TRY(linear(be, xq, n, qL, ql, err)));
    bias_rope(ql, n, H * hd, H * hd, qL.b, H, hd, pos, T, last, be->text_inv, be->text_axis, st);
    AttnArgs a = {ql, qkv, qkv + (size_t)KV * hd, H * hd, 2 * KV * hd, att, H * hd, H, KV, hd,
                  seq, n, max_len, true, true, INT_MAX, INT_MAX};
    PROF("t.last", TRY(attn_status(attention(f, a, st), hd, err)));
    {
        ProfScope last_scope(be, "t.last");
        gather_rows(xl, x, last, n, (size_t)D * 4, st);
        TRY(linear(be, att, n, L.o, tmp, err));
        add_norm(f, xl, tmp, nullptr, n, D, true, L.post_norm, nullptr, eps, xn, false, be->n_sm, st);
        TRY(gate_up_silu(be, xn, n, L.gateup, gu, gg, err));
        TRY(linear(be, gg, n, L.down, tmp, err));
        add_norm(f, xl, tmp, nullptr, n, D, true, be->final_norm, nullptr, eps, od, true, be->n_sm, st);
    }
    return finish(be, out, od, nn * D * 4, err);
}

tkr_status vision_forward(Backend *be, int n_images, const float *const *patches, const uint8_t *const *rgb,
                          const int *grid_h, const int *grid_w, float *out, tkr_error *err) {
    PassTimer pass_timer(be, 1);
    const tkr_vision_config *v = &be->m->cfg.vision;
    const int E = v->embed_dim, H = v->num_heads, hd = E / H, F = v->mlp_hidden, ms = v->spatial_merge_size;
    const int ms2 = ms * ms, D = be->m->cfg.text.hidden_size;
    const int pd = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    const bool f = be->fp32;
    const size_t g = gsize(f);
    const float eps = 1e-6f;
    if (n_images <= 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "CUDA vision: no images");
    if (rgb && v->in_channels != 3) return tkr_fail(err, TKR_ERR_UNSUPPORTED, "CUDA vision: RGB input needs 3 channels");
    const int ps = v->patch_size;
    size_t P = 0;
    int max_len = 0;
    bool any_gemm = false;
    for (int i = 0; i < n_images; i++) {
        if (grid_h[i] <= 0 || grid_w[i] <= 0 || grid_h[i] % ms || grid_w[i] % ms)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "CUDA vision: bad grid %dx%d", grid_h[i], grid_w[i]);
        int len = grid_h[i] * grid_w[i];
        P += (size_t)len;
        if (len > max_len) max_len = len;
        if (len >= be->gemm_attn_min && len <= be->gemm_attn_max) any_gemm = true;
    }
    const bool fl = use_flash(be, hd);
    if (fl) any_gemm = false; /* the tensor-core kernel takes every image */
    if (P > (size_t)INT_MAX / 4) return tkr_fail(err, TKR_ERR_LIMIT, "CUDA vision: too many patches");
    const size_t rgb_bytes = rgb ? P * ps * ps * 3 : 0; /* the images, packed */
    if (rgb_bytes > (size_t)INT_MAX) return tkr_fail(err, TKR_ERR_LIMIT, "CUDA vision: too many pixels");
    const int nP = (int)P, Q = nP / ms2;
    /* seq [n + 1], pos [2][P], and with rgb: img_w [n], img_off [n] */
    size_t in_int = (size_t)(n_images + 1) + 2 * P + (rgb ? 2 * (size_t)n_images : 0);
    size_t in_bytes = align256(in_int * 4) + align256(rgb ? rgb_bytes : P * pd * 4);
    size_t FM = (size_t)(F > E ? F : E);
    size_t acts[] = {P * E * 4, P * E * g, P * 3 * E * 4, (any_gemm || fl) && !f ? P * 3 * E * g : 0, P * E * g, P * E * 4,
                     P * FM * 4, P * FM * g, f && !rgb ? 0 : P * pd * g,
                     fl && be->rope_tab ? P * (hd / 2) * sizeof(float2) : 0};
    Carver sizer(nullptr);
    sizer.take<char>(in_bytes);
    for (size_t a : acts) sizer.take<char>(a);
    TRY(ensure(be->act, sizer.off, false, err));
    TRY(ensure(be->host_in, in_bytes, true, err));
    TRY(ensure(be->host_out, (size_t)Q * D * 4, true, err));
    be->vis_host = nullptr; /* the kept output is replaced below */
    TRY(ensure(be->vis_keep, (size_t)Q * D * 4, false, err));

    /* inputs: seq [n + 1], pos [2][P] (row, column of each patch in 2x2-block raster order) */
    int32_t *hi = (int32_t *)be->host_in.p;
    int32_t *hpos = hi + n_images + 1;
    hi[0] = 0;
    size_t p = 0;
    for (int i = 0; i < n_images; i++) {
        hi[i + 1] = hi[i] + grid_h[i] * grid_w[i];
        for (int bh = 0; bh < grid_h[i] / ms; bh++)
            for (int bw = 0; bw < grid_w[i] / ms; bw++)
                for (int mh = 0; mh < ms; mh++)
                    for (int mw = 0; mw < ms; mw++, p++) {
                        hpos[p] = bh * ms + mh;
                        hpos[P + p] = bw * ms + mw;
                    }
    }
    auto t_pack = std::chrono::steady_clock::now();
    char *hp = (char *)hi + align256(in_int * 4);
    /* the images' blocks, copied on several threads: [n] destinations, sources, lengths */
    void *cbuf = malloc((size_t)n_images * (sizeof(char *) + sizeof(void *) + sizeof(size_t)));
    if (!cbuf) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    char **cdst = (char **)cbuf;
    const void **csrc = (const void **)(cdst + n_images);
    size_t *clen = (size_t *)(csrc + n_images);
    for (int i = 0; i < n_images; i++) {
        size_t bytes = (size_t)grid_h[i] * grid_w[i] * (rgb ? (size_t)ps * ps * 3 : pd * 4);
        if (rgb) {
            hi[n_images + 1 + 2 * P + i] = grid_w[i] * ps;
            hi[n_images + 1 + 2 * P + n_images + i] = (int32_t)(hp - ((char *)hi + align256(in_int * 4)));
        }
        cdst[i] = hp;
        csrc[i] = rgb ? (const void *)rgb[i] : (const void *)patches[i];
        clen[i] = bytes;
        hp += bytes;
    }
    host_copy_many(n_images, cdst, csrc, clen);
    free(cbuf);
    if (be->prof)
        prof_pass(be, 3, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_pack).count());

    Carver cv(be->act.p);
    char *din = cv.take<char>(in_bytes);
    const int *seq = (const int *)din;
    const int32_t *pos = (const int32_t *)din + n_images + 1;
    const float *pf = (const float *)(din + align256(in_int * 4));
    float *x = cv.take<float>(acts[0]);
    void *xn = cv.take<char>(acts[1]);
    float *qkv = cv.take<float>(acts[2]);
    void *qkvg = f ? (void *)qkv : cv.take<char>(acts[3]);
    void *att = cv.take<char>(acts[4]);
    float *tmp = cv.take<float>(acts[5]);
    float *mlp = cv.take<float>(acts[6]);
    void *gg = cv.take<char>(acts[7]);
    void *pg = f && !rgb ? (void *)pf : cv.take<char>(acts[8]);
    float2 *rtab = acts[9] ? cv.take<float2>(acts[9]) : nullptr; /* [P, hd / 2] (cos, sin) */
    float *od = (float *)be->vis_keep.p; /* [Q, D], kept for the text pass (Backend::vis_keep) */
    cudaStream_t st = be->stream;
    cudaError_t e = cudaMemcpyAsync(din, hi, in_bytes, cudaMemcpyHostToDevice, st);
    if (e != cudaSuccess) return cuda_fail(err, e, "input upload");
    if (rtab) PROF("v.rope", rope_table(rtab, nP, hd, pos, nP, be->vis_inv, be->vis_axis, st));

    if (rgb) {
        const int *img_w = (const int *)(pos + 2 * P);
        PROF("v.patch", patchify(f, pg, (const uint8_t *)pf, seq, pos, nP, img_w, img_w + n_images, n_images, ps,
                                 v->temporal_patch_size, st));
    } else if (!f) {
        PROF("v.patch", to_g(f, pg, pd, pf, pd, nP, pd, st));
    }
    PROF("v.patch", TRY(linear(be, pg, nP, be->patch, x, err)));
    const float *w0 = v->depth > 0 ? be->blocks[0].n1w : be->lnq_w;
    const float *b0 = v->depth > 0 ? be->blocks[0].n1b : be->lnq_b;
    add_norm(f, x, nullptr, nullptr, nP, E, false, w0, b0, eps, xn, false, be->n_sm, st);
    for (int bi = 0; bi < v->depth; bi++) {
        const VisionBlock &B = be->blocks[bi];
        __nv_bfloat16 *qb = fl ? (__nv_bfloat16 *)qkvg : nullptr; /* [P, 3E] bf16 for flash */
        if (qb) { /* flash: q|k|v straight to bf16 (the bias in the GEMM where cuBLASLt can), rotated in place */
            bool bd = false;
            PROF("v.gemm.qkv", TRY(linear(be, xn, nP, B.qkv, qb, err, 0, true, false, &bd)));
            const float *bq = bd ? nullptr : B.qkv.b;
            PROF("v.rope", if (!rtab || !rope_apply_g(qb, nP, 3 * E, 3 * E, bq, 2 * H, hd, rtab, st))
                               bias_rope_g(qb, nP, 3 * E, 3 * E, bq, 2 * H, hd, pos, nP, be->vis_inv, be->vis_axis, st));
        } else {
            PROF("v.gemm.qkv", TRY(linear(be, xn, nP, B.qkv, qkv, err)));
            PROF("v.rope", bias_rope(qkv, nP, 3 * E, 3 * E, B.qkv.b, 2 * H, hd, pos, nP, nullptr, be->vis_inv,
                                     be->vis_axis, st, qb));
        }
        AttnArgs a = {qkv, qkv + E, qkv + 2 * E, 3 * E, 3 * E, att, E, H, H, hd, seq, n_images, max_len, false, false,
                      any_gemm ? be->gemm_attn_min : INT_MAX, INT_MAX};
        a.total_rows = nP;
        if (qb) {
            a.qh = qb;
            a.kh = qb + E;
            a.vh = qb + 2 * E;
        }
        PROF("v.attn", TRY(attn_status(run_attention(be, a, qb != nullptr), hd, err)));
        if (any_gemm) {
            if (!f) to_g(f, qkvg, 3 * E, qkv, 3 * E, nP, 3 * E, st);
            ProfScope ps(be, "v.attn.gemm");
            int start = 0;
            for (int i = 0; i < n_images; i++) {
                int len = grid_h[i] * grid_w[i];
                if (len >= be->gemm_attn_min && len <= be->gemm_attn_max)
                    TRY(gemm_attention(be, qkvg, att, start, len, E, H, hd, err));
                start += len;
            }
        }
        /* residual adds in the GEMM (beta = 1) and biases in its epilogue where they can be (see
           text_forward); what the GEMM did not add, the norm kernel does */
        const bool rg = be->resid_gemm;
        bool bd = false;
        PROF("v.gemm.proj", TRY(linear(be, att, nP, B.proj, rg ? x : tmp, err, 0, false, rg, &bd)));
        PROF("v.norm", add_norm(f, x, rg ? nullptr : tmp, bd ? nullptr : B.proj.b, nP, E, false, B.n2w, B.n2b, eps, xn,
                                false, be->n_sm, st));
        bool fused = false;
        if (nP >= be->qgelu_min_rows)
            PROF("v.gemm.fc1+gelu", TRY(linear_quick_gelu(be, xn, nP, B.fc1, gg, &fused, err)));
        if (!fused) {
            PROF("v.gemm.fc1", TRY(linear(be, xn, nP, B.fc1, gg, err, 0, true, false, &bd)));
            PROF("v.gelu", bias_act_g(f, gg, bd ? nullptr : B.fc1.b, nP, F, ACT_QUICK_GELU, gg, st));
        }
        PROF("v.gemm.fc2", TRY(linear(be, gg, nP, B.fc2, rg ? x : tmp, err, 0, false, rg, &bd)));
        const float *nw = bi + 1 < v->depth ? be->blocks[bi + 1].n1w : be->lnq_w;
        const float *nb = bi + 1 < v->depth ? be->blocks[bi + 1].n1b : be->lnq_b;
        PROF("v.norm", add_norm(f, x, rg ? nullptr : tmp, bd ? nullptr : B.fc2.b, nP, E, false, nw, nb, eps, xn, false,
                                be->n_sm, st));
    }
    /* merger: 4 consecutive normed patches are one row of 4E */
    {
        ProfScope merger_scope(be, "v.merger");
        TRY(linear(be, xn, Q, be->mlp0, mlp, err));
        bias_act(f, mlp, be->mlp0.b, Q, E * ms2, ACT_GELU_ERF, gg, false, st);
        TRY(linear(be, gg, Q, be->mlp2, od, err));
        bias_act(f, od, be->mlp2.b, Q, D, ACT_NONE, od, true, st);
    }
    TRY(finish(be, out, od, (size_t)Q * D * 4, err));
    be->vis_host = out;
    be->vis_rows = (size_t)Q;
    memcpy(be->vis_probe, out, 16);
    memcpy(be->vis_probe + 4, out + (size_t)Q * D - 4, 16);
    return TKR_OK;
}

} // namespace tkrcuda

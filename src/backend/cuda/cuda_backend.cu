/* cuda_backend.cu - opening a GPU, uploading the weights once, the GEMM wrapper, and the
 * tkr_backend table the model code calls (see backend/backend.h).
 *
 * Weights: float matrices become G (BF16, or float32 in fp32 mode) whatever the checkpoint
 * stored (F32/F16/BF16); quantized ones (GGUF Q8_0/Q4_0/Q4_K/Q6_K) stay as stored and are
 * dequantized into a G tile before each GEMM (cuda_quant.cu); norm weights and biases become
 * float32. Float bytes go up through one device staging buffer and are converted there. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/dequant_blocks.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

namespace tkrcuda {

tkr_status cuda_fail(tkr_error *err, cudaError_t e, const char *what) {
    cudaGetLastError(); /* clear a sticky launch error so the next call starts clean */
    return tkr_fail(err, e == cudaErrorMemoryAllocation ? TKR_ERR_NOMEM : TKR_ERR_INTERNAL,
                    "CUDA: %s: %s", what, cudaGetErrorString(e));
}

tkr_status blas_fail(tkr_error *err, cublasStatus_t e, const char *what) {
    return tkr_fail(err, e == CUBLAS_STATUS_ALLOC_FAILED ? TKR_ERR_NOMEM : TKR_ERR_INTERNAL,
                    "cuBLAS: %s: %s", what, cublasGetStatusString(e));
}

tkr_status ensure(DevBuf &buf, size_t bytes, bool host, tkr_error *err) {
    if (buf.cap >= bytes) return TKR_OK;
    if (buf.p) {
        if (host) cudaFreeHost(buf.p);
        else cudaFree(buf.p);
    }
    buf.p = nullptr;
    buf.cap = 0;
    size_t want = bytes + bytes / 4; /* headroom: a slightly larger batch does not reallocate */
    cudaError_t e = host ? cudaMallocHost(&buf.p, want) : cudaMalloc(&buf.p, want);
    if (e != cudaSuccess) {
        buf.p = nullptr;
        return cuda_fail(err, e, host ? "pinned host buffer" : "device buffer");
    }
    buf.cap = want;
    return TKR_OK;
}

namespace {

tkr_status dev_alloc(Backend *be, size_t bytes, void **out, tkr_error *err) {
    if (be->n_allocs == be->cap_allocs) {
        int cap = be->cap_allocs ? be->cap_allocs * 2 : 256;
        void **a = (void **)realloc(be->allocs, sizeof(void *) * (size_t)cap);
        if (!a) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        be->allocs = a;
        be->cap_allocs = cap;
    }
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e != cudaSuccess) return cuda_fail(err, e, "weights");
    be->allocs[be->n_allocs++] = *out;
    be->weight_bytes += bytes;
    return TKR_OK;
}

/* Converts tensor t into dst (G, or float32 when f32) at element offset off. */
tkr_status put(Backend *be, const tkr_tensor *t, void *dst, size_t off, bool f32, tkr_error *err) {
    if (t->dtype != TKR_DT_F32 && t->dtype != TKR_DT_F16 && t->dtype != TKR_DT_BF16)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "the CUDA backend takes F32/F16/BF16 weights; '%s' is %s",
                        t->name ? t->name : "?", tkr_dtype_name(t->dtype));
    if (t->nbytes > be->stage_cap) {
        if (be->stage) cudaFree(be->stage);
        be->stage = nullptr;
        be->stage_cap = 0;
        cudaError_t e = cudaMalloc(&be->stage, t->nbytes);
        if (e != cudaSuccess) return cuda_fail(err, e, "weight staging");
        be->stage_cap = t->nbytes;
    }
    /* on the backend's (non-blocking) stream, so the conversion below is ordered after it */
    cudaError_t e = cudaMemcpyAsync(be->stage, t->data, t->nbytes, cudaMemcpyHostToDevice, be->stream);
    if (e != cudaSuccess) return cuda_fail(err, e, "weight upload");
    size_t n = tkr_tensor_numel(t);
    bool as_f32 = f32 || be->fp32;
    char *d = (char *)dst + off * (as_f32 ? 4 : 2);
    convert_to(as_f32, d, be->stage, t->dtype, n, be->stream);
    e = cudaStreamSynchronize(be->stream); /* the staging buffer is reused by the next tensor */
    if (e != cudaSuccess) return cuda_fail(err, e, "weight conversion");
    return TKR_OK;
}

/* Tensor t's bytes as stored, rows of tkr_dtype_row_bytes(t, cols) (a quantized GGUF weight). */
tkr_status upload_raw(Backend *be, const tkr_tensor *t, RawPart *out, tkr_error *err) {
    int64_t cols = t->ndim >= 2 ? t->shape[t->ndim - 1] : 0;
    size_t rb = tkr_dtype_row_bytes(t->dtype, cols);
    if (t->ndim != 2 || rb == 0 || rb * (size_t)t->shape[0] != t->nbytes || tkr_dq_block_bytes((int)t->dtype) == 0)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "the CUDA backend cannot take '%s' (%s)", t->name ? t->name : "?",
                        tkr_dtype_name(t->dtype));
    void *d = nullptr;
    tkr_status st = dev_alloc(be, t->nbytes, &d, err);
    if (st != TKR_OK) return st;
    cudaError_t e = cudaMemcpyAsync(d, t->data, t->nbytes, cudaMemcpyHostToDevice, be->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(be->stream);
    if (e != cudaSuccess) return cuda_fail(err, e, "weight upload");
    out->q = (const uint8_t *)d;
    out->type = (int)t->dtype;
    out->rows = (int)t->shape[0];
    out->row_bytes = rb;
    return TKR_OK;
}

tkr_status vec(Backend *be, const tkr_tensor *t, float **out, tkr_error *err) {
    *out = nullptr;
    if (!t) return TKR_OK;
    tkr_status st = dev_alloc(be, tkr_tensor_numel(t) * 4, (void **)out, err);
    return st == TKR_OK ? put(be, t, *out, 0, true, err) : st;
}

/* One linear layer from up to 3 weight parts stacked along N, with their biases (all or none). */
tkr_status lin(Backend *be, Linear &L, int K, const tkr_tensor *const *w, const tkr_tensor *const *b, int parts,
               tkr_error *err) {
    L.K = K;
    L.N = 0;
    bool quant = false;
    for (int i = 0; i < parts; i++) {
        L.N += (int)w[i]->shape[0];
        quant = quant || tkr_dtype_is_quant(w[i]->dtype);
    }
    tkr_status st = TKR_OK;
    if (quant) { /* every part as stored (a float part beside quantized ones too) */
        if (K % 8 != 0)
            return tkr_fail(err, TKR_ERR_UNSUPPORTED, "'%s': %d columns (quantized weights need a multiple of 8)",
                            w[0]->name ? w[0]->name : "?", K);
        for (int i = 0; i < parts && st == TKR_OK; i++)
            st = upload_raw(be, w[i], &L.raw[L.n_raw++], err);
        size_t tile = (size_t)L.N * K * gsize(be->fp32);
        if (tile > be->wtile_bytes) be->wtile_bytes = tile;
    } else {
        st = dev_alloc(be, (size_t)L.N * K * gsize(be->fp32), &L.w, err);
    }
    size_t off = 0;
    for (int i = 0; i < parts && st == TKR_OK && !quant; i++) {
        st = put(be, w[i], L.w, off, false, err);
        off += (size_t)w[i]->shape[0] * K;
    }
    if (st != TKR_OK || !b || !b[0]) return st;
    st = dev_alloc(be, (size_t)L.N * 4, (void **)&L.b, err);
    off = 0;
    for (int i = 0; i < parts && st == TKR_OK; i++) {
        st = put(be, b[i], L.b, off, true, err);
        off += (size_t)w[i]->shape[0];
    }
    return st;
}

tkr_status upload_small(Backend *be, const void *src, size_t bytes, void **dst, tkr_error *err) {
    tkr_status st = dev_alloc(be, bytes, dst, err);
    if (st != TKR_OK) return st;
    cudaError_t e = cudaMemcpyAsync(*dst, src, bytes, cudaMemcpyHostToDevice, be->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(be->stream);
    return e == cudaSuccess ? TKR_OK : cuda_fail(err, e, "upload");
}

tkr_status upload_text(Backend *be, tkr_error *err) {
    const tkr_model *m = be->m;
    const tkr_text_config *c = &m->cfg.text;
    int D = c->hidden_size, I = c->intermediate_size, half = c->head_dim / 2;
    tkr_status st;
    if (tkr_dtype_is_quant(m->embed->dtype)) { /* stays quantized: rows dequantized when gathered */
        if (D % 8 != 0) return tkr_fail(err, TKR_ERR_UNSUPPORTED, "quantized embedding of width %d", D);
        st = upload_raw(be, m->embed, &be->embed_raw, err);
    } else {
        st = dev_alloc(be, (size_t)c->vocab_size * D * gsize(be->fp32), &be->embed, err);
        if (st == TKR_OK) st = put(be, m->embed, be->embed, 0, false, err);
    }
    if (st == TKR_OK) st = vec(be, m->final_norm, &be->final_norm, err);
    if (st != TKR_OK) return st;
    be->layers = new (std::nothrow) TextLayer[c->num_layers > 0 ? c->num_layers : 1];
    if (!be->layers) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->num_layers && st == TKR_OK; l++) {
        const tkr_text_layer *S = &m->layers[l];
        TextLayer &L = be->layers[l];
        const tkr_tensor *qkv_w[3] = {S->q_w, S->k_w, S->v_w}, *qkv_b[3] = {S->q_b, S->k_b, S->v_b};
        const tkr_tensor *gu_w[2] = {S->gate_w, S->up_w};
        st = vec(be, S->input_norm, &L.in_norm, err);
        if (st == TKR_OK) st = vec(be, S->post_norm, &L.post_norm, err);
        if (st == TKR_OK) st = lin(be, L.qkv, D, qkv_w, qkv_b, 3, err);
        if (st == TKR_OK) st = lin(be, L.o, c->num_heads * c->head_dim, &S->o_w, nullptr, 1, err);
        if (st == TKR_OK) st = lin(be, L.gateup, D, gu_w, nullptr, 2, err);
        if (st == TKR_OK) st = lin(be, L.down, I, &S->down_w, nullptr, 1, err);
    }
    if (st != TKR_OK) return st;
    int axis[512];
    int s0 = c->mrope_section[0], s1 = c->mrope_section[1];
    for (int j = 0; j < half && j < 512; j++) axis[j] = j < s0 ? 0 : j < s0 + s1 ? 1 : 2;
    st = upload_small(be, m->inv_freq, sizeof(float) * half, (void **)&be->text_inv, err);
    if (st == TKR_OK) st = upload_small(be, axis, sizeof(int) * half, (void **)&be->text_axis, err);
    return st;
}

tkr_status upload_vision(Backend *be, tkr_error *err) {
    const tkr_model *m = be->m;
    const tkr_vision_config *v = &m->cfg.vision;
    if (!m->has_vision) return TKR_OK;
    be->has_vision = true;
    int E = v->embed_dim, F = v->mlp_hidden, ms2 = v->spatial_merge_size * v->spatial_merge_size;
    int hd = E / v->num_heads, half = hd / 2, quarter = hd / 4;
    int patch_dim = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    tkr_tensor pe = *m->vis.patch_embed; /* the Conv3d weight viewed as [E, patch_dim] */
    pe.ndim = 2;
    pe.shape[1] = patch_dim;
    const tkr_tensor *pew = &pe;
    tkr_status st = lin(be, be->patch, patch_dim, &pew, nullptr, 1, err);
    be->blocks = new (std::nothrow) VisionBlock[v->depth > 0 ? v->depth : 1];
    if (!be->blocks) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    for (int b = 0; b < v->depth && st == TKR_OK; b++) {
        const tkr_vision_block *S = &m->vis.blocks[b];
        VisionBlock &B = be->blocks[b];
        st = vec(be, S->norm1_w, &B.n1w, err);
        if (st == TKR_OK) st = vec(be, S->norm1_b, &B.n1b, err);
        if (st == TKR_OK) st = vec(be, S->norm2_w, &B.n2w, err);
        if (st == TKR_OK) st = vec(be, S->norm2_b, &B.n2b, err);
        if (st == TKR_OK && S->qkv_w) st = lin(be, B.qkv, E, &S->qkv_w, &S->qkv_b, 1, err);
        if (st == TKR_OK && !S->qkv_w) { /* GGUF: q, k, v apart, stacked here as in HF's qkv */
            const tkr_tensor *w3[3] = {S->q_w, S->k_w, S->v_w}, *b3[3] = {S->q_b, S->k_b, S->v_b};
            st = lin(be, B.qkv, E, w3, b3, 3, err);
        }
        if (st == TKR_OK) st = lin(be, B.proj, E, &S->proj_w, &S->proj_b, 1, err);
        if (st == TKR_OK) st = lin(be, B.fc1, E, &S->fc1_w, &S->fc1_b, 1, err);
        if (st == TKR_OK) st = lin(be, B.fc2, F, &S->fc2_w, &S->fc2_b, 1, err);
    }
    if (st == TKR_OK) st = vec(be, m->vis.ln_q_w, &be->lnq_w, err);
    if (st == TKR_OK) st = vec(be, m->vis.ln_q_b, &be->lnq_b, err);
    if (st == TKR_OK) st = lin(be, be->mlp0, E * ms2, &m->vis.mlp0_w, &m->vis.mlp0_b, 1, err);
    if (st == TKR_OK) st = lin(be, be->mlp2, E * ms2, &m->vis.mlp2_w, &m->vis.mlp2_b, 1, err);
    if (st != TKR_OK) return st;
    /* as vision.c: frequency k < hd/4 rotates by the row (h), the rest by the column (w) */
    float inv[512];
    int axis[512];
    for (int j = 0; j < half && j < 512; j++) {
        int k = j < quarter ? j : j - quarter;
        inv[j] = 1.0f / powf(10000.0f, (float)(2 * k) / (float)half);
        axis[j] = j < quarter ? 0 : 1;
    }
    st = upload_small(be, inv, sizeof(float) * half, (void **)&be->vis_inv, err);
    if (st == TKR_OK) st = upload_small(be, axis, sizeof(int) * half, (void **)&be->vis_axis, err);
    return st;
}

void be_free(tkr_backend *b) {
    Backend *be = (Backend *)b;
    if (!be) return;
    cudaSetDevice(be->device);
    if (be->stream) cudaStreamSynchronize(be->stream);
    prof_report_free(be);
    for (int i = 0; i < be->n_allocs; i++) cudaFree(be->allocs[i]);
    free(be->allocs);
    delete[] be->layers;
    delete[] be->blocks;
    if (be->stage) cudaFree(be->stage);
    if (be->act.p) cudaFree(be->act.p);
    if (be->vis_keep.p) cudaFree(be->vis_keep.p);
    if (be->wtile.p) cudaFree(be->wtile.p);
    if (be->att_s.p) cudaFree(be->att_s.p);
    if (be->host_in.p) cudaFreeHost(be->host_in.p);
    if (be->host_out.p) cudaFreeHost(be->host_out.p);
    if (be->blas_ws) cudaFree(be->blas_ws);
    gemm_plans_free(be);
    if (be->blas) cublasDestroy(be->blas);
    if (be->stream) cudaStreamDestroy(be->stream);
    delete be;
}

void be_describe(const tkr_backend *b, char *buf, size_t cap) {
    const Backend *be = (const Backend *)b;
    snprintf(buf, cap, "%s", be->name);
}

tkr_status be_text(tkr_backend *b, const tkr_text_batch *batch, float *out, tkr_error *err) {
    Backend *be = (Backend *)b;
    cudaError_t e = cudaSetDevice(be->device);
    if (e != cudaSuccess) return cuda_fail(err, e, "select device");
    return text_forward(be, batch, out, err);
}

tkr_status be_vision(tkr_backend *b, int n_images, const float *const *patches, const int *gh, const int *gw,
                     float *out, tkr_error *err) {
    Backend *be = (Backend *)b;
    if (!be->has_vision) return tkr_fail(err, TKR_ERR_UNSUPPORTED, "this model has no vision tower");
    cudaError_t e = cudaSetDevice(be->device);
    if (e != cudaSuccess) return cuda_fail(err, e, "select device");
    return vision_forward(be, n_images, patches, nullptr, gh, gw, out, err);
}

/* Memory in use, and batch budgets from what the weights leave: half of the rest (the scratch
 * grows by a quarter over a batch's need, and other processes may share the GPU), over the
 * activation bytes of one text token or one image token (cuda_forward.cu's buffers), within
 * [1024, 32768] prompt tokens and [1280, 20480] image tokens (16 images of 1280: beyond that,
 * batches only add latency). */
void be_memory(const tkr_backend *b, tkr_device_memory *out) {
    const Backend *be = (const Backend *)b;
    out->weight_bytes = be->weight_bytes;
    out->activation_bytes =
        be->act.cap + be->att_s.cap + be->wtile.cap + be->vis_keep.cap + (be->blas_ws ? (32u << 20) : 0);
    out->pinned_host_bytes = be->host_in.cap + be->host_out.cap;
    out->total_bytes = be->total_mem;
    const tkr_text_config *c = &be->m->cfg.text;
    size_t g = gsize(be->fp32), D = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t QKV = (size_t)(c->num_heads + 2 * c->num_kv_heads) * c->head_dim, HD = (size_t)c->num_heads * c->head_dim;
    size_t text_tok = D * 4 * 3 + D * g + QKV * 6 + HD * g + 3 * I * g + 64;
    size_t img_tok = text_tok;
    if (be->m->has_vision) {
        const tkr_vision_config *v = &be->m->cfg.vision;
        size_t E = (size_t)v->embed_dim, F = (size_t)(v->mlp_hidden > v->embed_dim ? v->mlp_hidden : v->embed_dim);
        size_t pd = (size_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
        size_t ms2 = (size_t)v->spatial_merge_size * v->spatial_merge_size;
        img_tok = ms2 * (E * 4 * 3 + E * g * 2 + E * 3 * (4 + g) + F * (4 + g) + pd * (8 + g) + 16) + D * 4;
    }
    size_t used = be->weight_bytes + be->wtile.cap + ((size_t)1 << 30) + (be->fp32 ? ((size_t)2 << 30) : 0);
    size_t avail = be->total_mem > used ? (be->total_mem - used) / 2 : 0;
    size_t t = avail / text_tok, it = avail / img_tok;
    out->batch_tokens = (int)(t < 1024 ? 1024 : t > 32768 ? 32768 : t / 256 * 256);
    out->batch_image_tokens = (int)(it < 1280 ? 1280 : it > 20480 ? 20480 : it / 256 * 256);
    out->batch_items = 256;
}

tkr_status be_vision_rgb(tkr_backend *b, int n_images, const uint8_t *const *rgb, const int *gh, const int *gw,
                         float *out, tkr_error *err) {
    Backend *be = (Backend *)b;
    if (!be->has_vision) return tkr_fail(err, TKR_ERR_UNSUPPORTED, "this model has no vision tower");
    cudaError_t e = cudaSetDevice(be->device);
    if (e != cudaSuccess) return cuda_fail(err, e, "select device");
    return vision_forward(be, n_images, nullptr, rgb, gh, gw, out, err);
}

const tkr_backend_ops cuda_ops = {"cuda", be_text, be_vision, be_describe, be_free, be_vision_rgb, be_memory};

tkr_status setup(Backend *be, tkr_error *err) {
    cudaError_t e = cudaSetDevice(be->device);
    if (e != cudaSuccess) return cuda_fail(err, e, "select device");
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, be->device);
    if (e != cudaSuccess) return cuda_fail(err, e, "device properties");
    /* bf16 tensor-core MMA, cp.async and the build's sm_80 code: Ampere (8.0) or newer */
    if (prop.major < 8)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "GPU %d (%s) has compute capability %d.%d; 8.0 (Ampere) or newer is needed", be->device,
                        prop.name, prop.major, prop.minor);
    if ((e = cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(err, e, "stream");
    cublasStatus_t bs = cublasCreate(&be->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) return blas_fail(err, bs, "init");
    cublasSetStream(be->blas, be->stream);
    /* fp32 mode: no TF32, plain float32 products (exact mode); bf16: tensor cores as usual */
    cublasSetMathMode(be->blas, be->fp32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
    size_t ws = 32u << 20;
    if ((e = cudaMalloc(&be->blas_ws, ws)) != cudaSuccess) return cuda_fail(err, e, "cuBLAS workspace");
    cublasSetWorkspace(be->blas, be->blas_ws, ws);
    const char *lt = getenv("TKR_CUDA_LT");
    be->lt_all = !(lt && !strcmp(lt, "1"));
    if (!be->fp32 && !(lt && !strcmp(lt, "0")) && cublasLtCreate(&be->lt) != CUBLAS_STATUS_SUCCESS) be->lt = nullptr;
    const char *kv = getenv("TKR_CUDA_KEEP_VISION");
    be->keep_vision = !(kv && !strcmp(kv, "0"));
    const char *rg = getenv("TKR_CUDA_RESID");
    be->resid_gemm = !(rg && !strcmp(rg, "0"));
    be->total_mem = prop.totalGlobalMem;
    be->n_sm = prop.multiProcessorCount;
    int ver = 0;
    cublasGetVersion(be->blas, &ver);
    snprintf(be->name, sizeof be->name, "cuda:%d %.200s (sm_%d%d, %s, cuBLAS %d.%d)", be->device, prop.name, prop.major,
             prop.minor, be->fp32 ? "fp32" : "bf16", ver / 10000, ver / 100 % 100);
    const char *g = getenv("TKR_CUDA_ATTN_GEMM_MIN");
    if (g && *g) be->gemm_attn_min = atoi(g) > 0 ? atoi(g) : 1;
    const char *fl = getenv("TKR_CUDA_FLASH");
    if (fl && !strcmp(fl, "0")) be->flash = false;
    if (fl && (!strcmp(fl, "1") || !strcmp(fl, "2") || !strcmp(fl, "3") || !strcmp(fl, "4")))
        be->flash_variant = fl[0] - '0';
    be->wgmma = !be->fp32 && wgmma_available(be->stream);
    be->tma_encode = be->wgmma ? tma_encoder() : nullptr;
    const char *wc = getenv("TKR_CUDA_WG_CFG");
    if (wc && *wc) be->wg_cfg = atoi(wc);
    const char *wm = getenv("TKR_CUDA_WG_MIN");
    if (wm && *wm) be->wg_min = atoi(wm) > 0 ? atoi(wm) : 0;
    const char *sw = getenv("TKR_CUDA_SWIGLU_MIN");
    if (sw && *sw) be->swiglu_min_rows = atoi(sw) > 0 ? atoi(sw) : INT_MAX;
    const char *sc = getenv("TKR_CUDA_SWIGLU_CFG");
    if (sc && *sc) be->swiglu_cfg = atoi(sc);
    const char *qg = getenv("TKR_CUDA_QGELU_MIN");
    if (qg && *qg) be->qgelu_min_rows = atoi(qg) > 0 ? atoi(qg) : INT_MAX;
    const char *f2 = getenv("TKR_CUDA_FLASH2_MIN");
    if (f2 && *f2) be->flash2_min = atoi(f2) > 0 ? atoi(f2) : 1;
    const char *rt = getenv("TKR_CUDA_ROPE_TABLE");
    be->rope_tab = !(rt && !strcmp(rt, "0"));
    const char *cw = getenv("TKR_CUDA_CAUSAL_WIDE");
    be->causal_wide = cw && !strcmp(cw, "1");
    const char *lp = getenv("TKR_CUDA_CAUSAL_LPT");
    be->causal_lpt = !(lp && !strcmp(lp, "0"));
    const char *tu = getenv("TKR_CUDA_LT_TUNE");
    if (tu && *tu) be->lt_tune_max = atoi(tu) > 0 ? atoi(tu) : 0;
    const char *tm = getenv("TKR_CUDA_LT_TUNE_MIN");
    if (tm && *tm) be->lt_tune_min = atof(tm) > 0 ? atof(tm) : 0;
    prof_init(be);
    return TKR_OK;
}

} // namespace

} // namespace tkrcuda

using namespace tkrcuda;

extern "C" tkr_status tkr_cuda_open(struct tkr_model *m, int ordinal, bool required, bool fp32, tkr_backend **out,
                                    tkr_error *err) {
    *out = nullptr;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        if (!required) return TKR_OK;
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "device 'cuda:%d': no usable CUDA GPU (%s)", ordinal,
                        e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (ordinal >= count)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "device 'cuda:%d': only %d CUDA GPU%s", ordinal, count,
                        count == 1 ? "" : "s");
    Backend *be = new (std::nothrow) Backend();
    if (!be) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    be->base.ops = &cuda_ops;
    be->m = m;
    be->device = ordinal;
    be->fp32 = fp32;
    tkr_status st = setup(be, err);
    if (st == TKR_OK) st = upload_text(be, err);
    if (st == TKR_OK) st = upload_vision(be, err);
    if (st == TKR_OK && be->stage) {
        cudaFree(be->stage);
        be->stage = nullptr;
        be->stage_cap = 0;
    }
    if (st == TKR_OK && be->wtile_bytes) { /* the dequantization tile, at its final size now */
        e = cudaMalloc(&be->wtile.p, be->wtile_bytes);
        if (e != cudaSuccess) st = cuda_fail(err, e, "dequantization tile");
        else be->wtile.cap = be->wtile_bytes;
    }
    if (st != TKR_OK) {
        be_free(&be->base);
        /* on "auto", weights the GPU cannot take leave the model on the CPU */
        if (!required && st == TKR_ERR_UNSUPPORTED) return TKR_OK;
        tkr_error_prefix(err, "cuda:%d: ", ordinal);
        return st;
    }
    *out = &be->base;
    return TKR_OK;
}

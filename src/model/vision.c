/* vision.c - the Qwen2-VL vision tower and patch merger.
 *
 *   x = patch_embed(patches)                         Conv3d as a [E, 1176] matrix product
 *   per block: x += proj(attn(LN1(x)));  x += fc2(quick_gelu(fc1(LN2(x))))
 *              attention is full within an image, never across images; 2-D rotary on q, k
 *   merger:    LN_q per patch, 4 consecutive patches (one 2x2 block) -> mlp.0 -> GELU(erf) -> mlp.2
 */
#include "model/model.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rotary tables [P, hd/2]: (h * inv_freq, w * inv_freq) for each patch, where patches come in
 * 2x2-block raster order: block (bh, bw), then (mh, mw) inside it. */
static void vision_rope_tables(const tkr_model *m, int n_images, const int *grid_h, const int *grid_w,
                               float *cos_t, float *sin_t) {
    const tkr_vision_config *v = &m->cfg.vision;
    int hd = v->embed_dim / v->num_heads;
    int quarter = hd / 4, half = hd / 2, ms = v->spatial_merge_size;
    float inv[512];
    for (int k = 0; k < quarter; k++)
        inv[k] = 1.0f / powf(10000.0f, (float)(2 * k) / (float)half);
    size_t p = 0;
    for (int im = 0; im < n_images; im++) {
        int gh = grid_h[im], gw = grid_w[im];
        for (int bh = 0; bh < gh / ms; bh++)
            for (int bw = 0; bw < gw / ms; bw++)
                for (int mh = 0; mh < ms; mh++)
                    for (int mw = 0; mw < ms; mw++, p++) {
                        float hpos = (float)(bh * ms + mh), wpos = (float)(bw * ms + mw);
                        for (int k = 0; k < quarter; k++) {
                            float a = hpos * inv[k], b = wpos * inv[k];
                            cos_t[p * half + k] = cosf(a);
                            sin_t[p * half + k] = sinf(a);
                            cos_t[p * half + quarter + k] = cosf(b);
                            sin_t[p * half + quarter + k] = sinf(b);
                        }
                    }
    }
}

tkr_status tkr_vision_forward(tkr_model *m, const float *patches, int n_images, const int *grid_h,
                              const int *grid_w, float *out, tkr_error *err) {
    if (m->backend) {
        const float **parts = malloc(sizeof(float *) * (size_t)(n_images > 0 ? n_images : 1));
        if (!parts) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
        size_t off = 0;
        for (int i = 0; i < n_images; i++) {
            parts[i] = patches + off;
            off += (size_t)grid_h[i] * grid_w[i] * (size_t)(m->cfg.vision.in_channels *
                   m->cfg.vision.temporal_patch_size * m->cfg.vision.patch_size * m->cfg.vision.patch_size);
        }
        tkr_status st = m->backend->ops->vision_forward(m->backend, n_images, parts, grid_h, grid_w, out, err);
        free(parts);
        return st;
    }
    const tkr_vision_config *v = &m->cfg.vision;
    const tkr_kctx *k = &m->kctx;
    int E = v->embed_dim, H = v->num_heads, hd = E / H, F = v->mlp_hidden;
    int ms2 = v->spatial_merge_size * v->spatial_merge_size;
    int D = m->cfg.text.hidden_size;
    int patch_dim = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    int *seq = malloc(sizeof(int) * (size_t)(n_images + 1));
    if (!seq) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    seq[0] = 0;
    for (int i = 0; i < n_images; i++) seq[i + 1] = seq[i] + grid_h[i] * grid_w[i];
    int P = seq[n_images];
    size_t nP = (size_t)P;
    int W = F > E * ms2 ? F : E * ms2; /* the MLP's and the merger's wide activations */
    /* The norms, projections and MLPs run C rows at a time so that xn, tmp and mlp stay within
     * params.max_scratch_bytes (rows are independent: the same bits as all at once); x, qkv and
     * the attention output cover every patch. C is a multiple of ms2 so the merger's chunks
     * (ms2 consecutive patches a row) line up. */
    int C = tkr_model_chunk_rows(m, sizeof(float) * ((size_t)E * 2 + (size_t)W), P);
    C = C < ms2 ? ms2 : C - C % ms2;
    size_t nC = (size_t)C;
    size_t total = nP * E /* x */ + nC * E * 2 /* xn, tmp */ + nP * 3 * E /* qkv */ + nP * E /* att */ +
                   nC * (size_t)W /* mlp */ + nP * hd /* tables */;
    float *buf = malloc(total * sizeof(float));
    if (!buf) {
        free(seq);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for %d image patches", P);
    }
    float *x = buf;                     /* [P, E]     */
    float *xn = x + nP * E;             /* [C, E]     */
    float *tmp = xn + nC * E;           /* [C, E]     */
    float *qkv = tmp + nC * E;          /* [P, 3E], or 3 x [P, E] when split */
    float *att = qkv + nP * 3 * E;      /* [P, E]     */
    float *mlp = att + nP * E;          /* [C, max(F, 4E)] */
    float *cos_t = mlp + nC * (size_t)W; /* [P, hd/2] */
    float *sin_t = cos_t + nP * (size_t)(hd / 2);

    tkr_tensor pe = *m->vis.patch_embed; /* the Conv3d weight viewed as [E, 1176] */
    pe.ndim = 2;
    pe.shape[1] = patch_dim;
    tkr_status st = tkr_linear(k, patches, P, patch_dim, &pe, NULL, x);
    vision_rope_tables(m, n_images, grid_h, grid_w, cos_t, sin_t);
    const float eps = 1e-6f;
    int b = 0;
    for (; b < v->depth && st == TKR_OK; b++) {
        const tkr_vision_block *B = &m->vis.blocks[b];
        /* fused: qkv [P, 3E] rows (q | k | v); split (GGUF): q, k, v [P, E] one after another */
        float *q = qkv, *kk = qkv + E, *vv = qkv + 2 * E;
        int stride = 3 * E;
        if (!B->qkv_w) {
            kk = qkv + nP * E;
            vv = kk + nP * E;
            stride = E;
        }
        for (int r0 = 0; r0 < P && st == TKR_OK; r0 += C) {
            int n = P - r0 < C ? P - r0 : C;
            tkr_layernorm(k, x + (size_t)r0 * E, n, E, B->norm1_w, B->norm1_b, eps, xn);
            if (B->qkv_w) {
                st = tkr_linear(k, xn, n, E, B->qkv_w, B->qkv_b, qkv + (size_t)r0 * 3 * E);
            } else {
                size_t o = (size_t)r0 * E;
                st = tkr_linear(k, xn, n, E, B->q_w, B->q_b, q + o);
                if (st == TKR_OK) st = tkr_linear(k, xn, n, E, B->k_w, B->k_b, kk + o);
                if (st == TKR_OK) st = tkr_linear(k, xn, n, E, B->v_w, B->v_b, vv + o);
            }
        }
        if (st != TKR_OK) break;
        tkr_rope_apply_strided(q, P, stride, H, hd, cos_t, sin_t);
        tkr_rope_apply_strided(kk, P, stride, H, hd, cos_t, sin_t);
        tkr_attention_args a = {q, kk, vv, stride, stride, att, E, H, H, hd,
                                seq, n_images, false, false, 0, 0};
        if ((st = tkr_attention(k, &a)) != TKR_OK) break;
        for (int r0 = 0; r0 < P; r0 += C) {
            int n = P - r0 < C ? P - r0 : C;
            float *xr = x + (size_t)r0 * E;
            if ((st = tkr_linear(k, att + (size_t)r0 * E, n, E, B->proj_w, B->proj_b, tmp)) != TKR_OK) break;
            tkr_add_inplace(xr, tmp, (size_t)n * E);
            tkr_layernorm(k, xr, n, E, B->norm2_w, B->norm2_b, eps, xn);
            if ((st = tkr_linear(k, xn, n, E, B->fc1_w, B->fc1_b, mlp)) != TKR_OK) break;
            tkr_quick_gelu(k, mlp, (size_t)n * F);
            if ((st = tkr_linear(k, mlp, n, F, B->fc2_w, B->fc2_b, tmp)) != TKR_OK) break;
            tkr_add_inplace(xr, tmp, (size_t)n * E);
        }
    }
    /* merger: rows of 4E are 4 consecutive normed patches, contiguous in xn; C / ms2 rows a chunk */
    int Q = P / ms2, Cq = C / ms2;
    for (int q0 = 0; q0 < Q && st == TKR_OK; q0 += Cq) {
        int n = Q - q0 < Cq ? Q - q0 : Cq;
        tkr_layernorm(k, x + (size_t)q0 * ms2 * E, n * ms2, E, m->vis.ln_q_w, m->vis.ln_q_b, eps, xn);
        if ((st = tkr_linear(k, xn, n, E * ms2, m->vis.mlp0_w, m->vis.mlp0_b, mlp)) != TKR_OK) break;
        tkr_gelu_erf(k, mlp, (size_t)n * E * ms2);
        st = tkr_linear(k, mlp, n, E * ms2, m->vis.mlp2_w, m->vis.mlp2_b, out + (size_t)q0 * D);
    }
    if (st != TKR_OK) {
        free(buf);
        free(seq);
        return tkr_fail(err, st, "out of memory for the kernels' scratch in vision block %d (%d patches)",
                        b, P);
    }
    free(buf);
    free(seq);
    tkr_model_release_vision_pages(m);
    return TKR_OK;
}

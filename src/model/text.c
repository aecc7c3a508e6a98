/* text.c - the Qwen2 decoder of Qwen2-VL over packed sequences.
 *
 *   h = x + o_proj(attn(rmsnorm_in(x)))              q/k/v with bias, M-RoPE, causal, GQA
 *   x = h + down(silu(gate(rmsnorm_post(h))) * up(rmsnorm_post(h)))
 *   final RMSNorm, applied only to the rows that are pooled (each sequence's last token).
 * The last layer runs its query, o_proj and MLP on those rows only (see below).
 *
 * All sequences of a batch share every matrix product (rows are independent, see kernels.h)
 * and attend only within themselves, so the result for one item does not depend on the batch. */
#include "model/model.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* cos/sin tables [T, hd/2]: frequency j takes its position from axis t, h or w according to
 * mrope_section, exactly as HF splits the duplicated 128-wide table into [16,24,24] x 2. */
static void mrope_tables(const tkr_model *m, const int32_t *pos, int T, float *cos_t, float *sin_t) {
    const tkr_text_config *c = &m->cfg.text;
    int half = c->head_dim / 2;
    int s0 = c->mrope_section[0], s1 = c->mrope_section[1];
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < half; j++) {
            int axis = j < s0 ? 0 : j < s0 + s1 ? 1 : 2;
            float angle = (float)pos[(size_t)axis * T + t] * m->inv_freq[j];
            cos_t[(size_t)t * half + j] = cosf(angle);
            sin_t[(size_t)t * half + j] = sinf(angle);
        }
    }
}

/* The second half of a layer on R rows of x [R, D]: x += o_proj(att); x += mlp(post_norm(x)),
 * C rows at a time (every step is row-independent, so the chunking changes no bit).
 * xn [C, D], tmp [C, D], gate/up [C, I] are scratch. */
static tkr_status attn_out_and_mlp(const tkr_model *m, const tkr_text_layer *L, float *x, int R,
                                   const float *att, int C, float *xn, float *tmp, float *gate,
                                   float *up) {
    const tkr_text_config *c = &m->cfg.text;
    const tkr_kctx *k = &m->kctx;
    int D = c->hidden_size, I = c->intermediate_size, HD = c->num_heads * c->head_dim;
    tkr_status st;
    for (int r0 = 0; r0 < R; r0 += C) {
        int n = R - r0 < C ? R - r0 : C;
        float *xr = x + (size_t)r0 * D;
        if ((st = tkr_linear(k, att + (size_t)r0 * HD, n, HD, L->o_w, NULL, tmp)) != TKR_OK) return st;
        tkr_add_inplace(xr, tmp, (size_t)n * D);
        tkr_rmsnorm(k, xr, n, D, L->post_norm, (float)c->rms_norm_eps, xn);
        if ((st = tkr_linear_silu_gate(k, xn, n, D, L->gate_w, L->up_w, gate, up)) != TKR_OK) return st;
        if ((st = tkr_linear(k, gate, n, I, L->down_w, NULL, tmp)) != TKR_OK) return st;
        tkr_add_inplace(xr, tmp, (size_t)n * D);
    }
    return TKR_OK;
}

/* k and v of the T rows of x [T, D], C rows at a time through xn [C, D]. */
static tkr_status kv_rows(const tkr_model *m, const tkr_text_layer *L, const float *x, int T, int C,
                          float *xn, float *kk, float *vv) {
    const tkr_text_config *c = &m->cfg.text;
    const tkr_kctx *k = &m->kctx;
    int D = c->hidden_size, KVd = c->num_kv_heads * c->head_dim;
    tkr_status st;
    for (int r0 = 0; r0 < T; r0 += C) {
        int n = T - r0 < C ? T - r0 : C;
        tkr_rmsnorm(k, x + (size_t)r0 * D, n, D, L->input_norm, (float)c->rms_norm_eps, xn);
        if ((st = tkr_linear(k, xn, n, D, L->k_w, L->k_b, kk + (size_t)r0 * KVd)) != TKR_OK) return st;
        if ((st = tkr_linear(k, xn, n, D, L->v_w, L->v_b, vv + (size_t)r0 * KVd)) != TKR_OK) return st;
    }
    return TKR_OK;
}

tkr_status tkr_text_forward(tkr_model *m, float *x, int T, const int32_t *pos, const int *seq_start,
                            int n_seq, float *out, tkr_error *err) {
    const tkr_text_config *c = &m->cfg.text;
    const tkr_kctx *k = &m->kctx;
    int D = c->hidden_size, H = c->num_heads, KV = c->num_kv_heads, hd = c->head_dim;
    int I = c->intermediate_size, half = hd / 2;
    size_t nT = (size_t)T;
    /* Rows go through the norms, projections, attention queries and MLP C at a time, so that
     * the activations of a chunk (xn, tmp, q, att, gate, up) stay within
     * params.max_scratch_bytes; only k and v (and x, the tables) cover all T rows, since every
     * query needs every earlier key. One allocation for every buffer of the pass. */
    int C = tkr_model_chunk_rows(m, sizeof(float) * ((size_t)D * 2 + (size_t)H * hd * 2 + (size_t)I * 2), T);
    size_t nC = (size_t)C;
    size_t nQ = nC > (size_t)n_seq ? nC : (size_t)n_seq; /* the last layer's queries: n_seq rows */
    size_t sz_xn = nC * D, sz_q = nQ * H * hd, sz_kv = nT * KV * hd, sz_mlp = nC * I;
    size_t sz_tab = nT * half, sz_ltab = (size_t)n_seq * half, sz_last = (size_t)n_seq * D;
    size_t total = sz_xn * 2 + sz_q * 2 + sz_kv * 2 + sz_mlp * 2 + sz_tab * 2 + sz_ltab * 2 + sz_last;
    float *buf = malloc(total * sizeof(float));
    if (!buf) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for %d tokens (%zu MB)", T,
                              total * sizeof(float) >> 20);
    float *xn = buf;                 /* [C, D]     normed input (a chunk)  */
    float *tmp = xn + sz_xn;         /* [C, D]     o_proj / down output    */
    float *q = tmp + sz_xn;          /* [max(C, n_seq), H*hd] queries of a chunk, or the last rows' */
    float *att = q + sz_q;           /* [max(C, n_seq), H*hd] attention output */
    float *kk = att + sz_q;          /* [T, KV*hd]                         */
    float *vv = kk + sz_kv;          /* [T, KV*hd]                         */
    float *gate = vv + sz_kv;        /* [C, I]                             */
    float *up = gate + sz_mlp;       /* [C, I]                             */
    float *cos_t = up + sz_mlp;      /* [T, hd/2]                          */
    float *sin_t = cos_t + sz_tab;   /* [T, hd/2]                          */
    float *cos_l = sin_t + sz_tab;   /* [n_seq, hd/2] last rows' tables    */
    float *sin_l = cos_l + sz_ltab;  /* [n_seq, hd/2]                      */
    float *xl = sin_l + sz_ltab;     /* [n_seq, D] last rows, normed       */
    mrope_tables(m, pos, T, cos_t, sin_t);
    float eps = (float)c->rms_norm_eps;
    tkr_status st = TKR_OK;
    int l = 0;
    for (; l < c->num_layers; l++) {
        const tkr_text_layer *L = &m->layers[l];
        bool last_layer = l + 1 == c->num_layers;
        if ((st = kv_rows(m, L, x, T, C, xn, kk, vv)) != TKR_OK) break;
        tkr_rope_apply(kk, T, KV, hd, cos_t, sin_t);
        if (!last_layer) {
            /* Every key and value is ready, so rows may now change a chunk at a time: the
             * chunk's queries attend to all earlier keys, then o_proj and the MLP update it. */
            for (int r0 = 0; r0 < T && st == TKR_OK; r0 += C) {
                int n = T - r0 < C ? T - r0 : C;
                float *xr = x + (size_t)r0 * D;
                tkr_rmsnorm(k, xr, n, D, L->input_norm, eps, xn);
                if ((st = tkr_linear(k, xn, n, D, L->q_w, L->q_b, q)) != TKR_OK) break;
                tkr_rope_apply(q, n, H, hd, cos_t + (size_t)r0 * half, sin_t + (size_t)r0 * half);
                tkr_attention_args a = {q, kk, vv, H * hd, KV * hd, att, H * hd, H, KV, hd,
                                        seq_start, n_seq, true, false, r0, r0 + n};
                if ((st = tkr_attention(k, &a)) != TKR_OK) break;
                st = attn_out_and_mlp(m, L, xr, n, att, C, xn, tmp, gate, up);
            }
            if (st != TKR_OK) break;
            continue;
        }
        /* The last layer: only each sequence's last token is pooled, so only those rows need a
         * query, o_proj and the MLP (keys and values still cover every row). Rows, attention
         * and products are all row-independent, so the result is the same bits as the full
         * layer. The last rows are gathered to the front: x -> x, and normed into xl. */
        for (int s = 0; s < n_seq; s++) {
            size_t last = (size_t)seq_start[s + 1] - 1;
            memcpy(cos_l + (size_t)s * half, cos_t + last * half, sizeof(float) * (size_t)half);
            memcpy(sin_l + (size_t)s * half, sin_t + last * half, sizeof(float) * (size_t)half);
        }
        for (int s = 0; s < n_seq; s++) /* row s <= last row of s: forward memmove is safe */
            memmove(x + (size_t)s * D, x + ((size_t)seq_start[s + 1] - 1) * D, sizeof(float) * (size_t)D);
        tkr_rmsnorm(k, x, n_seq, D, L->input_norm, eps, xl);
        if ((st = tkr_linear(k, xl, n_seq, D, L->q_w, L->q_b, q)) != TKR_OK) break;
        tkr_rope_apply(q, n_seq, H, hd, cos_l, sin_l);
        tkr_attention_args a = {q, kk, vv, H * hd, KV * hd, att, H * hd, H, KV, hd,
                                seq_start, n_seq, true, true, 0, 0};
        if ((st = tkr_attention(k, &a)) != TKR_OK) break;
        if ((st = attn_out_and_mlp(m, L, x, n_seq, att, C, xn, tmp, gate, up)) != TKR_OK) break;
    }
    if (st != TKR_OK) {
        free(buf);
        return tkr_fail(err, st, "out of memory for the kernels' scratch in text layer %d (%d tokens)",
                        l, T);
    }
    /* x now holds the last layer's output for each sequence's last token in rows [0, n_seq) */
    if (c->num_layers > 0) {
        tkr_rmsnorm(k, x, n_seq, D, m->final_norm, eps, out);
    } else {
        for (int s = 0; s < n_seq; s++) {
            const float *last = x + (size_t)(seq_start[s + 1] - 1) * D;
            tkr_rmsnorm(k, last, 1, D, m->final_norm, eps, out + (size_t)s * D);
        }
    }
    free(buf);
    return TKR_OK;
}

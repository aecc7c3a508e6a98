/* linear_quant.c - y = x W^T (+ b) with W quantized (Q8_0, Q4_0, Q4_K, Q6_K): the integer GEMM.
 *
 * Three steps per call:
 *  1. Activations: each row of x is quantized on its own exactly as ggml does (Q8_0 blocks for
 *     the 32-value formats, Q8_K for the K formats) and stored for broadcasting: RW rows side by
 *     side, 4 bytes each, so one vector register holds 4 consecutive values of RW rows.
 *  2. Weights: each task takes a panel of NP weight rows and unpacks it once to one signed byte
 *     per value with float scales per group (kernels_impl.h: tkr_lq_panel) in per-thread scratch;
 *     the ggml blocks are read in place, nothing is kept between calls.
 *  3. Micro-kernels: a tile of NR weight rows x (1 or 2) x RW activation rows accumulates exact
 *     int32 dot products per group (vpdpbusd: 4 weights broadcast against RW rows) and then one
 *     float fma per group with the product of the two scales.
 * Every output element gets the same arithmetic whatever M, the tile it lands in or the thread
 * count (see tkr_lq_fmt): exact integer sums, then fmaf in group order. The portable version
 * below performs that same arithmetic with fmaf, so all versions agree bit for bit. */
#include "kernels/kernels_impl.h"
#include "kernels/quant_impl.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PORTABLE_NR 4
#define LQ_MAX_BP 8 /* panels per block */

static bool fmt_init(tkr_dtype wt, int K, const tkr_lq_isa *isa, tkr_lq_fmt *f) {
    memset(f, 0, sizeof *f);
    f->wt = wt;
    f->K = K;
    f->xoff = isa->xoff;
    f->wunsigned = isa->wunsigned;
    switch (wt) {
    case TKR_DT_Q8_0: f->gsize = 32; f->wunsigned = false; break;
    case TKR_DT_Q4_0: f->gsize = 32; f->woff = 8; break;
    case TKR_DT_Q4_K: f->gsize = 32; f->has_min = true; break;
    case TKR_DT_Q6_K: f->gsize = 16; f->woff = 32; break;
    default: return false;
    }
    if (f->wunsigned) f->xoff = 0;
    if (K <= 0 || K % tkr_dtype_block_elems(wt) != 0) return false;
    f->G = K / f->gsize;
    return true;
}

static bool is_k_format(tkr_dtype t) { return t == TKR_DT_Q4_K || t == TKR_DT_Q6_K; }

/* Bytes of per-thread scratch the activation quantizer needs for one row of K values. */
static size_t row_tmp_bytes(const tkr_lq_fmt *f) {
    return is_k_format(f->wt) ? (size_t)(f->K / TKR_QK_K) * sizeof(tkr_block_q8_K)
                              : (size_t)(f->K / TKR_QK8_0) * sizeof(tkr_block_q8_0);
}

/* Quantizes row m of x (or zeros past M) into the blocks at tmp (row_tmp_bytes(f), aligned for
 * the block structs), and stores its per-group values into row slot r of row group rg of X (dx,
 * xmin, xc); the bytes are interleaved into X->q by prep_task. */
static void prep_row(const tkr_lq_fmt *f, const float *x, int m, tkr_lq_x *X, void *tmp, bool avx2) {
    const int K = f->K, RW = X->RW, rg = m / RW, r = m % RW;
    float *dx = X->dx + (size_t)rg * f->G * RW + r;
    float *xmin = X->xmin ? X->xmin + (size_t)rg * f->G * RW + r : NULL;
    if (m >= X->M) {
        memset(tmp, 0, row_tmp_bytes(f)); /* zero values: the bytes become xoff */
        for (int g = 0; g < f->G; g++) {
            dx[(size_t)g * RW] = 0.0f;
            if (xmin) xmin[(size_t)g * RW] = 0.0f;
            if (X->xc) X->xc[(size_t)rg * f->G * RW + r + (size_t)g * RW] = 0;
        }
        return;
    }
    int32_t *xc = X->xc ? X->xc + (size_t)rg * f->G * RW + r : NULL;
    const float *xr = x + (size_t)m * K;
    if (is_k_format(f->wt)) {
        tkr_block_q8_K *b = tmp;
#ifdef TKR_HAVE_X86
        if (avx2) tkr_quantize_row_q8_K_avx2(xr, b, K);
        else
#endif
            tkr_quantize_row_q8_K(xr, b, K);
        for (int g = 0; g < f->G; g++) {
            const tkr_block_q8_K *sb = &b[g * f->gsize / TKR_QK_K];
            dx[(size_t)g * RW] = sb->d;
            if (xmin) { /* gsize 32: two 16-value sums of the super-block */
                int j = (g * f->gsize % TKR_QK_K) / 16;
                xmin[(size_t)g * RW] = sb->d * (float)(sb->bsums[j] + sb->bsums[j + 1]);
            }
        }
        if (xc) /* the group sums are Q8_K's 16-value sums */
            for (int g = 0; g < f->G; g++) {
                const tkr_block_q8_K *sb = &b[g * f->gsize / TKR_QK_K];
                int j = (g * f->gsize % TKR_QK_K) / 16, sum = sb->bsums[j];
                if (f->gsize == 32) sum += sb->bsums[j + 1];
                xc[(size_t)g * RW] = -f->woff * sum;
            }
    } else {
        tkr_block_q8_0 *b = tmp;
#ifdef TKR_HAVE_X86
        if (avx2) tkr_quantize_row_q8_0_avx2(xr, b, K);
        else
#endif
            tkr_quantize_row_q8_0(xr, b, K);
        for (int g = 0; g < f->G; g++) dx[(size_t)g * RW] = tkr_f16_to_f32(b[g].d);
        if (xc)
            for (int g = 0; g < f->G; g++) {
                int sum = 0;
                for (int i = 0; i < 32; i++) sum += b[g].qs[i];
                xc[(size_t)g * RW] = -f->woff * sum;
            }
    }
}

/* Unpacks weight rows [n0, n0 + np) of w into panel P (see tkr_lq_panel). Blocks are copied out
 * first: tensor data may be only byte-aligned. */
static void unpack_panel(const tkr_lq_fmt *f, const tkr_tensor *w, int n0, int np, tkr_lq_panel *P) {
    const int K = f->K, G = f->G;
    const size_t rb = tkr_dtype_row_bytes(f->wt, K);
    P->np = np;
    for (int j = 0; j < np; j++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)(n0 + j) * rb;
        int8_t *wr = P->w + (size_t)j * K;
        float *dw = P->dw + (size_t)j * G;
        int32_t *corr = P->corr + (size_t)j * G;
        switch (f->wt) {
        case TKR_DT_Q8_0:
            for (int b = 0; b < K / 32; b++) {
                tkr_block_q8_0 blk;
                memcpy(&blk, src + (size_t)b * sizeof blk, sizeof blk);
                memcpy(wr + b * 32, blk.qs, 32);
                dw[b] = tkr_f16_to_f32(blk.d);
            }
            break;
        case TKR_DT_Q4_0:
            for (int b = 0; b < K / 32; b++) {
                tkr_block_q4_0 blk;
                memcpy(&blk, src + (size_t)b * sizeof blk, sizeof blk);
                for (int l = 0; l < 16; l++) {
                    wr[b * 32 + l] = (int8_t)((blk.qs[l] & 0xF) - 8);
                    wr[b * 32 + l + 16] = (int8_t)((blk.qs[l] >> 4) - 8);
                }
                dw[b] = tkr_f16_to_f32(blk.d);
            }
            break;
        case TKR_DT_Q4_K: {
            float *wmin = P->wmin + (size_t)j * G;
            for (int b = 0; b < K / TKR_QK_K; b++) {
                tkr_block_q4_K blk;
                memcpy(&blk, src + (size_t)b * sizeof blk, sizeof blk);
                const float d = tkr_f16_to_f32(blk.d), dmin = tkr_f16_to_f32(blk.dmin);
                int8_t *o = wr + b * TKR_QK_K;
                for (int c = 0; c < 4; c++) { /* 64 values: low nibbles then high nibbles */
                    for (int l = 0; l < 32; l++) {
                        o[c * 64 + l] = (int8_t)(blk.qs[c * 32 + l] & 0xF);
                        o[c * 64 + 32 + l] = (int8_t)(blk.qs[c * 32 + l] >> 4);
                    }
                }
                for (int s = 0; s < 8; s++) {
                    uint8_t sc, mn;
                    tkr_q4k_scale_min(s, blk.scales, &sc, &mn);
                    dw[b * 8 + s] = d * sc;
                    wmin[b * 8 + s] = dmin * mn;
                }
            }
            break;
        }
        case TKR_DT_Q6_K:
            for (int b = 0; b < K / TKR_QK_K; b++) {
                tkr_block_q6_K blk;
                memcpy(&blk, src + (size_t)b * sizeof blk, sizeof blk);
                const float d = tkr_f16_to_f32(blk.d);
                int8_t *o = wr + b * TKR_QK_K;
                for (int h = 0; h < 2; h++) { /* two halves of 128 values */
                    const uint8_t *ql = blk.ql + h * 64, *qh = blk.qh + h * 32;
                    for (int l = 0; l < 32; l++) {
                        o[h * 128 + l + 0] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                        o[h * 128 + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                        o[h * 128 + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                        o[h * 128 + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                    }
                }
                for (int s = 0; s < 16; s++) dw[b * 16 + s] = d * blk.scales[s];
            }
            break;
        default: break;
        }
        for (int g = 0; g < G; g++) {
            int32_t s = 0;
            for (int i = 0; i < f->gsize; i++) s += wr[g * f->gsize + i];
            corr[g] = f->xoff * s;
        }
    }
}

/* Portable micro-kernel (RW = 1: one activation row): the reference arithmetic of tkr_lq_fmt,
 * written plainly. out[j] for weight rows n0 + j, j < nr <= PORTABLE_NR. */
static void kernel_portable(const tkr_lq_fmt *f, const tkr_lq_x *X, int rg, const tkr_lq_panel *P,
                            int n0, int nr, int g0, int g1, float *out) {
    const int K = f->K, G = f->G, gs = f->gsize;
    const uint8_t *xq = X->q + (size_t)rg * K;
    const float *dx = X->dx + (size_t)rg * G;
    const float *xmin = X->xmin ? X->xmin + (size_t)rg * G : NULL;
    for (int j = 0; j < nr; j++) {
        const int8_t *wr = P->w + (size_t)(n0 + j) * K;
        const float *dw = P->dw + (size_t)(n0 + j) * G;
        const int32_t *corr = P->corr + (size_t)(n0 + j) * G;
        const float *wmin = f->has_min ? P->wmin + (size_t)(n0 + j) * G : NULL;
        float acc = g0 ? out[j] : 0.0f;
        for (int g = g0; g < g1; g++) {
            int32_t s = 0;
            for (int i = 0; i < gs; i++) s += (int32_t)xq[g * gs + i] * wr[g * gs + i];
            acc = fmaf((float)(s - corr[g]), dx[g] * dw[g], acc);
            if (wmin) acc = fmaf(-wmin[g], xmin[g], acc);
        }
        out[j] = acc;
    }
}

typedef struct {
    tkr_lq_fmt f;
    tkr_lq_isa isa;
    const float *x;
    int M, N;
    const tkr_tensor *w;
    const tkr_tensor *w2;  /* gate_up: the up weights (w: gate), else NULL */
    const float *bias;     /* [N] widened, or NULL */
    float *y;
    tkr_lq_x X;
    int NP;                /* weight rows per panel */
    int BP;                /* panels per task (a block), at most LQ_MAX_BP */
    int GC;                /* groups per K chunk */
    uint8_t *scratch;      /* [threads][per_thread] */
    size_t per_thread;
    size_t panel_w_bytes;  /* offsets inside a thread's slice */
    size_t panel_g_bytes;
    bool avx2;             /* vectorized activation quantizers, unpacking and stores */
    bool neon;             /* gate_up: the NEON silu_mul */
    int threads;
    size_t unit_bytes;     /* one unpacked panel (bytes, dw, corr, wmin) */
    size_t out_off;        /* per-thread offsets: the accumulators, the gate_up row tiles */
    size_t tmp_off;
} lq_job;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Task: activation rows [task * RW, task * RW + RW): each row quantized into its own blocks,
 * then the bytes interleaved into the broadcast layout (4 values of row 0, of row 1, ...), the
 * writes in order (row by row, they would be 4-byte stores 4 RW bytes apart). */
static void prep_task(void *p, int task, int thread) {
    lq_job *j = p;
    const int RW = j->X.RW, K = j->f.K;
    uint8_t *tmp = j->scratch + (size_t)thread * j->per_thread;
    const size_t rt = align64(row_tmp_bytes(&j->f));
    for (int r = 0; r < RW; r++) prep_row(&j->f, j->x, task * RW + r, &j->X, tmp + (size_t)r * rt, j->avx2);
    const bool kf = is_k_format(j->f.wt);
    const size_t bsz = kf ? sizeof(tkr_block_q8_K) : sizeof(tkr_block_q8_0);
    const size_t qoff = kf ? offsetof(tkr_block_q8_K, qs) : offsetof(tkr_block_q8_0, qs);
    const int bvals = kf ? TKR_QK_K : TKR_QK8_0;
    const uint32_t flip = j->f.xoff ? 0x80808080u : 0; /* + 128 on each byte: its top bit flipped */
    uint8_t *q = j->X.q + (size_t)task * K * RW;
    for (int k4 = 0; k4 < K / 4; k4++) {
        const size_t src = (size_t)(k4 * 4 / bvals) * bsz + qoff + (size_t)(k4 * 4 % bvals);
        uint8_t *d = q + (size_t)k4 * RW * 4;
        for (int r = 0; r < RW; r++) {
            uint32_t v;
            memcpy(&v, tmp + (size_t)r * rt + src, 4);
            v ^= flip;
            memcpy(d + (size_t)r * 4, &v, 4);
        }
    }
}

/* Portable store: y[m0 + r][n0 + c] = out[c * ldo + r] (+ bias[n0 + c]) for c < np and the
 * rows r < rows with m0 + r < M (out is a panel's accumulators, one column per weight row). */
static void store_portable(const float *out, int ldo, int np, int rows, int m0, int M, float *y, int N, int n0,
                           const float *bias) {
    for (int r = 0; r < rows && m0 + r < M; r++) {
        float *yr = y + (size_t)(m0 + r) * N + n0;
        for (int c = 0; c < np; c++) yr[c] = bias ? out[(size_t)c * ldo + r] + bias[n0 + c] : out[(size_t)c * ldo + r];
    }
}

/* Software prefetches spread over the kernel calls of a block: per call, the next share of a
 * byte range (the weights of the block this thread likely takes next stream in from memory
 * while this one computes, instead of stalling its unpacking). */
typedef struct {
    const char *p;
    size_t left;   /* lines not yet prefetched */
    size_t per;    /* lines per call */
} lq_prefetch;

static void prefetch_plan(lq_prefetch *pf, const void *start, size_t bytes, size_t calls) {
    const uintptr_t a = (uintptr_t)start & ~(uintptr_t)63, e = (uintptr_t)start + bytes;
    pf->p = (const char *)a;
    pf->left = bytes ? (e - a + 63) / 64 : 0;
    pf->per = calls ? (pf->left + calls - 1) / calls : pf->left;
}

static inline void prefetch_step_read(lq_prefetch *pf) {
    size_t n = pf->left < pf->per ? pf->left : pf->per;
    for (size_t i = 0; i < n; i++) __builtin_prefetch(pf->p + i * 64, 0, 2);
    pf->p += n * 64;
    pf->left -= n;
}

/* n0, np of panel number pn (NP weight rows each, the last one shorter). */
static int panel_rows(const lq_job *j, int pn, int *n0) {
    *n0 = pn * j->NP;
    return j->N - *n0 < j->NP ? j->N - *n0 : j->NP;
}

/* The rows of panel pn of weight w unpacked into P, at s in this thread's scratch. */
static void panel_unpack(const lq_job *j, const tkr_tensor *w, int pn, uint8_t *s, tkr_lq_panel *P) {
    int n0;
    const int np = panel_rows(j, pn, &n0);
    P->w = (int8_t *)s;
    P->dw = (float *)(s + j->panel_w_bytes);
    P->corr = (int32_t *)(s + j->panel_w_bytes + j->panel_g_bytes);
    P->wmin = (float *)(s + j->panel_w_bytes + 2 * j->panel_g_bytes);
#ifdef TKR_HAVE_X86
    if (j->avx2) tkr_lq_unpack_panel_avx2(&j->f, w, n0, np, P);
    else
#endif
        unpack_panel(&j->f, w, n0, np, P);
}

/* The accumulators out [np][ldo] of rows m0.. into y (y[m0 + r][n0 + c], row stride ldy), + bias. */
static void store_tile(const lq_job *j, const float *out, int ldo, int np, int m0, int M, float *y, int ldy, int n0,
                       const float *bias) {
#ifdef TKR_HAVE_X86
    if (j->avx2 && ldo % 8 == 0) {
        tkr_lq_store_avx2(out, ldo, np, ldo, m0, M, y, ldy, n0, bias);
        return;
    }
#endif
    store_portable(out, ldo, np, ldo, m0, M, y, ldy, n0, bias);
}

/* gate <- silu(gate) * up over n values: exactly tkr_silu_mul's arithmetic for this kctx (each
 * element's result does not depend on where it sits in the array). */
static void silu_mul_like_kctx(const lq_job *j, float *gate, const float *up, size_t n) {
#ifdef TKR_HAVE_X86
    if (j->avx2) {
        tkr_silu_mul_avx2(gate, up, n);
        return;
    }
#endif
#ifdef TKR_HAVE_NEON
    if (j->neon) {
        tkr_silu_mul_neon(gate, up, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* Task: a block of BP consecutive panels (BP x NP weight rows; for gate_up, each panel of both
 * weights: the units). All units are unpacked first; then, K chunk by K chunk, every row step
 * (1 or 2 row groups) passes over every unit, so the activation tile's chunk stays in L1 while
 * the block's weights pass, and the block's weight chunk stays in L2 while all the rows pass:
 * the activations are read once per block rather than once per panel (at 2048 rows they are
 * 3 MB at K = 1536 and 18 MB at K = 8960, and streaming them was what limited large M). With
 * several K chunks the accumulators of each (unit, row step) wait in out between chunks
 * (storing and reloading a float is exact); they go to y after the last chunk. */
static void gemm_task(void *p, int task, int thread) {
    lq_job *j = p;
    const int n_panels = (j->N + j->NP - 1) / j->NP, p0 = task * j->BP;
    const int bp = n_panels - p0 < j->BP ? n_panels - p0 : j->BP, slots = j->w2 ? 2 : 1, units = bp * slots;
    uint8_t *s = j->scratch + (size_t)thread * j->per_thread;
    tkr_lq_panel P[2 * LQ_MAX_BP];
    for (int u = 0; u < units; u++)
        panel_unpack(j, u % slots ? j->w2 : j->w, p0 + u / slots, s + (size_t)u * j->unit_bytes, &P[u]);
    float *out = (float *)(s + j->out_off), *tg = (float *)(s + j->tmp_off);
    const int RW = j->X.RW, NR = j->isa.NR, n_rg = j->X.Mpad / RW, G = j->f.G;
    const int step = j->isa.k2 ? 2 : 1, n_steps = (n_rg + step - 1) / step, chunks = (G + j->GC - 1) / j->GC;
    const int out_steps = chunks > 1 ? n_steps : 1; /* one K chunk: the accumulators need not wait */
    const size_t out_unit = (size_t)j->NP * step * RW; /* floats of one (unit, row step) */
    /* the next block this thread likely takes (the pool hands tasks out in order) */
    lq_prefetch pf[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
    const int nb0 = (task + j->threads) * j->BP;
    if (nb0 < n_panels) {
        const int nbp = n_panels - nb0 < j->BP ? n_panels - nb0 : j->BP;
        const int last = nb0 * j->NP + nbp * j->NP < j->N ? nb0 * j->NP + nbp * j->NP : j->N;
        const size_t rb = tkr_dtype_row_bytes(j->f.wt, j->f.K);
        const size_t calls = (size_t)chunks * n_steps * bp * ((j->NP + NR - 1) / NR);
        for (int sl = 0; sl < slots; sl++)
            prefetch_plan(&pf[sl], (const uint8_t *)(sl ? j->w2 : j->w)->data + (size_t)nb0 * j->NP * rb,
                          (size_t)(last - nb0 * j->NP) * rb, calls);
    }
    for (int g0 = 0; g0 < G; g0 += j->GC) {
        const int g1 = G - g0 < j->GC ? G : g0 + j->GC;
        for (int st = 0; st < n_steps; st++) {
            const int rg = st * step, mv = n_rg - rg < step ? n_rg - rg : step;
            const tkr_lq_kernel_fn kern = mv == 2 ? j->isa.k2 : j->isa.k1;
            const int ost = out_steps > 1 ? st : 0;
            for (int pb = 0; pb < bp; pb++) {
                int n0;
                const int np = panel_rows(j, p0 + pb, &n0);
                for (int sl = 0; sl < slots; sl++) {
                    const int u = pb * slots + sl;
                    float *o = out + ((size_t)u * out_steps + ost) * out_unit;
                    for (int jn = 0; jn < np; jn += NR) {
                        prefetch_step_read(&pf[sl]);
                        kern(&j->f, &j->X, rg, &P[u], jn, np - jn < NR ? np - jn : NR, g0, g1, o + (size_t)jn * mv * RW);
                    }
                }
                if (g1 < G) continue;
                /* the last chunk: this panel's rows of this step are done */
                const int m0 = rg * RW, rows = j->M - m0 < mv * RW ? j->M - m0 : mv * RW;
                const float *og = out + ((size_t)(pb * slots) * out_steps + ost) * out_unit;
                if (!j->w2) {
                    store_tile(j, og, mv * RW, np, m0, j->M, j->y, j->N, n0, j->bias);
                } else { /* both tiles to rows [rows][np], silu(gate) * up, then into y */
                    float *tu = tg + (size_t)np * mv * RW;
                    store_tile(j, og, mv * RW, np, 0, rows, tg, np, 0, NULL);
                    store_tile(j, og + (size_t)out_steps * out_unit, mv * RW, np, 0, rows, tu, np, 0, NULL);
                    silu_mul_like_kctx(j, tg, tu, (size_t)rows * np);
                    for (int r = 0; r < rows; r++)
                        memcpy(j->y + (size_t)(m0 + r) * j->N + n0, tg + (size_t)r * np, sizeof(float) * (size_t)np);
                }
            }
        }
    }
}

static tkr_status linear_quant(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                               const tkr_tensor *w2, const tkr_tensor *bias, float *y) {
    const int N = (int)w->shape[0];
    if (M <= 0 || N <= 0) return TKR_OK;
    if (w->ndim != 2 || w->shape[1] != K) return TKR_ERR_INVALID_ARG;
    if (w2 && (w2->dtype != w->dtype || w2->ndim != 2 || w2->shape[0] != N || w2->shape[1] != K))
        return TKR_ERR_INVALID_ARG;
    lq_job j;
    memset(&j, 0, sizeof j);
    tkr_lq_isa isa = {1, PORTABLE_NR, 128, false, kernel_portable, NULL};
    bool ok = false;
#ifdef TKR_HAVE_X86
    if (!ok && ctx->avx512 && ctx->avx512_vnni) ok = tkr_lq_select_avx512(&(tkr_lq_fmt){.wt = w->dtype}, &isa);
    if (!ok && ctx->avx2) ok = tkr_lq_select_avx2(&(tkr_lq_fmt){.wt = w->dtype}, ctx->avx_vnni, &isa);
#endif
#ifdef TKR_HAVE_NEON
    if (!ok && ctx->neon) ok = tkr_lq_select_neon(&(tkr_lq_fmt){.wt = w->dtype}, ctx->neon_dot, &isa);
#endif
    (void)ok;
    if (!fmt_init(w->dtype, K, &isa, &j.f)) return TKR_ERR_INVALID_ARG;
    j.isa = isa;
    j.avx2 = ctx->avx2;
    j.x = x;
    j.M = M;
    j.N = N;
    j.w = w;
    j.w2 = w2;
    j.y = y;
#ifdef TKR_HAVE_NEON
    j.neon = ctx->neon;
#endif
    const int threads = tkr_pool_size(ctx->pool);
    j.threads = threads;
    const int RW = isa.RW, G = j.f.G;
    /* Panels of NP rows: a multiple of NR, about 32 rows, fewer when N is small so that every
     * thread gets work. */
    int NP = isa.NR * ((32 + isa.NR - 1) / isa.NR);
    while (NP > isa.NR && (N + NP - 1) / NP < threads * 2) NP -= isa.NR;
    j.NP = NP;
    /* activations */
    int Mpad = (M + RW - 1) / RW * RW;
    j.X.M = M;
    j.X.Mpad = Mpad;
    j.X.RW = RW;
    size_t q_bytes = align64((size_t)Mpad * K), g_bytes = align64(sizeof(float) * (size_t)Mpad * G);
    const int n_g = 1 + (j.f.has_min ? 1 : 0) + (j.f.wunsigned ? 1 : 0); /* dx, xmin, xc */
    size_t shared = q_bytes + g_bytes * n_g + align64(sizeof(float) * (size_t)N);
    /* per thread: the panel (bytes, dw, corr, wmin), the output tile, the row quantizer's blocks */
    j.panel_w_bytes = align64((size_t)NP * K);
    j.panel_g_bytes = align64(sizeof(float) * (size_t)NP * G);
    /* blocks of BP panels when the quantized activations outgrow a part of L2 (else one panel
     * per task was measured as fast or faster), about 4 tasks per thread for the balance */
    const int n_panels = (N + NP - 1) / NP, slots = w2 ? 2 : 1;
    j.BP = (size_t)Mpad * K > 262144 ? n_panels / (4 * threads) : 1;
    if (j.BP < 1) j.BP = 1;
    if (j.BP > LQ_MAX_BP) j.BP = LQ_MAX_BP;
    const int step = isa.k2 ? 2 : 1, n_steps = (Mpad / RW + step - 1) / step;
    /* K chunk: the block's weights and an activation tile (step RW rows) within ~512 KB, a part
     * of L2, so that the weights stay there while all the rows pass */
    j.GC = (int)(524288 / ((size_t)(j.BP * slots * NP + step * RW) * j.f.gsize));
    if (j.GC < 1) j.GC = 1;
    const int out_steps = j.GC < G ? n_steps : 1;
    j.unit_bytes = j.panel_w_bytes + 3 * j.panel_g_bytes;
    j.out_off = j.unit_bytes * (size_t)(j.BP * slots);
    j.tmp_off = j.out_off + align64(sizeof(float) * (size_t)j.BP * slots * out_steps * NP * step * RW);
    j.per_thread = j.tmp_off + (w2 ? 2 * align64(sizeof(float) * (size_t)NP * step * RW) : 0);
    size_t rt = align64(row_tmp_bytes(&j.f)) * (size_t)RW; /* prep_task: RW rows of blocks */
    if (rt > j.per_thread) j.per_thread = rt;
    uint8_t *mem = NULL;
    if (posix_memalign((void **)&mem, 64, shared + j.per_thread * (size_t)threads) != 0) return TKR_ERR_NOMEM;
    j.X.q = mem;
    j.X.dx = (float *)(mem + q_bytes);
    j.X.xmin = j.f.has_min ? (float *)(mem + q_bytes + g_bytes) : NULL;
    j.X.xc = j.f.wunsigned ? (int32_t *)(mem + q_bytes + g_bytes * (n_g - 1)) : NULL;
    float *bias_f = (float *)(mem + q_bytes + g_bytes * n_g);
    j.scratch = mem + shared;
    if (bias) {
        tkr_weight_row_f32(bias, 0, bias_f);
        j.bias = bias_f;
    }
    tkr_pool_run(ctx->pool, Mpad / RW, prep_task, &j);
    tkr_pool_run(ctx->pool, (n_panels + j.BP - 1) / j.BP, gemm_task, &j);
    free(mem);
    return TKR_OK;
}

tkr_status tkr_linear_quant(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *w,
                            const tkr_tensor *bias, float *y) {
    return linear_quant(ctx, x, M, K, w, NULL, bias, y);
}

/* Both products of one quantized activation, and silu_mul on each output tile while it is in
 * L1: gate [M, N] and up [M, N] never reach memory (at 2048 rows they are 73 MB each for the
 * 2B, written, read back by silu_mul, and the product written again). */
tkr_status tkr_linear_quant_silu_gate(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *wg,
                                      const tkr_tensor *wu, float *y) {
    return linear_quant(ctx, x, M, K, wg, wu, NULL, y);
}

tkr_status tkr_linear_silu_gate(const tkr_kctx *ctx, const float *x, int M, int K, const tkr_tensor *wg,
                                const tkr_tensor *wu, float *gate, float *up) {
    if (tkr_dtype_is_quant(wg->dtype) && wu->dtype == wg->dtype && wu->ndim == 2 && wg->ndim == 2 &&
        wu->shape[0] == wg->shape[0] && wu->shape[1] == wg->shape[1])
        return tkr_linear_quant_silu_gate(ctx, x, M, K, wg, wu, gate);
    tkr_status st;
    if ((st = tkr_linear(ctx, x, M, K, wg, NULL, gate)) != TKR_OK) return st;
    if ((st = tkr_linear(ctx, x, M, K, wu, NULL, up)) != TKR_OK) return st;
    tkr_silu_mul(ctx, gate, up, (size_t)M * (size_t)wg->shape[0]);
    return TKR_OK;
}

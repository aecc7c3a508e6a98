/* cuda_gemm.cu - the GEMM wrapper every linear layer goes through.
 *
 * bf16 mode: cuBLASLt, so that the bias add and the residual add happen in the GEMM's epilogue
 * instead of in separate passes over HBM: D = x W^T (+ bias) (+ D when accumulating; beta = 1
 * reads the float32 residual stream as C and writes it back as D). Each shape (M, N, K, ldx,
 * output type, epilogue, beta) gets its descriptors and algorithm once, from cuBLASLt's
 * heuristic with the backend's 32 MiB workspace, or the fastest candidate with the same bits
 * (cuda_gemm_tune.cu), and keeps them (Backend::plans): results repeat bit for bit run to run.
 * Where cuBLASLt has no algorithm for a combination (or TKR_CUDA_LT=0), cublasGemmEx does the
 * product and the caller adds the bias (bias_done stays false). fp32 mode: cublasSgemm
 * (PEDANTIC math, no TF32) with beta = 1 for accumulation; biases are the caller's. */
#include "backend/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>

namespace tkrcuda {

/* One cuBLASLt plan: the key it was made for, its descriptors and the chosen algorithm. */
struct LtPlan {
    int M, N, K, ldx, out_g, bias, acc;
    bool ok;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

namespace {

constexpr size_t LT_WS = 32u << 20; /* the workspace cuda_backend.cu allocates (Backend::blas_ws) */
constexpr int MAX_PLANS = 1024;     /* plans kept; beyond, the oldest is replaced */

void plan_destroy(LtPlan &p) {
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
}

/* Makes the plan for a key: descriptors, then the heuristic's first algorithm, tuned on the live
 * operands W, x (bias: the bias vector of a bias plan); ok = false when any step fails (the
 * caller then uses cublasGemmEx). */
void plan_make(Backend *be, LtPlan &p, const void *W, const void *x, const float *bias) {
    p.ok = false;
    p.desc = nullptr;
    p.a = p.b = p.c = nullptr;
    cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) return;
    cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA);
    cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB);
    if (p.bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_32F; /* our biases are float32, also under a bf16 output */
        if (cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) !=
                CUBLAS_STATUS_SUCCESS)
            return;
    }
    /* column-major view: W [N, K] row-major is K x N (ld K), transposed; x is K x M (ld ldx); y N x M */
    cudaDataType_t ot = p.out_g ? CUDA_R_16BF : CUDA_R_32F;
    if (cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, p.K, p.N, p.K) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, p.K, p.M, p.ldx) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p.c, ot, p.N, p.M, p.N) != CUBLAS_STATUS_SUCCESS)
        return;
    cublasLtMatmulPreference_t pref = nullptr;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return;
    size_t ws = LT_WS;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(be->lt, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || n < 1 || res.state != CUBLAS_STATUS_SUCCESS) return;
    p.algo = res.algo;
    p.ok = true;
    /* a faster algorithm with the same bits, if cuBLASLt has one (cuda_gemm_tune.cu) */
    if (p.bias) cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    TuneShape ts = {p.desc, p.a, p.b, p.c, p.M, p.N, p.K, p.ldx, (bool)p.out_g, (bool)p.bias, (bool)p.acc,
                    &res.algo, W, x};
    lt_tune(be, ts, &p.algo);
}

/* The plan for a key, made on first use (a plan made again gives the same algorithm: the
 * heuristic is deterministic and the tuning decisions are kept per bucket); nullptr when the
 * table cannot grow. */
LtPlan *plan_for(Backend *be, int M, int N, int K, int ldx, bool out_g, bool bias, bool acc, const void *W,
                 const void *x, const float *bias_ptr) {
    for (int i = 0; i < be->n_plans; i++) {
        LtPlan &p = be->plans[i];
        if (p.M == M && p.N == N && p.K == K && p.ldx == ldx && p.out_g == out_g && p.bias == bias && p.acc == acc)
            return &p;
    }
    LtPlan *slot;
    if (be->n_plans == MAX_PLANS) { /* full (a server sees many row counts): the oldest plan goes */
        slot = &be->plans[be->next_evict];
        be->next_evict = (be->next_evict + 1) % MAX_PLANS;
        plan_destroy(*slot);
    } else {
        if (be->n_plans == be->cap_plans) {
            int cap = be->cap_plans ? be->cap_plans * 2 : 64;
            LtPlan *np = (LtPlan *)realloc(be->plans, sizeof(LtPlan) * (size_t)cap);
            if (!np) return nullptr;
            be->plans = np;
            be->cap_plans = cap;
        }
        slot = &be->plans[be->n_plans++];
    }
    LtPlan &p = *slot;
    p.M = M;
    p.N = N;
    p.K = K;
    p.ldx = ldx;
    p.out_g = out_g;
    p.bias = bias;
    p.acc = acc;
    plan_make(be, p, W, x, bias_ptr);
    return &p;
}

} // namespace

void gemm_plans_free(Backend *be) {
    for (int i = 0; i < be->n_plans; i++) plan_destroy(be->plans[i]);
    free(be->plans);
    be->plans = nullptr;
    be->n_plans = be->cap_plans = be->next_evict = 0;
    free(be->tune);
    be->tune = nullptr;
    be->n_tune = be->cap_tune = 0;
    if (be->tune_y.p) cudaFree(be->tune_y.p);
    be->tune_y = DevBuf();
    if (be->lt) cublasLtDestroy(be->lt);
    be->lt = nullptr;
}

tkr_status linear(Backend *be, const void *x, int M, const Linear &L, void *y, tkr_error *err, int ldx, bool out_g,
                  bool accumulate, bool *bias_done) {
    if (bias_done) *bias_done = false;
    if (M <= 0) return TKR_OK;
    if (accumulate && out_g) return tkr_fail(err, TKR_ERR_INTERNAL, "CUDA GEMM: accumulation needs a float output");
    const void *W = nullptr;
    tkr_status wst = weight_of(be, L, &W, err);
    if (wst != TKR_OK) return wst;
    const float one = 1.0f, zero = 0.0f;
    const float *beta = accumulate ? &one : &zero;
    int ld = ldx > 0 ? ldx : L.K;
    bool want_bias = bias_done && L.b;
    if (!be->fp32 && be->lt && (want_bias || accumulate || be->lt_all)) {
        LtPlan *p = plan_for(be, M, L.N, L.K, ld, out_g, want_bias, accumulate, W, x, L.b);
        if (p && p->ok) {
            if (want_bias)
                cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &L.b, sizeof L.b);
            cublasStatus_t st = cublasLtMatmul(be->lt, p->desc, &one, W, p->a, x, p->b, beta, y, p->c, y, p->c,
                                               &p->algo, be->blas_ws, LT_WS, be->stream);
            if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(err, st, "matrix product (cuBLASLt)");
            if (bias_done) *bias_done = want_bias;
            return TKR_OK;
        }
    }
    cublasStatus_t st;
    if (be->fp32)
        st = cublasSgemm(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, L.N, M, L.K, &one, (const float *)W, L.K,
                         (const float *)x, ld, beta, (float *)y, L.N);
    else
        st = cublasGemmEx(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, L.N, M, L.K, &one, W, CUDA_R_16BF, L.K, x,
                          CUDA_R_16BF, ld, beta, y, out_g ? CUDA_R_16BF : CUDA_R_32F, L.N, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(err, st, "matrix product");
    return TKR_OK;
}

} // namespace tkrcuda

/* cuda_gemm_tune.cu - picks, for one GEMM shape, the fastest of cuBLASLt's candidate algorithms
 * whose result is bit-identical to the heuristic's first choice.
 *
 * Why: the heuristic's first algorithm is often not the fastest for our shapes: on an H200 with
 * cuBLAS 13.1 (bench/bench_gemm_algos) the text o_proj ran at 468-482 TFLOP/s where another tile
 * ran at 557-574, gate|up at 751-773 against 803-823. Timing the candidates buys that back. The
 * catch is determinism: a choice made by timing could differ between processes, and with it the
 * vectors. So a candidate is only taken when its output is bit for bit the first choice's (every
 * candidate measured was: one kernel family, no split-K, the K sum in the same order), and the
 * vectors stay exactly what the heuristic alone gives, whichever candidate wins.
 *
 * Cost: timing takes about 30 runs of the product and a stream sync. A server sees a new row
 * count M with almost every batch, so the timing is done once per bucket of M (the same product
 * and epilogue, M in [2^k, 2^(k+1))); a later M of the bucket takes the bucket's winner after a
 * bit check of the two algorithms on its first CHECK_ROWS rows of the live input (two small
 * products). Each output element's K sum is a property of the algorithm's configuration, not of
 * M, so the rows checked stand for all. TKR_CUDA_LT_TUNE=N times at most N buckets per backend
 * (default 64; 0: off), TKR_CUDA_LT_TUNE_MIN=F only products of at least F FLOP (default 1e9:
 * small ones gain microseconds); TKR_CUDA_LT_TUNE_LOG=1 prints each decision to stderr. */
#include "backend/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace tkrcuda {

namespace {

constexpr int MAX_CAND = 16;
constexpr int CHECK_ROWS = 256;     /* rows of a later shape of a bucket checked bit for bit */
constexpr size_t LT_WS = 32u << 20; /* the workspace the plans use (cuda_gemm.cu) */

__global__ void k_count_diff(const uint32_t *a, const uint32_t *b, size_t n, unsigned long long *out) {
    unsigned long long c = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        c += a[i] != b[i];
    if (c) atomicAdd(out, c);
}

bool same_algo(const cublasLtMatmulAlgo_t &x, const cublasLtMatmulAlgo_t &y) { return !memcmp(&x, &y, sizeof x); }

/* The candidates besides ref: the heuristic's list for desc; where cuBLASLt refuses to list more
 * than one (seen with the bias epilogue), the list for the same product without the epilogue,
 * each then checked against desc. Returns how many went into out. */
int candidates(Backend *be, const TuneShape &s, cublasLtMatmulAlgo_t *out) {
    cublasLtMatmulPreference_t pref = nullptr;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return 0;
    size_t ws = LT_WS;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res[MAX_CAND];
    int n = 0, k = 0;
    bool check = false;
    if (cublasLtMatmulAlgoGetHeuristic(be->lt, s.desc, s.a, s.b, s.c, s.c, pref, MAX_CAND, res, &n) !=
        CUBLAS_STATUS_SUCCESS) {
        n = 0;
        cublasLtMatmulDesc_t plain = nullptr;
        cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
        if (cublasLtMatmulDescCreate(&plain, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS) {
            cublasLtMatmulDescSetAttribute(plain, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA);
            cublasLtMatmulDescSetAttribute(plain, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB);
            if (cublasLtMatmulAlgoGetHeuristic(be->lt, plain, s.a, s.b, s.c, s.c, pref, MAX_CAND, res, &n) !=
                CUBLAS_STATUS_SUCCESS)
                n = 0;
            cublasLtMatmulDescDestroy(plain);
        }
        check = true;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    for (int i = 0; i < n; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || same_algo(res[i].algo, *s.ref)) continue;
        if (check) {
            cublasLtMatmulHeuristicResult_t chk;
            if (cublasLtMatmulAlgoCheck(be->lt, s.desc, s.a, s.b, s.c, s.c, &res[i].algo, &chk) !=
                    CUBLAS_STATUS_SUCCESS ||
                chk.workspaceSize > LT_WS)
                continue;
        }
        out[k++] = res[i].algo;
    }
    return k;
}

/* One run of algo into y (beta as the shape's: the scratch output stands in for C). */
bool run_algo(Backend *be, const TuneShape &s, const cublasLtMatmulAlgo_t &algo, void *y) {
    const float one = 1.0f, zero = 0.0f;
    return cublasLtMatmul(be->lt, s.desc, &one, s.W, s.a, s.x, s.b, s.acc ? &one : &zero, y, s.c, y, s.c, &algo,
                          be->blas_ws, LT_WS, be->stream) == CUBLAS_STATUS_SUCCESS;
}

/* Best of two timed runs after a warm-up, in ms; a negative value when the algorithm fails. */
float time_algo(Backend *be, const TuneShape &s, const cublasLtMatmulAlgo_t &algo, void *y, cudaEvent_t e0,
                cudaEvent_t e1) {
    float best = -1.0f;
    for (int r = 0; r < 3; r++) {
        cudaEventRecord(e0, be->stream);
        if (!run_algo(be, s, algo, y)) return -1.0f;
        cudaEventRecord(e1, be->stream);
        float ms = 0;
        if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) return -1.0f;
        if (r > 0 && (best < 0 || ms < best)) best = ms;
    }
    return best;
}

/* Whether algo's output, run into y after zeroing it, equals the reference output ref_y (made
 * from zeroed C too) bit for bit. */
bool identical(Backend *be, const TuneShape &s, const cublasLtMatmulAlgo_t &algo, void *y, const void *ref_y,
               size_t bytes, unsigned long long *d_count) {
    unsigned long long h = 1;
    if (cudaMemsetAsync(y, 0, bytes, be->stream) != cudaSuccess || !run_algo(be, s, algo, y) ||
        cudaMemsetAsync(d_count, 0, sizeof *d_count, be->stream) != cudaSuccess)
        return false;
    k_count_diff<<<1024, 256, 0, be->stream>>>((const uint32_t *)y, (const uint32_t *)ref_y, bytes / 4, d_count);
    if (cudaMemcpyAsync(&h, d_count, sizeof h, cudaMemcpyDeviceToHost, be->stream) != cudaSuccess ||
        cudaStreamSynchronize(be->stream) != cudaSuccess)
        return false;
    return h == 0;
}

/* The full tuning of s (the first shape of its bucket): every candidate timed on the live operands
 * into scratch outputs; the fastest at least 2% under the reference whose bits match is taken.
 * True when another algorithm was taken (in *chosen). */
bool time_shape(Backend *be, const TuneShape &s, cublasLtMatmulAlgo_t *chosen) {
    *chosen = *s.ref;
    cublasLtMatmulAlgo_t cand[MAX_CAND];
    int n = candidates(be, s, cand);
    if (n == 0) return false;
    const size_t bytes = (size_t)s.M * s.N * (s.out_g ? 2 : 4);
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || 2 * bytes > free_b / 4) return false;
    void *y = nullptr, *ref_y = nullptr;
    unsigned long long *d_count = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    bool ok = cudaMalloc(&y, bytes) == cudaSuccess && cudaMalloc(&ref_y, bytes) == cudaSuccess &&
              cudaMalloc(&d_count, sizeof *d_count) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
              cudaEventCreate(&e1) == cudaSuccess && cudaMemsetAsync(ref_y, 0, bytes, be->stream) == cudaSuccess &&
              run_algo(be, s, *s.ref, ref_y);
    float ms[MAX_CAND], ref_ms = ok ? time_algo(be, s, *s.ref, y, e0, e1) : -1.0f;
    ok = ok && ref_ms > 0;
    const bool log = getenv("TKR_CUDA_LT_TUNE_LOG") != nullptr;
    for (int i = 0; ok && i < n; i++) ms[i] = time_algo(be, s, cand[i], y, e0, e1);
    /* the fastest candidate at least 2% under the reference whose bits match, tried fastest first */
    bool taken = false;
    while (ok) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (ms[i] > 0 && ms[i] < 0.98f * ref_ms && (best < 0 || ms[i] < ms[best])) best = i;
        if (best < 0) break;
        if (identical(be, s, cand[best], y, ref_y, bytes, d_count)) {
            *chosen = cand[best];
            taken = true;
            if (log)
                fprintf(stderr, "lt-tune M %d N %d K %d: %d candidates, heuristic %.4f ms, taken %.4f ms\n", s.M, s.N,
                        s.K, n, ref_ms, ms[best]);
            break;
        }
        if (log) fprintf(stderr, "lt-tune M %d N %d K %d: a candidate differs in its bits: not taken\n", s.M, s.N, s.K);
        ms[best] = -1.0f;
    }
    if (log && ok && !taken)
        fprintf(stderr, "lt-tune M %d N %d K %d: %d candidates, the heuristic's %.4f ms kept\n", s.M, s.N, s.K, n,
                ref_ms);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(y);
    cudaFree(ref_y);
    cudaFree(d_count);
    cudaGetLastError(); /* a failed candidate leaves nothing behind */
    return taken;
}

/* Whether algo gives ref's bits on s's first rows (at most CHECK_ROWS; zeroed C), in be->tune_y. */
bool same_bits_on_rows(Backend *be, const TuneShape &s, const cublasLtMatmulAlgo_t &algo) {
    const int rows = s.M < CHECK_ROWS ? s.M : CHECK_ROWS;
    const size_t bytes = (size_t)rows * s.N * (s.out_g ? 2 : 4);
    tkr_error err;
    if (ensure(be->tune_y, 2 * bytes + 256, false, &err) != TKR_OK) return false;
    char *y0 = (char *)be->tune_y.p, *y1 = y0 + bytes;
    unsigned long long *d_count = (unsigned long long *)(((uintptr_t)(y1 + bytes) + 7) & ~(uintptr_t)7);
    cublasLtMatrixLayout_t b = nullptr, c = nullptr;
    bool ok = cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, s.K, rows, s.ldx) == CUBLAS_STATUS_SUCCESS &&
              cublasLtMatrixLayoutCreate(&c, s.out_g ? CUDA_R_16BF : CUDA_R_32F, s.N, rows, s.N) ==
                  CUBLAS_STATUS_SUCCESS;
    TuneShape v = s;
    v.M = rows;
    v.b = b;
    v.c = c;
    cublasLtMatmulHeuristicResult_t chk;
    ok = ok && cublasLtMatmulAlgoCheck(be->lt, v.desc, v.a, b, c, c, s.ref, &chk) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulAlgoCheck(be->lt, v.desc, v.a, b, c, c, &algo, &chk) == CUBLAS_STATUS_SUCCESS &&
         cudaMemsetAsync(y0, 0, bytes, be->stream) == cudaSuccess && run_algo(be, v, *s.ref, y0);
    ok = ok && identical(be, v, algo, y1, y0, bytes, d_count);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    cudaGetLastError();
    return ok;
}

} // namespace

void lt_tune(Backend *be, const TuneShape &s, cublasLtMatmulAlgo_t *chosen) {
    *chosen = *s.ref;
    if (be->lt_tune_max <= 0 || 2.0 * s.M * s.N * s.K < be->lt_tune_min) return;
    int bucket = 0;
    while ((s.M >> (bucket + 1)) > 0) bucket++;
    TuneRec *r = nullptr;
    for (int i = 0; i < be->n_tune; i++) {
        TuneRec &q = be->tune[i];
        if (q.N == s.N && q.K == s.K && q.ldx == s.ldx && q.out_g == s.out_g && q.bias == s.bias &&
            q.acc == s.acc && q.bucket == bucket) {
            r = &q;
            break;
        }
    }
    const bool log = getenv("TKR_CUDA_LT_TUNE_LOG") != nullptr;
    if (!r) { /* the bucket's first shape: time the candidates */
        if (be->n_tune >= be->lt_tune_max) return;
        if (be->n_tune == be->cap_tune) {
            int cap = be->cap_tune ? 2 * be->cap_tune : 16;
            TuneRec *nt = (TuneRec *)realloc(be->tune, sizeof(TuneRec) * (size_t)cap);
            if (!nt) return;
            be->tune = nt;
            be->cap_tune = cap;
        }
        r = &be->tune[be->n_tune++];
        *r = TuneRec{s.N, s.K, s.ldx, s.out_g, s.bias, s.acc, bucket, false, *s.ref};
        r->taken = time_shape(be, s, &r->algo);
        if (r->taken) *chosen = r->algo;
        return;
    }
    if (!r->taken || same_algo(r->algo, *s.ref)) return;
    const bool same = same_bits_on_rows(be, s, r->algo);
    if (same) *chosen = r->algo;
    if (log)
        fprintf(stderr, "lt-tune M %d N %d K %d: the bucket's algorithm %s\n", s.M, s.N, s.K,
                same ? "taken (same bits on the rows checked)" : "not taken (other bits)");
}

} // namespace tkrcuda

/* bench_gemm_algos.cu - how fast each of cuBLASLt's candidate algorithms runs the model's GEMM
 * shapes, against the heuristic's first choice (the one cuda_gemm.cu takes).
 *
 * Why: 29 of the 37 ms of a 2B text pass are cuBLASLt GEMMs. Whether timing the candidates at load
 * (autotuning) would buy anything is a measurement, not a guess; this prints it per shape.
 *   build-cuda/bench/bench_gemm_algos [candidates (default 16)] [runs (default 20)] [--search SECONDS]
 * --search also tries every configuration cuBLASLt accepts (ids x tiles x stages x clusters x CTA
 * swizzle, no split-K) for up to SECONDS per shape: is there more than the heuristic lists?
 * Shapes: Qwen2-VL 2B text at 8192 tokens, vision tower at 81920 patches (16 images of 1280
 * tokens). Epilogues as the forward uses them: bias (float32), accumulate into float32 (beta 1).
 * Each candidate's output is also compared with the first one's, word for word (the tuner only
 * takes candidates whose bits match). */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace {

struct Shape {
    const char *name;
    int M, N, K;
    bool bias, acc; /* acc: float32 output with beta = 1; else bf16 output */
};

const Shape SHAPES[] = {
    {"text qkv   8192x2048x1536 +bias", 8192, 2048, 1536, true, false},
    {"text o     8192x1536x1536 +=", 8192, 1536, 1536, false, true},
    {"text gu    8192x17920x1536", 8192, 17920, 1536, false, false},
    {"text down  8192x1536x8960 +=", 8192, 1536, 8960, false, true},
    {"vis qkv    81920x3840x1280 +bias", 81920, 3840, 1280, true, false},
    {"vis proj   81920x1280x1280 +bias +=", 81920, 1280, 1280, true, true},
    {"vis fc1    81920x5120x1280 +bias", 81920, 5120, 1280, true, false},
    {"vis fc2    81920x1280x5120 +bias +=", 81920, 1280, 5120, true, true},
};

#define CK(x)                                                                                                  \
    do {                                                                                                       \
        auto e_ = (x);                                                                                         \
        if ((int)e_ != 0) {                                                                                    \
            fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, (int)e_);                      \
            exit(1);                                                                                           \
        }                                                                                                      \
    } while (0)

__global__ void fill(__nv_bfloat16 *p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        p[i] = __float2bfloat16(((h >> 8) & 0xffff) / 65536.0f - 0.5f);
    }
}

__global__ void count_diff(const unsigned *a, const unsigned *b, size_t n, unsigned long long *out) {
    unsigned long long c = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        c += a[i] != b[i];
    if (c) atomicAdd(out, c);
}

/* Milliseconds per run of one algorithm (median of `runs`), or -1 when it fails. */
float time_algo(cublasLtHandle_t lt, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                cublasLtMatrixLayout_t c, const cublasLtMatmulAlgo_t *algo, const void *W, const void *X, void *Y,
                float beta, void *ws, size_t wsz, int runs) {
    const float one = 1.0f;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    std::vector<float> t;
    for (int r = -2; r < runs; r++) {
        cudaEventRecord(e0);
        if (cublasLtMatmul(lt, d, &one, W, a, X, b, &beta, Y, c, Y, c, algo, ws, wsz, 0) != CUBLAS_STATUS_SUCCESS)
            return -1;
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (r >= 0) t.push_back(ms);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/* --search: every (algorithm id, tile, stages, cluster shape, CTA swizzle) cuBLASLt accepts for the
 * shape, without split-K, timed (best of 2 after a warm-up, at most `budget_s` seconds); prints
 * the five fastest, each with its bits against Yref (the heuristic's first output, zeroed C). */
void search(cublasLtHandle_t lt, const Shape &s, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
            cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, const void *W, const void *X, void *Y,
            const void *Yref, unsigned long long *ndiff, void *ws, size_t wsz, double budget_s) {
    const cudaDataType_t ot = s.acc ? CUDA_R_32F : CUDA_R_16BF;
    int ids[64], nid = 0;
    if (cublasLtMatmulAlgoGetIds(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, ot, ot, 64, ids, &nid) !=
        CUBLAS_STATUS_SUCCESS)
        return;
    struct Found {
        cublasLtMatmulAlgo_t algo;
        float ms;
        int id, tile, stages, cluster, swz;
    };
    std::vector<Found> found;
    const uint16_t clusters[] = {0, 2, 3, 5, 6, 4, 8};
    auto t_start = std::chrono::steady_clock::now();
    int tried = 0, valid = 0;
    bool out_of_time = false;
    for (int ii = 0; ii < nid && !out_of_time; ii++) {
        cublasLtMatmulAlgo_t algo;
        if (cublasLtMatmulAlgoInit(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16BF, CUDA_R_16BF, ot, ot, ids[ii], &algo) !=
            CUBLAS_STATUS_SUCCESS)
            continue;
        size_t w = 0;
        uint32_t tiles[128], stages[128];
        int ntile = 0, nstage = 0, swz_ok = 0;
        if (cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_TILE_IDS, tiles, sizeof tiles, &w) ==
            CUBLAS_STATUS_SUCCESS)
            ntile = (int)(w / sizeof tiles[0]);
        if (cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_STAGES_IDS, stages, sizeof stages, &w) ==
            CUBLAS_STATUS_SUCCESS)
            nstage = (int)(w / sizeof stages[0]);
        cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT, &swz_ok, sizeof swz_ok, &w);
        if (ntile == 0) tiles[ntile++] = 0;
        if (nstage == 0) stages[nstage++] = 0;
        for (int ti = 0; ti < ntile && !out_of_time; ti++)
            for (int si = 0; si < nstage && !out_of_time; si++)
                for (uint16_t cl : clusters)
                    for (int swz = 0; swz <= (swz_ok ? 1 : 0); swz++) {
                        cublasLtMatmulAlgo_t x = algo;
                        int32_t one_split = 1;
                        uint32_t sw = (uint32_t)swz;
                        cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_TILE_ID, &tiles[ti], sizeof tiles[ti]);
                        cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages[si],
                                                             sizeof stages[si]);
                        cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one_split, sizeof one_split);
                        cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &sw, sizeof sw);
                        cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cl, sizeof cl);
                        cublasLtMatmulHeuristicResult_t chk;
                        tried++;
                        if (cublasLtMatmulAlgoCheck(lt, d, a, b, c, c, &x, &chk) != CUBLAS_STATUS_SUCCESS ||
                            chk.workspaceSize > wsz)
                            continue;
                        valid++;
                        float ms = time_algo(lt, d, a, b, c, &x, W, X, Y, s.acc ? 1.0f : 0.0f, ws, wsz, 2);
                        cudaGetLastError();
                        if (ms > 0) found.push_back({x, ms, ids[ii], (int)tiles[ti], (int)stages[si], (int)cl, swz});
                        out_of_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start)
                                          .count() > budget_s;
                    }
    }
    std::sort(found.begin(), found.end(), [](const Found &p, const Found &q) { return p.ms < q.ms; });
    const double flop = 2.0 * s.M * s.N * s.K;
    const size_t obytes = (size_t)s.M * s.N * (s.acc ? 4 : 2);
    printf("  search: %d algorithm ids, %d configurations tried, %d valid, %zu ran%s\n", nid, tried, valid,
           found.size(), out_of_time ? " (time budget reached)" : "");
    for (size_t i = 0; i < found.size() && i < 5; i++) {
        const float one = 1.0f, beta = s.acc ? 1.0f : 0.0f;
        CK(cudaMemset(Y, 0, obytes));
        CK(cublasLtMatmul(lt, d, &one, W, a, X, b, &beta, Y, c, Y, c, &found[i].algo, ws, wsz, 0));
        CK(cudaMemset(ndiff, 0, sizeof *ndiff));
        count_diff<<<1024, 256>>>((const unsigned *)Y, (const unsigned *)Yref, obytes / 4, ndiff);
        unsigned long long h = 0;
        CK(cudaMemcpy(&h, ndiff, sizeof h, cudaMemcpyDeviceToHost));
        printf("  search #%zu algo %d tile %d stages %d cluster %d swizzle %d: %.4f ms %.1f TFLOP/s, %llu words differ\n",
               i, found[i].id, found[i].tile, found[i].stages, found[i].cluster, found[i].swz, found[i].ms,
               flop / found[i].ms / 1e9, h);
    }
}

} // namespace

int main(int argc, char **argv) {
    double search_s = 0; /* --search SECONDS: the exhaustive search per shape, this long at most */
    if (argc > 2 && !strcmp(argv[argc - 2], "--search")) {
        search_s = atof(argv[argc - 1]);
        argc -= 2;
    }
    int cand = argc > 1 ? atoi(argv[1]) : 16, runs = argc > 2 ? atoi(argv[2]) : 20;
    if (cand < 1 || cand > 64 || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_gemm_algos [candidates 1-64] [runs 1-1000] [--search SECONDS]\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("GPU %s (sm_%d%d), cuBLASLt %zu, %d candidates, median of %d runs\n", prop.name, prop.major, prop.minor,
           cublasLtGetVersion(), cand, runs);
    cublasLtHandle_t lt;
    CK(cublasLtCreate(&lt));
    size_t wsz = 32u << 20, maxW = 0, maxX = 0, maxY = 0;
    for (const Shape &s : SHAPES) {
        maxW = std::max(maxW, (size_t)s.N * s.K);
        maxX = std::max(maxX, (size_t)s.M * s.K);
        maxY = std::max(maxY, (size_t)s.M * s.N);
    }
    __nv_bfloat16 *W, *X;
    float *Y, *bias;
    void *ws;
    CK(cudaMalloc(&W, maxW * 2));
    CK(cudaMalloc(&X, maxX * 2));
    CK(cudaMalloc(&Y, maxY * 4));
    CK(cudaMalloc(&bias, 32768 * 4));
    CK(cudaMalloc(&ws, wsz));
    float *Yref;
    unsigned long long *ndiff;
    CK(cudaMalloc(&Yref, maxY * 4));
    CK(cudaMalloc(&ndiff, sizeof *ndiff));
    fill<<<1024, 256>>>(W, maxW, 1);
    fill<<<1024, 256>>>(X, maxX, 2);
    CK(cudaMemset(Y, 0, maxY * 4));
    CK(cudaMemset(bias, 0, 32768 * 4));
    CK(cudaDeviceSynchronize());
    for (const Shape &s : SHAPES) {
        cublasLtMatmulDesc_t d;
        CK(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
        CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
        CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
        if (s.bias) {
            cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
            cudaDataType_t bt = CUDA_R_32F;
            CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
            CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
            CK(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        }
        cublasLtMatrixLayout_t a, b, c;
        CK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, s.K, s.N, s.K));
        CK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, s.K, s.M, s.K));
        CK(cublasLtMatrixLayoutCreate(&c, s.acc ? CUDA_R_32F : CUDA_R_16BF, s.N, s.M, s.N));
        cublasLtMatmulPreference_t pref;
        CK(cublasLtMatmulPreferenceCreate(&pref));
        CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz));
        std::vector<cublasLtMatmulHeuristicResult_t> res(cand);
        int n = 0;
        cublasStatus_t hs = CUBLAS_STATUS_NOT_SUPPORTED;
        hs = cublasLtMatmulAlgoGetHeuristic(lt, d, a, b, c, c, pref, cand, res.data(), &n);
        if (hs != CUBLAS_STATUS_SUCCESS) {
            /* cuBLASLt 13.1 lists nothing for the bias epilogue here (status 7): the candidates of the
               product without it, each checked against the real descriptor (as cuda_gemm_tune.cu) */
            printf("  heuristic: status %d; candidates of the product without the epilogue, checked\n", (int)hs);
            cublasLtMatmulDesc_t plain;
            CK(cublasLtMatmulDescCreate(&plain, CUBLAS_COMPUTE_32F, CUDA_R_32F));
            CK(cublasLtMatmulDescSetAttribute(plain, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
            CK(cublasLtMatmulDescSetAttribute(plain, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
            hs = cublasLtMatmulAlgoGetHeuristic(lt, plain, a, b, c, c, pref, cand, res.data(), &n);
            cublasLtMatmulDescDestroy(plain);
            int k = 0;
            for (int i = 0; hs == CUBLAS_STATUS_SUCCESS && i < n; i++) {
                cublasLtMatmulHeuristicResult_t chk;
                if (cublasLtMatmulAlgoCheck(lt, d, a, b, c, c, &res[i].algo, &chk) == CUBLAS_STATUS_SUCCESS &&
                    chk.workspaceSize <= wsz)
                    res[k++] = res[i];
            }
            n = k;
        }
        if (hs != CUBLAS_STATUS_SUCCESS || n == 0) continue;
        size_t obytes = (size_t)s.M * s.N * (s.acc ? 4 : 2);
        double flop = 2.0 * s.M * s.N * s.K;
        float first = -1, best = 1e30f;
        int besti = -1;
        printf("%s: %d candidates\n", s.name, n);
        for (int i = 0; i < n; i++) {
            float ms = time_algo(lt, d, a, b, c, &res[i].algo, W, X, Y, s.acc ? 1.0f : 0.0f, ws, wsz, runs);
            int tile = -1, stages = -1, splitk = -1, cluster = -1, algo_id = -1;
            size_t w;
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_ID, &algo_id, sizeof algo_id, &w);
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &w);
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages,
                                                 &w);
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk,
                                                 &w);
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster,
                                                 sizeof cluster, &w);
            /* the result's bits against candidate #0's: the same zeroed output, one run */
            long long diff = -1;
            char dtxt[64];
            if (ms > 0) {
                const float one = 1.0f, beta = s.acc ? 1.0f : 0.0f;
                CK(cudaMemset(Y, 0, obytes));
                CK(cublasLtMatmul(lt, d, &one, W, a, X, b, &beta, Y, c, Y, c, &res[i].algo, ws, wsz, 0));
                if (i == 0) {
                    CK(cudaMemcpy(Yref, Y, obytes, cudaMemcpyDeviceToDevice));
                } else {
                    CK(cudaMemset(ndiff, 0, sizeof *ndiff));
                    count_diff<<<1024, 256>>>((const unsigned *)Y, (const unsigned *)Yref, obytes / 4, ndiff);
                    unsigned long long h = 0;
                    CK(cudaMemcpy(&h, ndiff, sizeof h, cudaMemcpyDeviceToHost));
                    diff = (long long)h;
                }
            }
            printf("  #%-2d algo %3d tile %3d stages %3d splitk %2d cluster %2d ws %8zu: %8.4f ms %6.1f TFLOP/s  %s\n",
                   i, algo_id, tile, stages, splitk, cluster, res[i].workspaceSize, ms, ms > 0 ? flop / ms / 1e9 : 0.0,
                   i == 0 ? "(reference bits)" : (snprintf(dtxt, sizeof dtxt, "%lld words differ from #0", diff), dtxt));
            if (i == 0) first = ms;
            if (ms > 0 && ms < best) {
                best = ms;
                besti = i;
            }
        }
        if (first > 0)
            printf("  => heuristic #0 %.1f TFLOP/s, best #%d %.1f TFLOP/s (%.3fx)\n", flop / first / 1e9, besti,
                   flop / best / 1e9, first / best);
        if (search_s > 0 && first > 0) search(lt, s, d, a, b, c, W, X, Y, Yref, ndiff, ws, wsz, search_s);
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(a);
        cublasLtMatrixLayoutDestroy(b);
        cublasLtMatrixLayoutDestroy(c);
        cublasLtMatmulDescDestroy(d);
    }
    cudaFree(W);
    cudaFree(X);
    cudaFree(Y);
    cudaFree(bias);
    cudaFree(ws);
    cudaFree(Yref);
    cudaFree(ndiff);
    cublasLtDestroy(lt);
    return 0;
}

/* test_flash.cu - every flash attention version against a float64 CPU reference; with --bench,
 * their speed on the model's shapes (GPU only: tests/gpu/run.sh builds and runs it).
 *
 * Inputs are random bf16 q|k|v rows laid out as the forward passes lay them out (one fused
 * buffer per token: the vision tower's [3 E] with 16 heads of 80, the 2B decoder's
 * [(12 + 2 + 2) 128] with grouped-query heads, causal). Lengths cover one row, partial tiles,
 * exact tiles and several tiles. A version passes when every row's output has cosine >= 0.9999
 * against the reference and its largest error is at most 2 % of the output's largest value
 * (bf16 inputs, P rounded to bf16 for the second product, bf16 output).
 *
 *   test_flash           correctness; exit 1 on a failure
 *   test_flash --bench   correctness, then TFLOP/s per version and shape */
#include "backend/cuda/cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

using namespace tkrcuda;

namespace {

struct Shape {
    const char *name;
    int hd, heads, kv;
    bool causal;
    std::vector<int> lens;
};

struct Version {
    const char *name;
    int variant, wg_cfg, wg_min_len;
    bool longest_first, wide_causal;
};

/* v4: its default per head size (swizzled tiles; TMA loads at head size 80), the runner-up, the
 * best with core-matrix tiles, swizzled tiles by cp.async (cuda_flash_wg.cu); "v3 auto": version 3 handing batches of 256 rows or more to version 4, as
 * the backend does from TKR_CUDA_WG_MIN (512) rows;
 * "v3 grid order": causal blocks in the grid's order instead of longest first; "v3 wide": causal
 * head size 128 in blocks of 8 warps, not 4 */
const Version kVersions[] = {
    {"v1", 1, 0, 0, true, false},        {"v2", 2, 0, 0, true, false},       {"v3", 3, 0, 0, true, false},
    {"v4", 4, 0, 0, true, false},        {"v4 other", 4, 1, 0, true, false}, {"v3 auto", 3, 0, 256, true, false},
    {"v3 grid order", 3, 0, 0, false, false}, {"v3 wide", 3, 0, 0, true, true}, {"v4 core tiles", 4, 2, 0, true, false},
    {"v4 cp.async", 4, 3, 0, true, false},
};

#define CK(x)                                                                                                   \
    do {                                                                                                        \
        cudaError_t e_ = (x);                                                                                   \
        if (e_ != cudaSuccess) {                                                                                \
            fprintf(stderr, "test_flash: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__);            \
            exit(2);                                                                                            \
        }                                                                                                       \
    } while (0)

/* One batch on the device: fused q|k|v rows [T, (H + 2 KV) hd] of bf16, output [T, H hd]. */
struct Batch {
    Shape sh;
    int T = 0, stride = 0, max_len = 0;
    std::vector<int> starts;
    std::vector<float> qkv; /* host copy (bf16 values as float) */
    __nv_bfloat16 *d_qkv = nullptr, *d_out = nullptr;
    int *d_starts = nullptr;

    explicit Batch(const Shape &s, unsigned seed) : sh(s) {
        stride = (s.heads + 2 * s.kv) * s.hd;
        starts.push_back(0);
        for (int l : s.lens) {
            starts.push_back(starts.back() + l);
            if (l > max_len) max_len = l;
        }
        T = starts.back();
        qkv.resize((size_t)T * stride);
        std::vector<__nv_bfloat16> h(qkv.size());
        unsigned long long st = seed * 0x9E3779B97F4A7C15ull + 1;
        for (size_t i = 0; i < qkv.size(); i++) {
            /* sum of 4 uniforms: roughly normal, unit variance */
            float u = 0.f;
            for (int j = 0; j < 4; j++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                u += (float)((st >> 40) & 0xFFFFFF) / 16777216.f - 0.5f;
            }
            h[i] = __float2bfloat16(u * 1.7320508f);
            qkv[i] = __bfloat162float(h[i]);
        }
        CK(cudaMalloc(&d_qkv, h.size() * sizeof h[0]));
        CK(cudaMemcpy(d_qkv, h.data(), h.size() * sizeof h[0], cudaMemcpyHostToDevice));
        CK(cudaMalloc(&d_out, (size_t)T * s.heads * s.hd * sizeof(__nv_bfloat16)));
        CK(cudaMalloc(&d_starts, starts.size() * sizeof(int)));
        CK(cudaMemcpy(d_starts, starts.data(), starts.size() * sizeof(int), cudaMemcpyHostToDevice));
    }
    ~Batch() {
        cudaFree(d_qkv);
        cudaFree(d_out);
        cudaFree(d_starts);
    }
    AttnArgs args(const Version &v) const {
        AttnArgs a;
        a.q = a.k = a.v = nullptr;
        a.q_stride = a.kv_stride = stride;
        a.out = d_out;
        a.out_stride = sh.heads * sh.hd;
        a.n_heads = sh.heads;
        a.n_kv = sh.kv;
        a.hd = sh.hd;
        a.seq_start = d_starts;
        a.n_seq = (int)sh.lens.size();
        a.max_len = max_len;
        a.causal = sh.causal;
        a.last_row_only = false;
        a.skip_len = 1;
        a.skip_max = 0; /* none skipped */
        a.qh = d_qkv;
        a.kh = d_qkv + (size_t)sh.heads * sh.hd;
        a.vh = d_qkv + (size_t)(sh.heads + sh.kv) * sh.hd;
        a.variant = v.variant;
        a.v2_min_len = v.variant == 1 ? 1 << 30 : 1;
        a.wg_cfg = v.wg_cfg;
        a.wg_min_len = v.wg_min_len;
        a.longest_first = v.longest_first;
        a.wide_causal = v.wide_causal;
        a.total_rows = T;
        a.tma_encode = tma_encoder();
        return a;
    }
    /* The reference output [T, H hd] in double. */
    std::vector<double> reference() const {
        const int hd = sh.hd, H = sh.heads, grp = sh.heads / sh.kv;
        std::vector<double> out((size_t)T * H * hd, 0.0), p;
        const double scale = 1.0 / sqrt((double)hd);
        for (size_t s = 0; s + 1 < starts.size(); s++) {
            const int st = starts[s], L = starts[s + 1] - st;
            p.resize((size_t)L);
            for (int h = 0; h < H; h++) {
                const int kvh = h / grp;
                for (int i = 0; i < L; i++) {
                    const float *q = &qkv[(size_t)(st + i) * stride + (size_t)h * hd];
                    const int n = sh.causal ? i + 1 : L;
                    double mx = -INFINITY, sum = 0.0;
                    for (int j = 0; j < n; j++) {
                        const float *k = &qkv[(size_t)(st + j) * stride + (size_t)(H + kvh) * hd];
                        double d = 0.0;
                        for (int c = 0; c < hd; c++) d += (double)q[c] * k[c];
                        p[j] = d * scale;
                        if (p[j] > mx) mx = p[j];
                    }
                    for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
                    double *o = &out[(size_t)(st + i) * H * hd + (size_t)h * hd];
                    for (int j = 0; j < n; j++) {
                        const float *v = &qkv[(size_t)(st + j) * stride + (size_t)(H + sh.kv + kvh) * hd];
                        for (int c = 0; c < hd; c++) o[c] += p[j] / sum * v[c];
                    }
                }
            }
        }
        return out;
    }
};

/* Worst row cosine and largest error relative to the largest reference value. */
void compare(const Batch &b, const std::vector<double> &ref, double *worst_cos, double *rel_err) {
    const size_t n = ref.size();
    std::vector<__nv_bfloat16> h(n);
    CK(cudaMemcpy(h.data(), b.d_out, n * sizeof h[0], cudaMemcpyDeviceToHost));
    const int row = b.sh.heads * b.sh.hd, hd = b.sh.hd;
    double wc = 1.0, me = 0.0, mr = 0.0;
    for (size_t r = 0; r < n / row; r++)
        for (int h0 = 0; h0 < row; h0 += hd) {
            double dot = 0.0, na = 0.0, nb = 0.0;
            for (int c = 0; c < hd; c++) {
                const size_t i = r * row + h0 + c;
                const double x = __bfloat162float(h[i]), y = ref[i];
                dot += x * y;
                na += x * x;
                nb += y * y;
                me = fmax(me, fabs(x - y));
                mr = fmax(mr, fabs(y));
            }
            const double cs = (na > 0 && nb > 0) ? dot / sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
            if (!(cs >= wc)) wc = cs;
        }
    *worst_cos = wc;
    *rel_err = mr > 0 ? me / mr : me;
}

int check_shapes(bool has_wg) {
    const Shape shapes[] = {
        {"vision hd80", 80, 16, 16, false, {1, 37, 64, 130, 200, 1029}},
        {"text hd128 causal gqa", 128, 12, 2, true, {1, 5, 64, 127, 128, 300, 512}},
        {"hd64 causal (v4: as v3)", 64, 4, 2, true, {3, 70, 129}},
    };
    int fails = 0;
    unsigned seed = 1;
    for (const Shape &sh : shapes) {
        Batch b(sh, seed++);
        std::vector<double> ref = b.reference();
        for (const Version &v : kVersions) {
            if ((v.variant == 4 || v.wg_min_len) && !has_wg) continue;
            CK(cudaMemset(b.d_out, 0xFF, (size_t)b.T * sh.heads * sh.hd * sizeof(__nv_bfloat16))); /* NaN */
            tkr_status st = flash_attention(b.args(v), 0);
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
            if (st == TKR_ERR_UNSUPPORTED) {
                printf("  %-24s %-13s unsupported\n", sh.name, v.name);
                continue;
            }
            double wc, re;
            compare(b, ref, &wc, &re);
            const bool ok = st == TKR_OK && wc >= 0.9999 && re <= 0.02;
            printf("%s %-24s %-13s worst cosine %.7f, max error %.4f of max |out|\n", ok ? "ok  " : "FAIL", sh.name,
                   v.name, wc, re);
            if (!ok) fails++;
        }
    }
    return fails;
}

void bench_shapes(bool has_wg) {
    struct B {
        Shape sh;
        int reps;
    };
    const B benches[] = {
        {{"vision 16 x 5120, hd 80", 80, 16, 16, false, std::vector<int>(16, 5120)}, 5},
        {{"vision 64 x 1024, hd 80", 80, 16, 16, false, std::vector<int>(64, 1024)}, 10},
        {{"text 16 x 512 causal", 128, 12, 2, true, std::vector<int>(16, 512)}, 50},
        {{"text 64 x 128 causal", 128, 12, 2, true, std::vector<int>(64, 128)}, 50},
        {{"text 16 x 1290 causal", 128, 12, 2, true, std::vector<int>(16, 1290)}, 20},
    };
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (const B &bb : benches) {
        Batch b(bb.sh, 7);
        double flop = 0.0;
        for (int l : bb.sh.lens)
            flop += 4.0 * bb.sh.heads * bb.sh.hd * (bb.sh.causal ? 0.5 * (double)l * (l + 1) : (double)l * l);
        for (const Version &v : kVersions) {
            if (v.variant == 1 || ((v.variant == 4 || v.wg_min_len) && !has_wg)) continue;
            AttnArgs a = b.args(v);
            if (flash_attention(a, 0) != TKR_OK) continue; /* warm-up */
            CK(cudaEventRecord(e0));
            for (int r = 0; r < bb.reps; r++) flash_attention(a, 0);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            CK(cudaGetLastError());
            float ms = 0.f;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            ms /= (float)bb.reps;
            printf("{\"bench\": \"flash\", \"shape\": \"%s\", \"version\": \"%s\", \"ms\": %.4f, \"tflops\": %.1f}\n",
                   bb.sh.name, v.name, ms, flop / (ms * 1e-3) / 1e12);
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

} // namespace

int main(int argc, char **argv) {
    bool bench = argc > 1 && !strcmp(argv[1], "--bench");
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        fprintf(stderr, "test_flash: no CUDA GPU\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const bool has_wg = wgmma_available(0);
    printf("test_flash: %s (sm_%d%d), wgmma (v4) %s\n", prop.name, prop.major, prop.minor,
           has_wg ? "available" : "not in this build for this GPU");
    int fails = check_shapes(has_wg);
    if (bench) bench_shapes(has_wg);
    printf("test_flash: %d failure%s\n", fails, fails == 1 ? "" : "s");
    return fails ? 1 : 0;
}

/* cuda_prof.cu - per-op GPU timing for the CUDA backend (env TKR_CUDA_PROFILE=1).
 *
 * Why: to know where a forward pass spends its GPU time without an external profiler (the
 * accelerator machine's time is short). Each timed op gets a pair of CUDA events recorded on the
 * backend's stream around it; after the pass synchronises (or when the event pool is full), the
 * elapsed times are summed per label. The totals go to stderr when the backend is freed. With
 * the variable unset, Backend::prof is NULL and every hook is one pointer test.
 * TKR_CUDA_PROFILE_SKIP=N leaves the first N passes out (warm-up: lazy module loads, cuBLAS
 * heuristics and buffer growth happen there and are not what a steady pass costs). */
#include "backend/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

namespace tkrcuda {

namespace {

constexpr int POOL = 4096; /* event pairs in flight before a forced flush */
constexpr int LABELS = 128;

} // namespace

struct Prof {
    cudaEvent_t ev[2 * POOL];
    const char *pend[POOL]; /* label of pending pair i */
    int n_pend = 0;
    const char *label[LABELS];
    double ms[LABELS];
    long calls[LABELS];
    int n_labels = 0;
    double pass_ms[4] = {0, 0, 0, 0}; /* host wall: text / vision passes, their input packing */
    long passes[4] = {0, 0, 0, 0};
    long skip = 0, done = 0; /* passes to leave out; passes finished */
};

void prof_init(Backend *be) {
    const char *e = getenv("TKR_CUDA_PROFILE");
    if (!e || !*e || !strcmp(e, "0")) return;
    Prof *p = new (std::nothrow) Prof();
    if (!p) return;
    for (int i = 0; i < 2 * POOL; i++)
        if (cudaEventCreate(&p->ev[i]) != cudaSuccess) {
            for (int j = 0; j < i; j++) cudaEventDestroy(p->ev[j]);
            delete p;
            cudaGetLastError();
            return;
        }
    const char *sk = getenv("TKR_CUDA_PROFILE_SKIP");
    p->skip = sk && *sk ? atol(sk) : 0;
    be->prof = p;
}

void prof_pass_done(Backend *be) {
    Prof *p = be->prof;
    if (!p) return;
    if (p->done < p->skip) { /* left out: wait for its events, drop them */
        if (p->n_pend) cudaEventSynchronize(p->ev[2 * p->n_pend - 1]);
        p->n_pend = 0;
    } else {
        prof_flush(be);
    }
    p->done++;
}

/* Sums the pending pairs (waits for the last one). */
void prof_flush(Backend *be) {
    Prof *p = be->prof;
    if (!p || p->n_pend == 0) return;
    cudaEventSynchronize(p->ev[2 * p->n_pend - 1]);
    for (int i = 0; i < p->n_pend; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->ev[2 * i], p->ev[2 * i + 1]) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        int k = 0;
        while (k < p->n_labels && strcmp(p->label[k], p->pend[i])) k++;
        if (k == p->n_labels) {
            if (k == LABELS) continue;
            p->label[k] = p->pend[i];
            p->ms[k] = 0;
            p->calls[k] = 0;
            p->n_labels++;
        }
        p->ms[k] += ms;
        p->calls[k]++;
    }
    p->n_pend = 0;
}

int prof_begin(Backend *be, const char *label) {
    Prof *p = be->prof;
    if (p->n_pend == POOL) prof_flush(be);
    int i = p->n_pend++;
    p->pend[i] = label;
    cudaEventRecord(p->ev[2 * i], be->stream);
    return i;
}

void prof_end(Backend *be, int i) { cudaEventRecord(be->prof->ev[2 * i + 1], be->stream); }

void prof_pass(Backend *be, int vision, double ms) {
    if (!be->prof) return;
    /* the whole-pass times (0, 1) come after prof_pass_done, the packing times (2, 3) before */
    if ((vision < 2 ? be->prof->done - 1 : be->prof->done) < be->prof->skip) return;
    be->prof->pass_ms[vision] += ms;
    be->prof->passes[vision]++;
}

void prof_report_free(Backend *be) {
    Prof *p = be->prof;
    if (!p) return;
    prof_flush(be);
    double total = 0;
    for (int k = 0; k < p->n_labels; k++) total += p->ms[k];
    fprintf(stderr,
            "tkr cuda profile (%s): %ld text passes %.1f ms (input packing %.1f), %ld vision passes %.1f ms "
            "(input packing %.1f), host wall\n",
            be->name, p->passes[0], p->pass_ms[0], p->pass_ms[2], p->passes[1], p->pass_ms[1], p->pass_ms[3]);
    fprintf(stderr, "  %-22s %10s %8s %7s\n", "op", "GPU ms", "calls", "share");
    /* largest first */
    bool done[LABELS] = {false};
    for (int r = 0; r < p->n_labels; r++) {
        int best = -1;
        for (int k = 0; k < p->n_labels; k++)
            if (!done[k] && (best < 0 || p->ms[k] > p->ms[best])) best = k;
        done[best] = true;
        fprintf(stderr, "  %-22s %10.2f %8ld %6.1f%%\n", p->label[best], p->ms[best], p->calls[best],
                total > 0 ? 100.0 * p->ms[best] / total : 0.0);
    }
    fprintf(stderr, "  %-22s %10.2f\n", "total (timed ops)", total);
    for (int i = 0; i < 2 * POOL; i++) cudaEventDestroy(p->ev[i]);
    delete p;
    be->prof = nullptr;
}

} // namespace tkrcuda

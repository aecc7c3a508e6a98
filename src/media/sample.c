/* sample.c - which frames of a video are embedded: the rule of MTEB's FramesCollator (the
 * wrapper MTEB evaluates Ops-MM-embedding-v1 with), in integer arithmetic where Python's is:
 *
 *   fps mode:   target = max(1, int(duration * fps)); target = min(target, max_frames)
 *   fixed mode: target = num_frames; if n < target: (range(n) * (target // n + 1))[:target]
 *   step = max(1, n // target); indices = range(0, n, step)[:target]
 *
 * int() truncates toward zero; duration * fps is a double product as in Python. */
#include "media/media.h"

#include <math.h>

int tkr_video_sample_indices(int64_t n, double duration_s, double fps, int max_frames,
                             int num_frames, int64_t *out, int cap) {
    if (n <= 0 || !out || cap <= 0 || num_frames < 0) return -1;
    int64_t target;
    if (num_frames > 0) {
        target = num_frames;
    } else {
        if (!(fps > 0)) return -1;
        double prod = duration_s * fps;
        /* NaN or below 1 -> 1; a huge product is capped by max_frames below anyway */
        if (!(prod >= 1.0)) target = 1;
        else if (prod >= 9.0e15) target = INT64_MAX;
        else target = (int64_t)prod;
        if (max_frames > 0 && target > max_frames) target = max_frames;
    }
    if (target > cap) return -1;
    int k = 0;
    if (num_frames > 0 && n < target) {
        for (int64_t i = 0; i < target; i++) out[k++] = i % n;
        return k;
    }
    int64_t step = n / target;
    if (step < 1) step = 1;
    for (int64_t i = 0; i < n && k < target; i += step) out[k++] = i;
    return k;
}

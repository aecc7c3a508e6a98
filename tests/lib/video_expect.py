#!/usr/bin/env python3
"""The frame indices MTEB's FramesCollator picks for a video, from ffprobe's packet list (an
implementation independent of tkr-embed's C code): prints them space-separated.

    video_expect.py FILE [--fps F] [--max-frames N] [--num-frames N]

n_source = the video stream's packets (discarded ones excluded), duration = max(pts + duration)
in seconds (torchcodec's exact-mode num_frames / end_stream_seconds), then the wrapper's rule."""
import argparse
import fractions
import subprocess


def probe(path):
    tb = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                         "stream=time_base", "-of", "csv=p=0", path],
                        check=True, capture_output=True, text=True).stdout.strip()
    tb = fractions.Fraction(tb)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts,dts,duration,flags", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout
    n, end = 0, None
    for line in out.splitlines():
        if not line.strip():
            continue
        pts, dts, dur, flags = (line.split(",") + ["", "", "", ""])[:4]
        if "D" in flags:
            continue
        n += 1
        t = pts if pts not in ("", "N/A") else dts
        if t in ("", "N/A"):
            continue
        e = int(t) + (int(dur) if dur not in ("", "N/A") else 0)
        end = e if end is None else max(end, e)
    return n, float(end * tb) if end is not None else 0.0


def indices(n, duration, fps, max_frames, num_frames):
    if num_frames:
        target = num_frames
    else:
        target = max(1, int(duration * fps))
        if max_frames is not None:
            target = min(target, max_frames)
    if num_frames and n < target:
        return (list(range(n)) * ((target // n) + 1))[:target]
    step = max(1, n // target)
    return list(range(0, n, step))[:target]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--max-frames", type=int, default=64)
    ap.add_argument("--num-frames", type=int, default=0)
    a = ap.parse_args()
    n, dur = probe(a.file)
    print(" ".join(str(i) for i in indices(n, dur, a.fps, a.max_frames, a.num_frames)))


if __name__ == "__main__":
    main()

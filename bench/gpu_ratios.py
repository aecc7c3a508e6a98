#!/usr/bin/env python3
"""gpu_ratios.py - the ratios of a GPU bench run: tkr-embed against HF transformers.

    python3 bench/gpu_ratios.py HF.jsonl TKR.jsonl [--markdown]

Why: tests/gpu/run.sh writes the raw lines of both engines (bench/bench_gpu_hf.py, bench/bench_gpu);
the ratio against the peer of the same run is the figure that counts (the machine is shared, and
HF's own speed moves by several percent between runs), so it is computed here, not by hand.
With several rounds (TKR_BENCH_ROUNDS: HF then ours, again), the k-th line of a measurement on
one side is paired with the k-th on the other: each round gives a ratio, and the median of those
is reported beside the ratio of the medians. Lines of ours in fp32 mode are left out (HF runs
bf16). Throughputs have the issue's target of 1.5x; latencies are reported against their
absolute targets (ours includes decode and resize for images; HF's is the model alone).
Exit status 0 when both files could be read and share at least one measurement, else 1. """
import json
import statistics
import sys

# kind -> (label, key fields, value field, higher is better, target)
KINDS = {
    "text_throughput": ("text {batch} x {tokens} tokens", ("batch", "tokens"), "tokens_per_s", True, 1.5),
    "image_throughput": ("{images} images of {image_tokens} tokens", ("images", "image_tokens"), "images_per_s",
                         True, 1.5),
    "text_latency": ("one {tokens}-token text, ms", ("tokens",), "median_ms", False, 10.0),
    "image_latency": ("one {image_tokens}-token image, ms", ("image_tokens",), "median_ms", False, 25.0),
}


def read(path, ours):
    """{(kind, key): [values in file order]}, and the labels in first-seen order."""
    runs, order = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            kind = r.get("bench")
            if kind not in KINDS:
                continue
            if ours and ", fp32," in r.get("device", ""):
                continue
            label, keys, field, _, _ = KINDS[kind]
            if field not in r or any(k not in r for k in keys):
                continue
            k = (kind, tuple(r[x] for x in keys))
            if k not in runs:
                runs[k] = []
                order.append((k, label.format(**{x: r[x] for x in keys})))
            runs[k].append(float(r[field]))
    return runs, order


def fmt(v, kind):
    if kind == "text_throughput":
        return "%.1fk tok/s" % (v / 1000)
    if kind == "image_throughput":
        return "%.1f img/s" % v
    return "%.2f ms" % v


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    md = "--markdown" in argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 1
    try:
        hf, _ = read(args[0], False)
        ours, order = read(args[1], True)
    except OSError as e:
        print("gpu_ratios: %s" % e, file=sys.stderr)
        return 1
    rows = []
    for k, label in order:
        if k not in hf:
            continue
        kind = k[0]
        _, _, _, higher, target = KINDS[kind]
        a, b = hf[k], ours[k]
        n = min(len(a), len(b))
        per = [(b[i] / a[i] if higher else a[i] / b[i]) for i in range(n) if a[i] > 0 and b[i] > 0]
        ma, mb = statistics.median(a), statistics.median(b)
        ratio = (mb / ma if higher else ma / mb) if ma > 0 and mb > 0 else float("nan")
        if higher:
            verdict = "met" if per and statistics.median(per) >= target else "NOT met"
            goal = ">= %.1fx" % target
        else:
            verdict = "met" if mb <= target else "NOT met"
            goal = "<= %g ms" % target
        rows.append((label, fmt(ma, kind), fmt(mb, kind), "%.3fx" % ratio,
                     "%.3fx" % statistics.median(per) if per else "-",
                     " ".join("%.3f" % p for p in per), goal, verdict))
    if not rows:
        print("gpu_ratios: no measurement in both files", file=sys.stderr)
        return 1
    head = ("measurement", "HF (median)", "tkr-embed (median)", "ratio of medians", "median ratio",
            "per round", "target", "")
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

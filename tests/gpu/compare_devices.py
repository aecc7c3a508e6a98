#!/usr/bin/env python3
"""GPU against CPU (and the GPU against itself) on every item of a fixture's expected/<model>.jsonl.

usage: compare_devices.py TKR_BIN MODEL_DIR EXPECTED.jsonl DATA_DIR FIXTURES_DIR --a "ARGS" --b "ARGS"
       [--min-cos C] [--identical]
ARGS may start with NAME=VALUE words: environment variables for that run.
Runs `tkr-embed embed --input -` once with each argument set on all items and compares the
vectors item by item: cosine >= C (default 0.99999), or bit-identical with --identical. Exit 0
only if every item passes; prints the worst cosine."""
import json
import math
import os
import re
import subprocess
import sys


def run(tkr, model, lines, args):
    """args: tkr-embed's arguments, after NAME=VALUE words that go into its environment"""
    words, env = args.split(), dict(os.environ)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    p = subprocess.run([tkr, "embed", "-m", model, "--input", "-"] + words,
                       input=("\n".join(lines) + "\n").encode(), capture_output=True, env=env)
    if p.returncode != 0:
        print("tkr-embed %s failed (%d): %s" % (args, p.returncode, p.stderr.decode(errors="replace")[:2000]))
        sys.exit(1)
    tune = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("lt-tune")]
    if tune:  # TKR_CUDA_LT_TUNE_LOG=1: how many GEMM shapes took another algorithm
        took = sum(bool(re.search(r"(?<!not) taken ", l)) for l in tune)
        print("%s: GEMM tuning: %d decisions, another algorithm taken in %d" % (args, len(tune), took))
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def main():
    tkr, model, expected, data, fixtures = sys.argv[1:6]
    opt = lambda k, d: sys.argv[sys.argv.index(k) + 1] if k in sys.argv else d
    a_args, b_args = opt("--a", ""), opt("--b", "")
    min_cos = float(opt("--min-cos", "0.99999"))
    identical = "--identical" in sys.argv
    items = [json.loads(l) for l in open(expected, encoding="utf-8") if l.strip()]
    lines = []
    for it in items:
        req = {"text": it.get("text", "")}
        if it.get("instruction"):
            req["instruction"] = it["instruction"]
        if it.get("images"):
            req["images"] = [fixtures + "/" + p[len("fixture:"):] if p.startswith("fixture:") else data + "/" + p
                             for p in it["images"]]
        lines.append(json.dumps(req, ensure_ascii=False))
    A, B = run(tkr, model, lines, a_args), run(tkr, model, lines, b_args)
    if len(A) != len(items) or len(B) != len(items):
        print("expected %d lines, got %d and %d" % (len(items), len(A), len(B)))
        return 1
    bad, worst = 0, 1.0
    for i, (x, y) in enumerate(zip(A, B)):
        if "embedding" not in x or "embedding" not in y:
            print("item %d: error %s / %s" % (i, str(x)[:200], str(y)[:200]))
            bad += 1
            continue
        u, v = x["embedding"], y["embedding"]
        if identical:
            ok = u == v
            cos = 1.0 if ok else 0.0
        else:
            dot = sum(p * q for p, q in zip(u, v))
            nu, nv = math.sqrt(sum(p * p for p in u)), math.sqrt(sum(q * q for q in v))
            cos = dot / (nu * nv) if nu and nv else 0.0
            ok = cos >= min_cos
        worst = min(worst, cos)
        if not ok:
            print("FAIL item %d: cos=%.9f tokens=%d" % (i, cos, x.get("prompt_tokens", -1)))
            bad += 1
    print("[%s] vs [%s]: %d items, %d failed, worst cosine %.9f%s" % (a_args, b_args, len(items), bad, worst,
                                                                     " (bit-identical check)" if identical else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs `tkr-embed embed --input` on the items of an expected/<model>.jsonl fixture and checks
every vector against the HF reference (cosine >= threshold) and every prompt_tokens count.

usage: compare_expected.py TKR_BIN MODEL_DIR EXPECTED.jsonl DATA_DIR FIXTURES_DIR [--kind text|image|all]
       [--args "EXTRA ARGS"] [--min-cos C] (default 0.99999) [--text-limit N]
Exit 0 only if every item matches; prints one line per item."""
import json
import math
import subprocess
import sys


def main():
    tkr, model, expected, data, fixtures = sys.argv[1:6]
    kind = "all"
    if "--kind" in sys.argv:
        kind = sys.argv[sys.argv.index("--kind") + 1]
    extra = []
    if "--args" in sys.argv:
        extra = sys.argv[sys.argv.index("--args") + 1].split()
    min_cos = 0.99999
    if "--min-cos" in sys.argv:
        min_cos = float(sys.argv[sys.argv.index("--min-cos") + 1])
    items = [json.loads(l) for l in open(expected, encoding="utf-8") if l.strip()]
    if "--text-limit" in sys.argv:   # the first N text items and every image item
        n = int(sys.argv[sys.argv.index("--text-limit") + 1])
        texts = [it for it in items if not it.get("images")][:n]
        items = [it for it in items if it.get("images") or any(it is t for t in texts)]
    if kind == "text":
        items = [it for it in items if not it.get("images")]
    elif kind == "image":
        items = [it for it in items if it.get("images")]
    if not items:
        print("no items selected", file=sys.stderr)
        return 1
    lines = []
    for it in items:
        req = {"text": it.get("text", "")}
        if it.get("instruction"):
            req["instruction"] = it["instruction"]
        if it.get("images"):
            req["images"] = [fixtures + "/" + p[len("fixture:"):] if p.startswith("fixture:") else data + "/" + p
                             for p in it["images"]]
        lines.append(json.dumps(req, ensure_ascii=False))
    proc = subprocess.run([tkr, "embed", "-m", model, "--input", "-"] + extra,
                          input=("\n".join(lines) + "\n").encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        print("tkr-embed failed (%d): %s" % (proc.returncode, proc.stderr.decode(errors="replace")))
        print(proc.stdout.decode(errors="replace")[:2000])
        return 1
    try:
        out = [json.loads(l) for l in proc.stdout.decode("utf-8").splitlines() if l.strip()]
    except ValueError as e:
        print("tkr-embed printed invalid JSON (%s): %s" % (e, proc.stdout.decode(errors="replace")[:300]))
        return 1
    if len(out) != len(items):
        print("expected %d output lines, got %d" % (len(items), len(out)))
        return 1
    bad = 0
    worst = 1.0
    for i, (it, o) in enumerate(zip(items, out)):
        if o.get("index") != i or "embedding" not in o:
            print("item %d: bad output %s" % (i, str(o)[:300]))
            bad += 1
            continue
        a, b = o["embedding"], it["embedding"]
        dot = sum(x * y for x, y in zip(a, b))
        na = math.sqrt(sum(x * x for x in a))
        nb = math.sqrt(sum(y * y for y in b))
        cos = dot / (na * nb) if na and nb else 0.0
        worst = min(worst, cos)
        ok = len(a) == len(b) and cos >= min_cos and o["prompt_tokens"] == it["prompt_tokens"]
        label = (it.get("text") or "")[:30].replace("\n", "\\n")
        print("%s item %d: cos=%.9f tokens=%d/%d %r %s" % ("ok  " if ok else "FAIL", i, cos, o["prompt_tokens"],
                                                       it["prompt_tokens"], label, it.get("images", "")))
        bad += not ok
    print("%d items, %d failed, worst cosine %.9f (floor %g)" % (len(items), bad, worst, min_cos))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

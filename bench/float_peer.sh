#!/usr/bin/env bash
# The float (BF16) kernels against a native llama.cpp build, on the same 2B weights, in one run:
#   tkr-embed exact (AVX-512 and AVX2 kernels) and --fast-bf16, 1 x 128 and 32 x 64 tokens;
#   llama.cpp's `llama-bench -p 128 -n 0` (and `llama-batched-bench` for 32 x 64) on a BF16 GGUF
#   of the same random-weight checkpoint (made by tools/st2gguf).
# Rounds alternate the engines, so each ratio is taken under nearly the same machine load (the
# machine may be shared); the summary gives medians and the ratio llama.cpp time / tkr-embed time
# (> 1: tkr-embed is faster).
#   usage: bench/float_peer.sh            env: THREADS (2), ROUNDS (3), LLAMA_BIN, TKR_BENCH_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TKR_BENCH_DIR:-/tmp/tkr-2b}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
LLAMA_BIN=${LLAMA_BIN:-/work/peer/src/build/bin}
BATCH=${BATCH:-1}   # 0 skips the 32 x 64 workload
make -C "$ROOT" -s -j"$(nproc)" build/bench/bench_embed build/tools/mkmodel build/tools/st2gguf
if [ ! -f "$DIR/model.safetensors" ]; then
  python3 "$ROOT/bench/make_manifest.py" 2b "$DIR"
  "$ROOT/build/tools/mkmodel" "$DIR/weights.json" "$DIR/model.safetensors"
fi
DATA=${TKR_TEST_DATA:-$ROOT/../shared/data}
ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$DIR/"
cp "$ROOT/tests/fixtures/qwen2vl/tokenizer_config.json" "$ROOT/tests/fixtures/qwen2vl/added_tokens.json" "$DIR/"
GGUF="$DIR/text-bf16.gguf"
[ -f "$GGUF" ] || "$ROOT/build/tools/st2gguf" "$DIR" "$GGUF" --type bf16
for b in llama-bench llama-batched-bench; do
  [ -x "$LLAMA_BIN/$b" ] || { echo "float_peer: $LLAMA_BIN/$b not found (set LLAMA_BIN)" >&2; exit 1; }
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $THREADS threads"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
BE="$ROOT/build/bench/bench_embed"

# seconds per call from bench_embed's "text:" line (median of its runs)
tkr() { "$BE" "$DIR" --threads "$THREADS" --runs 3 "$@" | tee -a "$OUT/tkr.log" | awk '/^text:/ {print $8}'; }
# llama-bench: seconds for a 128-token prompt
llama1() {
  "$LLAMA_BIN/llama-bench" -m "$GGUF" -p 128 -n 0 -t "$THREADS" -r 3 -o json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print("%.4f" % (r["avg_ns"]*1e-9))'
}
# llama-batched-bench: seconds for 32 parallel 64-token prompts (prompt processing only)
llama32() {
  "$LLAMA_BIN/llama-batched-bench" -m "$GGUF" -c 4096 -b 2048 -ub 2048 -npp 64 -ntg 1 -npl 32 \
    -t "$THREADS" -tb "$THREADS" 2>/dev/null | awk -F'|' '$2+0==64 && $4+0==32 {gsub(/ /,"",$6); print $6}'
}
"$BE" "$DIR" --threads "$THREADS" --runs 1 --tokens 16 | grep '^kernels'
"$BE" "$DIR" --threads "$THREADS" --runs 1 --tokens 16 --kernels avx2 | grep '^kernels'
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  printf 'llama 1x128 %s\n' "$(llama1)" | tee -a "$OUT/res"
  printf 'exact 1x128 %s\n' "$(tkr --tokens 128)" | tee -a "$OUT/res"
  printf 'fast 1x128 %s\n' "$(tkr --tokens 128 --fast-bf16)" | tee -a "$OUT/res"
  printf 'avx2 1x128 %s\n' "$(tkr --tokens 128 --kernels avx2)" | tee -a "$OUT/res"
  if [ "$BATCH" != 0 ]; then
    printf 'llama 32x64 %s\n' "$(llama32)" | tee -a "$OUT/res"
    printf 'exact 32x64 %s\n' "$(tkr --tokens 64 --batch 32)" | tee -a "$OUT/res"
    printf 'fast 32x64 %s\n' "$(tkr --tokens 64 --batch 32 --fast-bf16)" | tee -a "$OUT/res"
  fi
done
python3 - "$OUT/res" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 3]
t = {}
for eng, wl, s in rows:
    try: t.setdefault((eng, wl), []).append(float(s))
    except ValueError: pass
for wl in ("1x128", "32x64"):
    if ("llama", wl) not in t: continue
    ll = statistics.median(t[("llama", wl)])
    print("%s: llama.cpp BF16 %.3f s (median)" % (wl, ll))
    for eng in ("exact", "fast", "avx2"):
        if (eng, wl) in t:
            m = statistics.median(t[(eng, wl)])
            print("  tkr-embed %-5s %.3f s   ratio llama/tkr %.2f" % (eng, m, ll / m))
EOF

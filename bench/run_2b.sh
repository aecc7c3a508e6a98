#!/usr/bin/env bash
# Builds a random-weight model of the real Ops-MM-embedding-v1-2B shape (BF16, 4.4 GB, in
# $TKR_BENCH_DIR or /tmp/tkr-2b) and times a 128-token text embedding and images at 256 and
# 1280 image tokens (exact-size synthetic images; IMAGES=0 skips them: the 1280-token image
# takes about a minute on 2 cores). usage: bench/run_2b.sh [threads]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TKR_BENCH_DIR:-/tmp/tkr-2b}
THREADS=${1:-$(nproc)}
make -C "$ROOT" -s -j"$(nproc)"
if [ ! -f "$DIR/model.safetensors" ]; then
  python3 "$ROOT/bench/make_manifest.py" 2b "$DIR"
  "$ROOT/build/tools/mkmodel" "$DIR/weights.json" "$DIR/model.safetensors"
fi
DATA=${TKR_TEST_DATA:-$ROOT/../shared/data}
ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$DIR/"
cp "$ROOT/tests/fixtures/qwen2vl/tokenizer_config.json" "$ROOT/tests/fixtures/qwen2vl/added_tokens.json" "$DIR/"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
img_args=()
if [ "${IMAGES:-1}" != 0 ]; then
  python3 "$ROOT/bench/make_png.py" 448 448 "$DIR/bench-256-tokens.png"     # 16x16 merged tokens
  python3 "$ROOT/bench/make_png.py" 1120 896 "$DIR/bench-1280-tokens.png"   # 40x32 merged tokens
  img_args=(--image "$DIR/bench-256-tokens.png" --image "$DIR/bench-1280-tokens.png")
fi
"$ROOT/build/bench/bench_embed" "$DIR" --tokens 128 --runs "${RUNS:-3}" --threads "$THREADS" "${img_args[@]}"

#!/usr/bin/env bash
# Builds a random-weight model of the real Ops-MM-embedding-v1-2B shape (BF16, 4.4 GB, in
# $TKR_BENCH_DIR or /tmp/tkr-2b) and times a 128-token text embedding and images at 256 and
# 1280 image tokens. usage: bench/run_2b.sh [threads]
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
"$ROOT/build/bench/bench_embed" "$DIR" --tokens 128 --runs "${RUNS:-3}" --threads "$THREADS" \
  ${IMAGES:+--image "$ROOT/tests/fixtures/images/syn-tiny-30x20.png" --image "$ROOT/tests/fixtures/images/syn-large-1600x1200.jpg"}

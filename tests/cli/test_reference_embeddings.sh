#!/usr/bin/env bash
# Every HF reference item (text, text+image, multi-image) of every fixture model, through
# `tkr-embed embed --input`: cosine >= 0.99999 and the same prompt_tokens. Models cover both
# config shapes, both weight layouts, F32/F16/BF16, shards, and the real head size 128 (6:1 GQA).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
for m in m1-flat-f32 m2-nested-f16-sharded m3-h128-bf16 m4-gguf-src; do
  make_model_dir "$m" "$tmp/$m"
  echo "== $m"
  python3 "$ROOT/tests/lib/compare_expected.py" "$TKR_BUILD/tkr-embed" "$tmp/$m" \
    "$ROOT/tests/fixtures/expected/$m.jsonl" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" || rc=1
  rm -f "$tmp/$m/model.safetensors"
done
# batch size and thread count must not change any vector
make_model_dir m1-flat-f32 "$tmp/m1b"
echo "== m1 with --max-batch-tokens 64 --threads 1"
python3 "$ROOT/tests/lib/compare_expected.py" "$TKR_BUILD/tkr-embed" "$tmp/m1b" \
  "$ROOT/tests/fixtures/expected/m1-flat-f32.jsonl" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
  --kind text --args "--max-batch-tokens 64 --threads 1" || rc=1
# the opt-in fast mode (bf16 activations, AVX-512 BF16 dot products; exact where the CPU lacks
# them) on the BF16 model: measured worst cosine 0.9999994 on Zen 5, still within the floor
make_model_dir m3-h128-bf16 "$tmp/m3f"
echo "== m3 with --fast-bf16"
python3 "$ROOT/tests/lib/compare_expected.py" "$TKR_BUILD/tkr-embed" "$tmp/m3f" \
  "$ROOT/tests/fixtures/expected/m3-h128-bf16.jsonl" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
  --args "--fast-bf16" || rc=1
exit $rc

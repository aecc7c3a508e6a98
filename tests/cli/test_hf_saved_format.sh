#!/usr/bin/env bash
# A model directory exactly as transformers 5.17 save_pretrained writes it: nested config.json
# with dtype keys, tokenizer.json (BPE merges as pairs, no vocab.json/merges.txt) and a
# tokenizer_config.json whose model_max_length is the 1e30 integer HF writes when none is set.
# The weights are m1's; every m1 reference item must still match.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
d="$tmp/hf"
mkdir -p "$d"
cp "$ROOT/tests/fixtures/hf-saved/config.json" "$ROOT/tests/fixtures/hf-saved/tokenizer_config.json" "$d/"
ln -s "$ROOT/tests/fixtures/models/m1-flat-f32/model.safetensors" "$d/"
python3 "$ROOT/tests/lib/fill_tokenizer_json.py" "$ROOT/tests/fixtures/hf-saved/tokenizer.skeleton.json" \
  "$TKR_TEST_DATA/tokenizers/qwen2" "$d/tokenizer.json"
grep -q 1000000000000000019884624838656 "$d/tokenizer_config.json"
python3 "$ROOT/tests/lib/compare_expected.py" "$TKR_BUILD/tkr-embed" "$d" \
  "$ROOT/tests/fixtures/expected/m1-flat-f32.jsonl" "$TKR_TEST_DATA" "$ROOT/tests/fixtures"
out=$("$TKR_BUILD/tkr-embed" tokenize -m "$d" --text "<|im_start|>user Hello 世界<|vision_start|>")
[ "$out" = "[151644, 872, 21927, 220, 99489, 151652]" ] || { echo "tokenize gave $out"; exit 1; }

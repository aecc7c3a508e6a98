#!/usr/bin/env bash
# Dropping the vision tower's weight pages (issue 7, memory) changes no vector, through the CLI,
# on the m4 GGUF pair (llama.cpp's F32 text model, Q8_0 mmproj):
#  - the one-shot `embed` (image + text: it hints that no image follows, so the tower's pages
#    go before the decoder pass), the same with --release-vision-weights, and a JSONL run whose
#    last chunk holds image, text and image items (hinted at the end of the input: the second
#    image item's vision pass runs in the same call) all give the same bits for the same item;
#  - `serve` takes --release-vision-weights (an option, not an unknown one).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
G="$ROOT/tests/fixtures/gguf"
IMG="$TKR_TEST_DATA/images/photos/skimage-chelsea.png"
IMG2="$TKR_TEST_DATA/images/photos/skimage-coffee.png"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi
}
M=(-m "$G/m4-f32.gguf" --mmproj "$G/mmproj-m4-q8_0.gguf" --threads 2)
"$BIN" embed "${M[@]}" --image "$IMG" --text "a cat" > "$tmp/one.json"
check "one-shot image + text" $?
"$BIN" embed "${M[@]}" --image "$IMG" --text "a cat" --release-vision-weights > "$tmp/rel.json"
check "one-shot with --release-vision-weights" $?
"$BIN" embed "${M[@]}" --image "$IMG2" > "$tmp/img2.json"
check "one-shot image only" $?
printf '{"images": ["%s"], "text": "a cat"}\n{"text": "only words"}\n{"images": ["%s"]}\n' \
  "$IMG" "$IMG2" > "$tmp/in.jsonl"
"$BIN" embed "${M[@]}" --input "$tmp/in.jsonl" > "$tmp/out.jsonl"
check "JSONL run, last chunk with two image items" $?
python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
one = json.load(open(t + "/one.json"))
rel = json.load(open(t + "/rel.json"))
img2 = json.load(open(t + "/img2.json"))
lines = [json.loads(l) for l in open(t + "/out.jsonl")]
bad = 0
def same(name, a, b):
    global bad
    ok = a["embedding"] == b["embedding"] and a["prompt_tokens"] == b["prompt_tokens"]
    print(("ok   " if ok else "FAIL ") + name)
    bad += not ok
if len(one["embedding"]) < 8 or one["prompt_tokens"] < 20:
    print("FAIL the one-shot output looks wrong"); bad += 1
same("--release-vision-weights = default (bit for bit)", one, rel)
same("JSONL image + text = one-shot", lines[0], one)
same("JSONL second image item (same call, after the first) = one-shot", lines[2], img2)
sys.exit(1 if bad else 0)
PY
check "vectors unchanged by dropping the vision pages" $?
"$BIN" serve --release-vision-weights -m "$tmp/no-such-model" --port 0 > "$tmp/serve.log" 2>&1
rc=$?
! grep -qi "unknown" "$tmp/serve.log" && [ $rc -ne 0 ]
check "serve takes --release-vision-weights (then fails on the missing model, rc $rc)" $?
[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"

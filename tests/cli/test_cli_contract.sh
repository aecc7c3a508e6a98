#!/usr/bin/env bash
# The command-line contract: single-shot output, JSONL order and per-line errors, exit codes,
# tokenize, --help, and clear errors (no crash) for missing or corrupt model files.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi
}
make_model_dir m1-flat-f32 "$tmp/m1"

# single shot: one JSON object with embedding and prompt_tokens (22 for "Hello world")
out=$("$BIN" embed -m "$tmp/m1" --text "Hello world"); rc=$?
python3 - "$out" <<'PY'; check "single-shot output" $(( rc | $? ))
import json, sys
d = json.loads(sys.argv[1])
assert set(d) == {"embedding", "prompt_tokens"}, d.keys()
assert d["prompt_tokens"] == 22 and len(d["embedding"]) == 16
assert abs(sum(x * x for x in d["embedding"]) - 1) < 1e-5
PY

# JSONL: good, bad JSON, wrong type, unknown field, missing image, good; blank line skipped
printf '%s\n' '{"text": "first"}' 'not json' '{"text": 5}' '{"txt": "x"}' \
  '{"text": "img", "images": ["/nonexistent.png"]}' '' '{"text": "last", "instruction": "Be brief."}' > "$tmp/in.jsonl"
"$BIN" embed -m "$tmp/m1" --input "$tmp/in.jsonl" > "$tmp/out.jsonl"; rc=$?
check "jsonl exit code is 1 when a line fails" $(( rc == 1 ? 0 : 1 ))
python3 - "$tmp/out.jsonl" <<'PY'; check "jsonl lines in order with per-line errors" $?
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["index"] for r in rows] == [0, 1, 2, 3, 4, 5], rows
assert "embedding" in rows[0] and "embedding" in rows[5]
for i in (1, 2, 3, 4):
    assert "error" in rows[i] and rows[i]["error"]["message"], rows[i]
assert "nonexistent" in rows[4]["error"]["message"]
PY
printf '%s\n' '{"text": "a"}' '{"text": "b"}' | "$BIN" embed -m "$tmp/m1" --input - > "$tmp/ok.jsonl"; rc=$?
check "jsonl from stdin, all good: exit 0" $rc
check "jsonl from stdin: two lines" $(( $(wc -l < "$tmp/ok.jsonl") == 2 ? 0 : 1 ))

# tokenize: raw ids, special tokens recognised
out=$("$BIN" tokenize -m "$tmp/m1" --text "Hello world<|im_end|>"); rc=$?
[ "$out" = "[9707, 1879, 151645]" ]; check "tokenize" $(( rc | $? ))

# help and usage errors
"$BIN" embed --help | grep -- "--input" >/dev/null; check "embed --help" $?
"$BIN" tokenize --help | grep -q -- "--text"; check "tokenize --help" $?
"$BIN" embed -m "$tmp/m1" 2>/dev/null; check "embed without input: exit 2" $(( $? == 2 ? 0 : 1 ))
"$BIN" embed -m "$tmp/m1" --text x --threads zero 2>/dev/null; check "bad --threads: exit 2" $(( $? == 2 ? 0 : 1 ))
"$BIN" nosuchcommand 2>/dev/null; check "unknown command: exit 2" $(( $? == 2 ? 0 : 1 ))

# model errors: missing dir, missing weights, truncated weights, corrupt header, bad config
expect_model_error() { # NAME DIR PATTERN
  local err
  err=$("$BIN" embed -m "$2" --text x 2>&1 >/dev/null); local rc=$?
  if [ $rc -eq 1 ] && grep -qi -- "$3" <<<"$err"; then echo "ok   $1"; else echo "FAIL $1 (rc=$rc: $err)"; fails=$((fails+1)); fi
}
expect_model_error "missing model dir" "$tmp/nope" "nope"
mkdir -p "$tmp/bad1" && cp "$tmp/m1"/*.json "$tmp/bad1/" && cp -P "$tmp/m1"/vocab.json "$tmp/m1"/merges.txt "$tmp/bad1/"
expect_model_error "no weights" "$tmp/bad1" "safetensors"
head -c 5000000 "$ROOT/tests/fixtures/models/m1-flat-f32/model.safetensors" > "$tmp/bad1/model.safetensors"
expect_model_error "truncated weights" "$tmp/bad1" "model.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": [1, 2, 3' > "$tmp/bad1/model.safetensors"
expect_model_error "corrupt header" "$tmp/bad1" "model.safetensors"
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' > "$tmp/bad1/model.safetensors"
expect_model_error "huge header length" "$tmp/bad1" "model.safetensors"
cp "$ROOT/tests/fixtures/models/m1-flat-f32/model.safetensors" "$tmp/bad1/"
sed 's/"num_attention_heads": 2/"num_attention_heads": 3/' "$tmp/m1/config.json" > "$tmp/bad1/config.json"
expect_model_error "inconsistent config" "$tmp/bad1" "config"
echo '{"hidden_size": ' > "$tmp/bad1/config.json"
expect_model_error "truncated config.json" "$tmp/bad1" "config.json"
sed 's/"intermediate_size": 40,/"intermediate_size": 48,/' "$tmp/m1/config.json" > "$tmp/bad1/config.json"
expect_model_error "shape mismatch config vs weights" "$tmp/bad1" "shape"

echo "$fails failed"
[ $fails -eq 0 ]

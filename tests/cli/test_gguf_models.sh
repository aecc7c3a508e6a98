#!/usr/bin/env bash
# GGUF models end to end:
#  1. llama.cpp's own converter output (tests/fixtures/gguf, made by tools/gen_gguf_fixtures.py
#     from the m4 fixture: F32 text model, F32/F16/Q8_0 mmproj) gives the HF vectors: F32 pair
#     cos >= 0.99999 on text, image, text+image and two-image items, prompt tokens unchanged;
#  2. our `quantize` of the same HF checkpoint is byte-identical to llama.cpp's converter
#     (every tensor's type, shape and bytes, text and mmproj, f32 / f16 / q8_0), also when the
#     source is the llama.cpp F32 GGUF pair; the F16 and Q8_0 pairs meet their floors;
#  3. loading: a directory of one model and one mmproj GGUF; a text model without mmproj embeds
#     text and refuses images clearly; two mmproj files in a directory are a clear error;
#  4. every fixture model (m1: flat/old layout/F32, m2: nested/new layout/F16/sharded, m3: real
#     head size, hidden 768 so the K-quants run) quantized by `quantize` to each type and
#     embedded: cos floors f32/f16/bf16 0.9999, q8_0 0.999, q4_k_m and q6_k 0.99, q4_0 0.98.
#     m3's q4_0, q4_k_m and q6_k files are byte-identical to llama-quantize's output on the same
#     F32 values (tests/fixtures/gguf/llama-quantize-m3.json).
#     The tiny m1/m2 rows (16, 24, 40, 56 values) are not whole blocks: they take the F16
#     fallback, as llama.cpp does.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
G="$ROOT/tests/fixtures/gguf"
EXP="$ROOT/tests/fixtures/expected"
CMP="$ROOT/tests/lib/compare_expected.py"
TENS="$ROOT/tests/lib/gguf_tensors.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi
}
compare() { # compare MODEL EXPECTED FLOOR [compare_expected args...]
  local m=$1 e=$2 floor=$3; shift 3
  python3 "$CMP" "$BIN" "$m" "$e" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" --min-cos "$floor" "$@" > "$tmp/cmp.log" 2>&1
  local rc=$?
  tail -1 "$tmp/cmp.log"
  [ $rc -eq 0 ] || grep -v "^ok" "$tmp/cmp.log" | head -5
  return $rc
}

# ---- 1. llama.cpp-converted pair
make_model_dir m4-gguf-src "$tmp/m4" || { echo "FATAL: cannot assemble m4"; exit 1; }
mkdir -p "$tmp/q4" "$tmp/qg"
E4="$EXP/m4-gguf-src.jsonl"
compare "$G/m4-f32.gguf" "$E4" 0.99999 --args "--mmproj $G/mmproj-m4-f32.gguf"
check "llama.cpp F32 pair (tokenizer from GGUF metadata) = HF vectors" $?

# ---- 2. our quantize = llama.cpp's converter, byte for byte
for t in f32 f16 q8_0; do
  "$BIN" quantize -q -m "$tmp/m4" -o "$tmp/q4/m4-$t.gguf" --type $t 2>"$tmp/err" ||
    { cat "$tmp/err"; check "quantize m4 $t" 1; continue; }
  python3 "$TENS" "$tmp/q4/m4-$t.gguf" --check "$G/hashes.json" "m4-$t.gguf" | tail -3
  check "quantize m4 --type $t: text GGUF = llama.cpp converter's" ${PIPESTATUS[0]}
  python3 "$TENS" "$tmp/q4/mmproj-m4-$t.gguf" --check "$G/hashes.json" "mmproj-m4-$t.gguf" | tail -3
  check "quantize m4 --type $t: mmproj = llama.cpp converter's" ${PIPESTATUS[0]}
done
"$BIN" quantize -q -m "$G/m4-f32.gguf" --mmproj "$G/mmproj-m4-f32.gguf" -o "$tmp/qg/m4-q8_0.gguf" \
  --type q8_0 && python3 "$TENS" "$tmp/qg/m4-q8_0.gguf" --check "$G/hashes.json" m4-q8_0.gguf | tail -1 &&
  python3 "$TENS" "$tmp/qg/mmproj-m4-q8_0.gguf" --check "$G/hashes.json" mmproj-m4-q8_0.gguf | tail -1
check "quantize from the llama.cpp F32 GGUF pair to q8_0 = llama.cpp converter's q8_0" $?
compare "$tmp/q4/m4-f16.gguf" "$E4" 0.99999 --args "--mmproj $G/mmproj-m4-f16.gguf"
check "llama.cpp F16 pair (our text bytes = theirs) >= 0.99999" $?
compare "$tmp/q4/m4-q8_0.gguf" "$E4" 0.999 --args "--mmproj $G/mmproj-m4-q8_0.gguf"
check "llama.cpp Q8_0 pair >= 0.999" $?

# ---- 3. loading rules
mkdir -p "$tmp/dir1" "$tmp/dir2"
ln -s "$G/m4-f32.gguf" "$G/mmproj-m4-f32.gguf" "$tmp/dir1/"
compare "$tmp/dir1" "$E4" 0.99999 --kind image
check "-m DIR with one model and one mmproj GGUF" $?
compare "$G/m4-f32.gguf" "$E4" 0.99999 --kind text
check "text model without mmproj embeds text" $?
out=$("$BIN" embed -m "$G/m4-f32.gguf" --image "$TKR_TEST_DATA/images/photos/skimage-chelsea.png" 2>&1)
rc=$?
echo "$out" | head -2
[ $rc -ne 0 ] && echo "$out" | grep -q "no vision tower.*mmproj"
check "image without mmproj: clear error, non-zero exit" $?
ln -s "$G/m4-f32.gguf" "$G/mmproj-m4-f32.gguf" "$G/mmproj-m4-f16.gguf" "$tmp/dir2/"
out=$("$BIN" embed -m "$tmp/dir2" --text hi 2>&1)
rc=$?
echo "$out" | head -2
[ $rc -ne 0 ] && echo "$out" | grep -q "more than one mmproj"
check "two mmproj files in a directory: clear error" $?
out=$("$BIN" quantize -m "$tmp/m4" -o "$tmp/x.gguf" --type q5_k 2>&1)
[ $? -eq 2 ] && echo "$out" | grep -q "unknown --type"
check "quantize: unknown type refused" $?

# ---- 4. every fixture model, every type
floor() { case $1 in f32|f16|bf16) echo 0.9999;; q8_0) echo 0.999;; q4_k_m|q6_k) echo 0.99;; q4_0) echo 0.98;; esac; }
# Under ASan/UBSan (tests/run.sh's second variant, 5-10x slower) the same code paths run on a
# smaller set: m1 and m2 at every type (all fallbacks, both layouts), m3 at q4_k_m (the K-quants).
models="m1-flat-f32 m2-nested-f16-sharded m3-h128-bf16"
san=0
case "$TKR_BUILD" in *-san) san=1;; esac
for m in $models; do
  make_model_dir "$m" "$tmp/$m" || { echo "FATAL: cannot assemble $m"; exit 1; }
  types="f32 f16 bf16 q8_0 q4_0 q4_k_m q6_k"
  # m3 (hidden 768) is here for the K-quants; its float types (files of 230-470 MB) are covered
  # by m1, m2 and m4
  [ "$m" = m3-h128-bf16 ] && types="q8_0 q4_0 q4_k_m q6_k"
  if [ $san = 1 ]; then
    [ "$m" = m2-nested-f16-sharded ] && types="q8_0 q4_k_m"
    [ "$m" = m3-h128-bf16 ] && types="q4_k_m"
    echo "(sanitizer build: $m at $types)"
  fi
  for t in $types; do
    rm -rf "$tmp/out"; mkdir -p "$tmp/out"
    "$BIN" quantize -q -m "$tmp/$m" -o "$tmp/out/$m-$t.gguf" --type $t 2>"$tmp/err" ||
      { cat "$tmp/err"; check "quantize $m $t" 1; continue; }
    compare "$tmp/out" "$EXP/$m.jsonl" "$(floor $t)" --text-limit 12
    check "$m quantized to $t (floor $(floor $t))" $?
    # m3's K-quant files = llama-quantize's (llama.cpp 80fb11a, run on our f32 GGUF of m3)
    if [ "$m" = m3-h128-bf16 ] && [ "$t" != bf16 ] && [ "$t" != q8_0 ]; then
      python3 "$TENS" "$tmp/out/$m-$t.gguf" --check "$G/llama-quantize-m3.json" "llama-quantize-m3-$t.gguf" | tail -2
      check "m3 $t: every tensor = llama-quantize's bytes" ${PIPESTATUS[0]}
    fi
  done
  rm -rf "$tmp/$m" "$tmp/out"
done
echo "$fails failed"
exit $((fails > 0))

#!/usr/bin/env bash
# The ARM64 leg of CI: cross-builds tkr-embed for aarch64 (gcc-aarch64-linux-gnu and the :arm64
# -dev packages, in build-arm64/) and runs it under qemu-aarch64 user mode, twice:
#   -cpu max         NEON with the dot-product extension (the neon-dot kernels)
#   -cpu cortex-a72  NEON without it (the widening-multiply int8 fallback)
# Under qemu everything runs ~20-40x slower than natively (loading the 151k-token tokenizer alone
# takes seconds), so this is a subset chosen to cover every kernel and weight type:
#   both CPUs:   test_kernels (each NEON kernel against the portable one, the run-time selection)
#                and per weight type (F32 m1, F16 m2, BF16 m3) a text+image HF reference item
#                (both towers: every kernel), at the x86 cosine floor (tests/lib/compare_expected.py);
#   -cpu max:    the other unit tests without per-ISA code but with ARM ABI traps (char is
#                unsigned, alignment): model, tokenizer, image, safetensors, config, server units;
#                and more reference items: CJK text, instruction, multi-image, head size 128.
# Prints which kernels ran and ends with "N passed, N failed"; exit 0 only if all passed.
#   TKR_ARM64_NO_INSTALL=1  skip scripts/install-deps-arm64.sh (the packages are there already)
#   TKR_ARM64_CPUS="max cortex-a72"  the qemu CPUs to run under
# Facts behind the choices (no -L for qemu, PKG_CONFIG_LIBDIR, the gcc 12 ICE): docs/arm64.md.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export TKR_TEST_DATA="${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}"
t_start=$(date +%s)
pass=0; fail=0; failed_names=()
note() { printf '%s\n' "$*"; }
count_fail() { fail=$((fail+1)); failed_names+=("$1"); note "FAIL $1"; }

if [ "${TKR_ARM64_NO_INSTALL:-0}" != 1 ]; then
  bash scripts/install-deps-arm64.sh || { count_fail "install-deps-arm64"; echo "$pass passed, $fail failed"; exit 1; }
fi
note "arm64: $(aarch64-linux-gnu-gcc --version | head -1); $(qemu-aarch64 --version | head -1)"

BUILD=build-arm64
UNITS_MAX="kernels model tokenizer image image_malformed safetensors config base64 util server_units server_batcher"
UNITS_EVERY_CPU="kernels"
for q in quant linear_quant; do   # the quantized-kernel tests, where present
  if [ -f "tests/unit/test_$q.c" ]; then UNITS_MAX="$UNITS_MAX $q"; UNITS_EVERY_CPU="$UNITS_EVERY_CPU $q"; fi
done
targets="$BUILD/tkr-embed $BUILD/tools/mkmodel"
for u in $UNITS_MAX; do targets="$targets $BUILD/tests/test_$u"; done
t0=$(date +%s)
if ! PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
     make -s -j"$(nproc 2>/dev/null || echo 2)" BUILD=$BUILD CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar \
     $targets >/tmp/tkr-arm64-build.$$.log 2>&1; then
  grep -v '^  \(CC\|LD\) ' /tmp/tkr-arm64-build.$$.log | tail -40
  count_fail "arm64 cross build"; rm -f /tmp/tkr-arm64-build.$$.log
  echo "$pass passed, $fail failed"; exit 1
fi
rm -f /tmp/tkr-arm64-build.$$.log
note "arm64: cross build $(( $(date +%s) - t0 ))s ($(aarch64-linux-gnu-readelf -h $BUILD/tkr-embed | grep -m1 Machine | sed "s/ *Machine: *//"))"

tmp=$(mktemp -d)
bg_pid=
trap '[ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
source tests/lib/modeldir.sh

# A wrapper "build dir" per CPU: tkr-embed and tools/mkmodel run the arm64 binaries under qemu
# (without -L: with libc6:arm64 installed qemu finds /lib/ld-linux-aarch64.so.1 itself).
make_wrappers() {
  local cpu=$1 dir=$2
  mkdir -p "$dir/tools"
  printf '#!/bin/sh\nexec qemu-aarch64 -cpu %s "%s" "$@"\n' "$cpu" "$ROOT/$BUILD/tkr-embed" >"$dir/tkr-embed"
  printf '#!/bin/sh\nexec qemu-aarch64 -cpu %s "%s" "$@"\n' "$cpu" "$ROOT/$BUILD/tools/mkmodel" >"$dir/tools/mkmodel"
  chmod +x "$dir/tkr-embed" "$dir/tools/mkmodel"
}
neon_dot_of() { [ "$1" = cortex-a72 ] && echo 0 || echo 1; }

# Counts the PASS/FAIL lines of one unit binary's output file (a crash or no line is a failure).
count_unit() {
  local label=$1 outf=$2 rc=$3 secs=$4 p f
  p=$(grep -c '^PASS ' "$outf"); f=$(grep -c '^FAIL ' "$outf")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass+p)); fail=$((fail+f))
  grep '^# kernels' "$outf" | sed "s|^|[$label] |"
  if [ "$f" -ne 0 ]; then sed "s|^|[$label] |" "$outf"; failed_names+=("$label"); note "FAIL $label"
  else note "ok   $label ($p tests, ${secs}s)"; fi
}
run_unit() {
  local cpu=$1 u=$2 t0 rc
  t0=$(date +%s)
  TKR_EXPECT_NEON_DOT=$(neon_dot_of "$cpu") qemu-aarch64 -cpu "$cpu" "$BUILD/tests/test_$u" >"$tmp/unit.out" 2>&1
  rc=$?
  count_unit "$cpu/test_$u" "$tmp/unit.out" $rc $(( $(date +%s) - t0 ))
}

# The reference items: indices into tests/fixtures/expected/<model>.jsonl.
#   every CPU: one text+image item per model (vision tower, merger and decoder: every kernel)
#   -cpu max adds: m1 CJK text, multi-image; m2 text with instruction; m3 text (head size 128)
declare -A PICK_ALL=([m1-flat-f32]="11" [m2-nested-f16-sharded]="11" [m3-h128-bf16]="10")
declare -A PICK_MAX=([m1-flat-f32]="2 12" [m2-nested-f16-sharded]="1" [m3-h128-bf16]="0")
run_model() {
  local cpu=$1 m=$2 wrap=$3 t0 sub out rc
  t0=$(date +%s)
  sub="$tmp/$m.$cpu.jsonl"
  local picks=${PICK_ALL[$m]}
  [ "$cpu" = max ] && picks="${PICK_MAX[$m]} $picks"
  python3 - "$ROOT/tests/fixtures/expected/$m.jsonl" "$sub" $picks <<'PY'
import sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i in sys.argv[3:]:
        f.write(lines[int(i)])
PY
  out=$(python3 tests/lib/compare_expected.py "$wrap/tkr-embed" "$tmp/model-$m" "$sub" "$TKR_TEST_DATA" \
        "$ROOT/tests/fixtures" 2>&1)
  rc=$?
  printf '%s\n' "$out" | sed "s|^|[$cpu $m] |"
  if [ $rc -eq 0 ]; then pass=$((pass+1)); note "ok   $cpu/$m ($(( $(date +%s) - t0 ))s)"
  else count_fail "$cpu/$m"; fi
}

# the fixture model directories, once (m3's weights are generated by mkmodel, under qemu)
make_wrappers max "$tmp/wrap-max"
for m in m1-flat-f32 m2-nested-f16-sharded m3-h128-bf16; do
  if ! TKR_BUILD="$tmp/wrap-max" make_model_dir "$m" "$tmp/model-$m" >"$tmp/mk.log" 2>&1; then
    cat "$tmp/mk.log"; count_fail "model dir $m"
  fi
done
export TKR_MODEL_M1="$tmp/model-m1-flat-f32"   # the model test_model loads

# The tokenizer test is long and single-threaded: it runs beside the rest, on the other core.
t_tok=$(date +%s)
( TKR_EXPECT_NEON_DOT=1 qemu-aarch64 -cpu max "$BUILD/tests/test_tokenizer" >"$tmp/tok.out" 2>&1; echo $? >"$tmp/tok.rc" ) &
bg_pid=$!

for cpu in ${TKR_ARM64_CPUS:-max cortex-a72}; do
  note "== qemu-aarch64 -cpu $cpu"
  wrap="$tmp/wrap-$cpu"
  make_wrappers "$cpu" "$wrap"
  note "[$cpu] $("$wrap/tkr-embed" --version | grep '^kernels:')"
  units=$UNITS_EVERY_CPU
  [ "$cpu" = max ] && units=${UNITS_MAX/tokenizer/}
  for u in $units; do run_unit "$cpu" "$u"; done
  for m in m1-flat-f32 m2-nested-f16-sharded m3-h128-bf16; do run_model "$cpu" "$m" "$wrap"; done
  # what the model itself selected (embed --verbose): the kernels that ran
  printf '{"text": "kernels"}\n' | "$wrap/tkr-embed" embed -m "$tmp/model-m1-flat-f32" --input - --verbose 2>&1 >/dev/null \
    | sed "s|^|[$cpu] |"
done
wait "$bg_pid"; bg_pid=
count_unit "max/test_tokenizer" "$tmp/tok.out" "$(cat "$tmp/tok.rc" 2>/dev/null || echo 1)" $(( $(date +%s) - t_tok ))

note "arm64 leg: $(( $(date +%s) - t_start ))s"
if [ "${#failed_names[@]}" -gt 0 ]; then note "arm64 failed: ${failed_names[*]}"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# The test suite: builds the release and the ASan+UBSan variants, runs every unit test binary and
# every CLI/server test script under both, and ends with one line "N passed, N failed".
# Shared test data: $TKR_TEST_DATA (default ../shared/data from the repo root).
set -u
cd "$(dirname "$0")/.."
export TKR_TEST_DATA="${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}"
jobs=$(nproc 2>/dev/null || echo 2)
pass=0; fail=0; failed_names=()

note() { printf '%s\n' "$*"; }

build() {
  if ! make -s -j"$jobs" "$@" >/tmp/tkr-build.$$.log 2>&1; then
    cat /tmp/tkr-build.$$.log; note "FAIL build $*"; fail=$((fail+1)); failed_names+=("build $*"); return 1
  fi
}

# Runs one unit binary and counts its PASS/FAIL lines (a crash without output counts as a failure).
run_unit() {
  local bin=$1 label=$2 out rc
  out=$("$bin" 2>&1); rc=$?
  local p f
  p=$(grep -c '^PASS ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass+p)); fail=$((fail+f))
  if [ "$f" -ne 0 ]; then
    printf '%s\n' "$out" | sed "s|^|[$label] |"
    failed_names+=("$label")
  else
    note "ok   $label ($p tests)"
  fi
}

# Runs one script test: exit 0 = pass. The script gets the build dir in $TKR_BUILD.
run_script() {
  local script=$1 label=$2 out rc
  out=$(bash "$script" 2>&1); rc=$?
  if [ "$rc" -eq 0 ]; then pass=$((pass+1)); note "ok   $label"
  else fail=$((fail+1)); failed_names+=("$label"); printf '%s\n' "$out" | sed "s|^|[$label] |"; note "FAIL $label"; fi
}

# the fixture model the C model tests load (tokenizer files come from the shared data)
model_tmp=$(mktemp -d)
trap 'rm -rf "$model_tmp"' EXIT
if ( source tests/lib/modeldir.sh && make_model_dir m1-flat-f32 "$model_tmp/m1" ); then
  export TKR_MODEL_M1="$model_tmp/m1"
else
  note "FAIL could not assemble the fixture model (shared data missing?)"; fail=$((fail+1)); failed_names+=("fixture model")
fi

for variant in build build-san; do
  if [ "$variant" = build ]; then build || continue; else build SAN=1 || continue; fi
  export TKR_BUILD="$PWD/$variant"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  for t in "$variant"/tests/test_*; do
    [ -x "$t" ] || continue
    run_unit "$t" "$variant/$(basename "$t")"
  done
  for s in tests/cli/*.sh; do
    [ -f "$s" ] || continue
    run_script "$s" "$variant/$(basename "$s" .sh)"
  done
done

# The ARM64 leg (cross-built, run under qemu-aarch64; docs/arm64.md): on when TKR_ARM64=1, as
# .ci/run sets it. Its counts join these; its own closing line is left out of this output.
if [ "${TKR_ARM64:-0}" = 1 ]; then
  arm_log=$(mktemp)
  bash tests/arm64/run.sh 2>&1 | tee "$arm_log" | grep -Ev '^[0-9]+ passed, [0-9]+ failed$'
  read -r arm_p _ arm_f _ < <(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$arm_log" | tail -1)
  if [ -z "${arm_p:-}" ]; then arm_p=0; arm_f=1; fi
  pass=$((pass+arm_p)); fail=$((fail+arm_f))
  [ "$arm_f" -eq 0 ] || failed_names+=("arm64 leg")
  rm -f "$arm_log"
fi

rm -f /tmp/tkr-build.$$.log
if [ "${#failed_names[@]}" -gt 0 ]; then note "failed: ${failed_names[*]}"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

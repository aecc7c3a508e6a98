#!/usr/bin/env bash
# run.sh - runs every libFuzzer harness (build-fuzz/fuzz/, from `make fuzz`) for a fixed time on
# its committed corpus (tests/fuzz/corpus/<name>) plus seeds from the shared data, keeping new
# inputs in a scratch directory. Fails when a harness finds a crash, a leak or a timeout; the
# input is kept under $TKR_FUZZ_OUT (default: a temp dir) and named in the output.
#   tests/fuzz/run.sh [SECONDS per harness, default 20] [harness names...]
# Prints per harness: executions, coverage (cov: edges, ft: features), new corpus inputs.
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-20}
[ $# -gt 0 ] && shift
DATA=${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}
B=${TKR_FUZZ_BUILD:-build-fuzz}/fuzz
OUT=${TKR_FUZZ_OUT:-$(mktemp -d /tmp/tkr-fuzz-run.XXXXXX)}
mkdir -p "$OUT"
[ -f "$DATA/tokenizers/qwen2/vocab.json" ] || { echo "FAIL: shared data not found at $DATA (set TKR_TEST_DATA)"; exit 1; }
ls "$B"/fuzz_* >/dev/null 2>&1 || { echo "FAIL: no harnesses in $B (run: make FUZZ=1 fuzzers)"; exit 1; }

# the Qwen2 tokenizer for fuzz_tokenize: the shared vocabulary plus the Qwen2-VL added tokens
TOK="$OUT/tokenizer"
mkdir -p "$TOK"
ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$TOK/"
cp tests/fixtures/qwen2vl/tokenizer_config.json tests/fixtures/qwen2vl/added_tokens.json "$TOK/"
export TKR_FUZZ_TOKENIZER_DIR="$TOK"

dict_of() {
  case $1 in
    config|tokenizer_json|vocab_merges|request|shard_index) echo "-dict=tests/fuzz/json.dict" ;;
    http) echo "-dict=tests/fuzz/http.dict" ;;
  esac
}
seeds_of() {   # read-only seed directories from the shared data (never copied into git)
  case $1 in
    image) echo "$DATA/images/seeds $DATA/images/pngsuite" ;;
    gguf) [ -d "$DATA/tokenizers/llama.cpp-vocab-tests" ] && echo "$DATA/tokenizers/llama.cpp-vocab-tests" ;;
  esac
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for bin in "$B"/fuzz_*; do [ -x "$bin" ] && [[ $bin != *.d ]] && names+=("$(basename "$bin" | sed 's/^fuzz_//')"); done
fi
failed=0
for name in "${names[@]}"; do
  bin="$B/fuzz_$name"
  new="$OUT/new-$name"
  mkdir -p "$new"
  corpus=()
  [ -d "tests/fuzz/corpus/$name" ] && corpus+=("tests/fuzz/corpus/$name")
  for d in $(seeds_of "$name"); do [ -d "$d" ] && corpus+=("$d"); done
  # shellcheck disable=SC2046
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$OUT/$name-" $(dict_of "$name") "$new" "${corpus[@]}" >"$OUT/$name.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$OUT/$name.log" | tail -1)
  if [ $rc -ne 0 ]; then
    failed=1
    echo "FAIL fuzz_$name (rc $rc): $(ls "$OUT/$name-"* 2>/dev/null | head -3 | tr '\n' ' ')"
    grep -m5 -E 'ERROR|SUMMARY|runtime error' "$OUT/$name.log"
  else
    echo "ok   fuzz_$name: ${execs:-?} executions, ${cov:-no coverage line}, $(ls "$new" | wc -l) new inputs"
  fi
done
echo "fuzz logs and new inputs: $OUT"
exit $failed

#!/usr/bin/env bash
# long.sh - a long fuzzing run on a shared machine: one libFuzzer process at a time under nice 19,
# in rounds over every harness, each round giving a harness a time slice weighted by how slow it
# is per execution (tokenizer_json gets 9x base64's slice), until the total time is spent or
# $WORK/STOP exists. Working corpora persist in $WORK/corpus/<name> (seeded from the committed
# corpus and the shared-data seeds), so runs can be resumed. One line per slice goes to
# $WORK/slices.log (executions, cov, ft, execs/s); full logs in $WORK/logs, crashes in $WORK/crash.
#   tests/fuzz/long.sh TOTAL_SECONDS [SCALE, default 1: slice lengths multiplier]
# Needs `make FUZZ=1 fuzzers`. Interrupting (SIGINT) a harness ends its slice with final stats.
set -u
cd "$(dirname "$0")/../.."
R=$PWD
TOTAL=${1:?usage: tests/fuzz/long.sh TOTAL_SECONDS [SCALE]}
SCALE=${2:-1}
WORK=${TKR_FUZZ_WORK:-/tmp/tkr-fuzz-long}
B=${TKR_FUZZ_BUILD:-build-fuzz}/fuzz
DATA=${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}
[ -f "$DATA/tokenizers/qwen2/vocab.json" ] || { echo "FAIL: shared data not found at $DATA (set TKR_TEST_DATA)"; exit 1; }
mkdir -p "$WORK/corpus" "$WORK/logs" "$WORK/crash" "$WORK/tokenizer"
ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$WORK/tokenizer/"
cp tests/fixtures/qwen2vl/tokenizer_config.json tests/fixtures/qwen2vl/added_tokens.json "$WORK/tokenizer/"
export TKR_FUZZ_TOKENIZER_DIR="$WORK/tokenizer"
# seconds per round at SCALE 1 (name:seconds ...; TKR_FUZZ_SLICES overrides), the slowest per
# execution first: about 48 minutes a round
SLICES=${TKR_FUZZ_SLICES:-"tokenizer_json:700 vocab_merges:500 image:500 tokenize:350 gguf:250
        safetensors:120 request:120 config:100 shard_index:100 http:100 base64:80"}
deadline=$(( $(date +%s) + TOTAL ))
round=0
while :; do
  round=$((round + 1))
  for entry in $SLICES; do
    name=${entry%%:*}
    secs=$(( ${entry##*:} * SCALE ))
    now=$(date +%s)
    left=$(( deadline - now ))
    { [ -e "$WORK/STOP" ] || [ $left -le 20 ]; } && exit 0
    [ $secs -gt $left ] && secs=$left
    [ -x "$B/fuzz_$name" ] || continue
    mkdir -p "$WORK/corpus/$name"
    seeds=("tests/fuzz/corpus/$name")
    case $name in
      image) seeds+=("$DATA/images/seeds" "$DATA/images/pngsuite") ;;
      gguf) [ -d "$DATA/tokenizers/llama.cpp-vocab-tests" ] && seeds+=("$DATA/tokenizers/llama.cpp-vocab-tests") ;;
    esac
    dict=()
    case $name in
      config|tokenizer_json|vocab_merges|request|shard_index) dict=(-dict=tests/fuzz/json.dict) ;;
      http) dict=(-dict=tests/fuzz/http.dict) ;;
    esac
    log="$WORK/logs/$name-r$round-$(date -u +%H%M%S).log"
    # -max_len: without it libFuzzer takes the largest seed (a 627 KB GGUF) as the limit
    nice -n 19 "$B/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$WORK/crash/$name-" "${dict[@]}" \
      "$WORK/corpus/$name" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    took=$(( $(date +%s) - now ))
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    echo "$(date -u +%H:%M:%S) round $round $name rc=$rc secs=$took execs=${execs:-?} $cov" \
         "corpus=$(ls "$WORK/corpus/$name" | wc -l) eps=$(( ${execs:-0} / (took > 0 ? took : 1) ))" \
         >>"$WORK/slices.log"
    [ $rc -ne 0 ] && grep -m5 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" >>"$WORK/slices.log"
  done
done

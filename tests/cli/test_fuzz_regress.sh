#!/usr/bin/env bash
# test_fuzz_regress.sh - replays every fuzz harness (built without libFuzzer, by replay_main.c, in
# this build: release or ASan+UBSan) over its committed seed corpus, every input that once made
# a harness fail (tests/fuzz/regress/<name>/), and the shared-data seeds. Any crash, sanitizer
# report or leak fails the test.
set -u
cd "$(dirname "$0")/../.."
B="${TKR_BUILD:-$PWD/build}"
DATA="${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}"
[ -f "$DATA/tokenizers/qwen2/vocab.json" ] || { echo "FAIL: shared data not found at $DATA"; exit 1; }
ls "$B"/fuzz-replay/fuzz_* >/dev/null 2>&1 || { echo "FAIL: no replay binaries in $B/fuzz-replay (make)"; exit 1; }
TOK=$(mktemp -d /tmp/tkr-fuzz-tok.XXXXXX)
trap 'rm -rf "$TOK"' EXIT
ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$TOK/"
cp tests/fixtures/qwen2vl/tokenizer_config.json tests/fixtures/qwen2vl/added_tokens.json "$TOK/"
export TKR_FUZZ_TOKENIZER_DIR="$TOK"
fail=0
for bin in "$B"/fuzz-replay/fuzz_*; do
  [[ $bin == *.d ]] && continue
  name=$(basename "$bin" | sed 's/^fuzz_//')
  dirs=()
  for d in "tests/fuzz/corpus/$name" "tests/fuzz/regress/$name"; do [ -d "$d" ] && dirs+=("$d"); done
  [ "$name" = image ] && dirs+=("$DATA/images/seeds" "$DATA/images/pngsuite")
  [ ${#dirs[@]} -eq 0 ] && { echo "FAIL $name: no corpus"; fail=1; continue; }
  if out=$("$bin" "${dirs[@]}" 2>&1); then
    echo "ok   $name: $(tail -1 <<<"$out")"
  else
    echo "FAIL $name"; echo "$out" | tail -20; fail=1
  fi
done
exit $fail

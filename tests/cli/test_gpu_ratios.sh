#!/usr/bin/env bash
# test_gpu_ratios.sh - bench/gpu_ratios.py on made-up bench lines: ratios per round and of the
# medians, fp32 lines of ours left out, verdicts against the issue's targets, and the errors.
set -u
cd "$(dirname "$0")/../.."
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
fail=0
expect() { # expect NAME PATTERN TEXT
  if grep -qE -- "$2" <<<"$3"; then echo "PASS $1"; else echo "FAIL $1: no /$2/ in:"; echo "$3"; fail=1; fi
}
cat >"$d/hf.jsonl" <<'J'
{"bench": "hf_versions", "torch": "2.11"}
{"bench": "text_throughput", "batch": 64, "tokens": 128, "median_s": 0.05, "tokens_per_s": 100000}
{"bench": "image_throughput", "images": 16, "image_tokens": 1280, "median_s": 0.7, "images_per_s": 20.0}
{"bench": "text_latency", "tokens": 128, "median_ms": 30.0, "min_ms": 29.0}
{"bench": "text_throughput", "batch": 64, "tokens": 128, "median_s": 0.05, "tokens_per_s": 120000}
{"bench": "image_throughput", "images": 16, "image_tokens": 1280, "median_s": 0.7, "images_per_s": 25.0}
not json
J
cat >"$d/tkr.jsonl" <<'J'
{"bench": "load", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "seconds": 1.0}
{"bench": "text_throughput", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "batch": 64, "tokens": 128, "tokens_per_s": 160000}
{"bench": "image_throughput", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "images": 16, "image_tokens": 1280, "images_per_s": 29.0}
{"bench": "text_latency", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "tokens": 128, "median_ms": 12.5}
{"bench": "text_throughput", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "batch": 64, "tokens": 128, "tokens_per_s": 186000}
{"bench": "image_throughput", "device": "cuda:0 X (sm_90, bf16, cuBLAS 13.1)", "images": 16, "image_tokens": 1280, "images_per_s": 40.0}
{"bench": "text_throughput", "device": "cuda:0 X (sm_90, fp32, cuBLAS 13.1)", "batch": 64, "tokens": 128, "tokens_per_s": 10}
J
out=$(python3 bench/gpu_ratios.py "$d/hf.jsonl" "$d/tkr.jsonl"); rc=$?
expect "exit 0 with shared measurements" "^0$" "$rc"
# text: rounds 1.600 and 1.550, median 1.575; medians 110k / 173k = 1.573 (the fp32 line left out)
expect "text ratios per round" "text 64 x 128 tokens +110.0k tok/s +173.0k tok/s +1.573x +1.575x +1.600 1.550 +>= 1.5x +met" "$out"
# images: rounds 1.450 and 1.600, median 1.525 (met); medians 22.5 / 34.5
expect "image ratios per round" "16 images of 1280 tokens +22.5 img/s +34.5 img/s +1.533x +1.525x +1.450 1.600 .*met" "$out"
# latency: 12.5 ms against a target of 10 ms
expect "latency against its absolute target" "one 128-token text, ms +30.00 ms +12.50 ms .*<= 10 ms +NOT met" "$out"
md=$(python3 bench/gpu_ratios.py "$d/hf.jsonl" "$d/tkr.jsonl" --markdown)
expect "markdown table" "^\| text 64 x 128 tokens \| 110.0k tok/s \| 173.0k tok/s \| 1.573x" "$md"
: >"$d/empty.jsonl"
err=$(python3 bench/gpu_ratios.py "$d/hf.jsonl" "$d/empty.jsonl" 2>&1); rc=$?
expect "nothing shared: exit 1" "^1$" "$rc"
expect "nothing shared: says so" "no measurement in both files" "$err"
err=$(python3 bench/gpu_ratios.py "$d/hf.jsonl" "$d/missing.jsonl" 2>&1); rc=$?
expect "missing file: exit 1" "^1$" "$rc"
expect "missing file: names it" "missing.jsonl" "$err"
exit $fail

#!/usr/bin/env bash
# bench/bench_gpu_sweep.sh - bench/bench_gpu under several settings of the CUDA backend's knobs
# (TKR_CUDA_* variables, docs/backends.md), one after the other on the same model and images,
# to choose defaults from measurements taken minutes apart on the same GPU. On the accelerator
# machine, after tests/gpu/run.sh has built $TKR_BUILD (or with it building here):
#   bash bench/bench_gpu_sweep.sh "" "TKR_CUDA_ROPE_TABLE=0" "TKR_CUDA_FLASH=2 TKR_CUDA_LT=2"
# Each argument is one setting ("" = the defaults); SWEEP_ARGS go to bench_gpu (default --runs 3).
# Prints bench_gpu's JSON lines, each prefixed with the setting; the model is the random 2B shape
# of bench/bench_gpu_hf.py --build-only (HF transformers writes it; no HF timing here).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TKR_BUILD:-$ROOT/build-cuda}
B=${TKR_BENCH_DIR:-/tmp/tkr-bench-2b}
DATA=${TKR_TEST_DATA:?set TKR_TEST_DATA (tokenizers and photos)}
[ -x "$BUILD/bench/bench_gpu" ] || { echo "bench_gpu_sweep: no $BUILD/bench/bench_gpu" >&2; exit 1; }
if [ ! -d "$B/model" ]; then
  python3 "$ROOT/bench/bench_gpu_hf.py" --out "$B" --data "$DATA" --build-only >&2 || exit 1
fi
rc=0
for cfg in "$@"; do
  echo "== setting: ${cfg:-defaults}" >&2
  env $cfg timeout 300 "$BUILD/bench/bench_gpu" -m "$B/model" --img256 "$B/img256.jpg" --img1280 "$B/img1280.jpg" \
    ${SWEEP_ARGS:---runs 3} | sed "s|^|${cfg:-defaults}\t|" || rc=1
done
exit $rc

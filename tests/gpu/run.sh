#!/usr/bin/env bash
# tests/gpu/run.sh - the GPU checks, on a machine with an NVIDIA GPU (sm_90a code + PTX) and nvcc:
#   1. build: make CUDA=1 (with $TKR_GPU_MAKE_ARGS, default VIDEO=0 PDF=0) into $TKR_BUILD (default build-cuda; CFLAGS / LDLIBS from the
#      environment as make takes them; with TKR_GPU_NO_BUILD=1 the binaries already there are
#      used; if the build fails and $TKR_GPU_FALLBACK_BUILD holds binaries, those are used);
#   2. every flash attention version, and the fused gate|up + SiLU GEMM, against float64 CPU
#      references (tests/gpu/test_flash.cu, test_swiglu.cu);
#      every HF reference item of every fixture model (tests/fixtures/expected) on the GPU:
#      --precision fp32 at cos >= 0.99999, both attention paths (direct kernel, cuBLAS), and
#      bf16 at cos >= 0.999; the same items GPU against CPU (fp32, >= 0.99999); run-to-run
#      determinism (bit-identical vectors); every GEMM tuned against none (bit-identical:
#      cuda_gemm_tune.cu); a small batch budget;
#   3. unless --no-bench: bench/bench_gpu_hf.py (HF transformers, bf16, sdpa, random 2B shape)
#      and bench/bench_gpu (ours, same model directory and input shapes) in the same run,
#      TKR_BENCH_ROUNDS times in turn (default 1), then their ratios (bench/gpu_ratios.py); on
#      that model (the fixtures' towers are too small for it) the fused fc1 + QuickGELU against
#      fp32 and against the two kernels, and its determinism;
#   4. quantized GGUF weights on the GPU (tkr-embed quantize of the fixtures: q8_0, q4_k_m, q4_0)
#      against the CPU on the same GGUF (cos >= 0.999), fp32 mode and determinism; /metrics of a
#      GPU server (memory gauges, device name, GPU batch budgets);
#   5. unless --no-bench: the server at 64 concurrent clients against the engine's own throughput
#      (bench/bench_server --engine, random 2B model; text, then 256-token images);
#   6. with --7b: the 7B shape (HF and ours, --quick: 64 x 128 text, 16 images of 256; also ours
#      on the same model quantized to Q8_0).
# --quant-only: steps 1, 4, 5 (and 6 with --7b) only; --bench-only: steps 1, 3, 5 (and 6) only
# (the checks and the benches then fit two device commands of 10 minutes).
# Logs: $OUT (or tests/out/gpu)/gpu.log, bench_hf.jsonl, bench_tkr.jsonl (the 7B: bench_hf_7b.jsonl,
# bench_tkr_7b.jsonl, bench_tkr_7b_q8.jsonl). Exit 0 = all checks passed.
# Data: TKR_TEST_DATA as for tests/run.sh (tokenizer files and the photos the fixtures use).
# TKR_GPU_MODELS="m3-h128-bf16" limits the fixture models (default: all three).
# Bench options: TKR_BENCH_HF_ARGS (e.g. --profile: torch.profiler tables into gpu.log),
# TKR_BENCH_ALT_ENV (e.g. "TKR_CUDA_FLASH=1": bench_gpu once more with these variables);
# TKR_CUDA_PROFILE=1 makes bench_gpu print per-op GPU times (bench_tkr.stderr).
set -uo pipefail
NO_BENCH=0; QUANT_ONLY=0; WITH_7B=0; BENCH_ONLY=0
for a in "$@"; do
  case $a in
    --no-bench) NO_BENCH=1 ;; --quant-only) QUANT_ONLY=1 ;; --7b) WITH_7B=1 ;; --bench-only) BENCH_ONLY=1 ;;
    *) echo "usage: tests/gpu/run.sh [--no-bench] [--quant-only] [--bench-only] [--7b]" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
LOGDIR=${OUT:-$ROOT/tests/out/gpu}
mkdir -p "$LOGDIR"
LOG=$LOGDIR/gpu.log
export TKR_BUILD=${TKR_BUILD:-$ROOT/build-cuda}
source "$ROOT/tests/lib/modeldir.sh"
require_data
say() { echo "$*" | tee -a "$LOG"; }
rc=0
# check NAME CMD...: runs CMD (2 minutes at most), its output into the log; PASS/FAIL + last line
check() {
  local name=$1; shift
  echo "=== $name: $*" >>"$LOG"
  local out
  out=$(timeout 300 "$@" 2>&1); local r=$?
  echo "$out" >>"$LOG"
  if [ $r -eq 0 ]; then say "PASS $name | $(echo "$out" | tail -1)"; else say "FAIL $name (rc $r) | $(echo "$out" | tail -1)"; rc=1; fi
  return $r
}

say "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
say "== nvcc: $(nvcc --version 2>&1 | tail -1)"
if [ "${TKR_GPU_NO_BUILD:-0}" != 1 ]; then
  t0=$(date +%s)
  if make -j"$(nproc)" CUDA=1 ${TKR_GPU_MAKE_ARGS:-VIDEO=0 PDF=0} BUILD="$TKR_BUILD" shared "$TKR_BUILD/tkr-embed" \
       "$TKR_BUILD/bench/bench_gpu" "$TKR_BUILD/bench/bench_server" "$TKR_BUILD/tools/mkmodel" \
       "$TKR_BUILD/tests/gpu/test_flash" "$TKR_BUILD/tests/gpu/test_swiglu" >>"$LOG" 2>&1; then
    say "PASS build (make CUDA=1, $(( $(date +%s) - t0 )) s)"
  elif [ -x "${TKR_GPU_FALLBACK_BUILD:-/nonexistent}/tkr-embed" ]; then
    say "FAIL build (make CUDA=1): see gpu.log; going on with $TKR_GPU_FALLBACK_BUILD"; rc=1
    export TKR_BUILD=$TKR_GPU_FALLBACK_BUILD
  else
    say "FAIL build (make CUDA=1): see gpu.log"; exit 1
  fi
fi
TKR=$TKR_BUILD/tkr-embed

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CE="python3 $ROOT/tests/lib/compare_expected.py"
CD="python3 $ROOT/tests/gpu/compare_devices.py"
[ $QUANT_ONLY = 1 ] || [ $BENCH_ONLY = 1 ] && TKR_GPU_MODELS=${TKR_GPU_MODELS:-none}
if [ $QUANT_ONLY = 0 ] && [ $BENCH_ONLY = 0 ]; then  # every flash version against a float64 CPU reference
  check "flash kernels (tests/gpu/test_flash.cu)" "$TKR_BUILD/tests/gpu/test_flash"
  check "fused gate|up + SiLU GEMM (tests/gpu/test_swiglu.cu)" "$TKR_BUILD/tests/gpu/test_swiglu"
fi
for m in ${TKR_GPU_MODELS:-m1-flat-f32 m2-nested-f16-sharded m3-h128-bf16}; do
  [ "$m" = none ] && continue
  make_model_dir "$m" "$tmp/$m" >>"$LOG" 2>&1 || { say "FAIL model dir $m"; rc=1; continue; }
  exp=$ROOT/tests/fixtures/expected/$m.jsonl
  fx=$ROOT/tests/fixtures
  check "hf-ref fp32 $m" $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision fp32"
  check "hf-ref fp32 direct-attention $m" env TKR_CUDA_ATTN_GEMM_MIN=1000000000 \
    $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision fp32"
  check "hf-ref fp32 gemm-attention $m" env TKR_CUDA_ATTN_GEMM_MIN=1 \
    $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision fp32"
  check "hf-ref bf16 $m" $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" \
    --min-cos 0.999
  if [ "$m" = m3-h128-bf16 ]; then  # head sizes 128 / 80: the tensor-core kernel against the direct one
    check "hf-ref bf16 no-flash $m" env TKR_CUDA_FLASH=0 $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
      --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 flash-v1 $m" env TKR_CUDA_FLASH=1 $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
      --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 flash-v2-everywhere $m" env TKR_CUDA_FLASH=2 TKR_CUDA_FLASH2_MIN=1 $CE "$TKR" "$tmp/$m" "$exp" \
      "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 flash-v3-everywhere $m" env TKR_CUDA_FLASH=3 TKR_CUDA_FLASH2_MIN=1 $CE "$TKR" "$tmp/$m" "$exp" \
      "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 flash-v4-everywhere $m" env TKR_CUDA_FLASH=4 TKR_CUDA_FLASH2_MIN=1 $CE "$TKR" "$tmp/$m" "$exp" \
      "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 flash-v4-handoff-everywhere $m" env TKR_CUDA_WG_MIN=1 $CE "$TKR" "$tmp/$m" "$exp" \
      "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "hf-ref bf16 fused-swiglu-everywhere $m" env TKR_CUDA_SWIGLU_MIN=1 $CE "$TKR" "$tmp/$m" "$exp" \
      "$TKR_TEST_DATA" "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "fused swiglu everywhere, deterministic $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
      --a "TKR_CUDA_SWIGLU_MIN=1 --device cuda" --b "TKR_CUDA_SWIGLU_MIN=1 --device cuda" --identical
    check "hf-ref bf16 rope-per-layer $m" env TKR_CUDA_ROPE_TABLE=0 $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" \
      "$fx" --args "--device cuda --precision bf16" --min-cos 0.999
    check "bf16-vs-fp32 on the GPU $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
      --a "--device cuda" --b "--device cuda --precision fp32" --min-cos 0.999
    # causal head size 128 in blocks of 4 warps or 8: each warp's rows see the same tiles in the same order
    check "causal flash blocks of 4 warps = 8, bit for bit $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
      --a "--device cuda" --b "TKR_CUDA_CAUSAL_WIDE=1 --device cuda" --identical
  fi
  check "hf-ref fp32 batch-64 $m" $CE "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
    --args "--device cuda --precision fp32 --max-batch-tokens 64"
  check "gpu-vs-cpu fp32 $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --a "--device cpu" \
    --b "--device cuda --precision fp32"
  check "determinism bf16 $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" --a "--device cuda" \
    --b "--device cuda" --identical
  # GEMM tuning may only take algorithms with the heuristic's bits: every GEMM tuned against none
  check "tuned GEMMs = untuned, bit for bit $m" $CD "$TKR" "$tmp/$m" "$exp" "$TKR_TEST_DATA" "$fx" \
    --a "TKR_CUDA_LT_TUNE_MIN=0 TKR_CUDA_LT_TUNE_LOG=1 --device cuda" --b "TKR_CUDA_LT_TUNE=0 --device cuda" --identical
  rm -f "$tmp/$m/model.safetensors"
done

if [ $NO_BENCH = 0 ] && [ $QUANT_ONLY = 0 ]; then
  B=${TKR_BENCH_DIR:-/tmp/tkr-bench-2b}
  rm -rf "$B"
  : >"$LOGDIR/bench_hf.jsonl"; : >"$LOGDIR/bench_tkr.jsonl"
  # TKR_BENCH_ROUNDS rounds of HF then ours: each round gives a paired ratio (bench/gpu_ratios.py)
  for round in $(seq 1 "${TKR_BENCH_ROUNDS:-1}"); do
    say "== bench round $round: HF transformers (bench/bench_gpu_hf.py)"
    PYTHONUNBUFFERED=1 timeout 400 python3 "$ROOT/bench/bench_gpu_hf.py" --out "$B" --data "$TKR_TEST_DATA" \
      ${TKR_BENCH_HF_ARGS:-} 2>>"$LOG" | tee -a "$LOGDIR/bench_hf.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu_hf.py"; rc=1; }
    say "== bench round $round: tkr-embed (bench/bench_gpu, bf16)"
    timeout 300 "$TKR_BUILD/bench/bench_gpu" -m "$B/model" --img256 "$B/img256.jpg" --img1280 "$B/img1280.jpg" \
      2>>"$LOGDIR/bench_tkr.stderr" | tee -a "$LOGDIR/bench_tkr.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu"; rc=1; }
  done
  say "== ratios, tkr-embed against HF (bench/gpu_ratios.py)"
  python3 "$ROOT/bench/gpu_ratios.py" "$LOGDIR/bench_hf.jsonl" "$LOGDIR/bench_tkr.jsonl" 2>&1 | tee -a "$LOG"
  say "== bench: the flash kernels alone (tests/gpu/test_flash --bench)"
  "$TKR_BUILD/tests/gpu/test_flash" --bench 2>&1 | grep '"bench"' | tee "$LOGDIR/bench_flash.jsonl" | tee -a "$LOG"
  if [ -n "${TKR_BENCH_ALT_ENV:-}" ]; then  # the same bench again with other settings, e.g. TKR_CUDA_FLASH=1
    say "== bench: tkr-embed with $TKR_BENCH_ALT_ENV"
    echo "== $TKR_BENCH_ALT_ENV" >>"$LOGDIR/bench_tkr.stderr"
    timeout 300 env $TKR_BENCH_ALT_ENV "$TKR_BUILD/bench/bench_gpu" -m "$B/model" --img256 "$B/img256.jpg" \
      --img1280 "$B/img1280.jpg" 2>>"$LOGDIR/bench_tkr.stderr" | tee -a "$LOGDIR/bench_tkr_alt.jsonl" | tee -a "$LOG" ||
      { say "FAIL bench_gpu ($TKR_BENCH_ALT_ENV)"; rc=1; }
  fi
  # the fixtures' vision towers are too small for the fused fc1 + QuickGELU (N % 256, K % 64); the
  # 2B shape takes it: there, bf16 against fp32 (exact to HF in the fixtures) and against the two
  # kernels, on the m3 fixture's items (text, images, text + image, several images)
  M3=$ROOT/tests/fixtures/expected/m3-h128-bf16.jsonl
  check "2B shape: bf16 (fused fc1 + QuickGELU) vs fp32" $CD "$TKR" "$B/model" "$M3" "$TKR_TEST_DATA" \
    "$ROOT/tests/fixtures" --a "TKR_CUDA_QGELU_MIN=1 --device cuda" --b "--device cuda --precision fp32" --min-cos 0.999
  check "2B shape: fused fc1 + QuickGELU vs two kernels" $CD "$TKR" "$B/model" "$M3" "$TKR_TEST_DATA" \
    "$ROOT/tests/fixtures" --a "TKR_CUDA_QGELU_MIN=1 --device cuda" --b "TKR_CUDA_QGELU_MIN=0 --device cuda" \
    --min-cos 0.9999
  check "2B shape: fused fc1 + QuickGELU everywhere, deterministic" $CD "$TKR" "$B/model" "$M3" "$TKR_TEST_DATA" \
    "$ROOT/tests/fixtures" --a "TKR_CUDA_QGELU_MIN=1 --device cuda" --b "TKR_CUDA_QGELU_MIN=1 --device cuda" \
    --identical
  say "== bench: tkr-embed fp32 text (bench/bench_gpu --precision fp32 --text-only)"
  timeout 200 "$TKR_BUILD/bench/bench_gpu" -m "$B/model" --precision fp32 --text-only --runs 3 \
    2>>"$LOGDIR/bench_tkr.stderr" | tee -a "$LOGDIR/bench_tkr.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu fp32"; rc=1; }
  rm -rf "$B"
fi
# ---- 4. quantized weights (GGUF) on the GPU, /metrics --------------------------------------
[ $BENCH_ONLY = 1 ] || say "== quantized GGUF weights on the GPU against the CPU"
[ $BENCH_ONLY = 1 ] || while read -r m t; do
  g=$tmp/gguf-$m-$t
  # the fixture checks above delete each model directory's weights when done: make it again
  ls "$tmp/$m"/*.safetensors >/dev/null 2>&1 || { rm -rf "$tmp/$m"; make_model_dir "$m" "$tmp/$m" >>"$LOG" 2>&1; } ||
    { say "FAIL model dir $m"; rc=1; continue; }
  mkdir -p "$g"
  check "quantize $m $t" "$TKR" quantize -q -m "$tmp/$m" -o "$g/$m-$t.gguf" --type "$t" || continue
  exp=$ROOT/tests/fixtures/expected/$m.jsonl
  check "quant $t gpu-vs-cpu bf16 $m" $CD "$TKR" "$g" "$exp" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
    --a "--device cpu" --b "--device cuda" --min-cos 0.999
  if [ "$t" = q8_0 ]; then
    check "quant $t gpu-vs-cpu fp32 $m" $CD "$TKR" "$g" "$exp" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
      --a "--device cpu" --b "--device cuda --precision fp32" --min-cos 0.999
    check "quant $t determinism $m" $CD "$TKR" "$g" "$exp" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
      --a "--device cuda" --b "--device cuda" --identical
    check "quant $t small batches $m" $CD "$TKR" "$g" "$exp" "$TKR_TEST_DATA" "$ROOT/tests/fixtures" \
      --a "--device cpu" --b "--device cuda --max-batch-tokens 64" --min-cos 0.999
  fi
done <<'EOF'
m3-h128-bf16 q8_0
m3-h128-bf16 q4_k_m
m3-h128-bf16 q4_0
m1-flat-f32 q8_0
EOF
# HTTP without curl (the accelerator machine may lack it): http URL [JSON_BODY] -> body on stdout
http() {
  python3 - "$@" <<'PY'
import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(sys.argv[1], data=data, headers={"Content-Type": "application/json"})
sys.stdout.write(urllib.request.urlopen(req, timeout=30).read().decode())
PY
}
# serve_up DIR PORT LOGFILE [ARGS]: starts a GPU server in the background (pid in $SRV), waits for /health
serve_up() {
  local dir=$1 port=$2 log=$3; shift 3
  "$TKR" serve -m "$dir" --port "$port" --device cuda "$@" >"$log" 2>&1 &
  SRV=$!
  for _ in $(seq 1 300); do
    http "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 $SRV 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
serve_down() { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null; }
if [ $BENCH_ONLY = 1 ]; then
  :
elif serve_up "$tmp/gguf-m3-h128-bf16-q8_0" 18431 "$tmp/serve.log"; then
  check "/metrics GPU gauges (Q8_0 m3 server)" python3 "$ROOT/tests/gpu/check_metrics.py" 18431 "$tmp/serve.log"
  serve_down
else
  say "FAIL server on the GPU did not start: $(tail -2 "$tmp/serve.log")"; rc=1; serve_down
fi

# ---- 5. the server at 64 clients against the engine ----------------------------------------
if [ $NO_BENCH = 0 ]; then
  B=${TKR_BENCH_DIR:-/tmp/tkr-bench-2b}
  rm -rf "$B"
  if PYTHONUNBUFFERED=1 timeout 200 python3 "$ROOT/bench/bench_gpu_hf.py" --out "$B" --data "$TKR_TEST_DATA" \
       --build-only >>"$LOG" 2>&1 && serve_up "$B/model" 18432 "$tmp/serve2b.log" --quiet; then
    say "== server, 64 clients x 1 text of ~128 tokens, against tkr_embed of 64 such items a call"
    timeout 120 "$TKR_BUILD/bench/bench_server" --port 18432 --clients 64 --seconds 10 --words 12 \
      --engine "$B/model" --device cuda 2>>"$LOG" | tee -a "$LOG" "$LOGDIR/bench_server.txt" || { say "FAIL bench_server text"; rc=1; }
    say "== server, 64 clients x 1 image of 256 tokens"
    timeout 120 "$TKR_BUILD/bench/bench_server" --port 18432 --clients 64 --seconds 10 --words 2 \
      --image "$B/img256.jpg" --engine "$B/model" --device cuda 2>>"$LOG" |
      tee -a "$LOG" "$LOGDIR/bench_server.txt" || { say "FAIL bench_server images"; rc=1; }
    grep 'batch budgets' "$tmp/serve2b.log" | tee -a "$LOG"
    serve_down
  else
    say "FAIL 2B model or its server: $(tail -2 "$tmp/serve2b.log" 2>/dev/null)"; rc=1; serve_down
  fi
  rm -rf "$B"
fi

# ---- 6. the 7B shape -------------------------------------------------------------------------
if [ $WITH_7B = 1 ]; then
  B=${TKR_BENCH_DIR_7B:-/tmp/tkr-bench-7b}
  rm -rf "$B"
  say "== bench 7B: HF transformers (bench/bench_gpu_hf.py --shape 7b --quick)"
  PYTHONUNBUFFERED=1 timeout 300 python3 "$ROOT/bench/bench_gpu_hf.py" --out "$B" --data "$TKR_TEST_DATA" \
    --shape 7b --quick --images 16 2>>"$LOG" | tee "$LOGDIR/bench_hf_7b.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu_hf.py 7b"; rc=1; }
  say "== bench 7B: tkr-embed bf16 (bench/bench_gpu --quick)"
  timeout 200 "$TKR_BUILD/bench/bench_gpu" -m "$B/model" --img256 "$B/img256.jpg" --images 16 --quick \
    2>>"$LOG" | tee "$LOGDIR/bench_tkr_7b.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu 7b"; rc=1; }
  python3 "$ROOT/bench/gpu_ratios.py" "$LOGDIR/bench_hf_7b.jsonl" "$LOGDIR/bench_tkr_7b.jsonl" 2>&1 | tee -a "$LOG"
  if [ "${TKR_GPU_7B_Q8:-1}" = 1 ]; then
    say "== bench 7B: tkr-embed on Q8_0 weights (tkr-embed quantize --type q8_0, then bench_gpu --quick)"
    mkdir -p "$B/q8"
    t0=$(date +%s)
    if timeout 200 "$TKR" quantize -q -m "$B/model" -o "$B/q8/model-q8_0.gguf" --type q8_0 >>"$LOG" 2>&1; then
      say "quantized in $(( $(date +%s) - t0 )) s: $(du -sh "$B/q8" | cut -f1)"
      timeout 200 "$TKR_BUILD/bench/bench_gpu" -m "$B/q8" --img256 "$B/img256.jpg" --images 16 --quick \
        2>>"$LOG" | tee "$LOGDIR/bench_tkr_7b_q8.jsonl" | tee -a "$LOG" || { say "FAIL bench_gpu 7b q8_0"; rc=1; }
    else
      say "FAIL quantize 7B"; rc=1
    fi
  fi
  rm -rf "$B"
fi
say "== done rc=$rc"
exit $rc

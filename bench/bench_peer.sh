#!/usr/bin/env bash
# bench_peer.sh - tkr-embed against llama.cpp on the same weights, same machine, same run.
#
#   bench/bench_peer.sh            (env knobs below; THREADS defaults to all cores)
#
# What it does, in order:
#   1. builds tkr-embed (make) and, if missing, the random-weight 2B model of bench/run_2b.sh
#      ($TKR_BENCH_DIR, default /tmp/tkr-2b);
#   2. installs the peer into the ignored folder $PEER_DIR (default bench/.peer): npm installs
#      node-llama-cpp@3.21.1, which brings llama.cpp's prebuilt CPU libraries (one build per CPU
#      family, picked at run time) and llama.cpp's source as a git bundle; the bundle is cloned
#      for its headers only, and bench/peer/peer_llama.c is compiled against them;
#   3. converts the text tower to GGUF with build/tools/st2gguf (BF16, as the checkpoint) if the
#      GGUF is missing or older than the checkpoint;
#   4. writes the prompts as token ids (tkr-embed tokenize of the whole Ops-MM prompt), so both
#      engines get identical tokens and neither tokenizes inside the timing;
#   5. per workload, starts every engine once (load timed apart as load_s, then one warm-up
#      item) and keeps them loaded; then alternates them run by run, A B C, C B A, A B C, ...
#      (each "run" is one timed embedding of the whole workload), so that the engines see the
#      same machine load, and each round gives a paired ratio;
#   6. prints per engine the median (and min) run time, the ratio of medians and the median of
#      the per-round ratios, llama.cpp / tkr-embed: > 1 means tkr-embed is faster; and checks
#      that both give the same vectors (cosine of each item, also via node-llama-cpp).
#
# The peer's entry point, and why: bench/peer/peer_llama.c, a small C program on llama.cpp's own
# C API (llama.h), the same calls as llama.cpp's llama-embedding example, kept loaded:
#   - model load and context setup happen once and are timed apart from compute (llama-embedding
#     reports them mixed with tokenization and output formatting, one process per call);
#   - it feeds the exact token ids tkr-embed uses (llama-embedding would tokenize the text);
#   - a batch is one llama_decode of all items, one sequence each with its own KV stream
#     (kv_unified off), like tkr-embed's packed batch; node-llama-cpp's embedding API evaluates
#     one sequence per call, so it is used only for the cross-check (bench/peer/check_node.mjs).
# Engines (same thread count, same token ids):
#   tkr-embed          build/bench/bench_peer_tkr: one tkr_embed() call on all items per run
#   llama.cpp          embeddings = true, pooling LAST: llama.cpp's embedding path. For this
#                      architecture it also computes the LM head (vocabulary logits) for every
#                      token, work an embedding does not need (docs/benchmarks.md)
#   llama.cpp (last)   LAST_MODE=1: the decoder with logits for each item's last token only: the
#                      same work as an embedding minus that LM head; a lower bound for the peer
#
# The peer build (PEER_BUILD):
#   native (default)   llama.cpp built from the bundle's source for this CPU (GGML_NATIVE=ON) in
#                      $NATIVE_DIR (default $PEER_DIR/native; about 11 minutes on 2 cores, once):
#                      the honest bar, about 2x faster than the prebuilt library on Zen 5
#   prebuilt           node-llama-cpp's prebuilt CPU libraries (one build per CPU family)
# The GGUF (GGUF_TYPE): bf16 | f16 | f32 are written by build/tools/st2gguf (text tower) unless
# SAME_FILE=1; q8_0 | q4_0 | q4_k_m | q6_k (and bf16/f16/f32 with SAME_FILE=1) by
# `tkr-embed quantize`, and then tkr-embed loads that very file too (same weights, same bytes).
# TKR_FAST_BF16=1 runs tkr-embed in its opt-in fast BF16 mode; TKR_KERNELS caps its kernels.
#
# Knobs: THREADS; ROUNDS (12) for 1 prompt of SINGLE_TOKENS (128); BATCH_ROUNDS (3) for
# BATCH_ITEMS (32) items of BATCH_TOKENS (64); SKIP_BATCH=1; LAST_MODE (1); GGUF_TYPE (bf16);
# SAME_FILE; PEER_BUILD; NATIVE_DIR; TKR_FAST_BF16; MIN_COSINE (0.99 for 16-bit, 0.98 for 8-bit,
# 0.95 for 4-bit: the engines quantize activations differently); PEER_DIR; TKR_BENCH_DIR.
# 9 to 12 minutes on the 2-core machine, plus the native build the first time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TKR_BENCH_DIR:-/tmp/tkr-2b}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-12}; SINGLE_TOKENS=${SINGLE_TOKENS:-128}
BATCH_ROUNDS=${BATCH_ROUNDS:-3}
BATCH_ITEMS=${BATCH_ITEMS:-32}; BATCH_TOKENS=${BATCH_TOKENS:-64}
LAST_MODE=${LAST_MODE:-1}; GGUF_TYPE=${GGUF_TYPE:-bf16}; SKIP_BATCH=${SKIP_BATCH:-0}
PEER_DIR=${PEER_DIR:-$ROOT/bench/.peer}
PEER_BUILD=${PEER_BUILD:-native}; NATIVE_DIR=${NATIVE_DIR:-$PEER_DIR/native}
SAME_FILE=${SAME_FILE:-auto}; TKR_FAST_BF16=${TKR_FAST_BF16:-0}
case $GGUF_TYPE in
  bf16|f16|f32) [ "$SAME_FILE" = auto ] && SAME_FILE=0 ;;
  q8_0|q4_0|q4_k_m|q6_k) SAME_FILE=1 ;;
  *) echo "bench_peer: GGUF_TYPE must be bf16, f16, f32, q8_0, q4_0, q4_k_m or q6_k" >&2; exit 1 ;;
esac
NLC_VERSION=3.21.1
TKR="$ROOT/build/tkr-embed"

die() { echo "bench_peer: $*" >&2; exit 1; }

# ---- 1. tkr-embed and the model ---------------------------------------------------------------
# (the Makefile does not track bench/peer/peer_common.h, which bench_peer_tkr includes)
[ "$ROOT/bench/peer/peer_common.h" -nt "$ROOT/build/bench/bench_peer_tkr" ] && rm -f "$ROOT/build/bench/bench_peer_tkr"
make -C "$ROOT" -s -j"$(nproc)"
if [ ! -f "$DIR/model.safetensors" ]; then
  echo "making the random-weight 2B model in $DIR (4.4 GB)"
  python3 "$ROOT/bench/make_manifest.py" 2b "$DIR"
  "$ROOT/build/tools/mkmodel" "$DIR/weights.json" "$DIR/model.safetensors"
  DATA=${TKR_TEST_DATA:-$ROOT/../shared/data}
  ln -sf "$DATA/tokenizers/qwen2/vocab.json" "$DATA/tokenizers/qwen2/merges.txt" "$DIR/"
  cp "$ROOT/tests/fixtures/qwen2vl/tokenizer_config.json" "$ROOT/tests/fixtures/qwen2vl/added_tokens.json" "$DIR/"
fi

# ---- 2. the peer ------------------------------------------------------------------------------
case "$(uname -s)-$(uname -m)" in   # the link line below is GNU ld's: Linux only
  Linux-x86_64) NLC_PLATFORM=linux-x64 ;;
  Linux-aarch64) NLC_PLATFORM=linux-arm64 ;;
  *) die "bench_peer.sh supports Linux x86-64 and arm64 only (got $(uname -s) $(uname -m))" ;;
esac
mkdir -p "$PEER_DIR"
NLC="$PEER_DIR/node_modules/node-llama-cpp"
if [ "$(node -p "require('$NLC/package.json').version" 2>/dev/null || true)" != "$NLC_VERSION" ]; then
  command -v npm >/dev/null || die "npm is needed to install the peer (node-llama-cpp)"
  echo "installing node-llama-cpp@$NLC_VERSION into $PEER_DIR"
  (cd "$PEER_DIR" && npm i -E --no-audit --no-fund "node-llama-cpp@$NLC_VERSION" >/dev/null)
fi
BUNDLE="$NLC/llama/gitRelease.bundle"
if [ "$PEER_BUILD" = native ]; then
  # llama.cpp's own source, built for this CPU in a folder of its own (never committed)
  SRC="$NATIVE_DIR/src"
  if [ ! -f "$SRC/include/llama.h" ]; then
    rm -rf "$SRC"; mkdir -p "$NATIVE_DIR"
    git clone -q "$BUNDLE" "$SRC" 2>/dev/null || die "cannot clone $BUNDLE"
  fi
  BINS="$SRC/build/bin"
  if [ ! -f "$BINS/llama-bench" ] || ! ls "$BINS"/libllama.so* >/dev/null 2>&1; then
    echo "building llama.cpp natively in $SRC/build (about 11 minutes on 2 cores, once)"
    cmake -S "$SRC" -B "$SRC/build" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DCMAKE_BUILD_TYPE=Release >"$NATIVE_DIR/cmake.log" 2>&1 || die "cmake failed: $NATIVE_DIR/cmake.log"
    cmake --build "$SRC/build" -j"$(nproc)" --target llama llama-bench >"$NATIVE_DIR/build.log" 2>&1 ||
      die "the llama.cpp build failed: $NATIVE_DIR/build.log"
  fi
  PEER_LABEL="native build (GGML_NATIVE) in $BINS"
  BACKEND_ARGS=()   # the CPU backend is linked in, not loaded from a folder
else
  BINS="$PEER_DIR/node_modules/@node-llama-cpp/$NLC_PLATFORM/bins/$NLC_PLATFORM"
  [ -d "$BINS" ] || die "$BINS missing: node-llama-cpp's prebuilt binaries did not install"
  SRC="$PEER_DIR/llama.cpp"
  if [ ! -f "$SRC/include/llama.h" ] || [ "$BUNDLE" -nt "$SRC/include/llama.h" ]; then
    rm -rf "$SRC"
    git clone -q "$BUNDLE" "$SRC" 2>/dev/null || die "cannot clone $BUNDLE"
  fi
  PEER_LABEL="node-llama-cpp $NLC_VERSION prebuilt ($NLC_PLATFORM)"
  BACKEND_ARGS=(--backend-dir "$BINS")   # one CPU backend per CPU family, picked at run time
fi
LIBLLAMA=$(cd "$BINS" && ls libllama.*so* 2>/dev/null | head -1)
LIBGGML=$(cd "$BINS" && ls libggml.*so* 2>/dev/null | head -1)
[ -n "$LIBLLAMA" ] && [ -n "$LIBGGML" ] || die "no libllama / libggml in $BINS"
PEER_BIN="$PEER_DIR/bin/peer_llama-$PEER_BUILD"
if [ ! -x "$PEER_BIN" ] || [ "$ROOT/bench/peer/peer_llama.c" -nt "$PEER_BIN" ] ||
   [ "$ROOT/bench/peer/peer_common.h" -nt "$PEER_BIN" ] || [ "$SRC/include/llama.h" -nt "$PEER_BIN" ] ||
   [ "$BINS/$LIBLLAMA" -nt "$PEER_BIN" ]; then
  mkdir -p "$PEER_DIR/bin"
  cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Wshadow -Wvla \
     -I"$SRC/include" -I"$SRC/ggml/include" "$ROOT/bench/peer/peer_llama.c" -o "$PEER_BIN" \
     -L"$BINS" -l:"$LIBLLAMA" -l:"$LIBGGML" -l:libggml-base.so -lm -Wl,-rpath,"$(cd "$BINS" && pwd)"
fi
LLAMA_COMMIT=$(git -C "$SRC" rev-parse --short HEAD)
LLAMA_TAG=$(node -p "require('$NLC/llama/llama.cpp.info.json').tag" 2>/dev/null || echo "?")

# ---- 3. the GGUF ------------------------------------------------------------------------------
if [ "$SAME_FILE" = 1 ]; then
  GGUF="$PEER_DIR/models/$(basename "$DIR")-q-$GGUF_TYPE.gguf"
  if [ ! -f "$GGUF" ] || [ "$DIR/model.safetensors" -nt "$GGUF" ] || [ "$TKR" -nt "$GGUF" ]; then
    mkdir -p "$PEER_DIR/models"
    "$TKR" quantize -m "$DIR" -o "$GGUF" --type "$GGUF_TYPE" >/dev/null || die "tkr-embed quantize failed"
  fi
  TKR_MODEL="$GGUF"   # tkr-embed loads the same file (its mmproj beside it is not used here)
else
  GGUF="$PEER_DIR/models/$(basename "$DIR")-$GGUF_TYPE.gguf"
  if [ ! -f "$GGUF" ] || [ "$DIR/model.safetensors" -nt "$GGUF" ] || [ "$DIR/config.json" -nt "$GGUF" ]; then
    mkdir -p "$PEER_DIR/models"
    "$ROOT/build/tools/st2gguf" "$DIR" "$GGUF" --type "$GGUF_TYPE"
  fi
  TKR_MODEL="$DIR"
fi
TKR_FLAGS=()
[ "$TKR_FAST_BF16" = 1 ] && TKR_FLAGS+=(--fast-bf16)
[ -n "${TKR_KERNELS:-}" ] && TKR_FLAGS+=(--kernels "$TKR_KERNELS")
if [ -z "${MIN_COSINE:-}" ]; then
  case $GGUF_TYPE in q8_0) MIN_COSINE=0.98 ;; q4_*|q6_k) MIN_COSINE=0.95 ;; *) MIN_COSINE=0.99 ;; esac
fi

# ---- 4. prompts as token ids ------------------------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT   # replaced by cleanup() once engines run
PREFIX=$'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n'
SUFFIX=$'<|im_end|>\n<|im_start|>assistant\n<|endoftext|>'
TEMPLATE_TOKENS=20
WORDS=(the of and to in is that for it with as was on be at by this had not are but from or have an they which one you were)
# prompt_ids TOKENS SEED: the whole prompt's ids, one line; the text is TOKENS - 20 words, each a
# single Qwen2 token, chosen by SEED so that batch items differ.
prompt_ids() {
  local n=$(( $1 - TEMPLATE_TOKENS )) seed=$2 text="" i ids
  [ "$n" -ge 1 ] || die "prompts need more than $TEMPLATE_TOKENS tokens"
  for ((i = 0; i < n; i++)); do text+="${text:+ }${WORDS[$(( (i * 7 + seed * 13 + i / 5) % ${#WORDS[@]} ))]}"; done
  ids=$("$TKR" tokenize -m "$DIR" --text "$PREFIX$text$SUFFIX" | tr -d '[],')
  [ "$(wc -w <<<"$ids")" -eq "$1" ] || die "prompt of $1 tokens came out as $(wc -w <<<"$ids") tokens"
  echo "$ids"
}
prompt_ids "$SINGLE_TOKENS" 0 > "$WORK/single.ids"
for ((i = 0; i < BATCH_ITEMS; i++)); do prompt_ids "$BATCH_TOKENS" "$((i + 1))"; done > "$WORK/batch.ids"

# ---- 5. alternating runs ----------------------------------------------------------------------
ENGINES="tkr llama"
[ "$LAST_MODE" = 1 ] && ENGINES="tkr llama llama_last"
declare -A EPID EIN EOUT
trap '' PIPE   # an engine that died shows up as a failed write, not as a silent exit
cleanup() {
  local e
  for e in "${!EPID[@]}"; do kill "${EPID[$e]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_engine ENGINE TAG IDS: the engine's driver with --stdin, talking through two fifos;
# returns once it has loaded and warmed up ("ready"), its load_s appended to $WORK/TAG.ENGINE.load
start_engine() {
  local e=$1 tag=$2 ids=$3 fd key val
  rm -f "$WORK/$e.in" "$WORK/$e.out"
  mkfifo "$WORK/$e.in" "$WORK/$e.out"
  ( # the other engines' fifo ends must not leak into this one, or they would never see EOF
    for fd in "${EIN[@]}" "${EOUT[@]}"; do eval "exec $fd>&-"; done
    case $e in
      tkr) exec "$ROOT/build/bench/bench_peer_tkr" "$TKR_MODEL" "$ids" --threads "$THREADS" --stdin ${TKR_FLAGS[@]+"${TKR_FLAGS[@]}"} ;;
      llama) exec "$PEER_BIN" "$GGUF" "$ids" --threads "$THREADS" --mode embd ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"} --stdin ;;
      llama_last) exec "$PEER_BIN" "$GGUF" "$ids" --threads "$THREADS" --mode last ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"} --stdin ;;
    esac
  ) < "$WORK/$e.in" > "$WORK/$e.out" 2> "$WORK/$e.err" &
  EPID[$e]=$!
  exec {fd}> "$WORK/$e.in"; EIN[$e]=$fd
  exec {fd}< "$WORK/$e.out"; EOUT[$e]=$fd
  while read -r key val <&"${EOUT[$e]}"; do
    case $key in
      load_s) echo "$val" >> "$WORK/$tag.$e.load" ;;
      ready) return 0 ;;
    esac
  done
  cat "$WORK/$e.err" >&2; die "$e did not start"
}
# ask ENGINE COMMAND EXPECTED-KEY: sends one command, prints the value of the expected answer
ask() {
  local key val
  echo "$2" >&"${EIN[$1]}" || { cat "$WORK/$1.err" >&2; die "$1 stopped"; }
  read -r key val <&"${EOUT[$1]}" || { cat "$WORK/$1.err" >&2; die "$1 stopped"; }
  [ "$key" = "$3" ] || { cat "$WORK/$1.err" >&2; die "$1 answered '$key $val' to '$2'"; }
  echo "$val"
}
stop_engine() {
  local fi=${EIN[$1]} fo=${EOUT[$1]}
  exec {fi}>&- {fo}<&-
  wait "${EPID[$1]}" || die "$1 failed (exit $?): $(cat "$WORK/$1.err")"
  grep -m1 '^# llama.cpp system' "$WORK/$1.err" >> "$WORK/llama.system" || true
  grep -m1 '^# tkr-embed kernels' "$WORK/$1.err" >> "$WORK/tkr.kernels" || true
  unset "EPID[$1]"
}
# workload TAG IDS ROUNDS: load every engine, then ROUNDS rounds of one run each, A B C then
# C B A...; $WORK/TAG.ENGINE.runs gets the times, $WORK/TAG.pairs "round engine seconds"
workload() {
  local tag=$1 r e order t
  for e in $ENGINES; do start_engine "$e" "$tag" "$2"; done
  for ((r = 1; r <= $3; r++)); do
    order=$ENGINES
    [ $((r % 2)) -eq 0 ] && order=$(tr ' ' '\n' <<<"$ENGINES" | tac | tr '\n' ' ')
    for e in $order; do
      t=$(ask "$e" run run_s)
      echo "$t" >> "$WORK/$tag.$e.runs"
      echo "$r $e $t" >> "$WORK/$tag.pairs"
    done
    printf '  %s round %d/%d\n' "$tag" "$r" "$3" >&2
  done
  ask tkr "dump $WORK/$tag.tkr.vec" dumped >/dev/null
  ask llama "dump $WORK/$tag.llama.vec" dumped >/dev/null
  for e in $ENGINES; do stop_engine "$e"; done
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# paired TAG ENGINE: the per-round ratios ENGINE / tkr, one per line
paired() { awk -v e="$2" '$2 == "tkr" { t[$1] = $3 } $2 == e { x[$1] = $3 } END { for (r in t) if (r in x) print x[r] / t[r] }' "$WORK/$1.pairs"; }
# cosines LABEL A.vec B.vec: min and mean of the row-wise dot products (both files are
# L2-normalised); a minimum under MIN_COSINE fails the run: timing two different computations
# would be moot.
cos_failed=0
cosines() {
  local line
  line=$(paste -d '|' "$2" "$3" | awk -F'|' '{ n = split($1, a, " "); split($2, b, " "); d = 0
    for (i = 1; i <= n; i++) d += a[i] * b[i]; s += d; if (NR == 1 || d < m) m = d }
    END { printf "min %.6f, mean %.6f over %d items", m, s / NR, NR }')
  if awk -v m="$(cut -d' ' -f2 <<<"${line%%,*}")" -v t="$MIN_COSINE" 'BEGIN { exit !(m < t) }'; then
    line+="  << under $MIN_COSINE"; cos_failed=1
  fi
  printf '  %-38s %s\n' "$1" "$line"
}
pressure() { [ -r /proc/pressure/cpu ] && awk '/^some/ { sub("avg10=", "", $2); sub("avg60=", "", $3); printf "%s%% (10 s), %s%% (60 s)", $2, $3 }' /proc/pressure/cpu || echo "n/a"; }

echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2), $(free -g 2>/dev/null | awk '/Mem:/ { print $2 " GB" }'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: llama.cpp $LLAMA_TAG ($LLAMA_COMMIT), $PEER_LABEL; $GGUF_TYPE GGUF $GGUF (tkr-embed loads $TKR_MODEL${TKR_FLAGS[*]+ with ${TKR_FLAGS[*]}})"
echo "threads: $THREADS for both; model: $DIR; CPU pressure at start (time others kept a task waiting): $(pressure)"
workload single "$WORK/single.ids" "$ROUNDS"
[ "$SKIP_BATCH" = 1 ] || workload batch "$WORK/batch.ids" "$BATCH_ROUNDS"

# ---- 6. report --------------------------------------------------------------------------------
cp "$ROOT/bench/peer/check_node.mjs" "$PEER_DIR/check_node.mjs"
node_ok=1
(cd "$PEER_DIR" && node check_node.mjs "$GGUF" "$WORK/single.ids" "$THREADS" "$WORK/single.node.vec" >/dev/null 2>"$WORK/node.err") ||
  { node_ok=0; echo "note: node-llama-cpp's prebuilt library could not embed with this GGUF: $(tail -1 "$WORK/node.err")"; }
sed -n '1s/^# //p' "$WORK/llama.system"
sed -n '1s/^# //p' "$WORK/tkr.kernels" 2>/dev/null || true
echo "CPU pressure at end: $(pressure)"
echo
echo "correctness (same token ids, last token, L2-normalised):"
cosines "single, llama.cpp vs tkr-embed:" "$WORK/single.tkr.vec" "$WORK/single.llama.vec"
[ "$node_ok" = 1 ] && cosines "single, node-llama-cpp vs tkr-embed:" "$WORK/single.tkr.vec" "$WORK/single.node.vec"
[ "$SKIP_BATCH" = 1 ] || cosines "batch, llama.cpp vs tkr-embed:" "$WORK/batch.tkr.vec" "$WORK/batch.llama.vec"
echo
echo "seconds per run: median (min); ratio = llama.cpp / tkr-embed: of the medians [median of the per-round ratios]"
report() { # TAG LABEL
  local e t l line
  t=$(median < "$WORK/$1.tkr.runs")
  line=$(printf '%-24s tkr-embed %.3f (%.3f)' "$2" "$t" "$(sort -g "$WORK/$1.tkr.runs" | head -1)")
  for e in $ENGINES; do
    [ "$e" = tkr ] && continue
    l=$(median < "$WORK/$1.$e.runs")
    line+=$(printf ' | %s %.3f (%.3f) ratio %.2f [%.2f]' "$([ "$e" = llama ] && echo llama.cpp || echo "llama.cpp (last)")" \
      "$l" "$(sort -g "$WORK/$1.$e.runs" | head -1)" "$(awk -v a="$l" -v b="$t" 'BEGIN { print a / b }')" \
      "$(paired "$1" "$e" | median)")
  done
  echo "$line"
}
report single "1 x $SINGLE_TOKENS tokens ($ROUNDS rounds)"
[ "$SKIP_BATCH" = 1 ] || report batch "$BATCH_ITEMS x $BATCH_TOKENS tokens ($BATCH_ROUNDS rounds)"
echo "load, median s (model + context setup, not in the times above): tkr-embed $(median < "$WORK/single.tkr.load"), llama.cpp $(median < "$WORK/single.llama.load")"
[ "$cos_failed" = 0 ] || die "the engines disagree (cosine under $MIN_COSINE): the timings compare different computations"

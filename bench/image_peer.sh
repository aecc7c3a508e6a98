#!/usr/bin/env bash
# image_peer.sh - one image item, tkr-embed against llama.cpp's libmtmd (what llama-mtmd-cli
# runs), on the same GGUF pair (text model + mmproj), same threads, same machine, same run.
#
#   MODEL=DIR/x-q8_0.gguf MMPROJ=DIR/mmproj-x-q8_0.gguf LLAMA_DIR=/path/to/llama.cpp \
#     bench/image_peer.sh            (env knobs below)
#
# What it does, in order:
#   1. builds tkr-embed (make) and bench/peer/peer_mtmd.c against llama.cpp's headers
#      ($LLAMA_DIR: a llama.cpp source tree with a native build in $LLAMA_DIR/build/bin holding
#      libllama, libmtmd, libggml; the same tree bench_peer.sh builds with GGML_NATIVE);
#   2. writes each image as a binary PPM of exactly the model size: a multiple of 28 on each
#      side, inside both engines' token limits (tkr-embed 256..1280, llama.cpp's qwen2vl
#      8..4096), so neither engine's smart_resize changes it and both get the same patch grid:
#      448x448 -> 16x16 = 256 merged tokens, 1120x896 -> 40x32 = 1280;
#   3. per image, starts both engines once (load timed apart as load_s, one warm-up run on a
#      448x448 image, so that a long image is not run once more untimed; libmtmd's own
#      46x46-token warm-up encode at load is off) and
#      alternates them run by run (tkr llama, llama tkr, ...); each run is one embedding of the
#      image item, from decoded pixels (the PPM is read once, untimed, on both sides) through
#      the engine's preprocessing (resize, normalisation, patches), the vision tower, and the
#      decoder over the whole Ops-MM prompt (template + image tokens), last token only;
#   4. checks that both engines report the same image and prompt token counts (fails if not)
#      and that their last-token vectors agree (cosine >= MIN_COSINE);
#   5. prints medians and the ratio llama.cpp / tkr-embed (> 1: tkr-embed faster), with the
#      llama.cpp side split into encode (preprocessing + vision tower) and the rest (decode).
# The drivers: build/bench/bench_image_tkr (one tkr_embed call per run) and peer_mtmd (the
# calls llama-mtmd-cli makes: mtmd_tokenize, mtmd_encode_chunk, mtmd_helper_decode_image_chunk,
# llama_decode; model kept loaded). Protocol: bench/peer/peer_image.h.
#
# Knobs: MODEL, MMPROJ (the GGUF pair; both engines load these very files); LLAMA_DIR (default
# bench/.peer/native/src, bench_peer.sh's native build); THREADS (2); ROUNDS (7); SIZES
# ("448x448 1120x896", WIDTHxHEIGHT); UBATCH (0 = the whole prompt in one ubatch; llama-mtmd-cli
# uses 512); MIN_COSINE (0.98); CHECK_VECTORS (1; 0 skips the vector check, which costs one
# more run of each engine); TKR_KERNELS (caps tkr-embed's kernels); LOCK (a file: each
# engine start and each timed run holds flock on it, and releases it in between, so that a long
# measurement on a shared machine never holds the lock for long; runs stay alternated).
# On a shared machine, quote numbers taken under the bench lock, either whole:
#   flock /work/helpers/bench.lock bench/image_peer.sh
# or run by run (a 1280-token round takes minutes under load):
#   LOCK=/work/helpers/bench.lock bench/image_peer.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-7}; CHECK_VECTORS=${CHECK_VECTORS:-1}; UBATCH=${UBATCH:-0}; MIN_COSINE=${MIN_COSINE:-0.98}
SIZES=${SIZES:-"448x448 1120x896"}
LLAMA_DIR=${LLAMA_DIR:-$ROOT/bench/.peer/native/src}
MODEL=${MODEL:?set MODEL to the text GGUF (e.g. a tkr-embed quantize output)}
MMPROJ=${MMPROJ:-$(dirname "$MODEL")/mmproj-$(basename "$MODEL")}
PEER_BIN_DIR=${PEER_BIN_DIR:-$ROOT/bench/.peer/bin}

die() { echo "image_peer: $*" >&2; exit 1; }
LOCK_FD=
if [ -n "${LOCK:-}" ]; then exec {LOCK_FD}>>"$LOCK"; fi
lock() { [ -z "$LOCK_FD" ] || flock "$LOCK_FD"; }
unlock() { [ -z "$LOCK_FD" ] || flock -u "$LOCK_FD"; }
[ -f "$MODEL" ] || die "$MODEL: no such file"
[ -f "$MMPROJ" ] || die "$MMPROJ: no such file (set MMPROJ)"

# ---- 1. both drivers --------------------------------------------------------------------------
make -C "$ROOT" -s -j"$(nproc)" build/bench/bench_image_tkr
[ "$ROOT/bench/peer/peer_image.h" -nt "$ROOT/build/bench/bench_image_tkr" ] &&
  { rm -f "$ROOT/build/bench/bench_image_tkr"; make -C "$ROOT" -s build/bench/bench_image_tkr; }
BINS="$LLAMA_DIR/build/bin"
[ -f "$LLAMA_DIR/tools/mtmd/mtmd.h" ] && ls "$BINS"/libmtmd.so* >/dev/null 2>&1 ||
  die "no llama.cpp tree with a build in $LLAMA_DIR (set LLAMA_DIR; needs build/bin/libmtmd.so, as the llama-mtmd-cli target builds it)"
PEER_BIN="$PEER_BIN_DIR/peer_mtmd"
if [ ! -x "$PEER_BIN" ] || [ "$ROOT/bench/peer/peer_mtmd.c" -nt "$PEER_BIN" ] ||
   [ "$ROOT/bench/peer/peer_image.h" -nt "$PEER_BIN" ] || [ "$BINS/libmtmd.so" -nt "$PEER_BIN" ]; then
  mkdir -p "$PEER_BIN_DIR"
  cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Wshadow -Wvla \
     -I"$LLAMA_DIR/include" -I"$LLAMA_DIR/ggml/include" -I"$LLAMA_DIR/tools/mtmd" \
     "$ROOT/bench/peer/peer_mtmd.c" -o "$PEER_BIN" -L"$BINS" -l:libmtmd.so -l:libllama.so \
     -l:libggml.so -l:libggml-base.so -lm -Wl,-rpath,"$(cd "$BINS" && pwd)"
fi
LLAMA_COMMIT=$(git -C "$LLAMA_DIR" rev-parse --short HEAD 2>/dev/null || echo "?")
TKR_FLAGS=(--threads "$THREADS" --mmproj "$MMPROJ")
[ -n "${TKR_KERNELS:-}" ] && TKR_FLAGS+=(--kernels "$TKR_KERNELS")

# ---- 2. images --------------------------------------------------------------------------------
WORK=$(mktemp -d)
declare -A EPID EIN EOUT
trap '' PIPE
cleanup() {
  local e
  for e in "${!EPID[@]}"; do kill "${EPID[$e]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# ppm W H FILE: a gradient with a checkerboard (the content does not change the cost)
ppm() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
w, h, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
px = bytearray()
for y in range(h):
    for x in range(w):
        px += bytes(((x * 255) // max(1, w - 1), (y * 255) // max(1, h - 1), ((x // 16 + y // 16) % 2) * 200))
open(out, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + bytes(px))
EOF
}

# ---- 3. alternating runs ----------------------------------------------------------------------
start_engine() { # ENGINE IMAGE: starts it on two fifos, returns once it is "ready"
  local e=$1 fd key val
  rm -f "$WORK/$e.in" "$WORK/$e.out"
  mkfifo "$WORK/$e.in" "$WORK/$e.out"
  (
    for fd in "${EIN[@]}" "${EOUT[@]}" $LOCK_FD; do eval "exec $fd>&-"; done
    case $e in
      tkr) exec "$ROOT/build/bench/bench_image_tkr" "$MODEL" "$2" "${TKR_FLAGS[@]}" --warmup "$WORK/warm.ppm" --stdin ;;
      llama) exec "$PEER_BIN" "$MODEL" "$MMPROJ" "$2" --threads "$THREADS" --ubatch "$UBATCH" --warmup "$WORK/warm.ppm" --stdin ;;
    esac
  ) < "$WORK/$e.in" > "$WORK/$e.out" 2> "$WORK/$e.err" &
  EPID[$e]=$!
  exec {fd}> "$WORK/$e.in"; EIN[$e]=$fd
  exec {fd}< "$WORK/$e.out"; EOUT[$e]=$fd
  while read -r key val <&"${EOUT[$e]}"; do
    case $key in
      load_s|image_tokens|prompt_tokens) echo "$val" > "$WORK/$e.$key" ;;
      ready) return 0 ;;
    esac
  done
  cat "$WORK/$e.err" >&2; die "$e did not start"
}
ask() { # ENGINE COMMAND EXPECTED-KEY: prints the answer's value(s)
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
  unset "EPID[$1]"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
pressure() { [ -r /proc/pressure/cpu ] && awk '/^some/ { sub("avg10=", "", $2); sub("avg60=", "", $3); printf "%s%% (10 s), %s%% (60 s)", $2, $3 }' /proc/pressure/cpu || echo "n/a"; }

echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2), load average $(cut -d' ' -f1-3 /proc/loadavg), CPU pressure $(pressure)"
echo "peer: llama.cpp $LLAMA_COMMIT, $BINS (libmtmd), ubatch ${UBATCH/#0/whole prompt}; threads $THREADS each"
echo "files: $MODEL + $MMPROJ (both engines)"
rows=()
for size in $SIZES; do
  w=${size%x*}; h=${size#*x}
  ppm "$w" "$h" "$WORK/img.ppm"
  [ -f "$WORK/warm.ppm" ] || ppm 448 448 "$WORK/warm.ppm"
  : > "$WORK/tkr.runs"; : > "$WORK/llama.runs"; : > "$WORK/llama.enc"; : > "$WORK/pairs"
  lock; start_engine tkr "$WORK/img.ppm"; unlock
  lock; start_engine llama "$WORK/img.ppm"; unlock
  for e in image_tokens prompt_tokens; do
    [ "$(cat "$WORK/tkr.$e")" = "$(cat "$WORK/llama.$e")" ] ||
      die "$size: the engines disagree on $e: tkr-embed $(cat "$WORK/tkr.$e"), llama.cpp $(cat "$WORK/llama.$e")"
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    order="tkr llama"; [ $((r % 2)) -eq 0 ] && order="llama tkr"
    for e in $order; do
      lock; read -r t enc <<<"$(ask "$e" run run_s)"; unlock
      echo "$t" >> "$WORK/$e.runs"
      [ "$e" = llama ] && echo "$enc" >> "$WORK/llama.enc"
      echo "$r $e $t" >> "$WORK/pairs"
    done
    printf '  %s round %d/%d: tkr-embed %s s, llama.cpp %s s\n' "$size" "$r" "$ROUNDS" \
      "$(tail -1 "$WORK/tkr.runs")" "$(tail -1 "$WORK/llama.runs")" >&2
  done
  cos="not checked"
  if [ "$CHECK_VECTORS" = 1 ]; then
    lock; ask tkr "dump $WORK/tkr.vec" dumped >/dev/null; unlock
    lock; ask llama "dump $WORK/llama.vec" dumped >/dev/null; unlock
    cos=$(paste -d '|' "$WORK/tkr.vec" "$WORK/llama.vec" | awk -F'|' '{ n = split($1, a, " "); split($2, b, " ")
      for (i = 1; i <= n; i++) d += a[i] * b[i]; printf "%.6f", d }')
    awk -v c="$cos" -v m="$MIN_COSINE" 'BEGIN { exit !(c < m) }' && cos_bad=1
  fi
  stop_engine tkr; stop_engine llama
  [ -n "${SYS_LINE:-}" ] || SYS_LINE=$(sed -n 's/^# llama.cpp system: //p' "$WORK/llama.err" | head -1)
  [ -n "${KERN_LINE:-}" ] || KERN_LINE=$(sed -n 's/^# tkr-embed kernels: //p' "$WORK/tkr.err" | head -1)
  tt=$(median < "$WORK/tkr.runs"); tl=$(median < "$WORK/llama.runs"); te=$(median < "$WORK/llama.enc")
  paired=$(awk '$2 == "tkr" { t[$1] = $3 } $2 == "llama" { x[$1] = $3 } END { for (r in t) if (r in x) print x[r] / t[r] }' "$WORK/pairs" | median)
  rows+=("$(printf '%5s tokens (%s, prompt %s) | tkr-embed %.3f s (min %.3f) | llama.cpp %.3f s (min %.3f; encode %.3f, decode %.3f) | ratio %.2f [paired %.2f] | cosine %s | load s: tkr %.2f, llama %.2f' \
    "$(cat "$WORK/tkr.image_tokens")" "$size" "$(cat "$WORK/tkr.prompt_tokens")" "$tt" "$(sort -g "$WORK/tkr.runs" | head -1)" \
    "$tl" "$(sort -g "$WORK/llama.runs" | head -1)" "$te" "$(awk -v a="$tl" -v b="$te" 'BEGIN { print a - b }')" \
    "$(awk -v a="$tl" -v b="$tt" 'BEGIN { print a / b }')" "$paired" "$cos" "$(cat "$WORK/tkr.load_s")" "$(cat "$WORK/llama.load_s")")")
done
echo "llama.cpp system: $SYS_LINE"
echo "tkr-embed kernels: $KERN_LINE"
echo "CPU pressure at end: $(pressure)"
echo
echo "seconds per run, median of $ROUNDS alternating rounds; ratio = llama.cpp / tkr-embed (of the medians) [median of the per-round ratios]"
printf '%s\n' "${rows[@]}"
[ -z "${cos_bad:-}" ] || die "the engines disagree (a cosine under $MIN_COSINE): the timings compare different computations"

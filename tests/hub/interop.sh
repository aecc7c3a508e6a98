#!/usr/bin/env bash
# tests/hub/interop.sh - the Hugging Face cache shared with huggingface_hub, in both directions,
# against the fake hub (tests/hub/fake_hub.py, loopback only):
#   0. huggingface_hub's get_hf_file_metadata reads the fake hub's commit, ETag and size, and its
#      LFS storage redirect goes to another host name, as the real Hub's does;
#   a. tkr-embed pulls tkr/m1 (safetensors) and tkr/m4-GGUF:f32 (one GGUF + its mmproj) into a
#      fresh HF_HOME; huggingface_hub with local_files_only=True resolves every file we wrote
#      (snapshot_download and hf_hub_download, by branch and by commit), the bytes equal the
#      hub's, the commit is the hub's, scan_cache_dir finds no fault (tests/hub/interop.py read);
#   b. huggingface_hub downloads tkr/m2 (sharded safetensors) and tkr/m4-GGUF whole into another
#      fresh cache (snapshot_download; also a missing file, so .no_exist/ is there too); then
#      tkr-embed with HF_HUB_OFFLINE=1 embeds from that cache, vectors identical to the same
#      model from its directory (text, and text + image for the GGUF pair); online, tkr-embed
#      reuses huggingface_hub's blobs (downloads nothing);
#   c. huggingface_hub and tkr-embed pull the same repository into one cache at the same time:
#      both succeed, each blob is transferred once (the .locks/ they share).
# It needs huggingface_hub, so it is not part of `make test` (a skip would not be a pass). Run it
# where huggingface_hub is installed, or point HUB_PYTHONPATH at its sources and their
# dependencies (see docs/hub.md):
#   TKR_TEST_DATA=/path/to/shared/data [HUB_PYTHONPATH=/tmp/hub-interop/py] bash tests/hub/interop.sh
# Exit 0 = every check passed; 1.. = the number of failed checks; 2 = huggingface_hub missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
PY="$ROOT/tests/hub/interop.py"
export PYTHONPATH="${HUB_PYTHONPATH:+$HUB_PYTHONPATH${PYTHONPATH:+:}}${PYTHONPATH:-}"
if ! python3 -c "import huggingface_hub" 2>/dev/null; then
  echo "FAIL huggingface_hub is not importable by python3 (PYTHONPATH=${PYTHONPATH:-}): this check needs it." >&2
  echo "     Install it (pip install huggingface_hub) or set HUB_PYTHONPATH to its sources; see docs/hub.md." >&2
  exit 2
fi
[ -x "$BIN" ] || { echo "FAIL $BIN is not built (make)"; exit 1; }
python3 "$PY" version
tmp=$(mktemp -d)
hub_pid=
trap '[ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); return 1; fi; }

# the hub's repositories
make_model_dir m1-flat-f32 "$tmp/m1" && make_model_dir m2-nested-f16-sharded "$tmp/m2" ||
  { echo "FAIL cannot assemble the fixture models"; exit 1; }
H="$tmp/hub/tkr"
mkdir -p "$H/m1" "$H/m2" "$H/m4-GGUF"
cp -L "$tmp"/m1/* "$H/m1/"; cp -L "$tmp"/m2/* "$H/m2/"
echo "readme" | tee "$H/m1/README.md" "$H/m4-GGUF/README.md" >/dev/null
G="$ROOT/tests/fixtures/gguf"
cp "$G/m4-f32.gguf" "$G/mmproj-m4-f16.gguf" "$G/mmproj-m4-q8_0.gguf" "$H/m4-GGUF/"
python3 "$ROOT/tests/hub/fake_hub.py" "$tmp/hub" "$tmp/port" "$tmp/hub.log" 2>"$tmp/hub.err" &
hub_pid=$!
for _ in $(seq 1 300); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/hub.err"; echo "FAIL the fake hub did not start"; exit 1; }
EP="http://127.0.0.1:$(cat "$tmp/port")"
unset HF_TOKEN HF_HUB_CACHE HF_TOKEN_PATH HF_HUB_OFFLINE HUGGINGFACE_HUB_CACHE HUGGING_FACE_HUB_TOKEN TRANSFORMERS_OFFLINE
export HF_ENDPOINT="$EP" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_XET=1
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

echo "== 0. the fake hub's metadata as huggingface_hub reads it"
python3 "$PY" headers "$EP" "$tmp/hub" tkr/m1 model.safetensors added_tokens.json; fails=$((fails + $?))

echo "== a. huggingface_hub reads what tkr-embed wrote"
export HF_HOME="$tmp/ours"
"$BIN" pull tkr/m1 >"$tmp/pull1" 2>"$tmp/e"; check "tkr-embed pull tkr/m1 -> $(cat "$tmp/pull1")" $? || cat "$tmp/e"
"$BIN" pull tkr/m4-GGUF:f32 >"$tmp/pull4" 2>"$tmp/e"; check "tkr-embed pull tkr/m4-GGUF:f32 -> $(tr '\n' ' ' <"$tmp/pull4")" $? || cat "$tmp/e"
python3 "$PY" read "$HF_HOME/hub" "$EP" "$tmp/hub" tkr/m1 tkr/m4-GGUF; fails=$((fails + $?))

echo "== b. tkr-embed reads what huggingface_hub wrote"
export HF_HOME="$tmp/theirs"
python3 "$PY" download "$HF_HOME/hub" "$EP" tkr/m2 tkr/m4-GGUF; fails=$((fails + $?))
ls "$HF_HOME"/hub/models--tkr--m2/trees/*.json >/dev/null 2>&1 && [ -d "$HF_HOME/hub/models--tkr--m2/.no_exist" ] &&
  [ -f "$HF_HOME/hub/CACHEDIR.TAG" ]
check "huggingface_hub's cache holds its extras too (trees/<commit>.json, .no_exist/, CACHEDIR.TAG)" $?
"$BIN" embed -m "$tmp/m2" --text "a cat" >"$tmp/m2-dir.json"
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$BIN" embed -m tkr/m2 --text "a cat" >"$tmp/m2-hub.json" 2>"$tmp/e"
[ $? -eq 0 ] && [ -s "$tmp/m2-dir.json" ] && cmp -s "$tmp/m2-dir.json" "$tmp/m2-hub.json"
check "HF_HUB_OFFLINE=1 tkr-embed embed -m tkr/m2 (huggingface_hub's snapshot) = the directory's vector" $? || cat "$tmp/e"
IMG="$ROOT/tests/fixtures/images/syn-gray.png"
"$BIN" embed -m "$G/m4-f32.gguf" --mmproj "$G/mmproj-m4-f16.gguf" --text "a cat" --image "$IMG" >"$tmp/m4-dir.json"
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$BIN" embed -m tkr/m4-GGUF:f32 --text "a cat" --image "$IMG" \
  >"$tmp/m4-hub.json" 2>"$tmp/e"
[ $? -eq 0 ] && [ -s "$tmp/m4-dir.json" ] && cmp -s "$tmp/m4-dir.json" "$tmp/m4-hub.json"
check "HF_HUB_OFFLINE=1 tkr-embed embed -m tkr/m4-GGUF:f32 (GGUF + F16 mmproj from huggingface_hub's snapshot) = the files' vector" $? ||
  cat "$tmp/e"
: >"$tmp/hub.log"
"$BIN" pull tkr/m2 >/dev/null 2>"$tmp/e" && "$BIN" pull tkr/m4-GGUF:f32 >/dev/null 2>>"$tmp/e" &&
  ! grep -q "^GET /cdn/" "$tmp/hub.log" && ! grep -q "^GET .*/resolve-cache/" "$tmp/hub.log"
check "online, tkr-embed pull reuses huggingface_hub's blobs: nothing downloaded" $? || { cat "$tmp/e"; grep GET "$tmp/hub.log"; }

echo "== c. both at once on one cache"
export HF_HOME="$tmp/both"
: >"$tmp/hub.log"
python3 -c "
import sys; from huggingface_hub import snapshot_download
snapshot_download('tkr/m2', cache_dir=sys.argv[1], endpoint=sys.argv[2])" "$HF_HOME/hub" "$EP" 2>"$tmp/e1" & p1=$!
"$BIN" pull tkr/m2 >/dev/null 2>"$tmp/e2" & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
n=$(grep -c "^GET /cdn/" "$tmp/hub.log"); u=$(grep "^GET /cdn/" "$tmp/hub.log" | cut -d' ' -f2 | cut -d'?' -f1 | sort -u | wc -l)
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$n" -eq "$u" ] && [ "$n" -ge 2 ]
check "huggingface_hub and tkr-embed pulling tkr/m2 at once: both succeed, each blob transferred once ($n transfers, $u blobs)" $? ||
  { cat "$tmp/e1" "$tmp/e2"; grep cdn "$tmp/hub.log"; }
HF_HUB_OFFLINE=1 "$BIN" embed -m tkr/m2 --text "a cat" >"$tmp/m2-both.json" 2>"$tmp/e"; cmp -s "$tmp/m2-dir.json" "$tmp/m2-both.json"
check "and the shared snapshot embeds as the directory does" $? || cat "$tmp/e"
[ -z "$(find "$HF_HOME/hub" -name '*.incomplete')" ]; check "no .incomplete left" $?

echo "interop: $fails failed"
exit "$fails"

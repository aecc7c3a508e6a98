#!/usr/bin/env bash
# Models by name: tkr-embed pull / -m org/name against a fake Hub (tests/hub/fake_hub.py) with
# the real routes and headers. Checks the cache layout huggingface_hub uses (blobs by ETag,
# snapshot symlinks, refs), embeddings identical to the local directory, the cache reused
# (nothing downloaded twice), offline mode, revisions, :QUANT selection of one GGUF + mmproj, and
# the faults: a dropped connection resumed with Range, a wrong sha256, 401 / token, 404, a
# redirect loop, a stalled server, and two processes pulling at once.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
tmp=$(mktemp -d)
hub_pid=
trap '[ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); return 1; fi; }

# the hub's repositories: the m1 fixture as published (safetensors + tokenizer files), a
# revision "v2" of it (m2's weights), and a GGUF-only repository
make_model_dir m1-flat-f32 "$tmp/m1"
mkdir -p "$tmp/hub/tkr/m1" "$tmp/hub/tkr/m1@v2" "$tmp/hub/tkr/m1-gguf"
cp -L "$tmp"/m1/* "$tmp/hub/tkr/m1/"
make_model_dir m2-nested-f16-sharded "$tmp/m2"
cp -L "$tmp"/m2/* "$tmp/hub/tkr/m1@v2/"
echo "readme" > "$tmp/hub/tkr/m1/README.md"
for f in m1-Q4_K_M.gguf m1-Q8_0.gguf m1-F16.gguf mmproj-m1-f16.gguf mmproj-m1-q8_0.gguf; do
  head -c 3000 /dev/urandom > "$tmp/hub/tkr/m1-gguf/$f"
done
python3 "$ROOT/tests/hub/fake_hub.py" "$tmp/hub" "$tmp/port" "$tmp/hub.log" 2>"$tmp/hub.err" &
hub_pid=$!
for _ in $(seq 1 300); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/hub.err"; echo "FAIL the fake hub did not start"; exit 1; }
EP="http://127.0.0.1:$(cat "$tmp/port")"
faults() { curl -s -o /dev/null -X POST "$EP/_faults" -d "$1"; }
export HF_ENDPOINT="$EP" HF_HOME="$tmp/hf" TKR_HUB_STALL_TIMEOUT_S=2
unset HF_TOKEN HF_HUB_OFFLINE HF_HUB_CACHE HF_TOKEN_PATH HUGGINGFACE_HUB_CACHE HUGGING_FACE_HUB_TOKEN TRANSFORMERS_OFFLINE
C="$tmp/hf/hub/models--tkr--m1"

# pull: the files the model needs, in the standard layout
path=$("$BIN" pull tkr/m1 2>"$tmp/pull.err"); rc=$?
check "pull tkr/m1" "$rc"
commit=$(cat "$C/refs/main" 2>/dev/null)
[ "$path" = "$C/snapshots/$commit" ] && [ ${#commit} -eq 40 ]; check "refs/main holds the commit; the path is its snapshot" $?
[ "$(wc -c < "$C/refs/main")" -eq 40 ]; check "refs/main is the bare commit, no newline (huggingface_hub reads it verbatim)" $?
head -1 "$tmp/hf/hub/CACHEDIR.TAG" 2>/dev/null | grep -qx "Signature: 8a477f597d28d172789f06886806bc55"
check "the cache is tagged CACHEDIR.TAG, as huggingface_hub tags it" $?
n=$(ls "$tmp/hf/hub/.locks/models--tkr--m1/" 2>/dev/null | grep -c '\.lock$')
[ "$n" -ge 1 ] && [ "$(ls "$tmp/hf/hub/.locks/models--tkr--m1/" | grep -vc '\.lock$')" -eq 0 ]
check "locks are .locks/models--tkr--m1/<etag>.lock, huggingface_hub's ($n)" $?
[ -L "$path/model.safetensors" ] && [ "$(readlink "$path/model.safetensors")" = "../../blobs/$(sha256sum "$tmp/m1/model.safetensors" | cut -c1-64)" ]
check "the safetensors is a relative symlink to blobs/<sha256>" $?
[ -L "$path/config.json" ] && cmp -s "$path/config.json" "$tmp/m1/config.json"; check "config.json (non-LFS, ETag blob) linked and intact" $?
[ ! -e "$path/README.md" ]; check "files the model does not need are not fetched" $?
[ -z "$(find "$C/blobs" -name '*.incomplete')" ]; check "no .incomplete left" $?

# -m org/name gives the same vectors as the local directory, from the cache
"$BIN" embed -m "$tmp/m1" --text "a cat" > "$tmp/local.json"
: > "$tmp/hub.log"
"$BIN" embed -m tkr/m1 --text "a cat" > "$tmp/hub.json"; rc=$?
[ "$rc" -eq 0 ] && cmp -s "$tmp/local.json" "$tmp/hub.json"; check "embed -m tkr/m1 equals the local directory" $?
! grep -q "^GET /cdn" "$tmp/hub.log"; check "a second use downloads nothing" $?
"$BIN" tokenize -m tkr/m1 --text "Hello world" | grep -q "9707"; check "tokenize -m tkr/m1" $?

# offline: no hub needed
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$BIN" embed -m tkr/m1 --text "a cat" > "$tmp/off.json"
cmp -s "$tmp/local.json" "$tmp/off.json"; check "HF_HUB_OFFLINE=1 uses the cache" $?
HF_HUB_OFFLINE=1 "$BIN" embed -m tkr/other --text x >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "not in the cache" "$tmp/e"
check "offline and not cached: a clear error" $?
mv "$path/model.safetensors" "$tmp/st.link"
HF_HUB_OFFLINE=1 "$BIN" embed -m tkr/m1 --text x >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "is incomplete (no the safetensors weights)" "$tmp/e"
check "offline, a snapshot without its weights (a partial huggingface_hub download): says so" $? || cat "$tmp/e"
mv "$tmp/st.link" "$path/model.safetensors"
# a partial file left beside a finished blob (a crash, then another tool finished the blob) goes
st_sha=$(sha256sum "$tmp/m1/model.safetensors" | cut -c1-64)
echo junk > "$C/blobs/$st_sha.incomplete"
"$BIN" pull tkr/m1 >/dev/null 2>&1 && [ ! -e "$C/blobs/$st_sha.incomplete" ] && cmp -s "$path/model.safetensors" "$tmp/m1/model.safetensors"
check "a stale .incomplete beside a finished blob is removed, the blob kept" $?

# a revision, and a commit
"$BIN" pull tkr/m1@v2 >/dev/null 2>"$tmp/e" && [ -f "$C/refs/v2" ] && [ "$(cat "$C/refs/v2")" != "$commit" ]; check "pull @v2: its own ref and snapshot" $? || cat "$tmp/e"
"$BIN" embed -m "tkr/m1@$commit" --text "a cat" > "$tmp/c.json"; cmp -s "$tmp/local.json" "$tmp/c.json"; check "-m tkr/m1@<commit>" $?

# :QUANT: one GGUF and the F16 mmproj, nothing else
out=$("$BIN" pull tkr/m1-gguf:q8_0 2>/dev/null); rc=$?
G="$tmp/hf/hub/models--tkr--m1-gguf/snapshots"
[ "$rc" -eq 0 ] && [ "$(echo "$out" | head -1)" = "$(ls -d "$G"/*)/m1-Q8_0.gguf" ] && [ "$(echo "$out" | sed -n 2p)" = "$(ls -d "$G"/*)/mmproj-m1-f16.gguf" ]
check ":q8_0 selects m1-Q8_0.gguf and the F16 mmproj" $?
[ "$(ls "$G"/*/ | wc -l)" -eq 2 ]; check ":q8_0 fetches only those two files" $?
"$BIN" pull tkr/m1-gguf >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "name a quantization" "$tmp/e"; check "a GGUF-only repo without :QUANT: a clear error" $?
"$BIN" pull tkr/m1-gguf:Q5_K_M >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "no GGUF file matching" "$tmp/e"; check "an absent quant: a clear error" $?

# faults. Each from a fresh cache.
fresh() { rm -rf "$tmp/hf"; : > "$tmp/hub.log"; }
fresh; faults '{"drop_once": "model.safetensors"}'
"$BIN" pull tkr/m1 >/dev/null 2>"$tmp/e"; rc=$?
[ "$rc" -eq 0 ] && grep -q "resuming" "$tmp/e" && grep -q "^GET /cdn/.* bytes=[1-9]" "$tmp/hub.log" &&
  cmp -s "$C/snapshots/$commit/model.safetensors" "$tmp/m1/model.safetensors"
check "a dropped connection mid-file resumes with a Range request, file intact" $?
fresh; faults '{"wrong_hash": "model.safetensors"}'
"$BIN" pull tkr/m1 >/dev/null 2>"$tmp/e"; rc=$?
bad=$(sha256sum "$tmp/m1/model.safetensors" | cut -c1-64)
[ "$rc" -eq 1 ] && grep -q "sha256 mismatch" "$tmp/e" && [ ! -e "$C/blobs/$bad" ] && [ ! -e "$C/blobs/$bad.incomplete" ]
check "a wrong sha256: error, and no blob or partial file of it kept" $?
fresh; faults '{"require_token": "hf_secret"}'
"$BIN" pull tkr/m1 >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "HF_TOKEN" "$tmp/e"; check "401 without a token names HF_TOKEN" $?
HF_TOKEN=hf_secret "$BIN" pull tkr/m1 >/dev/null 2>&1; check "HF_TOKEN is sent" $?
grep -q "^HEAD /tkr/m1/resolve/.* auth$" "$tmp/hub.log" && grep -q "^GET /cdn/" "$tmp/hub.log" &&
  ! grep -q "^GET /cdn/.* auth$" "$tmp/hub.log"
check "the token goes to the hub, never to the storage host a file redirects to" $?
fresh; mkdir -p "$tmp/hf"; echo hf_secret > "$tmp/hf/token"
"$BIN" pull tkr/m1 >/dev/null 2>&1; check "the token file \$HF_HOME/token is read" $?
fresh; faults '{}'
"$BIN" pull tkr/nope >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "repository not found" "$tmp/e" && grep -q "HF_TOKEN" "$tmp/e"
check "an unknown repository (the Hub's 401 RepoNotFound): not found, or needs HF_TOKEN" $? || cat "$tmp/e"
"$BIN" pull tkr/m1@nobranch >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "revision not found" "$tmp/e"; check "an unknown revision (404 RevisionNotFound): a clear error" $? || cat "$tmp/e"
faults '{"redirect_loop": true}'
timeout 60 "$BIN" pull tkr/m1 >/dev/null 2>"$tmp/e"; [ $? -eq 1 ] && grep -q "redirect" "$tmp/e"; check "a redirect loop: a clear error" $?
fresh; faults '{"slow": true}'
t0=$(date +%s); timeout 60 "$BIN" pull tkr/m1 >/dev/null 2>"$tmp/e"; rc=$?; t1=$(date +%s)
[ "$rc" -eq 1 ] && grep -q "stalled" "$tmp/e" && [ $((t1 - t0)) -lt 50 ]; check "a stalled server times out ($((t1 - t0)) s)" $?
fresh; faults '{}'
"$BIN" pull "../../etc" >/dev/null 2>&1; [ $? -eq 1 ]; check "a malformed name is refused" $?

# two processes at once share one cache: both succeed, one download of each blob
"$BIN" pull tkr/m1 >/dev/null 2>&1 & p1=$!
"$BIN" pull tkr/m1 >/dev/null 2>&1 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
n=$(grep -c "^GET /cdn" "$tmp/hub.log"); u=$(grep "^GET /cdn" "$tmp/hub.log" | sort -u | wc -l)
lfs=$(find "$tmp/hub/tkr/m1" -type f -size +1000c ! -name README.md | wc -l)
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$n" -eq "$u" ] && [ "$n" -eq "$lfs" ] && cmp -s "$C/snapshots/$commit/model.safetensors" "$tmp/m1/model.safetensors"
check "two concurrent pulls: both succeed, each blob downloaded once ($n transfers for $lfs LFS files)" $? ||
  grep cdn "$tmp/hub.log"
# a cache shared by a group: lock files group-writable, as huggingface_hub makes them (umask allowing)
(umask 002; HF_HOME="$tmp/hfu" "$BIN" pull tkr/m1 >/dev/null 2>&1)
lk=$(ls "$tmp"/hfu/hub/.locks/models--tkr--m1/*.lock 2>/dev/null | head -1)
[ -n "$lk" ] && [ "$(python3 -c 'import os,sys; print(oct(os.stat(sys.argv[1]).st_mode & 0o777))' "$lk")" = "0o664" ]
check "lock files are group-writable (0664 under umask 002)" $?
exit "$fails"

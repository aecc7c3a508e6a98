#!/usr/bin/env bash
# Batch jobs (embed --input): --output resumes after a kill (each item exactly once, vectors
# identical to one uninterrupted run), --shard i/n covers the input exactly once, --limit,
# --format npy (+ .ids, .errors.jsonl), the progress bar, and the same output with the next
# chunk prepared while one computes (TKR_PREPARE_AHEAD=1, a GPU's default).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi; }
make_model_dir m1-flat-f32 "$tmp/m1"

# 120 items: texts of varied length, one bad JSON line and one missing image (errors are results too)
python3 - "$tmp/in.jsonl" <<'PY'
import json, sys
words = "the quick brown fox jumps over a lazy dog while seven bright stars watch".split()
with open(sys.argv[1], "w") as f:
    for i in range(120):
        if i == 17: f.write("not json\n"); continue
        if i == 55: f.write(json.dumps({"text": "x", "images": ["/nonexistent.png"]}) + "\n"); continue
        n = 3 + (i * 7) % 40
        f.write(json.dumps({"text": " ".join(words[(i + k) % len(words)] for k in range(n))}) + "\n")
PY
E=("$BIN" embed -m "$tmp/m1" --threads 1 --no-progress --input "$tmp/in.jsonl")
"${E[@]}" > "$tmp/ref.jsonl"; rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l < "$tmp/ref.jsonl")" -eq 120 ]; check "reference run: 120 lines, exit 1 (2 bad lines)" $?
# chunks prepared while the previous one computes (a GPU's default; here forced): the same bytes
TKR_PREPARE_AHEAD=1 "${E[@]}" > "$tmp/ahead.jsonl"; rc=$?
[ "$rc" -eq 1 ] && cmp -s "$tmp/ref.jsonl" "$tmp/ahead.jsonl"; check "prepare-ahead run: identical output and exit status" $?

# compare OUT: every index 0..119 exactly once, each line identical to the reference's
same_as_ref() {
  python3 - "$tmp/ref.jsonl" "$@" <<'PY'
import json, sys
ref = {json.loads(l)["index"]: l for l in open(sys.argv[1])}
seen = {}
for path in sys.argv[2:]:
    for l in open(path):
        i = json.loads(l)["index"]
        assert i not in seen, f"index {i} twice"
        seen[i] = l
assert sorted(seen) == sorted(ref), f"{len(seen)} indices, want {len(ref)}"
bad = [i for i in ref if ref[i] != seen[i]]
assert not bad, f"lines differ for {bad[:5]}"
PY
}

# --limit then resume
"${E[@]}" --output "$tmp/lim.jsonl" --limit 50 >/dev/null 2>&1
[ "$(wc -l < "$tmp/lim.jsonl")" -eq 50 ]; check "--limit 50 writes 50 lines" $?
"${E[@]}" --output "$tmp/lim.jsonl" >/dev/null 2>"$tmp/err"
grep -q "resuming.*50 items already done" "$tmp/err" && same_as_ref "$tmp/lim.jsonl"; check "resume after --limit: each item once, identical" $?

# a partial last line (killed mid-write) is dropped and redone
head -c 3000 "$tmp/ref.jsonl" > "$tmp/part.jsonl"
"${E[@]}" --output "$tmp/part.jsonl" >/dev/null 2>&1
same_as_ref "$tmp/part.jsonl"; check "resume drops a partial last line" $?

# 3 shards, one killed (SIGKILL at a random moment) and restarted
for s in 0 1 2; do
  if [ "$s" = 1 ]; then
    "${E[@]}" --output "$tmp/shard1.jsonl" --shard 1/3 >/dev/null 2>&1 & pid=$!
    sleep 0.3; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    "${E[@]}" --output "$tmp/shard1.jsonl" --shard 1/3 >/dev/null 2>&1
  else
    "${E[@]}" --output "$tmp/shard$s.jsonl" --shard "$s/3" >/dev/null 2>&1
  fi
done
same_as_ref "$tmp/shard0.jsonl" "$tmp/shard1.jsonl" "$tmp/shard2.jsonl"; check "3 shards, one killed and restarted: each item exactly once, identical vectors" $?
python3 -c "
import json,sys
for s in range(3):
    assert all(json.loads(l)['index'] % 3 == s for l in open('$tmp/shard%d.jsonl' % s))
"; check "shard i holds the indices with index % 3 == i" $?

# npy: matrix of the good items, ids, errors; resumed after --limit
"${E[@]}" --output "$tmp/v.npy" --format npy --limit 30 >/dev/null 2>&1
"${E[@]}" --output "$tmp/v.npy" --format npy >/dev/null 2>&1
python3 - "$tmp/ref.jsonl" "$tmp/v.npy" <<'PY'; check "npy: float32 matrix + ids + errors match the JSONL run" $?
import json, struct, sys
ref = {json.loads(l)["index"]: json.loads(l) for l in open(sys.argv[1])}
raw = open(sys.argv[2], "rb").read()
assert raw[:8] == b"\x93NUMPY\x01\x00"
hl = struct.unpack("<H", raw[8:10])[0]
header = raw[10:10 + hl].decode()
assert (10 + hl) % 64 == 0 and header.endswith("\n")
assert "'descr': '<f4'" in header and "(118, 16)" in header, header
data = raw[10 + hl:]
ids = [int(l) for l in open(sys.argv[2] + ".ids")]
assert len(ids) == 118 and len(set(ids)) == 118 and len(data) == 118 * 16 * 4
for r, i in enumerate(ids):
    v = struct.unpack("<16f", data[r * 64:(r + 1) * 64])
    want = ref[i]["embedding"]
    assert all(abs(a - b) <= 1e-6 * max(1, abs(b)) for a, b in zip(v, want)), i
errs = sorted(json.loads(l)["index"] for l in open(sys.argv[2] + ".errors.jsonl"))
assert errs == [17, 55], errs
PY
[ ! -e "$tmp/v.npy.rows" ]; check "npy: the rows file is removed once the matrix is written" $?

# the progress bar (forced: stderr is not a terminal here)
"${E[@]}" --output "$tmp/p.jsonl" --progress >/dev/null 2>"$tmp/bar"
grep -q "120/120 items" "$tmp/bar" && grep -q "tokens/s" "$tmp/bar"; check "progress bar shows items, tokens/s" $?

# usage errors
"$BIN" embed -m "$tmp/m1" --text x --output "$tmp/o" >/dev/null 2>&1; [ $? -eq 2 ]; check "--output needs --input" $?
"${E[@]}" --shard 3/3 >/dev/null 2>&1; [ $? -eq 2 ]; check "--shard 3/3 refused" $?
"${E[@]}" --format npy >/dev/null 2>&1; [ $? -eq 2 ]; check "npy needs --output" $?
echo "not ours" > "$tmp/foreign.jsonl"
"${E[@]}" --output "$tmp/foreign.jsonl" >/dev/null 2>&1; [ $? -eq 1 ] && [ "$(cat "$tmp/foreign.jsonl")" = "not ours" ]
check "a foreign file is not resumed into (nor clobbered)" $?
exit "$fails"

#!/usr/bin/env bash
# `tkr-embed serve` over the real engine (the m1 fixture model) against `tkr-embed embed`: the
# server's vectors must be bit-identical to the CLI's for text, instructions, images (data: URI
# and file://), token ids and truncation, whether items come one per request, all in one
# request, or mixed with other clients' items in shared batches.
cd "$(dirname "$0")/../.." || exit 1
. tests/server/lib.sh
. tests/lib/modeldir.sh

BIN="$B/tkr-embed"
[ -x "$BIN" ] || fail "missing $BIN"
MODEL="${TKR_MODEL_M1:-}"
if [ -z "$MODEL" ]; then
  MODEL="$WORK/m1"
  make_model_dir m1-flat-f32 "$MODEL" || fail "cannot assemble the m1 fixture model"
fi
IMGDIR="$WORK/images"
mkdir -p "$IMGDIR"
cp "$DATA/images/photos/wuffs-hat.jpeg" "$DATA/images/pngsuite/basn2c08.png" "$IMGDIR/"
HAT_B64=$(base64 -w0 "$IMGDIR/wuffs-hat.jpeg")

# the reference: the CLI, one JSONL line per item
cat >"$WORK/items.jsonl" <<EOF
{"text": "hello world"}
{"text": "a cat sat on the mat", "instruction": "Find the animal."}
{"text": "a hat", "images": ["$IMGDIR/wuffs-hat.jpeg"]}
{"images": ["$IMGDIR/basn2c08.png", "$IMGDIR/wuffs-hat.jpeg"]}
{"text": "the quick brown fox jumps over the lazy dog and keeps on running far away"}
EOF
"$BIN" embed -m "$MODEL" --input "$WORK/items.jsonl" >"$WORK/cli.jsonl" || fail "tkr-embed embed failed"
"$BIN" embed -m "$MODEL" --max-tokens 30 --truncate --text "the quick brown fox jumps over the lazy dog and keeps on running far away" \
  >"$WORK/cli_trunc.json" || fail "tkr-embed embed --truncate failed"
IDS=$("$BIN" tokenize -m "$MODEL" --text "hello world") || fail "tkr-embed tokenize failed"

# the same items in the server's request forms
ITEMS='"hello world",
 {"text":"a cat sat on the mat","instruction":"Find the animal."},
 {"content":[{"type":"text","text":"a hat"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,'"$HAT_B64"'"}}]},
 {"image":["file://basn2c08.png","file://wuffs-hat.jpeg"]},
 "the quick brown fox jumps over the lazy dog and keeps on running far away"'
printf '{"model":"m","input":[%s]}' "$ITEMS" >"$WORK/all.json"

# every (response, CLI line indexes) pair to compare, checked in one go at the end
: >"$WORK/pairs"
expect_cli() { echo "$*" >>"$WORK/pairs"; }   # expect_cli RESPONSE_FILE LABEL CLI_INDEXES...

srv_log_start() {
  SRV_LOG="$WORK/$1.log"; shift
  "$BIN" serve -m "$MODEL" --host 127.0.0.1 --port 0 --image-dir "$IMGDIR" "$@" >"$SRV_LOG" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  PORT=""
  for i in $(seq 1 200); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$SRV_LOG" 2>/dev/null | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || fail "tkr-embed serve exited at start"
    sleep 0.05
  done
  [ -n "$PORT" ] || fail "tkr-embed serve did not listen"
  srv_wait_ready
}

srv_log_start real --max-tokens-per-item 4096 --max-image-tokens 1280
URL="http://127.0.0.1:$PORT/v1/embeddings"
JSON=(-H "Content-Type: application/json")

# all items in one request
http 200 "${JSON[@]}" --data-binary @"$WORK/all.json" "$URL"
cp "$BODY" "$WORK/all.out"
expect_cli "$WORK/all.out" one-request 0 1 2 3 4

# one item per request, and 24 clients at once whose items share batches
python3 - "$ITEMS" "$WORK" <<'PY'
import json, sys
items = json.loads("[" + sys.argv[1] + "]")
for i, it in enumerate(items):
    json.dump({"model": "m", "input": [it]}, open("%s/one%d.json" % (sys.argv[2], i), "w"))
for c in range(24):
    k = c % 5
    json.dump({"model": "m", "input": [items[k], items[(k + 1) % 5], items[k]]}, open("%s/mix%d.json" % (sys.argv[2], c), "w"))
PY
for i in 0 1 2 3 4; do
  http 200 "${JSON[@]}" --data-binary @"$WORK/one$i.json" "$URL"
  cp "$BODY" "$WORK/one$i.out"
  expect_cli "$WORK/one$i.out" "alone-$i" "$i"
done
MIX=()
for c in $(seq 0 23); do
  curl -s -o "$WORK/mix$c.out" "${JSON[@]}" --data-binary @"$WORK/mix$c.json" "$URL" &
  MIX+=("$!")
  PIDS+=("$!")
  k=$((c % 5))
  expect_cli "$WORK/mix$c.out" "mixed-client-$c" "$k" "$(((k + 1) % 5))" "$k"
done
wait "${MIX[@]}"
http 200 "http://127.0.0.1:$PORT/metrics"
check '[ "$(sed -n "s/^tkr_embedding_items_total //p" "$BODY")" -gt "$(sed -n "s/^tkr_batches_total //p" "$BODY")" ]' \
  "batches held several items"

# token ids of a text = that text
printf '{"model":"m","input":[%s]}' "$IDS" >"$WORK/ids.json"
http 200 "${JSON[@]}" --data-binary @"$WORK/ids.json" "$URL"
cp "$BODY" "$WORK/ids.out"
expect_cli "$WORK/ids.out" token-ids 0

# dimensions: the CLI vector's prefix, renormalised
http 200 "${JSON[@]}" -d '{"model":"m","input":"hello world","dimensions":5}' "$URL"
cp "$BODY" "$WORK/dims.out"
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?
check '[ $rc -eq 0 ]' "exit status $rc"

# truncation: the server's truncate = the CLI's --truncate at the same limit
srv_log_start trunc --max-tokens-per-item 30
URL="http://127.0.0.1:$PORT/v1/embeddings"
http 400 "${JSON[@]}" -d '{"model":"m","input":"the quick brown fox jumps over the lazy dog and keeps on running far away"}' "$URL"
check 'grep -q "over the limit of 30" "$BODY"' "over the limit: $(cat "$BODY")"
http 200 "${JSON[@]}" -d '{"model":"m","truncate":true,"input":"the quick brown fox jumps over the lazy dog and keeps on running far away"}' "$URL"
cp "$BODY" "$WORK/trunc.out"
kill -TERM "$SRV_PID"; wait "$SRV_PID"

# warm-up (on by default on a GPU only): --warmup runs one batch at the text budget before ready
# and logs it; the vectors after it are still the CLI's; a budget under one prompt per item runs
# fewer items of one id; --no-warmup wins over --warmup
srv_log_start warm --warmup --max-batch-tokens 2000
check 'grep -Eq "warm-up: 64 items of [0-9]+ prompt tokens in [0-9]+ ms" "$SRV_LOG"' "no warm-up line: $(grep warm "$SRV_LOG")"
http 200 "${JSON[@]}" -d '{"model":"m","input":"hello world"}' "http://127.0.0.1:$PORT/v1/embeddings"
cp "$BODY" "$WORK/warm.out"
expect_cli "$WORK/warm.out" warm-up 0
kill -TERM "$SRV_PID"; wait "$SRV_PID"
srv_log_start warm_small --warmup --max-batch-tokens 40
check 'grep -Eq "warm-up: [1-9] items? of [0-9]+ prompt tokens" "$SRV_LOG"' "small budget: $(grep warm "$SRV_LOG")"
kill -TERM "$SRV_PID"; wait "$SRV_PID"
srv_log_start warm_tiny --warmup --max-tokens-per-item 16
check 'grep -q "warm-up: skipped" "$SRV_LOG"' "template over the item limit: $(grep warm "$SRV_LOG")"
kill -TERM "$SRV_PID"; wait "$SRV_PID"
srv_log_start no_warm --warmup --no-warmup
check '! grep -q "warm-up" "$SRV_LOG"' "--no-warmup still warmed up"
kill -TERM "$SRV_PID"; wait "$SRV_PID"

# the comparisons: bit for bit, prompt tokens too
r=$(python3 - "$WORK" <<'PY'
import json, math, struct, sys
w = sys.argv[1]
cli = [json.loads(l) for l in open(w + "/cli.jsonl")]
f = lambda v: struct.pack("<%df" % len(v), *v)
bad = []
for line in open(w + "/pairs"):
    path, label, *idx = line.split()
    resp = json.load(open(path))
    idx = [int(i) for i in idx]
    same = len(resp["data"]) == len(idx) and all(
        f(d["embedding"]) == f(cli[i]["embedding"]) for d, i in zip(resp["data"], idx))
    if not same or resp["usage"]["prompt_tokens"] != sum(cli[i]["prompt_tokens"] for i in idx):
        bad.append(label)
d = json.load(open(w + "/dims.out"))["data"][0]["embedding"]
c = cli[0]["embedding"][:5]
n = math.sqrt(sum(x * x for x in c))
if len(d) != 5 or any(abs(a - b / n) > 1e-6 for a, b in zip(d, c)):
    bad.append("dimensions")
t, ct = json.load(open(w + "/trunc.out")), json.load(open(w + "/cli_trunc.json"))
if f(t["data"][0]["embedding"]) != f(ct["embedding"]) or not t["usage"]["prompt_tokens"] == ct["prompt_tokens"] == 30:
    bad.append("truncate")
print(" ".join(bad) if bad else "ok")
PY
)
check '[ "$r" = ok ]' "server differs from the CLI in: $r"
echo "server_model: all checks passed"

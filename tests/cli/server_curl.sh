#!/usr/bin/env bash
# The server process (fake engine) driven by curl: readiness, every route and error status,
# auth, the OpenAI response shape, vectors equal to the engine's own (float and base64),
# dimensions, images from data: URIs, file:// and http(s) (a local image host), limits, a client
# that gives up mid-request, SIGTERM with a request in flight, bad options, a failed load.
cd "$(dirname "$0")/../.." || exit 1
. tests/server/lib.sh

KEY=sk-curl-test
AUTH=(-H "Authorization: Bearer $KEY")
JSON=(-H "Content-Type: application/json")
IMGDIR="$WORK/images"
mkdir -p "$IMGDIR/sub"
cp "$DATA/images/photos/wuffs-hat.jpeg" "$IMGDIR/sub/hat.jpeg"
HAT_B64=$(base64 -w0 "$DATA/images/photos/wuffs-hat.jpeg")

# ---- readiness: /health is 503 while the model loads, 200 after
srv_start main --fake-load-ms 4000 --fake-dim 8 --api-key "$KEY" --image-dir "$IMGDIR" \
  --max-body-bytes 64K --max-items 16 --max-queue-items 64
http 503 "http://127.0.0.1:$PORT/health"
check '[ "$(py "j[\"status\"]" "$BODY")" = loading ]' "health says loading"
http 503 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"x"}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(error_shape)" = "server_error|None|model_loading" ]' "embeddings while loading: $(cat "$BODY")"
srv_wait_ready
http 200 "http://127.0.0.1:$PORT/health"

# ---- routes and auth
http 401 "http://127.0.0.1:$PORT/v1/models"
check '[ "$(error_shape)" = "authentication_error|None|invalid_api_key" ]' "401 shape"
http 401 -H "Authorization: Bearer nope" "http://127.0.0.1:$PORT/v1/models"
http 401 -H "Authorization: Bearer nope" "${JSON[@]}" -d '{"model":"m","input":"x"}' "http://127.0.0.1:$PORT/v1/embeddings"
http 401 "http://127.0.0.1:$PORT/metrics"
http 200 "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/models"
check '[ "$(py "j[\"data\"][0][\"id\"]" "$BODY")" = fake-embed ]' "model id"
http 404 "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/models/other-model"
check '[ "$(error_shape)" = "invalid_request_error|model|model_not_found" ]' "model 404"
http 404 "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/chat/completions"
check '[ "$(error_shape)" = "invalid_request_error|None|unknown_url" ]' "route 404"
http 405 "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/embeddings"

# ---- embeddings: shape, values, base64, dimensions, token ids
http 200 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"anything","input":["the cat sat","a dog"],"user":"u1"}' \
  "http://127.0.0.1:$PORT/v1/embeddings"
cp "$BODY" "$WORK/float.json"
check '[ "$(py "(j[\"object\"], [d[\"object\"] for d in j[\"data\"]], [d[\"index\"] for d in j[\"data\"]], len(j[\"data\"][0][\"embedding\"]), j[\"model\"])" "$BODY")" = "('"'"'list'"'"', ['"'"'embedding'"'"', '"'"'embedding'"'"'], [0, 1], 8, '"'"'fake-embed'"'"')" ]' \
  "response shape: $(head -c 300 "$BODY")"
check '[ "$(py "j[\"usage\"][\"prompt_tokens\"] == j[\"usage\"][\"total_tokens\"] == (13+3)+(13+2)" "$BODY")" = True ]' "usage counts"
"$FAKE" --embed-direct --fake-dim 8 "the cat sat" "a dog" >"$WORK/direct.json"
check '[ "$(python3 -c "
import json,struct,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
f=lambda v: struct.pack(\"<%df\" % len(v), *v)
print(all(f(d[\"embedding\"]) == f(r) for d, r in zip(a[\"data\"], b)))" "$WORK/float.json" "$WORK/direct.json")" = True ]' \
  "server vectors are bit-identical to the engine's own"
http 200 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":["the cat sat","a dog"],"encoding_format":"base64"}' \
  "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(python3 -c "
import json,struct,base64,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
print(all(base64.b64decode(d[\"embedding\"]) == struct.pack(\"<8f\", *r[\"embedding\"]) for d, r in zip(a[\"data\"], b[\"data\"])))" "$BODY" "$WORK/float.json")" = True ]' \
  "base64 is the little-endian float32 of the float response"
http 200 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"the cat sat","dimensions":3}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(py "len(j[\"data\"][0][\"embedding\"]) == 3 and abs(sum(x*x for x in j[\"data\"][0][\"embedding\"]) - 1) < 1e-6" "$BODY")" = True ]' \
  "dimensions: 3 values, unit length"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"x","dimensions":9}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(error_shape)" = "invalid_request_error|dimensions|None" ]' "dimensions out of range"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"x","encoding_format":"int8"}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(error_shape)" = "invalid_request_error|encoding_format|None" ]' "encoding_format"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":[]}' "http://127.0.0.1:$PORT/v1/embeddings"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m"' "http://127.0.0.1:$PORT/v1/embeddings"
http 400 "${AUTH[@]}" "${JSON[@]}" -d "{\"model\":\"m\",\"input\":[$(seq -s, 1 17 | sed 's/[0-9]*/"x"/g')]}" "http://127.0.0.1:$PORT/v1/embeddings"
check 'grep -q "17 items, over the limit of 16" "$BODY"' "items limit"
head -c 70000 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
http 413 "${AUTH[@]}" "${JSON[@]}" --data-binary @"$WORK/big.json" "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(error_shape)" = "invalid_request_error|None|request_too_large" ]' "413 shape"

# ---- images: the same bytes by data: URI, raw base64 and file:// give the same vector
printf '{"model":"m","input":[{"content":[{"type":"text","text":"a hat"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,%s"}}]},{"text":"a hat","image":"%s"},{"text":"a hat","image":"file://sub/hat.jpeg"}]}' \
  "$HAT_B64" "$HAT_B64" >"$WORK/mm.json"
http 200 "${AUTH[@]}" "${JSON[@]}" --data-binary @"$WORK/mm.json" "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(py "j[\"data\"][0][\"embedding\"] == j[\"data\"][1][\"embedding\"] == j[\"data\"][2][\"embedding\"]" "$BODY")" = True ]' \
  "data: URI, base64 and file:// give one vector"
cp "$BODY" "$WORK/mm_out.json"
http 200 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"a hat"}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(py "j[\"data\"][0][\"embedding\"] != json.load(open(\"$WORK/mm_out.json\"))[\"data\"][0][\"embedding\"]" "$BODY")" = True ]' \
  "the image changes the vector"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":[{"image":"file://../../etc/passwd"}]}' "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(error_shape)" = "invalid_request_error|input[0].image|None" ] && grep -q "not found in the server" "$BODY"' "file:// escape refused: $(cat "$BODY")"
http 400 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":[{"image":"http://127.0.0.1:9/x.png"}]}' "http://127.0.0.1:$PORT/v1/embeddings"
check 'grep -q "remote image URLs are disabled" "$BODY"' "remote off by default"

# ---- a client that gives up mid-request: the server stays healthy and counts a 499
curl -s -o /dev/null --max-time 0.3 "${AUTH[@]}" "${JSON[@]}" -d '{"model":"m","input":"x"}' \
  "http://127.0.0.1:$PORT/v1/embeddings" || true
http 200 "${AUTH[@]}" "http://127.0.0.1:$PORT/metrics"
check 'grep -q "^tkr_embedding_items_total [1-9]" "$BODY" && grep -q "^tkr_http_requests_total{route=\"/v1/embeddings\",code=\"200\"}" "$BODY"' "metrics count requests"
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?
check '[ $rc -eq 0 ]' "exit status $rc after SIGTERM"

# ---- SIGTERM with requests in flight: they complete, then exit 0; new connections refused
srv_start drain --fake-delay-ms 800
srv_wait_ready
curl -s -o "$WORK/inflight.json" -w '%{http_code}' -H "Content-Type: application/json" \
  -d '{"model":"m","input":["slow one","slow two"]}' "http://127.0.0.1:$PORT/v1/embeddings" >"$WORK/inflight.code" &
CURL_PID=$!
PIDS+=("$CURL_PID")
sleep 0.3
kill -TERM "$SRV_PID"
sleep 0.1
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/health")
check '[ "$code" = 000 ] || [ "$code" = 503 ]' "no new requests served while draining (got $code)"
wait "$CURL_PID"
wait "$SRV_PID"; rc=$?
check '[ "$(cat "$WORK/inflight.code")" = 200 ] && [ "$(py "len(j[\"data\"])" "$WORK/inflight.json")" = 2 ]' "in-flight request finished: $(cat "$WORK/inflight.code")"
check '[ $rc -eq 0 ]' "exit 0 after draining (got $rc)"
check 'grep -q "SIGTERM received" "$SRV_LOG" && grep -q "stopped" "$SRV_LOG"' "drain logged"

# ---- remote images through a local image host, allow-list 127.0.0.1
python3 tests/server/image_host.py "$DATA/images/pngsuite/basn2c08.png" >"$WORK/host.out" 2>&1 &
HOST_PID=$!
PIDS+=("$HOST_PID")
for i in $(seq 1 100); do grep -q '^port' "$WORK/host.out" && break; sleep 0.05; done
HP=$(sed -n 's/^port //p' "$WORK/host.out")
check '[ -n "$HP" ]' "image host started"
srv_start remote --allow-remote-images --remote-image-hosts 127.0.0.1 --remote-image-timeout 0.5 --max-image-bytes 1M
srv_wait_ready
PNG_B64=$(base64 -w0 "$DATA/images/pngsuite/basn2c08.png")
printf '{"model":"m","input":[{"image":"http://127.0.0.1:%s/img.png"},{"image":"http://127.0.0.1:%s/redirect-in"},{"image":"data:image/png;base64,%s"}]}' "$HP" "$HP" "$PNG_B64" >"$WORK/remote.json"
http 200 "${JSON[@]}" --data-binary @"$WORK/remote.json" "http://127.0.0.1:$PORT/v1/embeddings"
check '[ "$(py "j[\"data\"][0][\"embedding\"] == j[\"data\"][1][\"embedding\"] == j[\"data\"][2][\"embedding\"]" "$BODY")" = True ]' "fetched image = inline image"
for case in "redirect-out|allow-list" "missing|HTTP status 404" "slow|timed out" "big|larger than 1048576 bytes"; do
  path=${case%%|*}; want=${case#*|}
  http 400 "${JSON[@]}" -d "{\"model\":\"m\",\"input\":[{\"image\":\"http://127.0.0.1:$HP/$path\"}]}" "http://127.0.0.1:$PORT/v1/embeddings"
  check 'grep -q "$want" "$BODY"' "remote $path: want '$want' in $(cat "$BODY")"
done
http 400 "${JSON[@]}" -d "{\"model\":\"m\",\"input\":[{\"image\":\"http://localhost:$HP/img.png\"}]}" "http://127.0.0.1:$PORT/v1/embeddings"
check 'grep -q "not in the server'"'"'s remote image allow-list" "$BODY"' "host not allowed"
http 400 "${JSON[@]}" -d "{\"model\":\"m\",\"input\":[{\"image\":\"ftp://127.0.0.1:$HP/img.png\"}]}" "http://127.0.0.1:$PORT/v1/embeddings"
kill -TERM "$SRV_PID"; wait "$SRV_PID"

# ---- options and load failures
"$FAKE" --serve --port 0 >"$WORK/noargs.log" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q "model DIR is required" "$WORK/noargs.log"' "missing -m: rc $rc"
"$FAKE" --serve -m x --max-items 0 >"$WORK/bad.log" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--max-items: 0 is out of range" "$WORK/bad.log"' "bad value: rc $rc"
"$FAKE" --serve --help >"$WORK/help.log" 2>&1; rc=$?
check '[ $rc -eq 0 ] && grep -q -- "--max-queue-items" "$WORK/help.log"' "help"
"$FAKE" --serve -m /no/such/model --port 0 --fake-fail-load >"$WORK/fail.log" 2>&1; rc=$?
check '[ $rc -eq 1 ] && grep -q "cannot load the model: /no/such/model: fake load failure" "$WORK/fail.log"' "load failure: rc $rc"
echo "server_curl: all checks passed"

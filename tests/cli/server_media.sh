#!/usr/bin/env bash
# The server's video_url and document/file parts (docs/media.md) over the m1 fixture model:
# vectors bit-identical to `tkr-embed embed --video/--pdf`; a PDF gives one entry per page with
# "page" and "input_index"; frames count against the token limit before any decoding; bad
# media get a 400 naming the part.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
tmp=$(mktemp -d)
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
make_model_dir m1-flat-f32 "$tmp/m1" || exit 1
FX="$ROOT/tests/fixtures/media"
python3 "$ROOT/tests/lib/make_pdf.py" doc "$tmp/doc.pdf" "$TKR_TEST_DATA/images/photos/libjpeg-turbo-testorig.jpg"
python3 "$ROOT/tests/lib/make_pdf.py" encrypted "$tmp/enc.pdf"
"$BIN" embed -m "$tmp/m1" --video "$FX/h264.mp4" --text "clip" > "$tmp/cli_video.json" || exit 1
"$BIN" embed -m "$tmp/m1" --video "$FX/odd.webm" --num-frames 5 > "$tmp/cli_video5.json" || exit 1
"$BIN" embed -m "$tmp/m1" --pdf "$tmp/doc.pdf" --pages 3,1 --text "page" > "$tmp/cli_pdf.jsonl" || exit 1

"$BIN" serve -m "$tmp/m1" --host 127.0.0.1 --port 0 --max-tokens-per-item 6000 >"$tmp/log" 2>&1 &
SRV=$!
for i in $(seq 1 200); do
  PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/log" | head -n 1)
  [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "${PORT:-}" ] || { echo "FAIL server did not start"; cat "$tmp/log"; exit 1; }

python3 - "$PORT" "$tmp" "$FX" <<'PY'
import base64, json, sys, time, urllib.request, urllib.error
port, tmp, fx = sys.argv[1:4]
url = "http://127.0.0.1:%s/v1/embeddings" % port
def b64(path, mime):
    return "data:%s;base64,%s" % (mime, base64.b64encode(open(path, "rb").read()).decode())
def post(body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    for _ in range(100):
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except urllib.error.URLError:
            time.sleep(0.1)
    raise SystemExit("server unreachable")
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
cli_v = json.load(open(tmp + "/cli_video.json"))["embedding"]
cli_v5 = json.load(open(tmp + "/cli_video5.json"))["embedding"]
cli_p = [json.loads(l) for l in open(tmp + "/cli_pdf.jsonl")]
mp4 = b64(fx + "/h264.mp4", "video/mp4")
st, r = post({"model": "m", "input": [
    {"content": [{"type": "video_url", "video_url": {"url": mp4}}, {"type": "text", "text": "clip"}]},
    {"content": [{"type": "video_url", "video_url": {"url": b64(fx + "/odd.webm", "video/webm"), "num_frames": 5}}]},
    "hello"]})
check(st == 200 and r["data"][0]["embedding"] == cli_v, "video_url item = tkr-embed embed --video (bit for bit)")
check(st == 200 and r["data"][1]["embedding"] == cli_v5, "video_url with num_frames = the CLI's")
st, r = post({"model": "m", "input": ["before", {"content": [
    {"type": "document", "document": {"url": b64(tmp + "/doc.pdf", "application/pdf"), "pages": "3,1"}},
    {"type": "text", "text": "page"}]}, "after"]})
ok = st == 200 and [(d["index"], d.get("input_index"), d.get("page")) for d in r["data"]] == \
     [(0, None, None), (1, 1, 3), (2, 1, 1), (3, None, None)]
check(ok, "document part: one entry per page in order, with page and input_index: %s" %
      ([(d["index"], d.get("input_index"), d.get("page")) for d in r.get("data", [])]))
check(ok and [r["data"][1]["embedding"], r["data"][2]["embedding"]] == [c["embedding"] for c in cli_p],
      "PDF page vectors = tkr-embed embed --pdf (bit for bit)")
st, r = post({"model": "m", "input": [{"content": [
    {"type": "file", "file": {"file_data": b64(tmp + "/doc.pdf", "application/pdf"), "pages": "2"}}]}]})
check(st == 200 and len(r["data"]) == 1 and r["data"][0]["page"] == 2, "OpenAI-style file part with file_data")
st, r = post({"model": "m", "input": [{"content": [{"type": "video_url", "video_url": {"url": mp4, "num_frames": 40}}]}]})
check(st == 400 and "over the limit of 6000" in r["error"]["message"],
      "40 frames over 6000 tokens: 400 before decoding (%s)" % r.get("error", {}).get("message", "")[:70])
st, r = post({"model": "m", "input": [{"content": [{"type": "video_url", "video_url": {"url": mp4, "num_frames": 65}}]}]})
check(st == 400 and "limit of 64" in r["error"]["message"], "65 frames over --max-video-frames 64: 400")
st, r = post({"model": "m", "input": [{"content": [{"type": "document", "document": {"url": b64(tmp + "/enc.pdf", "application/pdf")}}]}]})
check(st == 400 and "encrypted" in r["error"]["message"] and r["error"]["param"] == "input[0].content[0]", "encrypted PDF: 400 naming the part")
st, r = post({"model": "m", "input": [{"content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(b"junk" * 100).decode()}}]}]})
check(st == 400 and "video" in r["error"]["message"], "garbage video: 400 (%s)" % r.get("error", {}).get("message", "")[:80])
st, r = post({"model": "m", "input": [{"content": [{"type": "video_url", "video_url": {"url": "/etc/passwd"}}]}]})
check(st == 400 and "data: URI" in r["error"]["message"], "a local path is refused")
print("server media: %d failed" % fails)
sys.exit(1 if fails else 0)
PY

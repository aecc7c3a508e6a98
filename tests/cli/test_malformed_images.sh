#!/usr/bin/env bash
# Every malformed image of the shared data in one JSONL batch, between good items: each bad image
# is an error for its own line only, the good lines are embedded, nothing crashes or hangs.
# Files Pillow itself opens (pil_reference.json has no pil_error for them) may be embedded.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_model_dir m1-flat-f32 "$tmp/m1" || exit 1
python3 - "$TKR_TEST_DATA" "$tmp/in.jsonl" <<'PY'
import json, os, sys
data, out = sys.argv[1:3]
mal = sorted(f for f in os.listdir(data + "/images/malformed") if not f.endswith((".md", ".txt")))
assert len(mal) >= 40, "expected the 45 malformed images, found %d" % len(mal)
with open(out, "w") as f:
    f.write(json.dumps({"text": "good first"}) + "\n")
    for m in mal:
        f.write(json.dumps({"text": "x", "images": [data + "/images/malformed/" + m]}) + "\n")
    f.write(json.dumps({"text": "good last"}) + "\n")
PY
timeout 300 "$TKR_BUILD/tkr-embed" embed -m "$tmp/m1" --input "$tmp/in.jsonl" > "$tmp/out.jsonl" 2> "$tmp/err.txt"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then echo "tkr-embed exited with $rc (crash or hang)"; cat "$tmp/err.txt"; exit 1; fi
python3 - "$tmp/in.jsonl" "$tmp/out.jsonl" "$ROOT/tests/fixtures/images/pil_reference.json" <<'PY'
import json, sys
inp = [json.loads(l) for l in open(sys.argv[1])]
out = [json.loads(l) for l in open(sys.argv[2])]
pil = {e["file"]: e for e in json.load(open(sys.argv[3]))}
assert len(out) == len(inp), (len(out), len(inp))
assert [o["index"] for o in out] == list(range(len(inp)))
assert "embedding" in out[0] and "embedding" in out[-1], "good items must be embedded"
errors = 0
for i, o in enumerate(out[1:-1], 1):
    name = "images/malformed/" + inp[i]["images"][0].rsplit("/", 1)[1]
    if "error" in o:
        assert o["error"]["message"], o
        errors += 1
    else:
        # embedded: only where Pillow decodes the file too, or the one known difference (libpng
        # accepts empty ancillary chunks that Pillow's own chunk reader refuses; the pixels are fine)
        known = {"images/malformed/libpng-crasher-empty_ancillary_chunks.png"}
        assert name in known or (name in pil and "pil_error" not in pil[name]), "decoded a file Pillow rejects: " + name
print("%d malformed files: %d rejected with a message, %d decoded (as Pillow does)" % (len(out) - 2, errors, len(out) - 2 - errors))
PY

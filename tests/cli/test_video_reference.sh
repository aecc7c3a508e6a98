#!/usr/bin/env bash
# Video items against HF transformers (tests/fixtures/media/m1-video.jsonl, made by
# tools/gen_video_reference.py on the accelerator machine from the frames `tkr-embed render`
# decodes from tests/fixtures/media/*): each video item of the fixture model m1 must reach
# cos >= 0.99999 with the same prompt token count. Items: mp4/h264, webm/vp9 at an odd size,
# mkv with variable frame rate, a 200-frame clip sampled to 64 frames (18072 tokens), and the
# fixed-count mode.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_model_dir m1-flat-f32 "$tmp/m1"
python3 - "$TKR_BUILD/tkr-embed" "$tmp/m1" "$ROOT/tests/fixtures/media" <<'PY'
import json, math, subprocess, sys
bin_, model, fx = sys.argv[1:4]
bad = 0
for line in open(fx + "/m1-video.jsonl"):
    ref = json.loads(line)
    name, opts = ref["name"], []
    if "#n" in name:
        name, opts = name.split("#")[0], ["--num-frames", "9"]
    cmd = [bin_, "embed", "-m", model, "--video", fx + "/" + name] + opts
    if ref["text"]:
        cmd += ["--text", ref["text"]]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    e, r = out["embedding"], ref["embedding"]
    cos = sum(a * b for a, b in zip(e, r)) / math.sqrt(sum(a * a for a in e) * sum(b * b for b in r))
    ok = cos >= 0.99999 and out["prompt_tokens"] == ref["prompt_tokens"]
    bad += not ok
    print("%s %s: %d frames, tokens %d/%d, cos %.9f" % ("ok  " if ok else "FAIL", ref["name"],
          ref["n_frames"], out["prompt_tokens"], ref["prompt_tokens"], cos))
sys.exit(1 if bad else 0)
PY

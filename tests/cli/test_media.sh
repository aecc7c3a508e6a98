#!/usr/bin/env bash
# Video and PDF items end to end (docs/media.md), on test files made here with ffmpeg's test
# sources and tests/lib/make_pdf.py:
#  - containers/codecs (mp4/h264, webm/vp9 at an odd size, mkv/mpeg4, gif, variable frame rate,
#    a long clip capped by max_frames, fixed-count mode with cyclic repeats): `tkr-embed render`
#    picks the frames the MTEB wrapper's rule gives for ffprobe's packet count and duration
#    (tests/lib/video_expect.py, independent of the C code);
#  - the RGB of a rendered frame equals the ffmpeg CLI's decode with the documented sws flags;
#  - a video item's vector equals the vector of its rendered PNG frames given as images;
#  - a PDF (text, vector art, a JPEG photo, A4, /Rotate) gives one vector per page, each
#    bit-identical to the vector of the PNG `render` writes for that page; ranges pick pages;
#  - malformed inputs (truncated/garbage/audio-only video; truncated, encrypted, 20000-page,
#    huge-page, exponential-form PDFs) fail with a clear message and no hang.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { echo "FATAL: ffmpeg/ffprobe missing (scripts/install-deps.sh)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_model_dir m1-flat-f32 "$tmp/m1" || exit 1
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
ff() { ffmpeg -nostdin -loglevel error -y "$@"; }

# ---- test videos ----
V=$tmp/v; mkdir -p "$V"
# mp4/h264, webm/vp9 at 201x143 and a VFR mkv are the committed fixtures (tests/fixtures/media)
cp "$ROOT/tests/fixtures/media/h264.mp4" "$ROOT/tests/fixtures/media/odd.webm" "$ROOT/tests/fixtures/media/vfr.mkv" "$V/"
ff -f lavfi -i mandelbrot=size=160x120:rate=24 -t 2 -c:v mpeg4 "$V/mpeg4.mkv"
ff -f lavfi -i testsrc=size=128x96:rate=10 -t 5 "$V/anim.gif"
# vfr.mkv: 20 frames 40 ms apart, then 15 frames 100 ms apart
ff -f lavfi -i testsrc=size=96x64:rate=5 -t 40 -c:v libx264 "$V/long.mp4"      # 200 frames: max_frames caps
ff -f lavfi -i testsrc=size=96x64:rate=5 -frames:v 5 -c:v libx264 "$V/short.mp4" # 5 frames

check_indices() {  # FILE [sampling options...]
  local f=$1; shift
  local want got out
  want=$(python3 "$ROOT/tests/lib/video_expect.py" "$f" "$@") || { bad "ffprobe $f"; return; }
  out=$tmp/r_$(basename "$f")_$#; rm -rf "$out"; mkdir -p "$out"
  got=$("$BIN" render --video "$f" "$@" -o "$out" 2>"$out.err" | sed -n 's/.*"frame": \([0-9]*\).*/\1/p' | tr '\n' ' ' | sed 's/ $//')
  if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "indices $(basename "$f") $* -> [$got]"
  else bad "indices $(basename "$f") $*: want [$want] got [$got] $(cat "$out.err")"; fi
}
check_indices "$V/h264.mp4"
check_indices "$V/odd.webm"
check_indices "$V/mpeg4.mkv"
check_indices "$V/anim.gif"
check_indices "$V/vfr.mkv"
check_indices "$V/vfr.mkv" --fps 5
check_indices "$V/long.mp4"
check_indices "$V/long.mp4" --max-frames 16 --fps 1
check_indices "$V/h264.mp4" --num-frames 7
check_indices "$V/short.mp4" --num-frames 8
check_indices "$V/short.mp4" --fps 30

# the RGB of frames equals the ffmpeg CLI's with the documented swscale flags
for spec in "h264.mp4 24" "odd.webm 36" "anim.gif 20"; do
  set -- $spec
  out=$tmp/px_$1; mkdir -p "$out"
  "$BIN" render --video "$V/$1" -o "$out" >/dev/null 2>&1 || true   # the default sample holds the frame
  png=$(printf '%s/frame_%06d.png' "$out" "$2")
  ff -i "$V/$1" -vf "select=eq(n\,$2)" -fps_mode passthrough -frames:v 1 \
     -sws_flags bicubic+accurate_rnd+full_chroma_int+bitexact -pix_fmt rgb24 -f rawvideo "$out/cli.rgb"
  ff -i "$png" -pix_fmt rgb24 -f rawvideo "$out/ours.rgb"
  if [ -s "$out/cli.rgb" ] && cmp -s "$out/cli.rgb" "$out/ours.rgb"; then ok "pixels $1 frame $2 = ffmpeg CLI"
  else bad "pixels $1 frame $2 differ from the ffmpeg CLI"; fi
done

# a video item = its rendered frames as images, bit for bit (vision chunking included)
for f in h264.mp4 odd.webm; do
  out=$tmp/emb_$f; mkdir -p "$out"
  files=$("$BIN" render --video "$V/$f" -o "$out" 2>/dev/null | sed -n 's/.*"file": "\([^"]*\)".*/\1/p')
  imgs=$(for x in $files; do printf '"%s",' "$out/$x"; done | sed 's/,$//')
  a=$("$BIN" embed -m "$tmp/m1" --video "$V/$f" --text "a clip" | sed 's/, "prompt_tokens".*//')
  b=$(printf '{"images": [%s], "text": "a clip"}\n' "$imgs" | "$BIN" embed -m "$tmp/m1" --input - | sed 's/^{"index": 0, /{/; s/, "prompt_tokens".*//')
  c=$(printf '{"video": "%s", "text": "a clip"}\n' "$V/$f" | "$BIN" embed -m "$tmp/m1" --input - | sed 's/^{"index": 0, /{/; s/, "prompt_tokens".*//')
  if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ]; then ok "video item = its $(echo $files | wc -w) frames as images ($f)"
  else bad "video item vector differs from its frames' ($f)"; fi
done

# ---- PDFs ----
P=$tmp/p; mkdir -p "$P"
JPEG="$TKR_TEST_DATA/images/photos/libjpeg-turbo-testorig.jpg"
for k in doc truncated encrypted pagebomb hugepage fanout notpdf; do python3 "$ROOT/tests/lib/make_pdf.py" $k "$P/$k.pdf" "$JPEG"; done
mkdir -p "$P/r"
man=$("$BIN" render --pdf "$P/doc.pdf" -o "$P/r" 2>&1)
[ "$(echo "$man" | sed -n 's/.*"page": \([0-9]*\), "file".*"width": \([0-9]*\), "height": \([0-9]*\).*/\1:\2x\3/p' | tr '\n' ' ')" = "1:859x1111 2:836x1181 3:1111x859 " ] \
  && ok "PDF pages rendered at 101 dpi (Letter, A4, rotated)" || bad "PDF render: $man"
emb=$("$BIN" embed -m "$tmp/m1" --pdf "$P/doc.pdf" --text "page")
[ "$(echo "$emb" | sed -n 's/^{"page": \([0-9]*\),.*/\1/p' | tr '\n' ' ')" = "1 2 3 " ] && ok "one vector per page, in order" || bad "PDF pages: $(echo "$emb" | cut -c1-200)"
for p in 1 2 3; do
  a=$(echo "$emb" | sed -n "s/^{\"page\": $p, \(.*\), \"prompt_tokens\".*/\1/p")
  b=$("$BIN" embed -m "$tmp/m1" --image "$P/r/page_000$p.png" --text "page" | sed 's/^{\(.*\), "prompt_tokens".*/\1/')
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "page $p vector = its PNG's vector, bit for bit" || bad "page $p vector differs from its PNG"
done
got=$(printf '{"pdf": "%s", "pages": "3,1"}\n{"text": "after"}\n' "$P/doc.pdf" | "$BIN" embed -m "$tmp/m1" --input - | sed -n 's/^{"index": \([0-9]*\)\(, "page": \([0-9]*\)\)\?.*/\1:\3/p' | tr '\n' ' ')
[ "$got" = "0:3 0:1 1: " ] && ok "JSONL page range 3,1 -> pages 3, 1, then the next line" || bad "JSONL pdf lines: [$got]"

expect_fail() {  # NAME PATTERN command...
  local name=$1 pat=$2; shift 2
  local t0=$SECONDS out rc
  out=$(timeout 60 "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "$pat" <<<"$out"; then ok "$name -> $(grep -o "$pat.*" <<<"$out" | head -1 | cut -c1-90) ($((SECONDS - t0)) s)"
  else bad "$name: rc=$rc: $out"; fi
}
mkdir -p "$P/x"
expect_fail "truncated PDF" "PDF: " "$BIN" render --pdf "$P/truncated.pdf" -o "$P/x"
expect_fail "encrypted PDF" "encrypted" "$BIN" render --pdf "$P/encrypted.pdf" -o "$P/x"
expect_fail "20000-page PDF" "more than the limit of 64" "$BIN" render --pdf "$P/pagebomb.pdf" -o "$P/x"
"$BIN" render --pdf "$P/pagebomb.pdf" --pages 19999- -o "$P/x" >/dev/null 2>&1 && [ -f "$P/x/page_19999.png" ] && [ -f "$P/x/page_20000.png" ] \
  && ok "20000-page PDF with a range renders its last pages" || bad "pagebomb with a range"
expect_fail "page past the end" "past the last page" "$BIN" render --pdf "$P/doc.pdf" --pages 2-4 -o "$P/x"
expect_fail "bad range" "bad page range" "$BIN" render --pdf "$P/doc.pdf" --pages 3-1 -o "$P/x"
expect_fail "200-inch page" "over the limit of" "$BIN" render --pdf "$P/hugepage.pdf" -o "$P/x"
expect_fail "2^40 form draws" "took longer than\|CPU" "$BIN" render --pdf "$P/fanout.pdf" --timeout 3 -o "$P/x"
expect_fail "not a PDF" "not a PDF" "$BIN" render --pdf "$P/notpdf.pdf" -o "$P/x"
expect_fail "PDF in JSONL, error line" '"error"' bash -c "printf '{\"pdf\": \"$P/encrypted.pdf\"}\n' | '$BIN' embed -m '$tmp/m1' --input -"

head -c 20000 "$V/h264.mp4" > "$V/trunc.mp4"
head -c 30000 /dev/urandom > "$V/garbage.mp4"
ff -f lavfi -i sine=frequency=440 -t 1 "$V/audio.mka"
expect_fail "garbage video" "video: " "$BIN" render --video "$V/garbage.mp4" -o "$P/x"
expect_fail "audio-only file" "no video stream" "$BIN" render --video "$V/audio.mka" -o "$P/x"
expect_fail "text as video" "video: " "$BIN" render --video "$P/notpdf.pdf" -o "$P/x"
expect_fail "over the frame cap" "more than the limit of 256" "$BIN" render --video "$V/h264.mp4" --num-frames 300 -o "$P/x"
# a truncated mp4 (moov at the end is lost): a clear error, or the frames that remain
out=$(timeout 60 "$BIN" render --video "$V/trunc.mp4" -o "$P/x" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "video: " <<<"$out"; then ok "truncated video -> $(grep -o 'video: .*' <<<"$out" | head -1)"
elif [ $rc -eq 0 ]; then ok "truncated video -> its decodable frames"
else bad "truncated video: rc=$rc $out"; fi
# an mkv cut mid-stream keeps its packets: undecodable trailing frames are dropped, as the wrapper does
ff -f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx264 -g 10 "$V/cut.mkv"
head -c $(( $(stat -c %s "$V/cut.mkv") * 2 / 3 )) "$V/cut.mkv" > "$V/cut2.mkv"
out=$(timeout 60 "$BIN" render --video "$V/cut2.mkv" -o "$P/x" 2>&1); rc=$?
[ $rc -eq 0 ] && ok "mkv cut at 2/3: $(tail -1 <<<"$out")" || bad "cut mkv: $out"

echo "media: $fails failed"
[ "$fails" -eq 0 ]

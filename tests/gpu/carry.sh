#!/usr/bin/env bash
# tests/gpu/carry.sh DEST - packs what tests/gpu/run.sh needs on the accelerator machine, which
# has nvcc and a GPU but no internet, no shared data folder and maybe no -dev packages:
#   DEST/src.tgz      this working tree (tracked files; fixture safetensors left out: the
#                     checkout the tool sends already has them)
#   DEST/data/        the tokenizer files and photos the fixtures use (TKR_TEST_DATA)
#   DEST/sys.tgz      headers and shared libraries of the build dependencies (jansson,
#                     utf8proc, png, webp, jpeg, microhttpd, curl and what they pull in)
#   DEST/prebuilt.tgz binaries built here (RPATH /tmp/w/sys/lib), used if the build there fails
# (DT_RPATH, not RUNPATH: it also finds libcurl's own dependencies). Built with VIDEO=0 PDF=0: FFmpeg,
# Poppler and their dependencies would not fit the device tool's 64 MiB; the GPU checks need neither.
# and prints the command to give the device tool (carry DEST; it unpacks into /tmp/w).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:?usage: carry.sh DEST}
DATA=${TKR_TEST_DATA:-$ROOT/../shared/data}
cd "$ROOT"
rm -rf "$DEST"
mkdir -p "$DEST/data/tokenizers/qwen2" "$DEST/data/images/photos"
cp "$DATA"/tokenizers/qwen2/{vocab.json,merges.txt} "$DEST/data/tokenizers/qwen2/"
python3 - "$DATA" "$DEST/data" <<'PY'
import json, shutil, sys, glob
src, dst = sys.argv[1:3]
for f in glob.glob("tests/fixtures/expected/*.jsonl"):
    for line in open(f):
        for p in json.loads(line).get("images", []):
            if not p.startswith("fixture:"):
                shutil.copy(src + "/" + p, dst + "/" + p)
PY
git ls-files -co --exclude-standard | grep -v '\.safetensors$' | tar czf "$DEST/src.tgz" -T -
S=$(mktemp -d)
mkdir -p "$S/include" "$S/lib"
for h in jansson.h jansson_config.h utf8proc.h png.h pngconf.h pnglibconf.h jpeglib.h jerror.h jmorecfg.h \
         microhttpd.h; do [ -f "/usr/include/$h" ] && cp "/usr/include/$h" "$S/include/" || true; done
cp /usr/include/x86_64-linux-gnu/jconfig.h "$S/include/"
cp -r /usr/include/webp "$S/include/"
cp -r /usr/include/x86_64-linux-gnu/curl "$S/include/"
make -s -j2 CUDA=1 VIDEO=0 PDF=0 BUILD=build-cuda-dev LDLIBS="-Wl,--disable-new-dtags,-rpath,/tmp/w/sys/lib" build-cuda-dev/tkr-embed \
  build-cuda-dev/bench/bench_gpu build-cuda-dev/bench/bench_server build-cuda-dev/tools/mkmodel
ldd build-cuda-dev/tkr-embed | awk '$3 ~ /^\// {print $3}' |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64|libgcc_s|libstdc\+\+)\.so|/cuda' |
  while read -r l; do cp -L "$l" "$S/lib/"; done
for n in jansson utf8proc png16 webp jpeg microhttpd curl; do
  f=$(ls "$S/lib/lib$n.so."* 2>/dev/null | head -1) || true
  [ -n "$f" ] && ln -sf "$(basename "$f")" "$S/lib/lib$n.so" || true
done
tar czf "$DEST/sys.tgz" -C "$S" include lib
rm -rf "$S"
tar czf "$DEST/prebuilt.tgz" build-cuda-dev/tkr-embed build-cuda-dev/bench/bench_gpu build-cuda-dev/bench/bench_server \
  build-cuda-dev/tools/mkmodel
du -sh "$DEST"/*
REL=${DEST#"$(cd "$DEST/../.." && pwd)/"}
cat <<CMD
device command (carry "$REL"):
C=\$PWD/$REL; M=\$PWD; W=/tmp/w; rm -rf \$W; mkdir -p \$W/sys && cd \$W && tar xzf \$C/src.tgz && tar xzf \$C/sys.tgz -C sys && tar xzf \$C/prebuilt.tgz && for f in \$(cd \$M && ls tests/fixtures/models/*/*.safetensors); do cp \$M/\$f \$f; done; export TKR_TEST_DATA=\$C/data TKR_GPU_FALLBACK_BUILD=\$W/build-cuda-dev CFLAGS=-I\$W/sys/include LDLIBS="-L\$W/sys/lib -Wl,--disable-new-dtags,-rpath,\$W/sys/lib -Wl,-rpath-link,\$W/sys/lib"; bash tests/gpu/run.sh
CMD

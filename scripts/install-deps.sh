#!/usr/bin/env bash
# Installs what tkr-embed needs to build and test on Debian/Ubuntu (run as root or with sudo).
#   libjansson    JSON (config.json, safetensors headers, tokenizer.json, requests)
#   libutf8proc   Unicode NFC and character categories for the tokenizer
#   libjpeg-turbo, libpng, libwebp   image decoding
#   libcurl       the server's optional http(s) image fetching (--allow-remote-images)
#   libavformat/libavcodec/libswscale/libavutil   video items (FFmpeg: every container and codec
#                 Debian's FFmpeg reads, exact swscale conversion to RGB24)
#   libpoppler-glib, libcairo2   PDF items (make PDF=0 builds without them; Poppler is GPL)
#   ffmpeg        the video tests make their test videos with ffmpeg's test sources
#   curl, nodejs/npm  used by the server tests (curl and the official openai npm client)
#   chromium      the playground (/ui) test drives Debian's Chromium with playwright-core
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential pkg-config ca-certificates \
  libjansson-dev libutf8proc-dev libjpeg-dev libpng-dev libwebp-dev libcurl4-openssl-dev \
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libpoppler-glib-dev libcairo2-dev ffmpeg \
  curl python3 chromium >/dev/null
# the server tests drive the server with the official openai npm client: Node.js 18 or newer
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
echo "install-deps: done"

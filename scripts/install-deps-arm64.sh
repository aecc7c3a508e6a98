#!/usr/bin/env bash
# Installs what the ARM64 leg of CI needs (tests/arm64/run.sh) on Debian x86-64, as root or with sudo:
#   gcc-aarch64-linux-gnu   the cross compiler
#   qemu-user               qemu-aarch64, to run the arm64 binaries (user mode, no -L: see docs/arm64.md)
#   the :arm64 -dev packages of scripts/install-deps.sh's libraries (multiarch), and libc6:arm64
# Idempotent: skips apt when everything is already there.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(gcc-aarch64-linux-gnu qemu-user libc6:arm64 libc6-dev:arm64
      libjansson-dev:arm64 libutf8proc-dev:arm64 libjpeg-dev:arm64 libpng-dev:arm64 libwebp-dev:arm64
      libmicrohttpd-dev:arm64 libcurl4-openssl-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then echo "install-deps-arm64: already installed"; exit 0; fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then $SUDO dpkg --add-architecture arm64; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps-arm64: done"

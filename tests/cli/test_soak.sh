#!/usr/bin/env bash
# test_soak.sh - the CI variant of the soak test (issue 10): 32 clients on loopback for 60 s (10 s
# in the ASan build) against the fake-engine server, mixing valid text and image items with
# invalid JSON, oversized bodies, bad images, clients that disconnect mid-body or while queued,
# and slow readers (tests/server/soak.py). Only the expected statuses may appear; RSS,
# descriptors and threads stay flat after warm-up; /health answers at the end.
# The long version: TKR_SOAK_SECONDS=600 bash tests/cli/test_soak.sh (or soak.py against a
# `tkr-embed serve` with a real model).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/server/lib.sh
secs=${TKR_SOAK_SECONDS:-60}
# ASan keeps freed memory in a quarantine (256 MB by default) that fills over the run, which
# would look like a ratchet: the sanitizer build runs the server with a 1 MB quarantine
case "$B" in *san*) secs=${TKR_SOAK_SECONDS:-10}; export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=1" ;; esac
srv_start soak --fake-dim 8 --fake-delay-ms 5 --quiet --max-body-bytes 1M --max-items 16 --max-queue-items 64
srv_wait_ready
python3 tests/server/soak.py "$PORT" "$SRV_PID" "$secs" 32 "$DATA/images/seeds/afl-not_kitty.png" || fail "soak"
echo "test_soak: all checks passed"

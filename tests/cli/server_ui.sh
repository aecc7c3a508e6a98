#!/usr/bin/env bash
# The /ui playground in Debian's Chromium (playwright-core, exact version in
# tests/ui/package-lock.json) against a real server on the m1 fixture model: loads, embeds texts,
# a photo and a malformed image, shows a sensible similarity matrix and ranking, renders errors.
# The screenshot is kept in tests/out/ui-playground.png for a person to look at.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tkr-embed"
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
command -v node >/dev/null || { echo "FAIL node is required"; exit 1; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "FAIL $CHROMIUM missing (scripts/install-deps.sh installs Debian's chromium)"; exit 1; }
if [ "$(node -p "require('$ROOT/tests/ui/node_modules/playwright-core/package.json').version" 2>/dev/null)" != \
     "$(node -p "require('$ROOT/tests/ui/package.json').dependencies['playwright-core']")" ]; then
  (cd "$ROOT/tests/ui" && npm ci --no-audit --no-fund --loglevel=error) >"$tmp/npm.log" 2>&1 ||
    { cat "$tmp/npm.log"; echo "FAIL npm ci in tests/ui"; exit 1; }
fi
make_model_dir m1-flat-f32 "$tmp/m1"
KEY=sk-ui-test
"$BIN" serve -m "$tmp/m1" --host 127.0.0.1 --port 0 --api-key "$KEY" --threads 1 >"$tmp/srv.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/srv.log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/srv.log"; echo "FAIL the server did not start"; exit 1; }
mkdir -p "$ROOT/tests/out"
shot="$ROOT/tests/out/ui-playground-$(basename "$TKR_BUILD").png"
if ! CHROMIUM="$CHROMIUM" node "$ROOT/tests/ui/ui_test.mjs" "$port" "$KEY" \
     "$TKR_TEST_DATA/images/photos/skimage-chelsea.png" \
     "$TKR_TEST_DATA/images/malformed/pngsuite-corrupt-xcrn0g04.png" "$shot"; then
  tail -20 "$tmp/srv.log"; echo "FAIL playground checks"; exit 1
fi
# --no-ui turns the page off (404)
kill "$pid"; wait "$pid" 2>/dev/null
"$BIN" serve -m "$tmp/m1" --host 127.0.0.1 --port 0 --no-ui --threads 1 >"$tmp/srv2.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/srv2.log" | head -n 1)
  [ -n "$port" ] && break; sleep 0.05
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ui")
[ "$code" = 404 ] || { echo "FAIL --no-ui: /ui answered $code"; exit 1; }
echo "ok   server_ui"

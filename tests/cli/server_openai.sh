#!/usr/bin/env bash
# The server process (fake engine) driven by the official openai npm client, installed here from
# tests/server/package-lock.json (exact version): default base64 decoding, float, dimensions,
# token ids, multimodal items, models, typed errors (401/400/404/429), 64 concurrent requests.
cd "$(dirname "$0")/../.." || exit 1
. tests/server/lib.sh

command -v node >/dev/null || fail "node (20+) is required for the openai client test"
command -v npm >/dev/null || fail "npm is required for the openai client test"
want=$(python3 -c "import json; print(json.load(open('tests/server/package.json'))['dependencies']['openai'])")
have=$(node -p "require('./tests/server/node_modules/openai/package.json').version" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  (cd tests/server && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
    { cat "$WORK/npm.log"; fail "npm ci failed in tests/server (the npm registry must be reachable once)"; }
fi

KEY=sk-openai-test
"$FAKE" --embed-direct --fake-dim 8 "the cat sat" "a dog" "hello world" >"$WORK/direct.json"
srv_start small --api-key "$KEY" --fake-delay-ms 100 --max-items 4 --max-queue-items 8
SMALL_PORT=$PORT
srv_wait_ready
srv_start main --api-key "$KEY" --fake-dim 8
srv_wait_ready
node tests/server/openai_client.mjs "$PORT" "$KEY" "$WORK/direct.json" \
  "$DATA/images/pngsuite/basn2c08.png" "$SMALL_PORT" || fail "openai client checks"
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?
check '[ $rc -eq 0 ]' "main server exit status $rc"

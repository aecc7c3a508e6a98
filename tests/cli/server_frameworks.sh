#!/usr/bin/env bash
# The JS AI frameworks with their default settings against the server (fake engine):
# LangChain.js OpenAIEmbeddings, LlamaIndex.TS OpenAIEmbedding, the Vercel AI SDK's
# OpenAI-compatible provider (embed / embedMany). Exact versions in tests/frameworks/package.json.
cd "$(dirname "$0")/../.." || exit 1
. tests/server/lib.sh

command -v node >/dev/null || fail "node (20+) is required for the framework tests"
command -v npm >/dev/null || fail "npm is required for the framework tests"
# installed once from package-lock.json (exact versions)
if ! node -e "
  const p = require('./tests/frameworks/package.json').dependencies;
  for (const [n, v] of Object.entries(p))
    if (require('./tests/frameworks/node_modules/' + n + '/package.json').version !== v) process.exit(1);" 2>/dev/null; then
  (cd tests/frameworks && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
    { cat "$WORK/npm.log"; fail "npm install failed in tests/frameworks (the npm registry must be reachable once)"; }
fi
KEY=sk-frameworks-test
"$FAKE" --embed-direct --fake-dim 8 "the cat sat" "a dog" "hello world" >"$WORK/direct.json"
srv_start main --api-key "$KEY" --fake-dim 8
srv_wait_ready
node tests/frameworks/frameworks.mjs "$PORT" "$KEY" "$WORK/direct.json" || fail "framework checks"
echo "ok   server_frameworks"

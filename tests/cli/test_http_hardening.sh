#!/usr/bin/env bash
# test_http_hardening.sh - the HTTP layer as an attacker would try it (issue 10, item 5), on the
# fake-engine server: every malformed request of the hardening list gets one well-formed answer in
# the OpenAI JSON error shape with the right status (tests/server/http_attack.py cases); 3000
# mutated requests (fixed seed) each get a well-formed answer or a clean close, never a hang or a
# crash, while good requests between them keep their exact vector; past --max-connections a 503
# with Retry-After; a head trickled in is cut off by --header-timeout with 408.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/server/lib.sh
ATTACK=tests/server/http_attack.py

srv_start main --fake-dim 8 --read-timeout 2 --header-timeout 1 --max-body-bytes 64K
srv_wait_ready
python3 "$ATTACK" cases "$PORT" || fail "malformed requests"
python3 "$ATTACK" mutate "$PORT" "${TKR_HTTP_MUTANTS:-3000}" "${TKR_HTTP_SEED:-10}" || fail "mutated requests"
python3 "$ATTACK" slowloris "$PORT" 1 || fail "slowloris"
kill -0 "$SRV_PID" || fail "the server died"
http 200 "http://127.0.0.1:$PORT/health"

srv_start capped --fake-dim 8 --max-connections 4
srv_wait_ready
python3 "$ATTACK" maxconn "$PORT" 4 || fail "connection cap"
echo "test_http_hardening: all checks passed"

# lib.sh - helpers for the server script tests (sourced, not run by tests/run.sh).
# Starts fake-engine server processes on ephemeral 127.0.0.1 ports, and kills every process it
# started when the script exits, whether the test passed or failed.
#   srv_start NAME [args...]   start "$FAKE --serve" with args, wait until it listens; sets
#                              PORT, SRV_PID, SRV_LOG (NAME names the log)
#   srv_wait_ready             wait until /health answers 200
#   check COND MESSAGE         fail the test (exit 1) when the command COND fails
#   http CODE ARGS...          curl ARGS, expect HTTP status CODE; the body lands in $BODY
#   py EXPR FILE               evaluate a Python expression over the JSON in FILE (as j)

set -u
B="${TKR_BUILD:-$PWD/build}"
FAKE="$B/tests/test_server_http"
DATA="${TKR_TEST_DATA:-$(cd .. && pwd)/shared/data}"
WORK="$(mktemp -d /tmp/tkr-srv-test.XXXXXX)"
BODY="$WORK/body.json"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  if [ -n "${SRV_LOG:-}" ] && [ -f "$SRV_LOG" ]; then echo "--- server log ($SRV_LOG):"; tail -n 30 "$SRV_LOG"; fi
  exit 1
}

check() {
  local cond=$1; shift
  eval "$cond" || fail "$*"
}

[ -x "$FAKE" ] || fail "missing $FAKE (build first: make)"
[ -d "$DATA/images" ] || fail "test data not found at $DATA (set TKR_TEST_DATA)"
command -v curl >/dev/null || fail "curl is required"
command -v python3 >/dev/null || fail "python3 is required (JSON checks)"

srv_start() {
  local name=$1; shift
  SRV_LOG="$WORK/$name.log"
  "$FAKE" --serve -m fake-model --host 127.0.0.1 --port 0 "$@" >"$SRV_LOG" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  PORT=""
  local i
  for i in $(seq 1 200); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$SRV_LOG" 2>/dev/null | head -n 1)
    [ -n "$PORT" ] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || fail "server '$name' exited at start"
    sleep 0.05
  done
  fail "server '$name' did not start listening"
}

srv_wait_ready() {
  local i
  for i in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
    sleep 0.05
  done
  fail "server not ready"
}

http() {
  local want=$1; shift
  local got
  got=$(curl -s -o "$BODY" -w '%{http_code}' --max-time 30 "$@")
  [ "$got" = "$want" ] || fail "expected HTTP $want, got $got for: curl $* -> $(head -c 400 "$BODY")"
}

py() {
  python3 -c "import json,sys,struct,base64,math; j=json.load(open(sys.argv[1])); print($1)" "$2"
}

# The error body must have the OpenAI shape; prints type/param/code for comparisons.
error_shape() {
  py "'%s|%s|%s' % (j['error']['type'], j['error']['param'], j['error']['code']) if set(j['error'])=={'message','type','param','code'} and isinstance(j['error']['message'], str) else 'BAD SHAPE'" "$BODY"
}

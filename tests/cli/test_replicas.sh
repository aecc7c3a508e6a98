#!/usr/bin/env bash
# test_replicas.sh - three fake-engine replicas behind Debian's nginx with docs/deploy/nginx-tkr-embed.conf
# (ports replaced): under load through nginx, one replica is killed with SIGKILL and restarted
# on its port; no client request may fail, and every answer carries the same vector; each
# replica answers the same vector directly too. TKR_REPLICA_SECONDS sets the load time (8).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/server/lib.sh
command -v nginx >/dev/null || fail "nginx not installed (scripts/install-deps.sh installs nginx-light)"
secs=${TKR_REPLICA_SECONDS:-8}
ports=(); pids=()
for i in 1 2 3; do
  srv_start "r$i" --fake-dim 8 --fake-delay-ms 10 --quiet
  srv_wait_ready
  ports+=("$PORT"); pids+=("$SRV_PID")
done
# a free port for nginx
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
sed -e "s/127.0.0.1:8081/127.0.0.1:${ports[0]}/; s/127.0.0.1:8082/127.0.0.1:${ports[1]}/" \
    -e "s/127.0.0.1:8083/127.0.0.1:${ports[2]}/; s/listen 127.0.0.1:8080/listen 127.0.0.1:$NPORT/" \
    docs/deploy/nginx-tkr-embed.conf >"$WORK/nginx/tkr-embed.conf"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  include $WORK/nginx/tkr-embed.conf;
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
# nginx's workers outlive a SIGKILLed master: stop it with TERM (fast shutdown) before the rest
trap 'kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; cleanup' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$NPORT/health" >/dev/null && break; sleep 0.1; done
http 200 "http://127.0.0.1:$NPORT/health"

# identical vectors from every replica directly
ref=""
for p in "${ports[@]}"; do
  http 200 -H 'Content-Type: application/json' -d '{"model":"m","input":["replica test text","second item"]}' "http://127.0.0.1:$p/v1/embeddings"
  v=$(py 'json.dumps(j["data"])' "$BODY")
  [ -z "$ref" ] && ref=$v
  check '[ "$v" = "$ref" ]' "replica on port $p gives a different vector"
done

python3 tests/server/replica_load.py "$NPORT" "$secs" 16 >"$WORK/load.out" 2>&1 &
LOAD=$!
sleep $(python3 -c "print($secs * 0.3)")
kill -KILL "${pids[1]}"
echo "killed the replica on port ${ports[1]}"
sleep $(python3 -c "print($secs * 0.3)")
"$FAKE" --serve -m fake-model --host 127.0.0.1 --port "${ports[1]}" --fake-dim 8 --fake-delay-ms 10 --quiet >"$WORK/r2b.log" 2>&1 &
PIDS+=("$!")
echo "restarted it"
wait "$LOAD" || { cat "$WORK/load.out"; fail "client requests failed while a replica died"; }
cat "$WORK/load.out"
echo "test_replicas: all checks passed"

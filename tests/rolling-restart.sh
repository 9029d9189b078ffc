#!/usr/bin/env bash
# Zero-downtime restarts: two instances over one PostgreSQL (and Redis) behind a real nginx
# (Debian `nginx-light`), restarted one after the other while clients keep querying through
# nginx. Passes only when every request of the load succeeded.
#
# Each restart sends SIGTERM: the instance's readiness turns 503 at once and it serves on for the
# grace period (answering `Connection: close`, so kept-alive connections wind down); the health
# checker below sees the 503 and takes it out of nginx's upstream; then it stops accepting
# connections, finishes what is in flight and exits 0. The new process starts on the same port and
# is put back once /health/ready answers 200.
#
# Usage: bash tests/rolling-restart.sh [path/to/conduit]
#   DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test), REDIS_URL (optional),
#   ROUNDS (default 2: each instance restarted twice).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-target/debug/conduit}"
[ -x "$BIN" ] || cargo build --quiet --bin conduit
ADMIN_URL="${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
ROUNDS="${ROUNDS:-2}"
command -v nginx > /dev/null || {
  echo "nginx is missing: apt-get install nginx-light" >&2
  exit 1
}

WORK="$(mktemp -d)"
DB="conduit_rolling_$$"
SERVER_URL="${ADMIN_URL%/*}"
DATABASE_URL="$SERVER_URL/$DB"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT_A="$(free_port)"
PORT_B="$(free_port)"
PORT_NGINX="$(free_port)"
declare -A PIDS

cleanup() {
  touch "$WORK/stop"
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2> /dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$ADMIN_URL" -c "CREATE DATABASE \"$DB\"" > /dev/null
DATABASE_URL="$DATABASE_URL" CONDUIT_LOG=warn "$BIN" seed --users 20 --articles 120 --comments 200 > /dev/null

start() { # name port
  DATABASE_URL="$DATABASE_URL" CONDUIT_LISTEN="127.0.0.1:$2" CONDUIT_LOG=warn \
    CONDUIT_JWT_SECRET=rolling-restart-secret-0123456789abcdef CONDUIT_RATE_LIMIT=false \
    CONDUIT_SHUTDOWN_GRACE_SECS=2 CONDUIT_SHUTDOWN_TIMEOUT_SECS=20 \
    CONDUIT_REDIS_PREFIX="conduit-rolling:$$:" \
    "$BIN" >> "$WORK/$1.log" 2>&1 &
  PIDS[$1]=$!
  for _ in $(seq 1 200); do
    if curl -fs "http://127.0.0.1:$2/health/ready" > /dev/null; then return 0; fi
    sleep 0.05
  done
  echo "instance $1 did not become ready" >&2
  cat "$WORK/$1.log" >&2
  exit 1
}

restart() { # name port
  local pid="${PIDS[$1]}"
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "instance $1 exited with $status after SIGTERM" >&2
    cat "$WORK/$1.log" >&2
    exit 1
  fi
  echo "  $1 drained and exited 0; starting it again"
  start "$1" "$2"
}

if [ -n "${REDIS_URL:-}" ]; then export REDIS_URL; else unset REDIS_URL; fi
start a "$PORT_A"
start b "$PORT_B"

# nginx.conf with each instance marked `down` unless its readiness said 200.
write_conf() { # state_a state_b (up|down)
  local flag_a="" flag_b=""
  [ "$1" = down ] && flag_a=" down"
  [ "$2" = down ] && flag_b=" down"
  cat > "$WORK/nginx.conf.new" << EOF
daemon on;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  upstream conduit {
    server 127.0.0.1:$PORT_A max_fails=1 fail_timeout=1s$flag_a;
    server 127.0.0.1:$PORT_B max_fails=1 fail_timeout=1s$flag_b;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX;
    location / {
      proxy_pass http://conduit;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 1s;
    }
  }
}
EOF
  mv "$WORK/nginx.conf.new" "$WORK/nginx.conf"
}
write_conf up up
nginx -p "$WORK" -c "$WORK/nginx.conf"

# The health checker a load balancer runs (nginx-light has none of its own): every 100 ms it asks
# each instance's /health/ready and takes an instance that is not ready out of the upstream
# (a configuration reload), and puts it back once ready again.
ready_state() { # port
  if curl -fs --max-time 0.5 -o /dev/null "http://127.0.0.1:$1/health/ready"; then echo up; else echo down; fi
}
(
  current="up up"
  while [ ! -f "$WORK/stop" ]; do
    wanted="$(ready_state "$PORT_A") $(ready_state "$PORT_B")"
    if [ "$wanted" != "$current" ]; then
      # shellcheck disable=SC2086
      write_conf $wanted
      nginx -p "$WORK" -c "$WORK/nginx.conf" -s reload 2>> "$WORK/nginx-error.log"
      echo "  load balancer: a ${wanted% *}, b ${wanted#* }"
      current="$wanted"
    fi
    sleep 0.1
  done
) &
CHECKER=$!

# Clients: two threads of GET queries and two of POST queries through nginx until told to stop
# (nginx retries a GET on the other instance after an error, never a POST it already sent: a
# request dropped by a restart shows up as a failed POST).
python3 - "$PORT_NGINX" "$WORK" << 'PY' &
import json, os, sys, threading, urllib.parse, urllib.request
port, work = sys.argv[1], sys.argv[2]
queries = [
    "{ articles(first: 10) { nodes { title author { username } tags { name } } } }",
    "{ tags(first: 5) { nodes { name } totalCount } }",
    "{ articles(first: 3) { nodes { slug comments(first: 3) { nodes { body } } } } }",
]
lock = threading.Lock()
counts = {"ok": 0, "failed": 0}
failures = []
def worker(index):
    n = index
    while not os.path.exists(os.path.join(work, "stop")):
        query = queries[n % len(queries)]
        n += 1
        if index % 2 == 0:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql?query=" + urllib.parse.quote(query)
            )
        else:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=json.dumps({"query": query}).encode(),
                headers={"content-type": "application/json"},
            )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
                good = response.status == 200 and "errors" not in body and body.get("data")
        except Exception as err:  # connection refused, reset, HTTP error
            good, body = False, repr(err)
        with lock:
            if good:
                counts["ok"] += 1
            else:
                counts["failed"] += 1
                failures.append(str(body)[:200])
threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(os.path.join(work, "load.json"), "w") as out:
    json.dump({"counts": counts, "failures": failures[:10]}, out)
PY
LOAD=$!

sleep 1
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  restart a "$PORT_A"
  sleep 0.5
  restart b "$PORT_B"
  sleep 0.5
done
sleep 1
touch "$WORK/stop"
wait "$LOAD"
wait "$CHECKER"

STATUS=0
python3 - "$WORK/load.json" << 'PY' || STATUS=$?
import json, sys
result = json.load(open(sys.argv[1]))
ok, failed = result["counts"]["ok"], result["counts"]["failed"]
print(f"rolling restart: {ok} requests succeeded, {failed} failed")
if failed or ok < 100:
    for failure in result["failures"]:
        print("  " + failure)
    sys.exit(1)
PY
if [ "$STATUS" -ne 0 ]; then
  echo "nginx errors:"
  cat "$WORK/nginx-error.log"
  exit "$STATUS"
fi

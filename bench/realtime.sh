#!/usr/bin/env bash
# Subscriptions under load, on this machine: the release server(s) over a PostgreSQL database of
# their own, and `conduit-realtime-bench` as the clients (a benchmark, not a test).
#
# 1. 10,000 idle subscribed WebSockets on one instance: the server's memory per socket.
# 2. 1,000 subscribers of one article on one instance: time from the comment's request to each
#    delivery, p50/p99.
# 3. The same with the subscribers on a second instance, events crossing through Redis.
#
# Usage: bash bench/realtime.sh   (DATABASE_ADMIN_URL, REDIS_URL, SOCKETS, SUBSCRIBERS, EVENTS)
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL="${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${REDIS_URL:-redis://127.0.0.1:6379}"
SOCKETS="${SOCKETS:-10000}"
SUBSCRIBERS="${SUBSCRIBERS:-1000}"
EVENTS="${EVENTS:-30}"
DB="conduit_realtime_$$"
DATABASE_URL="${ADMIN_URL%/*}/$DB"
WORK="$(mktemp -d)"
# Each side holds one descriptor per socket.
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin conduit
cargo build --release --quiet --features bench --bin conduit-realtime-bench
BIN=target/release/conduit
BENCH=target/release/conduit-realtime-bench

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -q "$ADMIN_URL" -c "CREATE DATABASE \"$DB\"" > /dev/null

start() { # name port [redis]
  env DATABASE_URL="$DATABASE_URL" CONDUIT_LISTEN="127.0.0.1:$2" CONDUIT_LOG=warn \
    CONDUIT_JWT_SECRET=realtime-bench-secret-0123456789abcdef CONDUIT_RATE_LIMIT=false \
    CONDUIT_MAX_WS_PER_CLIENT=100000 CONDUIT_MAX_WS_CONNECTIONS=100000 \
    ${3:+REDIS_URL="$3"} CONDUIT_REDIS_PREFIX="conduit-realtime:$$:" \
    "$BIN" > "$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$2/health/ready" > /dev/null && return 0
    sleep 0.2
  done
  cat "$WORK/$1.log"
  exit 1
}

PORT_A="$(free_port)"
start a "$PORT_A"
[ "${SKIP_IDLE:-}" ] || "$BENCH" idle --url "http://127.0.0.1:$PORT_A" --pid "$LAST_PID" --sockets "$SOCKETS"
"$BENCH" fanout --subscribe-url "http://127.0.0.1:$PORT_A" --subscribers "$SUBSCRIBERS" --events "$EVENTS"
kill "${PIDS[@]}"; wait 2> /dev/null || true; PIDS=()

PORT_A="$(free_port)"
PORT_B="$(free_port)"
start a "$PORT_A" "$REDIS"
start b "$PORT_B" "$REDIS"
"$BENCH" fanout --subscribe-url "http://127.0.0.1:$PORT_B" --mutate-url "http://127.0.0.1:$PORT_A" \
  --subscribers "$SUBSCRIBERS" --events "$EVENTS"

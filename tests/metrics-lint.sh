#!/usr/bin/env bash
# Lints what /metrics serves with `promtool check metrics` (Debian package `prometheus`): names,
# units, help texts and types follow the Prometheus conventions. The server first answers a
# query, a refused query, a failed sign-in and an over-budget request, so every series family
# has samples. Usage: bash tests/metrics-lint.sh [path/to/conduit]  (REDIS_URL optional)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-target/debug/conduit}"
[ -x "$BIN" ] || cargo build --quiet --bin conduit
command -v promtool > /dev/null || {
  echo "promtool is missing: apt-get install prometheus" >&2
  exit 1
}

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2> /dev/null && wait "$SERVER" 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DATABASE_URL="sqlite://$WORK/conduit.db" CONDUIT_LISTEN="127.0.0.1:$PORT" CONDUIT_LOG=warn \
  CONDUIT_RATE_LIMIT_CAPACITY=40 CONDUIT_REDIS_PREFIX="conduit-lint:$$:" \
  "$BIN" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health/ready" > /dev/null && break
  sleep 0.1
done

post() {
  curl -s -o /dev/null -H 'content-type: application/json' -d "$1" "http://127.0.0.1:$PORT/graphql"
}
post '{"query":"query Listing { articles(first: 2) { nodes { title } } }"}'
post '{"query":"query Listing { articles(first: 2) { nodes { title } } }"}'
post '{"query":"{ nope }"}'
post '{"query":"mutation { login(input: {email: \"nobody@example.com\", password: \"wrong-password\"}) { token } }"}'
post '{"query":"{ articles(first: 100) { nodes { title } } }"}'
sleep 1.2 # one pool-wait sample

curl -fs "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics.txt"
for family in conduit_http_request_duration_seconds conduit_graphql_errors_total \
  conduit_graphql_requested_cost_points conduit_rate_limited_total conduit_graphql_responses_total \
  conduit_db_statements_per_request conduit_db_pool_wait_seconds conduit_password_hash_duration_seconds \
  conduit_http_requests_in_flight; do
  grep -q "^# TYPE $family " "$WORK/metrics.txt" || {
    echo "missing series family $family" >&2
    cat "$WORK/metrics.txt" >&2
    exit 1
  }
done
promtool check metrics < "$WORK/metrics.txt"
echo "metrics lint: $(grep -c '^conduit_' "$WORK/metrics.txt") samples, promtool check metrics passed"

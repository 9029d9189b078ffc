#!/usr/bin/env bash
# Compression on the wire: req/s and bytes per response of one query with and without
# `Accept-Encoding: gzip`, uncached and cached, on the tables ../shared/bench/compare.sh seeds.
# Usage (after compare.sh has seeded conduit_bench): bash bench/compression.sh [CONDUIT_BIN]
# Env: SECS=15 CONC=32 WARMUP=3 QUERY=articles_nested
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/conduit}")
SECS=${SECS:-15} CONC=${CONC:-32} WARMUP=${WARMUP:-3} QUERY=${QUERY:-articles_nested}
PORT=5691
QUERYFILE=../shared/bench/queries/conduit/$QUERY.graphql
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
grep -v '^[[:space:]]*#' "$QUERYFILE" | jq -Rsc '{query: .}' > "$work/request.json"

run() { # label encoding
  local headers=(-H 'content-type: application/json')
  [ "$2" != identity ] && headers+=(-H "accept-encoding: $2")
  "$OHA" --no-tui -z "${WARMUP}s" -c "$CONC" --disable-compression -m POST "${headers[@]}" \
    -D "$work/request.json" --output-format json -o "$work/warm.json" "http://127.0.0.1:$PORT/graphql" > /dev/null
  "$OHA" --no-tui -z "${SECS}s" -w -c "$CONC" --disable-compression -m POST "${headers[@]}" \
    -D "$work/request.json" --output-format json -o "$work/run.json" "http://127.0.0.1:$PORT/graphql" > /dev/null
  jq -r --arg name "$1" '[$name, (.summary.requestsPerSec | floor),
      ((.summary.totalData / (.statusCodeDistribution["200"] // 1)) | floor),
      ([.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0)]
    | "\(.[0])\t\(.[1]) req/s\t\(.[2]) B/response\tnon-200: \(.[3])"' "$work/run.json"
}

for mode in uncached cached; do
  cache=true
  [ "$mode" = uncached ] && cache=false
  CONDUIT_LISTEN=127.0.0.1:$PORT DATABASE_URL=postgres://root@127.0.0.1:5432/conduit_bench \
    CONDUIT_RATE_LIMIT=false CONDUIT_LOG=warn CONDUIT_CACHE=$cache \
    CONDUIT_JWT_SECRET=bench-secret-0123456789abcdef0123456789 "$BIN" serve > "$work/conduit.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" > /dev/null && break; sleep 0.1; done
  run "$mode/$QUERY identity" identity
  run "$mode/$QUERY gzip" gzip
  kill "$pid"
  wait "$pid" 2> /dev/null || true
done

#!/usr/bin/env bash
# One instance against the deployment of deploy/local-cluster.sh (nginx, two instances reading on a
# streaming replica), on this machine, with compare.sh's queries and load tool (a benchmark, not a
# test):
#
# 1. The cluster is started on ports of its own and filled with the benchmark seed
#    (../shared/bench/seed.sql: the data compare.sh measures), replicated to the replica.
# 2. Each of ../shared/bench/queries/conduit/*.graphql is loaded with ../shared/bench/load.sh (oha)
#    on one instance reading the primary, then through nginx on the two instances reading the
#    replica. Cache and rate limiting are off: every request reads the database.
# 3. Replica lag under write load: createArticle through nginx for a few seconds while
#    pg_stat_replication is sampled every 100 ms.
#
# Usage: bash bench/cluster.sh [CONDUIT_BIN (default target/release/conduit, built when missing)]
# Env:   SECS (10), WARMUP (3), CONC (32), WRITE_SECS (6), WRITE_CONC (8)
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED_BENCH="$(cd ../shared/bench && pwd)"
BIN="${1:-target/release/conduit}"
SECS="${SECS:-10}"
CONC="${CONC:-32}"
WRITE_SECS="${WRITE_SECS:-6}"
WRITE_CONC="${WRITE_CONC:-8}"
export WARMUP="${WARMUP:-3}"
[ -x "$BIN" ] || cargo build --release --quiet --bin conduit
OHA="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
[ -x "$OHA" ] || cargo install oha --locked --quiet
OHA="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
command -v jq > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq > /dev/null

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
WORK="$(mktemp -d)"
chmod 755 "$WORK" # PostgreSQL runs as its own user and must reach the cluster's directory
export CLUSTER_DIR="$WORK/cluster" CONDUIT_BIN="$BIN"
PRIMARY_PORT="$(free_port)" REPLICA_PORT="$(free_port)" REDIS_PORT="$(free_port)"
INSTANCE_PORTS="$(free_port) $(free_port)" NGINX_PORT="$(free_port)"
export PRIMARY_PORT REPLICA_PORT REDIS_PORT INSTANCE_PORTS NGINX_PORT
# Every request reads the database, and one client address may send all the load.
export CONDUIT_CACHE=false CONDUIT_RATE_LIMIT=false CONDUIT_LOG=warn
SINGLE_PID=""
cleanup() {
  [ -n "$SINGLE_PID" ] && kill "$SINGLE_PID" 2> /dev/null
  bash deploy/local-cluster.sh down > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

status="$(bash deploy/local-cluster.sh up)"
PRIMARY="$(sed -n 's/^primary=//p' <<< "$status")"
REPLICA="$(sed -n 's/^replica=//p' <<< "$status")"
GRAPHQL="$(sed -n 's/^graphql=//p' <<< "$status")"

echo "== seeding the primary ($PRIMARY) with ../shared/bench/seed.sql"
psql -q -v ON_ERROR_STOP=1 "$PRIMARY" -f "$SHARED_BENCH/seed.sql" > /dev/null
psql -q "$PRIMARY" -c "VACUUM ANALYZE" > /dev/null
target="$(psql -qtA "$PRIMARY" -c "SELECT pg_current_wal_lsn()")"
until [ "$(psql -qtA "$REPLICA" -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ]; do
  sleep 0.2
done
echo "the replica replayed the seed"

single_port="$(free_port)"
DATABASE_URL="$PRIMARY" CONDUIT_LISTEN="127.0.0.1:$single_port" \
  CONDUIT_JWT_SECRET="local-cluster-secret-0123456789abcdef" "$BIN" serve > "$WORK/single.log" 2>&1 &
SINGLE_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$single_port/health/ready" > /dev/null && break
  sleep 0.2
done

results="$WORK/results.tsv"
for query in "$SHARED_BENCH"/queries/conduit/*.graphql; do
  name="$(basename "$query" .graphql)"
  LABEL="one:$name" RESULTS="$results" bash "$SHARED_BENCH/load.sh" \
    "http://127.0.0.1:$single_port/graphql" "$query" "$CONC" "$SECS"
  LABEL="cluster:$name" RESULTS="$results" bash "$SHARED_BENCH/load.sh" "$GRAPHQL" "$query" "$CONC" "$SECS"
done
kill "$SINGLE_PID" 2> /dev/null || true
SINGLE_PID=""

echo "== replica lag under write load: createArticle through nginx, c=$WRITE_CONC, ${WRITE_SECS}s"
name="writer$$"
token="$(curl -fs "$GRAPHQL" -H 'content-type: application/json' --data-binary \
  "{\"query\":\"mutation { register(input: { username: \\\"$name\\\", email: \\\"$name@example.com\\\", password: \\\"password123\\\" }) { token } }\"}" |
  jq -r '.data.register.token // empty')"
[ -n "$token" ] || { echo "cluster bench: cannot register the writer" >&2; exit 1; }
articles_before="$(psql -qtA "$PRIMARY" -c "SELECT count(*) FROM articles")"
printf '%s' '{"query":"mutation { createArticle(input: { title: \"Under load\", description: \"d\", body: \"b\", tags: [\"load\"] }) { article { slug } } }"}' > "$WORK/create.json"
(
  end=$((SECONDS + WRITE_SECS + 1))
  while [ "$SECONDS" -lt "$end" ]; do
    psql -qtA "$PRIMARY" -c "SELECT COALESCE(EXTRACT(EPOCH FROM replay_lag) * 1000, 0),
      pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication" >> "$WORK/lag.txt"
    sleep 0.1
  done
) &
sampler=$!
"$OHA" --no-tui -z "${WRITE_SECS}s" -c "$WRITE_CONC" --disable-compression -m POST \
  -H 'content-type: application/json' -H "authorization: Bearer $token" -D "$WORK/create.json" \
  --output-format json -o "$WORK/writes.json" "$GRAPHQL"
wait "$sampler"
# What was written, counted in the database (a refused mutation also answers 200).
writes_ok=$(($(psql -qtA "$PRIMARY" -c "SELECT count(*) FROM articles") - articles_before))
writes_rps="$(awk -v n="$writes_ok" -v s="$WRITE_SECS" 'BEGIN { printf "%.1f", n / s }')"
read -r lag_ms lag_bytes < <(awk -F'|' '{ if ($1 > ms) ms = $1; if ($2 > b) b = $2 } END { printf "%.1f %d\n", ms, b }' "$WORK/lag.txt")

echo
echo "| query (uncached) | one instance | two instances + replica behind nginx | ratio |"
echo "|---|---|---|---|"
awk -F'\t' 'NR > 1 { split($1, part, ":"); rps[part[1], part[2]] = $6; names[part[2]] = 1 }
  END { for (name in names) printf "| `%s` | %.1f req/s | %.1f req/s | %.2fx |\n", name, rps["one", name], rps["cluster", name], rps["cluster", name] / rps["one", name] }' "$results" | sort
echo
printf 'Replica lag under %d createArticle (%s/s) through nginx: replay_lag peak %s ms, %s bytes of WAL behind at most.\n' \
  "$writes_ok" "$writes_rps" "$lag_ms" "$lag_bytes"

#!/usr/bin/env bash
# A whole deployment on this machine, without Docker: a private PostgreSQL primary and one
# streaming replica (initdb, pg_basebackup -R) on ports of their own, Redis, two Conduit instances
# reading from the replica, and nginx in front (WebSocket upgrades and event streams proxied).
#
# Usage: bash deploy/local-cluster.sh up|down|status
#   up      starts what is not running (idempotent); exits 0 once every part answers
#   status  exits 0 when every part answers
#   down    stops everything and removes the cluster's directory
# Both up and status print one name=value line per part, the load balancer last:
#   primary=postgres://…  replica=postgres://…  redis=redis://…  instance=http://… (twice)
#   graphql=http://…/graphql
#
# Settings (environment): CLUSTER_DIR (/tmp/conduit-cluster), CONDUIT_BIN (target/release/conduit,
# built when missing), PRIMARY_PORT (55432), REPLICA_PORT (55433), REDIS_PORT (56379),
# INSTANCE_PORTS ("18081 18082"; each instance's admin listener, /metrics and the detailed probes,
# is 1000 ports above), NGINX_PORT (18080), CONDUIT_REPLICA_MAX_LAG_MS (1000).
# PostgreSQL runs as the `postgres` system user when started as root (initdb refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${CLUSTER_DIR:-/tmp/conduit-cluster}"
BIN="${CONDUIT_BIN:-target/release/conduit}"
PRIMARY_PORT="${PRIMARY_PORT:-55432}"
REPLICA_PORT="${REPLICA_PORT:-55433}"
REDIS_PORT="${REDIS_PORT:-56379}"
read -r -a INSTANCE_PORTS <<< "${INSTANCE_PORTS:-18081 18082}"
NGINX_PORT="${NGINX_PORT:-18080}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)"
DB="${CLUSTER_DB:-conduit}"
PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/$DB"
REPLICA_URL="postgres://postgres@127.0.0.1:$REPLICA_PORT/$DB"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1"; }
redis_up() { redis-cli -p "$REDIS_PORT" ping 2> /dev/null | grep -q PONG; }
instance_up() { curl -fs "http://127.0.0.1:$1/health/ready" > /dev/null; }
nginx_up() { curl -fs "http://127.0.0.1:$NGINX_PORT/health/live" > /dev/null; }

wait_for() { # what command...
  local what="$1"
  shift
  for _ in $(seq 1 150); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  echo "$what did not come up; logs in $DIR" >&2
  return 1
}

start_primary() {
  pg_up "$PRIMARY_PORT" && return 0
  if [ ! -d "$DIR/primary" ]; then
    as_postgres "$PG_BIN/initdb" -D "$DIR/primary" -U postgres --auth=trust > "$DIR/initdb.log"
    cat >> "$DIR/primary/postgresql.conf" << EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 5
hot_standby = on
shared_preload_libraries = 'pg_stat_statements'
fsync = off
EOF
  fi
  as_postgres "$PG_BIN/pg_ctl" -D "$DIR/primary" -l "$DIR/primary.log" -w start > /dev/null
  wait_for primary pg_up "$PRIMARY_PORT"
  if ! psql -qtA -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    psql -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -c "CREATE DATABASE $DB" > /dev/null
    psql -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" > /dev/null
  fi
}

start_replica() {
  pg_up "$REPLICA_PORT" && return 0
  if [ ! -d "$DIR/replica" ]; then
    as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$DIR/replica" -R -X stream --checkpoint=fast > /dev/null
    cat >> "$DIR/replica/postgresql.conf" << EOF
port = $REPLICA_PORT
EOF
  fi
  as_postgres "$PG_BIN/pg_ctl" -D "$DIR/replica" -l "$DIR/replica.log" -w start > /dev/null
  wait_for replica pg_up "$REPLICA_PORT"
}

start_redis() {
  redis_up && return 0
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" > /dev/null
  wait_for redis redis_up
}

start_instance() { # index port
  instance_up "$2" && return 0
  DATABASE_URL="$PRIMARY_URL" DATABASE_REPLICA_URLS="$REPLICA_URL" REDIS_URL="$REDIS_URL" \
    CONDUIT_LISTEN="127.0.0.1:$2" CONDUIT_METRICS_LISTEN="127.0.0.1:$(($2 + 1000))" \
    CONDUIT_LOG="${CONDUIT_LOG:-warn}" CONDUIT_LOG_FORMAT=json \
    CONDUIT_JWT_SECRET="${CONDUIT_JWT_SECRET:-local-cluster-secret-0123456789abcdef}" \
    CONDUIT_REDIS_PREFIX="conduit-cluster:" \
    CONDUIT_REPLICA_MAX_LAG_MS="${CONDUIT_REPLICA_MAX_LAG_MS:-1000}" \
    nohup "$BIN" > "$DIR/instance-$1.log" 2>&1 &
  echo $! > "$DIR/instance-$1.pid"
  wait_for "instance $1" instance_up "$2"
}

start_nginx() {
  nginx_up && return 0
  local servers=""
  for port in "${INSTANCE_PORTS[@]}"; do servers+="    server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'; done
  sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$NGINX_PORT|g" deploy/nginx.conf.template \
    | awk -v servers="$servers" '{ if ($0 ~ /@SERVERS@/) printf "%s", servers; else print }' \
      > "$DIR/nginx.conf"
  nginx -p "$DIR" -c "$DIR/nginx.conf" 2>> "$DIR/nginx-error.log"
  wait_for nginx nginx_up
}

report() {
  local ok=0
  pg_up "$PRIMARY_PORT" && echo "primary=$PRIMARY_URL" || { echo "primary=down" ; ok=1; }
  pg_up "$REPLICA_PORT" && echo "replica=$REPLICA_URL" || { echo "replica=down"; ok=1; }
  redis_up && echo "redis=$REDIS_URL" || { echo "redis=down"; ok=1; }
  for port in "${INSTANCE_PORTS[@]}"; do
    instance_up "$port" && echo "instance=http://127.0.0.1:$port" || { echo "instance=down"; ok=1; }
  done
  nginx_up && echo "graphql=http://127.0.0.1:$NGINX_PORT/graphql" || { echo "graphql=down"; ok=1; }
  return "$ok"
}

up() {
  command -v nginx > /dev/null || { echo "nginx is missing: apt-get install nginx-light" >&2; exit 1; }
  [ -n "$PG_BIN" ] || { echo "PostgreSQL's server binaries are missing: apt-get install postgresql" >&2; exit 1; }
  [ -x "$BIN" ] || cargo build --release --quiet --bin conduit
  mkdir -p "$DIR"
  chmod 777 "$DIR"
  start_primary
  start_replica
  start_redis
  local index=0
  for port in "${INSTANCE_PORTS[@]}"; do
    index=$((index + 1))
    start_instance "$index" "$port"
  done
  start_nginx
  report
}

down() {
  [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2> /dev/null || true
  local pids=()
  for pidfile in "$DIR"/instance-*.pid; do
    [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
  done
  # SIGTERM drains (readiness 503 for the grace period, then in-flight work finishes); wait for
  # it, then make sure.
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2> /dev/null || true
  for _ in $(seq 1 150); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  [ "${#pids[@]}" -gt 0 ] && kill -9 "${pids[@]}" 2> /dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave > /dev/null 2>&1 || true
  for node in replica primary; do
    [ -d "$DIR/$node" ] && as_postgres "$PG_BIN/pg_ctl" -D "$DIR/$node" -m immediate -w stop > /dev/null 2>&1 || true
  done
  sleep 0.5
  rm -rf "$DIR"
  echo "cluster down"
}

case "${1:-}" in
  up) up ;;
  status) report ;;
  down) down ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac

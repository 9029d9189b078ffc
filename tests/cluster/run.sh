#!/usr/bin/env bash
# The deployment of deploy/local-cluster.sh under test: a PostgreSQL primary and streaming replica,
# Redis, two instances and nginx, started here and stopped afterwards; tests/cluster/checks.py then
# checks replica reads, read-your-writes across instances with a paused replica, and a replica
# stopped under load.
#
# Usage: bash tests/cluster/run.sh [path/to/conduit]   (default target/release/conduit, built
# when missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

export CONDUIT_BIN="${1:-${CONDUIT_BIN:-target/release/conduit}}"
if [ -z "${CLUSTER_DIR:-}" ]; then
  parent="$(mktemp -d)"
  chmod 755 "$parent" # PostgreSQL runs as its own user and must reach the cluster's directory
  CLUSTER_DIR="$parent/cluster"
fi
export CLUSTER_DIR
# Ports of this run's own: a cluster left running elsewhere cannot answer in its place.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PRIMARY_PORT="$(free_port)"
REPLICA_PORT="$(free_port)"
REDIS_PORT="$(free_port)"
INSTANCE_PORTS="$(free_port) $(free_port)"
NGINX_PORT="$(free_port)"
export PRIMARY_PORT REPLICA_PORT REDIS_PORT INSTANCE_PORTS NGINX_PORT
trap 'bash deploy/local-cluster.sh down > /dev/null 2>&1 || true' EXIT

bash deploy/local-cluster.sh down > /dev/null 2>&1 || true
status="$(bash deploy/local-cluster.sh up)"
echo "$status"
PRIMARY="$(sed -n 's/^primary=//p' <<< "$status")"
REPLICA="$(sed -n 's/^replica=//p' <<< "$status")"
INSTANCES="$(sed -n 's/^instance=//p' <<< "$status" | tr '\n' ' ')"
GRAPHQL="$(sed -n 's/^graphql=//p' <<< "$status")"
PG_CTL="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl"
export PRIMARY REPLICA INSTANCES GRAPHQL PG_CTL REPLICA_DIR="$CLUSTER_DIR/replica"
# `up` again changes nothing: every part already answers.
bash deploy/local-cluster.sh up > /dev/null
python3 tests/cluster/checks.py || {
  tail -n 20 "$CLUSTER_DIR"/instance-*.log >&2
  exit 1
}
bash deploy/local-cluster.sh status > /dev/null
# Redis stayed up throughout: the change feed's listeners kept their connections (their liveness
# pings were answered every 15 s).
if grep -h "lost the Redis connection" "$CLUSTER_DIR"/instance-*.log; then
  echo "a change feed listener dropped a healthy Redis connection" >&2
  exit 1
fi
echo "cluster: the change feed listeners kept their Redis connections"

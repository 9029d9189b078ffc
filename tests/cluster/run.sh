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

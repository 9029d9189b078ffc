#!/usr/bin/env bash
# The contract checks with JavaScript tooling, against the real server on a fresh SQLite database:
# the GraphQL-over-HTTP audit (every audit must pass), introspection == schema.graphql, a real
# client (Apollo Client), the schema diff against the last release, the playground in Chromium and
# subscriptions with real clients (graphql-ws, graphql-sse, Apollo Client). Then subscriptions
# across two instances that share one SQLite file and Redis: subscribed on one, mutated on the
# other, directly and through nginx (round-robin, WebSocket upgrades and SSE passed through).
# Needs Node.js and npm; the browser check needs Debian's chromium (CONDUIT_CHROMIUM to override);
# the two-instance check needs Redis (REDIS_URL, default redis://127.0.0.1:6379) and nginx
# (Debian `nginx-light`).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"

npm ci --no-audit --no-fund --loglevel=error

cargo build --manifest-path "$root/Cargo.toml" --bin conduit
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() { # base_url log: until $base_url/health answers, else the log and a failure
  for _ in $(seq 1 100); do
    curl -sf "$1/health" > /dev/null && return 0
    sleep 0.2
  done
  cat "$2"
  exit 1
}
port="$(free_port)"
base="http://127.0.0.1:$port"
DATABASE_URL="sqlite://$work/contract.db" CONDUIT_LISTEN="127.0.0.1:$port" CONDUIT_LOG=warn \
  CONDUIT_JWT_SECRET="contract-checks-secret-0123456789abcdef" \
  "$root/target/debug/conduit" > "$work/server.log" 2>&1 &
pids+=($!)
wait_up "$base" "$work/server.log"

node audit.mjs "$base/graphql"
node introspection.mjs "$base" "$root/schema.graphql"
node client.mjs "$base/graphql"
node schema-diff.mjs released.graphql "$root/schema.graphql"
# The check must catch a breaking change: `Article.slug` turned into an Int has to fail it.
sed '0,/^\tslug: String!$/s//\tslug: Int!/' "$root/schema.graphql" > "$work/broken.graphql"
if node schema-diff.mjs released.graphql "$work/broken.graphql" > "$work/broken.txt"; then
  echo "the schema check did not catch a breaking change"; exit 1
fi
grep "^breaking" "$work/broken.txt"
echo "schema check: the breaking change is caught"
# `conduit schema check` classifies the same changes as GraphQL Inspector: the same breaking ones,
# by coordinate (exit 0 or 1: whether a client used it depends on what the usage records hold).
status=0
DATABASE_URL="sqlite://$work/contract.db" "$root/target/debug/conduit" schema check \
  --against released.graphql --schema "$work/broken.graphql" --format json > "$work/broken.json" || status=$?
[ "$status" -le 1 ] || { cat "$work/broken.json"; exit 1; }
node -e '
  const report = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const inspector = require("node:fs").readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.startsWith("breaking")).length;
  const breaking = report.changes.filter((change) => change.criticality === "breaking");
  if (breaking.length !== inspector || !breaking.some((change) => change.coordinate === "Article.slug")) {
    console.error(JSON.stringify(report, null, 2)); process.exit(1);
  }
  console.log(`conduit schema check: the same ${breaking.length} breaking change(s) as GraphQL Inspector (Article.slug)`);
' "$work/broken.json" "$work/broken.txt"
node browser.mjs "$base"
node subscriptions.mjs "$base" || { tail -n 30 "$work/server.log" >&2; exit 1; }

# Two more instances over one SQLite file, sharing Redis (events reach the subscribers of every
# instance through it) under a prefix of their own, behind nginx.
command -v nginx > /dev/null || {
  echo "nginx is missing: apt-get install nginx-light" >&2
  exit 1
}
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
port_a="$(free_port)"
port_b="$(free_port)"
port_nginx="$(free_port)"
start_instance() { # name port
  DATABASE_URL="sqlite://$work/cluster.db" CONDUIT_LISTEN="127.0.0.1:$2" CONDUIT_LOG=warn \
    CONDUIT_JWT_SECRET="contract-checks-secret-0123456789abcdef" \
    REDIS_URL="$redis_url" CONDUIT_REDIS_PREFIX="conduit-contract:$$:" \
    "$root/target/debug/conduit" > "$work/$1.log" 2>&1 &
  pids+=($!)
  wait_up "http://127.0.0.1:$2" "$work/$1.log"
}
start_instance a "$port_a" # creates cluster.db before the second instance opens it
start_instance b "$port_b"
sed -e "s|@WORK@|$work|g" -e "s|@PORT_A@|$port_a|g" -e "s|@PORT_B@|$port_b|g" \
  -e "s|@PORT_NGINX@|$port_nginx|g" nginx.conf.template > "$work/nginx.conf"
nginx -p "$work" -c "$work/nginx.conf" 2>> "$work/nginx-error.log" &
pids+=($!)
wait_up "http://127.0.0.1:$port_nginx" "$work/nginx-error.log"
cluster_failed() {
  echo "two-instance subscriptions failed (Redis at $redis_url reachable?); the logs:" >&2
  tail -n 30 "$work/a.log" "$work/b.log" "$work/nginx-error.log" >&2
  exit 1
}
# Subscribed on b, mutated on a: every event crosses from one instance to the other.
node subscriptions.mjs "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" || cluster_failed
# Through nginx: round-robin sends subscription and mutation to either instance.
node subscriptions.mjs "http://127.0.0.1:$port_nginx" || cluster_failed

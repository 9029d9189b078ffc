#!/usr/bin/env bash
# The contract checks with JavaScript tooling, against the real server on a fresh SQLite database:
# the GraphQL-over-HTTP audit (every audit must pass), introspection == schema.graphql, a real
# client (Apollo Client), the schema diff against the last release, and the playground in Chromium.
# Needs Node.js and npm; the browser check needs Debian's chromium (CONDUIT_CHROMIUM to override).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"

npm ci --no-audit --no-fund --loglevel=error

cargo build --manifest-path "$root/Cargo.toml" --bin conduit
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
DATABASE_URL="sqlite://$work/contract.db" CONDUIT_LISTEN="127.0.0.1:$port" CONDUIT_LOG=warn \
  CONDUIT_JWT_SECRET="contract-checks-secret-0123456789abcdef" \
  "$root/target/debug/conduit" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "$base/health" > /dev/null && break
  sleep 0.2
done
curl -sf "$base/health" > /dev/null || { cat "$work/server.log"; exit 1; }

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
node browser.mjs "$base"

#!/usr/bin/env bash
# The hostile-load suite: every attack at once against one release server, beside a well-behaved
# client (src/bin/conduit-hostile.rs says what each attack is and what is asserted). The server
# runs on the embedded defaults (SQLite, in-process cache) with a file-descriptor limit of 1024,
# its admin listener on a port of its own; attackers come from addresses of their own on
# 127.0.0.0/8. About two minutes.
#
# Usage: bash tests/hostile/run.sh   (SECONDS_OF_ATTACK, default 45)
set -euo pipefail
cd "$(dirname "$0")/../.."

# One build: the server and the suite share the library's compiled form.
cargo build --release --quiet --features bench --bin conduit --bin conduit-hostile
WORK="$(mktemp -d)"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"
ADMIN="$(free_port)"
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2> /dev/null || true
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# The attackers hold hundreds of sockets.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
DATABASE_URL="sqlite://$WORK/conduit.db" CONDUIT_LISTEN="127.0.0.1:$PORT" \
  CONDUIT_METRICS_LISTEN="127.0.0.1:$ADMIN" CONDUIT_LOG=warn \
  CONDUIT_JWT_SECRET=hostile-suite-secret-0123456789abcdef \
  prlimit --nofile=1024:1024 target/release/conduit > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health/ready" > /dev/null && break
  sleep 0.2
done
status=0
target/release/conduit-hostile --addr "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" --pid "$SERVER" \
  --seconds "${SECONDS_OF_ATTACK:-45}" || status=$?
if ! kill -0 "$SERVER" 2> /dev/null; then
  echo "the server died:"; tail -50 "$WORK/server.log"; exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "server log (last lines):"; tail -30 "$WORK/server.log"
fi
exit "$status"

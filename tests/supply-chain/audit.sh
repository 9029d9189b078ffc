#!/usr/bin/env bash
# The dependency audit: cargo-deny (pinned, installed when missing) checks advisories against the
# RustSec snapshot in ../shared/advisory-db, licences, bans and sources (deny.toml), then proves
# the gate closes: a planted advisory, a planted GPL crate and a planted git dependency must each
# be rejected. Offline except for installing cargo-deny and fetching the crates of the lock file.
#
# Usage: bash tests/supply-chain/audit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

DENY_VERSION=0.20.2
if ! cargo deny --version 2> /dev/null | grep -qx "cargo-deny $DENY_VERSION"; then
  echo "installing cargo-deny $DENY_VERSION"
  cargo install cargo-deny --version "$DENY_VERSION" --locked --quiet
fi

SNAPSHOT="$root/../shared/advisory-db"
# cargo-deny keeps each database in <db-path>/<name>-<hash of its URL>; this is the one of
# https://github.com/rustsec/advisory-db (deny.toml's db-urls).
DB_NAME=advisory-db-3157b0e258782691

# Copies the snapshot to $1 as the git checkout cargo-deny reads, committed at the snapshot's date
# (which the staleness check reads).
install_db() {
  local dest="$1"
  local date
  date="$(sed -n 's/^commit date: //p' "$SNAPSHOT/SNAPSHOT")T00:00:00Z"
  rm -rf "$dest"
  mkdir -p "$dest"
  cp -R "$SNAPSHOT"/. "$dest"/
  git -C "$dest" init -q
  git -C "$dest" add -A
  GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" git -C "$dest" \
    -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q -m "RustSec snapshot $(sed -n 's/^commit: //p' "$SNAPSHOT/SNAPSHOT")"
}

# cargo-deny reads the manifests of the whole graph (every platform's crates too): fetched first,
# then everything below runs offline.
cargo fetch --locked --quiet

echo "== cargo deny: advisories (snapshot $(sed -n 's/^commit date: //p' "$SNAPSHOT/SNAPSHOT")), licences, bans, sources"
install_db "target/advisory-dbs/$DB_NAME"
cargo deny --offline --log-level error check advisories licenses bans sources

echo "== cargo deny rejects planted cases"
plant="$(mktemp -d)"
trap 'rm -rf "$plant"' EXIT
# A copy of the workspace (sources and manifests, no build output) to plant into.
tar --exclude=./target --exclude='*/node_modules' --exclude=./.git -cf - . | tar -xf - -C "$plant"

expect_rejected() { # what, pattern, cargo-deny arguments...
  local what="$1" pattern="$2"
  shift 2
  local out
  if out="$(cd "$plant" && cargo deny "$@" 2>&1)"; then
    echo "$out"
    echo "cargo deny accepted $what"
    exit 1
  fi
  if ! grep -q -- "$pattern" <<< "$out"; then
    echo "$out"
    echo "cargo deny failed on $what, but not for it ($pattern)"
    exit 1
  fi
  echo "rejected: $what"
}

# 1. An advisory against a crate in the tree (tokio, every version).
install_db "$plant/target/advisory-dbs/$DB_NAME"
mkdir -p "$plant/target/advisory-dbs/$DB_NAME/crates/tokio"
cat > "$plant/target/advisory-dbs/$DB_NAME/crates/tokio/RUSTSEC-2099-0001.md" << 'ADVISORY'
```toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "tokio"
date = "2026-08-20"
url = "https://example.invalid/planted"
categories = ["memory-corruption"]

[versions]
patched = []
```

# A planted advisory

The audit must reject it.
ADVISORY
git -C "$plant/target/advisory-dbs/$DB_NAME" add -A
git -C "$plant/target/advisory-dbs/$DB_NAME" -c user.name=planted -c user.email=planted@localhost \
  commit -q -m planted
expect_rejected "a new advisory (RUSTSEC-2099-0001 on tokio)" "RUSTSEC-2099-0001" \
  --offline check advisories

# 2. A dependency under a licence not allowed (GPL-3.0-only).
mkdir -p "$plant/planted-gpl/src"
printf '[package]\nname = "planted-gpl"\nversion = "0.1.0"\nedition = "2024"\nlicense = "GPL-3.0-only"\n' \
  > "$plant/planted-gpl/Cargo.toml"
: > "$plant/planted-gpl/src/lib.rs"
cp "$plant/Cargo.toml" "$plant/Cargo.toml.clean"
sed -i 's|^\[dependencies\]$|[dependencies]\nplanted-gpl = { path = "planted-gpl" }|' "$plant/Cargo.toml"
sed -i 's|^members = \[".", "entity", "migration"\]|members = [".", "entity", "migration", "planted-gpl"]|' \
  "$plant/Cargo.toml"
expect_rejected "a GPL-3.0-only dependency" "GPL-3.0" --offline check licenses
cp "$plant/Cargo.toml.clean" "$plant/Cargo.toml"

# 3. A dependency from an unknown source (a git repository).
mkdir -p "$plant/planted-git-src/src"
printf '[package]\nname = "planted-git"\nversion = "0.1.0"\nedition = "2024"\nlicense = "MIT"\n' \
  > "$plant/planted-git-src/Cargo.toml"
: > "$plant/planted-git-src/src/lib.rs"
git -C "$plant/planted-git-src" init -q
git -C "$plant/planted-git-src" add -A
git -C "$plant/planted-git-src" -c user.name=planted -c user.email=planted@localhost commit -q -m planted
sed -i "s|^\[dependencies\]\$|[dependencies]\nplanted-git = { git = \"file://$plant/planted-git-src\" }|" \
  "$plant/Cargo.toml"
expect_rejected "a git dependency" "planted-git" check sources
echo "dependency audit: clean, and the planted advisory, licence and source were rejected"

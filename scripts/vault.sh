#!/usr/bin/env bash
# Prints the path of a Vault binary for `make dev`, the integration tests and
# the benchmarks:
#   1. $VAULT_BIN, if set;
#   2. a `vault` on PATH whose version is 1.15 or newer;
#   3. otherwise the version pinned in tools/vault, built once from the Go
#      module proxy into .cache/vault/<version>/ (about 10 minutes and 4 GB of
#      Go build cache the first time on 2 cores, seconds after that).
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pinned=$(sed -n 's/^[[:space:]]*github.com\/hashicorp\/vault v\([0-9.]*\).*/\1/p' "$root/tools/vault/go.mod" | head -n1)
cache="${VAULT_CACHE_DIR:-$root/.cache/vault}/$pinned"

if [ -n "${VAULT_BIN:-}" ]; then
  [ -x "$VAULT_BIN" ] || { echo "VAULT_BIN=$VAULT_BIN is not executable" >&2; exit 1; }
  echo "$VAULT_BIN"
  exit 0
fi

if command -v vault >/dev/null 2>&1; then
  version=$(vault version 2>/dev/null | sed -n 's/^Vault v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')
  if [ -n "$version" ]; then
    read -r major minor <<<"$version"
    if [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 15 ]; }; then
      command -v vault
      exit 0
    fi
  fi
fi

if [ -x "$cache/vault" ]; then
  echo "$cache/vault"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "Go is needed to build Vault $pinned" >&2; exit 1; }
mkdir -p "$cache"
echo "Building Vault $pinned from the Go module proxy into $cache (first time only: about 10 minutes on 2 cores)..." >&2
start=$(date +%s)
# A heartbeat, because downloading Vault's modules prints nothing for minutes.
( while sleep 60; do echo "  ... still building Vault ($(( $(date +%s) - start ))s so far)" >&2; done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
(
  cd "$root/tools/vault"
  # -v names each package as it is compiled; count them so that the build is
  # visibly moving without flooding the terminal.
  go build -v -ldflags='-s -w' -o "$cache/vault.partial" github.com/hashicorp/vault 2>&1 |
    awk '
      /^[a-z]/ { n++; if (n % 250 == 0) { printf "  ... %d packages compiled\n", n > "/dev/stderr"; fflush() } }
      / error|cannot |undefined:|^#/ { print > "/dev/stderr" }'
  test "${PIPESTATUS[0]}" -eq 0
)
mv "$cache/vault.partial" "$cache/vault"
echo "Built $("$cache/vault" version) in $(( $(date +%s) - start ))s" >&2
echo "$cache/vault"

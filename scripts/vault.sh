#!/usr/bin/env bash
# Prints the path of a Vault binary for `make dev`, the integration tests and
# the benchmarks. Without VAULT_VERSION:
#   1. $VAULT_BIN, if set;
#   2. a `vault` on PATH whose version is one the suite is proven on or newer
#      (oldest_proven below; README, "Vault versions");
#   3. otherwise the version pinned in tools/vault, built once from the Go
#      module proxy into .cache/vault/<version>/.
# With VAULT_VERSION=x.y.z (`make test-integration VAULT_VERSION=1.19.5`):
# exactly that release, which must be the pinned one or the one a module
# tools/vault/<x.y>/ pins: $VAULT_BIN or a `vault` on PATH if it is that
# version, else .cache/vault/x.y.z/vault, built there once.
#
# A build keeps only the binary. Vault's modules (about 4 GB) and its build
# cache (about 4 GB) go to .cache/vault/<version>/build/, not to your Go
# caches, and that directory is removed once the binary is built. If the build
# fails or is interrupted, it is kept so that the next attempt resumes where
# this one stopped instead of downloading 4 GB again; the error says so, and
# `rm -rf` of it frees the space. About 15 minutes on 2 cores, 8 GB of disk
# while it runs, some 360 MB left behind.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

# The oldest Vault the whole integration suite passed on (README, "Vault
# versions"): lower it only when the suite has passed on that release
# (make test-integration VAULT_VERSION=x.y.z).
oldest_proven=1.16.3

root=$(cd "$(dirname "$0")/.." && pwd)
vault_of() { sed -n 's/^[[:space:]]*github.com\/hashicorp\/vault v\([0-9.]*\).*/\1/p' "$1/go.mod" | head -n1; }
pinned=$(vault_of "$root/tools/vault")

# version_of BIN: x.y.z of a vault binary, empty if it prints none.
version_of() { "$1" version 2>/dev/null | sed -n 's/^Vault v\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p'; }
# at_least A B: A >= B, both x.y.z.
at_least() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }

version=${VAULT_VERSION:-}
if [ -z "$version" ]; then
  if [ -n "${VAULT_BIN:-}" ]; then
    [ -x "$VAULT_BIN" ] || { echo "VAULT_BIN=$VAULT_BIN is not executable" >&2; exit 1; }
    echo "$VAULT_BIN"
    exit 0
  fi
  if command -v vault >/dev/null 2>&1; then
    found=$(version_of "$(command -v vault)")
    if [ -n "$found" ] && at_least "$found" "$oldest_proven"; then
      command -v vault
      exit 0
    fi
    echo "Ignoring the vault on PATH (${found:-no version}): the tests need Vault $oldest_proven or newer" >&2
  fi
  version=$pinned
fi

# The tool module that pins $version.
if [ "$version" = "$pinned" ]; then
  module="$root/tools/vault"
else
  module="$root/tools/vault/${version%.*}"
  if [ ! -f "$module/go.mod" ] || [ "$(vault_of "$module")" != "$version" ]; then
    known="$pinned"
    for m in "$root"/tools/vault/*/go.mod; do
      [ -f "$m" ] && known="$known, $(vault_of "$(dirname "$m")")"
    done
    echo "No tool module pins Vault $version; these can be built: $known" >&2
    exit 1
  fi
fi

if [ -n "${VAULT_VERSION:-}" ]; then
  for candidate in "${VAULT_BIN:-}" "$(command -v vault 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$(version_of "$candidate")" = "$version" ]; then
      echo "$candidate"
      exit 0
    fi
  done
  [ -z "${VAULT_BIN:-}" ] || echo "VAULT_BIN=$VAULT_BIN is not Vault $version: using .cache/vault/$version instead" >&2
fi

cache="${VAULT_CACHE_DIR:-$root/.cache/vault}/$version"
if [ -x "$cache/vault" ]; then
  echo "$cache/vault"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "Go is needed to build Vault $version" >&2; exit 1; }
build="$cache/build"
mkdir -p "$build"
resumed=
[ -z "$(ls -A "$build")" ] || resumed=" (resuming the download and build kept from an earlier attempt)"
echo "Building Vault $version from the Go module proxy into $cache$resumed: about 15 minutes on 2 cores, 8 GB of temporary disk in $build..." >&2
start=$(date +%s)
# A heartbeat, because downloading Vault's modules prints nothing for minutes.
( while sleep 60; do echo "  ... still building Vault ($(( $(date +%s) - start ))s so far)" >&2; done ) &
heartbeat=$!
failed() {
  kill "$heartbeat" 2>/dev/null || true
  echo "Building Vault $version failed or was interrupted. Its modules and build cache are kept in" >&2
  echo "  $build ($(du -sh "$build" 2>/dev/null | cut -f1))" >&2
  echo "so that the next attempt resumes there; rm -rf it to free the space." >&2
}
trap failed EXIT
(
  cd "$module"
  # Vault's own modules and build cache, apart from the user's: removing them
  # afterwards cannot touch what the plugin itself uses. -modcacherw so that
  # they can be removed without chmod.
  export GOMODCACHE="$build/mod" GOCACHE="$build/cache" GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"
  # -v names each package as it is compiled; count them so that the build is
  # visibly moving without flooding the terminal.
  go build -v -ldflags='-s -w' -o "$cache/vault.partial" github.com/hashicorp/vault 2>&1 |
    awk '
      /^[a-z]/ { n++; if (n % 250 == 0) { printf "  ... %d packages compiled\n", n > "/dev/stderr"; fflush() } }
      / error|cannot |undefined:|^#/ { print > "/dev/stderr" }'
  test "${PIPESTATUS[0]}" -eq 0
)
trap - EXIT
kill "$heartbeat" 2>/dev/null || true
mv "$cache/vault.partial" "$cache/vault"
# Module files of an older attempt may still be read-only.
chmod -R u+w "$build" 2>/dev/null || true
rm -rf "$build"
echo "Built $("$cache/vault" version) in $(( $(date +%s) - start ))s; removed its modules and build cache" >&2
echo "$cache/vault"

#!/usr/bin/env bash
# Runs every fuzz target of every package for the given time (default 10s).
# New failing inputs are written to <package>/testdata/fuzz/<target>/; commit
# them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
for pkg in . ./internal/huawei; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    echo "--- $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done

#!/usr/bin/env bash
# Runs every fuzz target for the given time (default 10s). New failing inputs
# are written to testdata/fuzz/<target>/; commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
for target in $(go test -list '^Fuzz' . | grep '^Fuzz'); do
  echo "--- $target ($fuzztime)"
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" .
done

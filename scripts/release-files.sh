#!/usr/bin/env bash
# Run by `make release-snapshot` and `make release` after GoReleaser: copies
# every file that DIST/SHA256SUMS names into DIST/release/, the bare binaries
# under their release names (GoReleaser leaves them in its build directories),
# adds SHA256SUMS, and checks them all with `sha256sum --check`. DIST/release/
# is what a release publishes, as it is.
#
#   scripts/release-files.sh [DIST]   DIST: dist (default) or dist/snapshot
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rel=${1:-dist}
dist="$root/$rel"
[ -f "$dist/SHA256SUMS" ] || { echo "no $rel/SHA256SUMS: run make release-snapshot or make release first" >&2; exit 1; }
rm -rf "$dist/release"
mkdir "$dist/release"

# name<TAB>path of every artifact: GoReleaser writes "name" then "path" in
# each entry of artifacts.json; paths are relative to the repository's root.
paths=$(grep -o '"name":"[^"]*","path":"[^"]*"' "$dist/artifacts.json" |
  sed 's/^"name":"\([^"]*\)","path":"\([^"]*\)"$/\1\t\2/')
n=0
while read -r _ name; do
  path=$(awk -F'\t' -v n="$name" '$1 == n { print $2; exit }' <<<"$paths")
  [ -n "$path" ] || { echo "SHA256SUMS names $name, which $rel/artifacts.json does not list" >&2; exit 1; }
  case $path in /*) ;; *) path="$root/$path" ;; esac
  cp -p "$path" "$dist/release/$name"
  n=$((n + 1))
done <"$dist/SHA256SUMS"
cp -p "$dist/SHA256SUMS" "$dist/release/"
(cd "$dist/release" && sha256sum --check --strict --quiet SHA256SUMS)
echo "$rel/release/: SHA256SUMS and the $n files it lists, every checksum verified"

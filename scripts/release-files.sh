#!/usr/bin/env bash
# Run by `make release-snapshot` and `make release` after GoReleaser: copies
# every file that DIST/SHA256SUMS names into DIST/release/, the bare binaries
# under their release names (GoReleaser leaves them in its build directories),
# adds SHA256SUMS and its signature SHA256SUMS.sig, and checks them all with
# `sha256sum --check`. DIST/release/ is what a release publishes, as it is.
#
# A release (DIST=dist) must have SHA256SUMS.sig, and it is verified the way
# the README tells users to: in an empty keyring holding only the keys of the
# repository's KEYS file. A snapshot copies the signature if it has one
# (scripts/check-signing.sh verifies that one with its throwaway key).
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
signed=
if [ -f "$dist/SHA256SUMS.sig" ]; then
  cp -p "$dist/SHA256SUMS.sig" "$dist/release/"
  signed=" and SHA256SUMS.sig"
fi
echo "$rel/release/: SHA256SUMS$signed and the $n files it lists, every checksum verified"
if [ "$rel" = dist ]; then
  [ -n "$signed" ] || { echo "no dist/SHA256SUMS.sig: a release is signed (make release)" >&2; exit 1; }
  # shellcheck source=scripts/gpg.sh
  . "$root/scripts/gpg.sh"
  need_gpg
  home=$(temp_gnupghome)
  trap 'drop_gnupghome "$home"' EXIT
  GNUPGHOME="$home" gpg --batch --quiet --import "$root/KEYS" 2>/dev/null || true
  status=$(GNUPGHOME="$home" gpg --batch --status-fd 1 --verify "$dist/release/SHA256SUMS.sig" "$dist/release/SHA256SUMS" 2>/dev/null) ||
    { echo "dist/release/SHA256SUMS.sig does not verify with the keys in KEYS" >&2; exit 1; }
  fpr=$(awk '$2 == "VALIDSIG" { print $3 }' <<<"$status")
  echo "dist/release/SHA256SUMS.sig: a good signature by $fpr, a key in KEYS (verified as users will: gpg --import KEYS; gpg --verify)"
fi

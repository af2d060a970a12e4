#!/usr/bin/env bash
# make release-check: builds a release snapshot of HEAD twice and checks that
# the two are byte for byte the same:
#   build 1  in this checkout, with the usual Go build cache (into dist/);
#   build 2  in a fresh `git clone` of HEAD in a temporary directory (another
#            path, another umask), with an empty Go build cache of its own.
# Both build linux/amd64 and darwin/arm64 (RELEASE_TARGETS=ci) and compare
# every binary, archive, SBOM and SHA256SUMS. The Go module cache is shared:
# its content is checked against go.sum either way.
#
#   RELEASE_CHECK_KEEP=1  keep the clone and its dist/ (the path is printed)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ -n "$(git status --porcelain)" ]; then
  echo "release-check compares builds of HEAD: commit or stash these changes first:" >&2
  git status --short >&2
  exit 1
fi
commit=$(git rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/sms-release-check.XXXXXX")
cleanup() {
  if [ -n "${RELEASE_CHECK_KEEP:-}" ]; then
    echo "kept $work"
  else
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT
export RELEASE_TARGETS=ci

echo "--- build 1: $root at $commit (GOCACHE $(go env GOCACHE))"
start=$(date +%s)
scripts/goreleaser.sh release --snapshot --clean >"$work/build1.log" 2>&1 || { cat "$work/build1.log"; exit 1; }
echo "    $(( $(date +%s) - start ))s"

echo "--- build 2: a fresh clone in $work/clone (GOCACHE $work/gocache, empty, umask 0002)"
git clone --quiet --no-hardlinks "$root" "$work/clone"
git -C "$work/clone" checkout --quiet --detach "$commit"
start=$(date +%s)
(
  cd "$work/clone"
  umask 0002
  # The tools built for build 1 (scripts/goreleaser.sh would rebuild them from
  # scratch with the empty cache: minutes, and not what is checked here).
  PATH="$root/.cache/bin:$PATH" GOCACHE="$work/gocache" goreleaser release --snapshot --clean
) >"$work/build2.log" 2>&1 || { cat "$work/build2.log"; exit 1; }
echo "    $(( $(date +%s) - start ))s"

# What to compare: the archives, bare binaries, SBOMs and sums (not
# GoReleaser's own metadata.json and artifacts.json, which record when and
# where it ran).
list() {
  (cd "$1/dist" && find . -path ./release -prune -o -type f \( -name '*.tar.gz' -o -name '*.zip' -o -name '*.cdx.json' -o -name SHA256SUMS \
    -o -name vault-plugin-secrets-sms -o -name vault-plugin-secrets-sms.exe \) -print | sed 's|^\./||' | LC_ALL=C sort)
}
list "$root" >"$work/files1"
list "$work/clone" >"$work/files2"
if ! cmp -s "$work/files1" "$work/files2"; then
  echo "FAIL: the two builds made different files:" >&2
  diff "$work/files1" "$work/files2" >&2 || true
  exit 1
fi
[ -s "$work/files1" ] || { echo "FAIL: build 1 made nothing to compare" >&2; exit 1; }
grep -q 'linux_amd64.*/vault-plugin-secrets-sms$' "$work/files1" || { echo "FAIL: no linux/amd64 binary" >&2; exit 1; }

echo "--- comparing byte for byte"
same=0 differ=0
while read -r f; do
  sum=$(sha256sum "$root/dist/$f" | cut -d' ' -f1)
  if cmp -s "$root/dist/$f" "$work/clone/dist/$f"; then
    printf '  identical  %s  %s\n' "$sum" "$f"
    same=$((same + 1))
  else
    printf '  DIFFERENT  %s  %s\n' "$sum" "$f"
    differ=$((differ + 1))
  fi
done <"$work/files1"

# The bare binaries' lines in SHA256SUMS are the binaries' own checksums.
version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' dist/metadata.json)
bin=$(grep 'linux_amd64.*/vault-plugin-secrets-sms$' "$work/files1")
want=$(sha256sum "dist/$bin" | cut -d' ' -f1)
got=$(awk -v n="vault-plugin-secrets-sms_${version}_linux_amd64" '$2 == n { print $1 }' dist/SHA256SUMS)
printed=$("dist/$bin" -version)
echo "--- linux/amd64 binary: -version prints $printed; SHA256SUMS has $got"
if [ "$printed" != "v$version" ] || [ "$got" != "$want" ]; then
  echo "FAIL: expected -version v$version and the binary's sha256 $want in SHA256SUMS" >&2
  differ=$((differ + 1))
fi

echo "release-check: $same passed, $differ failed"
[ "$differ" -eq 0 ]

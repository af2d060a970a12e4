#!/usr/bin/env bash
# make release-check: builds a release snapshot of HEAD twice and checks that
# the two are byte for byte the same:
#   build 1  in this checkout, with the usual Go build cache and the tools in
#            .cache/bin (into dist/snapshot/);
#   build 2  in a fresh `git clone` of HEAD in a temporary directory (another
#            path, another umask), with an empty Go build cache of its own,
#            another time zone (UTC+14) and locale, and its own
#            cyclonedx-gomod and cyclonedx-reproducible, built there unlike
#            build 1's (GOAMD64=v2, no -trimpath, another build cache; the
#            check fails if they come out the same), so that anything of the
#            tools' own binaries that reaches an SBOM shows as a difference,
#            as it would between two machines. GoReleaser is build 1's, from
#            .cache/bin: nothing of its binary reaches the artifacts, and
#            rebuilding it takes minutes.
# Both build linux/amd64 and darwin/arm64 (RELEASE_TARGETS=ci) and compare
# every binary, archive, SBOM and SHA256SUMS. The Go module cache is shared:
# its content is checked against go.sum either way.
#
# First, it fails if .goreleaser.yaml uses the time of the build in a
# template ({{ .Now }}, {{ .Date }}, {{ .Timestamp }}, the time function):
# two builds minutes apart could not show that difference reliably.
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

# Templates that read the clock. Comments are not templates: drop them first.
timed=$(sed -e 's/^[[:space:]]*#.*//' -e 's/[[:space:]]#.*//' .goreleaser.yaml |
  grep -nE '\.(Now|Date|Timestamp)([^A-Za-z0-9_]|$)|(^|[^A-Za-z0-9_.])time[[:space:]]+"' || true)
if [ -n "$timed" ]; then
  echo "FAIL: .goreleaser.yaml uses the build's time in a template (use .CommitDate or .CommitTimestamp):" >&2
  echo "$timed" >&2
  exit 1
fi
echo "ok: no template in .goreleaser.yaml reads the clock"

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
# Unsigned: a signature differs every time it is made (it holds its time),
# so neither build signs SHA256SUMS and only the sums themselves are
# compared; make release-sign-check covers the signing step.
unset RELEASE_GPG_KEY

echo "--- build 1: $root at $commit (GOCACHE $(go env GOCACHE), UTC$(date +%z), into dist/snapshot)"
start=$(date +%s)
scripts/goreleaser.sh --dist dist/snapshot release --snapshot --clean >"$work/build1.log" 2>&1 || { cat "$work/build1.log"; exit 1; }
echo "    $(( $(date +%s) - start ))s"

# Build 2's environment: a time zone 14 hours east of UTC (or 11 west, if
# this machine is already at +14), and a locale other than build 1's.
tz2=Pacific/Kiritimati
[ "$(date +%z)" != "$(TZ=$tz2 date +%z)" ] || tz2=Pacific/Pago_Pago
[ "$(TZ=$tz2 date +%z)" != +0000 ] || { echo "FAIL: no time zone data for $tz2 (install tzdata)" >&2; exit 1; }
locale2=C.UTF-8
for l in tr_TR.UTF-8 de_DE.UTF-8; do
  if locale -a 2>/dev/null | grep -qix "$(sed 's/UTF-8/utf8/' <<<"$l")"; then locale2=$l; break; fi
done

echo "--- build 2: a fresh clone in $work/clone (GOCACHE $work/gocache, empty, umask 0002, TZ $tz2 UTC$(TZ=$tz2 date +%z), LC_ALL $locale2)"
git clone --quiet --no-hardlinks "$root" "$work/clone"
git -C "$work/clone" checkout --quiet --detach "$commit"
start=$(date +%s)
# Its own SBOM tools, from the clone's tools/release, built unlike the ones
# in .cache/bin: another GOAMD64 (on amd64), no -trimpath, another cache.
(
  cd "$work/clone/tools/release"
  GOAMD64=v2 GOCACHE="$work/gocache-tools" go build -buildvcs=false -o "$work/bin/" \
    github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod ./cyclonedx-reproducible
) >"$work/tools2.log" 2>&1 || { cat "$work/tools2.log"; exit 1; }
if cmp -s "$root/.cache/bin/cyclonedx-gomod" "$work/bin/cyclonedx-gomod"; then
  echo "FAIL: build 2's cyclonedx-gomod is the same binary as build 1's: the check would miss its hash in the SBOMs" >&2
  exit 1
fi
echo "    its own cyclonedx-gomod (sha256 $(sha256sum "$work/bin/cyclonedx-gomod" | cut -c1-12)..., build 1's $(sha256sum "$root/.cache/bin/cyclonedx-gomod" | cut -c1-12)...) built in $(( $(date +%s) - start ))s"
start=$(date +%s)
(
  cd "$work/clone"
  umask 0002
  export TZ=$tz2 LC_ALL=$locale2 LANG=$locale2
  # GoReleaser from .cache/bin (scripts/goreleaser.sh would rebuild it from
  # scratch with the empty cache: minutes, and nothing of it reaches the
  # artifacts); the SBOM tools from $work/bin, first on PATH.
  PATH="$work/bin:$root/.cache/bin:$PATH" GOCACHE="$work/gocache" RELEASE_GIT_DIRTY= \
    goreleaser release --snapshot --clean --skip=sign --config - < <(cat .goreleaser.yaml; printf '\ndist: "dist/snapshot"\n')
) >"$work/build2.log" 2>&1 || { cat "$work/build2.log"; exit 1; }
echo "    $(( $(date +%s) - start ))s"

# What to compare: the archives, bare binaries, SBOMs and sums (not
# GoReleaser's own metadata.json and artifacts.json, which record when and
# where it ran).
list() {
  (cd "$1/dist/snapshot" && find . -path ./release -prune -o -type f \( -name '*.tar.gz' -o -name '*.zip' -o -name '*.cdx.json' -o -name SHA256SUMS \
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
  sum=$(sha256sum "$root/dist/snapshot/$f" | cut -d' ' -f1)
  if cmp -s "$root/dist/snapshot/$f" "$work/clone/dist/snapshot/$f"; then
    printf '  identical  %s  %s\n' "$sum" "$f"
    same=$((same + 1))
  else
    printf '  DIFFERENT  %s  %s\n' "$sum" "$f"
    differ=$((differ + 1))
  fi
done <"$work/files1"

# No SBOM records the hashes of the tool that wrote it (metadata.tools, up to
# metadata.component): cyclonedx-reproducible removes them.
for f in dist/snapshot/*.cdx.json; do
  if sed -n '/"tools"/,/"component"/p' "$f" | grep -q '"hashes"'; then
    echo "FAIL: $f records hashes of the tool that wrote it (metadata.tools)" >&2
    differ=$((differ + 1))
  fi
done

# The bare binaries' lines in SHA256SUMS are the binaries' own checksums.
d=dist/snapshot
version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' $d/metadata.json)
bin=$(grep 'linux_amd64.*/vault-plugin-secrets-sms$' "$work/files1")
want=$(sha256sum "$d/$bin" | cut -d' ' -f1)
got=$(awk -v n="vault-plugin-secrets-sms_${version}_linux_amd64" '$2 == n { print $1 }' $d/SHA256SUMS)
printed=$("$d/$bin" -version)
echo "--- linux/amd64 binary: -version prints $printed; SHA256SUMS has $got"
if [ "$printed" != "v$version" ] || [ "$got" != "$want" ]; then
  echo "FAIL: expected -version v$version and the binary's sha256 $want in SHA256SUMS" >&2
  differ=$((differ + 1))
fi
case $version in
  *-dirty) echo "FAIL: version $version: the tree was clean, yet the snapshot says -dirty" >&2; differ=$((differ + 1)) ;;
esac

echo "release-check: $same passed, $differ failed"
[ "$differ" -eq 0 ]

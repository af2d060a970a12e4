#!/usr/bin/env bash
# Runs the pinned GoReleaser (tools/release/go.mod) from the repository's root
# with the given arguments, e.g. `scripts/goreleaser.sh release --snapshot
# --clean`. It first builds GoReleaser, cyclonedx-gomod and
# cyclonedx-reproducible (tools/release/cyclonedx-reproducible, the SBOM
# command in .goreleaser.yaml, which runs cyclonedx-gomod) into .cache/bin:
# about 4 to 5 minutes on 2 cores and some 2 GB of module downloads the first
# time, under a second once built. The project's own go.mod is not involved.
#
#   scripts/goreleaser.sh --dist DIR ARGS...
#       the same with GoReleaser's dist directory set to DIR (relative to the
#       repository's root) instead of dist/: .goreleaser.yaml is passed on
#       stdin with `dist: DIR` added. Snapshots use dist/snapshot, so that
#       their --clean never removes the output of `make release` in dist/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dist=
if [ "${1:-}" = --dist ]; then
  dist=${2:?--dist needs a directory}
  shift 2
fi
bin="$root/.cache/bin"
mkdir -p "$bin"
# -buildvcs=false: the tools must not embed (and be relinked for) the state of
# this repository, whose subdirectory their module is.
(cd tools/release && go build -buildvcs=false -trimpath -o "$bin/" \
  github.com/goreleaser/goreleaser/v2 github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod \
  ./cyclonedx-reproducible)

# GoReleaser ignores every git fact (commit, commit date, tags) when the
# repository has no remote, as a fresh `git init` or a local-only repository
# has, and then builds with made-up ones. Name this directory as the remote
# for that run only; with a real remote this changes nothing.
if [ -z "$(git remote)" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0="$root"
fi

# A snapshot of a tree with changes is marked -dirty (.goreleaser.yaml);
# GoReleaser only notices them once the repository has a tag.
RELEASE_GIT_DIRTY=
[ -z "$(git status --porcelain)" ] || RELEASE_GIT_DIRTY=1
export RELEASE_GIT_DIRTY

export PATH="$bin:$PATH"
if [ -n "$dist" ]; then
  exec goreleaser "$@" --config - < <(cat .goreleaser.yaml; printf '\ndist: "%s"\n' "$dist")
fi
exec goreleaser "$@"

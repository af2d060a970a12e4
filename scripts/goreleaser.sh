#!/usr/bin/env bash
# Runs the pinned GoReleaser (tools/release/go.mod) from the repository's root
# with the given arguments, e.g. `scripts/goreleaser.sh release --snapshot
# --clean`. It first builds GoReleaser and cyclonedx-gomod (which GoReleaser
# runs for the SBOMs) into .cache/bin: about 3 minutes on 2 cores the first
# time, under a second once built. The project's own go.mod is not involved.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/.cache/bin"
mkdir -p "$bin"
# -buildvcs=false: the tools must not embed (and be relinked for) the state of
# this repository, whose subdirectory their module is.
(cd tools/release && go build -buildvcs=false -trimpath -o "$bin/" \
  github.com/goreleaser/goreleaser/v2 github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod)

# GoReleaser ignores every git fact (commit, commit date, tags) when the
# repository has no remote, as a fresh `git init` or a local-only repository
# has, and then builds with made-up ones. Name this directory as the remote
# for that run only; with a real remote this changes nothing.
if [ -z "$(git remote)" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0="$root"
fi

PATH="$bin:$PATH" exec goreleaser "$@"

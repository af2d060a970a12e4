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
#
# Signing (.goreleaser.yaml `signs`: SHA256SUMS.sig, a detached signature of
# SHA256SUMS made by gpg with the key RELEASE_GPG_KEY names):
#   release (not --snapshot)  must sign, with a key whose fingerprint is in
#       the repository's KEYS file (so that users can check it): by default
#       the one of KEYS' keys whose secret key is in your keyring, or
#       RELEASE_GPG_KEY=<fingerprint or user id>. Without one it fails before
#       building anything.
#   release --snapshot  signs only when RELEASE_GPG_KEY is set (any key: a
#       snapshot is never published; CI signs with a throwaway key and checks
#       the signature, scripts/check-signing.sh); otherwise --skip=sign.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dist=
if [ "${1:-}" = --dist ]; then
  dist=${2:?--dist needs a directory}
  shift 2
fi
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

# shellcheck source=scripts/gpg.sh
. "$root/scripts/gpg.sh"
releasing= snapshot=
for arg in "$@"; do
  case $arg in
    release) releasing=1 ;;
    --snapshot) snapshot=1 ;;
  esac
done
if [ -n "$releasing" ] && [ -n "$snapshot" ] && [ -z "${RELEASE_GPG_KEY:-}" ]; then
  set -- "$@" --skip=sign
elif [ -n "$releasing" ]; then
  need_gpg
  if [ -z "$snapshot" ]; then
    trusted=$(keys_fingerprints KEYS)
    if [ -z "$trusted" ]; then
      echo "make release signs SHA256SUMS, but KEYS holds no public key yet: the maintainer adds theirs first (see KEYS), in a commit before the tag." >&2
      exit 1
    fi
    if [ -n "${RELEASE_GPG_KEY:-}" ]; then
      mine=$(gpg --batch --with-colons --list-secret-keys -- "$RELEASE_GPG_KEY" 2>/dev/null |
        awk -F: '$1 == "sec" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }' || true)
      [ -n "$mine" ] || { echo "RELEASE_GPG_KEY=$RELEASE_GPG_KEY: no such secret key in your GnuPG keyring" >&2; exit 1; }
      [ "$(wc -l <<<"$mine")" -eq 1 ] || { echo "RELEASE_GPG_KEY=$RELEASE_GPG_KEY names several secret keys: give a fingerprint" >&2; exit 1; }
      grep -qx "$mine" <<<"$trusted" || {
        echo "RELEASE_GPG_KEY=$RELEASE_GPG_KEY is key $mine, which is not in KEYS: users could not verify its signature. Refusing to sign with it." >&2
        exit 1
      }
    else
      mine=
      for fpr in $trusted; do
        if gpg --batch --list-secret-keys -- "$fpr" >/dev/null 2>&1; then mine=$fpr; break; fi
      done
      [ -n "$mine" ] || {
        echo "make release signs SHA256SUMS with a key from KEYS, and your GnuPG keyring has the secret key of none of them ($(paste -sd' ' <<<"$trusted")): import yours, or set RELEASE_GPG_KEY." >&2
        exit 1
      }
    fi
    RELEASE_GPG_KEY=$mine
    echo "Signing SHA256SUMS with key $RELEASE_GPG_KEY (in KEYS)" >&2
  fi
  export RELEASE_GPG_KEY
fi

bin="$root/.cache/bin"
mkdir -p "$bin"
# -buildvcs=false: the tools must not embed (and be relinked for) the state of
# this repository, whose subdirectory their module is.
(cd tools/release && go build -buildvcs=false -trimpath -o "$bin/" \
  github.com/goreleaser/goreleaser/v2 github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod \
  ./cyclonedx-reproducible)

export PATH="$bin:$PATH"
if [ -n "$dist" ]; then
  exec goreleaser "$@" --config - < <(cat .goreleaser.yaml; printf '\ndist: "%s"\n' "$dist")
fi
exec goreleaser "$@"

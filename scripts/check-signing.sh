#!/usr/bin/env bash
# make release-sign-check (run by .ci/run): a release snapshot of this tree
# into dist/snapshot/ (make release-snapshot), signed by GoReleaser's signing
# step with a throwaway key made for this run, then verified the way the
# README tells users to verify a release: in a keyring that holds only the
# public key, `gpg --verify SHA256SUMS.sig SHA256SUMS`, then
# `sha256sum --check --ignore-missing SHA256SUMS`. A SHA256SUMS changed by
# one byte must fail to verify. Both keyrings are temporary and removed on
# exit; the throwaway key never leaves them.
#
#   RELEASE_TARGETS  passed on (default ci: linux/amd64 and darwin/arm64)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/gpg.sh
. scripts/gpg.sh
need_gpg

signer=$(temp_gnupghome)
user=$(temp_gnupghome)
trap 'drop_gnupghome "$signer"; drop_gnupghome "$user"' EXIT

GNUPGHOME="$signer" gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "vault-plugin-secrets-sms release-sign-check (throwaway) <release-sign-check@invalid>" ed25519 sign 1d 2>/dev/null
fpr=$(GNUPGHOME="$signer" gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || { echo "FAIL: could not make a throwaway key" >&2; exit 1; }
echo "--- a snapshot signed with the throwaway key $fpr"
GNUPGHOME="$signer" RELEASE_GPG_KEY="$fpr" make --no-print-directory release-snapshot RELEASE_TARGETS="${RELEASE_TARGETS:-ci}"

rel=dist/snapshot/release
[ -f "$rel/SHA256SUMS.sig" ] || { echo "FAIL: $rel has no SHA256SUMS.sig: the signing step did not run" >&2; exit 1; }

echo "--- verified as a user would, with only the public key (README, \"Verify a release\")"
GNUPGHOME="$signer" gpg --batch --armor --export "$fpr" >"$user/KEYS"
GNUPGHOME="$user" gpg --batch --quiet --import "$user/KEYS" 2>/dev/null
status=$(cd "$rel" && GNUPGHOME="$user" gpg --batch --status-fd 1 --verify SHA256SUMS.sig SHA256SUMS 2>/dev/null) ||
  { echo "FAIL: gpg --verify SHA256SUMS.sig SHA256SUMS failed" >&2; exit 1; }
grep -q "^\[GNUPG:\] VALIDSIG $fpr " <<<"$status" ||
  { echo "FAIL: SHA256SUMS.sig is not a valid signature by $fpr:" >&2; echo "$status" >&2; exit 1; }
echo "ok: gpg --verify SHA256SUMS.sig SHA256SUMS: good signature by $fpr"
(cd "$rel" && sha256sum --check --ignore-missing --quiet SHA256SUMS)
echo "ok: sha256sum --check --ignore-missing SHA256SUMS: $(wc -l <"$rel/SHA256SUMS") files"

# The signature covers SHA256SUMS' bytes: one changed checksum must fail it.
sed '1s/^./x/' "$rel/SHA256SUMS" >"$user/SHA256SUMS"
if GNUPGHOME="$user" gpg --batch --verify "$rel/SHA256SUMS.sig" "$user/SHA256SUMS" 2>/dev/null; then
  echo "FAIL: SHA256SUMS.sig also verifies a changed SHA256SUMS" >&2
  exit 1
fi
echo "ok: a SHA256SUMS changed by one byte fails gpg --verify"
echo "release-sign-check: passed"

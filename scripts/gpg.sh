# Shared by goreleaser.sh, release-files.sh and check-signing.sh: GnuPG for
# signing SHA256SUMS and checking that signature. Source it; it defines
# functions only.

# need_gpg: makes sure gpg is there, installing GnuPG with apt-get when this
# runs as root on a machine that has it (a fresh CI machine); otherwise says
# how to get it.
need_gpg() {
  command -v gpg >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "gpg not found: installing GnuPG (apt-get install gnupg)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnupg >&2
    command -v gpg >/dev/null 2>&1 && return 0
  fi
  echo "gpg (GnuPG) is needed to sign and verify SHA256SUMS: install it (Debian/Ubuntu: apt-get install gnupg; macOS: brew install gnupg)" >&2
  return 1
}

# temp_gnupghome: prints a new, empty GnuPG home directory; remove it with
# drop_gnupghome.
temp_gnupghome() {
  local home
  home=$(mktemp -d "${TMPDIR:-/tmp}/sms-gpg.XXXXXX")
  chmod 700 "$home"
  echo "$home"
}

# drop_gnupghome DIR: stops the agent gpg may have started for DIR and
# removes DIR.
drop_gnupghome() {
  [ -n "${1:-}" ] && [ -d "$1" ] || return 0
  GNUPGHOME="$1" gpgconf --kill all 2>/dev/null || true
  rm -rf "$1"
}

# keys_fingerprints FILE: the fingerprints of the primary keys in FILE (the
# repository's KEYS), one a line; nothing if it holds none. The caller's
# keyring is not touched.
keys_fingerprints() {
  local home
  home=$(temp_gnupghome)
  GNUPGHOME="$home" gpg --batch --show-keys --with-colons "$1" 2>/dev/null |
    awk -F: '$1 == "pub" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }' || true
  drop_gnupghome "$home"
}

#!/usr/bin/env bash
# make dev-check: what a new user does after `make dev`, checked.
#   1. runs `make dev` in the background on a free port (DEV_VAULT_PORT) and
#      waits for the lines it prints to paste into another terminal;
#   2. pastes them into a clean shell (env -i bash --noprofile --norc, with a
#      PATH on which there is no vault, started outside the repository) and
#      checks that the reads they contain print the stand-in's passphrases;
#   3. does the same with the README's "After `make dev`" block, from the
#      repository's directory;
#   4. stops `make dev` as Ctrl-C would (SIGINT to its process group) and
#      checks that nothing it started is left: no process, no listener, no
#      work directory, no .cache/dev/env.sh.
# VAULT_BIN is passed to make dev as usual (scripts/vault.sh), never to the
# clean shells.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEV_VAULT_PORT:-}
if [ -z "$port" ]; then
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 20000 ))
    port_in_use "$port" || break
  done
fi

check=$(mktemp -d "${TMPDIR:-/tmp}/sms-dev-check.XXXXXX")
dev_pid=
cleanup() {
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -INT -- "-$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM -- "-$dev_pid" 2>/dev/null || true
  fi
  rm -rf "$check"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- make dev's output:" >&2
  cat "$check/dev.out" >&2 || true
  exit 1
}

echo "--- make dev on 127.0.0.1:$port"
# set -m: make dev gets its own process group, as in a terminal, so that one
# SIGINT to the group is Ctrl-C.
set -m
DEV_VAULT_PORT=$port make --no-print-directory dev </dev/null >"$check/dev.out" 2>&1 &
dev_pid=$!
set +m

# The first make dev on a machine may build Vault (about 10 minutes).
deadline=$(( $(date +%s) + ${DEV_CHECK_TIMEOUT:-1800} ))
until grep -q 'Press Ctrl-C to stop' "$check/dev.out"; do
  kill -0 "$dev_pid" 2>/dev/null || fail "make dev exited before printing what to paste"
  [ "$(date +%s)" -lt "$deadline" ] || fail "make dev printed nothing to paste in time"
  sleep 1
done

# The indented lines between "In another terminal" and "Logs:".
sed -n '/^In another terminal/,/^Logs:/{/^  /s/^  //p}' "$check/dev.out" >"$check/pasted.sh"
grep -q '^export PATH=' "$check/pasted.sh" || fail "make dev printed no PATH line"
echo "Lines make dev printed to paste:"
sed 's/^/  | /' "$check/pasted.sh"

# A clean shell: no environment but HOME and a minimal PATH without vault.
mkdir -p "$check/home" "$check/elsewhere"
clean_path=/usr/local/bin:/usr/bin:/bin
if PATH=$clean_path command -v vault >/dev/null 2>&1; then
  echo "(a vault is installed in $clean_path; the clean shell gets an empty PATH instead)"
  mkdir -p "$check/empty-bin"
  clean_path=$check/empty-bin
fi
clean_shell() { # DIR: runs stdin, as pasted, in a clean shell started in DIR
  (cd "$1" && env -i HOME="$check/home" PATH="$clean_path" TERM=dumb bash --noprofile --norc -e -s)
}
echo 'command -v vault' | clean_shell "$check/elsewhere" >/dev/null 2>&1 &&
  fail "the clean shell finds a vault before anything is pasted"

expect_passphrases() { # FILE: output of a paste
  local want
  for want in correct-horse-battery-staple team-a-secret team-b-secret team-a-web-passphrase team-a-db-passphrase; do
    grep -Eq "^passphrase[[:space:]]+$want\$" "$1" || fail "no passphrase $want in:
$(cat "$1")"
  done
}

echo "--- pasted into a clean shell (cwd $check/elsewhere, PATH=$clean_path)"
clean_shell "$check/elsewhere" <"$check/pasted.sh" >"$check/pasted.out" 2>&1 ||
  fail "the pasted lines failed:
$(cat "$check/pasted.out")"
expect_passphrases "$check/pasted.out"
grep -q "is not in the scope of role" "$check/pasted.out" || fail "team A's token read team B's task:
$(cat "$check/pasted.out")"
grep -q "team-b-web-passphrase" "$check/pasted.out" && fail "team A's token got team B's passphrase"
echo "ok: every read printed its passphrase; team A's token was refused team B's task"

echo "--- the README's \"After \`make dev\`\" block in a clean shell (cwd $root)"
# The first shell block after the line that starts with "After `make dev`".
awk '/^After `make dev`/ { after = 1; next }
     after && /^```shell$/ { inblock = 1; next }
     inblock && /^```$/ { exit }
     inblock { print }' README.md >"$check/readme.sh"
[ -s "$check/readme.sh" ] || fail "no shell block after \"After \`make dev\`\" in README.md"
sed 's/^/  | /' "$check/readme.sh"
clean_shell "$root" <"$check/readme.sh" >"$check/readme.out" 2>&1 ||
  fail "the README's block failed:
$(cat "$check/readme.out")"
expect_passphrases "$check/readme.out"
echo "ok: every read printed its passphrase"

echo "--- Ctrl-C (SIGINT to make dev's process group)"
dev_work=$(sed -n 's/^Logs: \(.*\)\/vault\.log and .*/\1/p' "$check/dev.out")
[ -n "$dev_work" ] || fail "make dev did not name its work directory"
kill -INT -- "-$dev_pid"
for _ in $(seq 1 300); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$dev_pid" 2>/dev/null && fail "make dev still runs 30s after SIGINT"
wait "$dev_pid" 2>/dev/null || true
dev_pid=
grep -q 'Stopped the local Vault and SMS stand-in' "$check/dev.out" || fail "make dev did not report stopping"
left=$(pgrep -af -- "$dev_work" || true)
[ -z "$left" ] || fail "processes left running:
$left"
port_in_use "$port" && fail "something still listens on 127.0.0.1:$port"
[ ! -e "$dev_work" ] || fail "$dev_work was not removed"
[ ! -e .cache/dev/env.sh ] || fail ".cache/dev/env.sh was not removed"
echo "ok: make dev stopped; no process, listener, work directory or env file left"
echo "dev-check: 2 passed, 0 failed"

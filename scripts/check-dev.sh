#!/usr/bin/env bash
# make dev-check: what a new user does after `make dev`, checked.
#   1. runs `make dev` in the background on a free port (DEV_VAULT_PORT) and
#      waits for the lines it prints to paste into another terminal;
#   2. pastes them into a clean shell (env -i bash --noprofile --norc, with a
#      PATH on which there is no vault, started outside the repository) and
#      checks that the reads they contain print the stand-in's passphrases;
#   3. does the same with the README's "After `make dev`" block, from the
#      repository's directory (its `. .cache/dev/env.sh` reads this check's
#      own env file: see below);
#   4. stops `make dev` as Ctrl-C would (SIGINT to its process group) and
#      checks that nothing it started is left: no process, no listener, no
#      work directory, no env file;
#   5. starts `make dev` again and stops it with two Ctrl-C, the second while
#      it is stopping (held there by pausing the SMS stand-in with SIGSTOP
#      until after the second SIGINT), and checks the same;
#   6. starts it a third time and stops it with SIGTERM to its process group,
#      as a supervisor or `timeout` would, and checks the same.
# make dev writes its exports to a file of this check's own (DEV_ENV_FILE),
# so that a `make dev` running meanwhile keeps its .cache/dev/env.sh; the
# check fails if that file changes. Processes are found through /proc.
# VAULT_BIN is passed to make dev as usual (scripts/vault.sh), never to the
# clean shells.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Processes are looked up in /proc (no procps needed); without it the check
# could not tell whether make dev left any running.
[ -r /proc/self/cmdline ] || { echo "FAIL: no /proc: cannot check for processes left running" >&2; exit 1; }
# procs_matching STRING: "pid command line" of every process whose command
# line contains STRING (not this shell, nor the subshell doing the search).
procs_matching() {
  local d cmd
  for d in /proc/[0-9]*; do
    case ${d#/proc/} in "$$" | "$BASHPID") continue ;; esac
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case $cmd in *"$1"*) echo "${d#/proc/} $cmd" ;; esac
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEV_VAULT_PORT:-}
if [ -z "$port" ]; then
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 20000 ))
    port_in_use "$port" || break
  done
fi

check=$(mktemp -d "${TMPDIR:-/tmp}/sms-dev-check.XXXXXX")
env_file=$check/env.sh
shared_env=$root/.cache/dev/env.sh
shared_state() { if [ -e "$shared_env" ]; then cksum <"$shared_env"; else echo absent; fi; }
shared_before=$(shared_state)
dev_pid=
paused=
cleanup() {
  [ -z "$paused" ] || kill -CONT "$paused" 2>/dev/null || true
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -INT -- "-$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
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

# start_dev: runs make dev in the background, in a process group of its own
# (set -m), as in a terminal, so that a signal to the group is Ctrl-C; waits
# for the lines to paste and sets $dev_work to its work directory.
start_dev() {
  set -m
  DEV_VAULT_PORT=$port DEV_ENV_FILE=$env_file make --no-print-directory dev </dev/null >"$check/dev.out" 2>&1 &
  dev_pid=$!
  set +m
  # The first make dev on a machine may build Vault (about 10 minutes).
  local deadline=$(( $(date +%s) + ${DEV_CHECK_TIMEOUT:-1800} ))
  until grep -q 'Press Ctrl-C to stop' "$check/dev.out"; do
    kill -0 "$dev_pid" 2>/dev/null || fail "make dev exited before printing what to paste"
    [ "$(date +%s)" -lt "$deadline" ] || fail "make dev printed nothing to paste in time"
    sleep 1
  done
  dev_work=$(sed -n 's/^Logs: \(.*\)\/vault\.log and .*/\1/p' "$check/dev.out")
  [ -n "$dev_work" ] && [ -d "$dev_work" ] || fail "make dev did not name its work directory"
  [ -n "$(procs_matching "$dev_work")" ] || fail "no process of make dev's found in /proc (looked for $dev_work)"
  [ -s "$env_file" ] || fail "make dev wrote no $env_file"
}

# expect_stopped HOW: make dev, signalled, exits within 30 s and leaves
# nothing behind.
expect_stopped() {
  for _ in $(seq 1 300); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$dev_pid" 2>/dev/null && fail "make dev still runs 30s after $1"
  wait "$dev_pid" 2>/dev/null || true
  dev_pid=
  grep -q 'Stopped the local Vault and SMS stand-in' "$check/dev.out" || fail "make dev did not report stopping after $1"
  local left
  left=$(procs_matching "$dev_work")
  [ -z "$left" ] || fail "processes left running after $1:
$left"
  port_in_use "$port" && fail "something still listens on 127.0.0.1:$port after $1"
  [ ! -e "$dev_work" ] || fail "$dev_work was not removed after $1"
  [ ! -e "$env_file" ] || fail "$env_file was not removed after $1"
  [ "$(shared_state)" = "$shared_before" ] ||
    fail "$shared_env changed: make dev-check must leave another make dev's file alone"
  echo "ok: make dev stopped after $1; no process, listener, work directory or env file left"
}

echo "--- make dev on 127.0.0.1:$port"
start_dev

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
# The first shell block after the line that starts with "After `make dev`",
# reading this check's env file where it says .cache/dev/env.sh.
awk '/^After `make dev`/ { after = 1; next }
     after && /^```shell$/ { inblock = 1; next }
     inblock && /^```$/ { exit }
     inblock { print }' README.md >"$check/readme.sh"
[ -s "$check/readme.sh" ] || fail "no shell block after \"After \`make dev\`\" in README.md"
grep -q '^\. \.cache/dev/env\.sh' "$check/readme.sh" || fail "the README's block does not start with . .cache/dev/env.sh"
sed 's/^/  | /' "$check/readme.sh"
sed "s|^\. \.cache/dev/env\.sh|. $(printf %q "$env_file")|" "$check/readme.sh" >"$check/readme-here.sh"
clean_shell "$root" <"$check/readme-here.sh" >"$check/readme.out" 2>&1 ||
  fail "the README's block failed:
$(cat "$check/readme.out")"
expect_passphrases "$check/readme.out"
echo "ok: every read printed its passphrase"

echo "--- Ctrl-C (SIGINT to make dev's process group)"
kill -INT -- "-$dev_pid"
expect_stopped "SIGINT"

echo "--- make dev again; Ctrl-C twice, the second while it stops"
start_dev
# The stand-in, paused, cannot act on the SIGTERM make dev sends it, so make
# dev is still stopping when the second SIGINT comes.
paused=$(procs_matching "$dev_work/sms.url" | awk '/sms-fake/ { print $1; exit }')
[ -n "$paused" ] || fail "no SMS stand-in process found"
kill -STOP "$paused"
kill -INT -- "-$dev_pid"
for _ in $(seq 1 100); do grep -q 'Stopping the local Vault' "$check/dev.out" && break; sleep 0.1; done
grep -q 'Stopping the local Vault' "$check/dev.out" || fail "make dev did not start stopping after SIGINT"
sleep 1
[ -d "$dev_work" ] || fail "make dev was done stopping before the second SIGINT: the check proves nothing"
kill -INT -- "-$dev_pid"
sleep 1
kill -0 "$dev_pid" 2>/dev/null || fail "the second SIGINT killed make dev while it was stopping"
[ -d "$dev_work" ] || fail "make dev removed its work directory before its processes had stopped"
kill -CONT "$paused"
paused=
expect_stopped "two SIGINTs"

echo "--- make dev again; SIGTERM to its process group"
start_dev
kill -TERM -- "-$dev_pid"
expect_stopped "SIGTERM"

echo "dev-check: 5 passed, 0 failed"

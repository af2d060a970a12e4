# Shared by dev.sh and bench.sh: a work directory that is removed on exit, and
# a local stack of the SMS stand-in plus a Vault dev server on 127.0.0.1.
# Source it; it defines functions only.

# new_workdir NAME: sets $work, and traps (exit, INT, TERM, HUP) that stop
# every process started by start_stack and remove $work and every file given
# to stack_owned_file that still holds what this run wrote.
new_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  stack_pids=()
  stack_owned=()
  trap stop_stack EXIT
  trap 'stop_stack; exit 129' HUP
  trap 'stop_stack; exit 130' INT
  trap 'stop_stack; exit 143' TERM
}

# stack_owned_file FILE: removes FILE on stop if its content is still what it
# is now, so that a run never removes the file of another run that replaced
# it since.
stack_owned_file() {
  stack_owned+=("$1" "$(cksum <"$1")")
}

# stop_stack: runs once, to the end, whatever signals arrive meanwhile (a
# second Ctrl-C, a TERM from a supervisor): they are ignored from here on.
# Every process group is sent SIGTERM first, then the groups are given up to
# STOP_TIMEOUT seconds (default 15) to go, Vault's plugin processes included,
# and what is left gets SIGKILL.
stop_stack() {
  trap '' INT TERM HUP
  trap - EXIT
  echo "Stopping the local Vault and SMS stand-in..." >&2
  local pid i alive
  for pid in "${stack_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  # Bash reaps its exited children by itself, so a group answers kill -0
  # only while one of its processes still runs.
  for (( i = 0; i < ${STOP_TIMEOUT:-15} * 10; i++ )); do
    alive=
    for pid in "${stack_pids[@]}"; do
      if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ -n "$alive" ] || break
    sleep 0.1
  done
  if [ -n "${alive:-}" ]; then
    echo "Some processes did not stop in ${STOP_TIMEOUT:-15}s; killing them." >&2
    for pid in "${stack_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  fi
  wait 2>/dev/null || true
  for (( i = 0; i < ${#stack_owned[@]}; i += 2 )); do
    if [ "$(cksum <"${stack_owned[i]}" 2>/dev/null)" = "${stack_owned[i + 1]}" ]; then
      rm -f "${stack_owned[i]}"
    fi
  done
  rm -rf "$work"
  echo "Stopped the local Vault and SMS stand-in." >&2
}

# start_stack VAULT_BIN PORT LOG_LEVEL FAKE_BIN [FAKE_ARGS...]: starts the
# stand-in and `vault server -dev` (root token "root", plugins from
# $work/plugins), waits for both, and exports VAULT_ADDR, VAULT_TOKEN and
# sets $sms_url.
start_stack() {
  local vault_bin=$1 port=$2 log_level=$3 fake_bin=$4
  shift 4
  # set -m gives each background job its own process group, so that
  # stop_stack also stops the plugin processes Vault starts. TMPDIR keeps
  # their sockets inside $work.
  set -m
  "$fake_bin" -listen 127.0.0.1:0 -url-file "$work/sms.url" "$@" >"$work/sms-fake.log" 2>&1 &
  stack_pids+=($!)
  TMPDIR="$work" "$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
    -dev-plugin-dir="$work/plugins" -log-level="$log_level" >"$work/vault.log" 2>&1 &
  stack_pids+=($!)
  set +m

  export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
  for _ in $(seq 1 100); do
    [ -s "$work/sms.url" ] && "$vault_bin" status >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$vault_bin" status >/dev/null || { echo "Vault did not start; its log:" >&2; cat "$work/vault.log" >&2; return 1; }
  sms_url=$(cat "$work/sms.url")
}

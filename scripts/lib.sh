# Shared by dev.sh and bench.sh: a work directory that is removed on exit, and
# a local stack of the SMS stand-in plus a Vault dev server on 127.0.0.1.
# Source it; it defines functions only.

# new_workdir NAME: sets $work, and a trap that stops every process started by
# start_stack and removes $work and every file named in $stack_files.
new_workdir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  stack_pids=()
  stack_files=()
  trap stop_stack EXIT INT TERM
}

stop_stack() {
  trap - EXIT INT TERM
  for pid in "${stack_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "${stack_files[@]}"
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

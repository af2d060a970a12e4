#!/usr/bin/env bash
# make dev: start the SMS stand-in and a Vault dev server with the plugin, on
# 127.0.0.1, mount the engine three times (one per auth method), and print what
# to paste next. Ctrl-C stops everything this script started.
#
# The lines it prints work pasted into a fresh terminal, whichever way Vault
# was found (VAULT_BIN, PATH, or built into .cache/vault/): they put the
# directory of the Vault in use first on PATH. The same exports are written
# to .cache/dev/env.sh (removed on stop), for `. .cache/dev/env.sh` from the
# repository's directory. scripts/check-dev.sh checks both.
#
#   DEV_VAULT_PORT  Vault's port (default 8200)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${DEV_VAULT_PORT:-8200}
vault_bin=$(scripts/vault.sh)

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "Port $port is in use; set DEV_VAULT_PORT to another port." >&2
  exit 1
fi

. scripts/lib.sh
new_workdir sms-dev
mkdir -p "$work/plugins"
cp bin/vault-plugin-secrets-sms "$work/plugins/"
start_stack "$vault_bin" "$port" info bin/sms-fake

v() { "$vault_bin" "$@" >/dev/null; }
vault_dir=$(cd "$(dirname "$vault_bin")" && pwd)
# One mount per auth method; the stand-in accepts the demo credentials of each.
v secrets enable -path=sms vault-plugin-secrets-sms
v write sms/config endpoint="$sms_url" token=demo-token
v secrets enable -path=sms-aksk vault-plugin-secrets-sms
v write sms-aksk/config endpoint="$sms_url" access_key=demo-access-key secret_key=demo-secret-key
v secrets enable -path=sms-iam vault-plugin-secrets-sms
v write sms-iam/config endpoint="$sms_url" iam_endpoint="$sms_url" username=demo-user password=demo-password domain_name=demo-domain

# The lines to paste, with every value quoted for the shell. PATH stays
# unexpanded, so that it is the pasting terminal's own.
exports="export PATH=$(printf %q "$vault_dir"):\"\$PATH\"
export VAULT_ADDR=$(printf %q "$VAULT_ADDR")
export VAULT_TOKEN=$(printf %q "$VAULT_TOKEN")"
mkdir -p .cache/dev
stack_files+=("$root/.cache/dev/env.sh")
printf '# Written by make dev (scripts/dev.sh); removed when it stops.\n%s\n' "$exports" >.cache/dev/env.sh

cat <<EOT

Vault $("$vault_bin" version | awk '{print $2}' | tr -d ,) dev server on $VAULT_ADDR with vault-plugin-secrets-sms mounted at:
  sms/       token auth
  sms-aksk/  AK/SK signing
  sms-iam/   IAM user (token obtained and renewed by the engine)
SMS stand-in on $sms_url with tasks demo-task-0001, team-a-0001 and team-b-0001.

In another terminal (the same exports are in .cache/dev/env.sh):

$(sed 's/^/  /' <<<"$exports")
  vault read sms/passphrase/demo-task-0001
  vault read sms-aksk/passphrase/team-a-0001
  vault read sms-iam/passphrase/team-b-0001
  vault read sms/config
  vault read sms/cache

Logs: $work/vault.log and $work/sms-fake.log. Press Ctrl-C to stop.
EOT
wait

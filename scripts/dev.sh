#!/usr/bin/env bash
# make dev: start the SMS stand-in and a Vault dev server with the plugin, on
# 127.0.0.1, mount the engine three times (one per auth method), create two
# teams' roles and policies, and print what to paste next. Ctrl-C stops
# everything this script started.
#
# The lines it prints work pasted into a fresh terminal, whichever way Vault
# was found (VAULT_BIN, PATH, or built into .cache/vault/): they put the
# directory of the Vault in use first on PATH. The same exports are written
# to .cache/dev/env.sh, for `. .cache/dev/env.sh` from the repository's
# directory, and removed on stop unless another make dev has replaced them
# meanwhile (the latest make dev's exports are the ones in the file).
# scripts/check-dev.sh checks both.
#
#   DEV_VAULT_PORT  Vault's port (default 8200)
#   DEV_ENV_FILE    where to write the exports (default .cache/dev/env.sh;
#                   make dev-check uses a file of its own)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${DEV_VAULT_PORT:-8200}
env_file=${DEV_ENV_FILE:-$root/.cache/dev/env.sh}
vault_bin=$(scripts/vault.sh)

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "Port $port is in use; set DEV_VAULT_PORT to another port." >&2
  exit 1
fi

. scripts/lib.sh
new_workdir sms-dev
mkdir -p "$work/plugins"
cp bin/vault-plugin-secrets-sms "$work/plugins/"
# Two teams' migration tasks, with the UUID ids SMS gives them, in two
# enterprise projects, beside the demo tasks of the auth-method mounts.
team_a_web=d7fa81b9-c174-4c0a-a475-51a54c8af8a4
team_a_db=3f1c9a52-7d0e-4b8a-9c11-0a2b3c4d5e6f
team_b_web=8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586
start_stack "$vault_bin" "$port" info bin/sms-fake \
  -tasks "demo-task-0001=correct-horse-battery-staple,team-a-0001=team-a-secret,team-b-0001=team-b-secret,$team_a_web=team-a-web-passphrase,$team_a_db=team-a-db-passphrase,$team_b_web=team-b-web-passphrase" \
  -task-meta "$team_a_web=team-a-web01:ep-team-a:SYNCING,$team_a_db=team-a-db01:ep-team-a,$team_b_web=team-b-web01:ep-team-b"

v() { "$vault_bin" "$@" >/dev/null; }
vault_dir=$(cd "$(dirname "$vault_bin")" && pwd)
# One mount per auth method; the stand-in accepts the demo credentials of each.
v secrets enable -path=sms vault-plugin-secrets-sms
v write sms/config endpoint="$sms_url" token=demo-token
v secrets enable -path=sms-aksk vault-plugin-secrets-sms
v write sms-aksk/config endpoint="$sms_url" access_key=demo-access-key secret_key=demo-secret-key
v secrets enable -path=sms-iam vault-plugin-secrets-sms
v write sms-iam/config endpoint="$sms_url" iam_endpoint="$sms_url" username=demo-user password=demo-password domain_name=demo-domain
# A role and a policy per team: team A by enterprise project, team B by
# enterprise project and task name.
v write sms/roles/team-a enterprise_project_ids=ep-team-a description="Team A migrations"
v write sms/roles/team-b enterprise_project_ids=ep-team-b task_name_globs='team-b-*' description="Team B web migrations"
for team in team-a team-b; do
  printf 'path "sms/roles/%s/passphrase/*" { capabilities = ["read"] }\npath "sms/roles/%s/tasks" { capabilities = ["list"] }\n' "$team" "$team" |
    "$vault_bin" policy write "$team" - >/dev/null
done

# The lines to paste, with every value quoted for the shell. PATH stays
# unexpanded, so that it is the pasting terminal's own.
exports="export PATH=$(printf %q "$vault_dir"):\"\$PATH\"
export VAULT_ADDR=$(printf %q "$VAULT_ADDR")
export VAULT_TOKEN=$(printf %q "$VAULT_TOKEN")"
mkdir -p "$(dirname "$env_file")"
if [ -e "$env_file" ]; then
  echo "Replacing $env_file (another make dev's, or left by one that was killed)." >&2
fi
printf '# Written by make dev (scripts/dev.sh) for %s; removed when it stops.\n%s\n' "$VAULT_ADDR" "$exports" >"$env_file"
stack_owned_file "$env_file"
# The file's name as the user would type it: relative to the repository.
env_name=${env_file#"$root"/}

cat <<EOT

Vault $("$vault_bin" version | awk '{print $2}' | tr -d ,) dev server on $VAULT_ADDR with vault-plugin-secrets-sms mounted at:
  sms/       token auth
  sms-aksk/  AK/SK signing
  sms-iam/   IAM user (token obtained and renewed by the engine)
SMS stand-in on $sms_url with tasks demo-task-0001, team-a-0001 and team-b-0001,
and, as SMS names them, $team_a_web (team-a-web01) and $team_a_db (team-a-db01)
in enterprise project ep-team-a, $team_b_web (team-b-web01) in ep-team-b.
Roles sms/roles/team-a and sms/roles/team-b, and policies team-a and team-b.

In another terminal (the same exports are in $env_name):

$(sed 's/^/  /' <<<"$exports")
  vault read sms/passphrase/demo-task-0001
  vault read sms-aksk/passphrase/team-a-0001
  vault read sms-iam/passphrase/team-b-0001
  vault read sms/config
  vault read sms/cache
  vault list sms/roles/team-a/tasks
  vault read sms/roles/team-a/passphrase/$team_a_web
  export TEAM_A_TOKEN=\$(vault token create -policy=team-a -field=token)
  VAULT_TOKEN=\$TEAM_A_TOKEN vault read sms/roles/team-a/passphrase/$team_a_db
  VAULT_TOKEN=\$TEAM_A_TOKEN vault read sms/roles/team-a/passphrase/$team_b_web || echo "(403: team B's task is not in team A's scope)"

Logs: $work/vault.log and $work/sms-fake.log. Press Ctrl-C to stop.
EOT
wait

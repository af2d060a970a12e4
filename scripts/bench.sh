#!/usr/bin/env bash
# make bench-e2e: end-to-end read throughput and latency through a real Vault,
# against two baselines in the same Vault and the same run:
#   kv              a built-in KV version 1 read (no plugin process at all)
#   minimal-plugin  bench/minimalplugin: an external plugin on the SDK
#                   framework answering constant data for the same path shape
#   raw-plugin      bench/rawplugin: the same without the framework, the true
#                   floor of an external plugin (one gRPC round trip)
#   sms             this engine, cached read
#   sms-role        this engine, cached read through a role (scope check on
#                   cached task metadata, then the cached passphrase)
# Targets alternate (kv, minimal, raw, sms, kv, ...) for ROUNDS rounds, so that
# noise from a shared machine falls on all of them alike; medians are printed
# with the ratios. Then the upstream amplification check: 64 clients over
# 1,000 cold task ids, upstream requests counted by the SMS stand-in.
#
#   ROUNDS (default 5)  DURATION per run (default 5s)  CLIENTS (default 16)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${ROUNDS:-5}
duration=${DURATION:-5s}
clients=${CLIENTS:-16}
vault_bin=${VAULT_BIN:-$(scripts/vault.sh)}

. scripts/lib.sh
new_workdir sms-bench
mkdir -p "$work/plugins"
go build -o "$work/loadgen" ./bench/loadgen
go build -o "$work/plugins/minimal-plugin" ./bench/minimalplugin
go build -o "$work/plugins/raw-plugin" ./bench/rawplugin
go build -trimpath -ldflags '-s -w' -o "$work/plugins/vault-plugin-secrets-sms" ./cmd/vault-plugin-secrets-sms
go build -o "$work/sms-fake" ./cmd/sms-fake

start_stack "$vault_bin" $(( 20000 + RANDOM % 20000 )) warn "$work/sms-fake" -any-task

v() { "$vault_bin" "$@" >/dev/null; }
v secrets enable -path=kv -version=1 kv
v write kv/passphrase/bench-task-0001 task_id=bench-task-0001 passphrase=constant-passphrase-0123456789ab
v secrets enable -path=min minimal-plugin
v secrets enable -path=raw raw-plugin
v secrets enable -path=sms vault-plugin-secrets-sms
v write sms/config endpoint="$sms_url" token=demo-token
# The stand-in's -any-task tasks are named any-<id>, in enterprise project 0.
v write sms/roles/bench enterprise_project_ids=0 task_name_globs='any-*'
v secrets enable -path=sms-cold vault-plugin-secrets-sms
v write sms-cold/config endpoint="$sms_url" token=demo-token

lg() { "$work/loadgen" run -addr "$VAULT_ADDR" -token root -clients "$clients" "$@"; }
echo "Machine: $(nproc) cores, $(uname -sr); $("$vault_bin" version | cut -d, -f1); Go $(go env GOVERSION)"
echo "Each run: $clients keep-alive clients for $duration; $rounds rounds, alternating targets."
# Warm-up: start the plugin processes, open connections, fill the cache.
for p in kv/passphrase/bench-task-0001 min/passphrase/bench-task-0001 raw/passphrase/bench-task-0001 sms/passphrase/bench-task-0001 sms/roles/bench/passphrase/bench-task-0001; do
  lg -path "$p" -duration 1s -label warmup >/dev/null
done

results="$work/results.jsonl"
for r in $(seq 1 "$rounds"); do
  lg -path kv/passphrase/bench-task-0001 -duration "$duration" -label kv >>"$results"
  lg -path min/passphrase/bench-task-0001 -duration "$duration" -label minimal-plugin >>"$results"
  lg -path raw/passphrase/bench-task-0001 -duration "$duration" -label raw-plugin >>"$results"
  lg -path sms/passphrase/bench-task-0001 -duration "$duration" -label sms >>"$results"
  lg -path sms/roles/bench/passphrase/bench-task-0001 -duration "$duration" -label sms-role >>"$results"
  echo "  round $r/$rounds: $(tail -n 5 "$results" | sed -n 's/.*"label":"\([^"]*\)".*"rps":\([0-9]*\).*/\1 \2 req\/s/p' | paste -sd, - | sed 's/,/, /g')"
done
echo
"$work/loadgen" summarize "$results"

echo
echo "Upstream amplification: 10,000 reads by 64 clients over 1,000 cold task ids (sms-cold/)"
before=$("$work/loadgen" fake-stats "$sms_url")
"$work/loadgen" run -addr "$VAULT_ADDR" -token root -clients 64 -requests 10000 -ids 1000 \
  -path 'sms-cold/passphrase/cold-task-%04d' -label cold >"$work/cold.json"
after=$("$work/loadgen" fake-stats "$sms_url")
errors=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$work/cold.json")
echo "  upstream requests: $((after - before))   ideal: 1000   failed reads: $errors"

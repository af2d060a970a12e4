#!/usr/bin/env bash
# Instructions per cached read inside the engine, direct and through a role,
# counted by valgrind's callgrind: unlike time, the count does not depend on
# what else the machine is doing. Only readLoop, the measured loop of the
# benchmarks (N+1 reads: the testing package runs it once with 1, then with
# N), is counted, so the setup (config, first fetch, the stand-in's threads)
# is not. GOGC=off keeps the collector, whose work would fall inside the loop
# at random, out of the count. Needs valgrind, which it installs with
# apt-get when it runs as root (else it skips); part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing valgrind (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null
  else
    echo "valgrind is not installed (apt-get install valgrind); skipping instruction counts" >&2
    exit 0
  fi
fi
n=${N:-20000}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/sms.test" .
count() { # BENCH ROLE_SIZE READS: instructions collected inside readLoop
  ROLE_SIZE=$2 GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
    --toggle-collect='github.com/sms-vault/vault-plugin-secrets-sms.readLoop' \
    --callgrind-out-file="$bin/out" "$bin/sms.test" -test.run '^$' -test.bench "^$1\$" -test.benchtime "$3x" \
    >/dev/null 2>"$bin/err"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$bin/err"
}
# Callgrind follows calls on a shadow stack that Go's stack switches can
# confuse, so that collection stops early in an occasional run: each count is
# taken at n and 2n reads, the difference gives the per-read figure, and runs
# that do not scale are taken again.
per_read() {
  local a b try
  for try in 1 2 3; do
    a=$(count "$1" "$2" "$n"); b=$(count "$1" "$2" $((2 * n)))
    if (( b > a && (b - a) * 100 > a * 95 && (b - a) * 100 < a * 105 )); then
      echo $(( (b - a) / n )); return
    fi
    echo "  $1 ${2:-direct}: counts do not scale ($a for $n reads, $b for $((2 * n))); again" >&2
  done
  echo "callgrind counts did not scale in 3 tries" >&2; exit 1
}
direct=$(per_read BenchmarkCachedRead "")
simple=$(per_read BenchmarkCachedReadViaRole simple)
large=$(per_read BenchmarkCachedReadViaRole large)
alt=$(per_read BenchmarkCachedReadViaRole alternating)
agency=$(per_read BenchmarkCachedReadViaRole agency)
echo "Instructions per cached read in the engine (callgrind, $n reads each):"
printf '  %-44s %6d\n' "direct (sms/passphrase/<id>)" "$direct" "role, simple (1 project, 1 glob)" "$simple" \
  "role, large (10 projects, 20 globs)" "$large" "two large roles in turn (every read matches)" "$alt" \
  "role through a Huawei agency" "$agency"
awk -v d="$direct" -v s="$simple" -v l="$large" -v a="$alt" -v g="$agency" \
  'BEGIN { printf "  role/direct: simple %.3f, large %.3f, alternating %.3f, agency %.3f (target: at most 1.1)\n", s / d, l / d, a / d, g / d }'

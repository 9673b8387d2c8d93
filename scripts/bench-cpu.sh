#!/usr/bin/env bash
# CPU time per operation, by process: runs one `govctl bench` against a running local stack
# (scripts/run-local.sh, EA_PROFILE=release) and divides the CPU each of enclave-app,
# parent-proxy and govctl itself used during the run by the operations it completed.
# BENCHMARKS.md ("Where the time of a change goes") was measured this way.
#
#   export GOVCTL_ENDPOINT=... GOVCTL_IDENTITY=... GOVCTL_TRUST=...   # as run-local.sh prints
#   scripts/bench-cpu.sh                                  # 64 clients, 8 s, changes
#   EA_BENCH_CLIENTS=16 EA_BENCH_DURATION=10s EA_BENCH_MIX=check=1,change=0,approval=0 scripts/bench-cpu.sh
#
# Linux only (reads /proc). Compare variants by alternating them, a fresh stack each time:
# this machine's speed drifts within the hour.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
govctl=${GOVCTL:-$repo/target/release/govctl}
clients=${EA_BENCH_CLIENTS:-64}
duration=${EA_BENCH_DURATION:-8s}
mix=${EA_BENCH_MIX:-check=0,change=1,approval=0}
: "${GOVCTL_ENDPOINT:?set the GOVCTL_* variables run-local.sh prints}"

enclave=$(pgrep -o -f "enclave-app --listen") || { echo "no enclave-app running" >&2; exit 1; }
proxy=$(pgrep -o -f "parent-proxy --listen") || { echo "no parent-proxy running" >&2; exit 1; }
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
enclave_before=$(cpu_ticks "$enclave")
proxy_before=$(cpu_ticks "$proxy")
TIMEFORMAT='%U %S'
{ time "$govctl" bench --clients "$clients" --duration "$duration" --mix "$mix" --json \
    >"$work/report.json" 2>"$work/bench.err"; } 2>"$work/time"
enclave_after=$(cpu_ticks "$enclave")
proxy_after=$(cpu_ticks "$proxy")

first() { grep -o "\"$1\": [0-9.]*" "$work/report.json" | head -1 | awk '{print $2}'; }
operations=$(first operations)
[ "${operations:-0}" -gt 0 ] || { cat "$work/bench.err" >&2; echo "no operation completed" >&2; exit 1; }
awk -v ops="$operations" -v rate="$(first per_second)" -v p99="$(first p99_ms)" \
    -v enclave=$((enclave_after - enclave_before)) -v proxy=$((proxy_after - proxy_before)) \
    -v ticks="$ticks" -v load="$(cat "$work/time")" 'BEGIN {
  split(load, t, " ")
  e = enclave / ticks * 1e6 / ops; p = proxy / ticks * 1e6 / ops; g = (t[1] + t[2]) * 1e6 / ops
  printf "%d ops/s, p99 %.1f ms | CPU per op: enclave %.0f us, proxy %.0f us, govctl %.0f us, total %.0f us\n",
    rate, p99, e, p, g, e + p + g
}'

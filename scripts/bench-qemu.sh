#!/usr/bin/env bash
# The QEMU figures of BENCHMARKS.md, in one run on one machine:
#   1. boot: QEMU start to `awaiting_genesis` (first boot), and to `serving` on a restart
#      (the log key unsealed through KMS, the log verified and replayed), EA_BENCH_BOOTS times;
#   2. `govctl bench` changes at 16 and 64 clients through the booted image, then the same
#      against the mock stack (scripts/run-local.sh), and the ratio.
# Host binaries in release; the image is always release. Loopback only; everything is stopped
# and the state directories removed at the end.
#
#   scripts/bench-qemu.sh
#   EA_BENCH_DURATION=30s EA_BENCH_BOOTS=5 scripts/bench-qemu.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration=${EA_BENCH_DURATION:-10s}
boots=${EA_BENCH_BOOTS:-3}
port=${EA_PORT:-18453}
work=$(mktemp -d)
stack_pid=

stop_stack() {
  if [ -n "$stack_pid" ]; then
    # TERM, not INT: a background job of a non-interactive shell ignores SIGINT.
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
    stack_pid=
  fi
}
trap 'stop_stack; rm -rf "$work"' EXIT

# Starts $1 (run-qemu.sh or run-local.sh) with the environment given after it; waits until it
# is up, or fails showing its output.
start_stack() {
  local script=$1 out=$2
  shift 2
  env "$@" EA_PROFILE=release EA_PORT="$port" "$repo/scripts/$script" >"$out" 2>&1 &
  stack_pid=$!
  for _ in $(seq 1 1800); do
    grep -q "stack is up" "$out" 2>/dev/null && return 0
    if ! kill -0 "$stack_pid" 2>/dev/null; then
      cat "$out" >&2
      echo "bench-qemu: $script did not start" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "bench-qemu: $script took too long" >&2
  exit 1
}

govctl="$repo/target/release/govctl"
export GOVCTL_ENDPOINT="http://127.0.0.1:$port"

bench_changes() {
  local dir=$1 label=$2
  for clients in 16 64; do
    GOVCTL_IDENTITY="$dir/admin.identity.json" GOVCTL_TRUST="$dir/trust.json" \
      "$govctl" bench --clients "$clients" --duration "$duration" \
      --mix check=0,change=1,approval=0 --json >"$work/$label-$clients.json"
  done
}

echo "# boots (QEMU start to phase), $boots restarts"
qdir="$work/qemu"
for run in $(seq 0 "$boots"); do
  start_stack run-qemu.sh "$work/qemu-$run.out" EA_QEMU_DIR="$qdir"
  grep "reached" "$work/qemu-$run.out"
  [ "$run" -lt "$boots" ] && stop_stack
done
bench_changes "$qdir" qemu
stop_stack

ldir="$work/local"
start_stack run-local.sh "$work/local.out" EA_LOCAL_DIR="$ldir"
bench_changes "$ldir" mock
stop_stack

echo "# ratio, QEMU image / mock stack"
for clients in 16 64; do
  python3 - "$work/qemu-$clients.json" "$work/mock-$clients.json" "$clients" <<'PY'
import json, sys
q, m = (json.load(open(p)) for p in sys.argv[1:3])
def change(r): return r["by_kind"]["change"]
for name, r in (("qemu", q), ("mock", m)):
    c = change(r)
    print(f"clients={sys.argv[3]} {name}: {c['per_second']:.0f} changes/s, p50 {c['p50_ms']:.1f} ms, "
          f"p99 {c['p99_ms']:.1f} ms, {c['errors']} errors")
print(f"clients={sys.argv[3]} ratio qemu/mock: throughput {change(q)['per_second'] / change(m)['per_second']:.2f}, "
      f"p99 {change(q)['p99_ms'] / change(m)['p99_ms']:.2f}")
PY
done

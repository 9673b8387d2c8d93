#!/usr/bin/env bash
# The service figures of BENCHMARKS.md: starts the local stack (release build, fresh state
# directory, mock NSM, local KMS) and runs `govctl bench` for checks, changes and approvals
# at 1, 16 and 64 clients, printing one JSON report per run.
#
#   scripts/bench.sh                 # 10 s per run
#   EA_BENCH_DURATION=30s scripts/bench.sh
#   EA_BENCH_MIXES=check=0,change=0,approval=1 scripts/bench.sh   # one mix only
#   EA_BENCH_CLIENTS=64 scripts/bench.sh                            # one client count only
#
# Loopback only. The stack is stopped at the end, and its directory removed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration=${EA_BENCH_DURATION:-10s}
port=${EA_PORT:-18443}
dir=$(mktemp -d)
stack_pid=

stop() {
  if [ -n "$stack_pid" ]; then
    # TERM, not INT: a background job of a non-interactive shell ignores SIGINT.
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT

EA_PROFILE=release EA_PORT=$port EA_LOCAL_DIR="$dir" \
  "$repo/scripts/run-local.sh" >"$dir/stack.out" 2>&1 &
stack_pid=$!

for _ in $(seq 1 600); do
  if grep -q "local stack is up" "$dir/stack.out" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    cat "$dir/stack.out" >&2
    echo "the local stack did not start" >&2
    exit 1
  fi
  sleep 1
done
grep -q "local stack is up" "$dir/stack.out" || { echo "the stack took too long" >&2; exit 1; }

govctl="$repo/target/release/govctl"
export GOVCTL_ENDPOINT="http://127.0.0.1:$port"
export GOVCTL_IDENTITY="$dir/admin.identity.json"
export GOVCTL_TRUST="$dir/trust.json"

mixes=${EA_BENCH_MIXES:-check=1,change=0,approval=0 check=0,change=1,approval=0 check=0,change=0,approval=1}
for mix in $mixes; do
  for clients in ${EA_BENCH_CLIENTS:-1 16 64}; do
    echo "# mix=$mix clients=$clients duration=$duration"
    "$govctl" bench --clients "$clients" --duration "$duration" --mix "$mix" --json
  done
done

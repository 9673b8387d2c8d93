#!/usr/bin/env bash
# Before and after in one run: builds the stack at another revision (a git worktree in a
# temporary directory) and at this checkout, both release, then alternates scripts/bench.sh
# runs between the two, so that both see the same machine at nearly the same time (this
# VM's speed drifts by up to 20% within the hour; BENCHMARKS.md).
#
#   scripts/bench-compare.sh REV                 # checks and changes at 64 clients, 2 rounds
#   EA_BENCH_ROUNDS=3 EA_BENCH_DURATION=20s scripts/bench-compare.sh REV
#
# Prints one line per run: round, side, mix, ops/s, p99 ms. Loopback only.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev=${1:?usage: scripts/bench-compare.sh REV (the revision to compare this checkout with)}
rounds=${EA_BENCH_ROUNDS:-2}
export EA_BENCH_MIXES=${EA_BENCH_MIXES:-check=1,change=0,approval=0 check=0,change=1,approval=0}
export EA_BENCH_CLIENTS=${EA_BENCH_CLIENTS:-64}
before=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$before" >/dev/null 2>&1 || rm -rf "$before"' EXIT
git -C "$repo" worktree add --force --detach "$before" "$rev" >/dev/null
# The same driver on both sides: this checkout's bench.sh, run from the other tree.
cp "$repo/scripts/bench.sh" "$before/scripts/bench.sh"
for tree in "$before" "$repo"; do
  echo "building $(git -C "$tree" rev-parse --short HEAD) (release)..." >&2
  cargo build --quiet --release --manifest-path "$tree/Cargo.toml" --workspace --bins
done
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    tree=$repo
    [ "$side" = before ] && tree=$before
    "$tree/scripts/bench.sh" 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read()
for block in text.split("# mix=")[1:]:
    header, _, body = block.partition("\n")
    report = json.loads(body)
    p99 = max(k["p99_ms"] for k in report["by_kind"].values())
    rate = report["per_second"]
    print(f"round {sys.argv[1]}  {sys.argv[2]:6}  {header.split()[0]:32}  {rate:8.0f} ops/s  p99 {p99:.1f} ms")
' "$round" "$side@$(git -C "$tree" rev-parse --short HEAD)"
  done
done

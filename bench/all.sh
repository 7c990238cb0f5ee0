#!/usr/bin/env bash
# `make bench`: every workload (W1-W7 and the floor) against its peers in one table, then the state-store table.
# Usage: bench/all.sh [build-dir]   env: BENCH_RUNS (3) and each script's own settings
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
work=$(mktemp -d /tmp/ork-bench-all.XXXXXX)
trap 'rm -rf "$work"' EXIT
export BENCH_ROWS="$work/rows" BENCH_NOTES="$work/notes"
: > "$BENCH_ROWS"
: > "$BENCH_NOTES"
for script in peers scheduler python api object dbt; do
  [ -f "bench/$script.sh" ] || continue
  echo "bench: running bench/$script.sh" >&2
  bash "bench/$script.sh" "$build" || echo "bench/$script.sh failed (exit $?)" >> "$BENCH_NOTES"
done
unset BENCH_ROWS BENCH_NOTES
bench/report.sh "$work/rows" "$work/notes" "${BENCH_RUNS:-3}"
echo
echo "State stores (bench/state.sh):"
bash bench/state.sh "$build"

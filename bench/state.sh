#!/usr/bin/env bash
# State-store benchmark: acquire+complete throughput of state-sqlite and state-postgres (1 and 4 hosts) on a
# throwaway PostgreSQL 15 started here and stopped at the end. Prints a markdown table.
# With state-firestore built (and gcloud present), the Firestore emulator is started too (stopped by its PID):
# Firestore rows (BENCH_FIRESTORE_TASKS, 1000) and a per-operation latency table for every backend.
# Usage: bench/state.sh [build-dir]   env: BENCH_TASKS (5000), BENCH_FIRESTORE_TASKS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
pgdir=$(mktemp -d /tmp/ork-bench-pg.XXXXXX)
rmdir "$pgdir"
trap 'bash tests/support/pg_server.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
bash tests/support/pg_server.sh start "$pgdir" >/dev/null
extra=()
if [ -e "$build/lib/libork-state-firestore.so" ] && command -v gcloud >/dev/null; then
  fsdir=$(mktemp -d /tmp/ork-bench-fs.XXXXXX)
  trap 'bash tests/support/pg_server.sh stop "$pgdir" >/dev/null 2>&1 || true
        bash tests/support/object_emulator.sh stop firestore "$fsdir" >/dev/null 2>&1 || true' EXIT
  bash tests/support/object_emulator.sh start firestore "$fsdir" >/dev/null
  extra=(--firestore "@$fsdir/endpoint" --firestore-tasks "${BENCH_FIRESTORE_TASKS:-1000}")
fi
ORK_PLUGIN_PATH="$PWD/$build/lib" "$build/bin/state_bench" --tasks "${BENCH_TASKS:-5000}" --hosts 1,4 --pg "@$pgdir/url" \
  "${extra[@]}" 2>/dev/null

#!/usr/bin/env bash
# State-store benchmark: acquire+complete throughput of state-sqlite and state-postgres (1 and 4 hosts) on a
# throwaway PostgreSQL 15 started here and stopped at the end. Prints a markdown table.
# Usage: bench/state.sh [build-dir]   env: BENCH_TASKS (5000)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
pgdir=$(mktemp -d /tmp/ork-bench-pg.XXXXXX)
rmdir "$pgdir"
trap 'bash tests/support/pg_server.sh stop "$pgdir" >/dev/null 2>&1 || true' EXIT
bash tests/support/pg_server.sh start "$pgdir" >/dev/null
ORK_PLUGIN_PATH="$PWD/$build/lib" "$build/bin/state_bench" --tasks "${BENCH_TASKS:-5000}" --hosts 1,4 --pg "@$pgdir/url" 2>/dev/null

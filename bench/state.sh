#!/usr/bin/env bash
# State-store benchmark: acquire+complete throughput of state-sqlite, state-postgres, state-dynamodb (moto and
# dynalite) and state-firestore (its emulator, when gcloud is present) with 1 and 4 hosts, and per-operation latency,
# on a throwaway PostgreSQL 15 and emulators started here and stopped (by PID) at the end. Prints markdown tables.
# Usage: bench/state.sh [build-dir]   env: BENCH_TASKS (5000), BENCH_DYNAMODB_TASKS (1000), BENCH_DYNAMODB=0 to skip,
#        BENCH_FIRESTORE_TASKS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
pgdir=$(mktemp -d /tmp/ork-bench-pg.XXXXXX)
rmdir "$pgdir"
emudir=$(mktemp -d /tmp/ork-bench-emu.XXXXXX)
cleanup() {
  bash tests/support/pg_server.sh stop "$pgdir" >/dev/null 2>&1 || true
  for k in moto_serial dynalite firestore; do bash tests/support/object_emulator.sh stop "$k" "$emudir/$k" >/dev/null 2>&1 || true; done
  rm -rf "$emudir"
}
trap cleanup EXIT
bash tests/support/pg_server.sh start "$pgdir" >/dev/null
extra=()
if [ "${BENCH_DYNAMODB:-1}" != 0 ] && [ -e "$build/lib/libork-state-dynamodb.so" ]; then
  for k in moto_serial dynalite; do
    if bash tests/support/object_emulator.sh start "$k" "$emudir/$k" >/dev/null; then
      extra+=(--dynamodb "${k%_serial}=@$emudir/$k/endpoint")
    else
      echo "(state-dynamodb on $k skipped: the emulator did not start)"
    fi
  done
fi
if [ -e "$build/lib/libork-state-firestore.so" ] && command -v gcloud >/dev/null; then
  if bash tests/support/object_emulator.sh start firestore "$emudir/firestore" >/dev/null; then
    extra+=(--firestore "@$emudir/firestore/endpoint" --firestore-tasks "${BENCH_FIRESTORE_TASKS:-1000}")
  else
    echo "(state-firestore skipped: the emulator did not start)"
  fi
fi
ORK_PLUGIN_PATH="$PWD/$build/lib" "$build/bin/state_bench" --tasks "${BENCH_TASKS:-5000}" --hosts 1,4 --pg "@$pgdir/url" \
  --dynamodb-tasks "${BENCH_DYNAMODB_TASKS:-1000}" "${extra[@]}" 2>/dev/null

#!/usr/bin/env bash
# Object-store benchmark: put+get p50/p99 latency and MB/s for 1 KB and 10 MB objects through every object plugin
# built, each against its emulator (moto for S3, azurite for Azure, the GCS fake; started here on free ports and
# stopped by PID at the end). Prints a markdown table; with $BENCH_ROWS set (bench/all.sh) it appends rows there.
# Usage: bench/object.sh [build-dir]   env: BENCH_OBJECT_SMALL (200 round trips), BENCH_OBJECT_LARGE (10)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
bin="$build/bin/object_bench"
[ -x "$bin" ] || { echo "bench/object.sh: $bin not built (cmake --build $build --target object_bench)" >&2; exit 2; }
work=$(mktemp -d /tmp/ork-bench-object.XXXXXX)
emu=tests/support/object_emulator.sh
cleanup() {
  for k in moto azurite gcs; do [ -d "$work/$k" ] && bash "$emu" stop "$k" "$work/$k" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
export ORK_PLUGIN_PATH="$build/lib"
small=${BENCH_OBJECT_SMALL:-200} large=${BENCH_OBJECT_LARGE:-10}
key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
moto_v=$("${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo "?")

echo "| store (backend) | object | round trips | put+get p50 ms | put+get p99 ms | MB/s (put+get) |"
echo "|---|---|---|---|---|---|"
"$bin" --library ork-object-local --config "{\"root\": \"$work/local\"}" --label "ork-object-local (tmp dir)" \
  --small "$small" --large "$large"
if [ -e "$build/lib/libork-object-s3.so" ] && bash "$emu" start moto "$work/moto" >/dev/null; then
  "$bin" --library ork-object-s3 --label "ork-object-s3 (moto $moto_v)" --small "$small" --large "$large" --config \
    "{\"bucket\": \"ork-bench\", \"endpoint\": \"$(cat "$work/moto/endpoint")\", \"access_key_id\": \"test\", \"secret_access_key\": \"test\", \"create_bucket\": true}"
fi
if [ -e "$build/lib/libork-object-azure.so" ] && bash "$emu" start azurite "$work/azurite" >/dev/null; then
  "$bin" --library ork-object-azure --label "ork-object-azure (azurite 3)" --small "$small" --large "$large" --config \
    "{\"account\": \"devstoreaccount1\", \"account_key\": \"$key\", \"endpoint\": \"$(cat "$work/azurite/endpoint")/devstoreaccount1\", \"container\": \"ork-bench\", \"create_container\": true}"
fi
if [ -e "$build/lib/libork-object-gcs.so" ] && bash "$emu" start gcs "$work/gcs" >/dev/null; then
  "$bin" --library ork-object-gcs --label "ork-object-gcs (tests/fakes/gcs_fake.py)" --small "$small" \
    --large "$large" --config \
    "{\"bucket\": \"ork-bench\", \"endpoint\": \"$(cat "$work/gcs/endpoint")\", \"create_bucket\": true, \"project\": \"bench\"}"
fi
echo
echo "$(date -Is), $(nproc) CPUs; emulators on 127.0.0.1 (they, not the plugins, bound most of these numbers)."

#!/usr/bin/env bash
# Runs the dbt example. dbt comes from ORK_DBT, else PATH; without either, the test stand-in
# (tests/fakes/dbt_standin, which writes dbt-format run results without a database) plays dbt.
# Usage: examples/dbt/run.sh [path/to/ork-host] [extra ork-host args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-$here/../../build/bin/ork-host}"
shift || true
if [ -z "${ORK_DBT:-}" ] && ! command -v dbt >/dev/null 2>&1; then
  export ORK_DBT="$here/../../tests/fakes/dbt_standin"
  echo "dbt is not installed: using the stand-in $ORK_DBT"
fi
exec "$host" "$@" run "$here/workflow.yaml"

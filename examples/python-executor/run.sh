#!/usr/bin/env bash
# Runs the custom-executor example. Usage: examples/python-executor/run.sh [path/to/ork-host] [extra ork-host args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-$here/../../build/bin/ork-host}"
shift || true
"$host" "$@" run "$here/workflow.yaml"

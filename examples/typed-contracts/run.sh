#!/usr/bin/env bash
# Runs the typed-contracts example with a demo secret. Usage: examples/typed-contracts/run.sh [path/to/ork-host]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-$here/../../build/bin/ork-host}"
"$host" validate "$here/workflow.yaml"
ORK_SECRET_REPORT_TOKEN="${ORK_SECRET_REPORT_TOKEN:-demo-token-123}" "$host" run "$here/workflow.yaml"

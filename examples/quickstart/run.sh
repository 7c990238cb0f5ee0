#!/usr/bin/env bash
# Runs the Quick Start: starts a small local HTTP server for the data (no internet needed), then the workflow.
# Usage: examples/quickstart/run.sh [path/to/ork-host] [extra ork-host args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
host="${1:-$here/../../build/bin/ork-host}"
shift || true
py="${ORK_PYTHON:-}"
[ -n "$py" ] || { p="${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3"; [ -x "$p" ] && py="$p" || py=python3; }
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$py" -m http.server "$port" --bind 127.0.0.1 --directory "$here/data" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do "$py" -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break; sleep 0.1; done
"$host" "$@" run "$here/workflow.yaml" --input "url=http://127.0.0.1:$port/data.txt"

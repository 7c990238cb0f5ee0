#!/usr/bin/env bash
# ctest entry of the UI tests: builds the web UI when missing or stale, installs playwright-core (npm ci) when needed,
# then runs the browser tests with Debian's chromium. Usage: tests/ui/run.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "ui tests: chromium not found at $CHROMIUM (scripts/install-deps installs it)" >&2; exit 1; }
"$src/scripts/build-ui" "$build/share/ork/ui"
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ui tests: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
export ORK_HOST="$build/bin/ork-host" ORK_PLUGIN_PATH="$build/lib" ORK_SOURCE_DIR="$src"
export ORK_UI_SHOTS="$build/tests/ui/screenshots"
exec node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs

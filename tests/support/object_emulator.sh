#!/usr/bin/env bash
# Object-store backends for tests, each on a free 127.0.0.1 port with its data in <dir>, stopped by the PID started:
#   object_emulator.sh start moto|moto_serial|azurite|gcs|dynalite|cloudrun|k8s|ecs|firestore <dir>   writes <dir>/port, <dir>/endpoint (http://127.0.0.1:PORT), <dir>/pid
#   object_emulator.sh stop  <kind> <dir>   SIGTERM to that process group (SIGKILL after 10 s), rm -rf <dir>
# moto: the pyenv Python's moto server (S3). azurite: npm azurite@3, installed on first use into
# $ORK_NPM_CACHE (default ~/.cache/ork/npm)/azurite3. gcs: tests/fakes/gcs_fake.py (standard-library Python).
# dynalite: npm dynalite@4 (DynamoDB), installed on first use like azurite into <cache>/dynalite4. moto_serial: moto
# answering one request at a time: moto's threaded server does not serialize DynamoDB conditional writes (two
# concurrent UpdateItems can both pass one condition), so the DynamoDB tests use this one.
# cloudrun, k8s, ecs: the job-API fakes tests/fakes/<kind>_fake.py (they run job containers as local processes, so
# stopping the group also stops what they started).
# firestore: `gcloud emulators firestore start` (Java); ready when GET / answers "Ok" (deadline 120 s).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop moto|moto_serial|azurite|gcs|dynalite|cloudrun|k8s|ecs|firestore <dir>" >&2
  exit 2
}
[ $# -eq 3 ] || usage
verb=$1 kind=$2 dir=$3
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
pyenv_py="${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3"

any_python() {
  local p
  for p in "${ORK_PYTHON:-}" "$pyenv_py" python3 /usr/bin/python3; do
    [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 && { echo "$p"; return; }
  done
  echo "object_emulator: no python3 found" >&2
  exit 1
}

free_port() {
  "$(any_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (deadline $2 s) until something accepts TCP connections on port $1.
wait_port() {
  "$(any_python)" - "$1" "$2" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# Installs npm package $1 (name@version) once into the npm cache folder $2 (serialized with flock); prints the path of
# its executable $3.
npm_bin() {
  local cache="${ORK_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ork/npm}/$2"
  local bin="$cache/node_modules/.bin/$3"
  if [ ! -x "$bin" ]; then
    command -v npm >/dev/null || { echo "object_emulator: npm is needed to install $1" >&2; exit 1; }
    mkdir -p "$cache"
    (
      flock 9
      if [ ! -x "$bin" ]; then
        echo "object_emulator: installing $1 into $cache" >&2
        npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "$1" >&2
      fi
    ) 9>"$cache/.lock"
  fi
  echo "$bin"
}

# Waits (deadline $2 s) until GET http://127.0.0.1:$1/ answers 200 (the Firestore emulator's readiness check).
wait_http_ok() {
  "$(any_python)" - "$1" "$2" <<'PY'
import sys, time, urllib.request
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
}

stop_pid() {
  local pid=$1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

case "$verb" in
  start)
    if [ -f "$dir/pid" ]; then stop_pid "$(cat "$dir/pid")"; fi
    rm -rf "$dir"
    mkdir -p "$dir/data"
    case "$kind" in
      moto | moto_serial)
        [ -x "$pyenv_py" ] || { echo "object_emulator: moto needs $pyenv_py (pyenv Python with moto)" >&2; exit 1; } ;;
      azurite) azbin=$(npm_bin azurite@3 azurite3 azurite-blob) ;;
      gcs | cloudrun | k8s | ecs) py=$(any_python) ;;
      dynalite) dynbin=$(npm_bin dynalite@4 dynalite4 dynalite) ;;
      firestore) command -v gcloud >/dev/null || { echo "object_emulator: firestore needs gcloud" >&2; exit 1; } ;;
      *) usage ;;
    esac
    for _ in 1 2 3; do
      port=$(free_port)
      case "$kind" in
        moto) setsid "$pyenv_py" -m moto.server -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 & ;;
        moto_serial)
          setsid "$pyenv_py" -c 'import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)' \
            "$port" >"$dir/server.log" 2>&1 & ;;
        azurite)
          setsid node "$azbin" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" --skipApiVersionCheck \
            --disableTelemetry --silent >"$dir/server.log" 2>&1 & ;;
        gcs | cloudrun | k8s | ecs)
          setsid "$py" "$here/../fakes/${kind}_fake.py" --port "$port" --data "$dir/data" >"$dir/server.log" 2>&1 & ;;
        dynalite)
          setsid node "$dynbin" --host 127.0.0.1 --port "$port" --createTableMs 0 --deleteTableMs 0 \
            --updateTableMs 0 >"$dir/server.log" 2>&1 & ;;
        firestore)
          CLOUDSDK_CONFIG="$dir/data" setsid gcloud emulators firestore start --host-port="127.0.0.1:$port" \
            --quiet >"$dir/server.log" 2>&1 & ;;
      esac
      pid=$!
      echo "$pid" >"$dir/pid"
      ready=wait_port
      [ "$kind" = firestore ] && ready=wait_http_ok
      if $ready "$port" 120; then
        echo "$port" >"$dir/port"
        echo "http://127.0.0.1:$port" >"$dir/endpoint"
        echo "object_emulator: $kind on 127.0.0.1:$port (pid $pid), data in $dir/data"
        exit 0
      fi
      tail -n 20 "$dir/server.log" >&2 || true
      stop_pid "$pid"
    done
    echo "object_emulator: could not start $kind" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/pid" ]; then stop_pid "$(cat "$dir/pid")"; fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac

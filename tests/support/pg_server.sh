#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests, on a free 127.0.0.1 port, owned by <dir>.
#   pg_server.sh start <dir>    initdb + start; writes <dir>/port, <dir>/url, <dir>/pid, <dir>/datadir
#   pg_server.sh stop <dir>     pg_ctl stop -m fast on that data dir (the PID it started), then rm -rf <dir>
#   pg_server.sh pause <dir>    stop the server, keep the data (calls against it now fail)
#   pg_server.sh resume <dir>   start it again on the same port and data
#   pg_server.sh restart <dir>  pause + resume
# As root (CI) initdb/pg_ctl run as user postgres through su (initdb refuses root); otherwise directly.
# Binaries: $ORK_PG_BIN or /usr/lib/postgresql/15/bin. Never kills by name: only the postmaster of <dir>.
set -euo pipefail

PGB=${ORK_PG_BIN:-/usr/lib/postgresql/15/bin}
usage() {
  echo "usage: $0 start|stop|pause|resume|restart <dir>" >&2
  exit 2
}
[ $# -eq 2 ] || usage
verb=$1
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

# Runs a command line (already shell-quoted) as the cluster owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$1"
  else
    sh -c "$1"
  fi
}

free_port() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' && return
    fi
  done
  echo $((20000 + RANDOM % 30000))  # no python: a random high port; start() retries on a clash
}

# Starts the postmaster of $data on $1 and waits (deadline 30 s) until it accepts connections.
launch() {
  local port=$1 data log q
  data=$(cat "$dir/datadir")
  log="$data/../pg.log"
  q="$(printf '%q' "$PGB/pg_ctl") -D $(printf '%q' "$data") -l $(printf '%q' "$log") -w -t 30"
  q+=" -o $(printf '%q' "-p $port -h 127.0.0.1 -k '' -c fsync=off")"
  if ! as_owner "$q start" >/dev/null; then
    tail -n 20 "$log" >&2 || true
    return 1
  fi
  local deadline=$((SECONDS + 30))
  until "$PGB/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "pg_server: server on port $port not ready after 30 s" >&2
      return 1
    fi
    sleep 0.1
  done
  head -n 1 "$data/postmaster.pid" >"$dir/pid"
}

# Stops the postmaster of <dir> (fast shutdown) by its data dir; falls back to SIGINT (fast shutdown), then SIGKILL,
# of the PID it recorded at start.
halt() {
  [ -f "$dir/datadir" ] || return 0
  local data pid
  data=$(cat "$dir/datadir")
  [ -f "$data/postmaster.pid" ] || return 0
  if ! as_owner "$(printf '%q' "$PGB/pg_ctl") -D $(printf '%q' "$data") -m fast -w -t 30 stop" >/dev/null; then
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
      if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
  fi
  rm -f "$dir/pid"
}

case "$verb" in
  start)
    [ -x "$PGB/initdb" ] || {
      echo "pg_server: no PostgreSQL server binaries in $PGB (apt-get install postgresql-15)" >&2
      exit 1
    }
    if [ -f "$dir/datadir" ]; then halt || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    base=$dir
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres:postgres "$dir"
      # postgres must reach <dir>; under a private home (e.g. /root) it cannot: keep the cluster in /tmp then.
      if ! su postgres -s /bin/sh -c "test -w $(printf '%q' "$dir")"; then
        base=$(mktemp -d "${TMPDIR:-/tmp}/ork-pg.XXXXXX")
        chown postgres:postgres "$base"
      fi
    fi
    echo "$base/data" >"$dir/datadir"
    as_owner "$(printf '%q' "$PGB/initdb") -D $(printf '%q' "$base/data") -U postgres -A trust --no-sync -E UTF8 \
      --locale=C" >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if launch "$port"; then
        echo "$port" >"$dir/port"
        echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
        echo "pg_server: PostgreSQL on 127.0.0.1:$port (pid $(cat "$dir/pid")), data in $base/data"
        exit 0
      fi
      halt || true
    done
    echo "pg_server: could not start PostgreSQL (see $base/pg.log)" >&2
    exit 1
    ;;
  stop)
    halt
    if [ -f "$dir/datadir" ]; then
      base=$(dirname "$(cat "$dir/datadir")")
      [ "$base" = "$dir" ] || rm -rf "$base"
    fi
    rm -rf "$dir"
    ;;
  pause)
    halt
    ;;
  resume)
    [ -f "$dir/port" ] || {
      echo "pg_server: $dir holds no cluster (run start first)" >&2
      exit 1
    }
    launch "$(cat "$dir/port")"
    ;;
  restart)
    halt
    launch "$(cat "$dir/port")"
    ;;
  *) usage ;;
esac

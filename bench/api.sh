#!/usr/bin/env bash
# REST API benchmark (issue 8): `GET /api/v1/runs?limit=50` under wrk on loopback with 50 runs in the store, beside a
# static file of the same size served by the same server. Rows: default settings, with an API key (auth on), and
# without the list cache (ORK_API_CACHE_MS=0). Prints a markdown table with PASS/FAIL against >= 15,000 req/s.
# Usage: bench/api.sh [build-dir]   env: BENCH_SECONDS (10), BENCH_CONNECTIONS (50), BENCH_THREADS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
build="${1:-build}"
host="$PWD/$build/bin/ork-host"
secs="${BENCH_SECONDS:-10}"
conns="${BENCH_CONNECTIONS:-50}"
wthreads="${BENCH_THREADS:-2}"
target=15000
export ORK_PLUGIN_PATH="$PWD/$build/lib"
command -v wrk >/dev/null || { echo "bench: needs wrk (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d /tmp/ork-bench-api.XXXXXX)
pid=""
stop_server() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap 'stop_server; rm -rf "$work"' EXIT

# Starts ork-host serve (extra env in $@) on a free port; sets pid and url.
start_server() {
  : > "$work/serve.log"
  env ORK_HOME="$work/home" ORK_API_PORT=0 ORK_API_STATIC_DIR="$work/static" "$@" "$host" serve \
    > "$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/^API listening on \(http:[^ ]*\)$/\1/p' "$work/serve.log")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "bench: ork-host serve did not start"; cat "$work/serve.log"; exit 1
}

# wrk over one URL; sets rps, p50 and p99 (latencies as wrk prints them). Any non-2xx response fails the bench.
measure() {
  wrk -t"$wthreads" -c"$conns" -d"${secs}s" --latency "$@" > "$work/wrk.out"
  if grep -q "Non-2xx" "$work/wrk.out"; then echo "bench: non-2xx responses for $*:"; cat "$work/wrk.out"; exit 1; fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
}

mkdir -p "$work/static"
cat > "$work/quick.yaml" <<'YAML'
name: quick
tasks:
  a:
    command: "echo '{\"ok\": true}'"
YAML
start_server
curl -sf -X POST --data-binary @"$work/quick.yaml" -H 'Content-Type: application/yaml' "$url/api/v1/workflows" >/dev/null
for _ in $(seq 50); do
  curl -sf -X POST -H 'Content-Type: application/json' -d '{"input": {"n": 1}}' "$url/api/v1/workflows/quick/runs" >/dev/null
done
for _ in $(seq 300); do
  done_runs=$(curl -sf "$url/api/v1/runs?limit=50&status=success" | grep -o '"status":"success"' | wc -l)
  [ "$done_runs" -ge 50 ] && break
  sleep 0.1
done
[ "$done_runs" -ge 50 ] || { echo "bench: runs did not finish"; exit 1; }
curl -sf "$url/api/v1/runs?limit=50" > "$work/static/runs50.json"
bytes=$(stat -c %s "$work/static/runs50.json")
measure "$url/api/v1/runs?limit=50"; api_rps=$rps api_p50=$p50 api_p99=$p99
measure "$url/runs50.json"; st_rps=$rps st_p50=$p50 st_p99=$p99
stop_server
key=$("$host" --home "$work/home" apikey create --scope read 2>/dev/null)
start_server ORK_API_AUTH=on
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/api/v1/runs?limit=50")
[ "$code" = 401 ] || { echo "bench: expected 401 without a key, got $code"; exit 1; }
measure -H "Authorization: Bearer $key" "$url/api/v1/runs?limit=50"; key_rps=$rps key_p50=$p50 key_p99=$p99
stop_server
rm -f "$work/home/api-keys.json"
start_server ORK_API_CACHE_MS=0
measure "$url/api/v1/runs?limit=50"; nc_rps=$rps nc_p50=$p50 nc_p99=$p99
stop_server

verdict() { if awk -v r="$1" -v t="$target" 'BEGIN {exit !(r >= t)}'; then echo PASS; else echo FAIL; fi; }
v="ork $(git describe --always --dirty 2> /dev/null || echo '?')"
rows=(
  "W6 GET /api/v1/runs?limit=50 (defaults: loopback, no key)|$v|$api_rps|req/s|-|>= $target req/s: $(verdict "$api_rps") (p50 $api_p50, p99 $api_p99)|"
  "W6 GET /api/v1/runs?limit=50 with an API key (auth on)|$v|$key_rps|req/s|-|>= $target req/s: $(verdict "$key_rps") (p50 $key_p50, p99 $key_p99)|"
  "W6 GET /api/v1/runs?limit=50, list cache off (ORK_API_CACHE_MS=0)|$v|$nc_rps|req/s|-|report (p50 $nc_p50, p99 $nc_p99)|"
  "W6 baseline: a static file of the same size, same server|$v|$st_rps|req/s|-|report (p50 $st_p50, p99 $st_p99)|"
)
notes=("W6: wrk -t$wthreads -c$conns -d${secs}s on loopback; ork-host serve with 2 API threads (ORK_API_THREADS), SQLite state, 50 runs in the store, a $bytes-byte response. One run of wrk per row (wrk reports its own averages).")
publish_rows 1

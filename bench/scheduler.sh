#!/usr/bin/env bash
# Scheduler benchmarks (issue: scheduler completeness): foreach over N trivial shell tasks (time per task, peak RSS
# of ork-host) and an idle `ork-host serve` (RSS, wakeups per second). Prints a markdown table with PASS/FAIL.
# Usage: bench/scheduler.sh [build-dir]   env: BENCH_ITEMS (10000), BENCH_IDLE_SECONDS (60), BENCH_RUNS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
build="${1:-build}"
host="$PWD/$build/bin/ork-host"
items="${BENCH_ITEMS:-10000}"
idle_s="${BENCH_IDLE_SECONDS:-60}"
runs="${BENCH_RUNS:-3}"
export ORK_PLUGIN_PATH="$PWD/$build/lib"
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d /tmp/ork-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# W4: foreach over $items items of `true`.
python_list=$(seq -s, 0 $((items - 1)))
cat > "$work/w4.yaml" <<YAML
name: w4
tasks:
  discover:
    command: |
      echo '{"items": [$python_list]}'
  process:
    foreach: discover.items
    command: "true"
YAML
secs=(); rss=()
for i in $(seq "$runs"); do
  home=$(mktemp -d "$work/home.XXXXXX")  # a fresh folder, removed at exit (see peers.sh)
  start=$(date +%s.%N)
  ORK_HOME="$home" /usr/bin/time -f '%M' -o "$work/rss" "$host" run "$work/w4.yaml" > "$work/w4.log" 2>&1 \
    || { echo "bench: W4 run failed"; tail -20 "$work/w4.log"; exit 1; }
  end=$(date +%s.%N)
  secs+=("$(echo "$end - $start" | bc -l)")
  rss+=("$(cat "$work/rss")")
done
w4_s=$(printf '%s\n' "${secs[@]}" | median)
w4_s=$(printf "%.2f" "$w4_s")
w4_rss_kb=$(printf '%s\n' "${rss[@]}" | median)
w4_ms_task=$(echo "scale=2; $w4_s * 1000 / $items" | bc -l)
w4_tps=$(echo "scale=1; $items / $w4_s" | bc -l)
w4_rss_mb=$(echo "scale=1; $w4_rss_kb / 1024" | bc -l)

# W5: idle serve.
ORK_HOME="$(mktemp -d "$work/home.XXXXXX")" ORK_API_PORT=0 "$host" serve > "$work/idle.log" 2>&1 &
pid=$!
sleep 2
switches() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
before=$(switches)
sleep "$idle_s"
after=$(switches)
idle_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill "$pid"; wait "$pid" 2>/dev/null || true
wakeups=$(echo "scale=2; ($after - $before) / $idle_s" | bc -l)
idle_rss_mb=$(echo "scale=1; $idle_rss_kb / 1024" | bc -l)

verdict() { if [ "$(echo "$1" | bc -l)" -eq 1 ]; then echo PASS; else echo FAIL; fi; }
version="ork $(git describe --always --dirty 2> /dev/null || echo '?')"
rows=(
  "W4 foreach over $items x \`true\`|$version|$w4_s|s|-|report (${w4_ms_task} ms/task, ${w4_tps} tasks/s)|${secs[*]}"
  "W4 foreach over $items: peak RSS of ork-host|$version|$w4_rss_mb|MB|-|<= 64 MB: $(verdict "$w4_rss_mb <= 64")|"
  "W5 idle \`ork-host serve\`, ${idle_s} s: RSS|$version|$idle_rss_mb|MB|-|<= 15 MB: $(verdict "$idle_rss_mb <= 15")|"
  "W5 idle \`ork-host serve\`, ${idle_s} s: wakeups (context switches, all threads)|$version|$wakeups|/s|-|0 /s: $(verdict "$wakeups == 0")|"
)
notes=("W4/W5: W4 is one \`ork-host run\`, median of $runs; W5 reads /proc of an idle \`ork-host serve\` after 2 s of start-up.")
publish_rows "$runs"

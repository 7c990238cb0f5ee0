#!/usr/bin/env bash
# Writes the benchmark table: reads rows "workload|tool (version)|value|unit|speed vs Ork|target|run values" from
# $1 and notes (one per line) from $2, prints one markdown table and writes bench/results/<date>.md and .json.
# Usage: bench/report.sh ROWS NOTES [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows_file=$1 notes_file=$2 runs=${3:-${BENCH_RUNS:-3}}
command -v jq > /dev/null || { echo "bench: needs jq" >&2; exit 2; }
date_s=$(date +%F)
cpus=$(nproc)
mkdir -p bench/results
md="bench/results/$date_s.md"
{
  echo "| workload | tool (version) | median of $runs | unit | speed vs Ork (>1 = faster) | Ork target |"
  echo "|---|---|---|---|---|---|"
  while IFS= read -r r; do r=${r%|*}; echo "| ${r//|/ | } |"; done < "$rows_file"
  echo
  echo "$(date -Is), $cpus CPUs, $(uname -sr), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  while IFS= read -r n; do [ -z "$n" ] || echo "- $n"; done < "$notes_file"
} > "$md"
cat "$md"
while IFS='|' read -r c1 c2 c3 c4 c5 c6 c7; do
  jq -cn --arg workload "$c1" --arg tool "$c2" --arg median "$c3" --arg unit "$c4" --arg speed "$c5" \
    --arg target "$c6" --arg runs "$c7" '{workload: $workload, tool: $tool, median: ($median | tonumber? // $median),
      unit: $unit, speed_vs_ork: ($speed | tonumber? // null), target: $target,
      runs: ($runs | split(" ") | map(select(. != "") | (tonumber? // .)))}'
done < "$rows_file" | jq -s --arg date "$(date -Is)" --argjson runs "$runs" --argjson cpus "$cpus" \
  --rawfile notes "$notes_file" \
  '{date: $date, runs: $runs, cpus: $cpus, notes: ($notes | split("\n") | map(select(. != ""))), rows: .}' \
  > "bench/results/$date_s.json"
echo "bench: wrote $md and bench/results/$date_s.json" >&2

#!/usr/bin/env bash
# W7 (issue: benchmark harness): fan-out of 200 Python @task tasks (pydantic Input/Output models), 2 at a time
# (ORK_MAX_ACTIVE_TASKS=2), with the warm fork-server and without it (ORK_PYTHON_FORKSERVER=0). Reference: the same
# count of bare interpreter start-ups that import pydantic, 2 in flight (xargs -P2), i.e. the floor of the spawn path.
# Every figure is a median of BENCH_RUNS runs of `ork-host run` (host start-up and the listing task included). Rows go
# to bench/all.sh's table (BENCH_ROWS / BENCH_NOTES), or to a table of their own (bench/report.sh).
# Usage: bench/python.sh [build-dir]   env: BENCH_RUNS (3), BENCH_PY_TASKS (200), ORK_PYTHON (interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
root="$PWD"
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
host="$build/bin/ork-host"
runs="${BENCH_RUNS:-3}"
n="${BENCH_PY_TASKS:-200}"
export ORK_PLUGIN_PATH="$build/lib"
[ -x "$host" ] || { echo "bench: $host not found (make build)" >&2; exit 2; }
for t in bc jq; do command -v "$t" > /dev/null || { echo "bench: needs $t" >&2; exit 2; }; done
py="${ORK_PYTHON:-${PYENV_ROOT:-$HOME/.pyenv}/versions/3.11.7/bin/python3}"
[ -x "$py" ] || py=$(command -v python3)
"$py" -c 'import pydantic' 2> /dev/null || { echo "bench: $py has no pydantic" >&2; exit 2; }
export ORK_PYTHON="$py"

work=$(mktemp -d /tmp/ork-bench-python.XXXXXX)
servers="$work/servers"
trap 'rm -rf "$work"' EXIT  # the bench's fork-server exits by itself 10 s after the last task

mkdir -p "$work/tasks"
cat > "$work/tasks/square.py" <<'PY'
from ork import task, Context
from pydantic import BaseModel

class Input(BaseModel):
    item: int

class Output(BaseModel):
    square: int

@task
def main(input: Input, ctx: Context) -> Output:
    return Output(square=input.item * input.item)
PY
items=$(seq -s, 0 $((n - 1)))
cat > "$work/wf.yaml" <<YAML
name: w7
tasks:
  discover:
    command: |
      echo '{"items": [$items]}'
  square:
    executor: python
    file: tasks/square.py
    foreach: discover.items
YAML

median() { sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }

# One `ork-host run` of the workflow; prints its wall time in seconds.
run_once() {
  rm -rf "$work/home"
  local start end
  start=$(date +%s.%N)
  ORK_HOME="$work/home" ORK_MAX_ACTIVE_TASKS=2 ORK_PYTHON_FORKSERVER_DIR="$servers" ORK_PYTHON_FORKSERVER_IDLE=10 "$@" \
    "$host" run "$work/wf.yaml" > "$work/run.log" 2>&1 || { echo "bench: W7 run failed" >&2; tail -20 "$work/run.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

declare -A med all
for mode in warm spawn; do
  samples=()
  for _ in $(seq "$runs"); do
    if [ "$mode" = warm ]; then samples+=("$(run_once env ORK_PYTHON_FORKSERVER=1)")
    else samples+=("$(run_once env ORK_PYTHON_FORKSERVER=0)"); fi
  done
  med[$mode]=$(printf '%s\n' "${samples[@]}" | median)
  all[$mode]="${samples[*]}"
done

# Floor of the spawn path: $n interpreter start-ups importing pydantic's BaseModel, 2 in flight.
samples=()
for _ in $(seq "$runs"); do
  start=$(date +%s.%N)
  seq "$n" | xargs -P2 -I{} "$py" -c 'from pydantic import BaseModel' > /dev/null
  end=$(date +%s.%N)
  samples+=("$(echo "$end - $start" | bc -l)")
done
med[floor]=$(printf '%s\n' "${samples[@]}" | median)
all[floor]="${samples[*]}"

tps() { printf '%.1f' "$(echo "$n / $1" | bc -l)"; }
all_tps() { local out=() v; for v in $1; do out+=("$(tps "$v")"); done; echo "${out[*]}"; }
warm_tps=$(tps "${med[warm]}")
spawn_tps=$(tps "${med[spawn]}")
floor_tps=$(tps "${med[floor]}")
vs() { printf '%.2f' "$(echo "$1 / $warm_tps" | bc -l)"; }
pyver=$("$py" -c 'import sys, pydantic; print("Python %s, pydantic %s" % (sys.version.split()[0], pydantic.VERSION))')
version="ork $(git -C "$root" describe --always --dirty 2> /dev/null || echo '?')"
work_label="W7 fan-out of $n Python @task tasks, 2 at a time"
rows=(
  "$work_label|$version, fork-server|$warm_tps|tasks/s|1.00|report|$(all_tps "${all[warm]}")"
  "$work_label|$version, ORK_PYTHON_FORKSERVER=0|$spawn_tps|tasks/s|$(vs "$spawn_tps")|-|$(all_tps "${all[spawn]}")"
  "floor: $n x \`python -c 'from pydantic import BaseModel'\`, 2 in flight|xargs -P2 ($pyver)|$floor_tps|tasks/s|$(vs "$floor_tps")|-|$(all_tps "${all[floor]}")"
)
notes=("W7: a \`foreach\` of $n Python @task tasks with pydantic Input/Output models, ORK_MAX_ACTIVE_TASKS=2, $pyver; \`ork-host run\` wall time (host start and the listing task included). The fork-server is started by the first task of the first run and reused by the later runs; without it every task starts an interpreter and imports pydantic. Fork-server speed-up: $(printf '%.1f' "$(echo "${med[spawn]} / ${med[warm]}" | bc -l)")x.")
publish_rows "$runs"

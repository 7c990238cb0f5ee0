#!/usr/bin/env bash
# Ork against its peers (issue: benchmark harness) on trivial `true` tasks:
#   W1 fan-out of 1,000 independent tasks, 2 at a time (tasks/s)
#   W2 chain of 200 tasks (ms per hop)
#   W3 diamond 1 -> 500 -> 1, 2 at a time (total s)
# Peers from Debian (installed with apt when missing): GNU make -j2, ninja -j2, snakemake --cores 2, doit -n 2.
# The floor is posix_spawn of /bin/true (bench/spawn_floor.cpp), sequential and 2 in flight.
# Every figure is a median of BENCH_RUNS runs measured in this invocation, wall time with `date +%s.%N` around the
# command (tool start-up included). Prints one markdown table and writes bench/results/<date>.md and .json.
# Usage: bench/peers.sh [build-dir]   env: BENCH_RUNS (3), BENCH_TIMEOUT (300 s per run), BENCH_NO_INSTALL=1,
#        BENCH_TOOLS="ork make ..." (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
root="$PWD"
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
host="$build/bin/ork-host"
runs="${BENCH_RUNS:-3}"
limit="${BENCH_TIMEOUT:-300}"
export ORK_PLUGIN_PATH="$build/lib"
[ -x "$host" ] || { echo "bench: $host not found (make build)" >&2; exit 2; }
for t in bc timeout setsid g++ jq; do
  command -v "$t" > /dev/null || { echo "bench: needs $t" >&2; exit 2; }
done

N1=1000 N2=200 N3=500
notes=()
work=$(mktemp -d /tmp/ork-bench-peers.XXXXXX)
current_sid=""

# Kills every process of the session started for one run (ork-worker children live in their own process groups,
# but stay in the session), by pid.
sweep() {
  local sid=$1 pids
  [ -n "$sid" ] || return 0
  pids=$(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}')
  [ -z "$pids" ] || kill -KILL $pids 2> /dev/null || true
}
cleanup() {
  sweep "$current_sid"
  celery_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- peers ---------------------------------------------------------------------------------------------------
want=()
command -v make > /dev/null || want+=(make)
command -v ninja > /dev/null || want+=(ninja-build)
command -v snakemake > /dev/null || want+=(snakemake)
[ -x /usr/bin/doit ] || want+=(python3-doit)
/usr/bin/python3 -c 'import celery, redis' 2> /dev/null || want+=(python3-celery python3-redis)
command -v redis-server > /dev/null || want+=(redis-server)
if [ ${#want[@]} -gt 0 ] && [ -z "${BENCH_NO_INSTALL:-}" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || { command -v sudo > /dev/null && sudo="sudo -n"; }
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "bench: installing ${want[*]} (apt)" >&2
    $sudo apt-get update -qq > /dev/null 2>&1 || true
    for p in "${want[@]}"; do   # one at a time, so one unavailable package does not block the others
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" > /dev/null 2>&1 \
        || notes+=("apt could not install $p")
    done
  else
    notes+=("not root and no sudo: could not install ${want[*]}")
  fi
fi

deb_version() { dpkg-query -W -f '${Version}' "$1" 2> /dev/null || echo "?"; }
tools=(ork)
ork_version="ork $(git -C "$root" describe --always --dirty 2> /dev/null || echo '?')"
declare -A version=([ork]="$ork_version")
if command -v make > /dev/null; then tools+=(make); version[make]="GNU make $(make --version | awk 'NR == 1 {print $3}') -j2"; fi
if command -v ninja > /dev/null; then tools+=(ninja); version[ninja]="ninja $(ninja --version) -j2"; fi
if command -v snakemake > /dev/null; then tools+=(snakemake); version[snakemake]="snakemake $(snakemake --version 2> /dev/null || deb_version snakemake) --cores 2"; fi
if [ -x /usr/bin/doit ]; then tools+=(doit); version[doit]="doit $(deb_version python3-doit | sed 's/-.*//') -n 2"; fi
if /usr/bin/python3 -c 'import celery, redis' 2> /dev/null && command -v redis-server > /dev/null; then
  tools+=(celery)
  version[celery]="Celery $(deb_version python3-celery | sed 's/-.*//') + Redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p'), prefork -c 2"
fi
for t in make ninja snakemake doit celery; do
  [ -n "${version[$t]:-}" ] || notes+=("$t: not installed, skipped")
done
if [ -n "${BENCH_TOOLS:-}" ]; then  # a subset, e.g. BENCH_TOOLS="ork make"
  kept=()
  for t in "${tools[@]}"; do [[ " $BENCH_TOOLS " == *" $t "* ]] && kept+=("$t"); done
  tools=("${kept[@]}")
fi

# --- workload generators: gen_<tool> <workload> <dir> ----------------------------------------------------------
gen_ork() {
  local w=$1 d=$2 i
  {
    echo "name: $w"
    echo "tasks:"
    case $w in
      W1) printf '  t:\n    parallel: %d\n    command: "true"\n' $N1 ;;
      W2)
        for ((i = 0; i < N2; i++)); do
          printf '  c%d:\n    command: "true"\n' $i
          [ $i -eq 0 ] || printf '    depends_on: [c%d]\n' $((i - 1))
        done
        ;;
      W3)
        printf '  root:\n    command: "true"\n'
        printf '  mid:\n    parallel: %d\n    command: "true"\n    depends_on: [root]\n' $N3
        printf '  join:\n    command: "true"\n    depends_on: [mid]\n'
        ;;
    esac
  } > "$d/wf.yaml"
}
gen_make() {
  local w=$1 d=$2 i
  {
    case $w in
      W1)
        printf 'T := $(addprefix t,$(shell seq 0 %d))\n' $((N1 - 1))
        printf '.PHONY: all $(T)\nall: $(T)\n$(T):\n\t@true\n'
        ;;
      W2)
        printf '.PHONY: all'; for ((i = 0; i < N2; i++)); do printf ' c%d' $i; done; printf '\n'
        printf 'all: c%d\nc0:\n\t@true\n' $((N2 - 1))
        for ((i = 1; i < N2; i++)); do printf 'c%d: c%d\n\t@true\n' $i $((i - 1)); done
        ;;
      W3)
        printf 'M := $(addprefix m,$(shell seq 0 %d))\n' $((N3 - 1))
        printf '.PHONY: all root join $(M)\nall: join\nroot:\n\t@true\n$(M): root\n\t@true\njoin: $(M)\n\t@true\n'
        ;;
    esac
  } > "$d/Makefile"
}
gen_ninja() {
  local w=$1 d=$2 i
  {
    printf 'rule t\n  command = true\n'
    case $w in
      W1) for ((i = 0; i < N1; i++)); do printf 'build t%d: t\n' $i; done ;;
      W2)
        printf 'build c0: t\n'
        for ((i = 1; i < N2; i++)); do printf 'build c%d: t c%d\n' $i $((i - 1)); done
        ;;
      W3)
        printf 'build root: t\n'
        for ((i = 0; i < N3; i++)); do printf 'build m%d: t root\n' $i; done
        printf 'build join: t'; for ((i = 0; i < N3; i++)); do printf ' m%d' $i; done; printf '\n'
        ;;
    esac
  } > "$d/build.ninja"
}
gen_snakemake() {  # snakemake needs each job to create its output file: the body is `true; touch {output}`
  local w=$1 d=$2
  case $w in
    W1) cat > "$d/Snakefile" <<EOF
wildcard_constraints: i="\d+"
rule all:
    input: expand("t/{i}", i=range($N1))
rule t:
    output: "t/{i}"
    shell: "true; touch {output}"
EOF
      ;;
    W2) cat > "$d/Snakefile" <<EOF
wildcard_constraints: i="\d+"
rule all:
    input: "c/$((N2 - 1))"
def prev(w):
    i = int(w.i)
    return [] if i == 0 else ["c/%d" % (i - 1)]
rule c:
    input: prev
    output: "c/{i}"
    shell: "true; touch {output}"
EOF
      ;;
    W3) cat > "$d/Snakefile" <<EOF
wildcard_constraints: i="\d+"
rule all:
    input: "join"
rule root:
    output: "root"
    shell: "true; touch {output}"
rule mid:
    input: "root"
    output: "m/{i}"
    shell: "true; touch {output}"
rule join:
    input: expand("m/{i}", i=range($N3))
    output: "join"
    shell: "true; touch {output}"
EOF
      ;;
  esac
}
gen_doit() {
  local w=$1 d=$2
  {
    echo "DOIT_CONFIG = {'verbosity': 0}"
    case $w in
      W1) cat <<EOF
def task_t():
    for i in range($N1):
        yield {'name': str(i), 'actions': ['true']}
EOF
        ;;
      W2) cat <<EOF
def task_c():
    for i in range($N2):
        yield {'name': str(i), 'actions': ['true'], 'task_dep': ['c:%d' % (i - 1)] if i else []}
EOF
        ;;
      W3) cat <<EOF
def task_root():
    return {'actions': ['true']}
def task_mid():
    for i in range($N3):
        yield {'name': str(i), 'actions': ['true'], 'task_dep': ['root']}
def task_join():
    return {'actions': ['true'], 'task_dep': ['mid']}
EOF
        ;;
    esac
  } > "$d/dodo.py"
}
# Celery: one Redis broker/result backend and one worker (prefork, 2 processes) started once, before the runs, like a
# deployed Celery; each run is a client that submits the canvas and waits for its result (client start-up included).
celery_app() {
  cat <<EOF
import subprocess
from celery import Celery
app = Celery("bench", broker="redis://127.0.0.1:$redis_port/0", backend="redis://127.0.0.1:$redis_port/1")
app.conf.update(worker_prefetch_multiplier=1, result_expires=600, broker_connection_retry_on_startup=True)
@app.task
def sh():
    subprocess.run(["true"], check=True)
EOF
}
gen_celery() {
  local w=$1 d=$2
  celery_app > "$d/bench_app.py"
  cat > "$d/run.py" <<EOF
from celery import chain, chord, group
from bench_app import sh
w = "$w"
if w == "W1":
    r = group(sh.si() for _ in range($N1)).apply_async()
elif w == "W2":
    r = chain(*[sh.si() for _ in range($N2)]).apply_async()
else:
    r = chain(sh.si(), chord([sh.si() for _ in range($N3)], sh.si())).apply_async()
r.get(timeout=600, disable_sync_subtasks=False)
EOF
}
celery_start() {
  redis_port=$((20000 + RANDOM % 20000))
  mkdir -p "$work/celery"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/celery" \
    > "$work/celery/redis.log" 2>&1 &
  redis_pid=$!
  celery_app > "$work/celery/bench_app.py"
  (cd "$work/celery" && exec /usr/bin/python3 -m celery -A bench_app worker -c 2 -P prefork -l warning) \
    > "$work/celery/worker.log" 2>&1 &
  celery_pid=$!
  for _ in $(seq 100); do
    (cd "$work/celery" && /usr/bin/python3 -c "from bench_app import sh; sh.delay().get(timeout=1)") > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  notes+=("celery: the worker did not answer (see its log); skipped")
  return 1
}
celery_stop() {
  [ -z "${celery_pid:-}" ] || { kill -TERM "$celery_pid" 2> /dev/null; wait "$celery_pid" 2> /dev/null || true; }
  [ -z "${redis_pid:-}" ] || { kill -TERM "$redis_pid" 2> /dev/null; wait "$redis_pid" 2> /dev/null || true; }
  celery_pid="" redis_pid=""
}

cmd_for() {  # the command line run in the workload dir
  case $1 in
    ork) echo "env ORK_HOME=home ORK_MAX_ACTIVE_TASKS=2 $host run wf.yaml" ;;
    make) echo "make -j2 -s" ;;
    ninja) echo "ninja -j2" ;;
    snakemake) echo "snakemake --cores 2 --quiet --nolock" ;;
    doit) echo "/usr/bin/doit -n 2" ;;
    celery) echo "/usr/bin/python3 run.py" ;;
  esac
}

# Runs one command in its own session under a timeout, from a fresh copy of the workload; prints seconds.
time_once() {
  # A fresh folder per run, removed only at exit: deleting thousands of files just before a run would make the
  # filesystem's inode allocation slower for whichever tool runs next.
  local tool=$1 w=$2 d start end rc=0
  d=$(mktemp -d "$work/run-$tool-$w.XXXXXX")
  "gen_$tool" "$w" "$d"
  start=$(date +%s.%N)
  # shellcheck disable=SC2046
  (cd "$d" && exec setsid timeout -k 5 "$limit" $(cmd_for "$tool")) > "$d/log" 2>&1 < /dev/null &
  current_sid=$!
  wait "$current_sid" || rc=$?
  end=$(date +%s.%N)
  sweep "$current_sid"; current_sid=""
  if [ $rc -ne 0 ]; then
    echo "bench: $tool $w failed (exit $rc$([ $rc -eq 124 ] && echo ", timeout ${limit}s"))" >&2
    tail -5 "$d/log" >&2
    return 1
  fi
  printf '%.6f\n' "$(echo "$end - $start" | bc -l)"
}
median() { sort -g | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}'; }

# --- measure ---------------------------------------------------------------------------------------------------
declare -A secs samples_of   # secs[tool,W] = median seconds (empty = failed); samples_of[tool,W] = all runs
if [[ " ${tools[*]} " == *" celery "* ]] && ! celery_start; then
  kept=()
  for t in "${tools[@]}"; do [ "$t" = celery ] || kept+=("$t"); done
  tools=("${kept[@]}")
fi
for w in W1 W2 W3; do
  for tool in "${tools[@]}"; do
    samples=()
    for ((r = 0; r < runs; r++)); do
      s=$(time_once "$tool" "$w") || { samples=(); break; }
      samples+=("$s")
    done
    if [ ${#samples[@]} -gt 0 ]; then
      secs[$tool,$w]=$(printf '%s\n' "${samples[@]}" | median)
      samples_of[$tool,$w]="${samples[*]}"
    else
      secs[$tool,$w]=""
      notes+=("$tool $w: failed or timed out (see stderr)")
    fi
    echo "bench: $w ${tool}: ${secs[$tool,$w]:-failed} s" >&2
  done
done

g++ -O2 -std=c++20 -o "$work/spawn_floor" bench/spawn_floor.cpp
floor_seq=() floor_par=()
for ((r = 0; r < runs; r++)); do
  out=$(timeout -k 5 "$limit" "$work/spawn_floor" $N1)
  floor_seq+=("$(awk '$1 == "sequential" {print $2}' <<< "$out")")
  floor_par+=("$(awk '$1 == "parallel2" {print $2}' <<< "$out")")
done
fseq=$(printf '%s\n' "${floor_seq[@]}" | median)
fpar=$(printf '%s\n' "${floor_par[@]}" | median)

# --- table -----------------------------------------------------------------------------------------------------
fmt() { printf "%.${2}f" "$1"; }
value_of() {  # tool W -> value in the workload's unit
  local s=${secs[$1,$2]:-}
  [ -n "$s" ] || return 0
  case $2 in
    W1) fmt "$(echo "$N1 / $s" | bc -l)" 1 ;;
    W2) fmt "$(echo "$s * 1000 / $N2" | bc -l)" 2 ;;
    W3) fmt "$s" 2 ;;
  esac
}
unit_of() { case $1 in W1) echo "tasks/s" ;; W2) echo "ms/hop" ;; W3) echo "s" ;; esac; }
speed_vs_ork() {  # >1 = faster than Ork; W1 is a rate, W2/W3 are times
  local v=$1 o=$2 w=$3
  [ -n "$v" ] && [ -n "$o" ] || { echo "-"; return; }
  if [ "$w" = W1 ]; then fmt "$(echo "$v / $o" | bc -l)" 2; else fmt "$(echo "$o / $v" | bc -l)" 2; fi
}
verdict() { if [ "$(echo "$1" | bc -l)" -eq 1 ]; then echo PASS; else echo FAIL; fi; }
label() { case $1 in W1) echo "W1 fan-out $N1, 2 at a time" ;; W2) echo "W2 chain of $N2" ;; W3) echo "W3 diamond 1 -> $N3 -> 1" ;; esac; }

rows=()  # workload|tool|median|unit|speed|target|seconds of every run (JSON only)
for w in W1 W2 W3; do
  ork_v=$(value_of ork $w)
  for tool in "${tools[@]}"; do
    v=$(value_of "$tool" $w)
    target="-"
    if [ "$tool" = ork ]; then
      case $w in
        W1) target=">= 400 tasks/s: $([ -n "$v" ] && verdict "$v >= 400" || echo FAIL)" ;;
        W2) target="<= 2.0 ms/hop: $([ -n "$v" ] && verdict "$v <= 2.0" || echo FAIL)" ;;
        W3) target="report" ;;
      esac
    fi
    rows+=("$(label $w)|${version[$tool]}|${v:-failed}|$(unit_of $w)|$(speed_vs_ork "$v" "$ork_v" $w)|$target|${samples_of[$tool,$w]:-}")
  done
done
ork_w1=$(value_of ork W1)
rows+=("floor: posix_spawn /bin/true x $N1, sequential|spawn_floor.cpp (g++ -O2)|$(fmt "$fseq" 1)|tasks/s|$(speed_vs_ork "$fseq" "$ork_w1" W1)|-|")
rows+=("floor: posix_spawn /bin/true x $N1, 2 in flight|spawn_floor.cpp (g++ -O2)|$(fmt "$fpar" 1)|tasks/s|$(speed_vs_ork "$fpar" "$ork_w1" W1)|-|")

notes+=("W2: Ork writes four new files or folders per task (task folder, spec, log, status with the output); on ext4 right after thousands of deletions nearby (e.g. just after \`make test\` in /tmp), the inode allocator's scan past recently deleted inodes added up to 1 ms per hop here. Each run gets a fresh folder.")
notes+=("W1-W3: task body \`true\` everywhere (make execs it without a shell; snakemake runs \`true; touch {output}\` because its jobs must create their output; Celery's task runs \`subprocess.run([\"true\"])\`). Times include tool start-up, except Celery's worker and Redis, started once before the runs as a deployed Celery would be (its client's start-up is included).")
# Rows and notes go to the files of bench/all.sh (one table for every workload), or to a table of their own.
publish_rows "$runs"

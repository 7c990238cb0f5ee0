#!/usr/bin/env bash
# dbt import benchmark: generates a dbt project of BENCH_DBT_MODELS (2,000) models in 20 folders (each model refs up
# to 3 earlier ones; schema .yml files with docs and tests; 20 seeds; 10 snapshots) and times `ork-host validate` of a
# workflow importing it: plugin load, project scan and parse, task emission and the full workflow validation.
# Target: under 1 s. Prints a table; with $BENCH_ROWS set (bench/all.sh) it appends rows there.
# Usage: bench/dbt.sh [build-dir]   env: BENCH_RUNS (3), BENCH_DBT_MODELS (2000)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
host="$build/bin/ork-host"
[ -x "$host" ] && [ -e "$build/lib/libork-dbt-import.so" ] ||
  { echo "bench/dbt.sh: build ork-host and ork-dbt-import in $build first" >&2; exit 2; }
runs=${BENCH_RUNS:-3} models=${BENCH_DBT_MODELS:-2000}
work=$(mktemp -d /tmp/ork-bench-dbt.XXXXXX)
trap '[ -n "${BENCH_DBT_KEEP:-}" ] || rm -rf "$work"' EXIT
python3 - "$work/project" "$models" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(13)
os.makedirs(root + "/seeds"); os.makedirs(root + "/snapshots")
open(root + "/dbt_project.yml", "w").write("name: bench\nversion: '1.0'\nconfig-version: 2\nvars:\n  day: '2024-01-01'\n")
for s in range(20):
    open("%s/seeds/seed_%d.csv" % (root, s), "w").write("id,name\n1,a\n2,b\n")
folders = ["staging/src_%d" % i for i in range(8)] + ["intermediate/int_%d" % i for i in range(6)] + \
          ["marts/domain_%d" % i for i in range(6)]
names = []
schemas = {}
for i in range(n):
    folder = folders[i * len(folders) // n]
    name = "m_%05d" % i
    d = "%s/models/%s" % (root, folder)
    os.makedirs(d, exist_ok=True)
    if i < 20:
        refs = ["{{ ref('seed_%d') }}" % i]
    else:
        refs = ["{{ ref('%s') }}" % p for p in rnd.sample(names[max(0, i - 200):], min(3, len(names)))]
    sql = ("{{ config(materialized='%s', tags=['bench']) }}\n{# generated #}\nwith\n" % rnd.choice(["view", "table"]) +
           ",\n".join("  up_%d as (select * from %s)" % (k, r) for k, r in enumerate(refs)) +
           "\nselect id, '{{ var(\"day\") }}' as day from up_0\n{% if is_incremental() %} where 1 = 1 {% endif %}\n")
    open("%s/%s.sql" % (d, name), "w").write(sql)
    schemas.setdefault(d, []).append(name)
    names.append(name)
for d, ms in schemas.items():
    with open(d + "/schema.yml", "w") as f:
        f.write("version: 2\nmodels:\n")
        for m in ms:
            f.write("  - name: %s\n    description: Model %s\n    columns:\n      - name: id\n" % (m, m))
            f.write("        description: Key\n        tests: [unique, not_null]\n" if int(m[2:]) % 2 == 0 else
                    "        description: Key\n")
for s in range(10):
    open("%s/snapshots/snap_%d.sql" % (root, s), "w").write(
        "{%% snapshot snap_%d %%}\nselect * from {{ ref('%s') }}\n{%% endsnapshot %%}\n" % (s, names[-1 - s]))
PY
cat > "$work/wf.yaml" <<YAML
name: dbt_bench
import:
  - dbt: ./project
tasks:
  after:
    command: echo done
    depends_on: [dbt.marts.domain_5.m_$(printf %05d $((models - 1)))]
YAML
export ORK_PLUGIN_PATH="$build/lib" ORK_HOME="$work/home"
out=$("$host" validate "$work/wf.yaml")
echo "$out" >&2
vals=()
for _ in $(seq "$runs"); do
  t0=$(date +%s%N)
  "$host" validate "$work/wf.yaml" > /dev/null
  t1=$(date +%s%N)
  vals+=("$(( (t1 - t0) / 1000000 ))")
done
median=$(printf '%s\n' "${vals[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
tasks=$(echo "$out" | sed -n 's/.*, \([0-9]*\) tasks).*/\1/p')
version=$(sed -n 's/^project(ork-dbt-import VERSION \([0-9.]*\).*/\1/p' plugins/dbt-import/CMakeLists.txt)
rows=("dbt import: $models models → $tasks tasks (ork-host validate)|ork-dbt-import ($version)|$median|ms|-|< 1000 ms|${vals[*]}")
notes=("dbt import: a generated project of $models models in 20 folders, 20 seeds, 10 snapshots and tests on half the models; the time is a whole \`ork-host validate\` (process start, plugin load, scan, parse, workflow validation); dbt itself is not installed here, so there is no dbt parse to compare.")
source bench/lib.sh
publish_rows "$runs"

# Shared by the bench scripts (sourced). `rows` and `notes` are arrays of the caller; rows are
# "workload|tool (version)|value|unit|speed vs Ork|target|run values".

# Appends the rows and notes to bench/all.sh's files (one table for every workload), or prints a table of their own.
publish_rows() {  # runs
  if [ -n "${BENCH_ROWS:-}" ]; then
    printf '%s\n' "${rows[@]}" >> "$BENCH_ROWS"
    printf '%s\n' "${notes[@]}" >> "$BENCH_NOTES"
  else
    local dir
    dir=$(mktemp -d /tmp/ork-bench-rows.XXXXXX)
    printf '%s\n' "${rows[@]}" > "$dir/rows"
    printf '%s\n' "${notes[@]}" > "$dir/notes"
    bench/report.sh "$dir/rows" "$dir/notes" "$1"
    rm -rf "$dir"
  fi
}

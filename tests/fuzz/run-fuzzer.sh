#!/bin/bash
# Runs one libFuzzer target for a fixed time on a copy of its seed corpus; prints the figures
# (executions, coverage) and fails on any crash, leak or sanitizer report.
set -euo pipefail
exe=$1 corpus=$2 seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus" "$work/corpus"
"$exe" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1 || {
        tail -60 "$work/log"
        for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
                [[ -e $f ]] && { echo "reproducer: $f"; od -c "$f" | head -20; }
        done
        exit 1
}
grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$work/log" || true
grep -E "cov:" "$work/log" | tail -1

#!/usr/bin/env bash
# Runs every fuzz target for a fixed time on stable Rust (no sanitizer),
# starting from its checked-in corpus. Any crash fails the script.
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 20)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build --sanitizer none -O
for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    work=$(mktemp -d)
    # New inputs go to a scratch directory so the checked-in corpus stays as is.
    out=$(cargo fuzz run --sanitizer none -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECS" -print_final_stats=1 2>&1) || { echo "$out" | tail -40; echo "fuzz target $t FAILED"; exit 1; }
    runs=$(echo "$out" | awk '/stat::number_of_executed_units/ {print $2}')
    echo "fuzz $t: ${runs:-?} executions in ${SECS}s, no crash"
    rm -rf "$work"
done

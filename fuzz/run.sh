#!/usr/bin/env bash
# Runs every fuzz target on stable Rust (no sanitizer), starting from its
# checked-in corpus, for at most RUNS inputs (default 5,000,000) or
# SECONDS_PER_TARGET, whichever comes first. The mutations come from a
# fixed seed, so two runs try the same inputs (a slower machine a prefix
# of them): a CI run does not fail by chance where the previous one
# passed. Any crash fails the script. For deeper runs, raise both or use
# `cargo fuzz run` directly.
#   fuzz/run.sh [SECONDS_PER_TARGET] [RUNS]      (default 20, 5000000)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}
RUNS=${2:-5000000}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build --sanitizer none -O
for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    work=$(mktemp -d)
    # New inputs go to a scratch directory so the checked-in corpus stays as is.
    out=$(cargo fuzz run --sanitizer none -O "$t" "$work" "corpus/$t" -- \
        -seed=1 -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 2>&1) || { echo "$out" | tail -40; echo "fuzz target $t FAILED"; exit 1; }
    runs=$(echo "$out" | awk '/stat::number_of_executed_units/ {print $2}')
    echo "fuzz $t: ${runs:-?} executions (seed 1, at most $RUNS or ${SECS}s), no crash"
    rm -rf "$work"
done

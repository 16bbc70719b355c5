#!/usr/bin/env bash
# Rotating the key of an identity of N records (default 100000) while a
# writer on another identity of the same vault records how long each of
# its writes takes (examples/stall_writer.rs: one `set_secret` after
# another). Reports the writer's p50, p99 and max latency during the
# rotation, and before it for scale; then again with a second writer on the
# rotated identity itself (a rotation that keeps losing to it is built and
# committed with writers kept out, docs/ARCHITECTURE.md).
#
# The rotation goes in chunks (SPEC §4e) of CHUNK records per transaction
# (default: ravi's own, 256); MODES chooses the measurements.
#
#   benches/rotate_stall.sh [N [CHUNK]]   results: benches/results/rotate-stall.md
#   MODES=quiet benches/rotate_stall.sh   (only the first measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
CHUNK=${2:-256}
MODES=${MODES:-quiet contended}
cargo build -q --release -p vault-cli
cargo build -q --release -p ravi-benches --example stall_writer
R=$PWD/target/release/ravi
WR=$PWD/target/release/examples/stall_writer
W=$(mktemp -d)
WPID=""
SPID=""
trap '[ -n "$WPID" ] && kill "$WPID" ${SPID:-} 2>/dev/null; rm -rf "$W"' EXIT
export RAVI_VAULT=$W/vault.db RAVI_CONFIG_DIR=$W/cfg HOME=$W RAVI_PASSPHRASE='bench passphrase'
# Argon2id at 8 MiB: unlocking is not what is measured.
"$R" init --kdf-memory-mib 8 --kdf-iterations 1 --kdf-parallelism 1 >/dev/null 2>&1
"$R" identity create --name big >/dev/null
"$R" identity create --name other >/dev/null
python3 -c "
import sys
for i in range(int(sys.argv[1])): print(f'KEY_{i:07d}=value-{i}-' + 'x' * (8 + i % 33))" "$N" > "$W/s.env"
"$R" --identity big import dotenv "$W/s.env" >/dev/null
# One rotation of `big` while a writer on `other` (and, with `contended`,
# another on `big` itself) records its writes.
measure() {
    rm -f "$W/stop"
    "$WR" "$RAVI_VAULT" other "$W/stop" > "$W/writes" &
    WPID=$!
    SPID=""
    if [ "$1" = contended ]; then
        "$WR" "$RAVI_VAULT" big "$W/stop" > "$W/same" &
        SPID=$!
    fi
    sleep 2
    R0=$(date +%s%N)
    "$R" identity rotate big --chunk-records "$CHUNK" >/dev/null
    R1=$(date +%s%N)
    sleep 1
    touch "$W/stop"
    wait "$WPID"
    [ -n "$SPID" ] && wait "$SPID"
    WPID=""
    python3 - "$W/writes" "$R0" "$R1" "$1" "$W/same" <<'PY'
import os, sys
def load(path):
    return [tuple(map(int, l.split())) for l in open(path)] if os.path.exists(path) else []
rows = load(sys.argv[1])
r0, r1 = int(sys.argv[2]) // 1000, int(sys.argv[3]) // 1000  # ns -> µs
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0
def line(name, xs):
    print("| %s | %d | %.2f | %.2f | %.2f |" % (name, len(xs), pct(xs, .5) / 1000, pct(xs, .99) / 1000, max(xs or [0]) / 1000))
contended = sys.argv[4] == "contended"
print()
print("#### %s" % ("With a writer on the rotated identity too" if contended else "Only a writer on another identity"))
print()
print("| writer | writes | p50 [ms] | p99 [ms] | max [ms] |")
print("|:---|---:|---:|---:|---:|")
line("on another identity, before the rotation", [d for t, d in rows if t + d < r0])
line("on another identity, during the rotation", [d for t, d in rows if t + d >= r0 and t <= r1])
if contended:
    same = load(sys.argv[5])
    line("on the rotated identity, during the rotation", [d for t, d in same if t + d >= r0 and t <= r1])
print()
print("The rotation (`ravi identity rotate`, whole process) took %.2f s." % ((r1 - r0) / 1e6))
PY
}
mkdir -p benches/results
for mode in $MODES; do
    measure "$mode"
done > benches/results/rotate-stall.md
echo "N = $N records, $CHUNK per transaction; $(nproc) cores, $(uname -sr); $(date -u +%Y-%m-%d)." >> benches/results/rotate-stall.md
cat benches/results/rotate-stall.md

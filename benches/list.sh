#!/usr/bin/env bash
# `ravi secrets list` over N secrets (default 100000) in one identity, next
# to its floor in the same run: plain SQLite reads of the same rows plus
# one raw XChaCha20-Poly1305 pass over each (examples/list_floor.rs). Peak
# RSS of each from GNU time.
#
#   benches/list.sh [N]       results: benches/results/list.md
#
# Installs hyperfine and GNU time with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
. benches/apt.sh
need hyperfine=hyperfine /usr/bin/time=time
cargo build -q --release -p vault-cli
cargo build -q --release -p ravi-benches --example list_floor
R=$PWD/target/release/ravi
F=$PWD/target/release/examples/list_floor
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export RAVI_VAULT=$W/vault.db RAVI_CONFIG_DIR=$W/cfg HOME=$W
printf '%s\n' 'bench passphrase' > "$W/pass"
# Argon2id at 8 MiB: the unlock is not what is measured (a session is used).
"$R" --passphrase-file "$W/pass" init --kdf-memory-mib 8 --kdf-iterations 1 --kdf-parallelism 1 >/dev/null 2>&1
"$R" --passphrase-file "$W/pass" identity create --name bench >/dev/null
"$R" identity use bench >/dev/null 2>&1
python3 -c "
import sys
for i in range(int(sys.argv[1])): print(f'KEY_{i:07d}=value-{i}-' + 'x' * (8 + i % 33))" "$N" > "$W/s.env"
"$R" --passphrase-file "$W/pass" import dotenv "$W/s.env" >/dev/null
"$R" --passphrase-file "$W/pass" unlock --ttl 1h > "$W/session"
S="--session-file $W/session"
mkdir -p benches/results
hyperfine -N --warmup 2 --runs 10 --export-markdown benches/results/list.md \
    -n "ravi secrets list ($N secrets)" "$R $S secrets list" \
    -n "ravi --json secrets list" "$R $S --json secrets list" \
    -n "floor: SQLite reads + raw AEAD" "$F $RAVI_VAULT"
{
    echo
    echo "| peak RSS | KiB |"
    echo "|:---|---:|"
    echo "| ravi secrets list | $(/usr/bin/time -f %M "$R" $S secrets list 2>&1 >/dev/null | tail -1) |"
    echo "| ravi --json secrets list | $(/usr/bin/time -f %M "$R" $S --json secrets list 2>&1 >/dev/null | tail -1) |"
    echo "| floor | $(/usr/bin/time -f %M "$F" "$RAVI_VAULT" 2>&1 >/dev/null | tail -1) |"
    echo
    echo "Machine: $(nproc) cores, $(uname -sr); $N secrets; $(date -u +%Y-%m-%d)."
} >> benches/results/list.md
cat benches/results/list.md

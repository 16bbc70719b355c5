#!/usr/bin/env bash
# Whole-process latency of `ravi secrets get`, `ravi passwords get` and
# `ravi totp code` (by session token and by agent key; the passphrase path
# for scale) on a vault of N records (default 10000), next to process
# start-up, `pass show` (gpg) and `oathtool --totp` on the same secrets;
# then the same `secrets get` through a `ravi serve` on loopback (the vault
# file copied into the server's store), next to local mode. The `daemon`
# rows are processes that ask a `ravi daemon` (RAVI_DAEMON) holding the
# session or the agent key and the vault open.
#
#   benches/cli.sh [N]        results: benches/results/cli.md
#
# Installs hyperfine, pass, gnupg and oathtool with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}

. benches/apt.sh
need hyperfine=hyperfine pass=pass gpg=gnupg oathtool=oathtool

cargo build -q --release -p vault-cli
cargo build -q --release -p ravi-benches --example populate
R=$PWD/target/release/ravi
# The static build of README "A static build" (glibc linked in).
HOST=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release -p vault-cli --target "$HOST"
RS=$PWD/target/$HOST/release/ravi
W=$(mktemp -d)
# The floor of process start-up: a hello-world Rust binary, built here with
# the same toolchain and the release profile's settings.
printf 'fn main() {\n    println!("hello");\n}\n' > "$W/hello.rs"
rustc --edition 2024 -C opt-level=3 -C codegen-units=1 -C strip=symbols -o "$W/hello" "$W/hello.rs"
rustc --edition 2024 -C opt-level=3 -C codegen-units=1 -C strip=symbols -C target-feature=+crt-static -o "$W/hello-static" "$W/hello.rs"
HELLO=$W/hello
SERVE_PID=""
DAEMON_PIDS=""
trap '[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; for p in $DAEMON_PIDS; do kill "$p" 2>/dev/null; done; gpgconf --homedir "$W/gnupg" --kill all >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
export HOME=$W/home RAVI_VAULT=$W/vault.db RAVI_CONFIG_DIR=$W/cfg
mkdir -p "$HOME"
unset RAVI_SESSION RAVI_AGENT_KEY_FILE
printf '%s\n' 'bench passphrase' > "$W/pass"
RAVI_PASSPHRASE='bench passphrase' ./target/release/examples/populate "$RAVI_VAULT" "$N"
"$R" identity use bench >/dev/null
"$R" --passphrase-file "$W/pass" unlock --ttl 2h > "$W/session"
"$R" agent keygen --out "$W/agent.key" >/dev/null
"$R" --passphrase-file "$W/pass" identity grant bench --to "$("$R" agent pubkey --key-file "$W/agent.key")" >/dev/null

# pass (gpg) with the same secret, non-interactive
export GNUPGHOME=$W/gnupg PASSWORD_STORE_DIR=$W/pass-store
mkdir -m 700 "$GNUPGHOME"
gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Bench <bench@example.invalid>' future-default default never 2>/dev/null
FPR=$(gpg --list-keys --with-colons | awk -F: '/^fpr/ {print $10; exit}')
pass init "$FPR" >/dev/null
printf 'value-42\n' | pass insert -m bench/KEY_42 >/dev/null
pass show bench/KEY_42 >/dev/null

mkdir -p benches/results
S="--session-file $W/session"
A="--agent-key-file $W/agent.key"
# Two daemons: one holds the session, one the agent key. A process given a
# credential on its command line (the rows with $S or $A) never asks one.
start_daemon() { # NAME CREDENTIAL-OPTION...
    local name=$1
    shift
    "$R" "$@" daemon --socket "$W/$name.sock" --ttl 2h > "$W/$name.out" &
    DAEMON_PIDS="$DAEMON_PIDS $!"
    for _ in $(seq 100); do grep -q RAVI_DAEMON "$W/$name.out" 2>/dev/null && break; sleep 0.05; done
}
start_daemon daemon-session $S
start_daemon daemon-agent $A
export RAVI_DAEMON=$W/daemon-session.sock
hyperfine -N --warmup 10 --min-runs 50 --export-markdown benches/results/cli.md --export-json "$W/cli.json" \
    -n "hello-world Rust binary" "$HELLO" \
    -n "process start-up (ravi --version)" "$R --version" \
    -n "ravi secrets get (session)" "$R $S secrets get KEY_42" \
    -n "ravi secrets get (agent key)" "$R $A secrets get KEY_42" \
    -n "ravi passwords get (session)" "$R $S passwords get site-42.example" \
    -n "ravi passwords get (agent key)" "$R $A passwords get site-42.example" \
    -n "ravi totp code (session)" "$R $S totp code bench-totp" \
    -n "ravi totp code (agent key)" "$R $A totp code bench-totp" \
    -n "hello-world Rust binary (static)" "$W/hello-static" \
    -n "static ravi --version" "$RS --version" \
    -n "static ravi secrets get (session)" "$RS $S secrets get KEY_42" \
    -n "static ravi secrets get (agent key)" "$RS $A secrets get KEY_42" \
    -n "static ravi totp code (session)" "$RS $S totp code bench-totp" \
    -n "static ravi totp code (agent key)" "$RS $A totp code bench-totp" \
    -n "ravi secrets get (daemon, session)" "$R secrets get KEY_42" \
    -n "ravi totp code (daemon, session)" "$R totp code bench-totp" \
    -n "static ravi secrets get (daemon, session)" "$RS secrets get KEY_42" \
    -n "static ravi totp code (daemon, session)" "$RS totp code bench-totp" \
    -n "pass show (gpg)" "pass show bench/KEY_42" \
    -n "oathtool --totp" "oathtool --totp -b GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
# The daemon that holds the agent key, with the same references.
RAVI_DAEMON=$W/daemon-agent.sock hyperfine -N --warmup 10 --min-runs 50 --export-json "$W/cli-agent.json" \
    -n "hello-world Rust binary" "$HELLO" \
    -n "ravi secrets get (daemon, agent key)" "$R secrets get KEY_42" \
    -n "ravi totp code (daemon, agent key)" "$R totp code bench-totp" \
    -n "static ravi secrets get (daemon, agent key)" "$RS secrets get KEY_42" \
    -n "static ravi totp code (daemon, agent key)" "$RS totp code bench-totp" \
    -n "pass show (gpg)" "pass show bench/KEY_42" \
    -n "oathtool --totp" "oathtool --totp -b GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
# Every request checked anew: a write to the store by another process
# before each run (not timed), so the daemon keeps no reply for the next.
BUMP="$R $S secrets set BENCH_BUMP --value-file $W/pass"
RAVI_DAEMON=$W/daemon-session.sock hyperfine -N --warmup 10 --min-runs 50 --export-json "$W/cli-cold.json" \
    --prepare true --prepare "$BUMP" --prepare "$BUMP" --prepare true --prepare true \
    -n "hello-world Rust binary" "$HELLO" \
    -n "static ravi secrets get (daemon, session, store written before each)" "$RS secrets get KEY_42" \
    -n "static ravi totp code (daemon, session, store written before each)" "$RS totp code bench-totp" \
    -n "pass show (gpg)" "pass show bench/KEY_42" \
    -n "oathtool --totp" "oathtool --totp -b GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
unset RAVI_DAEMON
# The same vault behind `ravi serve` on loopback: the server's SQLite store
# is a vault file plus its server_* tables, so a copy of the vault serves.
cp "$RAVI_VAULT" "$W/server.db"
[ -f "$RAVI_VAULT-wal" ] && cp "$RAVI_VAULT-wal" "$W/server.db-wal"
"$R" serve --data "$W/server.db" --listen 127.0.0.1:0 > "$W/serve.out" 2>/dev/null &
SERVE_PID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$W/serve.out")
OWNER_TOKEN=$("$R" serve token create --data "$W/server.db" --name bench-owner --owner)
AGENT_TOKEN=$("$R" serve token create --data "$W/server.db" --name bench-agent --identity bench)
hyperfine -N --warmup 10 --min-runs 100 --export-markdown benches/results/cli-remote.md \
    -n "ravi secrets get (session, local)" "$R $S secrets get KEY_42" \
    -n "ravi secrets get (agent key, local)" "$R $A secrets get KEY_42"
(
    unset RAVI_VAULT
    export RAVI_SERVER=$URL RAVI_TOKEN=$OWNER_TOKEN
    hyperfine -N --warmup 10 --min-runs 100 --export-markdown "$W/remote-session.md" \
        -n "ravi secrets get (session, loopback server)" "$R $S secrets get KEY_42"
    export RAVI_TOKEN=$AGENT_TOKEN
    hyperfine -N --warmup 10 --min-runs 100 --export-markdown "$W/remote-agent.md" \
        -n "ravi secrets get (agent key, loopback server)" "$R $A secrets get KEY_42"
)
tail -n 1 "$W/remote-session.md" >> benches/results/cli-remote.md
tail -n 1 "$W/remote-agent.md" >> benches/results/cli-remote.md

hyperfine -N --warmup 2 --runs 10 --export-markdown benches/results/cli-passphrase.md \
    -n "ravi secrets get (passphrase, Argon2id 64 MiB t=3 p=4)" "$R --passphrase-file $W/pass secrets get KEY_42"

python3 - "$W/cli.json" "$W/cli-agent.json" "$W/cli-cold.json" >> benches/results/cli.md <<'PY'
import json, sys
for i, path in enumerate(sys.argv[1:]):
    r = {x["command"]: x["median"] for x in json.load(open(path))["results"]}
    hello, oath, pass_ = r["hello-world Rust binary"], r["oathtool --totp"], r["pass show (gpg)"]
    if i == 1:
        print("\nThe daemon holding the agent key (a second hyperfine run):")
    if i == 2:
        print("\nNo reply kept: the store written by another process before each run (a third run):")
    print("\n| Command | Median [ms] | vs hello-world | vs oathtool | pass show / it |")
    print("|:---|---:|---:|---:|---:|")
    for name, m in r.items():
        print("| `%s` | %.2f | %.2f | %.2f | %.1f |" % (name, m * 1000, m / hello, m / oath, pass_ / m))
print()
print("`static` rows: the build of README \"A static build\" (glibc linked in).")
print("Targets: `ravi --version` within 1.1x of the hello-world binary; `totp code`")
print("and `secrets get` (session, agent key) within 1.5x of oathtool and at least")
print("15x faster than `pass show`.")
PY
{
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); vault of $N records; $(date -u +%Y-%m-%d)."
} >> benches/results/cli.md
cat benches/results/cli.md benches/results/cli-passphrase.md benches/results/cli-remote.md

#!/usr/bin/env python3
"""Load on `ravi serve`: C client processes (default 16) run mixed reads and
writes of secrets on 4 identities for S seconds (default 60), through one
server on SQLite, or two servers sharing one PostgreSQL database
(`--store postgres`: a throwaway cluster is started and stopped here).

Every write a client saw acknowledged (exit 0) is journaled; every read of
an acknowledged key must return its newest acknowledged value. At the end
every acknowledged write is read back. `--kill-at T` SIGKILLs the server(s)
T seconds in and restarts them on the same ports: commands in between fail
with exit 7 (not acknowledged), nothing acknowledged may be lost. A write
whose answer was lost with the server may have been applied (whole): a
read may show it, and the checks accept it, but nothing else.

    cargo build --release -p vault-cli
    python3 benches/serve_load.py [--store sqlite|postgres] [--seconds 60]
        [--clients 16] [--kill-at T]

Prints ops/s, p50 and p99 per operation, exit-code counts, 5xx count in the
server logs, lost and wrong acknowledged writes.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process, Queue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAVI = os.path.join(ROOT, "target", "release", "ravi")
IDENTITIES = ["load-0", "load-1", "load-2", "load-3"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def find(tool):
    p = shutil.which(tool)
    if p:
        return p
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        for v in sorted(os.listdir(base), reverse=True):
            c = os.path.join(base, v, "bin", tool)
            if os.path.exists(c):
                return c
    sys.exit(f"{tool} not found (apt-get install postgresql)")


def as_pg_user(cmd):
    return (["runuser", "-u", "nobody", "--"] + cmd) if os.geteuid() == 0 else cmd


class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        os.chmod(work, 0o777)
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        subprocess.run(as_pg_user([find("initdb"), "-D", self.dir + "/data", "-A", "trust",
                                   "-U", "ravi", "--locale=C", "-E", "UTF8"]),
                       check=True, capture_output=True)
        subprocess.run(as_pg_user([find("pg_ctl"), "-D", self.dir + "/data", "-o",
                                   f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200",
                                   "-l", self.dir + "/log", "start", "-w"]),
                       check=True, capture_output=True)
        subprocess.run([find("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "ravi",
                        "-d", "postgres", "-c", "CREATE DATABASE ravi"], check=True, capture_output=True)
        self.url = f"postgres://ravi@127.0.0.1:{self.port}/ravi"

    def stop(self):
        subprocess.run(as_pg_user([find("pg_ctl"), "-D", self.dir + "/data", "stop", "-m", "immediate", "-w"]),
                       capture_output=True)


class Server:
    def __init__(self, store_args, log):
        self.store_args = store_args
        self.port = free_port()
        self.log = log
        self.start()

    def start(self):
        self.proc = subprocess.Popen([RAVI, "serve", "--listen", f"127.0.0.1:{self.port}"] + self.store_args,
                                     stdout=subprocess.PIPE, stderr=open(self.log, "a"))
        line = self.proc.stdout.readline().decode()
        assert "listening" in line, line
        self.url = f"http://127.0.0.1:{self.port}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def ravi(env, *args, stdin=None):
    t = time.monotonic()
    r = subprocess.run([RAVI] + list(args), env=env, input=stdin, capture_output=True)
    return r.returncode, r.stdout.decode().strip(), time.monotonic() - t


def client(n, env, seconds, queue):
    rnd = random.Random(n)
    acked = {}  # (identity, key) -> value
    # Writes that failed after being sent (exit 7: the answer was lost, so
    # the batch may have been applied whole) since the key's last
    # acknowledged write: a read may show one of them.
    maybe = {}  # (identity, key) -> {value}
    stats = []  # (op, seconds, code)
    wrong = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        ident = rnd.choice(IDENTITIES)
        own = [k for k in acked if k[0] == ident]
        if own and rnd.random() < 0.5:
            k = rnd.choice(own)
            code, out, dt = ravi(env, "--identity", ident, "secrets", "get", k[1])
            stats.append(("get", dt, code))
            if code == 0 and out != acked[k] and out not in maybe.get(k, ()):
                wrong.append((k, acked[k], out))
        else:
            key = f"C{n}_K{rnd.randrange(20)}"
            value = f"v-{n}-{i}"
            code, _, dt = ravi(env, "--identity", ident, "secrets", "set", key, "--value-stdin",
                               stdin=value.encode())
            stats.append(("set", dt, code))
            if code == 0:
                acked[(ident, key)] = value
                maybe[(ident, key)] = set()
            elif code == 7:
                maybe.setdefault((ident, key), set()).add(value)
        i += 1
    queue.put((n, acked, maybe, stats, wrong))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--kill-at", type=float, default=None)
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ravi-load")
    cluster = None
    servers = []
    try:
        if a.store == "postgres":
            cluster = Cluster(work)
            store = ["--database", cluster.url]
            servers = [Server(store, f"{work}/serve-{i}.log") for i in range(2)]
        else:
            store = ["--data", f"{work}/server.db"]
            servers = [Server(store, f"{work}/serve-0.log")]
        token = subprocess.run([RAVI, "serve", "token", "create", "--name", "load", "--owner"] + store,
                               check=True, capture_output=True).stdout.decode().strip()
        base = dict(os.environ, HOME=f"{work}/home", RAVI_CONFIG_DIR=f"{work}/cfg", RAVI_TOKEN=token)
        base.pop("RAVI_VAULT", None)
        os.makedirs(base["HOME"])
        env = dict(base, RAVI_SERVER=servers[0].url, RAVI_PASSPHRASE="load passphrase")
        subprocess.run([RAVI, "init", "--kdf-memory-mib", "8", "--kdf-iterations", "1",
                        "--kdf-parallelism", "1"], env=env, check=True, capture_output=True)
        for name in IDENTITIES:
            subprocess.run([RAVI, "identity", "create", "--name", name], env=env, check=True, capture_output=True)
        session = json.loads(subprocess.run([RAVI, "unlock", "--ttl", "2h", "--json"], env=env, check=True,
                                            capture_output=True).stdout)["session"]
        queue = Queue()
        procs = []
        for n in range(a.clients):
            e = dict(base, RAVI_SERVER=servers[n % len(servers)].url, RAVI_SESSION=session,
                     RAVI_CONFIG_DIR=f"{work}/cfg-{n}")
            p = Process(target=client, args=(n, e, a.seconds, queue))
            p.start()
            procs.append(p)
        started = time.monotonic()
        if a.kill_at is not None:
            time.sleep(a.kill_at)
            for s in servers:
                s.kill()
            time.sleep(1)
            for s in servers:
                s.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.monotonic() - started

        # every acknowledged write, read back through a fresh client
        check_env = dict(base, RAVI_SERVER=servers[-1].url, RAVI_SESSION=session, RAVI_CONFIG_DIR=f"{work}/cfg-check")
        lost = []
        wrong = []
        unacked_applied = 0
        for n, acked, maybe, stats, w in results:
            wrong.extend(w)
            for (ident, key), value in acked.items():
                code, out, _ = ravi(check_env, "--identity", ident, "secrets", "get", key)
                if code == 0 and out in maybe.get((ident, key), ()):
                    unacked_applied += 1
                elif code != 0 or out != value:
                    lost.append((ident, key, value, code, out))
        stats = [s for _, _, _, st, _ in results for s in st]
        codes = {}
        for op, _, code in stats:
            codes[(op, code)] = codes.get((op, code), 0) + 1
        five = sum(1 for s in servers for line in open(s.log) if line.split()[4:5] and line.split()[4].startswith("5"))
        acked_writes = sum(len(a_) for _, a_, _, _, _ in results)
        print(f"store: {a.store} ({len(servers)} server(s)), clients: {a.clients}, "
              f"{elapsed:.0f} s, kill at: {a.kill_at}")
        ok = [s for s in stats if s[2] == 0]
        print(f"ops: {len(stats)} ({len(ok)} ok), {len(ok) / elapsed:.1f} ok ops/s")
        for op in ("get", "set"):
            t = [dt for o, dt, c in stats if o == op and c == 0]
            print(f"  {op}: {len(t)} ok, p50 {pct(t, 0.5) * 1000:.1f} ms, p99 {pct(t, 0.99) * 1000:.1f} ms")
        print("exit codes:", {f"{op} {c}": v for (op, c), v in sorted(codes.items())})
        print(f"distinct keys acknowledged: {acked_writes}; lost or wrong at the end: {len(lost)}; "
              f"wrong reads during the run: {len(wrong)}; 5xx in server logs: {five}; "
              f"keys ending on a write whose answer was lost (applied whole): {unacked_applied}")
        for x in (lost + wrong)[:10]:
            print("  ", x)
        return 0 if not lost and not wrong and five == 0 else 1
    finally:
        for s in servers:
            try:
                s.kill()
            except Exception:
                pass
        if cluster:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

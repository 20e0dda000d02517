#!/usr/bin/python3
"""redis-benchmark against Redis 7 and against ringcached's Redis-protocol port, side by
side in one run: the same flags for both, rounds alternating which server goes first.

For each workload and server it reports ops/s, latency p50/p99 (from redis-benchmark's
CSV) and the server's CPU time per operation and context switches per operation (every
thread of the server process, read from /proc before and after each run). Ratios are
ringcache/Redis per adjacent pair, as a median with the spread over the rounds.

Servers are started here on 127.0.0.1 with free ports and stopped at the end: redis-server
(no persistence), and ringcached as one node (--resp-threads 1 and 2) or, with --nodes 3,
a 3-node cluster loaded through n1 (two keys in three forwarded).

--ringcached A,B runs two builds (ringcacheA, ringcacheB) beside Redis in the same rounds.

--tls runs each server twice, in plaintext and with TLS on its port (test certificates
from tests/integration/make_test_certs.sh; redis-benchmark --tls --cacert), and compares
each one's TLS run with its plaintext run, and ringcache with Redis both on TLS.

Usage: resp_bench.py --ringcached PATH[,PATH] [--nodes 1|3] [--threads 1,2] [--rounds 5]
                     [--requests 200000] [--quick] [--tls] [--only GET,SET,MGET]
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def proc_usage(pid):
    """(CPU seconds, context switches) over every thread of `pid`."""
    cpu = 0.0
    switches = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # A thread that ended meanwhile.
    return cpu, switches


class Server:
    def __init__(self, name, procs, port, tls_ca=None):
        self.name, self.procs, self.port, self.tls_ca = name, procs, port, tls_ca

    def usage(self):
        cpu, sw = 0.0, 0
        for p in self.procs:
            c, s = proc_usage(p.pid)
            cpu, sw = cpu + c, sw + s
        return cpu, sw

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def start(args, ready, log):
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("cannot start %s" % args[0])
        time.sleep(0.05)
    return proc


def start_redis(binary, tmp, certs=None):
    """Redis on a free port; with `certs` (a make_test_certs.sh directory) TLS only."""
    port = free_port()
    log = open(os.path.join(tmp, "redis%s.log" % ("-tls" if certs else "")), "wb")
    listen = ["--port", str(port)]
    if certs:
        listen = ["--port", "0", "--tls-port", str(port),
                  "--tls-cert-file", os.path.join(certs, "node.pem"),
                  "--tls-key-file", os.path.join(certs, "node.key"),
                  "--tls-ca-cert-file", os.path.join(certs, "ca.pem"), "--tls-auth-clients", "no"]
    p = start([binary] + listen + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                   "--dir", tmp], lambda: can_connect(port), log)
    return Server("redis" + (" TLS" if certs else ""), [p], port,
                  os.path.join(certs, "ca.pem") if certs else None)


def start_ringcache(binary, tmp, nodes, threads, label="", certs=None, extra=()):
    procs, seeds, resp = [], None, None
    for i in range(1, nodes + 1):
        tag = "%st%d%s-n%d" % (label, threads, "-tls" if certs else "", i)
        ready = os.path.join(tmp, tag + ".ready")
        args = [binary, "--node-id", "n%d" % i, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                "--memory", "1GiB", "--ready-file", ready, "--log-level", "warn",
                "--replication-factor", str(min(2, nodes))]
        if certs:
            args += ["--tls-cert-file", os.path.join(certs, "node.pem"),
                     "--tls-key-file", os.path.join(certs, "node.key"),
                     "--tls-ca-file", os.path.join(certs, "ca.pem")]
        if i == 1:
            args += ["--resp-listen", "127.0.0.1:0", "--resp-threads", str(threads)]
        if seeds:
            args += ["--seeds", seeds]
        args += list(extra)
        log = open(os.path.join(tmp, tag + ".log"), "wb")
        procs.append(start(args, lambda: os.path.exists(ready), log))
        fields = dict(l.strip().split("=", 1) for l in open(ready) if "=" in l)
        if i == 1:
            seeds = fields["grpc"]
            resp = int(fields["resp"].rsplit(":", 1)[1])
    name = "ringcache%s(%d thr%s%s%s)" % (label, threads, ", 3 nodes" if nodes > 1 else "",
                                          ", TLS" if certs else "",
                                          ", " + " ".join(extra) if extra else "")
    return Server(name, procs, resp, os.path.join(certs, "ca.pem") if certs else None)


def run(bench, server, workload, requests):
    """One redis-benchmark run; returns dict(ops, p50, p99, cpu_us, cs)."""
    args = [bench, "-h", "127.0.0.1", "-p", str(server.port), "-n", str(requests), "--csv",
            "-r", "100000", "-d", "32"]
    if server.tls_ca:
        args += ["--tls", "--cacert", server.tls_ca]
    args += workload["flags"]  # Last: a command's words end the flags.
    cpu0, sw0 = server.usage()
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    cpu1, sw1 = server.usage()
    rows = [l for l in out.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if not rows:
        raise RuntimeError("redis-benchmark printed no result: %r" % out[-500:])
    cols = [c.strip('"') for c in rows[-1].split(",")]
    ops = float(cols[1])
    return {"ops": ops, "p50": float(cols[4]), "p99": float(cols[6]),
            "cpu_us": (cpu1 - cpu0) * 1e6 / requests, "cs": (sw1 - sw0) / requests}


WORKLOADS = [
    {"name": "SET -c 50 -P 1", "flags": ["-c", "50", "-P", "1", "-t", "set"]},
    {"name": "GET -c 50 -P 1", "flags": ["-c", "50", "-P", "1", "-t", "get"]},
    {"name": "SET -c 50 -P 16", "flags": ["-c", "50", "-P", "16", "-t", "set"]},
    {"name": "GET -c 50 -P 16", "flags": ["-c", "50", "-P", "16", "-t", "get"]},
    {"name": "MGET 10 keys -c 50", "flags": ["-c", "50", "MGET"] +
        ["key:__rand_int__"] * 10},
    {"name": "GET -c 1 -P 1", "flags": ["-c", "1", "-P", "1", "-t", "get"], "div": 10},
    # Hashes and lists on keys spread like the strings' (redis-benchmark's own -t hset and
    # -t lpush grow one key to every request, which measures one huge collection instead).
    {"name": "HSET -c 50 -P 16", "flags": ["-c", "50", "-P", "16", "HSET", "h:__rand_int__",
                                          "field", "x" * 32]},
    {"name": "HGET -c 50 -P 16", "flags": ["-c", "50", "-P", "16", "HGET", "h:__rand_int__",
                                          "field"]},
    {"name": "HGET -c 50 -P 1", "flags": ["-c", "50", "-P", "1", "HGET", "h:__rand_int__",
                                         "field"]},
    {"name": "LPUSH -c 50 -P 16", "flags": ["-c", "50", "-P", "16", "LPUSH", "l:__rand_int__",
                                           "x" * 32]},
]
# Typed commands against the string command at the same load, per server (issue "Typed
# values": HGET and LPUSH vs GET and SET through the daemon).
SAME_LOAD = [("HGET -c 50 -P 16", "GET -c 50 -P 16"), ("HGET -c 50 -P 1", "GET -c 50 -P 1"),
             ("HSET -c 50 -P 16", "SET -c 50 -P 16"), ("LPUSH -c 50 -P 16", "SET -c 50 -P 16")]


def spread(xs):
    return "%.2fx (%.2f .. %.2f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    ap.add_argument("--redis-benchmark", default=shutil.which("redis-benchmark") or "")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--ringcached-args", default="",
                    help="more flags per --ringcached binary, '|'-separated in the same order "
                         "(e.g. --ringcached B,B --ringcached-args '|--keyspace-events KA')")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--quick", action="store_true", help="one round of few requests (CI smoke)")
    ap.add_argument("--only", default="",
                    help="comma-separated workload names to run (their first words: GET,HSET)")
    ap.add_argument("--tls", action="store_true",
                    help="each server also with TLS; compare TLS with plaintext")
    opts = ap.parse_args()
    if not (os.access(opts.redis_server or "/nonexistent", os.X_OK) and
            os.access(opts.redis_benchmark or "/nonexistent", os.X_OK)):
        print("SKIP: redis-server or redis-benchmark not found (scripts/install-deps.sh)")
        return 77
    if opts.quick:
        opts.rounds, opts.requests, opts.threads = 1, 20000, "1"
    workloads = [w for w in WORKLOADS
                 if not opts.only or w["name"].split()[0] in opts.only.upper().split(",")]
    tmp = tempfile.mkdtemp(prefix="ringcache-resp-bench-")
    servers = []
    try:
        certs = None
        if opts.tls:
            certs = os.path.join(tmp, "certs")
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                  "integration", "make_test_certs.sh")
            subprocess.run(["bash", script, certs], check=True)
        servers.append(start_redis(opts.redis_server, tmp))
        # (server, reference) pairs whose ratios are printed.
        pairs = []
        if certs:
            servers.append(start_redis(opts.redis_server, tmp, certs))
            pairs.append((servers[1], servers[0]))
        binaries = opts.ringcached.split(",")
        extras = [x.split() for x in opts.ringcached_args.split("|")] if opts.ringcached_args \
            else [[] for _ in binaries]
        extras += [[] for _ in range(len(binaries) - len(extras))]
        first = {}  # threads -> the first binary's server: the others are compared with it
        for b, binary in enumerate(binaries):
            label = "" if len(binaries) == 1 else chr(ord("A") + b)
            for t in [int(x) for x in opts.threads.split(",")]:
                servers.append(start_ringcache(binary, tmp, opts.nodes, t, label,
                                               extra=extras[b]))
                if b == 0:
                    first[t] = servers[-1]
                elif not certs:
                    pairs.append((servers[-1], first[t]))
                if certs:
                    servers.append(start_ringcache(binary, tmp, opts.nodes, t, label, certs))
                    pairs += [(servers[-1], servers[-2]), (servers[-1], servers[1])]
                else:
                    pairs.append((servers[-1], servers[0]))
        # Keys for GET/MGET to hit: the SET workloads run first in each round.
        results = {}  # (workload, server) -> [runs]
        for r in range(opts.rounds):
            for w in workloads:
                order = servers if r % 2 == 0 else list(reversed(servers))
                n = opts.requests // w.get("div", 1)
                for s in order:
                    res = run(opts.redis_benchmark, s, w, n)
                    results.setdefault((w["name"], s.name), []).append(res)
                    print("round %d %-20s %-26s %9.0f ops/s  p50 %.3f ms  p99 %.3f ms  "
                          "CPU %.2f us/op  cs %.2f/op" % (r + 1, w["name"], s.name, res["ops"],
                                                           res["p50"], res["p99"], res["cpu_us"],
                                                           res["cs"]), flush=True)
        print()
        for w in workloads:
            for s, ref in pairs:
                a, b = results[(w["name"], s.name)], results[(w["name"], ref.name)]
                ops = [x["ops"] / y["ops"] for x, y in zip(a, b)]
                cpu = [x["cpu_us"] / y["cpu_us"] for x, y in zip(a, b) if y["cpu_us"] > 0]
                p50 = [x["p50"] / y["p50"] for x, y in zip(a, b) if y["p50"] > 0]
                p99 = [x["p99"] / y["p99"] for x, y in zip(a, b) if y["p99"] > 0]
                med = lambda k, runs: statistics.median(x[k] for x in runs)
                print("%-20s %-26s ops/s %s | CPU/op %.2f vs %.2f us: %s | p50 %s | p99 %s | "
                      "cs/op %.2f vs %.2f" % (
                          w["name"], s.name + "/" + ref.name, spread(ops), med("cpu_us", a),
                          med("cpu_us", b), spread(cpu) if cpu else "n/a",
                          spread(p50) if p50 else "n/a", spread(p99) if p99 else "n/a",
                          med("cs", a), med("cs", b)))
        print()
        for typed, string in SAME_LOAD:
            if (typed, servers[0].name) not in results or (string, servers[0].name) not in results:
                continue
            for s in servers:
                a, b = results[(typed, s.name)], results[(string, s.name)]
                ops = [x["ops"] / y["ops"] for x, y in zip(a, b)]
                cpu = [x["cpu_us"] / y["cpu_us"] for x, y in zip(a, b) if y["cpu_us"] > 0]
                print("%-20s / %-18s %-26s ops/s %s | CPU/op %s" % (
                    typed, string, s.name, spread(ops), spread(cpu) if cpu else "n/a"))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Snapshots of ringcached against Redis's RDB, side by side in one run (docs/benchmarks.md,
"Persistence"). One ringcached (--data-dir) and one redis-server on 127.0.0.1 with free
ports, the same N keys of 100-byte values in each (Redis: DEBUG POPULATE; ringcached:
pipelined SETs through its Redis port). Then, --rounds times, alternating the order:

- write: ringcache-cli snapshot (the node's own timing) against Redis's SAVE (timed
  around the call): seconds, keys/s, MB/s of the file;
- load: each server restarted on its file: ringcached's "loaded N keys ... in X s" log
  line against Redis's "DB loaded from disk: X seconds"; ratio ringcached / Redis;
- Get p99 during snapshots: redis-benchmark GET against ringcached while snapshots are
  taken back to back, against the same run without snapshots (p99 ratio, with and
  without), and the node's CPU time per Get in both.

Usage: snapshot_bench.py --ringcached BIN --cli BIN [--keys 1000000] [--rounds 3] [--quick]
Exit: 0; 77 (skip) without redis-server or redis-benchmark.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resp"))
from resp_bench import can_connect, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_for(pred, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.02)


def command(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return sock.recv(1 << 16)


class Node:
    """One ringcached with --data-dir and a Redis port."""

    def __init__(self, binary, tmp):
        self.binary, self.tmp = binary, tmp
        self.data = os.path.join(tmp, "rc-data")
        self.grpc, self.resp = free_port(), free_port()
        self.proc = None
        self.log = os.path.join(tmp, "ringcached.log")

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--node-id", "n1", "--listen", "127.0.0.1:%d" % self.grpc,
             "--resp-listen", "127.0.0.1:%d" % self.resp, "--metrics-listen", "",
             "--memory", "4GiB", "--data-dir", self.data, "--snapshot-interval-s", "86400",
             "--log-level", "info"], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: can_connect(self.resp) and can_connect(self.grpc), "ringcached")
        # The node answers once it holds its view; the load is logged before that.

    def stop(self, graceful=True):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        self.proc.wait(timeout=120)
        self.proc = None

    def last_load_seconds(self):
        lines = [l for l in open(self.log) if "loaded " in l and " keys from " in l]
        return float(re.search(r" in ([0-9.]+) s", lines[-1]).group(1))


class Redis:
    def __init__(self, binary, tmp):
        self.binary = binary
        self.dir = os.path.join(tmp, "redis-data")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(tmp, "redis.log")
        self.loads = 0  # "DB loaded from disk" lines seen

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--logfile", self.log,
             "--enable-debug-command", "local", "--rdbcompression", "no"])
        wait_for(lambda: can_connect(self.port), "redis-server")
        wait_for(lambda: b"loading:0" in self.info(), "redis to load")

    def info(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            return command(s, "INFO", "persistence")

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)  # No save at exit: the file stays SAVE's.
            self.proc.wait(timeout=60)
            self.proc = None

    def last_load_seconds(self):
        wait_for(lambda: sum("DB loaded from disk" in l for l in open(self.log)) > self.loads,
                 "redis's load line")
        self.loads += 1
        lines = [l for l in open(self.log) if "DB loaded from disk" in l]
        return float(re.search(r"disk: ([0-9.]+) seconds", lines[-1]).group(1))


def fill_ringcache(port, keys):
    """keys SETs of key:<i> = 100 bytes, pipelined 10000 at a time."""
    value = b"v" * 100
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        for first in range(0, keys, 10000):
            n = min(10000, keys - first)
            parts = [b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$100\r\n%s\r\n" %
                     (len(b"key:%d" % i), i, value) for i in range(first, first + n)]
            s.sendall(b"".join(parts))
            got = 0
            buf = b""
            while got < n:
                buf += s.recv(1 << 20)
                got = buf.count(b"+OK\r\n")
                if b"-" in buf:
                    raise RuntimeError("a SET failed: %r" % buf[:200])


def get_p99(bench, port, requests, keys):
    out = subprocess.run([bench, "-h", "127.0.0.1", "-p", str(port), "-n", str(requests), "-c",
                          "10", "-r", str(keys), "--csv", "-t", "get"], capture_output=True,
                         text=True, timeout=600).stdout
    rows = [l for l in out.splitlines() if l.startswith('"GET')]
    cols = [c.strip('"') for c in rows[-1].split(",")]
    return float(cols[1]), float(cols[6])  # ops/s, p99 ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    ap.add_argument("--redis-benchmark", default=shutil.which("redis-benchmark") or "")
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20000 keys, one round (CI smoke)")
    opts = ap.parse_args()
    if not opts.redis_server or not opts.redis_benchmark:
        print("SKIP: redis-server or redis-benchmark not found (scripts/install-deps.sh)")
        return 77
    if opts.quick:
        opts.keys, opts.rounds = 20000, 1
    tmp = tempfile.mkdtemp(prefix="ringcache-snapshot-bench-")
    node, redis = Node(opts.ringcached, tmp), Redis(opts.redis_server, tmp)
    try:
        node.start()
        redis.start()
        with socket.create_connection(("127.0.0.1", redis.port), timeout=600) as s:
            reply = command(s, "DEBUG", "POPULATE", opts.keys, "key", 100)
            if not reply.startswith(b"+OK"):
                raise RuntimeError("DEBUG POPULATE: %r" % reply)
        fill_ringcache(node.resp, opts.keys)
        for name, port in (("redis", redis.port), ("ringcache", node.resp)):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                size = int(command(s, "DBSIZE")[1:].split(b"\r\n")[0])
            if size != opts.keys:
                raise RuntimeError("%s holds %d keys, not %d" % (name, size, opts.keys))
        print("%d keys of 100 bytes in each server" % opts.keys, flush=True)
        writes, loads = {"ringcache": [], "redis": []}, {"ringcache": [], "redis": []}
        sizes = {}
        for r in range(opts.rounds):
            order = ["ringcache", "redis"] if r % 2 == 0 else ["redis", "ringcache"]
            for who in order:
                if who == "ringcache":
                    out = subprocess.run([opts.cli, "--addr", "127.0.0.1:%d" % node.grpc,
                                          "snapshot"], capture_output=True, text=True,
                                         timeout=600, check=True).stdout
                    m = re.search(r"of (\d+) keys, (\d+) bytes, written in (\d+) ms", out)
                    secs, sizes[who] = int(m.group(3)) / 1000.0, int(m.group(2))
                else:
                    with socket.create_connection(("127.0.0.1", redis.port), timeout=600) as s:
                        t0 = time.monotonic()
                        command(s, "SAVE")
                        secs = time.monotonic() - t0
                    sizes[who] = os.path.getsize(os.path.join(redis.dir, "dump.rdb"))
                writes[who].append(secs)
                print("round %d write %-9s %6.2f s  %9.0f keys/s  %6.1f MB/s  file %.1f MB" %
                      (r + 1, who, secs, opts.keys / secs, sizes[who] / secs / 1e6,
                       sizes[who] / 1e6), flush=True)
            for who in order:
                if who == "ringcache":
                    node.stop(graceful=False)
                    node.start()
                    secs = node.last_load_seconds()
                else:
                    redis.stop()
                    redis.start()
                    secs = redis.last_load_seconds()
                loads[who].append(secs)
                print("round %d load  %-9s %6.2f s  %9.0f keys/s" %
                      (r + 1, who, secs, opts.keys / max(secs, 1e-6)), flush=True)
        # Gets during back-to-back snapshots against Gets without.
        requests = 20000 if opts.quick else 300000
        stop = threading.Event()

        def snapshots():
            while not stop.is_set():
                subprocess.run([opts.cli, "--addr", "127.0.0.1:%d" % node.grpc, "snapshot"],
                               capture_output=True, timeout=600)

        p99 = {"without": [], "during": []}
        cpu = {"without": [], "during": []}
        for r in range(opts.rounds):
            for mode in (["without", "during"] if r % 2 == 0 else ["during", "without"]):
                if mode == "during":
                    stop.clear()
                    t = threading.Thread(target=snapshots)
                    t.start()
                c0 = cpu_seconds(node.proc.pid)
                ops, p = get_p99(opts.redis_benchmark, node.resp, requests, opts.keys)
                c1 = cpu_seconds(node.proc.pid)
                if mode == "during":
                    stop.set()
                    t.join()
                p99[mode].append(p)
                cpu[mode].append((c1 - c0) * 1e6 / requests)
                print("round %d GET %-7s snapshots: %9.0f ops/s  p99 %.3f ms  node CPU "
                      "%.2f us/op (snapshots included)" % (r + 1, mode, ops, p, cpu[mode][-1]),
                      flush=True)
        ratio = lambda a, b: [max(x, 1e-3) / max(y, 1e-3) for x, y in zip(a, b)]
        spread = lambda xs: "%.2fx (%.2f .. %.2f)" % (statistics.median(xs), min(xs), max(xs))
        print()
        print("write: ringcache/redis seconds %s" % spread(ratio(writes["ringcache"],
                                                                  writes["redis"])))
        print("load:  ringcache/redis seconds %s" % spread(ratio(loads["ringcache"],
                                                                 loads["redis"])))
        print("GET p99 during/without snapshots %s" % spread(ratio(p99["during"],
                                                                   p99["without"])))
        print("RESULT keys=%d write_ratio=%.2f load_ratio=%.2f p99_ratio=%.2f" % (
            opts.keys, statistics.median(ratio(writes["ringcache"], writes["redis"])),
            statistics.median(ratio(loads["ringcache"], loads["redis"])),
            statistics.median(ratio(p99["during"], p99["without"]))))
        return 0
    finally:
        node.stop(graceful=False)
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Debian's python3-redis (redis-py) against a 3-node ringcache cluster, through each
node's Redis-protocol port: what a Python service does with the client it already has.

Keys written through one node are read through the others (any node serves any key);
pipelines without a transaction go out as one batch per node; errors arrive as the
exceptions redis-py raises for Redis's. MULTI/EXEC (redis-py's default pipeline) is not
there yet and must fail loudly, not half-work.

Usage: test_redis_py.py --ringcached PATH
Exit: 0 pass; 1 fail; 77 python3-redis missing (skip; scripts/install-deps.sh installs it).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import redis
except ImportError:
    print("SKIP: python3-redis is not installed (scripts/install-deps.sh installs it)")
    sys.exit(77)


def start_cluster(binary, tmp, nodes=3):
    procs, ports, seeds = [], [], None
    for i in range(1, nodes + 1):
        ready = os.path.join(tmp, "n%d.ready" % i)
        args = [binary, "--node-id", "n%d" % i, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                "--resp-listen", "127.0.0.1:0", "--memory", "64MiB", "--ready-file", ready,
                "--log-level", "warn"]
        if seeds:
            args += ["--seeds", seeds]
        log = open(os.path.join(tmp, "n%d.log" % i), "wb")
        procs.append(subprocess.Popen(args, stdout=log, stderr=log))
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("n%d did not start: %s" % (i, open(log.name).read()[-2000:]))
            time.sleep(0.05)
        fields = dict(l.strip().split("=", 1) for l in open(ready) if "=" in l)
        seeds = seeds or fields["grpc"]
        ports.append(int(fields["resp"].rsplit(":", 1)[1]))
    return procs, ports


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringcache-redis-py-")
    procs, ports = start_cluster(opts.ringcached, tmp)
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    try:
        clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=10) for p in ports]
        a, b, c = clients
        # Until every node has adopted the last join's view, a forwarded write can meet an
        # owner one view behind (TRYAGAIN, which a client retries). Settled: writes of keys
        # on every node succeed through every node for a whole second.
        settle_deadline = time.monotonic() + 30
        ok_since = None
        while ok_since is None or time.monotonic() - ok_since < 1.0:
            try:
                for cl in clients:
                    cl.mset({"py:settle:%d" % i: "1" for i in range(64)})
                ok_since = ok_since or time.monotonic()
            except redis.ResponseError as e:
                if "TRYAGAIN" not in str(e) or time.monotonic() > settle_deadline:
                    raise
                ok_since = None
            time.sleep(0.05)
        check("ping", a.ping(), True)
        # Written through n1, read through every node.
        keys = ["py:%d" % i for i in range(60)]
        for k in keys:
            check("set " + k, a.set(k, k.upper()), True)
        for cl in clients:
            check("mget through a node", cl.mget(keys), [k.upper().encode() for k in keys])
        check("get missing", b.get("py:missing"), None)
        check("set nx", c.set("py:0", "other", nx=True), None)
        check("set xx ex", c.set("py:0", "new", xx=True, ex=100), True)
        ttl = a.ttl("py:0")
        check("ttl in (98, 100]", 98 < ttl <= 100, True)
        check("incr", b.incr("py:n"), 1)
        check("incrby", c.incrby("py:n", 41), 42)
        check("decr", a.decr("py:n"), 41)
        check("exists", a.exists("py:1", "py:2", "py:missing"), 2)
        check("delete", b.delete("py:1", "py:2", "py:missing"), 2)
        check("expire", c.expire("py:3", 1000), True)
        check("pttl", 990_000 < a.pttl("py:3") <= 1_000_000, True)
        check("strlen", a.strlen("py:4"), 4)
        check("setex/get", (b.setex("py:ex", 50, "v"), b.get("py:ex")), (True, b"v"))
        check("mset", a.mset({"py:m1": "1", "py:m2": "2", "{tag}a": "x", "{tag}b": "y"}), True)
        check("mget after mset", c.mget("py:m1", "py:m2", "{tag}a", "{tag}b"),
              [b"1", b"2", b"x", b"y"])
        # Errors are redis-py's ResponseError, with Redis's message.
        a.set("py:str", "abc")
        try:
            a.incr("py:str")
            failures.append("incr of a string did not raise")
        except redis.ResponseError as e:
            check("incr error", str(e), "value is not an integer or out of range")
        # A pipeline without a transaction: one batch, replies in order.
        pipe = b.pipeline(transaction=False)
        for i in range(100):
            pipe.set("py:p%d" % i, i)
        for i in range(100):
            pipe.get("py:p%d" % i)
        pipe.incr("py:pn")
        out = pipe.execute()
        check("pipeline sets", out[:100], [True] * 100)
        check("pipeline gets", out[100:200], [str(i).encode() for i in range(100)])
        check("pipeline incr", out[200], 1)
        # redis-py's default pipeline is MULTI/EXEC: not supported yet, so it must raise
        # and run none of its commands.
        try:
            tx = a.pipeline()
            tx.set("py:tx", "1")
            tx.incr("py:n")
            tx.execute()
            failures.append("MULTI/EXEC pipeline did not raise")
        except redis.ResponseError as e:
            print("MULTI/EXEC pipeline raised: %s" % e)
        check("nothing of the refused transaction ran", (b.get("py:tx"), b.get("py:n")),
              (None, b"41"))
        check("the connection works after it", a.get("py:0"), b"new")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    for f in failures:
        print("FAIL " + f)
    print("redis-py %s against 3 nodes: %d failures" % (redis.__version__, len(failures)))
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

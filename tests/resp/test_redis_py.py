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
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ringcache_nodes import start_cluster, stop_cluster, wait_settled  # noqa: E402

try:
    import redis
except ImportError:
    print("SKIP: python3-redis is not installed (scripts/install-deps.sh installs it)")
    sys.exit(77)


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
        wait_settled(ports)
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
        # Hashes, lists and sets, written through one node and read through the others.
        check("hset mapping", a.hset("py:user", mapping={"name": "ada", "lang": "c++"}), 2)
        for cl in clients:
            check("hgetall through a node", cl.hgetall("py:user"),
                  {b"name": b"ada", b"lang": b"c++"})
        check("hincrby", b.hincrby("py:user", "visits", 3), 3)
        check("hincrbyfloat", c.hincrbyfloat("py:user", "score", 1.5), 1.5)
        check("hmget", a.hmget("py:user", ["name", "nope"]), [b"ada", None])
        check("rpush", a.rpush("py:q", "j1", "j2", "j3"), 3)
        check("lpop count", b.lpop("py:q", 2), [b"j1", b"j2"])
        check("lrange", c.lrange("py:q", 0, -1), [b"j3"])
        check("sadd", a.sadd("py:tags", "x", "y", "x"), 2)
        check("smembers", b.smembers("py:tags"), {b"x", b"y"})
        check("smismember", c.smismember("py:tags", ["y", "z"]), [1, 0])
        check("collection types", [c.type(k) for k in ("py:user", "py:q", "py:tags")],
              [b"hash", b"list", b"set"])
        try:
            a.lpush("py:user", "x")
            failures.append("lpush onto a hash did not raise")
        except redis.ResponseError as e:
            check("wrongtype", str(e).split()[0], "WRONGTYPE")
        pipe = c.pipeline(transaction=False)
        for i in range(50):
            pipe.rpush("py:pl", i)
        pipe.llen("py:pl")
        check("typed pipeline", pipe.execute()[-1], 50)
        # The commands about the server and the connection, as redis-py parses them.
        check("type", (a.type("py:0"), a.type("py:missing")), (b"string", b"none"))
        info = b.info()
        check("info", (info["redis_version"], info["loading"], info["role"]),
              ("7.0.0", 0, "master"))
        check("dbsize counts this node's keys", b.dbsize() > 0, True)
        check("client name", (c.client_setname("py-test"), c.client_getname()),
              (True, "py-test"))
        check("time", len(a.time()), 2)
    finally:
        stop_cluster(procs)
    for f in failures:
        print("FAIL " + f)
    print("redis-py %s against 3 nodes: %d failures" % (redis.__version__, len(failures)))
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

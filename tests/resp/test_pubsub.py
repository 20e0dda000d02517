#!/usr/bin/python3
"""Pub/sub on the Redis-protocol port (docs/redis.md "Pub/sub"):

1. The same scripted session against Debian's redis-server and against a 3-node
   ringcached cluster (subscriber on n2, publisher on n1), replies compared byte for byte:
   SUBSCRIBE/PSUBSCRIBE confirmations, the subscribe-mode rules, pushed "message" and
   "pmessage", UNSUBSCRIBE/PUNSUBSCRIBE with and without names, RESET, QUIT. (The
   replies of an UNSUBSCRIBE without names are compared as a set: Redis gives them in
   its dict's order.)
2. redis-py's PubSub through every node: each subscriber gets every message published
   through any node, in order; PUBLISH counts the subscriptions cluster-wide; a PUBLISH
   pipelined after a SET goes out once the SET is applied.
3. A subscriber that never reads is cut off once its buffer (--subscriber-buffer-bytes)
   is full: its connection closes and the publishes stop counting it.

Usage: test_pubsub.py --ringcached PATH [--redis-server PATH]
Exit: 0 pass; 1 fail; 77 redis-server or python3-redis missing (skip; scripts/install-deps.sh
installs them).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ringcache_nodes import start_cluster, stop_cluster, wait_settled  # noqa: E402
from resp_diff import Reader, encode, free_port, start, stop, can_connect  # noqa: E402

try:
    import redis
except ImportError:
    print("SKIP: python3-redis is not installed (scripts/install-deps.sh installs it)")
    sys.exit(77)

# (connection, command, replies to read); "A" subscribes, "B" publishes. A step whose
# replies are a set is marked "set".
SCRIPT = [
    ("A", ["SUBSCRIBE", "a", "b", "a"], 3),
    ("A", ["GET", "x"], 1),
    ("A", ["PING"], 1),
    ("A", ["PING", "hi"], 1),
    ("A", ["PSUBSCRIBE", "p*", "q?"], 2),
    ("B", ["PUBLISH", "a", "hello"], 1),
    ("A", None, 1),  # The pushed message.
    ("B", ["PUBLISH", "pq", "x"], 1),
    ("A", None, 1),
    ("B", ["PUBLISH", "qz", b"bin\x00ary"], 1),
    ("A", None, 1),
    ("B", ["PUBLISH", "nobody", "x"], 1),
    ("A", ["UNSUBSCRIBE", "b", "zz"], 2),
    ("A", ["UNSUBSCRIBE"], 1),
    ("A", ["PUNSUBSCRIBE", "q?"], 1),
    ("A", ["PUNSUBSCRIBE"], 1),
    ("A", ["UNSUBSCRIBE"], 1),
    ("A", ["PING"], 1),
    ("A", ["SUBSCRIBE"], 1),
    ("A", ["SUBSCRIBE", "c"], 1),
    ("A", ["RESET"], 1),
    ("B", ["PUBLISH", "c", "x"], 1),
    ("A", ["GET", "nosuchkey"], 1),
    ("A", ["QUIT"], 1),
]


def run_script(port_a, port_b):
    a = socket.create_connection(("127.0.0.1", port_a), timeout=10)
    b = socket.create_connection(("127.0.0.1", port_b), timeout=10)
    readers = {"A": Reader(a), "B": Reader(b)}
    socks = {"A": a, "B": b}
    out = []
    for who, command, n in SCRIPT:
        if command is not None:
            socks[who].sendall(encode(command))
        out.append([readers[who].reply() for _ in range(n)])
    a.close()
    b.close()
    return out


def differential(binary, redis_server, tmp, failures):
    port = free_port()
    rs = start([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"], lambda: can_connect(port), os.path.join(tmp, "redis.log"))
    try:
        expected = run_script(port, port)
    finally:
        stop(rs)
    procs, ports = start_cluster(binary, tmp, nodes=3)
    try:
        wait_settled(ports)
        got = run_script(ports[1], ports[0])
    finally:
        stop_cluster(procs)
    for (who, command, _), want, have in zip(SCRIPT, expected, got):
        same = sorted(want) == sorted(have) if command == ["UNSUBSCRIBE"] else want == have
        if not same:
            failures.append("%s %s: redis-server %r, ringcached %r" % (who, command, want, have))
    print("differential: %d of %d steps match redis-server" %
          (len(SCRIPT) - len(failures), len(SCRIPT)))


def next_message(p, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=0.5)
        if m is not None and m["type"] in ("message", "pmessage"):
            return m
    return None


def redis_py(binary, tmp, failures):
    procs, ports = start_cluster(binary, tmp, nodes=3)
    try:
        wait_settled(ports)
        clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=10) for p in ports]
        subs = []
        for c in clients:
            p = c.pubsub()
            p.subscribe("news")
            p.psubscribe("user:*")
            for _ in range(2):  # The confirmations.
                p.get_message(timeout=5)
            subs.append(p)
        for i in range(30):
            c = clients[i % 3]
            got = c.publish("news" if i % 2 == 0 else "user:%d" % i, "m%d" % i)
            if got != 3:
                failures.append("PUBLISH %d through n%d counted %r, want 3" % (i, i % 3 + 1, got))
        for n, p in enumerate(subs):
            for i in range(30):
                m = next_message(p)
                want = b"m%d" % i
                if m is None or m["data"] != want:
                    failures.append("subscriber on n%d: message %d is %r, want %r" %
                                    (n + 1, i, m, want))
                    break
            p.close()
        print("redis-py: 30 messages through 3 nodes reached 3 subscribers")
        # Write, then notify, pipelined through n1: a subscriber on n2 that reads the key
        # as soon as the message comes sees the write (the PUBLISH runs after the SET,
        # wherever the key lives).
        p = clients[1].pubsub()
        p.subscribe("changed")
        p.get_message(timeout=5)
        stale = 0
        for i in range(40):
            key = "wtn:%d" % i
            pipe = clients[0].pipeline(transaction=False)
            pipe.set(key, "v%d" % i)
            pipe.publish("changed", key)
            pipe.execute()
            m = next_message(p)
            if m is None or clients[1].get(m["data"]) != b"v%d" % i:
                stale += 1
        p.close()
        if stale:
            failures.append("write-then-notify: %d of 40 notified readers did not see the write"
                            % stale)
        print("redis-py: 40 pipelined SET + PUBLISH, every notified reader saw the write")
        # Large messages (a write of 1 MiB or more must not stall what follows) and many
        # mid-sized ones, through another node.
        p = clients[2].pubsub()
        p.subscribe("big")
        p.get_message(timeout=5)
        sizes = [1100 * 1024] * 3 + [16 * 1024] * 200 + [2 * 1024 * 1024]
        for n, size in enumerate(sizes):
            clients[0].publish("big", bytes([65 + n % 26]) * size)
        delivered = 0
        for n, size in enumerate(sizes):
            m = next_message(p)
            if m is None or len(m["data"]) != size or m["data"][:1] != bytes([65 + n % 26]):
                failures.append("large messages: message %d of %d bytes is %s" %
                                (n, size, "missing" if m is None else "%d bytes" % len(m["data"])))
                break
            delivered += 1
        p.close()
        print("redis-py: %d of %d messages up to 2 MiB delivered" % (delivered, len(sizes)))
    finally:
        stop_cluster(procs)


def slow_subscriber(binary, tmp, failures):
    procs, ports = start_cluster(binary, tmp, nodes=1,
                                 extra_args=["--subscriber-buffer-bytes", "64KiB"])
    try:
        slow = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
        slow.sendall(encode(["SUBSCRIBE", "firehose"]))
        Reader(slow).reply()
        r = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=10)
        payload = b"x" * 1024
        cut = None
        for i in range(20000):
            if r.publish("firehose", payload) == 0:
                cut = i
                break
        if cut is None:
            failures.append("slow subscriber: never cut off after 20000 messages of 1 KiB")
            return
        # What was written before the cut can still be read; then the connection ends.
        slow.settimeout(5)
        left, closed = 0, False
        try:
            while True:
                data = slow.recv(1 << 20)
                if not data:
                    closed = True
                    break
                left += len(data)
        except socket.timeout:
            pass
        if not closed:
            failures.append("slow subscriber: the connection was not closed after the cut")
        # At most the connection's queue (1 MiB), its buffer (64 KiB) and the sockets'.
        print("slow subscriber: cut off after %d messages of 1 KiB; %d bytes were still on "
              "their way; closed" % (cut, left))
        log = open(os.path.join(tmp, "n1.log")).read()
        if "--subscriber-buffer-bytes" not in log:
            failures.append("slow subscriber: the node's log does not say why it closed it")
    finally:
        stop_cluster(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    args = ap.parse_args()
    if not os.path.exists(args.redis_server):
        print("SKIP: redis-server not found (scripts/install-deps.sh installs it)")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(prefix="ringcache-pubsub-") as tmp:
        for step in (differential, redis_py, slow_subscriber):
            step_tmp = os.path.join(tmp, step.__name__)
            os.makedirs(step_tmp)
            if step is differential:
                step(args.ringcached, args.redis_server, step_tmp, failures)
            else:
                step(args.ringcached, step_tmp, failures)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

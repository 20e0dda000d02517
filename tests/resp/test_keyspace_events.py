#!/usr/bin/python3
"""Keyspace notifications on the Redis-protocol port (docs/design/pubsub.md §6):

1. The same commands against Debian's redis-server with notify-keyspace-events KEA and
   against a 3-node ringcached cluster with --keyspace-events KEA (commands through n1,
   the subscriber on n2, keys on every primary): each key's events, on both channel
   kinds, must be Redis's, in Redis's order. (Across keys the order may differ: each key's
   events come from its own primary.)
2. CONFIG GET notify-keyspace-events answers the flag; CONFIG SET of it is refused with a
   message naming the flag.

Usage: test_keyspace_events.py --ringcached PATH [--redis-server PATH]
Exit: 0 pass; 1 fail; 77 redis-server or python3-redis missing (skip; scripts/install-deps.sh
installs them).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ringcache_nodes import start_cluster, stop_cluster, wait_settled  # noqa: E402
from resp_diff import free_port, start, stop, can_connect  # noqa: E402

try:
    import redis
except ImportError:
    print("SKIP: python3-redis is not installed (scripts/install-deps.sh installs it)")
    sys.exit(77)

# Every command that announces something, and some that announce nothing (a write that
# changes nothing, a key that is not there). "sleep" lets the short TTL expire.
COMMANDS = [
    ["SET", "s1", "v"], ["SET", "s1", "w", "EX", "100"], ["SET", "s1", "x", "KEEPTTL"],
    ["SET", "s2", "v", "PX", "150"], ["SET", "s3", "v", "NX"], ["SET", "s3", "v", "NX"],
    ["INCR", "n"], ["DECRBY", "n", "3"], ["INCRBYFLOAT", "f", "1.5"],
    ["APPEND", "ap", "xy"], ["SETRANGE", "ap", "4", "z"], ["GETDEL", "ap"],
    ["EXPIRE", "s3", "100"], ["PERSIST", "s3"], ["PERSIST", "s3"], ["GETEX", "s3", "EX", "50"],
    ["GETEX", "s3", "PERSIST"], ["EXPIRE", "s3", "0"], ["DEL", "s1", "nokey"],
    ["HSET", "h", "a", "1", "b", "2"], ["HSETNX", "h", "c", "3"], ["HSETNX", "h", "c", "4"],
    ["HINCRBY", "h", "a", "5"], ["HINCRBYFLOAT", "h", "b", "0.5"], ["HDEL", "h", "a", "b"],
    ["HDEL", "h", "zz"], ["HDEL", "h", "c"],
    ["LPUSH", "l", "a", "b", "c"], ["RPUSH", "l", "d"], ["LPUSHX", "nolist", "a"],
    ["LSET", "l", "0", "z"], ["LINSERT", "l", "BEFORE", "z", "y"], ["LTRIM", "l", "0", "2"],
    ["LREM", "l", "0", "y"], ["LPOP", "l"], ["RPOP", "l", "5"],
    ["SADD", "st", "x", "y", "z"], ["SADD", "st", "x"], ["SREM", "st", "x"], ["SPOP", "st"],
    ["SPOP", "st", "5"],
    "sleep",
]


def run(port, sub_port):
    """Runs COMMANDS through `port` with a KEA subscriber on `sub_port`; returns
    {(kind, key): [events]} in arrival order, where kind is "keyspace" or "keyevent"."""
    sub_client = redis.Redis(host="127.0.0.1", port=sub_port, socket_timeout=10)
    p = sub_client.pubsub()
    p.psubscribe("__key*@0__:*")
    p.get_message(timeout=5)  # The confirmation.
    c = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    for command in COMMANDS:
        if command == "sleep":
            time.sleep(0.6)
            c.execute_command("EXISTS", "s2")  # Either way, the key has expired by now.
            continue
        try:
            c.execute_command(*command)
        except redis.ResponseError:
            pass
    got = {}
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 1.0:  # Until a second passes without a message.
        m = p.get_message(timeout=0.2)
        if m is None or m["type"] != "pmessage":
            continue
        quiet_since = time.monotonic()
        channel = m["channel"].decode()
        if channel.startswith("__keyspace@0__:"):
            key = ("keyspace", channel[len("__keyspace@0__:"):])
            got.setdefault(key, []).append(m["data"].decode())
        else:
            key = ("keyevent", m["data"].decode())
            got.setdefault(key, []).append(channel[len("__keyevent@0__:"):])
    p.close()
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    args = ap.parse_args()
    if not args.redis_server or not os.path.exists(args.redis_server):
        print("SKIP: redis-server is not installed (scripts/install-deps.sh installs it)")
        return 77
    failures = []
    with tempfile.TemporaryDirectory(prefix="rc-keyspace-") as tmp:
        port = free_port()
        rs = start([args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--notify-keyspace-events", "KEA"],
                   lambda: can_connect(port), os.path.join(tmp, "redis.log"))
        try:
            want = run(port, port)
        finally:
            stop(rs)
        procs, ports = start_cluster(args.ringcached, tmp, nodes=3,
                                     extra_args=["--keyspace-events", "KEA"])
        try:
            wait_settled(ports)
            have = run(ports[0], ports[1])
            c = redis.Redis(host="127.0.0.1", port=ports[2], socket_timeout=10)
            setting = c.config_get("notify-keyspace-events")
            if setting != {"notify-keyspace-events": "AKE"}:
                failures.append("CONFIG GET notify-keyspace-events: %r, want AKE" % setting)
            try:
                c.config_set("notify-keyspace-events", "")
                failures.append("CONFIG SET notify-keyspace-events was accepted")
            except redis.ResponseError as e:
                if "--keyspace-events" not in str(e):
                    failures.append("CONFIG SET notify-keyspace-events: %s" % e)
        finally:
            stop_cluster(procs)
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            failures.append("%s %s: redis-server %r, ringcached %r" %
                            (key[0], key[1], want.get(key), have.get(key)))
    events = sum(len(v) for v in want.values())
    print("differential: %d events of %d keys from redis-server, %d from ringcached" %
          (events, len(want), sum(len(v) for v in have.values())))
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("PASS: every key's events match redis-server's, in order")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

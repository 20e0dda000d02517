#!/usr/bin/python3
"""The Redis port's connection limits, as Redis has them: --resp-max-clients (maxclients)
answers one connection too many with "-ERR max number of clients reached" and closes it,
and frees its slot when a client leaves; --resp-idle-timeout-s (timeout) closes a
connection that sends nothing for that long, and only such a connection.

Usage: test_resp_limits.py --ringcached PATH
Exit: 0 pass; 1 fail.
"""
import argparse
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ringcache_nodes import start_cluster, stop_cluster  # noqa: E402


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def ask(s, command=b"PING\r\n"):
    s.sendall(command)
    return s.recv(4096)


def closed_within(s, seconds):
    """True if the peer closes `s` within `seconds` (a read returns no bytes)."""
    s.settimeout(seconds)
    try:
        return s.recv(4096) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringcache-resp-limits-")
    procs, ports = start_cluster(opts.ringcached, tmp, nodes=1,
                                 extra_args=["--resp-max-clients", "2",
                                             "--resp-idle-timeout-s", "1"])
    port = ports[0]
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    try:
        a, b = connect(port), connect(port)
        check("first client", ask(a), b"+PONG\r\n")
        check("second client", ask(b), b"+PONG\r\n")
        c = connect(port)
        c.settimeout(5)
        check("one too many", c.recv(4096), b"-ERR max number of clients reached\r\n")
        check("then closed", closed_within(c, 5), True)
        b.close()
        time.sleep(0.2)  # The node notices the close.
        d = connect(port)
        check("a freed slot", ask(d), b"+PONG\r\n")
        # `a` keeps talking every 0.3 s for 2 s: never idle for 1 s. `d` says nothing.
        for _ in range(7):
            time.sleep(0.3)
            check("an active client stays", ask(a), b"+PONG\r\n")
        check("an idle client is closed", closed_within(d, 3), True)
        check("the active one is not", ask(a), b"+PONG\r\n")
    finally:
        stop_cluster(procs)
    if failures:
        for f in failures:
            print("FAIL:", f)
        print(open(os.path.join(tmp, "n1.log")).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("ok: max clients and the idle timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main())

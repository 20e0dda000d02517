"""Local ringcached clusters for the Redis-protocol tests: nodes on 127.0.0.1 with free
ports (read back from each node's ready file), logs in the caller's temporary directory,
a bounded wait at every step. Shared by test_redis_py.py and test_node_redis.py.

    procs, ports = start_cluster(binary, tmp, nodes=3)   # ports: each node's RESP port
    try:
        wait_settled(ports)
        ...
    finally:
        stop_cluster(procs)
"""
import os
import socket
import subprocess
import time


def start_cluster(binary, tmp, nodes=3, extra_args=()):
    """Starts n1 (a new cluster), then n2..nN joining through it, each once the one
    before is ready. Returns (processes, RESP ports). Raises RuntimeError with the log's
    tail if a node does not start within 20 s."""
    procs, ports, seeds = [], [], None
    for i in range(1, nodes + 1):
        ready = os.path.join(tmp, "n%d.ready" % i)
        args = [binary, "--node-id", "n%d" % i, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                "--resp-listen", "127.0.0.1:0", "--memory", "64MiB", "--ready-file", ready,
                "--log-level", "warn"] + list(extra_args)
        if seeds:
            args += ["--seeds", seeds]
        log = open(os.path.join(tmp, "n%d.log" % i), "wb")
        procs.append(subprocess.Popen(args, stdout=log, stderr=log))
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                stop_cluster(procs)
                raise RuntimeError("n%d did not start: %s" % (i, open(log.name).read()[-2000:]))
            time.sleep(0.05)
        fields = dict(l.strip().split("=", 1) for l in open(ready) if "=" in l)
        seeds = seeds or fields["grpc"]
        ports.append(int(fields["resp"].rsplit(":", 1)[1]))
    return procs, ports


def stop_cluster(procs, timeout=10):
    """SIGTERM to every node, then SIGKILL to any still running after `timeout` s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def wait_settled(ports, timeout=30.0, token=None):
    """Until every node has adopted the last join's view, a forwarded write can meet an
    owner one view behind (TRYAGAIN, which a client retries). Settled: an MSET of keys on
    every node succeeds through every node for a whole second (after AUTH with `token`,
    if given). Raises RuntimeError after `timeout` s."""
    mset = _command("MSET", *[x for i in range(64) for x in ("settle:%d" % i, "1")])
    if token:
        mset = _command("AUTH", token) + mset
    deadline = time.monotonic() + timeout
    ok_since = None
    while ok_since is None or time.monotonic() - ok_since < 1.0:
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not settle within %.0f s" % timeout)
        good = True
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(mset)
                # The replies may come in separate writes (AUTH's first).
                reply = b""
                while reply.count(b"\r\n") < (2 if token else 1):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if token:
                reply = reply[len(b"+OK\r\n"):] if reply.startswith(b"+OK\r\n") else b""
            good = good and reply.startswith(b"+OK")
        if good:
            ok_since = ok_since or time.monotonic()
        else:
            ok_since = None
        time.sleep(0.05)

#!/usr/bin/python3
"""Client tokens on the Redis-protocol port, with Debian's python3-redis (redis-py) as a
service would use it: a 2-node cluster started with --cluster-secret-file and
--auth-tokens-file. A connection without AUTH gets NOAUTH; a wrong token WRONGPASS; a
read token reads every key (forwarded or not) and gets NOPERM for writes; a read-write
token, given with or without its name, writes. Before AUTH, a command is held to 10
arguments of 16 KiB, as Redis does.

Usage: test_redis_auth.py --ringcached PATH
Exit: 0 pass; 1 fail; 77 python3-redis missing (skip; scripts/install-deps.sh installs it).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ringcache_nodes import start_cluster, stop_cluster, wait_settled  # noqa: E402

try:
    import redis
except ImportError:
    print("SKIP: python3-redis is not installed (scripts/install-deps.sh installs it)")
    sys.exit(77)

READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"


def check_tls(binary, tmp, failures):
    """One node with TLS and tokens: redis-py with ssl=True and the CA reaches it (and
    redis-cli --tls, as a user would); plaintext and another CA do not."""
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(HERE, "..", "integration", "make_test_certs.sh"), certs],
                   check=True)
    procs, ports = start_cluster(
        binary, tmp, nodes=1,
        extra_args=["--cluster-secret-file", os.path.join(tmp, "secret"),
                    "--auth-tokens-file", os.path.join(tmp, "tokens"),
                    "--tls-cert-file", os.path.join(certs, "node.pem"),
                    "--tls-key-file", os.path.join(certs, "node.key")])
    try:
        tls = redis.Redis(host="127.0.0.1", port=ports[0], password=WRITER, ssl=True,
                          ssl_ca_certs=os.path.join(certs, "ca.pem"), socket_timeout=10)
        if tls.set("tls:k", "v") is not True or tls.get("tls:k") != b"v":
            failures.append("TLS: set/get through redis-py with ssl=True failed")
        for what, client in [
                ("plaintext", redis.Redis(host="127.0.0.1", port=ports[0], password=WRITER,
                                          socket_timeout=5)),
                ("another CA", redis.Redis(host="127.0.0.1", port=ports[0], password=WRITER,
                                           ssl=True, socket_timeout=5,
                                           ssl_ca_certs=os.path.join(certs, "other-ca.pem")))]:
            try:
                client.get("tls:k")
                failures.append("TLS: a %s client was served" % what)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
        cli = shutil.which("redis-cli")
        if cli:
            out = subprocess.run([cli, "-p", str(ports[0]), "--tls", "--cacert",
                                  os.path.join(certs, "ca.pem"), "--user", "web", "--pass", WRITER,
                                  "--no-auth-warning", "get", "tls:k"],
                                 capture_output=True, text=True, timeout=10)
            if out.stdout.strip() != "v":
                failures.append("TLS: redis-cli --tls got %r %r" % (out.stdout, out.stderr))
    finally:
        stop_cluster(procs)


def raw_exchange(port, payload, timeout=10):
    """Sends `payload` on a new connection and reads until the node closes it or `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        got = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def bulk(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def check_unauthenticated_limits(port, failures):
    """Before AUTH a client may declare at most 10 arguments of 16 KiB (as Redis since
    CVE-2021-32675), so it cannot make the node buffer a large argument; after AUTH, in the
    same send, the usual limits hold."""
    for what, payload, want in [
            ("a 17 KiB argument before AUTH", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$17000\r\n",
             b"-ERR Protocol error: unauthenticated bulk length\r\n"),
            ("11 arguments before AUTH", b"*11\r\n",
             b"-ERR Protocol error: unauthenticated multibulk length\r\n")]:
        got = raw_exchange(port, payload)
        if got != want:
            failures.append("%s: got %r, want %r and the connection closed" % (what, got, want))
    big = b"v" * 100000
    got = raw_exchange(port, bulk(b"AUTH", WRITER.encode()) + bulk(b"SET", b"auth:big", big) +
                       bulk(b"STRLEN", b"auth:big") + bulk(b"QUIT"))
    if got != b"+OK\r\n+OK\r\n:100000\r\n+OK\r\n":
        failures.append("AUTH then a 100 KB SET in one send: got %r" % got[:200])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringcache-redis-auth-")
    old_umask = os.umask(0o077)
    with open(os.path.join(tmp, "secret"), "w") as f:
        f.write("redis-auth-test-cluster-secret\n")
    with open(os.path.join(tmp, "tokens"), "w") as f:
        f.write("reports read %s\nweb read-write %s\n" % (READER, WRITER))
    os.umask(old_umask)
    procs, ports = start_cluster(
        opts.ringcached, tmp, nodes=2,
        extra_args=["--cluster-secret-file", os.path.join(tmp, "secret"),
                    "--auth-tokens-file", os.path.join(tmp, "tokens")])
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    def raises(what, exc_type, text, fn):
        try:
            fn()
        except exc_type as e:
            if text not in str(e):
                failures.append("%s: %s raised %r, want it to say %r" % (what, exc_type.__name__,
                                                                       str(e), text))
            return
        except Exception as e:  # noqa: BLE001
            failures.append("%s: raised %r, want %s" % (what, e, exc_type.__name__))
            return
        failures.append("%s: no error, want %s" % (what, exc_type.__name__))

    try:
        wait_settled(ports, token=WRITER)
        keys = ["auth:%d" % i for i in range(40)]
        anon = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=10)
        raises("no AUTH", redis.exceptions.AuthenticationError, "Authentication required",
               lambda: anon.get("k"))
        wrong = redis.Redis(host="127.0.0.1", port=ports[0], password="not-a-token",
                            socket_timeout=10)
        # redis-py raises a plain ResponseError for WRONGPASS, as with redis-server.
        raises("a wrong token", redis.exceptions.ResponseError,
               "WRONGPASS invalid username-password pair", lambda: wrong.ping())
        # The writer by name and token (AUTH web <token>), through n1: keys of both nodes.
        writer = redis.Redis(host="127.0.0.1", port=ports[0], username="web", password=WRITER,
                             socket_timeout=10)
        check("mset", writer.mset({k: k.upper() for k in keys}), True)
        # The reader by token alone (AUTH <token>), through n2.
        reader = redis.Redis(host="127.0.0.1", port=ports[1], password=READER, socket_timeout=10)
        check("mget", reader.mget(keys), [k.upper().encode() for k in keys])
        check("get", reader.get(keys[0]), keys[0].upper().encode())
        raises("set as the reader", redis.exceptions.NoPermissionError,
               "this user has no permissions to run the 'set' command",
               lambda: reader.set(keys[0], "x"))
        raises("del as the reader", redis.exceptions.NoPermissionError, "'del' command",
               lambda: reader.delete(*keys))
        # In a pipeline, each write fails alone; the reads still answer.
        pipe = reader.pipeline(transaction=False)
        pipe.get(keys[1])
        pipe.incr("auth:n")
        pipe.get(keys[2])
        got = pipe.execute(raise_on_error=False)
        check("pipeline read 1", got[0], keys[1].upper().encode())
        check("pipeline write refused", isinstance(got[1], redis.exceptions.NoPermissionError),
              True)
        check("pipeline read 2", got[2], keys[2].upper().encode())
        check("values unchanged", writer.mget(keys), [k.upper().encode() for k in keys])
        check_unauthenticated_limits(ports[0], failures)
        # The wrong name for a right token is refused.
        misnamed = redis.Redis(host="127.0.0.1", port=ports[0], username="reports",
                               password=WRITER, socket_timeout=10)
        raises("a token under another name", redis.exceptions.ResponseError,
               "WRONGPASS invalid username-password pair", lambda: misnamed.ping())
    finally:
        stop_cluster(procs)
    if not failures:
        check_tls(opts.ringcached, tmp, failures)
    if failures:
        for f in failures:
            print("FAIL:", f)
        for i in (1, 2):
            print("--- n%d log (tail) ---" % i)
            print(open(os.path.join(tmp, "n%d.log" % i)).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("ok: NOAUTH, WRONGPASS, NOPERM and both AUTH forms through redis-py")
    return 0


if __name__ == "__main__":
    sys.exit(main())

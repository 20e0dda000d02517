#!/usr/bin/python3
"""Call a ringcached node from Python with nothing but the .proto file.

This is how a service written in another language uses ringcache: generate the stubs of
proto/ringcache/v1/cache.proto with the language's gRPC plugin and call any node. Here the
stubs are generated at run time into a temporary directory with protoc and
grpc_python_plugin (Debian packages protobuf-compiler and protobuf-compiler-grpc; the
grpcio-tools pip package is not needed), so nothing generated is ever checked in.

    ringcached --listen 127.0.0.1:7700 &
    /usr/bin/python3 examples/python/client.py --addr 127.0.0.1:7700

Every call carries a deadline (timeout=...): a call without one can wait forever on a node
that accepted the connection and hangs.
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import grpc

CALL_TIMEOUT_S = 2.0
STREAM_TIMEOUT_S = 10.0

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def generate_stubs(proto_root, out_dir):
    """Runs protoc on ringcache/v1/cache.proto; returns the (messages, services) modules."""
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    cmd = [
        "protoc",
        "--proto_path=" + proto_root,
        "--python_out=" + out_dir,
        "--grpc_out=" + out_dir,
        "--plugin=protoc-gen-grpc=" + plugin,
        os.path.join(proto_root, "ringcache", "v1", "cache.proto"),
    ]
    subprocess.run(cmd, check=True)
    # The generated cache_pb2_grpc.py does `from ringcache.v1 import cache_pb2`.
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("ringcache.v1.cache_pb2")
    pb2_grpc = importlib.import_module("ringcache.v1.cache_pb2_grpc")
    return pb2, pb2_grpc


def code_name(code):
    """'NOT_FOUND' for 5: per-item codes in batched results use gRPC's numbering."""
    for status_code in grpc.StatusCode:
        if status_code.value[0] == code:
            return status_code.name
    return str(code)


def run(pb2, stub):
    # Set with a TTL, then Get: value, version and absolute expiry (Unix ms).
    resp = stub.Set(pb2.SetRequest(key=b"greeting", value=b"hello", ttl_ms=60_000),
                    timeout=CALL_TIMEOUT_S)
    version = resp.version
    print(f"Set greeting=hello ttl=60s -> version {version}")
    got = stub.Get(pb2.GetRequest(key=b"greeting"), timeout=CALL_TIMEOUT_S)
    print(f"Get greeting -> {got.value!r} version {got.version} expires_at_ms {got.expires_at_ms}")

    # Compare-and-set: the version we read wins once; the stale one then fails.
    resp = stub.Set(pb2.SetRequest(key=b"greeting", value=b"hello, world",
                                   mode=pb2.SET_MODE_IF_VERSION, expected_version=version),
                    timeout=CALL_TIMEOUT_S)
    print(f"CAS with version {version} -> ok, new version {resp.version}")
    try:
        stub.Set(pb2.SetRequest(key=b"greeting", value=b"lost update",
                                mode=pb2.SET_MODE_IF_VERSION, expected_version=version),
                 timeout=CALL_TIMEOUT_S)
        raise SystemExit("CAS with a stale version unexpectedly succeeded")
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        print(f"CAS with stale version {version} -> {err.code().name} ({err.details()})")

    # Errors are gRPC statuses: a missing key is NOT_FOUND.
    try:
        stub.Get(pb2.GetRequest(key=b"no-such-key"), timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as err:
        print(f"Get no-such-key -> {err.code().name} ({err.details()})")

    # Incr: an absent key counts as 0; negative deltas decrement.
    for delta in (10, -3):
        resp = stub.Incr(pb2.IncrRequest(key=b"visits", delta=delta), timeout=CALL_TIMEOUT_S)
        print(f"Incr visits by {delta} -> {resp.value}")

    # Hashes, lists and sets: one Collection rpc, Redis's commands and replies.
    def collection(key, command, *args, **kw):
        return stub.Collection(pb2.CollectionRequest(
            key=key, command=getattr(pb2, "COLLECTION_COMMAND_" + command), args=args, **kw),
            timeout=CALL_TIMEOUT_S)

    collection(b"user:42", "HSET", b"name", b"Ada", b"lang", b"C++")
    fields = collection(b"user:42", "HGETALL").items
    print(f"HGETALL user:42 -> {dict(zip(fields[::2], fields[1::2]))}")
    collection(b"jobs", "RPUSH", b"j1", b"j2", b"j3")
    popped = collection(b"jobs", "LPOP", n=2, flag=True).items  # LPOP jobs 2
    print(f"LPOP jobs 2 -> {list(popped)}")
    collection(b"tags", "SADD", b"cache", b"grpc", b"cache")
    print(f"SCARD tags -> {collection(b'tags', 'SCARD').integer}")
    try:
        collection(b"user:42", "LPUSH", b"x")
    except grpc.RpcError as err:  # A key holds one type, as in Redis.
        print(f"LPUSH user:42 -> {err.code().name} ({err.details()})")

    # Pub/sub: the first response of a Subscribe stream says the subscription is in place;
    # a message published through any node of the cluster then reaches it, numbered.
    sub = stub.Subscribe(pb2.SubscribeRequest(channels=[b"news"], patterns=[b"user:*"]),
                         timeout=STREAM_TIMEOUT_S)
    started = next(sub).started
    print(f"Subscribe on {started.node_id}: {started.channels} channel, "
          f"{started.patterns} pattern")
    for channel in (b"news", b"user:42"):
        got = stub.Publish(pb2.PublishRequest(channel=channel, payload=b"hello"),
                           timeout=CALL_TIMEOUT_S).receivers
        print(f"Publish {channel.decode()} -> {got} receiver(s)")
    received = []
    for resp in sub:  # Messages come in batches; a response with none is a heartbeat.
        received += [(m.seq, m.channel.decode(), m.pattern.decode()) for m in resp.messages]
        if len(received) == 2:
            break
    sub.cancel()
    print(f"Received {received}")

    # MultiSet / MultiGet: one result per item, in order, each with its own status.
    stub.MultiSet(pb2.MultiSetRequest(items=[pb2.SetRequest(key=b"a", value=b"1"),
                                             pb2.SetRequest(key=b"b", value=b"2")]),
                  timeout=CALL_TIMEOUT_S)
    keys = [b"a", b"b", b"no-such-key"]
    resp = stub.MultiGet(pb2.MultiGetRequest(keys=keys), timeout=CALL_TIMEOUT_S)
    for key, result in zip(keys, resp.results):
        if result.status.code == 0:
            print(f"MultiGet {key!r} -> {result.value!r}")
        else:
            print(f"MultiGet {key!r} -> {code_name(result.status.code)}")

    # Pipeline: a request iterator feeds the stream from another thread while we read, so
    # hundreds of operations are in flight. Results are matched by id, not by order.
    ops_total, per_message = 400, 50

    def requests():
        for first in range(0, ops_total, per_message):
            ops = []
            for op_id in range(first, first + per_message):
                if op_id % 2 == 0:
                    ops.append(pb2.Operation(id=op_id, set=pb2.SetRequest(
                        key=b"pipe:%d" % op_id, value=b"%d" % op_id)))
                else:
                    ops.append(pb2.Operation(id=op_id, incr=pb2.IncrRequest(
                        key=b"pipe:counter", delta=1)))
            yield pb2.PipelineRequest(ops=ops)

    pending = set(range(ops_total))
    failed = 0
    for resp in stub.Pipeline(requests(), timeout=STREAM_TIMEOUT_S):
        for result in resp.results:
            pending.discard(result.id)
            failed += result.status.code != 0
    print(f"Pipeline: {ops_total} ops, {len(pending)} results missing, {failed} failed")
    counter = stub.Get(pb2.GetRequest(key=b"pipe:counter"), timeout=CALL_TIMEOUT_S)
    print(f"Get pipe:counter -> {counter.value.decode()}")
    return not pending and failed == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=os.environ.get("RINGCACHE_ADDR", "127.0.0.1:7700"),
                        help="node address HOST:PORT (default $RINGCACHE_ADDR or 127.0.0.1:7700)")
    parser.add_argument("--proto-root", default=DEFAULT_PROTO_ROOT,
                        help="directory holding ringcache/v1/cache.proto (default: the repo's "
                             "proto/; an installed ringcache has it in share/ringcache/proto)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ringcache-stubs-") as out_dir:
        pb2, pb2_grpc = generate_stubs(args.proto_root, out_dir)
        # Values may be up to the node's limit (8 MiB by default): lift the 4 MiB default.
        options = [("grpc.max_receive_message_length", -1)]
        with grpc.insecure_channel(args.addr, options=options) as channel:
            stub = pb2_grpc.CacheStub(channel)
            print(f"talking to ringcached at {args.addr}")
            try:
                ok = run(pb2, stub)
            except grpc.RpcError as err:
                print(f"client.py: {err.code().name}: {err.details()}", file=sys.stderr)
                return 3
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

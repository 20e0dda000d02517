#!/usr/bin/python3
"""Cross-language test: drive a real ringcached through stubs generated at test time.

This is what a service in another language does: it has only proto/ringcache/v1/cache.proto
(plus the public grpc.health.v1 and grpc.reflection.v1alpha protocols), generates its stubs
and calls a node. The test starts its own ringcached on 127.0.0.1 with port 0 and a ready
file, and stops it with SIGTERM at the end (expecting exit code 0).

    /usr/bin/python3 tests/python/test_cache_api.py --ringcached <build>/daemon/node/ringcached
    (or RINGCACHED=<path> /usr/bin/python3 tests/python/test_cache_api.py [-k pattern])

Needs Debian's python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc.
"""

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

# Filled in by main() / setUpModule().
CONFIG = {
    "ringcached": os.environ.get("RINGCACHED", ""),
    "proto_root": os.path.join(REPO, "proto"),
    "health_proto": os.path.join(REPO, "daemon", "cli", "grpc", "health", "v1", "health.proto"),
}

# Node limits for this test: small enough to test the edges cheaply.
MAX_KEY_BYTES = 4096      # the default
MAX_VALUE_BYTES = 1 << 20  # --max-value-bytes 1MiB
MAX_BATCH = 1000          # --max-batch 1000
MEMORY_BYTES = 64 << 20   # --memory 64MiB

CALL_TIMEOUT_S = 5.0
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

# The standard server reflection protocol, reduced to the messages this test uses. Field
# numbers are those of grpc/reflection/v1alpha/reflection.proto; unknown fields are skipped.
REFLECTION_PROTO = """
syntax = "proto3";
package grpc.reflection.v1alpha;
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ServiceResponse { string name = 1; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest)
      returns (stream ServerReflectionResponse);
}
"""

# Generated modules, set by setUpModule().
pb2 = pb2_grpc = health_pb2 = health_pb2_grpc = refl_pb2 = refl_pb2_grpc = None
NODE = None
_STUB_DIR = None


# --- harness -------------------------------------------------------------------------------

def generate_stubs(out_dir):
    """Generates Python stubs for cache.proto, health.proto and the reflection subset."""
    global pb2, pb2_grpc, health_pb2, health_pb2_grpc, refl_pb2, refl_pb2_grpc
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    protoc = shutil.which("protoc") or "/usr/bin/protoc"
    # health.proto and reflection are placed at the root of their own proto path, so that
    # their Python modules are not under a top-level "grpc" package (that name is taken by
    # the grpc library itself). Their proto package, hence the wire names, is unchanged.
    extra = os.path.join(out_dir, "protos")
    os.makedirs(extra)
    shutil.copy(CONFIG["health_proto"], os.path.join(extra, "rc_health.proto"))
    with open(os.path.join(extra, "rc_reflection.proto"), "w") as f:
        f.write(REFLECTION_PROTO)
    base = [protoc, "--python_out=" + out_dir, "--grpc_out=" + out_dir,
            "--plugin=protoc-gen-grpc=" + plugin]
    subprocess.run(base + ["--proto_path=" + CONFIG["proto_root"],
                           os.path.join(CONFIG["proto_root"], "ringcache", "v1", "cache.proto")],
                   check=True)
    subprocess.run(base + ["--proto_path=" + extra, os.path.join(extra, "rc_health.proto"),
                           os.path.join(extra, "rc_reflection.proto")], check=True)
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("ringcache.v1.cache_pb2")
    pb2_grpc = importlib.import_module("ringcache.v1.cache_pb2_grpc")
    health_pb2 = importlib.import_module("rc_health_pb2")
    health_pb2_grpc = importlib.import_module("rc_health_pb2_grpc")
    refl_pb2 = importlib.import_module("rc_reflection_pb2")
    refl_pb2_grpc = importlib.import_module("rc_reflection_pb2_grpc")


class Node:
    """One ringcached process on 127.0.0.1 with free ports, found through its ready file."""

    def __init__(self, binary, *extra_args, node_id="py-test"):
        self.dir = tempfile.mkdtemp(prefix="ringcache-pytest-")
        ready = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "ringcached.log")
        args = [binary, "--node-id", node_id, "--listen", "127.0.0.1:0",
                "--metrics-listen", "127.0.0.1:0", "--ready-file", ready, *extra_args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringcached exited with {self.proc.returncode} before "
                                   f"it was ready:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"ringcached wrote no ready file in {START_TIMEOUT_S} s:\n"
                                   f"{self.log()}")
            time.sleep(0.02)
        with open(ready) as f:
            fields = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.addr = fields["grpc"]
        self.channel = grpc.insecure_channel(
            self.addr, options=[("grpc.max_receive_message_length", -1),
                                ("grpc.max_send_message_length", -1)])
        self.stub = pb2_grpc.CacheStub(self.channel)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        """SIGTERM, then SIGKILL after a bound. Returns the exit code (None if killed)."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def setUpModule():
    global NODE, _STUB_DIR
    if not CONFIG["ringcached"] or not os.access(CONFIG["ringcached"], os.X_OK):
        raise RuntimeError("path of ringcached missing: pass --ringcached PATH or set RINGCACHED "
                           f"(got {CONFIG['ringcached']!r})")
    _STUB_DIR = tempfile.mkdtemp(prefix="ringcache-pystubs-")
    generate_stubs(_STUB_DIR)
    NODE = Node(CONFIG["ringcached"], "--memory", "64MiB", "--max-value-bytes", "1MiB",
                "--max-batch", str(MAX_BATCH), "--log-level", "warn")


def tearDownModule():
    if NODE is not None:
        code = NODE.stop()
        if code != 0:
            raise AssertionError(f"ringcached exited with {code} after SIGTERM (want 0):\n"
                                 f"{NODE.log()}")
    if _STUB_DIR:
        shutil.rmtree(_STUB_DIR, ignore_errors=True)


def wait_until(predicate, timeout_s, interval_s=0.02):
    """Polls predicate until true or timeout_s passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


class ApiTest(unittest.TestCase):
    """Base: short names for the stub calls, all with a deadline."""

    def setUp(self):
        self.stub = NODE.stub
        # Keys are prefixed by the test's name so tests never see each other's keys.
        self.prefix = self.id().rsplit(".", 1)[-1].encode() + b":"

    def k(self, name):
        return self.prefix + (name if isinstance(name, bytes) else name.encode())

    def call(self, method, request, timeout=CALL_TIMEOUT_S):
        return getattr(self.stub, method)(request, timeout=timeout)

    def assertCode(self, code, method, request, contains=()):
        """Asserts that the call fails with `code`; returns the error's details."""
        with self.assertRaises(grpc.RpcError) as ctx:
            self.call(method, request)
        err = ctx.exception
        self.assertEqual(err.code(), code, f"{method}: {err.details()}")
        for word in ([contains] if isinstance(contains, str) else contains):
            self.assertIn(word, err.details(), f"{method}: message should mention {word!r}")
        return err.details()

    def set(self, key, value=b"", **kw):
        return self.call("Set", pb2.SetRequest(key=key, value=value, **kw)).version

    def get(self, key):
        return self.call("Get", pb2.GetRequest(key=key))


# --- the Cache service ---------------------------------------------------------------------

class GetSetDeleteTest(ApiTest):
    def test_binary_key_and_value_roundtrip(self):
        key = self.k(bytes(range(256)))
        value = bytes(range(256)) * 100 + b"\x00\xff\x00"
        version = self.set(key, value)
        got = self.get(key)
        self.assertEqual(got.value, value)
        self.assertEqual(got.version, version)
        self.assertEqual(got.expires_at_ms, 0)

    def test_empty_value_is_a_value(self):
        self.set(self.k("empty"), b"")
        self.assertEqual(self.get(self.k("empty")).value, b"")

    def test_missing_key_is_not_found(self):
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Get", pb2.GetRequest(key=self.k("absent")))

    def test_versions_strictly_increase(self):
        versions = [self.set(self.k("v"), b"%d" % i) for i in range(5)]
        self.assertEqual(versions, sorted(set(versions)))

    def test_delete(self):
        self.set(self.k("d"), b"x")
        self.call("Delete", pb2.DeleteRequest(key=self.k("d")))
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Get", pb2.GetRequest(key=self.k("d")))
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Delete", pb2.DeleteRequest(key=self.k("d")))

    def test_max_key_and_value_sizes_are_accepted(self):
        key = b"k" * MAX_KEY_BYTES
        self.set(key, b"v" * MAX_VALUE_BYTES)
        self.assertEqual(len(self.get(key).value), MAX_VALUE_BYTES)
        self.call("Delete", pb2.DeleteRequest(key=key))


class SetModeTest(ApiTest):
    def test_always_inserts_and_replaces(self):
        self.set(self.k("a"), b"1", mode=pb2.SET_MODE_ALWAYS)
        self.set(self.k("a"), b"2", mode=pb2.SET_MODE_ALWAYS)
        self.assertEqual(self.get(self.k("a")).value, b"2")

    def test_if_absent(self):
        self.set(self.k("a"), b"first", mode=pb2.SET_MODE_IF_ABSENT)
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, "Set",
                        pb2.SetRequest(key=self.k("a"), value=b"second",
                                       mode=pb2.SET_MODE_IF_ABSENT))
        self.assertEqual(self.get(self.k("a")).value, b"first")

    def test_if_present(self):
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Set",
                        pb2.SetRequest(key=self.k("p"), value=b"x", mode=pb2.SET_MODE_IF_PRESENT))
        self.set(self.k("p"), b"1")
        self.set(self.k("p"), b"2", mode=pb2.SET_MODE_IF_PRESENT)
        self.assertEqual(self.get(self.k("p")).value, b"2")

    def test_if_version_is_compare_and_set(self):
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Set",
                        pb2.SetRequest(key=self.k("c"), value=b"x", mode=pb2.SET_MODE_IF_VERSION,
                                       expected_version=1))
        v1 = self.set(self.k("c"), b"1")
        v2 = self.set(self.k("c"), b"2", mode=pb2.SET_MODE_IF_VERSION, expected_version=v1)
        self.assertGreater(v2, v1)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, "Set",
                        pb2.SetRequest(key=self.k("c"), value=b"3", mode=pb2.SET_MODE_IF_VERSION,
                                       expected_version=v1))
        got = self.get(self.k("c"))
        self.assertEqual((got.value, got.version), (b"2", v2))

    def test_unknown_mode_is_invalid_argument(self):
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Set",
                        pb2.SetRequest(key=self.k("m"), value=b"x", mode=42))


class TtlTest(ApiTest):
    def test_ttl_and_touch(self):
        key = self.k("t")
        self.set(key, b"x")
        self.assertEqual(self.call("Ttl", pb2.TtlRequest(key=key)).ttl_ms, 0)
        version = self.get(key).version
        self.call("Touch", pb2.TouchRequest(key=key, ttl_ms=60_000))
        remaining = self.call("Ttl", pb2.TtlRequest(key=key)).ttl_ms
        self.assertTrue(0 < remaining <= 60_000, remaining)
        got = self.get(key)
        self.assertEqual(got.version, version, "touch must not change the version")
        now_ms = int(time.time() * 1000)
        self.assertTrue(now_ms < got.expires_at_ms <= now_ms + 60_000 + 1000, got.expires_at_ms)
        self.call("Touch", pb2.TouchRequest(key=key, ttl_ms=0))
        self.assertEqual(self.call("Ttl", pb2.TtlRequest(key=key)).ttl_ms, 0)
        self.assertEqual(self.get(key).expires_at_ms, 0)

    def test_ttl_and_touch_of_missing_key(self):
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Ttl", pb2.TtlRequest(key=self.k("none")))
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Touch",
                        pb2.TouchRequest(key=self.k("none"), ttl_ms=5))

    def assertExpires(self, key, ttl_ms, started):
        """Waits (bounded) until the key is gone; checks it lived about ttl_ms."""
        def gone():
            try:
                self.get(key)
                return False
            except grpc.RpcError as err:
                self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
                return True
        self.assertTrue(wait_until(gone, timeout_s=ttl_ms / 1000 + 3.0),
                        f"{key!r} still readable {ttl_ms / 1000 + 3.0} s after a {ttl_ms} ms TTL")
        lived_ms = (time.monotonic() - started) * 1000
        self.assertGreaterEqual(lived_ms, ttl_ms * 0.9)
        # Every read path agrees that it is gone.
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Ttl", pb2.TtlRequest(key=key))
        result = self.call("MultiGet", pb2.MultiGetRequest(keys=[key])).results[0]
        self.assertEqual(result.status.code, grpc.StatusCode.NOT_FOUND.value[0])

    def test_set_with_ttl_expires(self):
        key = self.k("short")
        started = time.monotonic()
        self.set(key, b"x", ttl_ms=300)
        self.assertEqual(self.get(key).value, b"x")
        self.assertTrue(0 < self.call("Ttl", pb2.TtlRequest(key=key)).ttl_ms <= 300)
        self.assertExpires(key, 300, started)
        # An expired key is absent for conditional writes too.
        self.set(key, b"again", mode=pb2.SET_MODE_IF_ABSENT)

    def test_touch_shortens_ttl_until_expiry(self):
        key = self.k("touched")
        self.set(key, b"x")
        started = time.monotonic()
        self.call("Touch", pb2.TouchRequest(key=key, ttl_ms=250))
        self.assertExpires(key, 250, started)

    def test_incr_ttl_if_created(self):
        key = self.k("counter")
        started = time.monotonic()
        self.call("Incr", pb2.IncrRequest(key=key, delta=1, ttl_ms_if_created=300))
        # An existing key keeps its TTL: this ttl_ms_if_created is ignored.
        self.call("Incr", pb2.IncrRequest(key=key, delta=1, ttl_ms_if_created=600_000))
        self.assertLessEqual(self.call("Ttl", pb2.TtlRequest(key=key)).ttl_ms, 300)
        self.assertExpires(key, 300, started)

    def test_ttl_over_100_years_is_invalid(self):
        too_long = 101 * 366 * 24 * 3600 * 1000
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Set",
                        pb2.SetRequest(key=self.k("forever"), value=b"x", ttl_ms=too_long))


class IncrTest(ApiTest):
    def test_absent_key_counts_as_zero_and_negative_deltas(self):
        key = self.k("n")
        self.assertEqual(self.call("Incr", pb2.IncrRequest(key=key, delta=5)).value, 5)
        self.assertEqual(self.call("Incr", pb2.IncrRequest(key=key, delta=-12)).value, -7)
        self.assertEqual(self.call("Incr", pb2.IncrRequest(key=key)).value, -7)
        self.assertEqual(self.get(key).value, b"-7")

    def test_existing_decimal_value(self):
        self.set(self.k("d"), b"41")
        resp = self.call("Incr", pb2.IncrRequest(key=self.k("d"), delta=1))
        self.assertEqual(resp.value, 42)
        self.assertEqual(self.get(self.k("d")).version, resp.version)

    def test_non_integer_is_failed_precondition(self):
        self.set(self.k("s"), b"forty-two")
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, "Incr",
                        pb2.IncrRequest(key=self.k("s"), delta=1))
        self.assertEqual(self.get(self.k("s")).value, b"forty-two")

    def test_overflow_is_out_of_range(self):
        self.set(self.k("big"), b"%d" % (2**63 - 1))
        self.assertCode(grpc.StatusCode.OUT_OF_RANGE, "Incr",
                        pb2.IncrRequest(key=self.k("big"), delta=1))


class BadInputTest(ApiTest):
    def test_empty_key_is_invalid_argument_for_every_rpc(self):
        requests = {
            "Get": pb2.GetRequest(key=b""),
            "Set": pb2.SetRequest(key=b"", value=b"x"),
            "Delete": pb2.DeleteRequest(key=b""),
            "Touch": pb2.TouchRequest(key=b"", ttl_ms=1),
            "Ttl": pb2.TtlRequest(key=b""),
            "Incr": pb2.IncrRequest(key=b"", delta=1),
        }
        for method, request in requests.items():
            with self.subTest(method=method):
                details = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, method, request)
                self.assertIn("key", details.lower())

    def test_oversized_key_names_the_limit(self):
        key = b"k" * (MAX_KEY_BYTES + 1)
        for method, request in {"Get": pb2.GetRequest(key=key),
                                "Set": pb2.SetRequest(key=key, value=b"x")}.items():
            with self.subTest(method=method):
                details = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, method, request)
                self.assertTrue(str(MAX_KEY_BYTES) in details or "max-key-bytes" in details,
                                details)

    def test_oversized_value_names_the_limit(self):
        details = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Set",
                                  pb2.SetRequest(key=self.k("big"),
                                                 value=b"v" * (MAX_VALUE_BYTES + 1)))
        self.assertTrue(str(MAX_VALUE_BYTES) in details or "max-value-bytes" in details
                        or "MiB" in details, details)
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Get", pb2.GetRequest(key=self.k("big")))

    def test_message_over_the_grpc_limit_is_resource_exhausted(self):
        # Max receive message = max-value-bytes + max-key-bytes + 64 KiB.
        value = b"v" * (MAX_VALUE_BYTES + MAX_KEY_BYTES + 65 * 1024)
        self.assertCode(grpc.StatusCode.RESOURCE_EXHAUSTED, "Set",
                        pb2.SetRequest(key=self.k("huge"), value=value))

    def test_batch_over_max_batch_names_the_limit(self):
        keys = [self.k("%d" % i) for i in range(MAX_BATCH + 1)]
        requests = {
            "MultiGet": pb2.MultiGetRequest(keys=keys),
            "MultiDelete": pb2.MultiDeleteRequest(keys=keys),
            "MultiSet": pb2.MultiSetRequest(items=[pb2.SetRequest(key=k) for k in keys]),
        }
        for method, request in requests.items():
            with self.subTest(method=method):
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, method, request,
                                contains="max-batch")
        # Exactly max-batch is fine.
        resp = self.call("MultiGet", pb2.MultiGetRequest(keys=keys[:MAX_BATCH]))
        self.assertEqual(len(resp.results), MAX_BATCH)


class BatchTest(ApiTest):
    def test_multi_set_get_delete(self):
        a, b, c = self.k("a"), self.k("b"), self.k("c")
        self.set(c, b"old")
        resp = self.call("MultiSet", pb2.MultiSetRequest(items=[
            pb2.SetRequest(key=a, value=b"1"),
            pb2.SetRequest(key=b, value=b"2", ttl_ms=60_000),
            pb2.SetRequest(key=c, value=b"new", mode=pb2.SET_MODE_IF_ABSENT),
            pb2.SetRequest(key=b"", value=b"x"),
        ]))
        codes = [r.status.code for r in resp.results]
        self.assertEqual(codes, [0, 0, grpc.StatusCode.ALREADY_EXISTS.value[0],
                                 grpc.StatusCode.INVALID_ARGUMENT.value[0]])
        self.assertGreater(resp.results[0].version, 0)
        self.assertEqual(resp.results[0].version, self.get(a).version)

        keys = [a, self.k("missing"), b, a, c]
        resp = self.call("MultiGet", pb2.MultiGetRequest(keys=keys))
        self.assertEqual(len(resp.results), len(keys))
        self.assertEqual([r.status.code for r in resp.results],
                         [0, grpc.StatusCode.NOT_FOUND.value[0], 0, 0, 0])
        self.assertEqual([r.value for r in resp.results], [b"1", b"", b"2", b"1", b"old"])
        self.assertGreater(resp.results[2].expires_at_ms, 0)
        self.assertEqual(resp.results[4].version, self.get(c).version)

        resp = self.call("MultiDelete", pb2.MultiDeleteRequest(keys=[a, self.k("missing"), b]))
        self.assertEqual([r.code for r in resp.results],
                         [0, grpc.StatusCode.NOT_FOUND.value[0], 0])
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Get", pb2.GetRequest(key=a))

    def test_batch_of_mixed_operations(self):
        a, n = self.k("batch-a"), self.k("batch-n")
        resp = self.call("Batch", pb2.BatchRequest(ops=[
            pb2.Operation(id=7, set=pb2.SetRequest(key=a, value=b"x")),
            pb2.Operation(id=8, get=pb2.GetRequest(key=a)),
            pb2.Operation(id=9, incr=pb2.IncrRequest(key=n, delta=3)),
            pb2.Operation(id=10, get=pb2.GetRequest(key=self.k("batch-missing"))),
            pb2.Operation(id=11),
        ]))
        self.assertEqual([r.id for r in resp.results], [7, 8, 9, 10, 11])
        self.assertGreater(resp.results[0].set.version, 0)
        self.assertEqual(resp.results[1].get.value, b"x")
        self.assertEqual(resp.results[1].get.version, resp.results[0].set.version)
        self.assertEqual(resp.results[2].incr.value, 3)
        self.assertEqual(resp.results[3].status.code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(resp.results[4].status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertIn("has no get/set", resp.results[4].status.message)

    def test_multi_get_empty_key_is_per_key_invalid_argument(self):
        resp = self.call("MultiGet", pb2.MultiGetRequest(keys=[b"", self.k("x")]))
        self.assertEqual(resp.results[0].status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertEqual(resp.results[1].status.code, grpc.StatusCode.NOT_FOUND.value[0])

    def test_empty_batches(self):
        self.assertEqual(len(self.call("MultiGet", pb2.MultiGetRequest()).results), 0)
        self.assertEqual(len(self.call("MultiSet", pb2.MultiSetRequest()).results), 0)
        self.assertEqual(len(self.call("MultiDelete", pb2.MultiDeleteRequest()).results), 0)


class StatsTest(ApiTest):
    def test_stats_counts_requests(self):
        before = self.call("Stats", pb2.StatsRequest())
        self.assertEqual(before.node_id, "py-test")
        self.assertTrue(before.server_version)
        self.assertEqual(before.capacity_bytes, MEMORY_BYTES)
        self.set(self.k("s"), b"x")
        self.get(self.k("s"))
        with self.assertRaises(grpc.RpcError):
            self.get(self.k("absent"))
        self.call("Delete", pb2.DeleteRequest(key=self.k("s")))
        after = self.call("Stats", pb2.StatsRequest())
        self.assertGreaterEqual(after.sets, before.sets + 1)
        self.assertGreaterEqual(after.hits, before.hits + 1)
        self.assertGreaterEqual(after.misses, before.misses + 1)
        self.assertGreaterEqual(after.deletes, before.deletes + 1)
        self.assertGreaterEqual(after.uptime_ms, before.uptime_ms)
        self.assertLessEqual(after.bytes_used, after.capacity_bytes)


class CollectionTest(ApiTest):
    """Hashes, lists and sets through the Collection rpc, as a service in another language
    calls them with only the .proto."""

    def run_cmd(self, key, command, *args, **kw):
        return self.call("Collection", pb2.CollectionRequest(
            key=key, command=getattr(pb2, "COLLECTION_COMMAND_" + command),
            args=[a if isinstance(a, bytes) else a.encode() for a in args], **kw))

    def test_hash_fields_versions_and_compare_and_set(self):
        h = self.k("h")
        r = self.run_cmd(h, "HSET", "name", "ada", "lang", "c++")
        self.assertEqual(r.integer, 2)
        self.assertGreater(r.version, 0)
        r = self.run_cmd(h, "HMGET", "lang", "nope", "name")
        self.assertEqual(list(r.items), [b"c++", b"", b"ada"])
        self.assertEqual(list(r.absent), [1])
        self.assertEqual(list(self.run_cmd(h, "HGETALL").items), [b"name", b"ada", b"lang", b"c++"])
        self.assertEqual(self.run_cmd(h, "HINCRBY", "visits", n=5).integer, 5)
        self.assertEqual(self.run_cmd(h, "HINCRBYFLOAT", "score", "1.5").items, [b"1.5"])
        self.assertTrue(self.run_cmd(h, "HGET", "missing").nil)
        version = self.run_cmd(h, "HLEN").version
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, "Collection", pb2.CollectionRequest(
            key=h, command=pb2.COLLECTION_COMMAND_HSET, args=[b"x", b"1"], if_version=version + 1),
            "version mismatch")
        self.assertEqual(self.run_cmd(h, "HSET", "x", "1", if_version=version).integer, 1)
        # Ttl tells the type; Get on a hash is WRONGTYPE, in Redis's words.
        self.assertEqual(self.call("Ttl", pb2.TtlRequest(key=h)).type, pb2.KEY_TYPE_HASH)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, "Get", pb2.GetRequest(key=h),
                        "WRONGTYPE Operation against a key holding the wrong kind of value")

    def test_lists_pop_with_a_count_and_sets(self):
        q = self.k("q")
        self.assertEqual(self.run_cmd(q, "RPUSH", "a", "b", "c").integer, 3)
        self.assertEqual(list(self.run_cmd(q, "LPOP", n=2, flag=True).items), [b"a", b"b"])
        self.assertEqual(list(self.run_cmd(q, "LRANGE", n=0, stop=-1).items), [b"c"])
        self.assertEqual(list(self.run_cmd(q, "RPOP").items), [b"c"])
        self.assertTrue(self.run_cmd(q, "RPOP").nil)  # The list is gone with its last element.
        self.assertCode(grpc.StatusCode.NOT_FOUND, "Ttl", pb2.TtlRequest(key=q))
        s = self.k("s")
        self.assertEqual(self.run_cmd(s, "SADD", "x", "y", "x").integer, 2)
        self.assertEqual(list(self.run_cmd(s, "SMISMEMBER", "y", "z").integers), [1, 0])

    def test_bad_requests_name_what_is_wrong(self):
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Collection", pb2.CollectionRequest(
            key=self.k("h"), command=pb2.COLLECTION_COMMAND_HSET, args=[b"f"]),
            "hset takes at least 2 argument(s)")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Collection",
                        pb2.CollectionRequest(key=self.k("h")), "unknown collection command 0")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Collection", pb2.CollectionRequest(
            key=self.k("q"), command=pb2.COLLECTION_COMMAND_LPOP, n=-1, flag=True), "negative")
        self.set(self.k("str"), b"v")
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, "Collection", pb2.CollectionRequest(
            key=self.k("str"), command=pb2.COLLECTION_COMMAND_SADD, args=[b"m"]), "WRONGTYPE")

    def test_in_a_pipeline(self):
        ops = [pb2.Operation(id=1, collection=pb2.CollectionRequest(
                   key=self.k("p"), command=pb2.COLLECTION_COMMAND_RPUSH, args=[b"a", b"b"])),
               pb2.Operation(id=2, collection=pb2.CollectionRequest(
                   key=self.k("p"), command=pb2.COLLECTION_COMMAND_LLEN))]
        results = {r.id: r for resp in self.stub.Pipeline(iter([pb2.PipelineRequest(ops=ops)]),
                                                          timeout=CALL_TIMEOUT_S)
                   for r in resp.results}
        self.assertEqual(results[1].collection.integer, 2)
        self.assertEqual(results[2].collection.integer, 2)


class PipelineTest(ApiTest):
    def test_thousands_of_ops_in_flight(self):
        """5000 mixed operations streamed in messages of 100 while results are read."""
        total, per_message = 5000, 100
        seeded = [self.k("seed%d" % i) for i in range(50)]
        self.call("MultiSet", pb2.MultiSetRequest(
            items=[pb2.SetRequest(key=k, value=b"seed") for k in seeded]))
        counter = self.k("counter")

        expected_kind = {}

        def op(op_id):
            kind = op_id % 5
            if kind == 0:
                expected_kind[op_id] = "set"
                return pb2.Operation(id=op_id, set=pb2.SetRequest(
                    key=self.k("p%d" % op_id), value=b"%d" % op_id))
            if kind == 1:
                expected_kind[op_id] = "incr"
                return pb2.Operation(id=op_id, incr=pb2.IncrRequest(key=counter, delta=1))
            if kind == 2:
                expected_kind[op_id] = "get"
                return pb2.Operation(id=op_id, get=pb2.GetRequest(key=seeded[op_id % 50]))
            if kind == 3:
                expected_kind[op_id] = "ttl"
                return pb2.Operation(id=op_id, ttl=pb2.TtlRequest(key=seeded[op_id % 50]))
            expected_kind[op_id] = "touch"
            return pb2.Operation(id=op_id, touch=pb2.TouchRequest(key=seeded[op_id % 50]))

        sent = threading.Event()

        def requests():
            for first in range(0, total, per_message):
                yield pb2.PipelineRequest(ops=[op(i) for i in range(first, first + per_message)])
            # Odd cases at the end: an operation with nothing set, and a failing one.
            expected_kind[total] = None
            expected_kind[total + 1] = None
            yield pb2.PipelineRequest(ops=[
                pb2.Operation(id=total),
                pb2.Operation(id=total + 1, get=pb2.GetRequest(key=self.k("absent"))),
            ])
            sent.set()

        results = {}
        duplicates = 0
        for resp in self.stub.Pipeline(requests(), timeout=60):
            for r in resp.results:
                duplicates += r.id in results
                results[r.id] = r
        self.assertTrue(sent.is_set())
        self.assertEqual(duplicates, 0)
        self.assertEqual(sorted(results), list(range(total + 2)))
        for op_id in range(total):
            r = results[op_id]
            self.assertEqual(r.status.code, 0, f"op {op_id}: {r.status.message}")
            self.assertEqual(r.WhichOneof("result"), expected_kind[op_id], f"op {op_id}")
            if expected_kind[op_id] == "get":
                self.assertEqual(r.get.value, b"seed")
        self.assertEqual(results[total].status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertEqual(results[total + 1].status.code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertIsNone(results[total + 1].WhichOneof("result"))
        incr_values = sorted(results[i].incr.value for i in range(total) if i % 5 == 1)
        self.assertEqual(incr_values, list(range(1, total // 5 + 1)))
        self.assertEqual(self.get(counter).value, b"%d" % (total // 5))
        self.assertEqual(self.get(self.k("p4995")).value, b"4995")

    def test_message_over_max_batch(self):
        ops = [pb2.Operation(id=i, get=pb2.GetRequest(key=self.k("x"))) for i in
               range(MAX_BATCH + 1)]
        try:
            results = [r for resp in self.stub.Pipeline(iter([pb2.PipelineRequest(ops=ops)]),
                                                        timeout=CALL_TIMEOUT_S)
                       for r in resp.results]
        except grpc.RpcError as err:  # a stream-level failure is one acceptable answer
            self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("max-batch", err.details())
            return
        # The other: every operation of the message fails with INVALID_ARGUMENT.
        self.assertEqual(len(results), MAX_BATCH + 1)
        for r in results:
            self.assertEqual(r.status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
            self.assertIn("max-batch", r.status.message)

    def test_empty_stream(self):
        self.assertEqual(list(self.stub.Pipeline(iter([]), timeout=CALL_TIMEOUT_S)), [])


# --- standard services ---------------------------------------------------------------------

class PubSubTest(ApiTest):
    """Publish and Subscribe with nothing but the .proto: the stream's first response says
    it is in place; messages come numbered, with the pattern that matched."""

    def test_publish_reaches_subscriber(self):
        channel = self.k("news")
        stream = self.stub.Subscribe(
            pb2.SubscribeRequest(channels=[channel], patterns=[self.prefix + b"user:*"]),
            timeout=30)
        first = next(stream)
        self.assertTrue(first.HasField("started"))
        self.assertEqual(first.started.channels, 1)
        self.assertEqual(first.started.patterns, 1)
        r = self.call("Publish", pb2.PublishRequest(channel=channel, payload=b"hello"))
        self.assertEqual(r.receivers, 1)
        r = self.call("Publish", pb2.PublishRequest(channel=self.k("user:1"), payload=b"hi"))
        self.assertEqual(r.receivers, 1)
        r = self.call("Publish", pb2.PublishRequest(channel=self.k("other"), payload=b"x"))
        self.assertEqual(r.receivers, 0)
        got = []
        for resp in stream:
            got.extend(resp.messages)
            if len(got) >= 2:
                break
        stream.cancel()
        self.assertEqual([(m.seq, m.channel, m.payload, m.pattern) for m in got],
                         [(1, channel, b"hello", b""),
                          (2, self.k("user:1"), b"hi", self.prefix + b"user:*")])

    def test_bad_requests_name_the_problem(self):
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, "Publish",
                        pb2.PublishRequest(channel=b"c", payload=b"x",
                                           relay=pb2.PublishRelay(seq=1)),
                        contains="relay")
        stream = self.stub.Subscribe(pb2.SubscribeRequest(), timeout=10)
        with self.assertRaises(grpc.RpcError) as ctx:
            next(stream)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("no channel and no pattern", ctx.exception.details())


class HealthTest(unittest.TestCase):
    def test_serving(self):
        stub = health_pb2_grpc.HealthStub(NODE.channel)
        for service in ("", "ringcache.v1.Cache"):
            with self.subTest(service=service):
                resp = stub.Check(health_pb2.HealthCheckRequest(service=service),
                                  timeout=CALL_TIMEOUT_S)
                self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)

    def test_unknown_service_is_not_found(self):
        stub = health_pb2_grpc.HealthStub(NODE.channel)
        with self.assertRaises(grpc.RpcError) as ctx:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"),
                       timeout=CALL_TIMEOUT_S)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_raw_bytes_check(self):
        """What a client without any generated code sends: field 1 (service), length-delimited."""
        check = NODE.channel.unary_unary("/grpc.health.v1.Health/Check")
        name = b"ringcache.v1.Cache"
        self.assertEqual(check(b"\x0a" + bytes([len(name)]) + name, timeout=CALL_TIMEOUT_S),
                         b"\x08\x01")  # status (field 1, varint) = SERVING (1)


class ReflectionTest(unittest.TestCase):
    def ask(self, **request):
        stub = refl_pb2_grpc.ServerReflectionStub(NODE.channel)
        responses = list(stub.ServerReflectionInfo(
            iter([refl_pb2.ServerReflectionRequest(**request)]), timeout=CALL_TIMEOUT_S))
        self.assertEqual(len(responses), 1)
        return responses[0]

    def test_lists_services(self):
        resp = self.ask(list_services="*")
        names = {s.name for s in resp.list_services_response.service}
        self.assertIn("ringcache.v1.Cache", names)
        self.assertIn("grpc.health.v1.Health", names)

    def test_describes_the_cache_service(self):
        from google.protobuf import descriptor_pb2
        resp = self.ask(file_containing_symbol="ringcache.v1.Cache")
        self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response")
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in resp.file_descriptor_response.file_descriptor_proto]
        cache_file = next(f for f in files if f.name == "ringcache/v1/cache.proto")
        self.assertEqual(cache_file.package, "ringcache.v1")
        methods = {m.name for s in cache_file.service if s.name == "Cache" for m in s.method}
        self.assertEqual(methods, {"Get", "Set", "Delete", "Touch", "Ttl", "Incr", "SetRange",
                                   "Collection", "MultiGet", "MultiSet", "MultiDelete", "Batch", "Stats",
                                   "Pipeline", "Topology", "WatchTopology", "Publish", "Subscribe",
                                   "Snapshot"})


class ShutdownTest(unittest.TestCase):
    def test_sigterm_exits_zero_and_refuses_new_calls(self):
        node = Node(CONFIG["ringcached"], "--log-level", "warn", node_id="py-shutdown")
        try:
            node.stub.Set(pb2.SetRequest(key=b"k", value=b"v"), timeout=CALL_TIMEOUT_S)
            addr = node.addr
        finally:
            code = node.stop()
        self.assertEqual(code, 0, node.log())
        with grpc.insecure_channel(addr) as channel:
            with self.assertRaises(grpc.RpcError) as ctx:
                pb2_grpc.CacheStub(channel).Get(pb2.GetRequest(key=b"k"), timeout=CALL_TIMEOUT_S)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)


class TlsAndTokensTest(unittest.TestCase):
    """What a Python service does with a node that has TLS and client tokens: a channel
    with grpc.ssl_channel_credentials and the node's CA, and its token as call metadata
    (docs/security.md). Certificates come from tests/integration/make_test_certs.sh."""

    WRITER = "py-writer-token-0123456789"
    READER = "py-reader-token-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ringcache-pytls-")
        certs = os.path.join(cls.dir, "certs")
        subprocess.run(["bash", os.path.join(REPO, "tests", "integration", "make_test_certs.sh"),
                        certs], check=True)
        cls.certs = certs
        old_umask = os.umask(0o077)
        with open(os.path.join(cls.dir, "secret"), "w") as f:
            f.write("py-tls-test-cluster-secret\n")
        with open(os.path.join(cls.dir, "tokens"), "w") as f:
            f.write("app read-write %s\ndash read %s\n" % (cls.WRITER, cls.READER))
        os.umask(old_umask)
        cls.node = Node(CONFIG["ringcached"], "--tls-cert-file", os.path.join(certs, "node.pem"),
                        "--tls-key-file", os.path.join(certs, "node.key"), "--cluster-secret-file",
                        os.path.join(cls.dir, "secret"), "--auth-tokens-file",
                        os.path.join(cls.dir, "tokens"), node_id="py-tls")

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def stub(self, ca="ca.pem"):
        with open(os.path.join(self.certs, ca), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(self.node.addr, creds)
        self.addCleanup(channel.close)
        return pb2_grpc.CacheStub(channel)

    def bearer(self, token):
        return [("authorization", "Bearer " + token)]

    def test_tokens_over_tls(self):
        stub = self.stub()
        stub.Set(pb2.SetRequest(key=b"py-tls", value=b"v"), metadata=self.bearer(self.WRITER),
                 timeout=CALL_TIMEOUT_S)
        got = stub.Get(pb2.GetRequest(key=b"py-tls"), metadata=self.bearer(self.READER),
                       timeout=CALL_TIMEOUT_S)
        self.assertEqual(got.value, b"v")
        with self.assertRaises(grpc.RpcError) as ctx:
            stub.Get(pb2.GetRequest(key=b"py-tls"), timeout=CALL_TIMEOUT_S)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("needs a client token", ctx.exception.details())
        with self.assertRaises(grpc.RpcError) as ctx:
            stub.Set(pb2.SetRequest(key=b"py-tls", value=b"x"), metadata=self.bearer(self.READER),
                     timeout=CALL_TIMEOUT_S)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.PERMISSION_DENIED)

    def test_plaintext_and_another_ca_cannot_connect(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            self.node.stub.Get(pb2.GetRequest(key=b"py-tls"), metadata=self.bearer(self.READER),
                               timeout=CALL_TIMEOUT_S)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub("other-ca.pem").Get(pb2.GetRequest(key=b"py-tls"),
                                          metadata=self.bearer(self.READER),
                                          timeout=CALL_TIMEOUT_S)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--ringcached", default=CONFIG["ringcached"])
    parser.add_argument("--proto-root", default=CONFIG["proto_root"])
    parser.add_argument("--health-proto", default=CONFIG["health_proto"])
    args, rest = parser.parse_known_args()
    CONFIG.update(ringcached=args.ringcached, proto_root=args.proto_root,
                  health_proto=args.health_proto)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()

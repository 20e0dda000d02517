// Snapshots in --data-dir (docs/design/persistence.md), with ringcached processes: a node
// stopped gracefully comes back with every key, its version and its expiry; after kill -9
// it comes back with its last snapshot (ringcache-cli snapshot / the Snapshot rpc); a
// damaged snapshot loads what comes before the damage and the node starts; a snapshot
// that cannot be written is an error the node survives; a node joining through seeds
// starts empty.
#include <grpcpp/client_context.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "raw_socket.h"

namespace ringcache::it {
namespace {

using namespace std::chrono_literals;

struct DataDir {
  std::string path;
  DataDir() {
    char tmpl[] = "/tmp/ringcache-data-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~DataDir() { std::system(("rm -rf " + path).c_str()); }
  std::string snapshot() const { return path + "/snapshot.rcs"; }
};

grpc::Status Snapshot(v1::Cache::Stub& stub, v1::SnapshotResponse* out) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, 30s);
  return stub.Snapshot(&ctx, v1::SnapshotRequest(), out);
}

TEST_CASE("A node stopped gracefully comes back with its keys, versions and expiries",
          "[persistence]") {
  DataDir dir;
  NodeProcess node({"--data-dir", dir.path, "--metrics-listen", "127.0.0.1:0"});
  RequireStart(node);
  auto stub = node.NewStub();
  std::vector<uint64_t> versions;
  for (int i = 0; i < 200; ++i) {
    auto r = Set(*stub, "k" + std::to_string(i), "v" + std::to_string(i));
    REQUIRE(r.status.ok());
    versions.push_back(r.response.version());
  }
  REQUIRE(Set(*stub, "ttl", "x", {.ttl_ms = 600'000}).status.ok());
  REQUIRE(Set(*stub, "gone", "x", {.ttl_ms = 300}).status.ok());
  REQUIRE(Delete(*stub, "k199").status.ok());
  REQUIRE(node.Terminate(10s).has_value());  // SIGTERM: the last snapshot is written.
  std::this_thread::sleep_for(400ms);        // "gone" expires while the node is down.

  RequireStart(node);
  stub = node.NewStub();
  for (int i = 0; i < 199; ++i) {
    auto got = Get(*stub, "k" + std::to_string(i));
    REQUIRE(got.status.ok());
    CHECK(got.response.value() == "v" + std::to_string(i));
    CHECK(got.response.version() == versions[static_cast<size_t>(i)]);
  }
  CHECK(Get(*stub, "k199").status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(Get(*stub, "gone").status.error_code() == grpc::StatusCode::NOT_FOUND);
  auto ttl = Ttl(*stub, "ttl");
  REQUIRE(ttl.status.ok());
  CHECK(ttl.response.ttl_ms() > 590'000);
  // A write after the restart goes above every version loaded.
  auto after = Set(*stub, "k0", "new");
  REQUIRE(after.status.ok());
  CHECK(after.response.version() > versions[0]);
  CHECK(MetricValue(node.MetricsAddress(), "ringcache_snapshot_loaded_keys") == 200);
}

TEST_CASE("After kill -9 a node comes back with its last snapshot", "[persistence]") {
  DataDir dir;
  NodeProcess node({"--data-dir", dir.path});
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE(Set(*stub, "before", "1").status.ok());
  v1::SnapshotResponse snap;
  REQUIRE(Snapshot(*stub, &snap).ok());
  CHECK(snap.keys() == 1);
  CHECK(snap.path() == dir.snapshot());
  auto after = Set(*stub, "after", "2");  // Not in any snapshot.
  REQUIRE(after.status.ok());
  node.Kill();
  RequireStart(node);
  stub = node.NewStub();
  CHECK(Get(*stub, "before").status.ok());
  CHECK(Get(*stub, "after").status.error_code() == grpc::StatusCode::NOT_FOUND);
  // The lost write's version is never given again: a compare-and-set holding it fails.
  auto again = Set(*stub, "after", "3");
  REQUIRE(again.status.ok());
  CHECK(again.response.version() > after.response.version());
}

TEST_CASE("A snapshot is written each interval once enough keys changed", "[persistence]") {
  DataDir dir;
  NodeProcess node({"--data-dir", dir.path, "--metrics-listen", "127.0.0.1:0",
                    "--snapshot-interval-s", "1", "--snapshot-min-changes", "5"});
  RequireStart(node);
  auto stub = node.NewStub();
  for (int i = 0; i < 4; ++i) REQUIRE(Set(*stub, "k" + std::to_string(i), "v").status.ok());
  std::this_thread::sleep_for(2500ms);  // Two intervals with four changes: not enough.
  CHECK(MetricValue(node.MetricsAddress(), "ringcache_snapshots_total") == 0);
  REQUIRE(Set(*stub, "k4", "v").status.ok());
  REQUIRE(checks::Eventually(
      [&] { return MetricValue(node.MetricsAddress(), "ringcache_snapshots_total") >= 1; }, 10s));
  CHECK(MetricValue(node.MetricsAddress(), "ringcache_snapshot_last_keys") == 5);
  CHECK(access(dir.snapshot().c_str(), F_OK) == 0);
}

TEST_CASE("A damaged snapshot loads what comes before the damage and the node starts",
          "[persistence]") {
  DataDir dir;
  NodeProcess node({"--data-dir", dir.path, "--metrics-listen", "127.0.0.1:0"});
  RequireStart(node);
  auto stub = node.NewStub();
  // Enough keys for every shard: one block per shard or more.
  for (int i = 0; i < 2000; ++i) REQUIRE(Set(*stub, "k" + std::to_string(i), "v").status.ok());
  REQUIRE(node.Terminate(10s).has_value());
  std::string bytes;
  {
    std::ifstream in(dir.snapshot(), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  REQUIRE(bytes.size() > 1000);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
  std::ofstream(dir.snapshot(), std::ios::binary | std::ios::trunc) << bytes;

  RequireStart(node);
  CHECK_THAT(node.Stderr(),
             Catch::Contains("is damaged") && Catch::Contains("fails its checksum") &&
                 Catch::Contains("the file was moved to " + dir.snapshot() + ".damaged-"));
  const double loaded = MetricValue(node.MetricsAddress(), "ringcache_snapshot_loaded_keys");
  CHECK(loaded > 0);
  CHECK(loaded < 2000);
  CHECK(MetricValue(node.MetricsAddress(), "ringcache_snapshot_load_damaged") == 1);
}

TEST_CASE("A snapshot that cannot be written is an error the node survives", "[persistence]") {
  DataDir dir;
  NodeProcess node({"--data-dir", dir.path, "--metrics-listen", "127.0.0.1:0"});
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE(Set(*stub, "k", "v").status.ok());
  // The directory goes away under the node, and a file takes its name.
  std::system(("rm -rf " + dir.path + " && touch " + dir.path).c_str());
  v1::SnapshotResponse snap;
  const grpc::Status s = Snapshot(*stub, &snap);
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(s.error_message(), Catch::Contains(dir.path));
  CHECK(Get(*stub, "k").status.ok());  // Still serving from memory.
  CHECK(MetricValue(node.MetricsAddress(), "ringcache_snapshot_failures_total") == 1);
  CHECK_THAT(node.Stderr(), Catch::Contains("keeps serving from memory"));
  std::system(("rm -f " + dir.path).c_str());
}

TEST_CASE("Snapshots are refused without --data-dir and a joining node starts empty",
          "[persistence]") {
  NodeProcess plain;
  RequireStart(plain);
  auto stub = plain.NewStub();
  v1::SnapshotResponse snap;
  const grpc::Status s = Snapshot(*stub, &snap);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(s.error_message(), Catch::Contains("--data-dir"));

  // A node that joins through seeds does not load its snapshot: its peers hold the data.
  DataDir dir;
  {
    NodeProcess alone({"--data-dir", dir.path});
    RequireStart(alone);
    REQUIRE(Set(*alone.NewStub(), "old", "v").status.ok());
    REQUIRE(alone.Terminate(10s).has_value());
  }
  NodeProcess joiner({"--data-dir", dir.path, "--seeds", plain.GrpcAddress(), "--node-id", "j",
                      "--metrics-listen", "127.0.0.1:0"});
  RequireStart(joiner);
  CHECK_THAT(joiner.Stderr(), Catch::Contains("joining through --seeds, so starting empty") &&
                                  Catch::Contains("moved to " + dir.snapshot() + ".unused-"));
  CHECK(MetricValue(joiner.MetricsAddress(), "ringcache_snapshot_loaded_keys") == 0);
  CHECK(Get(*joiner.NewStub(), "old").status.error_code() == grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace ringcache::it

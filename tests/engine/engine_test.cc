// The engine step of the operation path (daemon/node/src/engine.h) on real nodes started
// in-process (Node::Start on 127.0.0.1, free ports): today's string operations, and the
// prototype HSET/HGET (a multi-field write, a many-item read) run end to end through the
// router, the engine and replication, to show the operation vocabulary carries them.
#include "engine.h"

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "operation.h"
#include "ringcache/node/node.h"
#include "router.h"

namespace ringcache::internal {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Node> StartNode(const std::string& id, std::vector<std::string> seeds = {}) {
  NodeOptions o;
  o.node_id = id;
  o.listen_address = "127.0.0.1:0";
  o.metrics_listen_address = "";
  o.seeds = std::move(seeds);
  o.replication_factor = 2;
  o.join_timeout = 20s;
  Result<std::unique_ptr<Node>> node = Node::Start(std::move(o));
  REQUIRE(node.ok());
  return std::move(node).value();
}

Op HSet(std::string_view key, const std::vector<std::string_view>& items) {
  Op op;
  op.kind = OpKind::kHSet;
  op.key = HashedKey(key);
  op.items = items;
  return op;
}

Op HGet(std::string_view key, const std::vector<std::string_view>& fields) {
  Op op;
  op.kind = OpKind::kHGet;
  op.key = HashedKey(key);
  op.items = fields;
  return op;
}

OpResult Run(Node* node, const Op& op, WriteTicket* ticket = nullptr) {
  OpResult result;
  ExecuteLocal(node, op, &result, ticket);
  return result;
}

using Items = std::vector<std::optional<std::string>>;

}  // namespace
}  // namespace ringcache::internal

namespace Catch {
template <>
struct StringMaker<std::optional<std::string>> {
  static std::string convert(const std::optional<std::string>& v) {
    return v ? "\"" + *v + "\"" : "(absent)";
  }
};
}  // namespace Catch

namespace ringcache::internal {
namespace {

TEST_CASE("Prototype HSET/HGET: fields added, updated and read back, type errors named",
          "[integration][engine]") {
  std::unique_ptr<Node> node = StartNode("n1");
  const Router router("n1", 4096, true);
  const std::vector<std::string_view> first = {"f1", "v1", "f2", "v2"};
  const Op set_first = HSet("h", first);
  CHECK(router.Route(nullptr, {}, set_first).where == Router::Where::kHere);
  OpResult r = Run(node.get(), set_first);
  REQUIRE(r.status.ok());
  CHECK(r.integer == 2);
  const uint64_t v1 = r.version;
  CHECK(v1 > 0);

  const std::vector<std::string_view> second = {"f1", "x", "f3", "y"};
  r = Run(node.get(), HSet("h", second));
  REQUIRE(r.status.ok());
  CHECK(r.integer == 1);  // f3 is new; f1 was updated.
  CHECK(r.version > v1);

  const std::vector<std::string_view> fields = {"f1", "f2", "f9", "f3"};
  r = Run(node.get(), HGet("h", fields));
  REQUIRE(r.status.ok());
  CHECK(r.items == Items{"x", "v2", std::nullopt, "y"});

  // An absent key: every field absent, not an error (as Redis).
  r = Run(node.get(), HGet("absent", fields));
  REQUIRE(r.status.ok());
  CHECK(r.items == Items(4, std::nullopt));

  // A string key is not a hash, either way.
  REQUIRE(node->Set("s", "plain").ok());
  r = Run(node.get(), HSet("s", first));
  CHECK(r.status.code() == StatusCode::kFailedPrecondition);
  CHECK(r.status.message() == "key holds a string, not a hash");
  CHECK(Run(node.get(), HGet("s", fields)).status.code() == StatusCode::kFailedPrecondition);

  const std::vector<std::string_view> odd = {"f1", "v1", "f2"};
  r = Run(node.get(), HSet("h", odd));
  CHECK(r.status.code() == StatusCode::kInvalidArgument);
  CHECK(r.status.message() == "hset needs field-value pairs, got 3 arguments");
  node->Shutdown();
}

TEST_CASE("Prototype HSET is replicated like any write and read back on the replica",
          "[integration][engine]") {
  std::unique_ptr<Node> n1 = StartNode("n1");
  std::unique_ptr<Node> n2 = StartNode("n2", {n1->grpc_address()});
  // The write's primary ships it: find, for one key, the node whose HSET has a replica
  // link and is acknowledged by it (both nodes own every key with replication factor 2 on
  // two nodes; the joiner's links come up, and sync, once its transition completes).
  const std::vector<std::string_view> items = {"name", "ada", "lang", "c++"};
  Node* primary = nullptr;
  Node* replica = nullptr;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (primary == nullptr && std::chrono::steady_clock::now() < deadline) {
    for (auto [p, r] : {std::pair{n1.get(), n2.get()}, std::pair{n2.get(), n1.get()}}) {
      WriteTicket ticket;
      OpResult result = Run(p, HSet("user:1", items), &ticket);
      if (!result.status.ok() || ticket.links.empty()) continue;
      std::promise<uint32_t> acked;
      p->WaitForReplicas(ticket, 1, 2s, [&acked](uint32_t n) { acked.set_value(n); });
      if (acked.get_future().get() == 1) {
        primary = p;
        replica = r;
        break;
      }
    }
    if (primary == nullptr) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(primary != nullptr);

  // The replica holds the same entry (value and version): HGET there reads the fields.
  const std::vector<std::string_view> fields = {"lang", "name", "none"};
  const OpResult on_primary = Run(primary, HGet("user:1", fields));
  const OpResult on_replica = Run(replica, HGet("user:1", fields));
  REQUIRE(on_replica.status.ok());
  CHECK(on_replica.items == Items{"c++", "ada", std::nullopt});
  CHECK(on_replica.version == on_primary.version);
  n2->Shutdown();
  n1->Shutdown();
}

}  // namespace
}  // namespace ringcache::internal

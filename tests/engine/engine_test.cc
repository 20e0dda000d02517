// The engine step of the operation path (daemon/node/src/engine.h) on real nodes started
// in-process (Node::Start on 127.0.0.1, free ports): collection commands (a multi-field
// write, a many-item read, pops) run end to end through the router, the engine and
// replication, and a replica converges to its primary's copy, version included.
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

Op Typed(std::string_view key, TypedCommand command, const std::vector<std::string_view>& args,
         int64_t n = 0, int64_t stop = 0, bool flag = false) {
  Op op;
  op.kind = InfoOf(command).write ? OpKind::kTypedWrite : OpKind::kTypedRead;
  op.key = HashedKey(key);
  op.typed = command;
  op.args = args;
  op.n = n;
  op.stop = stop;
  op.flag = flag;
  return op;
}

OpResult Run(Node* node, const Op& op, WriteTicket* ticket = nullptr) {
  OpResult result;
  ExecuteLocal(node, op, &result, ticket);
  return result;
}

using Items = std::vector<std::string>;
using C = TypedCommand;

TEST_CASE("Collection commands through the engine: fields added, updated and read back",
          "[integration][engine]") {
  std::unique_ptr<Node> node = StartNode("n1");
  const Router router("n1", 4096, true);
  const Op set_first = Typed("h", C::kHSet, {"f1", "v1", "f2", "v2"});
  CHECK(router.Route(nullptr, {}, set_first).where == Router::Where::kHere);
  OpResult r = Run(node.get(), set_first);
  REQUIRE(r.status.ok());
  CHECK(r.typed->integer == 2);
  const uint64_t v1 = r.version;
  CHECK(v1 > 0);

  r = Run(node.get(), Typed("h", C::kHSet, {"f1", "x", "f3", "y"}));
  REQUIRE(r.status.ok());
  CHECK(r.typed->integer == 1);  // f3 is new; f1 was updated.
  CHECK(r.version > v1);

  r = Run(node.get(), Typed("h", C::kHMGet, {"f1", "f2", "f9", "f3"}));
  REQUIRE(r.status.ok());
  CHECK(r.typed->items == Items{"x", "v2", "", "y"});
  CHECK(r.typed->absent == std::vector<uint32_t>{2});

  // A string key is not a hash, either way, in Redis's words.
  REQUIRE(node->Set("s", "plain").ok());
  r = Run(node.get(), Typed("s", C::kHSet, {"f1", "v1"}));
  CHECK(r.status.code() == StatusCode::kFailedPrecondition);
  CHECK(r.status.message() == "WRONGTYPE Operation against a key holding the wrong kind of value");
  CHECK(Run(node.get(), Typed("s", C::kHGet, {"f1"})).status.code() ==
        StatusCode::kFailedPrecondition);
  r = Run(node.get(), Typed("h", C::kHSet, {"f1", "v1", "f2"}));
  CHECK(r.status.code() == StatusCode::kInvalidArgument);
  CHECK(r.status.message() == "hset takes field value pairs, got 3 arguments");
  node->Shutdown();
}

TEST_CASE("Collection writes are replicated: the replica's copy equals the primary's",
          "[integration][engine]") {
  std::unique_ptr<Node> n1 = StartNode("n1");
  std::unique_ptr<Node> n2 = StartNode("n2", {n1->grpc_address()});
  // The write's primary ships it: find, for one key, the node whose HSET has a replica
  // link and is acknowledged by it (both nodes own every key with replication factor 2 on
  // two nodes; the joiner's links come up, and sync, once its transition completes).
  Node* primary = nullptr;
  Node* replica = nullptr;
  // Each attempt changes the hash (a write that changes nothing ships nothing).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (int attempt = 0; primary == nullptr && std::chrono::steady_clock::now() < deadline;
       ++attempt) {
    const std::string tag = std::to_string(attempt);
    for (auto [p, r] : {std::pair{n1.get(), n2.get()}, std::pair{n2.get(), n1.get()}}) {
      WriteTicket ticket;
      OpResult result = Run(
          p, Typed("{u1}user", C::kHSet, {"name", "ada", "lang", "c++", "attempt", tag}), &ticket);
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

  // The replica holds the same entry (value and version): HMGET there reads the fields.
  const OpResult on_primary = Run(primary, Typed("{u1}user", C::kHMGet, {"lang", "name", "none"}));
  OpResult on_replica = Run(replica, Typed("{u1}user", C::kHMGet, {"lang", "name", "none"}));
  INFO(on_replica.status.ToString());
  REQUIRE(on_replica.status.ok());
  CHECK(on_replica.typed->items == Items{"c++", "ada", ""});
  CHECK(on_replica.version == on_primary.version);

  // Lists and sets (same hash tag: same primary): what a pop removed is gone on the
  // replica too (it ships the result,
  // not the command), and a collection emptied there is removed there.
  auto acked_write = [&](const Op& op) {
    WriteTicket ticket;
    OpResult result = Run(primary, op, &ticket);
    REQUIRE(result.status.ok());
    std::promise<uint32_t> acked;
    primary->WaitForReplicas(ticket, 1, 2s, [&acked](uint32_t n) { acked.set_value(n); });
    REQUIRE(acked.get_future().get() == 1);
    return result;
  };
  acked_write(Typed("{u1}queue", C::kRPush, {"a", "b", "c", "d"}));
  CHECK(acked_write(Typed("{u1}queue", C::kLPop, {}, 2, 0, true)).typed->items == Items{"a", "b"});
  acked_write(Typed("{u1}tags", C::kSAdd, {"x", "y"}));
  acked_write(Typed("{u1}tags", C::kSRem, {"x", "y"}));
  on_replica = Run(replica, Typed("{u1}queue", C::kLRange, {}, 0, -1));
  CHECK(on_replica.typed->items == Items{"c", "d"});
  CHECK(on_replica.version == Run(primary, Typed("{u1}queue", C::kLLen, {})).version);
  CHECK(Run(replica, Typed("{u1}tags", C::kSCard, {})).typed->integer == 0);
  std::string pack;
  CHECK(replica->GetTyped("{u1}tags", ValueType::kSet, &pack).code() == StatusCode::kNotFound);
  n2->Shutdown();
  n1->Shutdown();
}

}  // namespace
}  // namespace ringcache::internal

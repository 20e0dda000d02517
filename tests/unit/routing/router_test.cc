// Router (daemon/node/src/router.h): the routing decision of the operation path on
// hand-made views, no network: owners by placement hash (hash tags included), read
// preference, the "local" and "forwarded" hints, a node with no view, and a batch split per
// owner in batch order.
#include "router.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/key_hash.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

using Access = Router::Access;
using Where = Router::Where;

Router::Hints Local() {
  Router::Hints h;
  h.local = true;
  return h;
}

Router::Hints ForwardedBy(std::string_view id) {
  Router::Hints h;
  h.forwarded_by = id;
  return h;
}

std::shared_ptr<const Topology> ThreeNodes(const std::string& self, uint64_t epoch = 5,
                                           MemberState n3 = MemberState::kServing) {
  ClusterView view;
  view.epoch = epoch;
  view.replication_factor = 2;
  view.members = {ClusterMember{"n1", "h:1", 1, MemberState::kServing},
                  ClusterMember{"n2", "h:2", 1, MemberState::kServing},
                  ClusterMember{"n3", "h:3", 1, n3}};
  Result<std::shared_ptr<const Topology>> t = Topology::Make(view, self);
  REQUIRE(t.ok());
  return *t;
}

// The owners of `key` (ids, primary first) on `t`'s ring.
std::vector<std::string> OwnersOf(const Topology& t, const std::string& key) {
  uint32_t owners[Topology::kMaxReplicationFactor];
  const size_t n = t.Owners(HashKey(key), owners);
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(t.ring_members[owners[i]]->id);
  return ids;
}

// A key whose primary on `t` is `primary` and whose replica is (or is not) `replica`.
std::string KeyWith(const Topology& t, const std::string& primary, const std::string& replica) {
  for (int i = 0; i < 100000; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::vector<std::string> owners = OwnersOf(t, key);
    if (owners.size() == 2 && owners[0] == primary && owners[1] == replica) return key;
  }
  FAIL("no key with primary " << primary << " and replica " << replica);
  return {};
}

TEST_CASE("Router serves a key here when this node is the owner the access needs",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  const std::string mine = KeyWith(*t, "n1", "n2");
  const std::string replica_here = KeyWith(*t, "n2", "n1");
  const std::string elsewhere = KeyWith(*t, "n3", "n2");

  CHECK(router.Place(t.get(), {}, mine, Access::kWrite).where == Where::kHere);
  CHECK(router.Place(t.get(), {}, mine, Access::kReadPrimary).where == Where::kHere);
  // A replica serves reads only with ANY_OWNER; writes and primary reads go to n2.
  CHECK(router.Place(t.get(), {}, replica_here, Access::kReadAnyOwner).where == Where::kHere);
  Router::Placement p = router.Place(t.get(), {}, replica_here, Access::kWrite);
  CHECK(p.where == Where::kRemote);
  REQUIRE(p.owner != nullptr);
  CHECK(p.owner->id == "n2");
  p = router.Place(t.get(), {}, elsewhere, Access::kReadAnyOwner);
  CHECK(p.where == Where::kRemote);
  CHECK(p.owner->id == "n3");
}

TEST_CASE("Router places tagged keys by their tag", "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  for (int tag = 0; tag < 50; ++tag) {
    const std::string a = "{t" + std::to_string(tag) + "}:a";
    const std::string b = "x:{t" + std::to_string(tag) + "}:b";
    const Router::Placement pa = router.Place(t.get(), {}, a, Access::kWrite);
    const Router::Placement pb = router.Place(t.get(), {}, b, Access::kWrite);
    CHECK(pa.where == pb.where);
    CHECK(pa.owner == pb.owner);
  }
}

TEST_CASE("Router hints: local reads stay, local writes and second hops are refused",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  const std::string elsewhere = KeyWith(*t, "n3", "n2");
  CHECK(router.Place(t.get(), Local(), elsewhere, Access::kReadPrimary).where == Where::kHere);
  Router::Placement p = router.Place(t.get(), Local(), elsewhere, Access::kWrite);
  CHECK(p.where == Where::kError);
  CHECK(p.error.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(p.error.message(), Catch::Contains("ringcache-local is for reads only"));

  p = router.Place(t.get(), ForwardedBy("n2"), elsewhere, Access::kWrite);
  CHECK(p.where == Where::kError);
  CHECK(p.error.code() == StatusCode::kUnavailable);
  CHECK(p.error.message() ==
        "node n1 is not the primary of this key in epoch 5 (forwarded by n2); retry");
  // The owner itself serves a forwarded call.
  CHECK(router.Place(t.get(), ForwardedBy("n2"), KeyWith(*t, "n1", "n3"), Access::kWrite).where ==
        Where::kHere);
}

TEST_CASE("Router sends a forwarded operation on only when the forwarder's view was older",
          "[unit][router]") {
  const auto t = ThreeNodes("n1", 5);
  const Router router("n1", 4096, false);
  const std::string elsewhere = KeyWith(*t, "n3", "n2");
  auto forwarded_in = [](uint64_t epoch) {
    Router::Hints h = ForwardedBy("n2");
    h.has_epoch = true;
    h.epoch = epoch;
    return h;
  };
  // n2 routed on epoch 4, we hold 5: our view is the better guess, so on to n3 (who sees our
  // epoch, 5, and may only send it on with a newer view still).
  Router::Placement p = router.Place(t.get(), forwarded_in(4), elsewhere, Access::kWrite);
  REQUIRE(p.where == Where::kRemote);
  CHECK(p.owner->id == "n3");
  // The same view, or a newer one than ours (we are the one behind): one hop only.
  for (const uint64_t epoch : {uint64_t{5}, uint64_t{6}}) {
    p = router.Place(t.get(), forwarded_in(epoch), elsewhere, Access::kWrite);
    CHECK(p.where == Where::kError);
    CHECK(p.error.code() == StatusCode::kUnavailable);
  }
  // A forwarder that sent no epoch: one hop only, as before.
  CHECK(router.Place(t.get(), ForwardedBy("n2"), elsewhere, Access::kReadPrimary).where ==
        Where::kError);
}

TEST_CASE("Router: no view yet is UNAVAILABLE, standalone and bad keys are served here",
          "[unit][router]") {
  const Router joining("n4", 4096, false);
  Router::Placement p = joining.Place(nullptr, {}, "k", Access::kReadPrimary);
  CHECK(p.where == Where::kError);
  CHECK(p.error == Status::Unavailable("node n4 is joining the cluster"));
  CHECK(joining.CheckServing(nullptr).code() == StatusCode::kUnavailable);

  const Router standalone("solo", 4096, true);
  CHECK(standalone.Place(nullptr, {}, "k", Access::kWrite).where == Where::kHere);
  CHECK(standalone.CheckServing(nullptr).ok());

  // The cache answers an empty or oversized key with its own error, without a hop.
  const auto t = ThreeNodes("n1");
  const Router router("n1", 8, false);
  CHECK(router.Place(t.get(), {}, "", Access::kWrite).where == Where::kHere);
  CHECK(router.Place(t.get(), {}, "123456789", Access::kWrite).where == Where::kHere);
}

TEST_CASE("Router places every key on its primary and never forwards a forwarded one again",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  std::set<std::string> owners_seen;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "batch:" + std::to_string(i);
    const std::string primary = OwnersOf(*t, key).front();
    const Router::Placement p = router.Place(t.get(), {}, key, Access::kWrite);
    if (primary == "n1") {
      CHECK(p.where == Where::kHere);
    } else {
      REQUIRE(p.where == Where::kRemote);
      CHECK(p.owner->id == primary);
      owners_seen.insert(primary);
    }
    // Forwarded once already: served here if this node is the primary, else refused with
    // UNAVAILABLE (the forwarder's view and ours disagree), never sent on.
    const Router::Placement again = router.Place(t.get(), ForwardedBy("n2"), key, Access::kWrite);
    if (primary == "n1") {
      CHECK(again.where == Where::kHere);
    } else {
      CHECK(again.where == Where::kError);
      CHECK(again.error.code() == StatusCode::kUnavailable);
    }
  }
  CHECK(owners_seen.size() == 2);  // n2 and n3.
}

// A NodeGate the test fences and unfences.
class FakeGate final : public NodeGate {
 public:
  bool Fenced() const override { return fenced; }
  std::string FenceReason() const override { return "node n1 is fenced: lost the majority"; }
  bool fenced = false;
};

Op Write(std::string_view key, uint32_t write_concern = 0, uint32_t timeout_ms = 0) {
  Op op;
  op.kind = OpKind::kSet;
  op.key = HashedKey(key);
  op.write_concern = write_concern;
  op.write_concern_timeout_ms = timeout_ms;
  return op;
}

Op Read(std::string_view key, bool any_owner = false) {
  Op op;
  op.kind = OpKind::kGet;
  op.key = HashedKey(key);
  op.any_owner = any_owner;
  return op;
}

TEST_CASE("Router::Route refuses an operation the caller's role does not allow, before placing it",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  const std::string here = KeyWith(*t, "n1", "n2");
  const std::string there = KeyWith(*t, "n2", "n1");
  for (const std::string& key : {here, there}) {
    Router::Hints reader;
    reader.role = Role::kRead;
    const Router::Decision write = router.Route(t.get(), reader, Write(key));
    CHECK(write.where == Where::kError);
    CHECK(write.error.code() == StatusCode::kPermissionDenied);
    CHECK(write.error.message() ==
          "set needs the role read-write and this caller's token has the role read");
    CHECK(router.Route(t.get(), reader, Read(key)).where != Where::kError);
    Router::Hints writer;
    writer.role = Role::kReadWrite;
    CHECK(router.Route(t.get(), writer, Write(key)).where != Where::kError);
    Router::Hints nobody;
    nobody.role = Role::kNone;
    CHECK(router.Route(t.get(), nobody, Read(key)).error.code() == StatusCode::kPermissionDenied);
  }
}

TEST_CASE("Router::Route derives the access from the operation's shape and read preference",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  const std::string replica_here = KeyWith(*t, "n2", "n1");
  Router::Decision d = router.Route(t.get(), {}, Write(replica_here));
  CHECK(d.where == Where::kRemote);
  REQUIRE(d.owner != nullptr);
  CHECK(d.owner->id == "n2");
  CHECK(router.Route(t.get(), {}, Read(replica_here)).where == Where::kRemote);
  CHECK(router.Route(t.get(), {}, Read(replica_here, true)).where == Where::kHere);
  // Collection commands are routed by shape like the strings.
  Op hset = Write(replica_here);
  hset.kind = OpKind::kTypedWrite;
  hset.typed = TypedCommand::kHSet;
  CHECK(router.Route(t.get(), {}, hset).where == Where::kRemote);
  Op hget = Read(replica_here, true);
  hget.kind = OpKind::kTypedRead;
  hget.typed = TypedCommand::kHGet;
  CHECK(router.Route(t.get(), {}, hget).where == Where::kHere);
}

TEST_CASE("Router::Route places by the hash the operation carries, computed once",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const Router router("n1", 4096, false);
  const std::string mine = KeyWith(*t, "n1", "n2");
  const std::string elsewhere = KeyWith(*t, "n3", "n2");
  // An op whose hash says "elsewhere" is placed there even though its bytes say "mine": the
  // router does not hash the key again.
  Op op = Write(mine);
  op.key = HashedKey::WithHashes(mine, HashKey(elsewhere), HashBytes(mine));
  const Router::Decision d = router.Route(t.get(), {}, op);
  CHECK(d.where == Where::kRemote);
  REQUIRE(d.owner != nullptr);
  CHECK(d.owner->id == "n3");
}

TEST_CASE("Router::Route refuses while fenced, except reads with fenced_reads", "[unit][router]") {
  const auto t = ThreeNodes("n1");
  const std::string elsewhere = KeyWith(*t, "n3", "n2");
  FakeGate gate;
  const Router strict("n1", 4096, false, &gate, false, 2);
  const Router lenient("n1", 4096, false, &gate, true, 2);
  CHECK(strict.Route(t.get(), {}, Write(elsewhere)).where == Where::kRemote);

  gate.fenced = true;
  for (const Router* r : {&strict, &lenient}) {
    const Router::Decision d = r->Route(t.get(), {}, Write(elsewhere));
    CHECK(d.where == Where::kError);
    CHECK(d.error.code() == StatusCode::kUnavailable);
    CHECK(d.error.message() == "node n1 is fenced: lost the majority");
  }
  Router::Decision d = strict.Route(t.get(), {}, Read(elsewhere));
  CHECK(d.where == Where::kError);
  CHECK(d.error.code() == StatusCode::kUnavailable);
  // With fenced_reads: this node's copy, marked possibly stale, never forwarded.
  d = lenient.Route(t.get(), {}, Read(elsewhere));
  CHECK(d.where == Where::kHere);
  CHECK(d.possibly_stale);

  gate.fenced = false;
  d = lenient.Route(t.get(), {}, Read(elsewhere));
  CHECK(d.where == Where::kRemote);
  CHECK_FALSE(d.possibly_stale);
}

TEST_CASE("Router::Route checks the write concern against the replicas and the timeout limit",
          "[unit][router]") {
  const auto t = ThreeNodes("n1");  // Replication factor 2: one replica.
  const Router router("n1", 4096, false, nullptr, false, 3);
  const std::string mine = KeyWith(*t, "n1", "n2");
  const std::string elsewhere = KeyWith(*t, "n3", "n2");
  CHECK(router.Route(t.get(), {}, Write(mine, 1)).where == Where::kHere);
  CHECK(router.Route(t.get(), {}, Write(elsewhere, 1, 60000)).where == Where::kRemote);

  Router::Decision d = router.Route(t.get(), {}, Write(elsewhere, 2));
  CHECK(d.where == Where::kError);
  CHECK(d.owner == nullptr);
  CHECK(d.error.code() == StatusCode::kInvalidArgument);
  CHECK(d.error.message() == "write_concern 2 is over the replication factor's 1 replicas");

  d = router.Route(t.get(), {}, Write(mine, 1, 60001));
  CHECK(d.where == Where::kError);
  CHECK(d.error.message() == "write_concern_timeout_ms 60001 is over the limit of 60000");

  // Standalone (no view): the node's own replication factor (3 here) sets the limit.
  const Router standalone("n1", 4096, true, nullptr, false, 3);
  CHECK(standalone.Route(nullptr, {}, Write("k", 2)).where == Where::kHere);
  CHECK(standalone.Route(nullptr, {}, Write("k", 3)).where == Where::kError);
}

}  // namespace
}  // namespace ringcache::internal

// Unit tests for ClusterView (lib/src/cluster_view.cc): validation, lookup, and the ring
// that every node and client derives from a view.

#include "ringcache/cluster_view.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/key_hash.h"

namespace ringcache {
namespace {

ClusterView ThreeNodes() {
  return ClusterView{
      .epoch = 3,
      .members = {{"n1", "127.0.0.1:7001"}, {"n2", "127.0.0.1:7002", 2}, {"n3", "127.0.0.1:7003"}},
      .replication_factor = 2,
      .vnodes_per_weight = 64};
}

HashRing MustBuildRing(const ClusterView& view) {
  Result<HashRing> ring = view.BuildRing();
  REQUIRE(ring.ok());
  return std::move(ring).value();
}

std::vector<std::string> OwnerIds(const HashRing& ring, uint64_t hash, size_t n) {
  std::vector<uint32_t> idx(n);
  const size_t got = ring.Owners(hash, idx);
  std::vector<std::string> ids;
  for (size_t i = 0; i < got; ++i) ids.push_back(ring.members()[idx[i]].id);
  return ids;
}

TEST_CASE("MemberStateName names every state", "[unit][cluster_view]") {
  CHECK(MemberStateName(MemberState::kServing) == "serving");
  CHECK(MemberStateName(MemberState::kJoining) == "joining");
  CHECK(MemberStateName(MemberState::kLeaving) == "leaving");
  CHECK(MemberStateName(MemberState::kFailed) == "failed");
  CHECK(MemberStateName(MemberState::kUnspecified) == "unspecified");
  CHECK(MemberStateName(static_cast<MemberState>(99)) == "unspecified");
}

TEST_CASE("ClusterView Normalize sorts members by id and Find looks them up",
          "[unit][cluster_view]") {
  ClusterView view{.epoch = 1,
                   .members = {{"n3", "c:1"}, {"n1", "a:1"}, {"n10", "d:1"}, {"n2", "b:1"}}};
  view.Normalize();
  std::vector<std::string> ids;
  for (const ClusterMember& m : view.members) ids.push_back(m.id);
  CHECK(ids == std::vector<std::string>{"n1", "n10", "n2", "n3"});  // byte order

  const ClusterMember* m = view.Find("n2");
  REQUIRE(m != nullptr);
  CHECK(m->address == "b:1");
  CHECK(view.Find("n4") == nullptr);
  CHECK(view.Find("") == nullptr);
}

TEST_CASE("ClusterView Validate accepts a good view and names what is wrong in a bad one",
          "[unit][cluster_view]") {
  CHECK(ThreeNodes().Validate().ok());
  CHECK(ClusterView{}.Validate().ok());  // no members yet is a valid (empty) view

  auto message = [](ClusterView view) {
    Status s = view.Validate();
    CHECK(s.code() == StatusCode::kInvalidArgument);
    return s.message();
  };
  ClusterView v = ThreeNodes();
  v.members[1].id = "";
  CHECK(message(v) == "ClusterView.members[1].id is empty");

  v = ThreeNodes();
  v.members[2].id = "n1";
  CHECK(message(v) ==
        "duplicate member id \"n1\" (ClusterView.members[0] and ClusterView.members[2])");

  v = ThreeNodes();
  v.members[0].address = "";
  CHECK(message(v) == "ClusterView.members[0].address is empty (member \"n1\")");

  v = ThreeNodes();
  v.members[2].weight = 0;
  CHECK(message(v) == "ClusterView.members[2].weight must be >= 1, got 0 (member \"n3\")");

  v = ThreeNodes();
  v.replication_factor = 0;
  CHECK(message(v).find("replication_factor") != std::string::npos);

  v = ThreeNodes();
  v.vnodes_per_weight = 0;
  CHECK(message(v).find("vnodes_per_weight") != std::string::npos);

  // The largest epoch leaves room for one more change: it never wraps.
  v = ThreeNodes();
  v.epoch = kMaxViewEpoch;
  CHECK(v.Validate().ok());
  v.epoch = kMaxViewEpoch + 1;
  CHECK(message(v) ==
        "ClusterView.epoch 9223372036854775808 is over the limit of "
        "9223372036854775807");
}

TEST_CASE("ClusterView BuildRing places only serving members, in view order, with weights",
          "[unit][cluster_view]") {
  ClusterView view = ThreeNodes();
  view.members.push_back({"n4", "127.0.0.1:7004", 1, MemberState::kJoining});
  view.members.push_back({"n5", "127.0.0.1:7005", 1, MemberState::kFailed});
  const HashRing ring = MustBuildRing(view);

  REQUIRE(ring.member_count() == 3);
  CHECK(ring.members()[0].id == "n1");
  CHECK(ring.members()[1].id == "n2");
  CHECK(ring.members()[1].weight == 2);
  CHECK(ring.members()[2].id == "n3");
  CHECK(ring.options().vnodes_per_weight == 64);
  CHECK(ring.point_count() == 64 * 4);

  const std::vector<const ClusterMember*> placed = view.ring_members();
  REQUIRE(placed.size() == 3);
  for (size_t i = 0; i < placed.size(); ++i) CHECK(placed[i]->id == ring.members()[i].id);

  // The same ring HashRing::Build gives for those members: routing is a pure function
  // of the view.
  Result<HashRing> direct = HashRing::Build({{"n1", 1}, {"n2", 2}, {"n3", 1}}, {64});
  REQUIRE(direct.ok());
  CHECK(HashRing::Diff(ring, *direct, 2).empty());
}

TEST_CASE("Equal views build rings that route every key identically", "[unit][cluster_view]") {
  ClusterView a = ThreeNodes();
  ClusterView b = ThreeNodes();
  // Addresses and the epoch do not move keys; only ids, weights and states do.
  b.epoch = 9;
  b.members[0].address = "10.0.0.1:1";
  const HashRing ra = MustBuildRing(a);
  const HashRing rb = MustBuildRing(b);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t h = HashKey("user:" + std::to_string(i));
    CHECK(OwnerIds(ra, h, 2) == OwnerIds(rb, h, 2));
  }

  // A member that joins takes keys only for itself.
  ClusterView c = ThreeNodes();
  c.members.push_back({"n4", "127.0.0.1:7004"});
  const HashRing rc = MustBuildRing(c);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t h = HashKey("user:" + std::to_string(i));
    const std::string before = OwnerIds(ra, h, 1)[0];
    const std::string after = OwnerIds(rc, h, 1)[0];
    if (before != after) CHECK(after == "n4");
  }
}

TEST_CASE("ClusterView BuildRing of a view without serving members is an empty ring",
          "[unit][cluster_view]") {
  ClusterView view{.epoch = 1, .members = {{"n1", "a:1", 1, MemberState::kJoining}}};
  const HashRing ring = MustBuildRing(view);
  CHECK(ring.member_count() == 0);
  CHECK(ring.Primary(HashKey("k")) == -1);

  ClusterView bad = ThreeNodes();
  bad.vnodes_per_weight = 0;
  CHECK(bad.BuildRing().status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("VersionFloor puts the epoch above 40 bits of writes and saturates",
          "[unit][cluster_view]") {
  CHECK(VersionFloor(0) == 0);
  CHECK(VersionFloor(1) == (uint64_t{1} << 40));
  CHECK(VersionFloor(7) == (uint64_t{7} << 40));
  CHECK(VersionFloor(8) > VersionFloor(7) + (uint64_t{1} << 39));
  CHECK(VersionFloor(kMaxVersionEpoch) == (kMaxVersionEpoch << 40));
  CHECK(VersionFloor(kMaxVersionEpoch + 5) == VersionFloor(kMaxVersionEpoch));
  CHECK(VersionFloor(UINT64_MAX) == VersionFloor(kMaxVersionEpoch));
}

}  // namespace
}  // namespace ringcache

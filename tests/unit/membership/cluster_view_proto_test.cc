// The one conversion of cluster views to and from the wire (proto/include/ringcache/proto/
// cluster_view.h), which the node, the cluster client and ringcache-cli share.
#include <catch2/catch.hpp>

#include "ringcache/proto/cluster_view.h"

namespace ringcache {
namespace {

v1::ClusterView TwoMembers() {
  v1::ClusterView in;
  in.set_epoch(7);
  in.set_replication_factor(2);
  in.set_vnodes_per_weight(16);
  for (const char* id : {"n2", "n1"}) {  // Out of order on purpose.
    v1::Member* m = in.add_members();
    m->set_id(id);
    m->set_address(std::string("127.0.0.1:") + (id[1] == '1' ? "7001" : "7002"));
    m->set_weight(1);
    m->set_state(v1::MEMBER_STATE_SERVING);
  }
  return in;
}

TEST_CASE("A view read from the wire is normalized and survives a round trip", "[unit][proto]") {
  Result<ClusterView> view = proto::FromProto(TwoMembers());
  REQUIRE(view.ok());
  CHECK(view->epoch == 7);
  CHECK(view->replication_factor == 2);
  CHECK(view->vnodes_per_weight == 16);
  REQUIRE(view->members.size() == 2);
  CHECK(view->members[0].id == "n1");  // Sorted by id.
  CHECK(view->members[0].address == "127.0.0.1:7001");
  CHECK(view->members[1].state == MemberState::kServing);

  v1::ClusterView wire;
  wire.add_members()->set_id("stale");  // Cleared first.
  proto::ToProto(*view, &wire);
  Result<ClusterView> again = proto::FromProto(wire);
  REQUIRE(again.ok());
  CHECK(*again == *view);
}

TEST_CASE("A member's cluster address survives the round trip and is what peers dial",
          "[unit][proto]") {
  v1::ClusterView in = TwoMembers();
  in.mutable_members(0)->set_cluster_address("10.0.0.2:7702");  // n2.
  Result<ClusterView> view = proto::FromProto(in);
  REQUIRE(view.ok());
  const ClusterMember* n1 = view->Find("n1");
  const ClusterMember* n2 = view->Find("n2");
  REQUIRE(n1 != nullptr);
  REQUIRE(n2 != nullptr);
  CHECK(n2->cluster_address == "10.0.0.2:7702");
  CHECK(n2->peer_address() == "10.0.0.2:7702");
  CHECK(n2->address == "127.0.0.1:7002");  // Clients still dial this one.
  CHECK(n1->cluster_address.empty());
  CHECK(n1->peer_address() == "127.0.0.1:7001");  // The plane shares the client port.

  v1::ClusterView wire;
  proto::ToProto(*view, &wire);
  Result<ClusterView> again = proto::FromProto(wire);
  REQUIRE(again.ok());
  CHECK(*again == *view);
}

TEST_CASE("A view from the wire that breaks a rule is INVALID_ARGUMENT naming it",
          "[unit][proto]") {
  v1::ClusterView dup = TwoMembers();
  dup.mutable_members(1)->set_id("n2");
  Result<ClusterView> view = proto::FromProto(dup);
  REQUIRE_FALSE(view.ok());
  CHECK(view.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(view.status().message(), Catch::Contains("duplicate member id"));

  v1::ClusterView no_rf = TwoMembers();
  no_rf.set_replication_factor(0);
  CHECK_THAT(proto::FromProto(no_rf).status().message(),
             Catch::Contains("replication_factor must be >= 1"));
}

TEST_CASE("A member state this build does not know is not on the ring", "[unit][proto]") {
  v1::ClusterView in = TwoMembers();
  in.mutable_members(0)->set_state(static_cast<v1::MemberState>(42));
  Result<ClusterView> view = proto::FromProto(in);
  REQUIRE(view.ok());
  CHECK(view->members[1].state == MemberState::kUnspecified);  // n2, sorted second.
  CHECK(view->ring_members().size() == 1);
}

}  // namespace
}  // namespace ringcache

// ringcache::ClusterView <-> ringcache.v1.ClusterView (the wire form of the Topology,
// WatchTopology, Join and PushView rpcs), for every C++ side of the protocol: the node,
// the cluster client and ringcache-cli convert views here and nowhere else, so that they
// agree on what a view received from the wire means. Header-only: include it where both
// ringcache::core and ringcache::proto are linked.
//
// Thread safety: pure functions.
#pragma once

#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::proto {

inline void ToProto(const ClusterMember& member, v1::Member* out) {
  out->set_id(member.id);
  out->set_address(member.address);
  out->set_weight(member.weight);
  // MemberState is numbered as ringcache.v1.MemberState.
  out->set_state(static_cast<v1::MemberState>(member.state));
  out->set_cluster_address(member.cluster_address);
}

// Fills `out` (cleared first) with `view`, members in the view's order.
inline void ToProto(const ClusterView& view, v1::ClusterView* out) {
  out->Clear();
  out->set_epoch(view.epoch);
  out->set_replication_factor(view.replication_factor);
  out->set_vnodes_per_weight(view.vnodes_per_weight);
  out->mutable_members()->Reserve(static_cast<int>(view.members.size()));
  for (const ClusterMember& m : view.members) ToProto(m, out->add_members());
}

// A member state this build does not know (the wire may carry any int) is kept as
// kUnspecified, which is not on the ring.
inline ClusterMember FromProto(const v1::Member& in) {
  ClusterMember member{.id = in.id(),
                       .address = in.address(),
                       .weight = in.weight(),
                       .state = MemberState::kUnspecified,
                       .cluster_address = in.cluster_address()};
  switch (in.state()) {
    case v1::MEMBER_STATE_SERVING:
    case v1::MEMBER_STATE_JOINING:
    case v1::MEMBER_STATE_LEAVING:
    case v1::MEMBER_STATE_FAILED:
      member.state = static_cast<MemberState>(in.state());
      break;
    default:
      member.state = MemberState::kUnspecified;
      break;
  }
  return member;
}

// The view `in` describes, normalized (members sorted by id) and validated
// (ClusterView::Validate's INVALID_ARGUMENT otherwise).
inline Result<ClusterView> FromProto(const v1::ClusterView& in) {
  ClusterView view{.epoch = in.epoch(),
                   .members = {},
                   .replication_factor = in.replication_factor(),
                   .vnodes_per_weight = in.vnodes_per_weight()};
  view.members.reserve(static_cast<size_t>(in.members_size()));
  for (const v1::Member& m : in.members()) view.members.push_back(FromProto(m));
  view.Normalize();
  if (Status s = view.Validate(); !s.ok()) return s;
  return view;
}

}  // namespace ringcache::proto

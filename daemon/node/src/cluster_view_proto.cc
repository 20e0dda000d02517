#include "cluster_view_proto.h"

#include <utility>

namespace ringcache::internal {

void ToProto(const ClusterMember& member, v1::Member* out) {
  out->set_id(member.id);
  out->set_address(member.address);
  out->set_weight(member.weight);
  // MemberState is numbered as ringcache.v1.MemberState.
  out->set_state(static_cast<v1::MemberState>(member.state));
}

void ToProto(const ClusterView& view, v1::ClusterView* out) {
  out->Clear();
  out->set_epoch(view.epoch);
  out->set_replication_factor(view.replication_factor);
  out->set_vnodes_per_weight(view.vnodes_per_weight);
  out->mutable_members()->Reserve(static_cast<int>(view.members.size()));
  for (const ClusterMember& m : view.members) ToProto(m, out->add_members());
}

ClusterMember FromProto(const v1::Member& in) {
  ClusterMember member{.id = in.id(), .address = in.address(), .weight = in.weight()};
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

Result<ClusterView> FromProto(const v1::ClusterView& in) {
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

}  // namespace ringcache::internal

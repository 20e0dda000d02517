#include "view_proto.h"

namespace ringcache::client::internal {

Result<ClusterView> ViewFromProto(const v1::ClusterView& in) {
  ClusterView view;
  view.epoch = in.epoch();
  view.replication_factor = in.replication_factor();
  view.vnodes_per_weight = in.vnodes_per_weight();
  view.members.reserve(static_cast<size_t>(in.members_size()));
  for (const v1::Member& m : in.members()) {
    ClusterMember member{.id = m.id(), .address = m.address(), .weight = m.weight()};
    // MemberState is numbered as the proto enum; newer states are not on the ring.
    const int state = static_cast<int>(m.state());
    member.state = state >= static_cast<int>(MemberState::kServing) &&
                           state <= static_cast<int>(MemberState::kFailed)
                       ? static_cast<MemberState>(state)
                       : MemberState::kUnspecified;
    view.members.push_back(std::move(member));
  }
  view.Normalize();
  if (Status s = view.Validate(); !s.ok()) return s;
  return view;
}

}  // namespace ringcache::client::internal

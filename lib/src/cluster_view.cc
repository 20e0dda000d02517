#include "ringcache/cluster_view.h"

#include <algorithm>
#include <unordered_map>

namespace ringcache {
namespace {

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string MemberLabel(size_t i) { return "ClusterView.members[" + std::to_string(i) + "]"; }

}  // namespace

std::string_view MemberStateName(MemberState state) {
  switch (state) {
    case MemberState::kServing:
      return "serving";
    case MemberState::kJoining:
      return "joining";
    case MemberState::kLeaving:
      return "leaving";
    case MemberState::kFailed:
      return "failed";
    case MemberState::kUnspecified:
      break;
  }
  return "unspecified";
}

void ClusterView::Normalize() {
  // Stable, so that a view with a duplicate id (which Validate rejects) still sorts the
  // same way everywhere.
  std::stable_sort(members.begin(), members.end(),
                   [](const ClusterMember& a, const ClusterMember& b) { return a.id < b.id; });
}

Status ClusterView::Validate() const {
  if (epoch > kMaxViewEpoch) {
    return Status::InvalidArgument("ClusterView.epoch " + std::to_string(epoch) +
                                   " is over the limit of " + std::to_string(kMaxViewEpoch));
  }
  if (replication_factor == 0) {
    return Status::InvalidArgument("ClusterView.replication_factor must be >= 1, got 0");
  }
  if (vnodes_per_weight == 0) {
    return Status::InvalidArgument("ClusterView.vnodes_per_weight must be >= 1, got 0");
  }
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    const ClusterMember& m = members[i];
    if (m.id.empty()) return Status::InvalidArgument(MemberLabel(i) + ".id is empty");
    auto [it, inserted] = seen.emplace(m.id, i);
    if (!inserted) {
      return Status::InvalidArgument("duplicate member id " + Quoted(m.id) + " (" +
                                     MemberLabel(it->second) + " and " + MemberLabel(i) + ")");
    }
    if (m.address.empty()) {
      return Status::InvalidArgument(MemberLabel(i) + ".address is empty (member " + Quoted(m.id) +
                                     ")");
    }
    if (m.weight == 0) {
      return Status::InvalidArgument(MemberLabel(i) + ".weight must be >= 1, got 0 (member " +
                                     Quoted(m.id) + ")");
    }
  }
  return Status::Ok();
}

const ClusterMember* ClusterView::Find(std::string_view id) const {
  // Views hold a handful of members: a linear scan beats keeping an index in sync.
  for (const ClusterMember& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::vector<const ClusterMember*> ClusterView::ring_members() const {
  std::vector<const ClusterMember*> out;
  out.reserve(members.size());
  for (const ClusterMember& m : members) {
    if (m.state == MemberState::kServing || m.state == MemberState::kLeaving) out.push_back(&m);
  }
  return out;
}

std::vector<const ClusterMember*> ClusterView::target_ring_members() const {
  std::vector<const ClusterMember*> out;
  out.reserve(members.size());
  for (const ClusterMember& m : members) {
    if (m.state == MemberState::kServing || m.state == MemberState::kJoining) out.push_back(&m);
  }
  return out;
}

bool ClusterView::in_transition() const {
  return std::any_of(members.begin(), members.end(), [](const ClusterMember& m) {
    return m.state == MemberState::kJoining || m.state == MemberState::kLeaving;
  });
}

namespace {

Result<HashRing> BuildOver(const std::vector<const ClusterMember*>& on_ring,
                           uint32_t vnodes_per_weight) {
  std::vector<RingMember> ring;
  ring.reserve(on_ring.size());
  for (const ClusterMember* m : on_ring) ring.push_back(RingMember{m->id, m->weight});
  return HashRing::Build(std::move(ring), RingOptions{.vnodes_per_weight = vnodes_per_weight});
}

}  // namespace

Result<HashRing> ClusterView::BuildRing() const {
  return BuildOver(ring_members(), vnodes_per_weight);
}

Result<HashRing> ClusterView::BuildTargetRing() const {
  return BuildOver(target_ring_members(), vnodes_per_weight);
}

}  // namespace ringcache

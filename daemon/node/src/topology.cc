#include "topology.h"

#include <algorithm>
#include <string>
#include <utility>

#include "ringcache/key_hash.h"

namespace ringcache::internal {
// Fields are length- or NUL-separated, so no two views share a text.
uint64_t ViewDigest(const ClusterView& view) {
  std::string text = std::to_string(view.epoch) + "/" + std::to_string(view.replication_factor) +
                     "/" + std::to_string(view.vnodes_per_weight);
  for (const ClusterMember& m : view.members) {
    text += '\0';
    text += std::to_string(m.id.size()) + ":" + m.id + std::to_string(m.address.size()) + ":" +
            m.address + "/" + std::to_string(m.weight) + "/" +
            std::to_string(static_cast<int>(m.state));
    // Only when set, so that a view without cluster ports has the digest it had before
    // they existed: members of two builds compare digests during a rolling upgrade.
    if (!m.cluster_address.empty()) {
      text += "/c" + std::to_string(m.cluster_address.size()) + ":" + m.cluster_address;
    }
  }
  const uint64_t digest = HashBytes(text);
  return digest == 0 ? 1 : digest;
}

Result<std::shared_ptr<const Topology>> Topology::Make(ClusterView view, std::string self_id) {
  auto topology = std::make_shared<Topology>();
  topology->view = std::move(view);
  topology->view.Normalize();
  if (Status s = topology->view.Validate(); !s.ok()) return s;
  if (topology->view.replication_factor > kMaxReplicationFactor) {
    return Status::InvalidArgument("ClusterView.replication_factor must be at most " +
                                   std::to_string(kMaxReplicationFactor) + ", got " +
                                   std::to_string(topology->view.replication_factor));
  }
  Result<HashRing> ring = topology->view.BuildRing();
  if (!ring.ok()) return ring.status();
  topology->ring = std::move(ring).value();
  // Pointers into topology->view.members: the view is not modified after this.
  topology->ring_members = topology->view.ring_members();
  for (size_t i = 0; i < topology->ring_members.size(); ++i) {
    if (topology->ring_members[i]->id == self_id) topology->self = static_cast<int>(i);
  }
  Result<HashRing> target = topology->view.BuildTargetRing();
  if (!target.ok()) return target.status();
  topology->target_ring = std::move(target).value();
  topology->target_ring_members = topology->view.target_ring_members();
  for (size_t i = 0; i < topology->target_ring_members.size(); ++i) {
    if (topology->target_ring_members[i]->id == self_id) {
      topology->target_self = static_cast<int>(i);
    }
  }
  topology->self_member = topology->view.Find(self_id);
  topology->self_id = std::move(self_id);
  topology->digest = ViewDigest(topology->view);
  return std::shared_ptr<const Topology>(std::move(topology));
}

size_t Topology::Owners(uint64_t hash, std::span<uint32_t> out) const {
  const size_t n = std::min<size_t>(out.size(), view.replication_factor);
  return ring.Owners(hash, out.first(n));
}

const ClusterMember* Topology::Primary(uint64_t hash) const {
  const int primary = ring.Primary(hash);
  return primary < 0 ? nullptr : ring_members[static_cast<size_t>(primary)];
}

bool Topology::IsPrimary(uint64_t hash) const { return self >= 0 && ring.Primary(hash) == self; }

bool Topology::IsOwner(uint64_t hash) const {
  if (self < 0) return false;
  uint32_t owners[kMaxReplicationFactor];  // No allocation on the routing path.
  const size_t n = Owners(hash, owners);
  for (size_t i = 0; i < n; ++i) {
    if (owners[i] == static_cast<uint32_t>(self)) return true;
  }
  return false;
}

}  // namespace ringcache::internal

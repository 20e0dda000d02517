#include "routing_table.h"

#include <algorithm>
#include <utility>

namespace ringcache::client::internal {

Result<std::shared_ptr<const RoutingTable>> RoutingTable::Build(ClusterView view) {
  Result<HashRing> ring = view.BuildRing();
  if (!ring.ok()) return ring.status();
  return std::shared_ptr<const RoutingTable>(
      new RoutingTable(std::move(view), std::move(ring).value()));
}

// view_ is initialized (moved in) before ring_members_ points into it: members are
// declared in that order.
RoutingTable::RoutingTable(ClusterView view, HashRing ring)
    : view_(std::move(view)), ring_(std::move(ring)), ring_members_(view_.ring_members()) {}

std::vector<uint32_t> RoutingTable::Owners(uint64_t key_hash) const {
  const size_t n = std::min<size_t>(view_.replication_factor, ring_.member_count());
  std::vector<uint32_t> owners(n);
  owners.resize(ring_.Owners(key_hash, owners));
  return owners;
}

std::vector<std::string> RoutingTable::addresses() const {
  std::vector<std::string> out;
  out.reserve(view_.members.size());
  for (const ClusterMember& m : view_.members) out.push_back(m.address);
  return out;
}

}  // namespace ringcache::client::internal

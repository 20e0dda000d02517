// RoutingTable: one cluster view and the ring built from it, as the client routes by it.
//
// Built once per adopted view and published as std::shared_ptr<const RoutingTable>: a
// call takes the current table and uses it throughout, so one call never mixes two
// views.
//
// Thread safety: immutable after Build(); any number of threads may use it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/status.h"

namespace ringcache::client::internal {

class RoutingTable {
 public:
  // The ring of `view` (which must be valid). Fails as ClusterView::BuildRing does.
  static Result<std::shared_ptr<const RoutingTable>> Build(ClusterView view);

  // Not copyable: ring_members_ points into view_.
  RoutingTable(const RoutingTable&) = delete;
  RoutingTable& operator=(const RoutingTable&) = delete;

  const ClusterView& view() const { return view_; }
  uint64_t epoch() const { return view_.epoch; }
  // True when no member is on the ring (no key has an owner).
  bool empty() const { return ring_.member_count() == 0; }

  // The ring member indexes of the key's owners, primary first: min(replication_factor,
  // ring size) of them (none on an empty ring).
  std::vector<uint32_t> Owners(uint64_t key_hash) const;
  // Address and id of ring member `i` (an index from Owners()).
  const std::string& address(uint32_t i) const { return ring_members_[i]->address; }
  const std::string& id(uint32_t i) const { return ring_members_[i]->id; }

  // Every member's address (serving or not), in view order.
  std::vector<std::string> addresses() const;

 private:
  RoutingTable(ClusterView view, HashRing ring);

  const ClusterView view_;
  const HashRing ring_;
  // ring_members_[i] describes ring member i; points into view_.members.
  const std::vector<const ClusterMember*> ring_members_;
};

}  // namespace ringcache::client::internal

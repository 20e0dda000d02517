// Topology: an immutable snapshot of the cluster view with its ring, as every routing
// decision of a node reads it. Membership publishes a new one (shared_ptr swap) for every
// view it adopts; readers load the pointer once per operation and route on that snapshot.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"

namespace ringcache::internal {

struct Topology {
  ClusterView view;
  HashRing ring;
  // ring member index -> member (points into view.members).
  std::vector<const ClusterMember*> ring_members;
  // This node's ring member index, or -1 if it is not on the ring.
  int self = -1;
  std::string self_id;

  // Builds the snapshot; fails as ClusterView::BuildRing does.
  static Result<std::shared_ptr<const Topology>> Make(ClusterView view, std::string self_id);

  uint32_t replication_factor() const { return view.replication_factor; }
  uint64_t epoch() const { return view.epoch; }

  // Owners of `hash` (ring member indexes, primary first): min(rf, ring size) of them.
  size_t Owners(uint64_t hash, std::span<uint32_t> out) const;
  // The primary of `hash`, or nullptr on an empty ring.
  const ClusterMember* Primary(uint64_t hash) const;
  bool IsPrimary(uint64_t hash) const;  // self is owner 0
  bool IsOwner(uint64_t hash) const;    // self is among the first rf owners
};

}  // namespace ringcache::internal

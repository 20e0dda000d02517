// Topology: an immutable snapshot of the cluster view with its ring, as every routing
// decision of a node reads it. Membership publishes a new one (shared_ptr swap) for every
// view it adopts; readers load the pointer once per operation and route on that snapshot.
//
// Thread safety: immutable once Make() returns; any number of threads may read it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"

namespace ringcache::internal {

// Topology::digest of `view`, which must be normalized (ClusterView::Normalize).
uint64_t ViewDigest(const ClusterView& view);

struct Topology {
  // The most owners a key may have (NodeOptions::replication_factor's limit too).
  static constexpr uint32_t kMaxReplicationFactor = 16;

  ClusterView view;
  HashRing ring;
  // ring member index -> member (points into view.members).
  std::vector<const ClusterMember*> ring_members;
  // This node's ring member index, or -1 if it is not on the ring.
  int self = -1;
  std::string self_id;
  // The target ring (ClusterView::BuildTargetRing: JOINING members in, LEAVING members
  // out) and its members, and this node's index on it (-1 if not on it). Equal to ring /
  // ring_members / self when !view.in_transition().
  HashRing target_ring;
  std::vector<const ClusterMember*> target_ring_members;
  int target_self = -1;
  // This node's entry in the view, or nullptr if it is not in it.
  const ClusterMember* self_member = nullptr;
  // XXH3 of the normalized view (epoch, settings, and every member's id, address, weight
  // and state): equal views have equal digests. Never 0. Heartbeats carry it so that two
  // different views of one epoch are noticed (HeartbeatRequest.view_digest).
  uint64_t digest = 1;

  // Builds the snapshot (normalizing the view: members sorted by id); fails as
  // ClusterView::Validate and BuildRing do, or if replication_factor is over
  // kMaxReplicationFactor. A Topology is not copyable in practice (ring_members points into
  // view): share the snapshot by pointer.
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

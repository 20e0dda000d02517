// ClusterView: who is in a ringcache cluster, and the ring that follows from it.
//
// The ring is a pure function of the view: every node and every smart client that holds
// the view with the same epoch builds the same HashRing and so routes every key the same
// way. Only members in a state that owns ranges (kServing, kLeaving) are placed on the
// ring. While members join or leave, the view also defines a target ring (kServing and
// kJoining members): the ring the cluster moves to once the transition completes, whose
// Diff with the ring drives the migration (docs/design/failover.md).
//
//   ClusterView view{.epoch = 7, .members = {{"a", "10.0.0.1:7700"}, {"b", "10.0.0.2:7700"}}};
//   Result<HashRing> ring = view.BuildRing();   // members in view order
//   uint32_t owners[2];
//   size_t n = ring->Owners(HashKey("user:42"), owners);   // primary, then replica
//
// Plain value type; thread safety as for any value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/hash_ring.h"
#include "ringcache/status.h"

namespace ringcache {

// Numbered as ringcache.v1.MemberState.
enum class MemberState : int {
  kUnspecified = 0,
  kServing = 1,  // On the ring: owns and serves its ranges.
  kJoining = 2,  // Receiving its ranges: not on the ring, on the target ring.
  kLeaving = 3,  // Streaming its ranges away: on the ring, not on the target ring.
  kFailed = 4,   // Declared failed by a majority: on neither ring.
};

// "serving", "joining", "leaving", "failed", "unspecified".
std::string_view MemberStateName(MemberState state);

// Versions written in a view of epoch E are above VersionFloor(E) = E << 40 (epochs above
// kMaxVersionEpoch saturate), so a key's version grows across failover, rejoin, migration
// and restart: every node raises its cache's floor to it when it adopts a view
// (Cache::RaiseVersionFloor; docs/design/operations.md, "Versions that never repeat").
inline constexpr int kVersionEpochShift = 40;
inline constexpr uint64_t kMaxVersionEpoch = (uint64_t{1} << (64 - kVersionEpochShift)) - 1;
constexpr uint64_t VersionFloor(uint64_t epoch) {
  return (epoch < kMaxVersionEpoch ? epoch : kMaxVersionEpoch) << kVersionEpochShift;
}

// The largest epoch a view may carry. A view change adds one, so an epoch never wraps to
// 0 (which would make every later view look older than the one held). Validate refuses
// more.
inline constexpr uint64_t kMaxViewEpoch = (uint64_t{1} << 63) - 1;

struct ClusterMember {
  std::string id;       // Unique, non-empty.
  std::string address;  // HOST:PORT that clients (and, without cluster_address, nodes) dial.
  uint32_t weight = 1;  // >= 1.
  MemberState state = MemberState::kServing;
  // HOST:PORT of the member's cluster plane (its --cluster-listen), which the other nodes
  // dial for membership, replication and forwarded calls; empty: the plane shares
  // `address`.
  std::string cluster_address = {};

  // The address other members dial: cluster_address, or address without one.
  const std::string& peer_address() const {
    return cluster_address.empty() ? address : cluster_address;
  }

  friend bool operator==(const ClusterMember&, const ClusterMember&) = default;
};

struct ClusterView {
  uint64_t epoch = 0;
  std::vector<ClusterMember> members;  // Sorted by id (Normalize() sorts).
  uint32_t replication_factor = 2;     // Owners per key, >= 1.
  uint32_t vnodes_per_weight = 160;

  friend bool operator==(const ClusterView&, const ClusterView&) = default;

  // Sorts members by id.
  void Normalize();
  // INVALID_ARGUMENT naming the problem: an epoch over kMaxViewEpoch, an empty or
  // duplicate id, an empty address, a weight or replication_factor or vnodes_per_weight
  // of 0.
  Status Validate() const;

  // The member with this id, or nullptr.
  const ClusterMember* Find(std::string_view id) const;

  // The ring over the members that own ranges (state kServing or kLeaving), in members
  // order; ring member i is ring_members()[i]. Fails as HashRing::Build does.
  Result<HashRing> BuildRing() const;
  // The members BuildRing() places on the ring, in ring member order.
  std::vector<const ClusterMember*> ring_members() const;

  // The ring after the current transition: members in state kServing or kJoining.
  // Equal to BuildRing() when no member is joining or leaving.
  Result<HashRing> BuildTargetRing() const;
  std::vector<const ClusterMember*> target_ring_members() const;
  // True if some member is kJoining or kLeaving.
  bool in_transition() const;
};

}  // namespace ringcache

// HashRing: consistent hashing with virtual nodes.
//
// Each member contributes `vnodes_per_weight × weight` points on the 64-bit hash circle,
// point i of member `id` being XXH3-64(id) with seed i. A key hash belongs to the first
// point at or after it going clockwise; Owners() continues clockwise to collect the first
// n *distinct* members: owner 0 is the primary, the rest are replicas in order.
//
// A HashRing is an immutable value built from a member list: a new membership builds a
// new ring (swap a std::shared_ptr<const HashRing> to publish it). Two rings diff into
// the arcs whose owner lists change; that diff drives rebalancing.
//
// Lookups (Primary, Owners) do not allocate: a 2^16-entry index on the top hash bits
// narrows the search to a few points.
//
// Thread safety: immutable after Build(); any number of threads may call const methods.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/key_hash.h"
#include "ringcache/status.h"

namespace ringcache {

struct RingMember {
  std::string id;       // Unique, non-empty. Placement depends only on id and weight.
  uint32_t weight = 1;  // Relative capacity: points = vnodes_per_weight × weight. >= 1.
};

struct RingOptions {
  // Points per unit of weight. 160 (as ketama) puts each node's share within about
  // ±8% (one standard deviation, 1/sqrt(160)) of its ideal share.
  uint32_t vnodes_per_weight = 160;
};

// An arc whose owner list differs between two rings.
struct RingChange {
  HashRange range;
  std::vector<std::string> old_owners;  // Owners in the old ring, primary first.
  std::vector<std::string> new_owners;  // Owners in the new ring, primary first.
};

class HashRing {
 public:
  // Maximum number of points a ring may hold (members × vnodes × weight).
  static constexpr size_t kMaxPoints = size_t{1} << 24;

  // An empty ring: no members, every lookup returns no owner.
  HashRing();

  // Builds a ring. Fails with INVALID_ARGUMENT on an empty or duplicate id, a weight of
  // 0, vnodes_per_weight of 0, or more than kMaxPoints points. An empty member list
  // gives an empty ring. Members are kept in the order given; member indexes refer to it.
  static Result<HashRing> Build(std::vector<RingMember> members, RingOptions options = {});

  // Index of the key's primary owner, or -1 on an empty ring.
  int Primary(uint64_t key_hash) const;

  // Writes the indexes of the first min(out.size(), member_count()) distinct members
  // clockwise from key_hash into out, primary first; returns how many it wrote.
  size_t Owners(uint64_t key_hash, std::span<uint32_t> out) const;

  const std::vector<RingMember>& members() const { return members_; }
  size_t member_count() const { return members_.size(); }
  size_t point_count() const { return point_hashes_.size(); }
  const RingOptions& options() const { return options_; }

  // Fraction of the hash space whose primary is each member (sums to 1), in member order.
  std::vector<double> PrimaryShares() const;

  // The arcs each of which has the same first `n` owners throughout, in ring order: the
  // full partition of the circle by owner list. Used for stats and migration plans.
  struct Arc {
    HashRange range;
    std::vector<uint32_t> owners;  // member indexes, primary first
  };
  std::vector<Arc> Arcs(size_t n) const;

  // The arcs whose first `n` owners (as member ids, in order) differ between `from` and
  // `to`. Adjacent arcs with the same old and new owner lists are merged. Empty when the
  // rings place every key identically.
  static std::vector<RingChange> Diff(const HashRing& from, const HashRing& to, size_t n);

 private:
  // The index covers the top kIndexBits bits of a hash.
  static constexpr int kIndexBits = 16;

  // Position in point_hashes_ of the first point with hash >= h (wrapping to 0).
  // REQUIRES: point_count() > 0.
  size_t Successor(uint64_t h) const;

  // Constant after construction.
  std::vector<RingMember> members_;
  RingOptions options_;
  // Sorted by (hash, member id); equal hashes keep only the first as the owner of the arc.
  std::vector<uint64_t> point_hashes_;
  std::vector<uint32_t> point_members_;  // point_members_[i] owns point_hashes_[i].
  // index_[b] = position of the first point with hash >= b << (64 - kIndexBits), for
  // b in [0, 2^kIndexBits], index_[2^kIndexBits] = point_count() being a sentinel. Empty
  // on an empty ring.
  std::vector<uint32_t> index_;
};

}  // namespace ringcache

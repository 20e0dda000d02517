// ReplRangeSet: a set of hash ranges (arcs of the ring) with a fast membership test.
//
// A replication link carries the arcs where this node is the primary and the replica is
// among the other owners: a few hundred arcs with 160 points per node. A full sync and
// the replica's "drop what you hold in these ranges" test every key of the cache against
// them, so Contains() is a binary search, not a scan.
//
// Immutable after construction; any number of threads may call const methods.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ringcache/key_hash.h"

namespace ringcache::internal {

class ReplRangeSet {
 public:
  ReplRangeSet() = default;
  // Ranges in any order; they may touch and may include the full ring or a wrapping arc.
  explicit ReplRangeSet(std::span<const HashRange> ranges);

  bool Contains(uint64_t hash) const;
  bool empty() const { return !full_ && pieces_.empty(); }
  // The ranges as given, adjacent ones merged (for FullSyncBegin and logs).
  const std::vector<HashRange>& ranges() const { return merged_; }

  // True if every hash `other` contains is contained here (other ⊆ this). A link whose
  // new ranges are covered by its old ones needs no new full sync.
  bool Covers(const ReplRangeSet& other) const;

  // Sum of the ranges' sizes as a fraction of the ring (for logs).
  double Share() const;

 private:
  // True if every hash of (lo, hi] is contained here. REQUIRES: lo < hi.
  bool CoversPiece(uint64_t lo, uint64_t hi) const;

  bool full_ = false;
  // Non-wrapping pieces (lo, hi], lo < hi, sorted by lo, non-overlapping. A wrapping arc
  // (s, e] with s > e is split into (s, UINT64_MAX] and the hashes <= e, kept as
  // zero_to_ (inclusive) because (x, e] cannot express 0.
  std::vector<HashRange> pieces_;
  bool has_zero_to_ = false;
  uint64_t zero_to_ = 0;
  std::vector<HashRange> merged_;
};

}  // namespace ringcache::internal

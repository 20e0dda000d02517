#include "repl_range_set.h"

#include <algorithm>

namespace ringcache::internal {

ReplRangeSet::ReplRangeSet(std::span<const HashRange> ranges) {
  for (const HashRange& r : ranges) {
    if (r.start == r.end) {
      full_ = true;
      continue;
    }
    if (r.start < r.end) {
      pieces_.push_back(r);
    } else {
      if (r.start != UINT64_MAX) pieces_.push_back({r.start, UINT64_MAX});
      has_zero_to_ = true;
      zero_to_ = std::max(zero_to_, r.end);
    }
  }
  if (full_) {
    pieces_.clear();
    has_zero_to_ = false;
    merged_ = {HashRange::Full()};
    return;
  }
  std::sort(pieces_.begin(), pieces_.end(),
            [](const HashRange& a, const HashRange& b) { return a.start < b.start; });
  // Merge overlapping and touching pieces: (a, b] and (b, c] make (a, c].
  std::vector<HashRange> out;
  for (const HashRange& p : pieces_) {
    if (!out.empty() && p.start <= out.back().end) {
      out.back().end = std::max(out.back().end, p.end);
    } else {
      out.push_back(p);
    }
  }
  pieces_ = std::move(out);
  // The ranges for the wire: the pieces, and the [0, zero_to_] part glued to a piece ending
  // at UINT64_MAX (making it a wrapping arc) or sent as (UINT64_MAX, zero_to_]. Pieces
  // may overlap the [0, zero_to_] part; that is harmless.
  merged_ = pieces_;
  if (has_zero_to_) {
    if (!merged_.empty() && merged_.back().end == UINT64_MAX) {
      if (merged_.back().start <= zero_to_) {
        merged_ = {HashRange::Full()};  // (a, MAX] and [0, z] with a <= z: everything.
      } else {
        merged_.back().end = zero_to_;  // (a, z], wrapping.
      }
    } else {
      merged_.push_back({UINT64_MAX, zero_to_});
    }
  }
}

bool ReplRangeSet::Contains(uint64_t hash) const {
  if (full_) return true;
  if (has_zero_to_ && hash <= zero_to_) return true;
  // The last piece with start < hash.
  auto it = std::lower_bound(pieces_.begin(), pieces_.end(), hash,
                             [](const HashRange& r, uint64_t h) { return r.start < h; });
  if (it == pieces_.begin()) return false;
  --it;
  return hash <= it->end;
}

bool ReplRangeSet::CoversPiece(uint64_t lo, uint64_t hi) const {
  if (full_) return true;
  // The [0, zero_to_] part covers the start of (lo, hi]; a single merged piece must cover
  // the rest (pieces are merged, so no two of them together cover what one does not).
  if (has_zero_to_) lo = std::max(lo, zero_to_);
  if (lo >= hi) return true;
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), lo,
                             [](uint64_t h, const HashRange& r) { return h < r.start; });
  if (it == pieces_.begin()) return false;
  --it;  // The last piece with start <= lo.
  return it->end >= hi;
}

bool ReplRangeSet::Covers(const ReplRangeSet& other) const {
  if (full_) return true;
  if (other.full_) return false;
  if (other.has_zero_to_) {
    // Hash 0 is only ever in a [0, z] part.
    if (!has_zero_to_) return false;
    if (other.zero_to_ > zero_to_ && !CoversPiece(zero_to_, other.zero_to_)) return false;
  }
  for (const HashRange& p : other.pieces_) {
    if (!CoversPiece(p.start, p.end)) return false;
  }
  return true;
}

double ReplRangeSet::Share() const {
  if (full_) return 1.0;
  long double total = 0;
  for (const HashRange& p : pieces_) total += static_cast<long double>(p.end - p.start);
  if (has_zero_to_) total += static_cast<long double>(zero_to_) + 1;
  return static_cast<double>(total / 18446744073709551616.0L);
}

}  // namespace ringcache::internal

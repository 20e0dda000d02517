#include "ringcache/hash_ring.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <string>
#include <unordered_map>
#include <utility>

#include "xxhash_inline.h"

namespace ringcache {
namespace {

// A maximal run of adjacent elementary arcs that share one key.
struct Run {
  HashRange range;
  std::vector<uint32_t> key;
};

// Partitions the circle cut at `ends` (sorted ascending, distinct, non-empty) into the
// elementary arcs (ends[i-1], ends[i]] (the first one wrapping from ends.back()), asks
// `key_of(end, &key)` for each arc's key, and merges adjacent arcs with equal keys,
// including across the wrap-around. Runs come in ring order, the first one being the arc
// that ends at or after ends[0]; a single run covers the whole ring (HashRange::Full()).
template <typename KeyFn>
std::vector<Run> PartitionCircle(const std::vector<uint64_t>& ends, KeyFn key_of) {
  assert(!ends.empty());
  std::vector<Run> runs;
  std::vector<uint32_t> key;
  uint64_t start = ends.back();
  for (uint64_t end : ends) {
    key.clear();
    key_of(end, &key);
    if (!runs.empty() && runs.back().key == key) {
      runs.back().range.end = end;
    } else {
      runs.push_back(Run{HashRange{start, end}, key});
    }
    start = end;
  }
  if (runs.size() > 1 && runs.front().key == runs.back().key) {
    runs.front().range.start = runs.back().range.start;
    runs.pop_back();
  }
  if (runs.size() == 1) runs.front().range = HashRange::Full();
  return runs;
}

// Sorted, de-duplicated copy of `hashes` (already sorted).
std::vector<uint64_t> DistinctSorted(const std::vector<uint64_t>& hashes) {
  std::vector<uint64_t> out(hashes);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

HashRing::HashRing() = default;

Result<HashRing> HashRing::Build(std::vector<RingMember> members, RingOptions options) {
  if (options.vnodes_per_weight == 0) {
    return Status::InvalidArgument("RingOptions.vnodes_per_weight must be >= 1, got 0");
  }
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(members.size());
  uint64_t total_points = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const RingMember& m = members[i];
    if (m.id.empty()) {
      return Status::InvalidArgument("RingMember.id is empty (member #" + std::to_string(i) + ")");
    }
    auto [it, inserted] = seen.emplace(m.id, i);
    if (!inserted) {
      return Status::InvalidArgument("duplicate RingMember.id " + Quoted(m.id) + " (members #" +
                                     std::to_string(it->second) + " and #" + std::to_string(i) +
                                     ")");
    }
    if (m.weight == 0) {
      return Status::InvalidArgument("RingMember.weight of " + Quoted(m.id) +
                                     " must be >= 1, got 0");
    }
    // Both factors are < 2^32, so the product fits; compare before adding to not overflow.
    const uint64_t points = uint64_t{options.vnodes_per_weight} * m.weight;
    if (points > kMaxPoints - total_points) {
      return Status::InvalidArgument(
          "ring would have more than kMaxPoints (" + std::to_string(kMaxPoints) +
          ") points: RingOptions.vnodes_per_weight × RingMember.weight is too large (at member " +
          Quoted(m.id) + ")");
    }
    total_points += points;
  }
  seen.clear();  // Holds views into members, which are about to move.

  HashRing ring;
  ring.members_ = std::move(members);
  ring.options_ = options;
  if (ring.members_.empty()) return ring;

  struct Point {
    uint64_t hash;
    uint32_t member;
  };
  std::vector<Point> points;
  points.reserve(total_points);
  for (size_t m = 0; m < ring.members_.size(); ++m) {
    const std::string& id = ring.members_[m].id;
    const uint64_t n = uint64_t{options.vnodes_per_weight} * ring.members_[m].weight;
    for (uint64_t i = 0; i < n; ++i) {
      points.push_back(Point{internal::Xxh3(id, i), static_cast<uint32_t>(m)});
    }
  }
  // Ties between equal hashes are broken by member id, so placement does not depend on
  // the order members were given in.
  const std::vector<RingMember>& ms = ring.members_;
  std::sort(points.begin(), points.end(), [&ms](const Point& a, const Point& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return ms[a.member].id < ms[b.member].id;
  });

  ring.point_hashes_.resize(points.size());
  ring.point_members_.resize(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    ring.point_hashes_[i] = points[i].hash;
    ring.point_members_[i] = points[i].member;
  }

  constexpr size_t kBuckets = size_t{1} << kIndexBits;
  ring.index_.resize(kBuckets + 1);
  size_t pos = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    const uint64_t bucket_start = uint64_t{b} << (64 - kIndexBits);
    while (pos < ring.point_hashes_.size() && ring.point_hashes_[pos] < bucket_start) ++pos;
    ring.index_[b] = static_cast<uint32_t>(pos);
  }
  ring.index_[kBuckets] = static_cast<uint32_t>(ring.point_hashes_.size());
  return ring;
}

size_t HashRing::Successor(uint64_t h) const {
  assert(!point_hashes_.empty());
  const auto bucket = static_cast<size_t>(h >> (64 - kIndexBits));
  size_t lo = index_[bucket];
  const size_t hi = index_[bucket + 1];
  // Every point in [lo, hi) shares h's top bits and the point at hi (if any) is above h,
  // so the successor is in [lo, hi]. Buckets hold ~points/65536 points: scan them,
  // unless a huge ring makes a bucket long.
  const uint64_t* hashes = point_hashes_.data();
  if (hi - lo <= 16) {
    while (lo < hi && hashes[lo] < h) ++lo;
  } else {
    lo = static_cast<size_t>(std::lower_bound(hashes + lo, hashes + hi, h) - hashes);
  }
  return lo == point_hashes_.size() ? 0 : lo;
}

int HashRing::Primary(uint64_t key_hash) const {
  if (point_hashes_.empty()) return -1;
  return static_cast<int>(point_members_[Successor(key_hash)]);
}

size_t HashRing::Owners(uint64_t key_hash, std::span<uint32_t> out) const {
  const size_t want = std::min(out.size(), members_.size());
  if (want == 0) return 0;
  const size_t n_points = point_hashes_.size();
  size_t pos = Successor(key_hash);
  size_t found = 0;
  // Every member has at least one point, so one lap finds all of them.
  for (size_t step = 0; step < n_points; ++step) {
    const uint32_t m = point_members_[pos];
    bool dup = false;
    for (size_t j = 0; j < found; ++j) {
      if (out[j] == m) {
        dup = true;
        break;
      }
    }
    if (!dup) {
      out[found++] = m;
      if (found == want) break;
    }
    if (++pos == n_points) pos = 0;
  }
  return found;
}

std::vector<double> HashRing::PrimaryShares() const {
  std::vector<double> shares(members_.size(), 0.0);
  const size_t n = point_hashes_.size();
  if (n == 0) return shares;
  if (point_hashes_.front() == point_hashes_.back()) {  // One distinct point owns it all.
    shares[point_members_[0]] = 1.0;
    return shares;
  }
  // Point i owns (point_hashes_[i-1], point_hashes_[i]], point 0 the arc wrapping from the
  // last point; a point sharing its predecessor's hash owns nothing. long double holds a
  // 64-bit arc length exactly.
  std::vector<long double> owned(members_.size(), 0.0L);
  uint64_t prev = point_hashes_[n - 1];
  for (size_t i = 0; i < n; ++i) {
    owned[point_members_[i]] += static_cast<long double>(point_hashes_[i] - prev);
    prev = point_hashes_[i];
  }
  constexpr long double kRing = 18446744073709551616.0L;  // 2^64
  for (size_t m = 0; m < shares.size(); ++m) shares[m] = static_cast<double>(owned[m] / kRing);
  return shares;
}

std::vector<HashRing::Arc> HashRing::Arcs(size_t n) const {
  const size_t width = std::min(n, members_.size());
  std::vector<Arc> arcs;
  if (width == 0) {
    arcs.push_back(Arc{HashRange::Full(), {}});
    return arcs;
  }
  std::vector<uint32_t> buf(width);
  std::vector<Run> runs =
      PartitionCircle(DistinctSorted(point_hashes_), [&](uint64_t end, std::vector<uint32_t>* key) {
        const size_t got = Owners(end, buf);
        key->assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
      });
  arcs.reserve(runs.size());
  for (Run& r : runs) arcs.push_back(Arc{r.range, std::move(r.key)});
  return arcs;
}

std::vector<RingChange> HashRing::Diff(const HashRing& from, const HashRing& to, size_t n) {
  std::vector<uint64_t> ends;
  ends.reserve(from.point_hashes_.size() + to.point_hashes_.size());
  std::merge(from.point_hashes_.begin(), from.point_hashes_.end(), to.point_hashes_.begin(),
             to.point_hashes_.end(), std::back_inserter(ends));
  ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
  std::vector<RingChange> changes;
  if (ends.empty()) return changes;  // Both rings empty: nothing is owned either way.

  const size_t old_width = std::min(n, from.member_count());
  const size_t new_width = std::min(n, to.member_count());
  std::vector<uint32_t> buf(std::max(old_width, new_width));
  // No point of either ring lies strictly inside an elementary arc (prev, end], so every
  // hash in it has the same successor point as `end` in both rings. The key of an arc is
  // its old owner indexes followed by its new owner indexes; equal keys mean equal lists.
  std::vector<Run> runs = PartitionCircle(ends, [&](uint64_t end, std::vector<uint32_t>* key) {
    const size_t old_got = from.Owners(end, std::span(buf.data(), old_width));
    key->assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(old_got));
    const size_t new_got = to.Owners(end, std::span(buf.data(), new_width));
    key->insert(key->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(new_got));
  });

  for (const Run& r : runs) {
    auto split = r.key.begin() + static_cast<std::ptrdiff_t>(old_width);
    RingChange change{r.range, {}, {}};
    for (auto it = r.key.begin(); it != split; ++it)
      change.old_owners.push_back(from.members_[*it].id);
    for (auto it = split; it != r.key.end(); ++it) change.new_owners.push_back(to.members_[*it].id);
    if (change.old_owners != change.new_owners) changes.push_back(std::move(change));
  }
  return changes;
}

}  // namespace ringcache

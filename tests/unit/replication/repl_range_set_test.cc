#include "repl_range_set.h"

#include <random>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

bool AnyContains(const std::vector<HashRange>& ranges, uint64_t h) {
  for (const HashRange& r : ranges) {
    if (r.Contains(h)) return true;
  }
  return false;
}

TEST_CASE("ReplRangeSet of nothing contains nothing, of the full ring everything",
          "[unit][replication]") {
  ReplRangeSet none;
  CHECK(none.empty());
  CHECK_FALSE(none.Contains(0));
  CHECK_FALSE(none.Contains(UINT64_MAX));
  std::vector<HashRange> full{HashRange::Full()};
  ReplRangeSet all(full);
  CHECK_FALSE(all.empty());
  CHECK(all.Contains(0));
  CHECK(all.Contains(12345));
  CHECK(all.Contains(UINT64_MAX));
  CHECK(all.ranges() == full);
  CHECK(all.Share() == 1.0);
}

TEST_CASE("ReplRangeSet treats arcs as start-exclusive and end-inclusive, wrapping ones too",
          "[unit][replication]") {
  std::vector<HashRange> ranges{{100, 200}, {UINT64_MAX - 10, 5}};
  ReplRangeSet s(ranges);
  CHECK_FALSE(s.Contains(100));
  CHECK(s.Contains(101));
  CHECK(s.Contains(200));
  CHECK_FALSE(s.Contains(201));
  CHECK_FALSE(s.Contains(UINT64_MAX - 10));
  CHECK(s.Contains(UINT64_MAX - 9));
  CHECK(s.Contains(UINT64_MAX));
  CHECK(s.Contains(0));
  CHECK(s.Contains(5));
  CHECK_FALSE(s.Contains(6));
}

TEST_CASE("ReplRangeSet merges touching arcs and agrees with HashRange::Contains",
          "[unit][replication]") {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<HashRange> ranges;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      const uint64_t a = rng();
      // Mostly short arcs, some touching the previous one, some wrapping.
      const uint64_t len = (rng() % 4 == 0) ? rng() : rng() >> 20;
      const uint64_t start = (i > 0 && rng() % 3 == 0) ? ranges.back().end : a;
      ranges.push_back({start, start + len});
    }
    ReplRangeSet s(ranges);
    ReplRangeSet again(s.ranges());  // What the replica builds from FullSyncBegin.
    CHECK(s.ranges().size() <= ranges.size() + 1);
    for (int i = 0; i < 2000; ++i) {
      uint64_t h = rng();
      if (i % 4 == 0 && !ranges.empty()) {  // Probe the edges too.
        const HashRange& r = ranges[rng() % ranges.size()];
        h = (i % 8 == 0) ? r.end : r.start;
        h += (rng() % 3) - 1;
      }
      const bool want = AnyContains(ranges, h);
      REQUIRE(s.Contains(h) == want);
      REQUIRE(again.Contains(h) == want);
    }
  }
}

TEST_CASE("ReplRangeSet reports its share of the ring", "[unit][replication]") {
  const uint64_t quarter = uint64_t{1} << 62;
  std::vector<HashRange> ranges{{0, quarter}, {2 * quarter, 3 * quarter}};
  CHECK(ReplRangeSet(ranges).Share() == Approx(0.5));
}

}  // namespace
}  // namespace ringcache::internal

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

TEST_CASE("ReplRangeSet Covers tells whether a set holds every hash of another",
          "[unit][replication]") {
  std::vector<HashRange> full{HashRange::Full()};
  std::vector<HashRange> some{{100, 200}, {UINT64_MAX - 10, 5}};
  const ReplRangeSet all(full), none, s(some);
  CHECK(all.Covers(s));
  CHECK(all.Covers(none));
  CHECK_FALSE(s.Covers(all));
  CHECK(s.Covers(none));
  CHECK(s.Covers(s));
  std::vector<HashRange> inner{{120, 150}, {UINT64_MAX - 5, 2}, {UINT64_MAX, 5}};
  CHECK(s.Covers(ReplRangeSet(inner)));
  std::vector<HashRange> across{{150, 201}};
  CHECK_FALSE(s.Covers(ReplRangeSet(across)));
  std::vector<HashRange> zero{{UINT64_MAX, 6}};
  CHECK_FALSE(s.Covers(ReplRangeSet(zero)));

  // Random sets: sub-arcs of a set's arcs are covered; when Covers says yes, every probed
  // hash of the other set is in this one; one hash outside makes it say no.
  std::mt19937_64 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<HashRange> a;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      const uint64_t start = rng();
      a.push_back({start, start + ((rng() % 4 == 0) ? rng() : rng() >> 8)});
    }
    std::vector<HashRange> sub;
    for (const HashRange& r : a) {
      if (rng() % 2 == 0 || r.start == r.end) continue;
      const uint64_t len = r.end - r.start;  // Wraps correctly for a wrapping arc.
      const uint64_t from = r.start + rng() % len;
      sub.push_back({from, from + 1 + rng() % (r.start + len - from)});
    }
    const ReplRangeSet sa(a), ssub(sub);
    REQUIRE(sa.Covers(ssub));
    std::vector<HashRange> b;
    for (int i = 0; i < 3; ++i) {
      const uint64_t start = rng();
      b.push_back({start, start + (rng() >> 10)});
    }
    const ReplRangeSet sb(b);
    if (sa.Covers(sb)) {
      for (int i = 0; i < 500; ++i) {
        const HashRange& r = b[rng() % b.size()];
        const uint64_t h = r.start + 1 + rng() % (r.end - r.start);
        REQUIRE(sa.Contains(h));
      }
    }
    // A hash outside `a` added to the subset makes it no longer covered.
    uint64_t h = rng();
    for (int i = 0; i < 1000 && sa.Contains(h); ++i) h = rng();
    if (sa.Contains(h)) continue;  // `a` covers (nearly) the whole ring.
    sub.push_back({h - 1, h});
    REQUIRE_FALSE(sa.Covers(ReplRangeSet(sub)));
  }
}

}  // namespace
}  // namespace ringcache::internal

// Unit tests for HashRing (lib/src/hash_ring.cc) and HashRange.
//
// Shares and movement are measured exactly (arc lengths from PrimaryShares() and Diff())
// and cross-checked by hashing keys. Everything here is deterministic: the placement of
// points depends only on member ids, weights and vnodes.

#include "ringcache/hash_ring.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/key_hash.h"
#include "xxhash_inline.h"

namespace ringcache {
namespace {

constexpr long double kRingSize = 18446744073709551616.0L;  // 2^64

std::vector<RingMember> MakeMembers(int n, const std::string& prefix = "node-") {
  std::vector<RingMember> members;
  members.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) members.push_back(RingMember{prefix + std::to_string(i), 1});
  return members;
}

HashRing MustBuild(std::vector<RingMember> members, RingOptions options = {}) {
  Result<HashRing> ring = HashRing::Build(std::move(members), options);
  REQUIRE(ring.ok());
  return std::move(ring).value();
}

std::vector<uint64_t> KeyHashes(int n, const std::string& prefix = "key-") {
  std::vector<uint64_t> hashes;
  hashes.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) hashes.push_back(HashKey(prefix + std::to_string(i)));
  return hashes;
}

// The first n owners of h as member ids, primary first.
std::vector<std::string> OwnerIds(const HashRing& ring, uint64_t h, size_t n) {
  std::vector<uint32_t> idx(n);
  const size_t got = ring.Owners(h, idx);
  std::vector<std::string> ids;
  for (size_t i = 0; i < got; ++i) ids.push_back(ring.members()[idx[i]].id);
  return ids;
}

// Fraction of the hash space covered by the changes (they are disjoint).
double ChangedFraction(const std::vector<RingChange>& changes) {
  long double total = 0;
  for (const RingChange& c : changes) {
    total += c.range.start == c.range.end ? kRingSize : static_cast<long double>(c.range.Size());
  }
  return static_cast<double>(total / kRingSize);
}

// All point hashes of a member list, computed from the documented placement rule; with
// their neighbours they are the hashes where an off-by-one in the ring would show.
std::vector<uint64_t> EdgeHashes(const std::vector<RingMember>& members, RingOptions options) {
  std::vector<uint64_t> out = {0, 1, UINT64_MAX - 1, UINT64_MAX};
  for (const RingMember& m : members) {
    for (uint64_t i = 0; i < uint64_t{options.vnodes_per_weight} * m.weight; ++i) {
      const uint64_t p = internal::Xxh3(m.id, i);
      out.insert(out.end(), {p - 1, p, p + 1});
    }
  }
  return out;
}

// Checks Diff(from, to, n) against Owners() on both rings at every hash in `hashes`:
// a hash lies in a returned range iff its owner lists differ, in at most one range, and
// that range's owner lists are the ones Owners() gives.
void CheckDiffAgainstOwners(const HashRing& from, const HashRing& to, size_t n,
                            const std::vector<uint64_t>& hashes) {
  const std::vector<RingChange> changes = HashRing::Diff(from, to, n);
  size_t mismatches = 0;
  for (uint64_t h : hashes) {
    const std::vector<std::string> old_ids = OwnerIds(from, h, n);
    const std::vector<std::string> new_ids = OwnerIds(to, h, n);
    const RingChange* hit = nullptr;
    int hits = 0;
    for (const RingChange& c : changes) {
      if (c.range.Contains(h)) {
        hit = &c;
        ++hits;
      }
    }
    const bool differs = old_ids != new_ids;
    bool ok = hits == (differs ? 1 : 0);
    if (ok && hit != nullptr) ok = hit->old_owners == old_ids && hit->new_owners == new_ids;
    if (!ok) {
      ++mismatches;
      if (mismatches <= 3) {
        INFO("h=" << h << " differs=" << differs << " ranges containing it=" << hits);
        CHECK(ok);
      }
    }
  }
  CHECK(mismatches == 0);

  // Adjacent changes with identical old and new lists must have been merged.
  for (size_t i = 0; i + 1 < changes.size(); ++i) {
    const RingChange& a = changes[i];
    const RingChange& b = changes[i + 1];
    if (a.range.end == b.range.start) {
      CHECK_FALSE((a.old_owners == b.old_owners && a.new_owners == b.new_owners));
    }
  }
  if (changes.size() > 1 && changes.back().range.end == changes.front().range.start) {
    CHECK_FALSE((changes.back().old_owners == changes.front().old_owners &&
                 changes.back().new_owners == changes.front().new_owners));
  }
}

}  // namespace

TEST_CASE("HashRange holds the hashes after start up to end, wrapping past UINT64_MAX",
          "[unit][ring]") {
  SECTION("a plain arc excludes its start and includes its end") {
    const HashRange r{100, 200};
    CHECK_FALSE(r.Contains(100));
    CHECK(r.Contains(101));
    CHECK(r.Contains(200));
    CHECK_FALSE(r.Contains(201));
    CHECK_FALSE(r.Contains(0));
    CHECK_FALSE(r.Contains(UINT64_MAX));
    CHECK(r.Size() == 100);
  }
  SECTION("an arc with start > end wraps through UINT64_MAX and 0") {
    const HashRange r{UINT64_MAX - 10, 5};
    CHECK_FALSE(r.Contains(UINT64_MAX - 10));
    CHECK(r.Contains(UINT64_MAX - 9));
    CHECK(r.Contains(UINT64_MAX));
    CHECK(r.Contains(0));
    CHECK(r.Contains(5));
    CHECK_FALSE(r.Contains(6));
    CHECK_FALSE(r.Contains(UINT64_MAX / 2));
    CHECK(r.Size() == 16);
  }
  SECTION("an arc ending at 0 holds UINT64_MAX and 0 but not 1") {
    const HashRange r{UINT64_MAX - 1, 0};
    CHECK(r.Contains(UINT64_MAX));
    CHECK(r.Contains(0));
    CHECK_FALSE(r.Contains(1));
    CHECK_FALSE(r.Contains(UINT64_MAX - 1));
    CHECK(r.Size() == 2);
  }
  SECTION("start == end is the whole ring") {
    for (const HashRange r : {HashRange::Full(), HashRange{42, 42}}) {
      CHECK(r.Contains(0));
      CHECK(r.Contains(42));
      CHECK(r.Contains(UINT64_MAX));
      CHECK(r.Size() == UINT64_MAX);
    }
  }
}

TEST_CASE("HashRing built from no members is empty and owns nothing", "[unit][ring]") {
  for (const HashRing& ring : {HashRing(), MustBuild({})}) {
    CHECK(ring.member_count() == 0);
    CHECK(ring.point_count() == 0);
    CHECK(ring.Primary(0) == -1);
    CHECK(ring.Primary(HashKey("k")) == -1);
    std::vector<uint32_t> out(3, 99);
    CHECK(ring.Owners(HashKey("k"), out) == 0);
    CHECK(ring.PrimaryShares().empty());
    const std::vector<HashRing::Arc> arcs = ring.Arcs(2);
    REQUIRE(arcs.size() == 1);
    CHECK(arcs[0].range == HashRange::Full());
    CHECK(arcs[0].owners.empty());
  }
}

TEST_CASE("HashRing rejects bad members and options with INVALID_ARGUMENT naming the problem",
          "[unit][ring]") {
  auto expect_invalid = [](std::vector<RingMember> members, RingOptions options,
                           const std::vector<std::string>& fragments) {
    Result<HashRing> ring = HashRing::Build(std::move(members), options);
    REQUIRE_FALSE(ring.ok());
    CHECK(ring.status().code() == StatusCode::kInvalidArgument);
    for (const std::string& f : fragments) CHECK_THAT(ring.status().message(), Catch::Contains(f));
  };
  SECTION("empty id") { expect_invalid({{"a", 1}, {"", 1}}, {}, {"id", "empty", "#1"}); }
  SECTION("duplicate id") {
    expect_invalid({{"a", 1}, {"b", 1}, {"a", 2}}, {}, {"duplicate", "\"a\"", "#0", "#2"});
  }
  SECTION("weight 0") { expect_invalid({{"a", 1}, {"b", 0}}, {}, {"weight", "\"b\""}); }
  SECTION("vnodes_per_weight 0") {
    expect_invalid({{"a", 1}}, RingOptions{.vnodes_per_weight = 0}, {"vnodes_per_weight"});
  }
  SECTION("more than kMaxPoints points in total") {
    // 2^23 points each: the third member crosses 2^24.
    expect_invalid({{"a", 1}, {"b", 1}, {"c", 1}}, RingOptions{.vnodes_per_weight = 1u << 23},
                   {"kMaxPoints", "\"c\""});
  }
  SECTION("a points product that would overflow 32 bits") {
    expect_invalid({{"a", UINT32_MAX}}, RingOptions{.vnodes_per_weight = UINT32_MAX},
                   {"kMaxPoints"});
  }
}

TEST_CASE("HashRing places point i of a member at XXH3-64(id, seed i)", "[unit][ring]") {
  const RingOptions options{.vnodes_per_weight = 3};
  const HashRing ring = MustBuild({{"alpha", 1}, {"beta", 2}}, options);
  REQUIRE(ring.point_count() == 9);

  struct P {
    uint64_t hash;
    int member;
  };
  std::vector<P> points;
  for (uint64_t i = 0; i < 3; ++i) points.push_back({internal::Xxh3("alpha", i), 0});
  for (uint64_t i = 0; i < 6; ++i) points.push_back({internal::Xxh3("beta", i), 1});
  std::sort(points.begin(), points.end(), [](const P& a, const P& b) { return a.hash < b.hash; });
  for (size_t i = 0; i < points.size(); ++i) {
    const P& p = points[i];
    const P& next = points[(i + 1) % points.size()];
    INFO("point " << i << " hash " << p.hash);
    CHECK(ring.Primary(p.hash) == p.member);      // a point owns its own hash
    CHECK(ring.Primary(p.hash - 1) == p.member);  // and the hashes just before it
    CHECK(ring.Primary(p.hash + 1) == next.member);
  }
  // Past the last point, ownership wraps to the first.
  CHECK(ring.Primary(UINT64_MAX) ==
        (points.back().hash == UINT64_MAX ? points.back().member : points.front().member));
  CHECK(ring.Primary(0) == points.front().member);
}

TEST_CASE("HashRing spreads primary ownership evenly over 10 nodes with default vnodes",
          "[unit][ring]") {
  const int n = 10;
  const HashRing ring = MustBuild(MakeMembers(n));
  REQUIRE(ring.point_count() == static_cast<size_t>(n) * 160);

  const std::vector<double> shares = ring.PrimaryShares();
  REQUIRE(shares.size() == static_cast<size_t>(n));
  double sum = 0;
  double sum_sq = 0;
  for (double s : shares) {
    sum += s;
    sum_sq += (s * n - 1) * (s * n - 1);
  }
  CHECK(sum == Approx(1.0).epsilon(1e-12));
  const double stddev = std::sqrt(sum_sq / n);
  const double bound = 1.1 / std::sqrt(160.0);
  INFO("stddev of share × n = " << stddev << ", bound " << bound);
  CHECK(stddev <= bound);
  CHECK(stddev > 0.0);  // 10 random rings are never perfectly balanced

  // The exact shares agree with the arcs and with hashing keys.
  std::vector<double> from_arcs(n, 0.0);
  for (const HashRing::Arc& arc : ring.Arcs(1)) {
    REQUIRE(arc.owners.size() == 1);
    from_arcs[arc.owners[0]] +=
        static_cast<double>(static_cast<long double>(arc.range.Size()) / kRingSize);
  }
  std::vector<int> counts(n, 0);
  const std::vector<uint64_t> keys = KeyHashes(200000);
  for (uint64_t h : keys) ++counts[static_cast<size_t>(ring.Primary(h))];
  for (int m = 0; m < n; ++m) {
    INFO("member " << m);
    CHECK(from_arcs[m] == Approx(shares[m]).epsilon(1e-9));
    CHECK(static_cast<double>(counts[m]) / keys.size() == Approx(shares[m]).margin(0.005));
  }
}

TEST_CASE("HashRing moves about 1/(n+1) of keys when a node joins", "[unit][ring]") {
  const HashRing before = MustBuild(MakeMembers(10));
  const HashRing after = MustBuild(MakeMembers(11));
  const std::vector<RingChange> changes = HashRing::Diff(before, after, 1);
  REQUIRE_FALSE(changes.empty());

  // Consistent hashing: keys only move to the node that joined.
  for (const RingChange& c : changes) {
    REQUIRE(c.new_owners.size() == 1);
    CHECK(c.new_owners[0] == "node-10");
  }
  const double moved = ChangedFraction(changes);
  const double ideal = 1.0 / 11;
  INFO("moved " << moved << " of the hash space, ideal " << ideal);
  CHECK(moved <= 1.15 * ideal);
  CHECK(moved == Approx(after.PrimaryShares()[10]).epsilon(1e-9));

  const std::vector<uint64_t> keys = KeyHashes(200000);
  size_t moved_keys = 0;
  for (uint64_t h : keys) {
    if (before.Primary(h) != after.Primary(h)) {
      ++moved_keys;
      CHECK(after.Primary(h) == 10);
    }
  }
  CHECK(static_cast<double>(moved_keys) / keys.size() == Approx(moved).margin(0.005));
}

TEST_CASE("HashRing moves about 1/n of keys when a node leaves", "[unit][ring]") {
  const std::vector<RingMember> members = MakeMembers(10);
  const HashRing before = MustBuild(members);
  const std::vector<double> before_shares = before.PrimaryShares();
  const std::vector<uint64_t> keys = KeyHashes(200000);
  const double ideal = 1.0 / 10;
  for (size_t leaving = 0; leaving < members.size(); ++leaving) {
    std::vector<RingMember> remaining = members;
    remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(leaving));
    const HashRing after = MustBuild(remaining);
    const std::vector<RingChange> changes = HashRing::Diff(before, after, 1);
    REQUIRE_FALSE(changes.empty());

    // Only the keys of the node that left move.
    const std::string& leaving_id = members[leaving].id;
    for (const RingChange& c : changes) {
      REQUIRE(c.old_owners.size() == 1);
      CHECK(c.old_owners[0] == leaving_id);
    }
    const double moved = ChangedFraction(changes);
    INFO(leaving_id << " left: moved " << moved << " of the hash space, ideal " << ideal);
    CHECK(moved <= 1.15 * ideal);
    CHECK(moved == Approx(before_shares[leaving]).epsilon(1e-9));

    size_t moved_keys = 0;
    for (uint64_t h : keys) {
      const std::string& old_id = before.members()[static_cast<size_t>(before.Primary(h))].id;
      const std::string& new_id = after.members()[static_cast<size_t>(after.Primary(h))].id;
      if (old_id != new_id) {
        ++moved_keys;
        CHECK(old_id == leaving_id);
      }
    }
    CHECK(static_cast<double>(moved_keys) / keys.size() == Approx(moved).margin(0.005));
  }
}

TEST_CASE("HashRing Owners are distinct, primary first, and min(n, members) long", "[unit][ring]") {
  const HashRing ring = MustBuild(MakeMembers(5));
  const std::vector<uint64_t> keys = KeyHashes(20000);
  for (size_t n : {1u, 2u, 3u, 5u, 8u}) {
    std::vector<uint32_t> out(n, UINT32_MAX);
    std::vector<uint32_t> prefix(1);
    for (uint64_t h : keys) {
      const size_t got = ring.Owners(h, out);
      REQUIRE(got == std::min<size_t>(n, 5));
      CHECK(static_cast<int>(out[0]) == ring.Primary(h));
      std::vector<uint32_t> sorted(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(got));
      std::sort(sorted.begin(), sorted.end());
      CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
      CHECK(sorted.back() < 5);
      // Asking for fewer owners gives a prefix of the longer list.
      REQUIRE(ring.Owners(h, prefix) == 1);
      CHECK(prefix[0] == out[0]);
      if (n > 5) CHECK(out[5] == UINT32_MAX);  // nothing written past member_count()
    }
  }
  std::vector<uint32_t> none;
  CHECK(ring.Owners(keys[0], none) == 0);
}

TEST_CASE("HashRing Owners do not depend on the order members are given in", "[unit][ring]") {
  std::vector<RingMember> members = MakeMembers(12);
  members[4].weight = 3;
  const HashRing a = MustBuild(members);
  std::reverse(members.begin(), members.end());
  std::rotate(members.begin(), members.begin() + 5, members.end());
  const HashRing b = MustBuild(members);
  REQUIRE(a.members()[0].id != b.members()[0].id);  // the indexes really differ

  for (uint64_t h : KeyHashes(20000)) {
    CHECK(OwnerIds(a, h, 3) == OwnerIds(b, h, 3));
  }
  CHECK(HashRing::Diff(a, b, 3).empty());
}

TEST_CASE("HashRing gives a weight-2 node about twice the share of a weight-1 node",
          "[unit][ring]") {
  std::vector<RingMember> members = MakeMembers(10);
  members[0].weight = 2;
  const HashRing ring = MustBuild(members);
  REQUIRE(ring.point_count() == size_t{11} * 160);
  const std::vector<double> shares = ring.PrimaryShares();
  double others = 0;
  for (size_t m = 1; m < shares.size(); ++m) others += shares[m];
  const double ratio = shares[0] / (others / 9);
  INFO("weight-2 share " << shares[0] << ", mean weight-1 share " << others / 9);
  CHECK(ratio >= 1.7);
  CHECK(ratio <= 2.3);
  CHECK(shares[0] == Approx(2.0 / 11).epsilon(0.15));
}

TEST_CASE("HashRing Owners stop at member_count when asked for more owners than members",
          "[unit][ring]") {
  const HashRing ring =
      MustBuild({{"x", 1}, {"y", 1}, {"z", 2}}, RingOptions{.vnodes_per_weight = 4});
  std::vector<uint32_t> out(16, UINT32_MAX);
  for (uint64_t h : KeyHashes(1000)) {
    REQUIRE(ring.Owners(h, out) == 3);
    std::vector<uint32_t> got(out.begin(), out.begin() + 3);
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<uint32_t>{0, 1, 2});
    CHECK(out[3] == UINT32_MAX);
  }
  const HashRing single = MustBuild({{"only", 1}});
  CHECK(single.Owners(12345, out) == 1);
  CHECK(out[0] == 0);
  const std::vector<HashRing::Arc> arcs = single.Arcs(3);
  REQUIRE(arcs.size() == 1);
  CHECK(arcs[0].range == HashRange::Full());
  CHECK(arcs[0].owners == std::vector<uint32_t>{0});
}

TEST_CASE("HashRing Arcs partition the circle into runs of one owner list", "[unit][ring]") {
  std::vector<RingMember> members = MakeMembers(6);
  members[2].weight = 2;
  const RingOptions options{.vnodes_per_weight = 20};
  const HashRing ring = MustBuild(members, options);
  for (size_t n : {1u, 2u, 3u}) {
    const std::vector<HashRing::Arc> arcs = ring.Arcs(n);
    REQUIRE(arcs.size() > 1);
    long double total = 0;
    for (size_t i = 0; i < arcs.size(); ++i) {
      const HashRing::Arc& arc = arcs[i];
      const HashRing::Arc& next = arcs[(i + 1) % arcs.size()];
      CHECK(arc.range.end == next.range.start);  // contiguous, closing the circle
      CHECK(arc.owners != next.owners);          // maximal runs
      CHECK(arc.owners.size() == n);
      total += static_cast<long double>(arc.range.Size());
    }
    CHECK(total == kRingSize);
    std::vector<uint64_t> hashes = EdgeHashes(members, options);
    const std::vector<uint64_t> keys = KeyHashes(5000);
    hashes.insert(hashes.end(), keys.begin(), keys.end());
    std::vector<uint32_t> out(n);
    for (uint64_t h : hashes) {
      const auto it = std::find_if(arcs.begin(), arcs.end(),
                                   [h](const HashRing::Arc& a) { return a.range.Contains(h); });
      REQUIRE(it != arcs.end());
      REQUIRE(ring.Owners(h, out) == n);
      CHECK(it->owners == out);
    }
  }
}

TEST_CASE("HashRing Diff returns exactly the arcs whose owner lists change", "[unit][ring]") {
  const RingOptions options{.vnodes_per_weight = 40};
  std::vector<RingMember> base = MakeMembers(8);
  std::vector<RingMember> changed = base;
  SECTION("a node joins") { changed.push_back({"node-new", 1}); }
  SECTION("a node leaves") { changed.erase(changed.begin() + 5); }
  SECTION("a node's weight changes") { changed[2].weight = 3; }
  SECTION("one node is replaced by another") { changed[6] = {"node-replacement", 1}; }
  SECTION("several members change at once, in a different order") {
    changed.erase(changed.begin());
    changed.push_back({"node-a", 2});
    changed.push_back({"node-b", 1});
    std::reverse(changed.begin(), changed.end());
  }
  const HashRing from = MustBuild(base, options);
  const HashRing to = MustBuild(changed, options);

  std::vector<uint64_t> hashes = EdgeHashes(base, options);
  const std::vector<uint64_t> more_edges = EdgeHashes(changed, options);
  hashes.insert(hashes.end(), more_edges.begin(), more_edges.end());
  const std::vector<uint64_t> keys = KeyHashes(30000);
  hashes.insert(hashes.end(), keys.begin(), keys.end());
  for (size_t n : {1u, 2u, 3u}) {
    INFO("n = " << n);
    const std::vector<RingChange> changes = HashRing::Diff(from, to, n);
    CHECK_FALSE(changes.empty());
    for (const RingChange& c : changes) {
      hashes.push_back(c.range.start);
      hashes.push_back(c.range.start + 1);
      hashes.push_back(c.range.end);
      hashes.push_back(c.range.end + 1);
    }
    CheckDiffAgainstOwners(from, to, n, hashes);
    // Replicas move too: more owner lists change with more owners per key.
    if (n > 1) CHECK(ChangedFraction(changes) >= ChangedFraction(HashRing::Diff(from, to, n - 1)));
  }
}

TEST_CASE("HashRing Diff of rings that place keys identically is empty", "[unit][ring]") {
  const HashRing a = MustBuild(MakeMembers(7));
  const HashRing b = MustBuild(MakeMembers(7));
  for (size_t n : {0u, 1u, 3u, 10u}) {
    CHECK(HashRing::Diff(a, a, n).empty());
    CHECK(HashRing::Diff(a, b, n).empty());
  }
  CHECK(HashRing::Diff(HashRing(), HashRing(), 2).empty());
  // Nothing is compared when no owners are asked for.
  CHECK(HashRing::Diff(a, MustBuild(MakeMembers(3)), 0).empty());
}

TEST_CASE("HashRing Diff from or to an empty ring covers the whole ring", "[unit][ring]") {
  const RingOptions options{.vnodes_per_weight = 30};
  const std::vector<RingMember> members = MakeMembers(4);
  const HashRing ring = MustBuild(members, options);
  const HashRing empty;
  std::vector<uint64_t> hashes = EdgeHashes(members, options);
  const std::vector<uint64_t> keys = KeyHashes(5000);
  hashes.insert(hashes.end(), keys.begin(), keys.end());

  SECTION("from empty: every arc gains its new owners") {
    const std::vector<RingChange> changes = HashRing::Diff(empty, ring, 2);
    CHECK(ChangedFraction(changes) == Approx(1.0).epsilon(1e-12));
    for (const RingChange& c : changes) {
      CHECK(c.old_owners.empty());
      CHECK(c.new_owners.size() == 2);
    }
    CheckDiffAgainstOwners(empty, ring, 2, hashes);
  }
  SECTION("to empty: every arc loses its old owners") {
    const std::vector<RingChange> changes = HashRing::Diff(ring, empty, 2);
    CHECK(ChangedFraction(changes) == Approx(1.0).epsilon(1e-12));
    for (const RingChange& c : changes) {
      CHECK(c.old_owners.size() == 2);
      CHECK(c.new_owners.empty());
    }
    CheckDiffAgainstOwners(ring, empty, 2, hashes);
  }
  SECTION("a single-member ring from empty is one whole-ring change") {
    const HashRing single = MustBuild({{"solo", 1}}, options);
    const std::vector<RingChange> changes = HashRing::Diff(empty, single, 3);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].range == HashRange::Full());
    CHECK(changes[0].old_owners.empty());
    CHECK(changes[0].new_owners == std::vector<std::string>{"solo"});
  }
}

}  // namespace ringcache

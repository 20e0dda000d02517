// Placement hashes and hash tags (lib/include/ringcache/key_hash.h): Redis Cluster's tag
// rule, byte for byte, and keys that share a tag sharing their owners on the ring.
#include "ringcache/key_hash.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/cluster_view.h"

namespace ringcache {
namespace {

TEST_CASE("HashTag is the bytes between the first '{' and the first '}' after it",
          "[unit][key_hash]") {
  CHECK(HashTag("{user:42}:cart") == "user:42");
  CHECK(HashTag("cart:{user:42}") == "user:42");
  CHECK(HashTag("a{b}c{d}") == "b");
  CHECK(HashTag("{a}{b}") == "a");
  CHECK(HashTag("{{x}}") == "{x");
  CHECK(HashTag("x}{y}") == "y");  // A '}' before the first '{' does not count.
  // No tag: placed by the whole key.
  CHECK(HashTag("plain").empty());
  CHECK(HashTag("{}{b}").empty());  // Empty between the first '{' and the next '}'.
  CHECK(HashTag("x{").empty());
  CHECK(HashTag("x}").empty());
  CHECK(HashTag("{unclosed").empty());
  CHECK(HashTag("").empty());
  // Binary-safe: bytes, not characters.
  CHECK(HashTag(std::string("{\0\xff}", 4)) == std::string("\0\xff", 2));
}

TEST_CASE("HashKey places a tagged key by its tag and an untagged key by all its bytes",
          "[unit][key_hash]") {
  CHECK(HashKey("{user:42}:cart") == HashKey("{user:42}:profile"));
  CHECK(HashKey("{user:42}:cart") == HashBytes("user:42"));
  CHECK(HashKey("user:42") == HashBytes("user:42"));  // No tag: unchanged placement.
  CHECK(HashKey("{}{b}") == HashBytes("{}{b}"));
  CHECK(HashKey("{user:42}:cart") != HashKey("{user:43}:cart"));
  CHECK(HashKey("a") != HashKey("b"));
}

TEST_CASE("HashedKey carries both hashes of a key, computed once", "[unit][key_hash]") {
  const std::vector<std::string> keys = {"user:42", "{user:42}:cart", "{}{b}", "x",
                                         std::string("\0{\xff}", 4)};
  for (const std::string& key : keys) {
    const HashedKey h(key);
    CHECK(h.bytes() == key);
    CHECK(h.bytes().data() == key.data());  // A view, not a copy.
    CHECK(h.placement() == HashKey(key));
    CHECK(h.index() == HashBytes(key));
  }
  // Untagged: one hash serves both; tagged: the cache's index is still the whole key's, so
  // that many keys under one tag spread over its table.
  CHECK(HashedKey("user:42").placement() == HashedKey("user:42").index());
  CHECK(HashedKey("{u}:a").placement() == HashedKey("{u}:b").placement());
  CHECK(HashedKey("{u}:a").index() != HashedKey("{u}:b").index());
  const HashedKey empty;
  CHECK(empty.bytes().empty());
}

TEST_CASE("Keys sharing a hash tag have the same owners on any ring", "[unit][key_hash]") {
  ClusterView view;
  view.epoch = 3;
  for (int i = 0; i < 5; ++i) {
    view.members.push_back(ClusterMember{"n" + std::to_string(i), "h:" + std::to_string(i)});
  }
  view.replication_factor = 3;
  Result<HashRing> ring = view.BuildRing();
  REQUIRE(ring.ok());
  size_t spread_untagged = 0;
  for (int tag = 0; tag < 200; ++tag) {
    const std::string t = "{order:" + std::to_string(tag) + "}";
    uint32_t first[3];
    REQUIRE(ring->Owners(HashKey(t + ":head"), first) == 3);
    for (const char* suffix : {":items", ":total", ":status", ""}) {
      uint32_t owners[3];
      REQUIRE(ring->Owners(HashKey(t + suffix), owners) == 3);
      INFO(t << suffix);
      CHECK(std::vector<uint32_t>(owners, owners + 3) == std::vector<uint32_t>(first, first + 3));
    }
    // Without the tag the same names spread over the nodes.
    uint32_t a[3], b[3];
    ring->Owners(HashKey("order:" + std::to_string(tag) + ":head"), a);
    ring->Owners(HashKey("order:" + std::to_string(tag) + ":items"), b);
    if (a[0] != b[0]) ++spread_untagged;
  }
  CHECK(spread_untagged > 100);  // About 4 in 5 with 5 nodes.
}

}  // namespace
}  // namespace ringcache

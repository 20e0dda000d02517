// Key hashing and hash ranges: the one hash every part of ringcache agrees on.
//
// A key's placement hash (HashKey) is computed once and passed down: the ring places the
// key by it, replication and rebalancing select keys by it. It is XXH3-64 (seed 0) of the
// key, or of its hash tag: the bytes between the first '{' and the first '}' after it,
// when at least one byte lies between them (Redis Cluster's rule), so that keys sharing a
// tag ("{user:42}:cart", "{user:42}:profile") always have the same owners. The local
// cache indexes and shards entries by XXH3 of the whole key instead (many keys under one
// tag must not collide in its table); its shard choice uses the low bits, which are
// uniform on every node, unlike the high bits of the arcs a node owns.
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <string_view>

namespace ringcache {

// The placement hash of `key`: HashBytes(HashTag(key)) if the key has a hash tag, else
// HashBytes(key). Stable across versions and platforms: it is part of the protocol (every
// node and client must place keys identically).
uint64_t HashKey(std::string_view key);

// The key's hash tag: the bytes between its first '{' and the first '}' after that, if
// there is at least one byte between them; otherwise empty (the key has no tag and is
// placed by all its bytes). "{user:42}:cart" -> "user:42"; "{a}{b}" -> "a";
// "{}{b}", "x{", "x}" -> "" (no tag); "{{x}}" -> "{x".
std::string_view HashTag(std::string_view key);

// XXH3-64 of the bytes, seed 0, with no tag rule (digests, the cache's own index).
uint64_t HashBytes(std::string_view bytes);

// A clockwise arc of the 64-bit hash space: the hashes h with start < h <= end, going
// clockwise and wrapping past UINT64_MAX to 0. start == end denotes the whole ring.
// This matches ring ownership: a point owns the arc from its predecessor (exclusive)
// up to itself (inclusive).
struct HashRange {
  uint64_t start = 0;
  uint64_t end = 0;

  static HashRange Full() { return {0, 0}; }

  bool Contains(uint64_t h) const {
    if (start == end) return true;
    if (start < end) return h > start && h <= end;
    return h > start || h <= end;  // wraps past UINT64_MAX
  }

  // Number of hashes in the arc; the full ring reports UINT64_MAX (one short of 2^64).
  uint64_t Size() const { return start == end ? UINT64_MAX : end - start; }

  friend bool operator==(const HashRange&, const HashRange&) = default;
};

}  // namespace ringcache

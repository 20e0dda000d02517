// Key hashing and hash ranges: the one hash every part of ringcache agrees on.
//
// A key is hashed once with XXH3-64 (seed 0) and the hash is passed down: the ring
// places it by the whole hash, the local cache picks a shard by its low bits (which are
// uniform on every node, unlike the high bits of the arcs a node owns).
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <string_view>

namespace ringcache {

// XXH3-64 of the key bytes, seed 0. Stable across versions and platforms: it is part
// of the protocol (every node and client must place keys identically).
uint64_t HashKey(std::string_view key);

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

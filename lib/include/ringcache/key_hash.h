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
#include <type_traits>

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

// A key with both of its hashes, computed once where the key enters (a front end decoding
// a request, a C++ caller) and passed down through the router, replication and the cache:
//   placement() == HashKey(bytes()): the ring places the key by it, replication and
//                 rebalancing select it by it;
//   index()     == HashBytes(bytes()): the cache finds the key in its table by it.
// For a key without a hash tag the two are one hash, computed once.
//
// Built implicitly from anything that converts to std::string_view, so that a method taking
// `const HashedKey&` also takes a plain key (hashing it then). Like std::string_view it
// refers to the key's bytes and must not outlive them. A default-constructed HashedKey is
// the empty key with both hashes 0 (a placeholder: no cache or ring accepts an empty key).
class HashedKey {
 public:
  HashedKey() = default;
  template <typename T>
  requires std::is_convertible_v<const T&, std::string_view> HashedKey(
      const T& key)  // NOLINT(google-explicit-constructor): a key is a key.
      : HashedKey(Compute(std::string_view(key))) {}

  // A key whose hashes were computed elsewhere (carried with the key). The caller vouches
  // that they are HashKey(bytes) and HashBytes(bytes): nothing checks.
  static HashedKey WithHashes(std::string_view bytes, uint64_t placement, uint64_t index) {
    return HashedKey(bytes, placement, index);
  }

  std::string_view bytes() const { return bytes_; }
  uint64_t placement() const { return placement_; }
  uint64_t index() const { return index_; }

 private:
  HashedKey(std::string_view bytes, uint64_t placement, uint64_t index)
      : bytes_(bytes), placement_(placement), index_(index) {}
  static HashedKey Compute(std::string_view key);

  std::string_view bytes_;
  uint64_t placement_ = 0;
  uint64_t index_ = 0;
};

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

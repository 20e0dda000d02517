// ReplStripes: the per-key-hash write locks of a ReplicatedStore.
//
// A primary's write holds its key's stripe from applying the write to the cache until
// the write has been appended to every replica link, so the links carry each key's
// writes in the order the cache applied them; a replica applies an entry under the same
// stripe. Barrier() waits out every write in progress: the store publishes a new routing
// (Topology + links), then passes the barrier, after which no write still routes by the
// old one (a write reads the routing under its stripe).
//
// Thread safety: a set of mutexes. A thread holds at most one stripe at a time (Barrier
// takes them one after the other), and takes a stripe before any link's mutex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace ringcache::internal {

class ReplStripes {
 public:
  static constexpr size_t kCount = 256;

  std::mutex& For(uint64_t hash) { return stripes_[Index(hash)].mu; }

  // Returns once every write that held a stripe when Barrier() was called has released
  // it. What was published (release store) before the call is seen by every write that
  // takes a stripe after the barrier passed it.
  void Barrier() {
    for (Stripe& s : stripes_) std::lock_guard lock(s.mu);
  }

 private:
  // The cache uses the low hash bits for its shard and the ring the high bits; mix both
  // so that a node's keys (a few arcs of the ring) spread over every stripe.
  static size_t Index(uint64_t hash) { return (hash ^ (hash >> 29) ^ (hash >> 47)) % kCount; }

  struct alignas(64) Stripe {
    std::mutex mu;
  };
  std::array<Stripe, kCount> stripes_;
};

}  // namespace ringcache::internal

// EpochDomain and RetireList: epoch-based memory reclamation, so that readers can walk
// shared structures without taking a lock or writing a shared cache line.
//
// Readers bracket each access with a Guard. A writer that unlinks an object does not
// free it: it retires it, tagged with the epoch in force, and frees it once the global
// epoch has advanced twice past that tag. The epoch advances from E to E+1 only when no
// reader counted under the parity of E-1 remains, so two advances after an unlink every
// reader that could have seen the object has left (docs/design/cache.md has the proof).
//
// Readers count themselves in one of kSlots cache-line-sized slots, picked per thread;
// a slot's counters are shared only by threads whose indexes collide modulo kSlots, so
// with at most kSlots reader threads no reader writes a line another thread writes.
// Each slot also carries the hit/miss counters of the readers using it.
//
// All protocol accesses are sequentially consistent: the reader's increment and the
// reclaimer's scan, and the writer's unlink and the reader's load, must not reorder.
//
// Thread safety: EpochDomain is fully concurrent. A RetireList is not thread-safe: each
// belongs to one writer context (a cache shard) and is used under that context's lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringcache::internal {

class EpochDomain {
 public:
  static constexpr size_t kSlots = 64;

  struct alignas(64) Slot {
    std::atomic<uint64_t> readers[2] = {0, 0};  // Active readers, by epoch parity.
    std::atomic<uint64_t> hits{0};
    std::atomic<uint64_t> misses{0};
  };

  // A read-side critical section. Movable, not copyable; leaves on destruction.
  class Guard {
   public:
    Guard(Guard&& other) noexcept : slot_(other.slot_), parity_(other.parity_) {
      other.slot_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    Guard(const Guard&) = delete;
    ~Guard() {
      if (slot_ != nullptr) slot_->readers[parity_].fetch_sub(1, std::memory_order_seq_cst);
    }
    // The slot this reader counts in: its counters may be bumped by the reader.
    Slot& slot() const { return *slot_; }

   private:
    friend class EpochDomain;
    Guard(Slot* slot, unsigned parity) : slot_(slot), parity_(parity) {}
    Slot* slot_;
    unsigned parity_;
  };

  EpochDomain() = default;
  EpochDomain(const EpochDomain&) = delete;
  EpochDomain& operator=(const EpochDomain&) = delete;

  [[nodiscard]] Guard Enter() const {
    Slot* slot = &slots_[ThreadSlot()];
    const uint64_t e = epoch_.load(std::memory_order_seq_cst);
    const unsigned parity = static_cast<unsigned>(e & 1);
    slot->readers[parity].fetch_add(1, std::memory_order_seq_cst);
    return Guard(slot, parity);
  }

  uint64_t current() const { return epoch_.load(std::memory_order_seq_cst); }

  // Advances the epoch by one if no reader of the previous epoch's parity remains.
  // Returns the epoch in force afterwards. Safe to call concurrently.
  uint64_t TryAdvance() const;

  // Sum of the per-slot hit and miss counters.
  uint64_t TotalHits() const;
  uint64_t TotalMisses() const;

  // This thread's slot index (stable for the thread's life, shared by all domains).
  static size_t ThreadSlot();

 private:
  mutable std::atomic<uint64_t> epoch_{2};
  mutable Slot slots_[kSlots];
};

class RetireList {
 public:
  using Deleter = void (*)(void*);

  RetireList() = default;
  RetireList(const RetireList&) = delete;
  RetireList& operator=(const RetireList&) = delete;
  // Frees everything still pending. REQUIRES: no reader can still see any of it.
  ~RetireList();

  // `object` is unlinked (no new reader can reach it); free it with `deleter` once safe.
  void Retire(void* object, Deleter deleter, uint64_t bytes, uint64_t epoch);

  // Frees the objects retired at least two epochs before `current_epoch`; returns how many.
  size_t Reclaim(uint64_t current_epoch);

  size_t pending() const { return items_.size(); }
  uint64_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Item {
    void* object;
    Deleter deleter;
    uint64_t bytes;
    uint64_t epoch;
  };
  std::vector<Item> items_;  // Ordered by epoch (epochs only grow).
  uint64_t pending_bytes_ = 0;
};

}  // namespace ringcache::internal

#include "epoch.h"

#include <algorithm>

namespace ringcache::internal {

size_t EpochDomain::ThreadSlot() {
  static std::atomic<size_t> next{0};
  thread_local const size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
  return slot;
}

uint64_t EpochDomain::TryAdvance() const {
  uint64_t e = epoch_.load(std::memory_order_seq_cst);
  // Readers still counted under the parity of e-1 (== parity of e+1) may hold
  // references to objects retired in e-1; they must leave before e+1 begins.
  const unsigned old_parity = static_cast<unsigned>((e + 1) & 1);
  for (const Slot& slot : slots_) {
    if (slot.readers[old_parity].load(std::memory_order_seq_cst) != 0) return e;
  }
  if (epoch_.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst)) return e + 1;
  return e;  // Someone else advanced it; e now holds the current value.
}

uint64_t EpochDomain::TotalHits() const {
  uint64_t sum = 0;
  for (const Slot& slot : slots_) sum += slot.hits.load(std::memory_order_relaxed);
  return sum;
}

uint64_t EpochDomain::TotalMisses() const {
  uint64_t sum = 0;
  for (const Slot& slot : slots_) sum += slot.misses.load(std::memory_order_relaxed);
  return sum;
}

RetireList::~RetireList() {
  for (const Item& item : items_) item.deleter(item.object);
}

void RetireList::Retire(void* object, Deleter deleter, uint64_t bytes, uint64_t epoch) {
  items_.push_back(Item{object, deleter, bytes, epoch});
  pending_bytes_ += bytes;
}

size_t RetireList::Reclaim(uint64_t current_epoch) {
  // Items are in epoch order: free the prefix that is at least two epochs old.
  auto safe_end = std::find_if(items_.begin(), items_.end(),
                               [&](const Item& item) { return item.epoch + 2 > current_epoch; });
  const size_t n = static_cast<size_t>(safe_end - items_.begin());
  for (auto it = items_.begin(); it != safe_end; ++it) {
    it->deleter(it->object);
    pending_bytes_ -= it->bytes;
  }
  items_.erase(items_.begin(), safe_end);
  return n;
}

}  // namespace ringcache::internal

// Cache implementation. Layout and invariants (see also docs/design/cache.md):
//
// Shard = { table, mu, byte accounting, CLOCK hand, TTL heap, retire list, counters }.
//
// Table: open addressing, linear probing, power-of-two capacity. A slot is a 64-bit word:
// 0 = empty, 1 = tombstone, otherwise (tag << 48) | Entry* where tag is 16 bits of the
// key hash (filters most foreign probes without touching the entry). Entries never move
// inside a table; a table is rebuilt into a fresh one (and the old one retired) when
// live + tombstones would exceed 3/4 of the capacity, so every probe sequence ends at an
// empty slot.
//
// Entry: immutable key, value and version once published; `deadline_ms` and `referenced`
// are atomics that readers read (and readers set `referenced`); `heap_index` belongs to
// the shard lock. A write never modifies a published entry's value: it publishes a new
// entry in the same slot and retires the old one.
//
// Lock order: a thread holds at most one shard mutex at a time; the janitor's mutex is
// never held while taking a shard mutex. Readers take no lock.
#include "ringcache/cache.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <thread>

#include "epoch.h"
#include "ringcache/sync/mutex.h"
#include "typed/pack.h"
#include "xxhash_inline.h"

namespace ringcache {
namespace {

using internal::EpochDomain;
using internal::Mutex;
using internal::MutexLock;
using internal::RetireList;

constexpr uint64_t kEmpty = 0;
constexpr uint64_t kTombstone = 1;
constexpr int kTagShift = 48;
constexpr uint64_t kPointerMask = (uint64_t{1} << kTagShift) - 1;
constexpr uint32_t kNotInHeap = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMaxShards = 64;
constexpr uint64_t kMinTableCapacity = 16;
// Longest TTL accepted: 100 years. Keeps now + ttl far from int64 overflow.
constexpr uint64_t kMaxTtlMs = Cache::kMaxTtlMs;
// Retired memory is reclaimed once a shard has this many objects pending...
constexpr size_t kReclaimBatch = 32;

struct Entry {
  uint64_t version;
  std::atomic<int64_t> deadline_ms;  // 0 = never expires. Written under the shard lock.
  uint32_t value_size;
  uint32_t heap_index;  // Protected by the shard lock. kNotInHeap if no deadline.
  uint16_t key_size;
  mutable std::atomic<uint8_t> referenced;  // CLOCK reference bit; set by readers and writers.
  ValueType type;  // What the value bytes are (a string, or a collection's pack). Immutable.

  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  std::string_view key() const { return {data(), key_size}; }
  std::string_view value() const { return {data() + key_size, value_size}; }
  int64_t deadline() const { return deadline_ms.load(std::memory_order_relaxed); }
  bool ExpiredAt(int64_t now_ms) const {
    const int64_t d = deadline();
    return d != 0 && d <= now_ms;
  }
};
static_assert(sizeof(Entry) == 32, "Entry header grew: update EntryOverheadBytes()");

// Charged per entry beyond key + value: the 32-byte header, ~16 bytes of allocator
// header and rounding, and ~16 bytes of hash table (8-byte slots at 37-75% load).
constexpr uint64_t kEntryOverhead = 64;

Entry* NewEntry(std::string_view key, std::string_view value, ValueType type = ValueType::kString) {
  void* mem = ::operator new(sizeof(Entry) + key.size() + value.size());
  Entry* e = new (mem) Entry{};
  e->version = 0;
  e->deadline_ms.store(0, std::memory_order_relaxed);
  e->value_size = static_cast<uint32_t>(value.size());
  e->heap_index = kNotInHeap;
  e->key_size = static_cast<uint16_t>(key.size());
  e->referenced.store(1, std::memory_order_relaxed);
  e->type = type;
  if (!key.empty()) std::memcpy(e->data(), key.data(), key.size());
  if (!value.empty()) std::memcpy(e->data() + key.size(), value.data(), value.size());
  if ((reinterpret_cast<uintptr_t>(e) & ~kPointerMask) != 0) {
    // The slot format keeps a tag in the top 16 bits of the pointer; every 64-bit
    // platform we build for gives user space 47- or 48-bit addresses.
    std::abort();
  }
  return e;
}

void DeleteEntry(void* p) {
  Entry* e = static_cast<Entry*>(p);
  e->~Entry();
  ::operator delete(p);
}

uint64_t Charge(size_t key_size, size_t value_size) {
  return key_size + value_size + kEntryOverhead;
}
uint64_t Charge(const Entry* e) { return Charge(e->key_size, e->value_size); }

uint64_t Pack(Entry* e, uint64_t hash) {
  return ((hash >> 32) << kTagShift) | reinterpret_cast<uintptr_t>(e);
}
Entry* Unpack(uint64_t slot) { return reinterpret_cast<Entry*>(slot & kPointerMask); }
bool IsEntry(uint64_t slot) { return slot > kTombstone; }
bool TagMatches(uint64_t slot, uint64_t hash) {
  return (slot >> kTagShift) == ((hash >> 32) & 0xFFFF);
}

struct Table {
  explicit Table(uint64_t capacity) : mask(capacity - 1) {}
  const uint64_t mask;
  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  const std::atomic<uint64_t>* slots() const {
    return reinterpret_cast<const std::atomic<uint64_t>*>(this + 1);
  }
  uint64_t capacity() const { return mask + 1; }

  static Table* Create(uint64_t capacity) {
    void* mem = ::operator new(sizeof(Table) + capacity * sizeof(std::atomic<uint64_t>));
    Table* t = new (mem) Table(capacity);
    for (uint64_t i = 0; i < capacity; ++i) new (&t->slots()[i]) std::atomic<uint64_t>(kEmpty);
    return t;
  }
  static void Destroy(void* p) {
    static_assert(std::is_trivially_destructible_v<std::atomic<uint64_t>>);
    ::operator delete(p);
  }
};

Status CheckKey(std::string_view key, const CacheOptions& o) {
  if (key.empty()) return Status::InvalidArgument("key must not be empty");
  if (key.size() > o.max_key_bytes) {
    return Status::InvalidArgument("key is " + std::to_string(key.size()) +
                                   " bytes, over the max_key_bytes limit of " +
                                   std::to_string(o.max_key_bytes));
  }
  return Status::Ok();
}

Status CheckValue(std::string_view value, const CacheOptions& o) {
  if (value.size() > o.max_value_bytes) {
    return Status::InvalidArgument("value is " + std::to_string(value.size()) +
                                   " bytes, over the max_value_bytes limit of " +
                                   std::to_string(o.max_value_bytes));
  }
  return Status::Ok();
}

Status CheckTtl(uint64_t ttl_ms) {
  if (ttl_ms > kMaxTtlMs) {
    return Status::InvalidArgument("ttl_ms " + std::to_string(ttl_ms) + " is over the limit of " +
                                   std::to_string(kMaxTtlMs) + " ms (100 years)");
  }
  return Status::Ok();
}

Status KeyNotFound() { return Status::NotFound("key not found"); }

// OK if `value` may be stored as `type`: a known type, and for a collection a well-formed
// pack (typed/pack.h), so that no read or write of it later meets a corrupt one.
Status CheckTypedValue(std::string_view value, ValueType type, std::string_view what) {
  if (static_cast<uint8_t>(type) > kMaxValueType) {
    return Status::InvalidArgument(std::string(what) + " value type " +
                                   std::to_string(static_cast<int>(type)) + " is unknown");
  }
  if (type == ValueType::kString) return Status::Ok();
  if (Status s = typed::Validate(value, type == ValueType::kHash); !s.ok()) {
    return Status::InvalidArgument(std::string(what) + " " + std::string(ValueTypeName(type)) +
                                   " is not a valid collection: " + s.message());
  }
  return Status::Ok();
}

// Parses a decimal int64 ("-12", "0", "42"); no spaces, no '+', nothing trailing.
bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

Status CheckSetMode(const SetOptions& options, const uint64_t* current_version) {
  switch (options.mode) {
    case SetMode::kAlways:
      return Status::Ok();
    case SetMode::kIfAbsent:
      if (current_version != nullptr) return Status::AlreadyExists("key already exists");
      return Status::Ok();
    case SetMode::kIfPresent:
      if (current_version == nullptr) return KeyNotFound();
      return Status::Ok();
    case SetMode::kIfVersion:
      if (current_version == nullptr) return KeyNotFound();
      if (*current_version != options.expected_version) {
        return Status::FailedPrecondition("version mismatch: expected " +
                                          std::to_string(options.expected_version) + ", current " +
                                          std::to_string(*current_version));
      }
      return Status::Ok();
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------

struct Cache::Impl {
  struct alignas(64) Shard {
    // Readers load this; replaced under mu when the table is rebuilt. Own cache line, so
    // writers taking mu do not invalidate it for readers.
    std::atomic<Table*> table{nullptr};

    alignas(64) mutable Mutex mu;
    uint64_t live RC_GUARDED_BY(mu) = 0;        // Entries in the table.
    uint64_t tombstones RC_GUARDED_BY(mu) = 0;  // Tombstone slots in the table.
    uint64_t bytes RC_GUARDED_BY(mu) = 0;       // Charged bytes of live entries.
    uint64_t max_version RC_GUARDED_BY(mu) = 0;
    uint64_t hand RC_GUARDED_BY(mu) = 0;         // CLOCK hand: next slot to inspect.
    std::vector<Entry*> heap RC_GUARDED_BY(mu);  // Min-heap of entries with a deadline.
    RetireList retired RC_GUARDED_BY(mu);
    uint64_t sets RC_GUARDED_BY(mu) = 0;
    uint64_t deletes RC_GUARDED_BY(mu) = 0;
    uint64_t evictions RC_GUARDED_BY(mu) = 0;
    uint64_t expirations RC_GUARDED_BY(mu) = 0;
  };

  // Where a key is, or where it would go, in a shard's current table.
  struct Probe {
    uint64_t found = UINT64_MAX;  // Slot index holding the key, or UINT64_MAX.
    uint64_t free = UINT64_MAX;   // First tombstone or empty slot on the probe path.
    Entry* entry = nullptr;
  };

  explicit Impl(const CacheOptions& o) : options(o) {
    clock = o.clock != nullptr ? o.clock : Clock::System();
    shards_n = o.shard_count;
    if (shards_n == 0) {
      shards_n = kMaxShards;
      const uint64_t largest = Charge(o.max_key_bytes, o.max_value_bytes);
      while (shards_n > 1 && o.capacity_bytes / shards_n < largest) shards_n /= 2;
    }
    shard_bits = static_cast<uint32_t>(std::countr_zero(shards_n));
    shard_budget = o.capacity_bytes / shards_n;
    shards = std::make_unique<Shard[]>(shards_n);
    for (uint32_t i = 0; i < shards_n; ++i) shards[i].table.store(Table::Create(kMinTableCapacity));
  }

  ~Impl() {
    StopJanitor();
    for (uint32_t i = 0; i < shards_n; ++i) {
      Shard& sh = shards[i];
      Table* t = sh.table.load();
      for (uint64_t s = 0; s < t->capacity(); ++s) {
        const uint64_t v = t->slots()[s].load(std::memory_order_relaxed);
        if (IsEntry(v)) DeleteEntry(Unpack(v));
      }
      Table::Destroy(t);
      // sh.retired frees what is pending in its destructor.
    }
  }

  Shard& ShardFor(uint64_t hash) const { return shards[hash & (shards_n - 1)]; }
  uint64_t HomeSlot(uint64_t hash) const { return hash >> shard_bits; }

  // Lock-free lookup. REQUIRES: inside an epoch guard (or holding the shard lock).
  const Entry* Find(const Table* t, std::string_view key, uint64_t hash) const {
    for (uint64_t i = HomeSlot(hash) & t->mask;; i = (i + 1) & t->mask) {
      const uint64_t v = t->slots()[i].load(std::memory_order_seq_cst);
      if (v == kEmpty) return nullptr;
      if (IsEntry(v) && TagMatches(v, hash)) {
        const Entry* e = Unpack(v);
        if (e->key_size == key.size() && std::memcmp(e->data(), key.data(), key.size()) == 0)
          return e;
      }
    }
  }

  Probe ProbeLocked(Shard& sh, std::string_view key, uint64_t hash) const RC_REQUIRES(sh.mu) {
    Table* t = sh.table.load(std::memory_order_relaxed);
    Probe p;
    for (uint64_t i = HomeSlot(hash) & t->mask;; i = (i + 1) & t->mask) {
      const uint64_t v = t->slots()[i].load(std::memory_order_relaxed);
      if (v == kEmpty) {
        if (p.free == UINT64_MAX) p.free = i;
        return p;
      }
      if (v == kTombstone) {
        if (p.free == UINT64_MAX) p.free = i;
        continue;
      }
      if (TagMatches(v, hash)) {
        Entry* e = Unpack(v);
        if (e->key_size == key.size() && std::memcmp(e->data(), key.data(), key.size()) == 0) {
          p.found = i;
          p.entry = e;
          return p;
        }
      }
    }
  }

  // --- TTL heap (min-heap on deadline, heap_index kept in each entry) -----------------

  static bool Earlier(const Entry* a, const Entry* b) { return a->deadline() < b->deadline(); }

  void HeapPlace(Shard& sh, size_t i, Entry* e) RC_REQUIRES(sh.mu) {
    sh.heap[i] = e;
    e->heap_index = static_cast<uint32_t>(i);
  }

  void HeapFix(Shard& sh, size_t i) RC_REQUIRES(sh.mu) {
    auto& h = sh.heap;
    Entry* e = h[i];
    while (i > 0 && Earlier(e, h[(i - 1) / 2])) {  // sift up
      HeapPlace(sh, i, h[(i - 1) / 2]);
      i = (i - 1) / 2;
    }
    for (;;) {  // sift down
      size_t child = 2 * i + 1;
      if (child >= h.size()) break;
      if (child + 1 < h.size() && Earlier(h[child + 1], h[child])) ++child;
      if (!Earlier(h[child], e)) break;
      HeapPlace(sh, i, h[child]);
      i = child;
    }
    HeapPlace(sh, i, e);
  }

  void HeapPush(Shard& sh, Entry* e) RC_REQUIRES(sh.mu) {
    sh.heap.push_back(e);
    HeapFix(sh, sh.heap.size() - 1);
  }

  void HeapRemove(Shard& sh, Entry* e) RC_REQUIRES(sh.mu) {
    const size_t i = e->heap_index;
    e->heap_index = kNotInHeap;
    Entry* last = sh.heap.back();
    sh.heap.pop_back();
    if (last != e) {
      HeapPlace(sh, i, last);
      HeapFix(sh, i);
    }
  }

  // `fresh` takes `old`'s place in the heap (or joins/leaves it), by its own deadline.
  void HeapReplace(Shard& sh, Entry* old, Entry* fresh) RC_REQUIRES(sh.mu) {
    const bool fresh_has_deadline = fresh->deadline() != 0;
    if (old != nullptr && old->heap_index != kNotInHeap) {
      if (fresh_has_deadline) {
        const size_t i = old->heap_index;
        old->heap_index = kNotInHeap;
        HeapPlace(sh, i, fresh);
        HeapFix(sh, i);
      } else {
        HeapRemove(sh, old);
      }
    } else if (fresh_has_deadline) {
      HeapPush(sh, fresh);
    }
  }

  // --- table maintenance ---------------------------------------------------------------

  void Retire(Shard& sh, void* object, RetireList::Deleter deleter, uint64_t bytes)
      RC_REQUIRES(sh.mu) {
    sh.retired.Retire(object, deleter, bytes, epoch.current());
  }

  void MaybeReclaim(Shard& sh) RC_REQUIRES(sh.mu) {
    if (sh.retired.pending() < kReclaimBatch && sh.retired.pending_bytes() < shard_budget / 16)
      return;
    epoch.TryAdvance();
    sh.retired.Reclaim(epoch.TryAdvance());
  }

  // Unlinks the entry in slot `idx` and retires it.
  void RemoveAtLocked(Shard& sh, uint64_t idx, Entry* e) RC_REQUIRES(sh.mu) {
    Table* t = sh.table.load(std::memory_order_relaxed);
    t->slots()[idx].store(kTombstone, std::memory_order_seq_cst);
    ++sh.tombstones;
    --sh.live;
    sh.bytes -= Charge(e);
    if (e->heap_index != kNotInHeap) HeapRemove(sh, e);
    Retire(sh, e, DeleteEntry, sizeof(Entry) + e->key_size + e->value_size);
  }

  // Unlinks an entry found by pointer (the heap knows entries, not slots).
  void RemoveEntryLocked(Shard& sh, Entry* e) RC_REQUIRES(sh.mu) {
    const uint64_t hash = internal::Xxh3(e->key());
    const Probe p = ProbeLocked(sh, e->key(), hash);
    if (p.entry != e) std::abort();  // Corrupt shard: an entry in the heap is not in the table.
    RemoveAtLocked(sh, p.found, e);
  }

  // Rebuilds the table sized for live + 1 entries at <= 50% load, dropping tombstones.
  void RebuildLocked(Shard& sh) RC_REQUIRES(sh.mu) {
    Table* old = sh.table.load(std::memory_order_relaxed);
    const uint64_t capacity = std::max(kMinTableCapacity, std::bit_ceil(2 * (sh.live + 1)));
    Table* fresh = Table::Create(capacity);
    for (uint64_t s = 0; s < old->capacity(); ++s) {
      const uint64_t v = old->slots()[s].load(std::memory_order_relaxed);
      if (!IsEntry(v)) continue;
      const uint64_t hash = internal::Xxh3(Unpack(v)->key());
      uint64_t i = HomeSlot(hash) & fresh->mask;
      while (fresh->slots()[i].load(std::memory_order_relaxed) != kEmpty) i = (i + 1) & fresh->mask;
      fresh->slots()[i].store(v, std::memory_order_relaxed);
    }
    sh.table.store(fresh, std::memory_order_seq_cst);  // publishes the slots written above
    sh.tombstones = 0;
    sh.hand = sh.hand * capacity / old->capacity() % capacity;
    Retire(sh, old, Table::Destroy, sizeof(Table) + old->capacity() * sizeof(uint64_t));
  }

  // Counts an entry the cache removes by itself (before it goes) and tells
  // options.on_removal.
  void NoteRemovalLocked(Shard& sh, RemovalCause cause, const Entry* e) RC_REQUIRES(sh.mu) {
    if (cause == RemovalCause::kExpired) {
      ++sh.expirations;
    } else {
      ++sh.evictions;
    }
    if (options.on_removal) [[unlikely]] {
      options.on_removal(
          Removal{.cause = cause, .key = e->key(), .type = e->type, .version = e->version});
    }
  }

  // Makes room for one entry: removes an expired entry if the earliest deadline has
  // passed, else advances the CLOCK hand to the first unreferenced entry and evicts it.
  // Never removes `keep`. Returns false if there is nothing to remove.
  bool EvictOneLocked(Shard& sh, const Entry* keep, int64_t now_ms) RC_REQUIRES(sh.mu) {
    if (!sh.heap.empty() && sh.heap[0] != keep && sh.heap[0]->ExpiredAt(now_ms)) {
      NoteRemovalLocked(sh, RemovalCause::kExpired, sh.heap[0]);
      RemoveEntryLocked(sh, sh.heap[0]);
      return true;
    }
    Table* t = sh.table.load(std::memory_order_relaxed);
    // Two sweeps suffice: the first clears every reference bit it passes.
    for (uint64_t step = 0; step <= 2 * t->capacity(); ++step) {
      const uint64_t idx = sh.hand;
      sh.hand = (sh.hand + 1) & t->mask;
      const uint64_t v = t->slots()[idx].load(std::memory_order_relaxed);
      if (!IsEntry(v)) continue;
      Entry* e = Unpack(v);
      if (e == keep) continue;
      if (e->ExpiredAt(now_ms)) {
        NoteRemovalLocked(sh, RemovalCause::kExpired, e);
        RemoveAtLocked(sh, idx, e);
        return true;
      }
      if (e->referenced.load(std::memory_order_relaxed) != 0) {
        e->referenced.store(0, std::memory_order_relaxed);
        continue;
      }
      NoteRemovalLocked(sh, RemovalCause::kEvicted, e);
      RemoveAtLocked(sh, idx, e);
      return true;
    }
    return false;
  }

  // Sets a live entry's expiry in place (value and version unchanged), keeping the TTL
  // heap in order, and marks it referenced.
  void SetDeadlineLocked(Shard& sh, Entry* e, int64_t deadline_ms) RC_REQUIRES(sh.mu) {
    const bool had_deadline = e->heap_index != kNotInHeap;
    e->deadline_ms.store(deadline_ms, std::memory_order_relaxed);
    e->referenced.store(1, std::memory_order_relaxed);
    if (had_deadline && deadline_ms == 0) {
      HeapRemove(sh, e);
    } else if (had_deadline) {
      HeapFix(sh, e->heap_index);
    } else if (deadline_ms != 0) {
      HeapPush(sh, e);
    }
  }

  // Publishes `fresh` for the key probed in `p` (replacing p.entry if any), evicting as
  // needed to stay within the shard budget. Assigns fresh's version.
  // REQUIRES: Charge(fresh) <= shard_budget; fresh's deadline is set.
  uint64_t InstallLocked(Shard& sh, Probe p, uint64_t hash, Entry* fresh, int64_t now_ms)
      RC_REQUIRES(sh.mu) {
    const uint64_t version =
        std::max(p.entry != nullptr ? p.entry->version : 0, sh.max_version) + 1;
    sh.max_version = version;
    fresh->version = version;
    PublishLocked(sh, p, hash, fresh, now_ms);
    return version;
  }

  // InstallLocked without assigning a version: `fresh` keeps the one it carries (a
  // replicated entry). REQUIRES: as InstallLocked; fresh->version <= sh.max_version.
  void PublishLocked(Shard& sh, Probe p, uint64_t hash, Entry* fresh, int64_t now_ms)
      RC_REQUIRES(sh.mu) {
    Entry* old = p.entry;
    const uint64_t charge = Charge(fresh);
    const uint64_t freed = old != nullptr ? Charge(old) : 0;
    while (sh.bytes - freed + charge > shard_budget) {
      if (!EvictOneLocked(sh, old, now_ms)) break;
    }
    if (old != nullptr) {
      Table* t = sh.table.load(std::memory_order_relaxed);
      t->slots()[p.found].store(Pack(fresh, hash), std::memory_order_seq_cst);
      HeapReplace(sh, old, fresh);
      sh.bytes += charge - freed;
      Retire(sh, old, DeleteEntry, sizeof(Entry) + old->key_size + old->value_size);
    } else {
      Table* t = sh.table.load(std::memory_order_relaxed);
      // Evictions may have turned slots into tombstones and the probe's free slot may be
      // stale only if the table was rebuilt, which happens only here.
      if (4 * (sh.live + sh.tombstones + 1) > 3 * t->capacity()) {
        RebuildLocked(sh);
        p = ProbeLocked(sh, fresh->key(), hash);
        t = sh.table.load(std::memory_order_relaxed);
      }
      if (t->slots()[p.free].load(std::memory_order_relaxed) == kTombstone) --sh.tombstones;
      t->slots()[p.free].store(Pack(fresh, hash), std::memory_order_seq_cst);
      ++sh.live;
      sh.bytes += charge;
      HeapReplace(sh, nullptr, fresh);
    }
    ++sh.sets;
    MaybeReclaim(sh);
  }

  // An entry that is present but expired counts as absent for writers: drop it first.
  // Returns the probe after that.
  Probe ProbeLiveLocked(Shard& sh, std::string_view key, uint64_t hash, int64_t now_ms)
      RC_REQUIRES(sh.mu) {
    Probe p = ProbeLocked(sh, key, hash);
    if (p.entry != nullptr && p.entry->ExpiredAt(now_ms)) {
      NoteRemovalLocked(sh, RemovalCause::kExpired, p.entry);
      RemoveAtLocked(sh, p.found, p.entry);
      p.free = std::min(p.free, p.found);  // The tombstone just made is on the probe path.
      p.found = UINT64_MAX;
      p.entry = nullptr;
    }
    return p;
  }

  Status EntryFits(uint64_t charge) const {
    if (charge > shard_budget) {
      return Status::ResourceExhausted(
          "entry needs " + std::to_string(charge) + " bytes (key + value + " +
          std::to_string(kEntryOverhead) + " overhead), more than a shard's budget of " +
          std::to_string(shard_budget) + " bytes (capacity_bytes / shard_count)");
    }
    return Status::Ok();
  }

  // One shard of ForEachInRange. Returns false if fn asked to stop.
  bool ForEachInShard(HashRange range, uint32_t shard, int64_t now_ms,
                      const std::function<bool(const ItemView&)>& fn) const {
    const Shard& sh = shards[shard];
    // One guard and one table snapshot per shard: a rebuilt table is frozen, so each
    // entry of the snapshot is seen exactly once, in the version it had there.
    auto guard = epoch.Enter();
    const Table* t = sh.table.load(std::memory_order_seq_cst);
    for (uint64_t s = 0; s < t->capacity(); ++s) {
      const uint64_t v = t->slots()[s].load(std::memory_order_seq_cst);
      if (!IsEntry(v)) continue;
      const Entry* e = Unpack(v);
      // Ranges are of placement hashes (hash tags), not of the index hash.
      const uint64_t hash = HashKey(e->key());
      if (!range.Contains(hash) || e->ExpiredAt(now_ms)) continue;
      if (!fn(ItemView{e->key(), e->value(), hash, ItemMeta{e->version, e->deadline(), e->type}})) {
        return false;
      }
    }
    return true;
  }

  // --- janitor ---------------------------------------------------------------------------

  void StartJanitor() {
    std::lock_guard<std::mutex> lock(janitor_mu);
    if (janitor.joinable()) return;
    janitor_stop = false;
    janitor = std::thread([this] { JanitorLoop(); });
  }

  void StopJanitor() {
    {
      std::lock_guard<std::mutex> lock(janitor_mu);
      if (!janitor.joinable()) return;
      janitor_stop = true;
    }
    janitor_cv.notify_all();
    janitor.join();
    std::lock_guard<std::mutex> lock(janitor_mu);
    janitor = std::thread();
  }

  void JanitorLoop() {
    std::unique_lock<std::mutex> lock(janitor_mu);
    while (!janitor_stop) {
      janitor_cv.wait_for(lock, options.janitor_interval, [this] { return janitor_stop; });
      if (janitor_stop) break;
      lock.unlock();
      RunExpiryStep();
      lock.lock();
    }
  }

  size_t RunExpiryStep() {
    const int64_t now = clock->NowMs();
    size_t removed = 0;
    for (uint32_t i = 0; i < shards_n; ++i) {
      Shard& sh = shards[i];
      MutexLock lock(&sh.mu);
      for (uint32_t n = 0;
           n < options.expiry_batch && !sh.heap.empty() && sh.heap[0]->ExpiredAt(now); ++n) {
        NoteRemovalLocked(sh, RemovalCause::kExpired, sh.heap[0]);
        RemoveEntryLocked(sh, sh.heap[0]);
        ++removed;
      }
      // Also return retired memory of shards that no longer see writes.
      if (sh.retired.pending() > 0) {
        epoch.TryAdvance();
        sh.retired.Reclaim(epoch.TryAdvance());
      }
    }
    return removed;
  }

  // Constant after construction.
  const CacheOptions options;
  Clock* clock;
  uint32_t shards_n;
  uint32_t shard_bits;
  uint64_t shard_budget;
  std::unique_ptr<Shard[]> shards;

  mutable EpochDomain epoch;

  // The janitor thread. Protected by janitor_mu.
  std::mutex janitor_mu;
  std::condition_variable janitor_cv;
  bool janitor_stop = false;
  std::thread janitor;
};

// ---------------------------------------------------------------------------------------

Status CacheOptions::Validate() const {
  if (capacity_bytes < 128) {
    return Status::InvalidArgument("capacity_bytes must be at least 128, got " +
                                   std::to_string(capacity_bytes));
  }
  if (shard_count != 0 && (!std::has_single_bit(shard_count) || shard_count > 65536)) {
    return Status::InvalidArgument(
        "shard_count must be 0 (auto) or a power of two up to 65536, got " +
        std::to_string(shard_count));
  }
  if (shard_count != 0 && capacity_bytes / shard_count < Charge(1, 0)) {
    return Status::InvalidArgument("capacity_bytes / shard_count leaves no room for an entry");
  }
  if (max_key_bytes == 0 || max_key_bytes > 65535) {
    return Status::InvalidArgument("max_key_bytes must be in [1, 65535], got " +
                                   std::to_string(max_key_bytes));
  }
  if (max_value_bytes > (uint32_t{1} << 30)) {
    return Status::InvalidArgument("max_value_bytes must be at most 1 GiB, got " +
                                   std::to_string(max_value_bytes));
  }
  if (expiry_batch == 0) return Status::InvalidArgument("expiry_batch must be at least 1");
  if (janitor_interval.count() <= 0) {
    return Status::InvalidArgument("janitor_interval must be positive");
  }
  return Status::Ok();
}

CacheStats& CacheStats::operator+=(const CacheStats& o) {
  hits += o.hits;
  misses += o.misses;
  sets += o.sets;
  deletes += o.deletes;
  evictions += o.evictions;
  expirations += o.expirations;
  items += o.items;
  bytes_used += o.bytes_used;
  capacity_bytes += o.capacity_bytes;
  return *this;
}

uint64_t Cache::EntryOverheadBytes() { return kEntryOverhead; }

Result<std::unique_ptr<Cache>> Cache::Create(CacheOptions options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  auto cache = std::unique_ptr<Cache>(new Cache(std::make_unique<Impl>(options)));
  if (options.start_janitor) cache->StartJanitor();
  return cache;
}

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cache::~Cache() = default;

Status Cache::Get(const HashedKey& hashed, std::string* value, ItemMeta* meta) const {
  return GetTyped(hashed, ValueType::kString, value, meta);
}

Status Cache::GetTyped(const HashedKey& hashed, ValueType type, std::string* value,
                       ItemMeta* meta) const {
  return ReadLive(hashed, type, [&](std::string_view stored, const ItemMeta& m) {
    value->assign(stored);
    if (meta != nullptr) *meta = m;
  });
}

Status Cache::VisitTyped(const HashedKey& hashed, ValueType type, ValueVisitor& visitor) const {
  return ReadLive(hashed, type,
                  [&](std::string_view stored, const ItemMeta& m) { visitor.Visit(stored, m); });
}

template <typename Fn>
Status Cache::ReadLive(const HashedKey& hashed, ValueType type, Fn&& fn) const {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  const Impl::Shard& sh = impl_->ShardFor(hash);
  auto guard = impl_->epoch.Enter();
  const Entry* e = impl_->Find(sh.table.load(std::memory_order_seq_cst), key, hash);
  const int64_t deadline = e != nullptr ? e->deadline() : 0;
  if (e == nullptr || (deadline != 0 && deadline <= impl_->clock->NowMs())) {
    guard.slot().misses.fetch_add(1, std::memory_order_relaxed);
    return KeyNotFound();
  }
  // Set the CLOCK bit only if clear, so hits on hot keys write no shared line.
  if (e->referenced.load(std::memory_order_relaxed) == 0) {
    e->referenced.store(1, std::memory_order_relaxed);
  }
  guard.slot().hits.fetch_add(1, std::memory_order_relaxed);
  if (e->type != type) [[unlikely]] {
    return WrongType();
  }
  fn(e->value(), ItemMeta{e->version, deadline, e->type});
  return Status::Ok();
}

Result<uint64_t> Cache::Set(const HashedKey& hashed, std::string_view value,
                            const SetOptions& options, WriteRecord* record) {
  const std::string_view key = hashed.bytes();
  const CacheOptions& o = impl_->options;
  if (Status s = CheckKey(key, o); !s.ok()) return s;
  if (Status s = CheckValue(value, o); !s.ok()) return s;
  if (Status s = CheckTtl(options.ttl_ms); !s.ok()) return s;
  if (Status s = impl_->EntryFits(Charge(key.size(), value.size())); !s.ok()) return s;

  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  Entry* fresh = NewEntry(key, value);  // Allocated before taking the lock.
  const int64_t now = impl_->clock->NowMs();
  fresh->deadline_ms.store(options.ttl_ms == 0 ? 0 : now + static_cast<int64_t>(options.ttl_ms),
                           std::memory_order_relaxed);

  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  Status refused = CheckSetMode(options, p.entry != nullptr ? &p.entry->version : nullptr);
  if (!refused.ok()) {
    DeleteEntry(fresh);
    return refused;
  }
  const int64_t deadline = fresh->deadline();
  const uint64_t version = impl_->InstallLocked(sh, p, hash, fresh, now);
  if (record != nullptr) {
    *record = {WriteRecord::Kind::kSet,
               std::string(key),
               std::string(value),
               version,
               deadline,
               ValueType::kString,
               deadline != 0 ? "set expire" : "set"};
  }
  return version;
}

Status Cache::Delete(const HashedKey& hashed, WriteRecord* record) {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const int64_t now = impl_->clock->NowMs();
  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  if (p.entry == nullptr) return KeyNotFound();
  if (record != nullptr) {
    *record = {WriteRecord::Kind::kDelete,
               std::string(key),
               {},
               p.entry->version,
               0,
               ValueType::kString,
               "del"};
  }
  impl_->RemoveAtLocked(sh, p.found, p.entry);
  ++sh.deletes;
  impl_->MaybeReclaim(sh);
  return Status::Ok();
}

Status Cache::Touch(const HashedKey& hashed, uint64_t ttl_ms, WriteRecord* record) {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  if (Status s = CheckTtl(ttl_ms); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const int64_t now = impl_->clock->NowMs();
  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  if (p.entry == nullptr) return KeyNotFound();
  Entry* e = p.entry;
  impl_->SetDeadlineLocked(sh, e, ttl_ms == 0 ? 0 : now + static_cast<int64_t>(ttl_ms));
  if (record != nullptr) {
    *record = {WriteRecord::Kind::kTouch,
               std::string(key),
               std::string(e->value()),
               e->version,
               e->deadline(),
               e->type,
               "expire"};
  }
  return Status::Ok();
}

Result<UpdateResult> Cache::Update(
    const HashedKey& hashed,
    const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
    WriteRecord* record, std::optional<ValueType> expected) {
  const std::string_view key = hashed.bytes();
  const CacheOptions& o = impl_->options;
  if (Status s = CheckKey(key, o); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const int64_t now = impl_->clock->NowMs();
  // An absolute deadline is bounded like a TTL; one already past means "expired now".
  auto check_deadline = [&](int64_t deadline_ms) -> Status {
    if (deadline_ms < 0) {
      return Status::InvalidArgument("expiry must be >= 0 (0 = never expires), got " +
                                     std::to_string(deadline_ms));
    }
    if (deadline_ms > now && static_cast<uint64_t>(deadline_ms - now) > kMaxTtlMs) {
      return Status::InvalidArgument("expiry " + std::to_string(deadline_ms) + " is more than " +
                                     std::to_string(kMaxTtlMs) + " ms (100 years) from now");
    }
    return Status::Ok();
  };

  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  UpdateResult result;
  Mutation m;
  // Removes the live entry, as Delete does (also for an expiry already past).
  auto remove = [&]() RC_REQUIRES(sh.mu) {
    if (record != nullptr) {
      *record = {WriteRecord::Kind::kDelete,
                 std::string(key),
                 {},
                 p.entry->version,
                 0,
                 ValueType::kString,
                 m.event.empty() ? std::string_view("del") : m.event};
    }
    impl_->RemoveAtLocked(sh, p.found, p.entry);
    ++sh.deletes;
    impl_->MaybeReclaim(sh);
    result.after = {};
    return result;
  };
  if (p.entry != nullptr) {
    result.existed = true;
    result.before = ItemMeta{p.entry->version, p.entry->deadline(), p.entry->type};
    result.after = result.before;
    if (expected.has_value() && p.entry->type != *expected) return WrongType();
    const ItemView current{key, p.entry->value(), hashed.placement(), result.before};
    if (Status s = fn(&current, &m); !s.ok()) return s;
  } else {
    if (Status s = fn(nullptr, &m); !s.ok()) return s;
  }
  switch (m.kind) {
    case Mutation::Kind::kNone:
      return result;
    case Mutation::Kind::kDelete:
      if (p.entry == nullptr) return result;
      return remove();
    case Mutation::Kind::kExpire: {
      if (p.entry == nullptr) return result;
      if (Status s = check_deadline(m.deadline_ms); !s.ok()) return s;
      if (m.deadline_ms != 0 && m.deadline_ms <= now) {
        // Expired at once (EXPIRE with a time in the past): the key goes, as a delete.
        return remove();
      }
      impl_->SetDeadlineLocked(sh, p.entry, m.deadline_ms);
      result.after.deadline_ms = m.deadline_ms;
      if (record != nullptr) {
        *record = {WriteRecord::Kind::kTouch,
                   std::string(key),
                   std::string(p.entry->value()),
                   p.entry->version,
                   m.deadline_ms,
                   p.entry->type,
                   m.event.empty() ? std::string_view("expire") : m.event};
      }
      return result;
    }
    case Mutation::Kind::kSet:
      break;
  }
  const int64_t deadline =
      m.keep_deadline ? (p.entry != nullptr ? p.entry->deadline() : 0) : m.deadline_ms;
  if (Status s = CheckValue(m.value, o); !s.ok()) return s;
  if (m.type != ValueType::kString) {
    if (Status s = CheckTypedValue(m.value, m.type, "stored"); !s.ok()) return s;
  }
  if (Status s = check_deadline(deadline); !s.ok()) return s;
  if (Status s = impl_->EntryFits(Charge(key.size(), m.value.size())); !s.ok()) return s;
  if (deadline != 0 && deadline <= now) {
    // Stored already expired: nothing to store, and an older value must not outlive it.
    if (p.entry == nullptr) return result;
    return remove();
  }
  // Under the lock: the value was only known here.
  Entry* fresh = NewEntry(key, m.value, m.type);
  fresh->deadline_ms.store(deadline, std::memory_order_relaxed);
  const uint64_t version = impl_->InstallLocked(sh, p, hash, fresh, now);  // Counts the set.
  result.after = ItemMeta{version, deadline, m.type};
  if (record != nullptr) {
    *record = {WriteRecord::Kind::kSet,
               std::string(key),
               std::move(m.value),
               version,
               deadline,
               m.type,
               m.event.empty() ? std::string_view("set") : m.event};
  }
  return result;
}

Result<uint64_t> Cache::Ttl(const HashedKey& hashed, ValueType* type) const {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  const Impl::Shard& sh = impl_->ShardFor(hash);
  auto guard = impl_->epoch.Enter();
  const Entry* e = impl_->Find(sh.table.load(std::memory_order_seq_cst), key, hash);
  if (e == nullptr) return KeyNotFound();
  const int64_t deadline = e->deadline();
  if (deadline != 0 && deadline <= impl_->clock->NowMs()) return KeyNotFound();
  if (type != nullptr) *type = e->type;
  if (deadline == 0) return uint64_t{0};
  const int64_t now = impl_->clock->NowMs();
  return static_cast<uint64_t>(std::max<int64_t>(deadline - now, 1));
}

Result<IncrResult> Cache::Incr(const HashedKey& hashed, int64_t delta, uint64_t ttl_ms_if_created,
                               WriteRecord* record) {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  if (Status s = CheckTtl(ttl_ms_if_created); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const int64_t now = impl_->clock->NowMs();

  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  int64_t current = 0;
  int64_t deadline = ttl_ms_if_created == 0 ? 0 : now + static_cast<int64_t>(ttl_ms_if_created);
  if (p.entry != nullptr) {
    if (p.entry->type != ValueType::kString) return WrongType();
    if (!ParseInt64(p.entry->value(), &current)) {
      return Status::FailedPrecondition("value is not a decimal 64-bit integer");
    }
    deadline = p.entry->deadline();
  }
  int64_t next = 0;
  if (__builtin_add_overflow(current, delta, &next)) {
    return Status::OutOfRange("incrementing " + std::to_string(current) + " by " +
                              std::to_string(delta) + " overflows a 64-bit integer");
  }
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), next);
  (void)ec;  // 24 bytes always hold an int64.
  const std::string_view text(buf, static_cast<size_t>(end - buf));
  if (Status s = CheckValue(text, impl_->options); !s.ok()) return s;
  if (Status s = impl_->EntryFits(Charge(key.size(), text.size())); !s.ok()) return s;
  Entry* fresh = NewEntry(key, text);
  fresh->deadline_ms.store(deadline, std::memory_order_relaxed);
  const uint64_t version = impl_->InstallLocked(sh, p, hash, fresh, now);
  if (record != nullptr) {
    *record = {WriteRecord::Kind::kSet, std::string(key), std::string(text), version, deadline,
               ValueType::kString,      "incrby"};
  }
  return IncrResult{next, version};
}

namespace {

// Cache::Prefetch over `n` keys whose index hashes hash_at(i) gives.
template <typename Impl, typename HashAt>
void PrefetchHashes(Impl& impl, size_t n_keys, HashAt&& hash_at) {
  // In rounds of kRound keys: first ask for every key's home slot, then read the slots
  // (by now arriving together) and ask for the entries they point to. A probe that goes
  // past the home slot is rare at this table's load and is simply not prefetched.
  constexpr size_t kRound = 16;
  const std::atomic<uint64_t>* slots[kRound];
  uint64_t hashes[kRound];
  auto guard = impl.epoch.Enter();  // The tables must outlive the second pass.
  for (size_t first = 0; first < n_keys; first += kRound) {
    const size_t n = std::min(kRound, n_keys - first);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t hash = hash_at(first + i);
      const Table* t = impl.ShardFor(hash).table.load(std::memory_order_acquire);
      slots[i] = &t->slots()[impl.HomeSlot(hash) & t->mask];
      hashes[i] = hash;
      __builtin_prefetch(slots[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      const uint64_t v = slots[i]->load(std::memory_order_relaxed);
      if (!IsEntry(v) || !TagMatches(v, hashes[i])) continue;
      const char* e = reinterpret_cast<const char*>(Unpack(v));
      __builtin_prefetch(e);
      // The key and the value follow the 32-byte header, often on the next line.
      __builtin_prefetch(e + 64);
    }
  }
}

}  // namespace

void Cache::Prefetch(std::span<const std::string_view> keys) const {
  PrefetchHashes(*impl_, keys.size(), [&](size_t i) { return internal::Xxh3(keys[i]); });
}

void Cache::Prefetch(std::span<const HashedKey> keys) const {
  PrefetchHashes(*impl_, keys.size(), [&](size_t i) { return keys[i].index(); });
}

std::vector<Result<Item>> Cache::MultiGet(std::span<const std::string_view> keys) const {
  const std::vector<HashedKey> hashed(keys.begin(), keys.end());  // Hashed once.
  Prefetch(hashed);
  std::vector<Result<Item>> out;
  out.reserve(keys.size());
  for (const HashedKey& key : hashed) {
    Item item;
    Status s = Get(key, &item.value, &item.meta);
    if (s.ok()) {
      out.emplace_back(std::move(item));
    } else {
      out.emplace_back(std::move(s));
    }
  }
  return out;
}

std::vector<Result<uint64_t>> Cache::MultiSet(std::span<const SetItem> items) {
  std::vector<Result<uint64_t>> out;
  out.reserve(items.size());
  for (const SetItem& item : items) out.push_back(Set(item.key, item.value, item.options));
  return out;
}

std::vector<Status> Cache::MultiDelete(std::span<const std::string_view> keys) {
  std::vector<Status> out;
  out.reserve(keys.size());
  for (std::string_view key : keys) out.push_back(Delete(key));
  return out;
}

void Cache::ForEachInRange(HashRange range, const std::function<bool(const ItemView&)>& fn) const {
  const int64_t now = impl_->clock->NowMs();
  for (uint32_t i = 0; i < impl_->shards_n; ++i) {
    if (!impl_->ForEachInShard(range, i, now, fn)) return;
  }
}

void Cache::ForEachInRange(HashRange range, uint32_t shard,
                           const std::function<bool(const ItemView&)>& fn) const {
  assert(shard < impl_->shards_n);
  if (shard >= impl_->shards_n) return;
  impl_->ForEachInShard(range, shard, impl_->clock->NowMs(), fn);
}

Result<bool> Cache::ApplyReplicated(const HashedKey& hashed, std::string_view value,
                                    const ItemMeta& meta) {
  const std::string_view key = hashed.bytes();
  const CacheOptions& o = impl_->options;
  if (Status s = CheckKey(key, o); !s.ok()) return s;
  if (Status s = CheckValue(value, o); !s.ok()) return s;
  if (meta.version == 0) return Status::InvalidArgument("replicated version must be >= 1, got 0");
  if (Status s = CheckTypedValue(value, meta.type, "replicated"); !s.ok()) return s;
  if (meta.deadline_ms < 0) {
    return Status::InvalidArgument("replicated deadline_ms must be >= 0 (0 = never expires), got " +
                                   std::to_string(meta.deadline_ms));
  }
  const int64_t now = impl_->clock->NowMs();
  // Same bound as a TTL, measured from this node's clock: a deadline further out than
  // that is corrupt input, not clock skew.
  if (meta.deadline_ms > now && static_cast<uint64_t>(meta.deadline_ms - now) > kMaxTtlMs) {
    return Status::InvalidArgument("replicated deadline_ms " + std::to_string(meta.deadline_ms) +
                                   " is more than " + std::to_string(kMaxTtlMs) +
                                   " ms (100 years) from now");
  }
  if (Status s = impl_->EntryFits(Charge(key.size(), value.size())); !s.ok()) return s;

  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const bool expired = meta.deadline_ms != 0 && meta.deadline_ms <= now;
  // Allocated before taking the lock (and freed unused if the apply is refused).
  Entry* fresh = expired ? nullptr : NewEntry(key, value, meta.type);

  MutexLock lock(&sh.mu);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  if (p.entry != nullptr && p.entry->version >= meta.version) {
    if (fresh != nullptr) DeleteEntry(fresh);
    return false;
  }
  // Whatever happens below, this version is now taken for the key: later local writes
  // must number above it.
  sh.max_version = std::max(sh.max_version, meta.version);
  if (expired) {
    // The primary's value is already gone; an older copy here must not outlive it.
    if (p.entry != nullptr) {
      impl_->NoteRemovalLocked(sh, RemovalCause::kExpired, p.entry);
      impl_->RemoveAtLocked(sh, p.found, p.entry);
      impl_->MaybeReclaim(sh);
    }
    return false;
  }
  fresh->version = meta.version;
  fresh->deadline_ms.store(meta.deadline_ms, std::memory_order_relaxed);
  impl_->PublishLocked(sh, p, hash, fresh, now);
  return true;
}

Result<bool> Cache::ApplyReplicatedDelete(const HashedKey& hashed, uint64_t version) {
  const std::string_view key = hashed.bytes();
  if (Status s = CheckKey(key, impl_->options); !s.ok()) return s;
  const uint64_t hash = hashed.index();
  Impl::Shard& sh = impl_->ShardFor(hash);
  const int64_t now = impl_->clock->NowMs();
  MutexLock lock(&sh.mu);
  // A re-create of the key after this delete must get a version above the deleted one.
  sh.max_version = std::max(sh.max_version, version);
  const Impl::Probe p = impl_->ProbeLiveLocked(sh, key, hash, now);
  if (p.entry == nullptr || p.entry->version > version) return false;
  impl_->RemoveAtLocked(sh, p.found, p.entry);
  ++sh.deletes;
  impl_->MaybeReclaim(sh);
  return true;
}

void Cache::Clear() {
  for (uint32_t i = 0; i < impl_->shards_n; ++i) {
    Impl::Shard& sh = impl_->shards[i];
    MutexLock lock(&sh.mu);
    Table* old = sh.table.load(std::memory_order_relaxed);
    // Readers inside an epoch guard may still be reading the old table and its entries:
    // both are retired, not freed.
    sh.table.store(Table::Create(kMinTableCapacity), std::memory_order_seq_cst);
    for (uint64_t s = 0; s < old->capacity(); ++s) {
      const uint64_t v = old->slots()[s].load(std::memory_order_relaxed);
      if (!IsEntry(v)) continue;
      Entry* e = Unpack(v);
      impl_->Retire(sh, e, DeleteEntry, sizeof(Entry) + e->key_size + e->value_size);
    }
    impl_->Retire(sh, old, Table::Destroy, sizeof(Table) + old->capacity() * sizeof(uint64_t));
    sh.heap.clear();
    sh.live = 0;
    sh.tombstones = 0;
    sh.bytes = 0;
    sh.hand = 0;
    // max_version is kept: versions never go back.
    impl_->MaybeReclaim(sh);
  }
}

void Cache::RaiseVersionFloor(uint64_t floor) {
  for (uint32_t i = 0; i < impl_->shards_n; ++i) {
    Impl::Shard& sh = impl_->shards[i];
    MutexLock lock(&sh.mu);
    sh.max_version = std::max(sh.max_version, floor);
  }
}

uint64_t Cache::HighestVersion() const {
  uint64_t highest = 0;
  for (uint32_t i = 0; i < impl_->shards_n; ++i) {
    Impl::Shard& sh = impl_->shards[i];
    MutexLock lock(&sh.mu);
    highest = std::max(highest, sh.max_version);
  }
  return highest;
}

size_t Cache::RunExpiryStep() { return impl_->RunExpiryStep(); }
void Cache::StartJanitor() { impl_->StartJanitor(); }
void Cache::StopJanitor() { impl_->StopJanitor(); }

CacheStats Cache::Stats() const {
  CacheStats total;
  for (uint32_t i = 0; i < impl_->shards_n; ++i) {
    Impl::Shard& sh = impl_->shards[i];
    MutexLock lock(&sh.mu);
    total.sets += sh.sets;
    total.deletes += sh.deletes;
    total.evictions += sh.evictions;
    total.expirations += sh.expirations;
    total.items += sh.live;
    total.bytes_used += sh.bytes;
  }
  total.hits = impl_->epoch.TotalHits();
  total.misses = impl_->epoch.TotalMisses();
  total.capacity_bytes = impl_->options.capacity_bytes;
  return total;
}

const CacheOptions& Cache::options() const { return impl_->options; }
uint32_t Cache::shard_count() const { return impl_->shards_n; }
uint64_t Cache::shard_capacity_bytes() const { return impl_->shard_budget; }

}  // namespace ringcache

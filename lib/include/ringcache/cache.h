// Cache: the local, in-memory, thread-safe key-value cache of one ringcache node.
//
// Sharded: a key's shard is chosen by the low bits of HashBytes(key), the hash of the whole
// key (not its placement hash HashKey, which keys sharing a hash tag share). Each shard has
//  - an open-addressing hash table that readers probe without taking any lock;
//  - CLOCK eviction over that table (an approximation of LRU, see below);
//  - an indexed min-heap of TTL deadlines;
//  - byte accounting against capacity_bytes / shard_count.
//
// Reads (Get, MultiGet, Ttl, ForEachInRange) take no lock and write no shared cache
// line on a hit, so hits on the same hot key scale across cores. Writers take their
// shard's mutex. Memory that a reader might still see is reclaimed only after every
// reader that could see it has left (epoch-based reclamation, docs/design/cache.md).
//
// Eviction is CLOCK (second chance): a read or write sets an entry's reference bit; the
// shard's eviction hand sweeps the table clearing bits and evicts the first entry whose
// bit is already clear. An entry is therefore only evicted if it has not been read or
// written since the hand last passed it. Expired entries are evicted first. The hit
// ratio against exact LRU at the same budget is measured by benchmarks/cache_bench.
//
// Expiry: an expired entry is never returned (every read checks its deadline). Expired
// entries are removed by writers that meet them, by eviction, and by the janitor thread,
// which expires at most `expiry_batch` entries per shard per tick.
//
// Versions: every write gives the entry a new 64-bit version, strictly greater than any
// version its key had before on this cache (also across delete and re-create), and above
// the version floor (RaiseVersionFloor).
//
// Thread safety: has internal synchronization; every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/clock.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"
#include "ringcache/value_type.h"
#include "ringcache/write_record.h"

namespace ringcache {

// Why the cache removed an entry by itself (CacheOptions::on_removal).
enum class RemovalCause : uint8_t {
  kExpired,  // Its deadline passed (removed by the janitor, by eviction, or by a writer or a
             // replicated write that met it).
  kEvicted,  // Removed to make room under the byte budget.
};

// An entry the cache removed by itself.
struct Removal {
  RemovalCause cause = RemovalCause::kExpired;
  std::string_view key;  // Valid during the call only.
  ValueType type = ValueType::kString;
  uint64_t version = 0;  // The entry's version when it went.
};

struct CacheOptions {
  // Byte budget for key + value + per-entry overhead over all shards. Default 64 MiB.
  uint64_t capacity_bytes = uint64_t{64} << 20;
  // Number of shards, a power of two. 0 (default) = 64, halved while a shard's budget
  // would be smaller than two maximum-size entries.
  uint32_t shard_count = 0;
  // Largest key accepted, in bytes (keys must also be non-empty). Default 4 KiB; at most 65535.
  uint32_t max_key_bytes = 4096;
  // Largest value accepted, in bytes. Default 8 MiB.
  uint32_t max_value_bytes = uint32_t{8} << 20;
  // Source of time for TTLs. Not owned; must outlive the cache. nullptr = Clock::System().
  Clock* clock = nullptr;
  // Most expired entries the janitor removes per shard per tick. Default 256.
  uint32_t expiry_batch = 256;
  // How often the janitor ticks. Default 100 ms.
  std::chrono::milliseconds janitor_interval{100};
  // Whether Create() starts the janitor thread. Default true; tests using a ManualClock
  // usually turn it off and call RunExpiryStep() themselves.
  bool start_janitor = true;
  // Called for every entry the cache removes by itself (expired or evicted; not Delete,
  // not Clear), once, before it goes: the hook keyspace notifications are built on. Runs
  // on the removing thread with the entry's shard locked: it must be quick, must not
  // block and must not call into this cache. Empty (default): nothing is called.
  std::function<void(const Removal&)> on_removal = nullptr;

  // OK, or INVALID_ARGUMENT naming the offending field.
  Status Validate() const;
};

enum class SetMode {
  kAlways,     // Insert or replace.
  kIfAbsent,   // Only insert; ALREADY_EXISTS if the key is present.
  kIfPresent,  // Only replace; NOT_FOUND if the key is absent.
  kIfVersion,  // Only replace the version given in SetOptions::expected_version;
               // NOT_FOUND if absent, FAILED_PRECONDITION if the version differs.
};

struct SetOptions {
  uint64_t ttl_ms = 0;  // Time to live in milliseconds; 0 = never expires.
  SetMode mode = SetMode::kAlways;
  uint64_t expected_version = 0;  // Used only with SetMode::kIfVersion.
};

// Whether a Set with `options` may write over a key whose live entry has version
// `*current_version` (nullptr: the key is absent): OK, or the error SetMode names.
// Cache::Set decides with it; a read-modify-write that stands for a conditional Set
// (an Update function) calls it to refuse the same way.
Status CheckSetMode(const SetOptions& options, const uint64_t* current_version);

// Metadata returned alongside a value.
struct ItemMeta {
  uint64_t version = 0;
  int64_t deadline_ms = 0;  // Absolute expiry (Unix ms); 0 = never expires.
  // What the value bytes are: a string, or a collection's pack (ringcache/typed.h).
  ValueType type = ValueType::kString;
};

// A value with its metadata, as returned by MultiGet.
struct Item {
  std::string value;
  ItemMeta meta;
};

// One write of a MultiSet.
struct SetItem {
  std::string_view key;
  std::string_view value;
  SetOptions options;
};

struct IncrResult {
  int64_t value = 0;     // The value after the increment.
  uint64_t version = 0;  // The entry's new version.
};

// What a Cache::Update does to its key, as its function decides.
struct Mutation {
  enum class Kind : uint8_t {
    kNone,    // Leave the key as it is (a read, or a condition that does not hold).
    kSet,     // Store `value` (a new version).
    kDelete,  // Remove the key (if it exists).
    kExpire,  // Change only the expiry to `deadline_ms`, keeping value and version (as Touch).
  };
  Kind kind = Kind::kNone;
  std::string value;                    // kSet.
  ValueType type = ValueType::kString;  // kSet: what `value` is.
  // kSet: keep the entry's expiry (none for a key that did not exist); else `deadline_ms`.
  bool keep_deadline = false;
  int64_t deadline_ms = 0;  // kSet without keep_deadline, kExpire: absolute, 0 = never.
  // The write's name for WriteRecord::event (static text, e.g. "incrbyfloat", "hdel");
  // empty: "set", "del" or "expire" by kind.
  std::string_view event = {};
};

// What a Cache::Update found and left.
struct UpdateResult {
  bool existed = false;  // The key was live before.
  ItemMeta before;       // Its metadata then (if it existed).
  ItemMeta after;        // The key's metadata after (version 0: it does not exist).
};

// An entry seen by ForEachInRange. The views are valid only during the callback.
struct ItemView {
  std::string_view key;
  std::string_view value;
  uint64_t hash = 0;  // HashKey(key): the placement hash (a hash tag's, if the key has one)
  ItemMeta meta;
};

// Counters that add up (across shards, caches or nodes).
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t sets = 0;         // Successful writes: Set, MultiSet items, Incr.
  uint64_t deletes = 0;      // Successful deletes.
  uint64_t evictions = 0;    // Entries removed to make room.
  uint64_t expirations = 0;  // Expired entries removed (by the janitor, eviction or a writer).
  uint64_t items = 0;        // Entries currently stored (may include expired ones not yet removed).
  uint64_t bytes_used = 0;   // Charged bytes: key + value + overhead of each entry.
  uint64_t capacity_bytes = 0;

  CacheStats& operator+=(const CacheStats& o);
};

class Cache {
 public:
  // Fixed bytes charged per entry on top of key and value: the entry header, the
  // allocator's header and rounding, and the entry's share of the hash table.
  static uint64_t EntryOverheadBytes();

  // The longest TTL accepted (100 years); longer is INVALID_ARGUMENT.
  static constexpr uint64_t kMaxTtlMs = uint64_t{100} * 365 * 24 * 3600 * 1000;

  // Validates the options and builds a cache (starting the janitor if asked to).
  static Result<std::unique_ptr<Cache>> Create(CacheOptions options = {});

  // Stops the janitor. REQUIRES: no other thread is using the cache.
  ~Cache();

  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // The methods that take one key take it as a HashedKey (key_hash.h): a plain key converts
  // to one (hashed then); a caller that hashed the key already passes it on, hashed once.

  // Copies the value of `key` into *value (and its metadata into *meta if non-null).
  // NOT_FOUND if the key is absent or expired; INVALID_ARGUMENT if the key breaks a limit;
  // WrongType() (FAILED_PRECONDITION "WRONGTYPE ...") if it holds a collection.
  Status Get(const HashedKey& key, std::string* value, ItemMeta* meta = nullptr) const;
  // The same for a key that must hold `type` (a collection's pack, for ringcache/typed.h).
  Status GetTyped(const HashedKey& key, ValueType type, std::string* value,
                  ItemMeta* meta = nullptr) const;
  // Reads the stored value of a key that holds `type` in place, without copying it:
  // visitor.Visit(value, meta) runs with a view that ends with the call. The visit must be
  // quick (it holds back the freeing of replaced entries) and must not call this cache.
  // Errors as GetTyped's; the visitor is then not called.
  class ValueVisitor {
   public:
    virtual void Visit(std::string_view value, const ItemMeta& meta) = 0;

   protected:
    ~ValueVisitor() = default;
  };
  Status VisitTyped(const HashedKey& key, ValueType type, ValueVisitor& visitor) const;

  // The write methods take an optional WriteRecord* (write_record.h): on success it is set
  // to what the write did (the version and absolute expiry it left, the value as stored),
  // taken inside the write. nullptr costs nothing; on an error it is left unchanged.

  // Writes `key` according to options.mode; returns the new version.
  // INVALID_ARGUMENT (limit named) for a bad key or value; RESOURCE_EXHAUSTED if the
  // entry is larger than a shard's budget; see SetMode for the mode-specific errors.
  Result<uint64_t> Set(const HashedKey& key, std::string_view value, const SetOptions& options = {},
                       WriteRecord* record = nullptr);

  // Removes `key`. NOT_FOUND if it is absent or expired. The record (kDelete) carries the
  // version the removed entry had.
  Status Delete(const HashedKey& key, WriteRecord* record = nullptr);

  // Sets a new TTL (0 = never expires) without changing value or version.
  // NOT_FOUND if the key is absent or expired.
  Status Touch(const HashedKey& key, uint64_t ttl_ms, WriteRecord* record = nullptr);

  // Remaining time to live in ms: >= 1 for an entry that expires, 0 for one that never
  // does. NOT_FOUND if the key is absent or expired. `type` (if non-null) receives what
  // the key holds (Redis's TYPE).
  Result<uint64_t> Ttl(const HashedKey& key, ValueType* type = nullptr) const;

  // Adds `delta` (may be negative) to the decimal integer stored at `key`. An absent key
  // counts as 0 and is created with `ttl_ms_if_created`; an existing key keeps its TTL.
  // FAILED_PRECONDITION if the value is not a decimal int64 (WrongType() if the key holds
  // a collection); OUT_OF_RANGE on overflow.
  // The record is a kSet of the new decimal text.
  Result<IncrResult> Incr(const HashedKey& key, int64_t delta, uint64_t ttl_ms_if_created = 0,
                          WriteRecord* record = nullptr);

  // A read-modify-write of `key` under its shard lock, for writes whose result depends on
  // what the key holds (append, get-and-set, get-and-delete, conditional expiry, typed
  // values): `fn(current, &mutation)` sees the live entry (nullptr if the key is absent or
  // expired) and fills the mutation, or returns an error, which Update returns with
  // nothing changed. `fn` runs under the shard lock: it must be quick, must not call this
  // cache, and must copy what it needs from `current` (the views end with it).
  // The mutation is checked like the write it stands for (value and key limits, the
  // budget, an absolute deadline at most 100 years from now; INVALID_ARGUMENT or
  // RESOURCE_EXHAUSTED). The record is kSet, kDelete or kTouch, as Set, Delete and Touch
  // leave; none for kNone (record left unchanged) or a kDelete of an absent key.
  // `expected`: the type the key must hold if it exists (WrongType() otherwise, before fn
  // runs); nullopt = any (an expiry change). The stored value gets mutation.type.
  Result<UpdateResult> Update(
      const HashedKey& key,
      const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
      WriteRecord* record = nullptr, std::optional<ValueType> expected = ValueType::kString);

  // A hint that `keys` are about to be looked up: starts loading, for all of them at once,
  // the memory their lookups will touch (the table slot, then the entry), so that the cache
  // misses of a batch overlap instead of coming one after another. Changes nothing and
  // returns at once; a key that is absent, invalid or written meanwhile only wastes the
  // hint. Worth it for batches of keys spread over a table larger than the CPU cache.
  void Prefetch(std::span<const std::string_view> keys) const;
  void Prefetch(std::span<const HashedKey> keys) const;

  // Batched forms: one result per input, in input order; each behaves like its single form.
  // MultiGet prefetches its keys (see Prefetch).
  std::vector<Result<Item>> MultiGet(std::span<const std::string_view> keys) const;
  std::vector<Result<uint64_t>> MultiSet(std::span<const SetItem> items);
  std::vector<Status> MultiDelete(std::span<const std::string_view> keys);

  // Calls fn for every live entry whose placement hash (HashKey) lies in `range`, shard by
  // shard, until fn returns false. Takes no lock: writers proceed meanwhile. An entry
  // present for the whole iteration is visited at least once; one written or deleted
  // meanwhile may or may not be; an entry may be visited twice if its shard's table was
  // rebuilt meanwhile.
  // fn runs inside a read-side critical section (it delays memory reclamation): it must
  // not block for long and must not call this cache's write methods.
  void ForEachInRange(HashRange range, const std::function<bool(const ItemView&)>& fn) const;
  // The same over one shard (0 <= shard < shard_count()): lets a caller copy a range out
  // shard by shard, leaving the read-side critical section between shards.
  void ForEachInRange(HashRange range, uint32_t shard,
                      const std::function<bool(const ItemView&)>& fn) const;

  // ---- Replication: a replica applies what its primary shipped (results, not commands).

  // Stores `key` = `value` of type meta.type with exactly meta.version and the absolute
  // meta.deadline_ms (0 = never expires), unless the cache holds the key at a version >=
  // meta.version. Returns true if stored; false if the cache already had that version or a newer
  // one, or the deadline has already passed (nothing stored; an older copy of the key is removed,
  // since the primary's newer value has expired too). Later local writes of the key (and of every
  // key of its shard) get versions above meta.version, whether or not this stored anything. Counts
  // as a set in Stats. Errors as Set (limits, RESOURCE_EXHAUSTED), and INVALID_ARGUMENT for
  // meta.version 0, an unknown type, a negative deadline or one more than 100 years from now.
  Result<bool> ApplyReplicated(const HashedKey& key, std::string_view value, const ItemMeta& meta);
  // Removes `key` if its version is <= `version` (the version the deleted entry had on the
  // primary). Returns true if it removed an entry (counted as a delete in Stats); false if
  // the key is absent, expired or newer. Later local writes of the key get versions above
  // `version`. INVALID_ARGUMENT for a bad key.
  Result<bool> ApplyReplicatedDelete(const HashedKey& key, uint64_t version);

  // Drops every entry (a node that was declared failed rejoins empty). Items and bytes go
  // to 0; nothing is counted as a delete, an eviction or an expiration. Versions keep
  // growing: a key written afterwards gets a version above any it had before. Shard by
  // shard, each under its lock: safe with concurrent operations, and an entry written
  // while Clear runs may survive it (if its shard was already cleared).
  void Clear();

  // Every write from now on gets a version above `floor` (a version floor never goes
  // down: a lower floor changes nothing). A cluster node raises it to VersionFloor(epoch)
  // when it adopts a view, so that versions written in a later epoch are above every
  // version of earlier ones, on any node (docs/design/operations.md, "Versions that never
  // repeat"). Takes each shard's lock in turn.
  void RaiseVersionFloor(uint64_t floor);
  // The highest version any shard has given or been raised to (every version issued so
  // far, deleted keys' included, is at most this).
  uint64_t HighestVersion() const;

  // Expires up to options.expiry_batch due entries per shard; returns how many it removed.
  // This is the janitor's tick; tests call it directly with a ManualClock.
  size_t RunExpiryStep();

  // Starts/stops the janitor thread (idempotent). The destructor stops it.
  void StartJanitor();
  void StopJanitor();

  CacheStats Stats() const;
  const CacheOptions& options() const;
  uint32_t shard_count() const;
  // Budget of one shard: capacity_bytes / shard_count. No entry larger than this fits.
  uint64_t shard_capacity_bytes() const;

 private:
  struct Impl;
  explicit Cache(std::unique_ptr<Impl> impl);
  // The lookup of GetTyped and VisitTyped: fn(entry value, meta) on a live entry of `type`.
  template <typename Fn>
  Status ReadLive(const HashedKey& key, ValueType type, Fn&& fn) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache

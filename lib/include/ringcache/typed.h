// Typed values on a ringcache::Cache: hashes, lists and sets (docs/design/typed-values.md).
//
// Each function is one atomic operation on one key, with Redis's semantics: a write runs
// under the key's shard lock (Cache::Update), gives the key a new version and fills the
// WriteRecord it is given (a kSet of the collection's new pack with its type, or a kDelete
// when the last element goes: no collection is ever empty); a read copies out of the
// stored pack without a lock. An operation on a key of another type is WrongType()
// (FAILED_PRECONDITION "WRONGTYPE ..."); an absent key reads as empty. A write keeps the
// key's expiry; a key it creates never expires.
//
//   std::pair<std::string_view, std::string_view> fields[] = {{"name", "Ada"}, {"age", "36"}};
//   ringcache::HashSet(*cache, "user:42", fields);           // 2 fields added
//   ringcache::HashGet(*cache, "user:42", "age").value();    // optional "36"
//
// This step stores every collection in the compact pack (limited by the cache's
// max_value_bytes, and copied whole by each write); large collections get an index of
// their own in a later step (the design's section 2).
//
// Thread safety: as the Cache's: every function may be called concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"
#include "ringcache/value_type.h"
#include "ringcache/write_record.h"

namespace ringcache {

using FieldValue = std::pair<std::string_view, std::string_view>;

// ---- Hashes.

// HSET (the number of fields added); with `only_new`, HSETNX (fields that exist stay).
// INVALID_ARGUMENT for no fields.
Result<int64_t> HashSet(Cache& cache, const HashedKey& key, std::span<const FieldValue> fields,
                        bool only_new = false, WriteRecord* record = nullptr);
// HDEL (the number of fields removed).
Result<int64_t> HashDel(Cache& cache, const HashedKey& key,
                        std::span<const std::string_view> fields, WriteRecord* record = nullptr);
// HINCRBY (the new value). FAILED_PRECONDITION "hash value is not an integer";
// OUT_OF_RANGE "increment or decrement would overflow".
Result<int64_t> HashIncrBy(Cache& cache, const HashedKey& key, std::string_view field,
                           int64_t delta, WriteRecord* record = nullptr);
// HGET: the value, or nullopt (no such field or key).
Result<std::optional<std::string>> HashGet(const Cache& cache, const HashedKey& key,
                                           std::string_view field);
// HGETALL: field, value pairs in insertion order (none for an absent key).
Result<std::vector<std::pair<std::string, std::string>>> HashGetAll(const Cache& cache,
                                                                    const HashedKey& key);
// HLEN.
Result<uint64_t> HashLen(const Cache& cache, const HashedKey& key);

// ---- Lists.

enum class ListEnd : uint8_t { kLeft, kRight };

// LPUSH / RPUSH (the new length). INVALID_ARGUMENT for no elements.
Result<int64_t> ListPush(Cache& cache, const HashedKey& key, ListEnd end,
                         std::span<const std::string_view> elements, WriteRecord* record = nullptr);
// LPOP / RPOP with a count: up to `count` elements, in pop order.
Result<std::vector<std::string>> ListPop(Cache& cache, const HashedKey& key, ListEnd end,
                                         uint64_t count, WriteRecord* record = nullptr);
// LRANGE start stop (inclusive; negative counts from the end).
Result<std::vector<std::string>> ListRange(const Cache& cache, const HashedKey& key, int64_t start,
                                           int64_t stop);
// LLEN.
Result<uint64_t> ListLen(const Cache& cache, const HashedKey& key);

// ---- Sets.

// SADD / SREM (the number of members added / removed).
Result<int64_t> SetAdd(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record = nullptr);
Result<int64_t> SetRem(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record = nullptr);
// SISMEMBER.
Result<bool> SetIsMember(const Cache& cache, const HashedKey& key, std::string_view member);
// SMEMBERS (in insertion order; Redis promises no order).
Result<std::vector<std::string>> SetMembers(const Cache& cache, const HashedKey& key);
// SCARD.
Result<uint64_t> SetCard(const Cache& cache, const HashedKey& key);

}  // namespace ringcache

// WriteRecord: what one write did to one key, as the cache applied it (never what it was
// asked): the key, the change, the version the write left and the absolute expiry.
//
// The cache fills one on request (the WriteRecord* of Set, Delete, Touch and Incr), inside
// the write, so the record and the stored entry cannot disagree. Replication ships these
// records to replicas, which apply them exactly (Cache::ApplyReplicated and friends);
// persistence and keyspace events are built from the same records
// (docs/design/operations.md, "The result record").
//
// Thread safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ringcache/value_type.h"

namespace ringcache {

struct WriteRecord {
  enum class Kind : uint8_t {
    kSet,     // key = value at version, expiring at expires_at_ms (Set, Incr's new text).
    kDelete,  // key removed; version is the version the removed entry had.
    kTouch,   // key's deadline is now expires_at_ms; version and value are the entry's
              // (the value travels too, for a replica that lacks this version).
  };
  Kind kind = Kind::kSet;
  std::string key;
  std::string value;                    // kSet, kTouch; empty for kDelete.
  uint64_t version = 0;                 // Never 0 in a record the cache filled.
  int64_t expires_at_ms = 0;            // Absolute, Unix ms; 0 = never (and for kDelete).
  ValueType type = ValueType::kString;  // kSet, kTouch: what `value` is.
  // What the operation did, in Redis's keyspace-event words ("set", "del", "expire",
  // "incrby", "hset", "lpop", ...; ringcached's --keyspace-events): static text, never
  // shipped. Two words for two events, in order: "set expire" (a set with a TTL, as Redis
  // reports it). A kDelete left by a collection command (its last element went) names
  // that command; the key's removal is implied.
  std::string_view event = {};
};

}  // namespace ringcache

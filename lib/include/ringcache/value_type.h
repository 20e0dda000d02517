// ValueType: what a key holds, a string or a collection (docs/design/typed-values.md).
//
// Every cache entry has one. An operation of one type's family on a key of another type
// is FAILED_PRECONDITION with WrongType()'s message, in Redis's words; operations on
// keys as such (delete, expiry, TTL, SET's overwrite) act on any type.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache {

// Numbered for the wire and for files: never renumber.
enum class ValueType : uint8_t { kString = 0, kHash = 1, kList = 2, kSet = 3 };

// The largest ValueType (a value read from the wire above it is not one).
inline constexpr uint8_t kMaxValueType = 3;

// Redis's TYPE reply: "string", "hash", "list", "set".
std::string_view ValueTypeName(ValueType type);

// FAILED_PRECONDITION "WRONGTYPE Operation against a key holding the wrong kind of value".
Status WrongType();

}  // namespace ringcache

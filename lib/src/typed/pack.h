// The compact pack: how a small hash, list or set is stored in one cache entry
// (docs/design/typed-values.md, section 2), and the operations of each family on it.
//
//   pack      := count:varint item*
//   hash item := field_len:varint field value_len:varint value   (insertion order)
//   list item := len:varint element                               (list order)
//   set item  := len:varint member                                (insertion order)
//
// Varints are LEB128. A pack is immutable: every write below reads the old pack (empty =
// the key does not exist) and returns a new one, which the cache publishes as a new entry
// (copy on write, as for strings). An empty returned pack means the collection has no
// element left: the key is removed (Redis keeps no empty collection).
//
// The operations follow Redis's semantics and error words where Redis defines them
// (negative list indexes, counts, "hash value is not an integer", ...). Bytes that are
// not a pack (never what Encode built) are INVALID_ARGUMENT "corrupt pack".
//
//   std::string h = typed::HashSet("", {{"name", "Ada"}, {"age", "36"}}).value().pack;
//   typed::HashGet(h, "age").value();   // optional "36"
//
// Thread safety: pure functions over values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/status.h"
#include "ringcache/value_type.h"

namespace ringcache::typed {

// The thresholds of the small encoding (Redis's listpack defaults): at most this many
// elements (a hash: fields), none longer than kSmallMaxItemBytes.
inline constexpr size_t kSmallMaxItems = 128;
inline constexpr size_t kSmallMaxItemBytes = 64;
// The most elements a pack holds (the design's default --max-collection-elements). A write
// past it is INVALID_ARGUMENT, and Decode refuses a pack that claims more, so decoding
// never allocates beyond it.
inline constexpr size_t kMaxElements = size_t{1} << 20;

// A decimal int64 as Redis's string2ll takes it: no sign but '-', no leading zero, no
// "-0", nothing before or after.
bool ParseInt64(std::string_view s, int64_t* out);

// The items of `pack`, as views into it (a hash: field, value, field, value, ...).
// INVALID_ARGUMENT "corrupt pack: ..." if `pack` is not one; `pairs`: items come in pairs.
Status Decode(std::string_view pack, bool pairs, std::vector<std::string_view>* items);
// The pack of `items` (never empty: the count is at least one byte); `pairs`: a hash's
// field, value pairs (the count is of pairs).
std::string Encode(std::span<const std::string_view> items, bool pairs = false);
// OK if `pack` is a well-formed pack of at least one element, within kMaxElements, with
// nothing after its last item; INVALID_ARGUMENT "corrupt pack: ..." otherwise. Allocates
// nothing. The cache checks every collection it is handed from outside (a replica's).
Status Validate(std::string_view pack, bool pairs);
// The number of elements (a hash: fields) of a pack, read from its header.
Result<uint64_t> Count(std::string_view pack);
// True if a collection of these items stays within the small encoding's thresholds
// (`pairs`: a hash's field, value pairs count as one element each).
bool FitsSmall(std::span<const std::string_view> items, bool pairs);

// A write's new pack ("" = the collection is empty: remove the key) and its count: fields
// or members added or removed, elements removed, or the new length (as each says).
struct Write {
  std::string pack;
  int64_t n = 0;
};

// ---- Hashes.

using FieldValue = std::pair<std::string_view, std::string_view>;

// HSET (n = fields added, not updated); with `only_new`, HSETNX of one pair (a field
// that exists is left as it is; n = 0). A field repeated in `pairs` takes its last value.
// INVALID_ARGUMENT for no pairs.
Result<Write> HashSet(std::string_view pack, std::span<const FieldValue> pairs,
                      bool only_new = false);
// HDEL (n = fields removed).
Result<Write> HashDel(std::string_view pack, std::span<const std::string_view> fields);
// HGET: the value, or nullopt.
Result<std::optional<std::string_view>> HashGet(std::string_view pack, std::string_view field);
// HMGET: one value (or nullopt) per field, in order.
Result<std::vector<std::optional<std::string_view>>> HashMGet(
    std::string_view pack, std::span<const std::string_view> fields);
// HINCRBY (n = the new value). FAILED_PRECONDITION "hash value is not an integer";
// OUT_OF_RANGE "increment or decrement would overflow".
Result<Write> HashIncrBy(std::string_view pack, std::string_view field, int64_t delta);

// HINCRBYFLOAT: the new value's text into *text (Redis's: FormatFloatText).
// INVALID_ARGUMENT "value is not a valid float" for the increment; FAILED_PRECONDITION
// "hash value is not a float" or "increment would produce NaN or Infinity".
Result<Write> HashIncrByFloat(std::string_view pack, std::string_view field,
                              std::string_view increment, std::string* text);

// ---- Lists.

enum class Side : uint8_t { kLeft, kRight };

// LPUSH / RPUSH (n = the new length). LPUSH a b c leaves c b a at the head, as in Redis.
// INVALID_ARGUMENT for no elements.
Result<Write> ListPush(std::string_view pack, Side side,
                       std::span<const std::string_view> elements);
// LPOP / RPOP with a count: up to `count` elements from `side`, in pop order, into *popped
// (n = how many).
Result<Write> ListPop(std::string_view pack, Side side, uint64_t count,
                      std::vector<std::string>* popped);
// LRANGE start stop (inclusive; negative counts from the end; out of range clamps).
Result<std::vector<std::string_view>> ListRange(std::string_view pack, int64_t start, int64_t stop);
// LINDEX: the element, or nullopt out of range.
Result<std::optional<std::string_view>> ListIndex(std::string_view pack, int64_t index);
// LSET. OUT_OF_RANGE "index out of range"; NOT_FOUND "no such key" for an empty pack.
Result<Write> ListSet(std::string_view pack, int64_t index, std::string_view element);
// LINSERT BEFORE|AFTER pivot element (n = the new length, or -1 without the pivot: the
// pack is then returned as it was).
Result<Write> ListInsert(std::string_view pack, bool before, std::string_view pivot,
                         std::string_view element);
// LREM count element: count > 0 from the head, < 0 from the tail, 0 all (n = removed).
Result<Write> ListRem(std::string_view pack, int64_t count, std::string_view element);
// LPOS element RANK rank COUNT count MAXLEN maxlen: the indexes (from the head) of up to
// `count` matches (0 = all), from the rank-th match on (negative: from the tail, the
// nearest first), comparing at most `maxlen` elements (0 = all). REQUIRES: rank != 0.
Result<std::vector<int64_t>> ListPos(std::string_view pack, std::string_view element, int64_t rank,
                                     int64_t count, int64_t maxlen);
// The pack without the items at `positions` (a hash's: the pairs whose field is there;
// n = how many). "" when none is left.
Result<Write> Remove(std::string_view pack, bool pairs, std::span<const size_t> positions);
// LTRIM start stop (n = elements removed).
Result<Write> ListTrim(std::string_view pack, int64_t start, int64_t stop);

// ---- Sets.

// SADD (n = members added).
Result<Write> SetAdd(std::string_view pack, std::span<const std::string_view> members);
// SREM (n = members removed).
Result<Write> SetRem(std::string_view pack, std::span<const std::string_view> members);
// SMISMEMBER: whether each member is one, in order.
Result<std::vector<bool>> SetMIsMember(std::string_view pack,
                                       std::span<const std::string_view> members);
// SISMEMBER.
Result<bool> SetIsMember(std::string_view pack, std::string_view member);

}  // namespace ringcache::typed

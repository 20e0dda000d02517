#include "ringcache/key_hash.h"

#include "xxhash_inline.h"

namespace ringcache {

std::string_view HashTag(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return {};
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return {};
  return key.substr(open + 1, close - open - 1);
}

uint64_t HashKey(std::string_view key) {
  const std::string_view tag = HashTag(key);
  return internal::Xxh3(tag.empty() ? key : tag);
}

uint64_t HashBytes(std::string_view bytes) { return internal::Xxh3(bytes); }

HashedKey HashedKey::Compute(std::string_view key) {
  const uint64_t index = internal::Xxh3(key);
  const std::string_view tag = HashTag(key);
  return HashedKey(key, tag.empty() ? index : internal::Xxh3(tag), index);
}

}  // namespace ringcache

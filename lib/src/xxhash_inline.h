// Header-only XXH3 for the library's own translation units, so that ringcache::core has
// no link dependency on libxxhash and the hash inlines into the hot paths.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ringcache::internal {

inline uint64_t Xxh3(std::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

inline uint64_t Xxh3(std::string_view bytes, uint64_t seed) {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

}  // namespace ringcache::internal

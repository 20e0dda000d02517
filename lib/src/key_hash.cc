#include "ringcache/key_hash.h"

#include "xxhash_inline.h"

namespace ringcache {

uint64_t HashKey(std::string_view key) { return internal::Xxh3(key); }

}  // namespace ringcache

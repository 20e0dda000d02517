// Redis's glob patterns (SCAN's MATCH, KEYS, PSUBSCRIBE), as Redis 7.0's stringmatchlen
// reads them: `*` any run of bytes, `?` one byte, `[abc]`, `[^a-z]` a class, `\x` the
// byte x itself. As in Redis, an empty text matches only an empty pattern.
//
//   GlobMatch("user:*:name", "user:42:name");   // true
//
// Runs in time proportional to pattern × text at worst (no exponential backtracking: a
// `*` retries from its last position only); callers bound the pattern's length.
//
// Thread safety: a pure function.
#pragma once

#include <string_view>

namespace ringcache {

// True if `text` matches `pattern` (bytes compared as they are).
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace ringcache

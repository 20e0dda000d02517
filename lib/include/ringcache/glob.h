// Redis's glob patterns (SCAN's MATCH, KEYS, PSUBSCRIBE): `*` any run of bytes, `?` one
// byte, `[abc]`, `[^a-z]` (or `[!...]`) a class, `\x` the byte x itself.
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

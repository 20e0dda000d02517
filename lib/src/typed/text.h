// Small text helpers shared by the typed commands' sources.
//
// Thread safety: pure functions.
#pragma once

#include <cctype>
#include <string_view>

namespace ringcache::typed {

// True if `a` equals `lower` (all lower case) ignoring the case of `a`.
inline bool SameIgnoringCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  }
  return true;
}

}  // namespace ringcache::typed

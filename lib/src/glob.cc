#include "ringcache/glob.h"

#include <cstddef>
#include <utility>

namespace ringcache {
namespace {

// Matches one class at pattern[*p] == '[' against byte c, as Redis's stringmatchlen reads
// it: '^' negates; "\\x" is x; "a-z" is a range (either order; "a-]" too); ']' ends the
// class ("[]" matches nothing); an unclosed class ends with the pattern. Advances *p
// past the class.
bool ClassMatches(std::string_view pattern, size_t* p, unsigned char c) {
  size_t i = *p + 1;
  const bool negate = i < pattern.size() && pattern[i] == '^';
  if (negate) ++i;
  bool matched = false;
  while (i < pattern.size() && pattern[i] != ']') {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      ++i;
      if (static_cast<unsigned char>(pattern[i]) == c) matched = true;
    } else if (i + 2 < pattern.size() && pattern[i + 1] == '-') {
      unsigned char lo = static_cast<unsigned char>(pattern[i]);
      unsigned char hi = static_cast<unsigned char>(pattern[i + 2]);
      if (lo > hi) std::swap(lo, hi);
      if (c >= lo && c <= hi) matched = true;
      i += 2;
    } else if (static_cast<unsigned char>(pattern[i]) == c) {
      matched = true;
    }
    ++i;
  }
  *p = i < pattern.size() ? i + 1 : i;  // Past ']'.
  return matched != negate;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Redis's matcher compares while both remain: an empty text matches only an empty
  // pattern ("*" too fails it).
  if (text.empty()) return pattern.empty();
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;  // Pattern position after the last '*'.
  size_t star_text = 0;                  // Text position that '*' matched up to.
  while (t < text.size()) {
    if (p < pattern.size()) {
      const char c = pattern[p];
      if (c == '*') {
        while (p < pattern.size() && pattern[p] == '*') ++p;
        if (p == pattern.size()) return true;
        star = p;
        star_text = t;
        continue;
      }
      size_t next = p + 1;
      bool ok = false;
      if (c == '?') {
        ok = true;
      } else if (c == '[') {
        next = p;
        ok = ClassMatches(pattern, &next, static_cast<unsigned char>(text[t]));
      } else if (c == '\\' && p + 1 < pattern.size()) {
        ok = pattern[p + 1] == text[t];
        next = p + 2;
      } else {
        ok = c == text[t];
      }
      if (ok) {
        p = next;
        ++t;
        continue;
      }
    }
    if (star == std::string_view::npos) return false;
    p = star;  // The last '*' takes one more byte.
    t = ++star_text;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace ringcache

// Pieces of Redis's protocol shared by the command translations (resp/commands.cc,
// resp/server_commands.cc): Redis's integer parsing and the reply encodings.
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache::internal::resp {

// Redis's string2ll: an optional '-', then digits without a leading zero (or "0" alone),
// filling the whole argument.
inline bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  if (s[i] == '0' && (s.size() > i + 1 || i == 1)) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A message safe inside a simple string or error: no CR or LF (Redis replaces them too).
inline std::string OneLine(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '\r', ' ');
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

inline void AppendInteger(std::string* out, int64_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  out->push_back(':');
  out->append(buf, p);
  out->append("\r\n");
}

inline void AppendBulk(std::string* out, std::string_view value) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), value.size());
  out->push_back('$');
  out->append(buf, p);
  out->append("\r\n");
  out->append(value);
  out->append("\r\n");
}

inline constexpr std::string_view kNil = "$-1\r\n";
inline constexpr std::string_view kOk = "+OK\r\n";
inline constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kSyntax = "ERR syntax error";

// True for the status of an operation on a key of another type (ringcache::WrongType()).
inline bool IsWrongType(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition && s.message().starts_with("WRONGTYPE ");
}

// A node's status as a Redis error reply. UNAVAILABLE (a node failing over, joining, a
// forward that timed out) is TRYAGAIN, the error Redis Cluster uses for "retry later".
// WRONGTYPE keeps its own prefix, as Redis sends it.
inline void AppendStatusError(std::string* out, const Status& s) {
  std::string_view prefix = "-ERR ";
  if (s.code() == StatusCode::kUnavailable) prefix = "-TRYAGAIN ";
  if (s.code() == StatusCode::kResourceExhausted) prefix = "-OOM ";
  if (IsWrongType(s)) prefix = "-";
  out->append(prefix);
  out->append(OneLine(s.message()));
  out->append("\r\n");
}

}  // namespace ringcache::internal::resp

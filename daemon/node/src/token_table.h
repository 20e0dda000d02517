// TokenTable: the client tokens of a tokens file (client_auth.h), by token.
//
// The file holds one token per line, `NAME ROLE TOKEN`, with blank lines and `#` comments:
//
//   # name    role        token
//   web       read-write  6f1d0c5e9a8b47d2a1c3e5f7b9d2c4e6
//   reports   read        0b7e2f4a6c8d1e3f5a7b9c2d4e6f8a1b
//
// Names are 1-64 bytes of [A-Za-z0-9_.@-] (logs and Redis's AUTH name them; a token is
// never logged); tokens are 16-1024 printable ASCII bytes without spaces, each used once.
//
// Looking a token up does not tell a caller how close a guess came: a presented token is
// compared only with the token whose keyed 64-bit hash it shares (the key is random per
// table, so a guess cannot aim at a hash), and that comparison is SameSecret's.
//
// Thread safety: immutable once parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "operation.h"
#include "ringcache/status.h"

namespace ringcache::internal {

class TokenTable {
 public:
  static constexpr size_t kMinTokenBytes = 16;
  static constexpr size_t kMaxTokenBytes = 1024;
  static constexpr size_t kMaxNameBytes = 64;
  static constexpr size_t kMaxTokens = 10000;

  struct Principal {
    std::string name;
    Role role = Role::kNone;
  };

  // The table in a tokens file's `text`, or INVALID_ARGUMENT naming `origin`, the line and
  // what is wrong with it.
  static Result<std::shared_ptr<const TokenTable>> Parse(std::string_view text,
                                                         std::string_view origin);

  // Whose `token` is; nullptr if none.
  const Principal* Find(std::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string token;
    Principal who;
  };
  uint64_t Hash(std::string_view token) const;

  uint64_t seed_ = 0;
  std::vector<Entry> entries_;
  std::unordered_multimap<uint64_t, uint32_t> by_hash_;  // Keyed hash -> entries_ index.
};

}  // namespace ringcache::internal

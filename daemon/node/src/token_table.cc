#include "token_table.h"

#include <random>
#include <utility>

#include "auth_support.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ringcache::internal {
namespace {

bool NameByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '@' || c == '-';
}

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The fields of `line`, split at spaces and tabs.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && Space(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !Space(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<const TokenTable>> TokenTable::Parse(std::string_view text,
                                                            std::string_view origin) {
  auto table = std::make_shared<TokenTable>();
  table->seed_ = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  size_t line_no = 0;
  const auto fail = [&](const std::string& what) {
    return Status::InvalidArgument(std::string(origin) + " line " + std::to_string(line_no) + ": " +
                                   what);
  };
  std::unordered_map<std::string_view, size_t> names;  // Name -> line, into `text`.
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      // A comment starts a line or follows a space: a token may hold '#'.
      if (hash == 0 || Space(line[hash - 1])) line = line.substr(0, hash);
    }
    const std::vector<std::string_view> f = Fields(line);
    if (f.empty()) continue;
    if (f.size() != 3) {
      return fail("expected NAME ROLE TOKEN, got " + std::to_string(f.size()) + " fields");
    }
    const std::string_view name = f[0];
    const std::string_view role_name = f[1];
    const std::string_view token = f[2];
    if (name.size() > kMaxNameBytes) {
      return fail("the name is over " + std::to_string(kMaxNameBytes) + " bytes");
    }
    for (const char c : name) {
      if (!NameByte(c)) return fail("a name holds only letters, digits and _ . @ -");
    }
    const Role role = RoleNamed(role_name);
    if (role == Role::kNone) {
      // The field is named only when it cannot be a token (fields in the wrong order
      // would otherwise put one in the log).
      return fail(role_name.size() < kMinTokenBytes
                      ? "unknown role '" + std::string(role_name) + "' (read, read-write or admin)"
                      : "the second field is not a role (read, read-write or admin; the line "
                        "is NAME ROLE TOKEN)");
    }
    if (token.size() < kMinTokenBytes || token.size() > kMaxTokenBytes) {
      return fail("a token is " + std::to_string(kMinTokenBytes) + " to " +
                  std::to_string(kMaxTokenBytes) + " bytes, got " + std::to_string(token.size()));
    }
    for (const char c : token) {
      if (c < 0x21 || c > 0x7e) {
        return fail("a token is printable ASCII without spaces (it travels as gRPC metadata)");
      }
    }
    if (auto [it, fresh] = names.emplace(name, line_no); !fresh) {
      return fail("the name " + std::string(name) + " is on line " + std::to_string(it->second) +
                  " already");
    }
    if (table->Find(token) != nullptr) {
      return fail("this token is " + table->Find(token)->name + "'s already (one token, one name)");
    }
    if (table->entries_.size() == kMaxTokens) {
      return fail("over " + std::to_string(kMaxTokens) + " tokens");
    }
    table->by_hash_.emplace(table->Hash(token), static_cast<uint32_t>(table->entries_.size()));
    table->entries_.push_back(
        {.token = std::string(token), .who = {.name = std::string(name), .role = role}});
  }
  return std::shared_ptr<const TokenTable>(std::move(table));
}

uint64_t TokenTable::Hash(std::string_view token) const {
  return XXH3_64bits_withSeed(token.data(), token.size(), seed_);
}

const TokenTable::Principal* TokenTable::Find(std::string_view token) const {
  const auto [first, last] = by_hash_.equal_range(Hash(token));
  for (auto it = first; it != last; ++it) {
    const Entry& entry = entries_[it->second];
    if (SameSecret(token, entry.token)) return &entry.who;
  }
  return nullptr;
}

}  // namespace ringcache::internal

#include "byte_size.h"

#include <array>
#include <cctype>
#include <charconv>
#include <limits>
#include <utility>

namespace ringcache::internal {
namespace {

struct Unit {
  std::string_view name;  // Lower case.
  uint64_t factor;
};

constexpr uint64_t kKi = 1024;
constexpr uint64_t kK = 1000;
// Largest first, IEC before SI, for FormatByteSize.
constexpr std::array<Unit, 9> kUnits = {{
    {"tib", kKi* kKi* kKi* kKi},
    {"tb", kK* kK* kK* kK},
    {"gib", kKi* kKi* kKi},
    {"gb", kK* kK* kK},
    {"mib", kKi* kKi},
    {"mb", kK* kK},
    {"kib", kKi},
    {"kb", kK},
    {"b", 1},
}};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("invalid size \"" + std::string(text) + "\": " +
                                   std::string(why) + " (examples: 4096, 512MB, 64MiB, 1GiB)");
  };
  std::string_view rest = text;
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) {
    rest.remove_prefix(1);
  }
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.back()))) {
    rest.remove_suffix(1);
  }
  uint64_t number = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), number);
  if (ec == std::errc::result_out_of_range) return bad("too large");
  if (ec != std::errc() || end == rest.data()) return bad("expected a whole number of bytes");
  std::string_view unit = rest.substr(static_cast<size_t>(end - rest.data()));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (unit.empty()) return number;
  const std::string lower = Lower(unit);
  for (const Unit& u : kUnits) {
    if (lower == u.name) {
      if (number > std::numeric_limits<uint64_t>::max() / u.factor) return bad("too large");
      return number * u.factor;
    }
  }
  return bad("unknown unit \"" + std::string(unit) + "\"");
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 8> kNames = {{
      {"TiB", kKi * kKi * kKi * kKi},
      {"TB", kK * kK * kK * kK},
      {"GiB", kKi * kKi * kKi},
      {"GB", kK * kK * kK},
      {"MiB", kKi * kKi},
      {"MB", kK * kK},
      {"KiB", kKi},
      {"KB", kK},
  }};
  if (bytes != 0) {
    for (const auto& [name, factor] : kNames) {
      if (bytes % factor == 0) return std::to_string(bytes / factor) + std::string(name);
    }
  }
  return std::to_string(bytes) + "B";
}

}  // namespace ringcache::internal

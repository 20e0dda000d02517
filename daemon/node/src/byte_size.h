// ParseByteSize: human-readable byte sizes for ringcached's flags ("1GiB", "64MiB",
// "512MB", "4096").
//
// A decimal integer, optionally followed by a unit (case-insensitive, optional space):
//   B                    bytes
//   KB  MB  GB  TB       powers of 1000 (SI)
//   KiB MiB GiB TiB      powers of 1024 (IEC)
// Errors: INVALID_ARGUMENT naming the text, for a missing number, an unknown unit, or a
// value that does not fit in 64 bits.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache::internal {

Result<uint64_t> ParseByteSize(std::string_view text);

// The shortest exact form: 1073741824 -> "1GiB", 512000000 -> "512MB", 4097 -> "4097B".
std::string FormatByteSize(uint64_t bytes);

// An approximate size for log lines: 43200000 -> "41.2 MiB". Inline: the replication
// tests build replication.cc without this header's .cc.
inline std::string FormatMib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace ringcache::internal

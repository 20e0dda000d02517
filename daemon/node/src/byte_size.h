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
#include <string>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache::internal {

Result<uint64_t> ParseByteSize(std::string_view text);

// The shortest exact form: 1073741824 -> "1GiB", 512000000 -> "512MB", 4097 -> "4097B".
std::string FormatByteSize(uint64_t bytes);

}  // namespace ringcache::internal

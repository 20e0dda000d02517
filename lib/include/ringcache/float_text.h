// Redis's text for long-double numbers (INCRBYFLOAT, HINCRBYFLOAT): how a value and an
// increment are read, and how the sum is written back.
//
//   long double v = 0;
//   ParseFloatText("10.5", &v);     // true
//   FormatFloatText(v + 0.1L);      // "10.6"
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace ringcache {

// Redis's string2ld: strtold over the whole text, which must be 1 to 5119 bytes with no
// leading space, not NaN and not out of range. False for anything else.
bool ParseFloatText(std::string_view text, long double* out);
// Redis's ld2string (LD_STR_HUMAN): "%.17Lf" with trailing zeros (and a bare '.')
// removed, "-0" written "0".
std::string FormatFloatText(long double value);

}  // namespace ringcache

// A RespCommand made from words, as the parser would give it (tests).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "resp/parser.h"

namespace ringcache::internal {

inline RespCommand Command(std::vector<std::string> words) {
  RespCommand c;
  c.owned = std::move(words);
  c.args.assign(c.owned.begin(), c.owned.end());
  return c;
}

}  // namespace ringcache::internal

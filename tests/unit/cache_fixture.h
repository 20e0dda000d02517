// CacheFixture: a Cache on a manual clock with no janitor thread, so that tests drive
// time and expiry themselves. Shared by the cache unit tests; each derives its own
// Fixture with the helpers it needs.
#pragma once

#include <memory>
#include <utility>

#include <catch2/catch.hpp>

#include "ringcache/cache.h"
#include "ringcache/clock.h"

namespace ringcache {

struct CacheFixture {
  explicit CacheFixture(CacheOptions o = {}) {
    o.clock = &clock;
    o.start_janitor = false;
    auto created = Cache::Create(o);
    REQUIRE(created.ok());
    cache = std::move(created).value();
  }
  ManualClock clock;  // Before `cache`, which points at it.
  std::unique_ptr<Cache> cache;
};

}  // namespace ringcache

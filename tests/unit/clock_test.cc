#include "ringcache/clock.h"

#include <chrono>

#include <catch2/catch.hpp>

namespace ringcache {
namespace {

TEST_CASE("ManualClock moves only when told to", "[unit][clock]") {
  ManualClock clock(1000);
  CHECK(clock.NowMs() == 1000);
  CHECK(clock.NowMs() == 1000);
  clock.AdvanceMs(250);
  CHECK(clock.NowMs() == 1250);
  clock.SetMs(5);
  CHECK(clock.NowMs() == 5);
}

TEST_CASE("System clock reads Unix milliseconds", "[unit][clock]") {
  const int64_t expected = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const int64_t now = Clock::System()->NowMs();
  CHECK(now >= expected);
  CHECK(now - expected < 5000);
  CHECK(Clock::System() == Clock::System());
}

}  // namespace
}  // namespace ringcache

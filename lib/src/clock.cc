#include "ringcache/clock.h"

#include <chrono>

namespace ringcache {
namespace {

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock* Clock::System() {
  static SystemClock clock;  // Trivially destructible state; lives for the process.
  return &clock;
}

}  // namespace ringcache

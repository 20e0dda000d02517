// Clock: the source of "now" for TTL deadlines, injectable so that tests never sleep
// (leveldb's Env, memcached's debugtime).
//
// Deadlines are absolute wall-clock milliseconds since the Unix epoch, so a deadline
// computed on one node means the same instant on another (replication ships absolute
// deadlines; see docs/design/cache.md for the clock assumption).
//
// Thread safety: every Clock implementation here may be used concurrently.
#pragma once

#include <atomic>
#include <cstdint>

namespace ringcache {

class Clock {
 public:
  virtual ~Clock() = default;

  // Milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;

  // The process-wide system clock (std::chrono::system_clock). Never null, never freed.
  static Clock* System();
};

// A clock that moves only when told to. Starts at `start_ms` (default: an arbitrary
// fixed instant, 2026-01-01T00:00:00Z).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1767225600000) : now_ms_(start_ms) {}

  int64_t NowMs() const override { return now_ms_.load(std::memory_order_acquire); }
  void SetMs(int64_t now_ms) { now_ms_.store(now_ms, std::memory_order_release); }
  void AdvanceMs(int64_t delta_ms) { now_ms_.fetch_add(delta_ms, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace ringcache

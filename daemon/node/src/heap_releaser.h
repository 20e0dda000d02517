// HeapReleaser: gives the memory that glibc's malloc holds free back to the system, from a
// thread of its own, once the free memory passes a threshold.
//
// Why: glibc returns freed memory to the system only from the top of each arena. Values of
// kilobytes to megabytes, freed in eviction order among requests in flight, leave free
// holes between live allocations that glibc keeps for ever: after a flood of 1 KiB-1 MiB
// writes, a node with --memory 64MiB stayed at 458 MiB of RSS, of which glibc counted
// 66 MB in use. malloc_trim(0) gives the free pages inside the arenas back (the addresses
// stay mapped; a later allocation faults fresh pages in): the same node fell to 85 MiB.
// malloc_trim walks every arena under its lock, so it runs only when the free memory malloc
// keeps resident is more than `threshold_bytes`, at most once per `interval` (every 200 ms
// cost a third of a flood's throughput; once a second, about 3%). That memory is estimated
// as the resident set less what malloc's callers hold (mallinfo2) less what the process
// held beyond that at the start (code, stacks): after a trim it is small again, so an idle
// node does not trim again until freed memory comes back into use and is freed again.
//
// Without glibc (another C library, or an allocator preloaded in its place) it does nothing.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace ringcache::internal {

class HeapReleaser {
 public:
  struct Options {
    // How often the free memory is checked; 0 = never (no thread).
    std::chrono::milliseconds interval{1000};
    // Free resident bytes (see above) above which they are given back.
    uint64_t threshold_bytes = uint64_t{32} << 20;
  };

  // Whether this process's malloc is glibc's (the only one it knows how to trim).
  static bool Supported();

  // Starts the thread (unless the interval is 0 or !Supported()).
  explicit HeapReleaser(Options options);
  // Stops and joins the thread.
  ~HeapReleaser();
  HeapReleaser(const HeapReleaser&) = delete;
  HeapReleaser& operator=(const HeapReleaser&) = delete;

  // Checks now, on the calling thread: gives the free memory back if it is above the
  // threshold. Returns true if it did.
  bool CheckOnce();

  // Times the free memory was given back.
  uint64_t releases() const { return releases_.load(std::memory_order_relaxed); }
  // The free resident bytes found by the last check, before any release.
  uint64_t free_bytes() const { return free_bytes_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // Resident bytes beyond what malloc's callers hold.
  uint64_t ResidentNotInUse() const;

  const Options options_;
  const bool supported_ = Supported();  // Read once: the environment does not change.
  uint64_t baseline_ = 0;               // ResidentNotInUse() at construction.
  std::atomic<uint64_t> releases_{0};
  std::atomic<uint64_t> free_bytes_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // Guarded by mu_.
  std::thread thread_;
};

}  // namespace ringcache::internal

#include "heap_releaser.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ringcache::internal {

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define RINGCACHE_GLIBC_MALLINFO2 1
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RINGCACHE_SANITIZED_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define RINGCACHE_SANITIZED_MALLOC 1
#endif
#endif

bool HeapReleaser::Supported() {
#if defined(RINGCACHE_SANITIZED_MALLOC)
  return false;  // The sanitizer's allocator, not glibc's, serves malloc.
#elif defined(RINGCACHE_GLIBC_MALLINFO2)
  // An allocator preloaded in glibc's place (libjemalloc, libtcmalloc, libmimalloc) keeps
  // its own memory; glibc's numbers would say nothing about it. Other preloaded libraries
  // leave malloc to glibc.
  const char* preload = std::getenv("LD_PRELOAD");
  return preload == nullptr || std::strstr(preload, "malloc") == nullptr;
#else
  return false;
#endif
}

HeapReleaser::HeapReleaser(Options options) : options_(options) {
  if (supported_) baseline_ = ResidentNotInUse();
  if (options_.interval.count() > 0 && supported_) thread_ = std::thread([this] { Run(); });
}

HeapReleaser::~HeapReleaser() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

// This process's resident memory (/proc/self/statm), in bytes; 0 if it cannot be read.
uint64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

uint64_t HeapReleaser::ResidentNotInUse() const {
#if defined(RINGCACHE_GLIBC_MALLINFO2)
  const struct mallinfo2 info = mallinfo2();
  const uint64_t in_use = info.uordblks + info.hblkhd;  // Heap chunks and mmap'd ones.
  const uint64_t rss = ResidentBytes();
  return rss > in_use ? rss - in_use : 0;
#else
  return 0;
#endif
}

bool HeapReleaser::CheckOnce() {
#if defined(RINGCACHE_GLIBC_MALLINFO2)
  if (!supported_) return false;
  // Resident memory that is neither in use by malloc's callers nor the process's own
  // (code, stacks) as it was at the start: free memory malloc keeps resident. malloc_trim
  // gives those pages back but keeps the chunks in its free lists, so mallinfo2's free
  // count alone would stay high and trim again every interval.
  const uint64_t not_in_use = ResidentNotInUse();
  const uint64_t free_resident = not_in_use > baseline_ ? not_in_use - baseline_ : 0;
  free_bytes_.store(free_resident, std::memory_order_relaxed);
  if (free_resident <= options_.threshold_bytes) return false;
  malloc_trim(0);
  releases_.fetch_add(1, std::memory_order_relaxed);
  return true;
#else
  return false;
#endif
}

void HeapReleaser::Run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, options_.interval, [this] { return stop_; })) {
    lock.unlock();
    CheckOnce();
    lock.lock();
  }
}

}  // namespace ringcache::internal

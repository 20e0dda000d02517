#include "heap_releaser.h"

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ringcache::internal {

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
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // An allocator preloaded in glibc's place (jemalloc, tcmalloc) keeps its own memory;
  // glibc's numbers would say nothing about it.
  const char* preload = std::getenv("LD_PRELOAD");
  return preload == nullptr || *preload == '\0';
#else
  return false;
#endif
}

HeapReleaser::HeapReleaser(Options options) : options_(options) {
  if (options_.interval.count() > 0 && Supported()) thread_ = std::thread([this] { Run(); });
}

HeapReleaser::~HeapReleaser() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool HeapReleaser::CheckOnce() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  if (!Supported()) return false;
  const struct mallinfo2 info = mallinfo2();
  free_bytes_.store(info.fordblks, std::memory_order_relaxed);
  if (info.fordblks <= options_.threshold_bytes) return false;
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

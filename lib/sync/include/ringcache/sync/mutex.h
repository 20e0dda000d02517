// Mutex and MutexLock: std::mutex with Clang thread-safety annotations (leveldb's
// port::Mutex). Use MutexLock for scoped locking; fields it protects say GUARDED_BY.
//
// Thread safety: a mutex, obviously; MutexLock is used by one thread.
#pragma once

#include <mutex>

#include "ringcache/sync/thread_annotations.h"

namespace ringcache::internal {

class RC_CAPABILITY("mutex") Mutex {
 public:
  void Lock() RC_ACQUIRE() { mu_.lock(); }
  void Unlock() RC_RELEASE() { mu_.unlock(); }
  // For std::condition_variable_any / std::unique_lock interop.
  void lock() RC_ACQUIRE() { mu_.lock(); }
  void unlock() RC_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class RC_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) RC_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RC_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace ringcache::internal

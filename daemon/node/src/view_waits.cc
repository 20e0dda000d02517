#include "view_waits.h"

#include <algorithm>

namespace ringcache::internal {

void ViewWaits::Wait(Waiter* w, uint64_t epoch, std::chrono::system_clock::time_point deadline,
                     const std::function<uint64_t()>& current_epoch) {
  {
    MutexLock lock(&mu_);
    w->epoch = epoch;
    w->cancelled = false;
    waiters_.insert(w);
    // Under mu_, so that OnView cannot cancel the alarm before it is set. The callback
    // runs on a gRPC thread (fired, or cancelled by OnView), never inside Set.
    w->alarm.Set(std::min(deadline, std::chrono::system_clock::now() + kMaxWait),
                 [this, w](bool /*fired*/) {
                   {
                     MutexLock callback_lock(&mu_);
                     waiters_.erase(w);
                   }
                   w->rerun();  // May finish the call and free `w`: the last use.
                 });
  }
  // The view may have arrived between the caller's check and the registration.
  if (const uint64_t now = current_epoch(); now >= epoch) OnView(now);
}

void ViewWaits::OnView(uint64_t epoch) {
  MutexLock lock(&mu_);
  for (Waiter* w : waiters_) {
    if (w->epoch <= epoch && !w->cancelled) {
      w->cancelled = true;
      w->alarm.Cancel();  // Its callback runs soon and re-runs the call.
    }
  }
}

size_t ViewWaits::waiting() const {
  MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace ringcache::internal

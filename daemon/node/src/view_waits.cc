#include "view_waits.h"

#include <utility>
#include <vector>

namespace ringcache::internal {

void ViewWaits::Wait(uint64_t epoch, const std::function<uint64_t()>& current_epoch,
                     std::function<void()> run) {
  auto w = std::make_shared<Waiter>();
  w->epoch = epoch;
  w->run = std::move(run);
  {
    MutexLock lock(&mu_);
    waiters_.emplace(w.get(), w);
  }
  // Fired or cancelled, the callback runs exactly once; it runs the call unless OnView
  // took it first.
  w->alarm.Set(std::chrono::system_clock::now() + kMaxWait, [this, w](bool /*fired*/) {
    if (Take(w.get())) w->run();
  });
  // The view may have arrived between the caller's check and the registration.
  if (current_epoch() >= epoch) OnView(current_epoch());
}

void ViewWaits::OnView(uint64_t epoch) {
  std::vector<std::shared_ptr<Waiter>> ready;
  {
    MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second->epoch <= epoch) {
        ready.push_back(std::move(it->second));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const std::shared_ptr<Waiter>& w : ready) {
    w->alarm.Cancel();  // Its callback finds it taken and does nothing.
    w->run();
  }
}

bool ViewWaits::Take(Waiter* w) {
  MutexLock lock(&mu_);
  return waiters_.erase(w) == 1;
}

size_t ViewWaits::waiting() const {
  MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace ringcache::internal

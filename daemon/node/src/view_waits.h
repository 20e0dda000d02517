// ViewWaits: unary calls forwarded by a node one view ahead of this one wait for that
// view before they are routed again, instead of being refused (docs/design/routing.md,
// "Views that differ for a moment"). The forwarder routed the call on a view whose push to
// this node is on its way; once it is adopted the call runs on it. The wait ends at the
// earlier of the call's deadline and kMaxWait: then the call runs on whatever view this
// node holds (and is refused if that is still too old). Pipeline streams wait the same
// way, in PipelineReactor.
//
// Each waiter owns a grpc::Alarm (a member of the call's reactor, which lives until the
// call is finished, and the call is finished only by the re-run). The alarm's callback is
// the only place that re-runs the call: OnView merely cancels the alarms of the calls
// whose view has come, which makes their callbacks run at once on a gRPC thread. So a
// call never re-runs inline in Wait, nor on the thread adopting the view (which holds
// Membership's locks).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <grpcpp/alarm.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <unordered_set>

#include "ringcache/sync/mutex.h"

namespace ringcache::internal {

class ViewWaits {
 public:
  static constexpr std::chrono::milliseconds kMaxWait{500};

  // What one waiting call provides: its alarm, and what to run when the wait ends.
  struct Waiter {
    grpc::Alarm alarm;
    std::function<void()> rerun;  // Runs once, on the alarm's callback.
    uint64_t epoch = 0;           // Set by Wait.
    bool cancelled = false;       // Guarded by the ViewWaits' mutex.
  };

  // Parks `w` until the view `epoch` (or a later one) is reported to OnView, the call's
  // `deadline` passes or kMaxWait does. `current_epoch` is asked once after registering,
  // so a view adopted meanwhile is not missed. `w` must stay valid until its rerun runs.
  void Wait(Waiter* w, uint64_t epoch, std::chrono::system_clock::time_point deadline,
            const std::function<uint64_t()>& current_epoch);
  void OnView(uint64_t epoch);

  // Waiting now (tests, stats).
  size_t waiting() const;

 private:
  mutable Mutex mu_;
  std::unordered_set<Waiter*> waiters_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::internal

// ViewWaits: unary calls forwarded by a node one view ahead of this one wait for that
// view before they are routed, instead of being refused (docs/design/routing.md, "Views
// that differ for a moment"). The forwarder routed the call on a view whose push to this
// node is on its way; once it is adopted the call runs on it. At most kMaxWait: then the
// call runs on whatever view this node holds (and is refused if that is still too old).
// Pipeline streams wait the same way, in PipelineReactor.
//
//   waits.Wait(md.epoch, [&] { return CurrentEpoch(); }, [call] { Handle(call); });
//   ... waits.OnView(epoch);   // from the view subscription
//
// Thread safety: every method may be called from any thread. `run` runs exactly once,
// never inline in Wait, on the thread that reported the view or a gRPC alarm thread.
#pragma once

#include <grpcpp/alarm.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "ringcache/sync/mutex.h"

namespace ringcache::internal {

class ViewWaits {
 public:
  static constexpr std::chrono::milliseconds kMaxWait{500};

  // Runs `run` once the view `epoch` (or a later one) is reported to OnView, or after
  // kMaxWait. `current_epoch` is asked once more after registering, so a view adopted
  // meanwhile is not missed.
  void Wait(uint64_t epoch, const std::function<uint64_t()>& current_epoch,
            std::function<void()> run);
  void OnView(uint64_t epoch);

  // Waiting now (tests, stats).
  size_t waiting() const;

 private:
  struct Waiter {
    uint64_t epoch = 0;
    std::function<void()> run;
    grpc::Alarm alarm;
  };
  // Takes `w` out if it is still waiting; true if this call did (and must run it).
  bool Take(Waiter* w);

  mutable Mutex mu_;
  // Protected by mu_. The alarm's callback holds a reference as well.
  std::unordered_map<Waiter*, std::shared_ptr<Waiter>> waiters_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::internal

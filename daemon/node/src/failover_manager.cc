#include "failover_manager.h"

#include <grpcpp/client_context.h>
#include <pthread.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <optional>
#include <unordered_map>
#include <utility>

// Asio's handler completion uses std::atomic_thread_fence, which GCC flags under TSan
// (-Wtsan); that is Asio's code inlined here, not ours (as in daemon/metrics).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <asio.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "peer_pool.h"

namespace ringcache::internal {
namespace {

int64_t Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// "n1, n2".
std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) {
    if (!out.empty()) out += ", ";
    out += id;
  }
  return out;
}

// "1.2 s".
std::string Seconds(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

bool Contains(const std::vector<std::string>& sorted, const std::string& id) {
  return std::binary_search(sorted.begin(), sorted.end(), id);
}

// ---- The node's transport: gRPC's async callback client.

class GrpcHeartbeatTransport final : public HeartbeatTransport {
 public:
  explicit GrpcHeartbeatTransport(PeerPool* peers) : peers_(peers) {}

  ~GrpcHeartbeatTransport() override {
    CancelAll();
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return in_flight_ == 0; });
  }

  void Send(const std::string& address, const v1::HeartbeatRequest& request,
            std::chrono::milliseconds deadline,
            std::function<void(const grpc::Status&, const v1::HeartbeatResponse&)> done) override {
    auto call = std::make_shared<Call>();
    call->request = request;
    call->done = std::move(done);
    call->ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    {
      std::lock_guard lock(mu_);
      calls_.emplace(call.get(), call);
      ++in_flight_;
    }
    // A TryCancel (CancelAll) that comes before the call starts cancels it when it does.
    Call* const raw = call.get();
    peers_->MembershipStub(address)->async()->Heartbeat(
        &raw->ctx, &raw->request, &raw->response,
        [this, call = std::move(call)](grpc::Status status) mutable {
          call->done(status, call->response);
          // Free the call (its ClientContext holds a reference to the channel) before
          // reporting it finished: once in_flight_ is 0 the pool may go, and the last
          // reference to a channel must not be dropped here, on one of gRPC's callback
          // threads (gRPC 1.51 would then tear down its callback completion queue from
          // one of that queue's own threads, and abort).
          std::shared_ptr<Call> owned;
          {
            std::lock_guard lock(mu_);
            auto it = calls_.find(call.get());
            if (it != calls_.end()) {
              owned = std::move(it->second);
              calls_.erase(it);
            }
          }
          call.reset();
          owned.reset();  // (Or CancelAll's copy goes last, on its caller's thread.)
          std::lock_guard lock(mu_);
          if (--in_flight_ == 0) idle_.notify_all();
        });
  }

  void CancelAll() override {
    std::vector<std::shared_ptr<Call>> calls;
    {
      std::lock_guard lock(mu_);
      calls.reserve(calls_.size());
      for (const auto& [ptr, call] : calls_) calls.push_back(call);
    }
    // Outside mu_: a completion may take it. The shared_ptrs keep each context alive.
    for (const auto& call : calls) call->ctx.TryCancel();
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::HeartbeatRequest request;
    v1::HeartbeatResponse response;
    std::function<void(const grpc::Status&, const v1::HeartbeatResponse&)> done;
  };

  PeerPool* const peers_;  // Not owned.
  std::mutex mu_;
  std::condition_variable idle_;
  // Protected by mu_.
  std::unordered_map<Call*, std::shared_ptr<Call>> calls_;  // Started, callback not run yet.
  int in_flight_ = 0;                                       // Started, callback not finished yet.
};

}  // namespace

std::unique_ptr<HeartbeatTransport> MakeGrpcHeartbeatTransport(PeerPool* peers) {
  return std::make_unique<GrpcHeartbeatTransport>(peers);
}

// ---- FailoverManager

struct FailoverManager::Timer {
  asio::io_context io;
  asio::steady_timer timer{io};
};

FailoverManager::FailoverManager(FailoverOptions options, HeartbeatTransport* transport,
                                 FailoverHooks hooks)
    : options_(std::move(options)),
      transport_(transport),
      hooks_(std::move(hooks)),
      detector_(options_.self_id, options_.failure_timeout) {
  assert(transport_ != nullptr);
  assert(!options_.self_id.empty());
  assert(options_.heartbeat_interval.count() > 0);
}

FailoverManager::~FailoverManager() { Shutdown(); }

FailoverManager::TimePoint FailoverManager::Now() const {
  return options_.now ? options_.now() : std::chrono::steady_clock::now();
}

void FailoverManager::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

void FailoverManager::Start() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
  assert(!timer_ && "Start() called twice");
  if (timer_) return;
  timer_ = std::make_unique<Timer>();
  ScheduleTick(std::chrono::steady_clock::now());
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rc-failover");
    timer_->io.run();
  });
}

void FailoverManager::ScheduleTick(TimePoint at) {
  // Runs on the caller of Start() (before the thread exists) or on the timer thread.
  timer_->timer.expires_at(at);
  timer_->timer.async_wait([this, at](const std::error_code& ec) {
    if (ec) return;  // Cancelled: shutting down.
    const TimePoint now = std::chrono::steady_clock::now();
    Tick(now);
    // A fixed rate; after a late tick (a slow hook), the next one is an interval away.
    TimePoint next = at + options_.heartbeat_interval;
    const TimePoint after = std::chrono::steady_clock::now();
    if (next <= after) next = after + options_.heartbeat_interval;
    ScheduleTick(next);
  });
}

void FailoverManager::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    if (timer_) timer_->io.stop();
    if (thread_.joinable()) thread_.join();
    // A Tick on another thread (tests) finishes its sends before the cancel.
    { std::lock_guard tick(tick_mu_); }
    transport_->CancelAll();
    std::unique_lock lock(mu_);
    in_flight_cv_.wait(lock, [this] { return in_flight_ == 0; });
  });
}

void FailoverManager::OnTopology(std::shared_ptr<const Topology> topology) {
  if (!topology) return;
  const TimePoint now = Now();
  std::lock_guard lock(mu_);
  // Older views are ignored; a view of the same epoch replaces ours only if it is another
  // snapshot (Membership settled a fork of that epoch in its favour).
  if (topology_ && (topology->epoch() < topology_->epoch() || topology == topology_)) return;
  detector_.SetView(topology->view, now);
  topology_ = std::move(topology);
}

void FailoverManager::HandleHeartbeat(const v1::HeartbeatRequest& request,
                                      v1::HeartbeatResponse* response, TimePoint now) {
  std::lock_guard lock(mu_);
  response->set_id(options_.self_id);
  response->set_epoch(detector_.epoch());
  if (request.to_id().empty() || request.to_id() == options_.self_id) {
    std::vector<std::string> suspects(request.suspects().begin(), request.suspects().end());
    detector_.OnRequest(request.from_id(), suspects, now);
  }
  response->clear_suspects();
  for (std::string& id : detector_.SuspectList(now)) response->add_suspects(std::move(id));
}

void FailoverManager::HeartbeatDone(const std::string& id, uint64_t call_id,
                                    const grpc::Status& status,
                                    const v1::HeartbeatResponse& response) {
  // An answer from another id (the address now belongs to another node) is no answer
  // from `id`; FAILED_PRECONDITION (the receiver said so) is not OK either.
  const bool ok = status.ok() && response.id() == id;
  const TimePoint now = Now();
  bool offer = false;
  {
    std::vector<std::string> suspects;
    if (ok) suspects.assign(response.suspects().begin(), response.suspects().end());
    std::lock_guard lock(mu_);
    detector_.EndHeartbeat(id, call_id, ok, suspects, now);
    offer = ok && response.has_view() && !stopping_ && hooks_.offer_view;
  }
  // Still counted in in_flight_: Shutdown() waits for the hook to return.
  if (offer) hooks_.offer_view(response.view(), id);
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) in_flight_cv_.notify_all();
}

void FailoverManager::Tick(TimePoint now) {
  std::lock_guard tick(tick_mu_);

  std::vector<std::pair<LogLevel, std::string>> logs;
  std::optional<std::pair<bool, std::string>> fence_change;
  struct Send {
    FailureDetector::Target target;
    v1::HeartbeatRequest request;
  };
  std::vector<Send> sends;
  std::vector<std::string> to_mark;
  std::string mark_reason;
  uint64_t epoch = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !detector_.has_view()) return;
    epoch = detector_.epoch();
    const std::string& self = options_.self_id;

    // This node's suspicions: log the changes.
    const std::vector<std::string> suspects = detector_.SuspectList(now);
    for (const std::string& id : suspects) {
      if (Contains(logged_suspects_, id)) continue;
      logs.emplace_back(LogLevel::kWarn, "suspect " + id + ": no heartbeat answer for " +
                                             std::to_string(Ms(detector_.SilenceOf(id, now))) +
                                             " ms");
    }
    for (const std::string& id : logged_suspects_) {
      if (Contains(suspects, id)) continue;
      // A peer that left the view or was marked FAILED: the view change says so.
      auto state = detector_.StateOf(id);
      if (state && *state != MemberState::kFailed) {
        logs.emplace_back(LogLevel::kInfo, id + " no longer suspected");
      }
    }
    logged_suspects_ = suspects;

    // Members a majority suspects, and who the coordinator is.
    const std::vector<std::string> declared = detector_.DeclaredFailed(now);
    const std::string coordinator = detector_.Coordinator(now);
    const int voters = detector_.QuorumAt(now).voters;
    // "suspected by n1, n2 (2 of 3 voters) for 1000 ms": how long this node has not
    // heard from it, or at least the failure timeout (the time the others' suspicion
    // took) when this node itself still hears from it.
    auto describe = [&](const std::string& id) {
      const std::vector<std::string> by = detector_.VotersSuspecting(id, now);
      const int64_t silent_ms =
          std::max<int64_t>(Ms(detector_.SilenceOf(id, now)), options_.failure_timeout.count());
      return "suspected by " + JoinIds(by) + " (" + std::to_string(by.size()) + " of " +
             std::to_string(voters) + " voters) for " + std::to_string(silent_ms) + " ms";
    };
    for (const std::string& id : declared) {
      if (Contains(logged_declared_, id)) continue;
      logs.emplace_back(LogLevel::kWarn, id + " declared failed: " + describe(id) +
                                             "; coordinator " +
                                             (coordinator.empty()   ? std::string("none")
                                              : coordinator == self ? coordinator + " (this node)"
                                                                    : coordinator));
    }
    logged_declared_ = declared;

    // Fencing.
    const FailureDetector::FenceStatus fence = detector_.UpdateFence(now);
    const MemberState self_state = detector_.self_state();
    if (fence.fenced &&
        (self_state == MemberState::kFailed || self_state == MemberState::kUnspecified)) {
      // Still fenced from before the view that dropped it: its quorum no longer matters.
      fence_reason_ = "node " + self + " is fenced: the cluster declared it failed (epoch " +
                      std::to_string(epoch) + "); writes are refused until it rejoins the cluster";
    } else if (fence.fenced) {
      fence_reason_ =
          "node " + self + " is fenced: it has reached " + std::to_string(fence.quorum.reachable) +
          " of " + std::to_string(fence.quorum.voters) + " voting members (a majority is " +
          std::to_string(fence.quorum.majority) + ") for the last " + Seconds(fence.below_for) +
          "; writes are refused until it rejoins the cluster";
    } else {
      fence_reason_.clear();
    }
    if (fence.changed) {
      std::string reason = fence_reason_;
      if (!fence.fenced) {
        reason = self_state == MemberState::kJoining
                     ? "node " + self + " is joining the cluster again (it owns no ranges)"
                     : "node " + self + " reaches " + std::to_string(fence.quorum.reachable) +
                           " of " + std::to_string(fence.quorum.voters) +
                           " voting members (a majority is " +
                           std::to_string(fence.quorum.majority) + ")";
      }
      logs.emplace_back(fence.fenced ? LogLevel::kError : LogLevel::kInfo,
                        (fence.fenced ? "fenced: " : "unfenced: ") + reason);
      fence_change.emplace(fence.fenced, std::move(reason));
    }

    // Heartbeats to every tracked peer with no call outstanding.
    for (FailureDetector::Target& target : detector_.StartHeartbeats()) {
      Send send{std::move(target), {}};
      send.request.set_from_id(self);
      send.request.set_epoch(epoch);
      send.request.set_to_id(send.target.id);
      if (topology_ != nullptr) send.request.set_view_digest(topology_->digest);
      for (const std::string& id : suspects) send.request.add_suspects(id);
      sends.push_back(std::move(send));
    }
    in_flight_ += static_cast<int>(sends.size());

    // The coordinator marks the declared-failed members (still non-FAILED: the detector
    // tracks only those), unless an OK call for them at this epoch is recent.
    if (coordinator == self && !fence.fenced && hooks_.mark_failed) {
      std::vector<std::string> reasons;
      for (const std::string& id : declared) {
        auto e = marked_epoch_.find(id);
        if (e != marked_epoch_.end() && e->second == epoch &&
            now - marked_at_[id] < options_.failure_timeout) {
          continue;
        }
        to_mark.push_back(id);
        reasons.push_back(describe(id));
      }
      if (to_mark.size() == 1) {
        mark_reason = reasons[0];
      } else {
        for (size_t i = 0; i < to_mark.size(); ++i) {
          if (i > 0) mark_reason += "; ";
          mark_reason += to_mark[i] + " " + reasons[i];
        }
      }
    }
  }

  for (const auto& [level, line] : logs) Log(level, line);
  if (fence_change && hooks_.on_fence_change) {
    hooks_.on_fence_change(fence_change->first, fence_change->second);
  }
  for (Send& send : sends) {
    std::string id = send.target.id;
    const uint64_t call_id = send.target.call_id;
    transport_->Send(send.target.address, send.request, options_.failure_timeout,
                     [this, id = std::move(id), call_id](const grpc::Status& status,
                                                         const v1::HeartbeatResponse& response) {
                       HeartbeatDone(id, call_id, status, response);
                     });
  }
  if (to_mark.empty()) return;

  const Status status = hooks_.mark_failed(to_mark, mark_reason);
  std::vector<std::string> newly_failed_logs;
  {
    std::lock_guard lock(mu_);
    for (const std::string& id : to_mark) {
      if (status.ok()) {
        marked_epoch_[id] = epoch;
        marked_at_[id] = now;
      } else if (error_logged_epoch_[id] != epoch) {
        error_logged_epoch_[id] = epoch;
        newly_failed_logs.push_back(id);
      }
    }
  }
  if (status.ok()) {
    failovers_.fetch_add(to_mark.size(), std::memory_order_relaxed);
  } else if (!newly_failed_logs.empty()) {
    Log(LogLevel::kWarn, "cannot mark " + JoinIds(newly_failed_logs) + " failed (epoch " +
                             std::to_string(epoch) + "): " + status.ToString() +
                             "; retrying every heartbeat");
  }
}

bool FailoverManager::fenced() const {
  std::lock_guard lock(mu_);
  return detector_.fenced();
}

std::string FailoverManager::fence_reason() const {
  std::lock_guard lock(mu_);
  return fence_reason_;
}

std::vector<PeerHealth> FailoverManager::Peers(TimePoint now) const {
  std::lock_guard lock(mu_);
  return detector_.Peers(now);
}

uint64_t FailoverManager::failovers() const { return failovers_.load(std::memory_order_relaxed); }

}  // namespace ringcache::internal

// FailoverManager: the failure detection of a node (docs/design/failover.md). It sends
// the heartbeats, answers them (Membership.Heartbeat calls HandleHeartbeat), feeds a
// FailureDetector with what it hears, and acts on the detector's decisions:
//  - logs each suspicion and its end ("suspect n3: no heartbeat answer for 1000 ms",
//    "n3 no longer suspected"), each member declared failed by a majority, and fencing
//    changes ("fenced: ...", "unfenced: ...");
//  - as the coordinator (lowest voter id not declared failed), when not fenced, calls
//    hooks.mark_failed for the declared-failed members still non-FAILED in the view, every
//    tick until the view shows them FAILED (a failed call is logged once per member and
//    epoch, then retried quietly);
//  - calls hooks.on_fence_change when this node fences or unfences itself;
//  - passes a view that came with a heartbeat answer to hooks.offer_view.
//
// Heartbeats: every tick (heartbeat_interval) one HeartbeatRequest{from_id, epoch, to_id,
// suspects} to each non-FAILED member of the view other than self (JOINING members
// included) that has no call outstanding, with deadline failure_timeout, through a
// HeartbeatTransport (gRPC's async client in the node, a fake in unit tests). An answer
// counts as "heard from" only if it is OK and carries the expected id (a node at that
// address with another id, or FAILED_PRECONDITION, is a failed heartbeat).
//
// Threads: Start() runs Tick(now) every heartbeat_interval on one Asio io_context thread
// named "rc-failover"; heartbeat completions run on the transport's threads (gRPC's);
// HandleHeartbeat runs on gRPC's server threads; OnTopology on Membership's. Unit tests
// call Tick(now) themselves with a manual clock and never Start().
//
// Thread safety: internal synchronization; every method may be called concurrently.
// Lock order: tick_mu_ (held through a whole Tick, so hooks and log lines of successive
// ticks are ordered) -> whatever the hooks take -> mu_ (the detector and the manager's
// state; never held while calling the transport, a hook or the log). Hooks therefore must
// not call Tick() or Shutdown(); they may call every other method (mark_failed typically
// makes Membership adopt a view, which calls OnTopology).
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "failure_detector.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"
#include "ringcache/v1/cluster.pb.h"
#include "topology.h"

namespace ringcache::internal {

class PeerPool;

struct FailoverOptions {
  // This node's id (as in its view). Required.
  std::string self_id;
  // Period of the heartbeats (and of the decisions). Default 200 ms; > 0.
  std::chrono::milliseconds heartbeat_interval{200};
  // Deadline of each heartbeat; silence after which a peer is suspected; time below a
  // majority after which this node fences itself. Default 1000 ms; > 0.
  std::chrono::milliseconds failure_timeout{1000};
  // One line per event; may be empty (discarded). Called without the manager's locks
  // held, from the manager's thread (or the Tick caller's).
  std::function<void(LogLevel, std::string_view)> log;
  // The time at which heartbeat answers arrive (Tick and HandleHeartbeat take theirs as
  // arguments). Empty (default) = std::chrono::steady_clock::now; unit tests pass their
  // manual clock.
  std::function<std::chrono::steady_clock::time_point()> now;
};

struct FailoverHooks {
  // Membership::MarkFailed. Called on the manager's thread (never under its lock), with
  // every member this node declares failed that is still non-FAILED in its view, and a
  // reason: for one member "suspected by n1, n2 (2 of 3 voters) for 1000 ms"; for
  // several, "n3 suspected by ... for ... ms; n4 suspected by ... for ... ms". May be
  // empty (nothing is marked).
  std::function<Status(const std::vector<std::string>& ids, const std::string& reason)> mark_failed;
  // A newer view came with a heartbeat answer: Membership::OfferView. Called on a
  // transport thread (or the Tick caller's, if the transport answers inline), not under
  // the manager's lock, never once Shutdown() has returned (nor for an answer that came
  // after it started). Must not block. May be empty.
  std::function<void(const v1::ClusterView& view, const std::string& from_id)> offer_view;
  // Fencing changed: Node updates its state and health. Called on the manager's thread,
  // not under its lock, in order. `reason` is the fence reason when fenced ("node n3 is
  // fenced: ..."), and why it ended when unfenced. May be empty.
  std::function<void(bool fenced, const std::string& reason)> on_fence_change;
};

// How heartbeats travel. Thread safety: Send and CancelAll may be called concurrently.
class HeartbeatTransport {  // fake in unit tests; gRPC async client in the node
 public:
  virtual ~HeartbeatTransport() = default;
  // Calls Membership.Heartbeat at `address` with `deadline`. `done` runs exactly once
  // (any thread, possibly inline) with the call's status and the answer (meaningful only
  // if the status is OK).
  virtual void Send(
      const std::string& address, const v1::HeartbeatRequest& request,
      std::chrono::milliseconds deadline,
      std::function<void(const grpc::Status&, const v1::HeartbeatResponse&)> done) = 0;
  // Cancels the calls in flight; their dones still run (with CANCELLED, typically).
  virtual void CancelAll() = 0;
};

// The node's transport: gRPC's async callback client over `peers` (not owned; must
// outlive the transport). Its destructor cancels the calls in flight and waits for their
// dones to have returned.
std::unique_ptr<HeartbeatTransport> MakeGrpcHeartbeatTransport(PeerPool* peers);

class FailoverManager {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `transport`: not owned; must outlive the manager (or at least its Shutdown()).
  FailoverManager(FailoverOptions options, HeartbeatTransport* transport, FailoverHooks hooks);
  ~FailoverManager();  // Shutdown()
  FailoverManager(const FailoverManager&) = delete;
  FailoverManager& operator=(const FailoverManager&) = delete;

  // Starts the "rc-failover" thread: Tick(now) every heartbeat_interval. Call once, after
  // the first OnTopology (ticks before a topology do nothing).
  void Start();
  // Stops the thread, cancels the heartbeats in flight and waits for their dones.
  // Idempotent. Afterwards Tick does nothing and no hook is called. Must not be called
  // from a hook or a transport thread.
  void Shutdown();

  // A view this node adopted (any thread). Views not newer than the last one are ignored.
  void OnTopology(std::shared_ptr<const Topology> topology);

  // Server side of Membership.Heartbeat: records the request (the sender is heard from,
  // its suspect list kept), fills id, epoch and suspects. A request addressed to another
  // id (to_id set and not self) is not recorded. Membership fills response->view.
  void HandleHeartbeat(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response,
                       TimePoint now = std::chrono::steady_clock::now());

  // One round: logs suspicion changes, updates fencing, sends due heartbeats, and as the
  // coordinator marks declared-failed members. Public for unit tests (manual clock, no
  // Start()); `now` must not decrease between calls.
  void Tick(TimePoint now);

  bool fenced() const;
  // "" when not fenced; else "node n3 is fenced: it has reached 1 of 3 voting members (a
  // majority is 2) for the last 1.2 s; writes are refused until it rejoins the cluster"
  // (the duration as of the last Tick); once the node's view has it FAILED, "node n3 is
  // fenced: the cluster declared it failed (epoch 6); writes are refused until it rejoins
  // the cluster".
  std::string fence_reason() const;
  // Failure detection state of each non-FAILED peer, sorted by id.
  std::vector<PeerHealth> Peers(TimePoint now = std::chrono::steady_clock::now()) const;
  // Members marked failed by this node as the coordinator: the ids of mark_failed calls
  // that returned OK (ringcache_failovers_total).
  uint64_t failovers() const;

 private:
  TimePoint Now() const;
  void Log(LogLevel level, const std::string& message) const;
  // The heartbeat `call_id` to `id` ended (on a transport thread, or inline in Send).
  void HeartbeatDone(const std::string& id, uint64_t call_id, const grpc::Status& status,
                     const v1::HeartbeatResponse& response);
  // Arms the timer for the tick at `at` (the timer thread, or Start() before it runs).
  void ScheduleTick(TimePoint at);

  // Constant after construction.
  const FailoverOptions options_;
  HeartbeatTransport* const transport_;  // Not owned.
  const FailoverHooks hooks_;

  // Serializes Tick (and Shutdown against it). Held across hook calls; see lock order.
  std::mutex tick_mu_;
  std::once_flag shutdown_once_;

  mutable std::mutex mu_;
  std::condition_variable in_flight_cv_;
  // Protected by mu_.
  FailureDetector detector_;
  std::shared_ptr<const Topology> topology_;
  bool stopping_ = false;
  int in_flight_ = 0;                                   // Heartbeats whose done has not run yet.
  std::vector<std::string> logged_suspects_;            // Suspicions logged and not yet cleared.
  std::vector<std::string> logged_declared_;            // Declared failures logged.
  std::string fence_reason_;                            // "" when not fenced.
  std::map<std::string, uint64_t> marked_epoch_;        // id -> epoch of an OK mark_failed.
  std::map<std::string, TimePoint> marked_at_;          // id -> when (retried after a timeout).
  std::map<std::string, uint64_t> error_logged_epoch_;  // id -> epoch of a logged error.
  std::atomic<uint64_t> failovers_{0};

  // The timer thread (Start..Shutdown): Asio stays out of this header.
  struct Timer;
  std::unique_ptr<Timer> timer_;
  std::thread thread_;
};

}  // namespace ringcache::internal

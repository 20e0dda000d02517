// Membership: this node's cluster view — joining through seeds, the coordinator's view
// changes, adopting pushed views (higher epochs only) — and the Topology snapshot every
// routing decision reads. Also serves ringcache.v1.Membership (cluster.proto).
//
// Protocol (docs/design/membership.md and docs/design/failover.md have the long form):
//  - A node without seeds (other than itself) bootstraps {epoch 1, members [self SERVING]}.
//  - Otherwise it calls Join on the seeds in turn until one answers with a view holding it
//    (in any state but FAILED). A member that is not the coordinator of the join forwards
//    it there, one hop. The coordinator of a join is the lowest id other than the joiner's
//    among the members that are neither FAILED nor JOINING (so a restarted lowest-id node
//    can rejoin through the others).
//  - The coordinator adds the joiner as JOINING (a new id; a FAILED id; a restarted member,
//    at the same address or, once the old address no longer answers as that id, a new
//    one), bumps the epoch, adopts the view, answers the joiner with it and pushes it to
//    every other member (PushView, retried with backoff until acknowledged, superseded by
//    newer views; FAILED members included, so that a node that was cut off learns it was
//    failed). A join of an id that is already JOINING at that address changes nothing.
//    View changes serialize on the coordinator's view lock.
//  - Every other view change is made by the transition coordinator: the voter (SERVING or
//    LEAVING member) with the lowest id.
//     * MarkFailed (the FailoverManager's majority decision): the ids become FAILED.
//     * Leave: a SERVING member becomes LEAVING (the leaving node asks the coordinator).
//     * TransitionReady: every voter reports once it has streamed, for the current epoch,
//       the ranges the transition moves. When every voter has reported for the current
//       epoch of a view in transition, the coordinator flips it: JOINING -> SERVING,
//       LEAVING members removed, epoch + 1. A newer view (any epoch change) needs new
//       reports. A leaving coordinator removes itself at the flip, pushes the final view
//       (waiting up to 2 s for the acks) and has then left.
//  - A coordinator makes any of these changes (but the flip) only once a majority of the
//    voters of its current view, itself included, hold that view (same epoch and digest,
//    as push answers, pushes and heartbeats said); UNAVAILABLE until then, and the view is
//    pushed to the voters not heard from. So a coordinator cut off from the majority gets
//    at most one change ahead of it (docs/design/failover.md, "One change ahead").
//  - Every node adopts a view only if its epoch is higher than its own (a same-epoch view
//    that differs is logged as a warning and ignored); subscribers see the adopted
//    snapshots in epoch order. A node adopts a view that holds it as FAILED (then clears
//    its cache through the rejoin hook and rejoins as above, in the background), and a
//    view without it only after it asked to leave (it has then left).
//
// Threads: Join, PushView, Heartbeat, Leave and TransitionReady run on gRPC's callback
// threads and never wait on another node (forwarded calls and probes use the async client
// API); pushes are started by this object's pusher thread and completed on gRPC's threads;
// rejoins, transition-ready reports and the leaving coordinator's last wait run on its
// worker thread; JoinOrBootstrap and RequestLeave block their caller (never a gRPC thread).
//
// Thread safety: internal synchronization; every method may be called concurrently.
#pragma once

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster_auth.h"
#include "peer_pool.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"
#include "ringcache/v1/cluster.pb.h"
#include "topology.h"

namespace ringcache::internal {

struct MembershipOptions {
  std::string self_id;
  uint32_t weight = 1;
  std::vector<std::string> seeds;  // the node's own address is skipped
  uint32_t replication_factor = 2;
  uint32_t vnodes_per_weight = 160;
  std::chrono::milliseconds join_timeout{30000};
  std::chrono::milliseconds call_timeout{2000};  // deadline of each membership rpc
  // The coordinator warns when a transition has waited this long for TransitionReady
  // reports, then again every such period (NodeOptions::transition_warn).
  std::chrono::milliseconds transition_warn{30000};
  // Called with the epoch of every view about to be adopted, under the view lock, before
  // current() returns it or a subscriber sees it: Node raises its cache's version floor
  // here, so that no write is routed by a view whose floor is not raised yet. Must be
  // quick and must not call into Membership. May be empty.
  std::function<void(uint64_t epoch)> before_adopt{};
  // One line per view change and join attempt problem; nullptr = discarded. Thread-safe.
  std::function<void(LogLevel level, std::string_view message)> log;
  // Who may call the Membership service (cluster_auth.h). Not owned; nullptr = anyone.
  const ClusterAuth* auth = nullptr;
  // Lets an operator (ringcache-cli) ask for a Leave with a client token instead of the
  // cluster secret: OK if `authorization` (the call's metadata) names a token with the
  // role admin, otherwise the status to refuse with (client_auth.h). Empty = no.
  std::function<grpc::Status(std::string_view authorization, grpc::ServerContextBase* ctx,
                             std::string_view what)>
      admin_token{};
  // A view more than this many epochs above the held one is refused (a member's bug or a
  // forged push must not jump the cluster's epoch toward its end). A node with no view
  // yet (joining) takes any valid epoch. At least 1.
  uint64_t max_epoch_jump = 1000000;
};

class Membership {
 public:
  Membership(MembershipOptions options, PeerPool* peers);
  ~Membership();

  // The ringcache.v1.Membership service (callback API) to register on the node's server.
  grpc::Service* service();
  // The same service for the client port of a node whose cluster plane has a port of its
  // own (NodeOptions::cluster_listen_address): an operator's Leave (admin token) is
  // served as by service(); every other rpc is PERMISSION_DENIED, naming the cluster port.
  grpc::Service* client_port_service();

  // `self_address`: this node's advertised HOST:PORT (known once the server is bound);
  // `self_cluster_address`: its cluster plane's, or empty if the plane shares
  // self_address. Seeds are the cluster planes' addresses.
  // Bootstraps a one-member view (no seeds other than self, SERVING), or joins through
  // the seeds, retrying until options.join_timeout; blocks until the node holds a view that
  // contains it in any state but FAILED (JOINING, normally: it does not wait for the
  // migration). The server must already be serving service(). Errors: UNAVAILABLE naming
  // the seeds tried and the last error; FAILED_PRECONDITION if the cluster refused (e.g.
  // settings).
  Status JoinOrBootstrap(const std::string& self_address,
                         const std::string& self_cluster_address = "");

  // The current snapshot; nullptr until JoinOrBootstrap has adopted a view. Cheap. Once
  // it is set, it stays set (a view holding this node as FAILED, or without it once it
  // has left, included).
  std::shared_ptr<const Topology> current() const;

  // Calls fn with every snapshot adopted from now on (not the current one), in epoch
  // order. A snapshot may hold this node as FAILED or not at all (self == -1, target_self
  // == -1; self_member FAILED or nullptr): it then owns nothing. Called on the thread that
  // adopted it (a gRPC thread, the worker thread or JoinOrBootstrap's caller); fn must not
  // block for long nor call Subscribe or Unsubscribe. Returns an id for Unsubscribe, which
  // waits for a running fn to finish. Subscribe first, then read
  // current(): together they miss no view (one may show up in both; compare epochs).
  // Subscribe and Unsubscribe wait for a view change in progress (its subscriber calls
  // included): do not call them holding a lock that fn takes.
  int Subscribe(std::function<void(std::shared_ptr<const Topology>)> fn);
  void Unsubscribe(int id);

  // ---- Failover (docs/design/failover.md).

  // The server side of Membership.Heartbeat: Service::Heartbeat calls fn(request,
  // response) (a request for another id is refused first, FAILED_PRECONDITION), then sets
  // response->view when the request's epoch is lower than ours. Until set: UNAVAILABLE.
  // fn runs on gRPC threads, concurrently, and must not block. Set it before serving.
  void SetHeartbeatHandler(
      std::function<void(const v1::HeartbeatRequest&, v1::HeartbeatResponse*)> fn);

  // The coordinator's failover: marks `ids` FAILED, bumps the epoch, adopts and pushes the
  // view. Re-checked under the view lock: FAILED_PRECONDITION unless this node is the
  // coordinator once `ids` are left out (the voter with the lowest id) and every id is a
  // member other than this node; ids already FAILED are skipped (OK, and no new epoch, if
  // all are). `reason` goes into the log line ("suspected by n1, n2 (2 of 3 voters) for
  // 1000 ms"). Blocks only on the view lock; any thread but a subscriber.
  [[nodiscard]] Status MarkFailed(const std::vector<std::string>& ids, const std::string& reason);

  // A view that came from `from_id` another way than PushView (a heartbeat answer): adopted
  // like a pushed one if it is newer (see the protocol above), ignored otherwise. Any thread
  // but a subscriber; does not block on other nodes.
  void OfferView(const v1::ClusterView& view, const std::string& from_id);

  // This node has finished, for the view of `epoch`, streaming the ranges that move in its
  // transition. Sends TransitionReady to the coordinator from the worker thread (or records
  // it locally if this node coordinates), retried with backoff until acknowledged or the
  // epoch is superseded. Idempotent, non-blocking, any thread (a subscriber too).
  void ReportTransitionReady(uint64_t epoch);

  // The transition in progress in the view held (epoch 0 if none): how long since this
  // node adopted its first view (a transition that goes on through newer epochs keeps its
  // start) and, on the coordinator, the voters that have or have not reported ready for
  // the current epoch. Cheap; any thread but a subscriber.
  TransitionStatus Transition() const;

  // Asks the coordinator to mark this node LEAVING (as the Leave rpc does for a client).
  // Blocks up to a few call timeouts; not on a gRPC thread. OK once this node is LEAVING in
  // the view it holds (at once if it already was). FAILED_PRECONDITION if it is not
  // SERVING or is the only serving member; UNAVAILABLE if the coordinator cannot be
  // reached (the leave can be asked again).
  [[nodiscard]] Status RequestLeave();
  // Waits until this node has left (adopted a view without itself after asking to leave).
  // True if it has; false after `timeout` or at Shutdown.
  bool WaitLeft(std::chrono::milliseconds timeout);
  bool left() const;
  bool leave_requested() const;

  // Called on the worker thread when this node found itself FAILED in a newer view (the
  // view is already adopted: subscribers saw this node off the ring), before it rejoins:
  // Node clears the cache. Once per failure. Set before JoinOrBootstrap.
  void SetRejoinHook(std::function<void()> fn);
  // Called once, when the node has left (on a gRPC or the worker thread, no lock of this
  // object held): must not block (Node starts its shutdown from a thread of its own).
  // Set before JoinOrBootstrap.
  void SetLeftHook(std::function<void()> fn);
  // Called whenever leave_requested() changes (a leave asked for, refused, or ended by a
  // failure), with no lock of this object held (possibly under the view lock: fn must not
  // call into this object but for its const accessors). Set before JoinOrBootstrap.
  void SetLeaveStateHook(std::function<void()> fn);
  // While fn() is false (the node is fenced) this node, even as the coordinator, makes no
  // view change: joins and leaves get UNAVAILABLE, transition reports are not recorded
  // (their senders retry). May be called under the view lock. Set before serving.
  void SetMayCoordinate(std::function<bool()> fn);

  // Stops background work (pushes, retries, the worker: a rejoin or report in progress is
  // cancelled) and waits for this object's calls to complete. Call it after the server has
  // stopped. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

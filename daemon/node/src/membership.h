// Membership: this node's cluster view — joining through seeds, the coordinator's view
// changes, adopting pushed views (higher epochs only) — and the Topology snapshot every
// routing decision reads. Also serves ringcache.v1.Membership (cluster.proto).
//
// Protocol (docs/design/membership.md has the long form):
//  - A node without seeds (other than itself) bootstraps {epoch 1, members [self]}.
//  - Otherwise it calls Join on the seeds in turn until one answers with a view holding it.
//    A member that is not the coordinator forwards the Join there, one hop. The
//    coordinator of a join is the member with the lowest id other than the joiner (so a
//    restarted lowest-id node can rejoin through the others).
//  - The coordinator adds the joiner (or, for a known id at a new address, updates the
//    address once the old address no longer answers as that id), bumps the epoch, adopts
//    the view, answers the joiner with it and pushes it to every other member (PushView,
//    retried with backoff until acknowledged, superseded by newer views, dropped when the
//    member leaves the view). Joins serialize on the coordinator's view lock.
//  - Every node adopts a view only if its epoch is higher than its own; subscribers see the
//    adopted snapshots in epoch order.
//  - No failure detection yet: a member that dies stays in the view, and a join whose
//    coordinator is down fails (UNAVAILABLE) until it is back.
//
// Threads: Join and PushView run on gRPC's callback threads and never wait on another node
// (forwarded joins and probes use the async client API); pushes are started by this
// object's pusher thread and completed on gRPC's threads; JoinOrBootstrap blocks its
// caller (Node::Start, not a gRPC thread).
//
// Thread safety: internal synchronization; every method may be called concurrently.
#pragma once

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "peer_pool.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"
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
  // One line per view change and join attempt problem; nullptr = discarded. Thread-safe.
  std::function<void(LogLevel level, std::string_view message)> log;
};

class Membership {
 public:
  Membership(MembershipOptions options, PeerPool* peers);
  ~Membership();

  // The ringcache.v1.Membership service (callback API) to register on the node's server.
  grpc::Service* service();

  // `self_address`: this node's advertised HOST:PORT (known once the server is bound).
  // Bootstraps a one-member view (no seeds other than self), or joins through the seeds,
  // retrying until options.join_timeout; blocks until the node holds a view that contains
  // it. The server must already be serving service(). Errors: UNAVAILABLE naming the seeds
  // tried and the last error; FAILED_PRECONDITION if the cluster refused (e.g. settings).
  Status JoinOrBootstrap(const std::string& self_address);

  // The current snapshot; nullptr until JoinOrBootstrap has adopted a view. Cheap.
  std::shared_ptr<const Topology> current() const;

  // Calls fn with every snapshot adopted from now on (not the current one), in epoch
  // order, on the thread that adopted it (a gRPC thread or JoinOrBootstrap's caller); fn
  // must not block for long nor call Subscribe or Unsubscribe. Returns an id for
  // Unsubscribe, which waits for a running fn to finish. Subscribe first, then read
  // current(): together they miss no view (one may show up in both; compare epochs).
  // Subscribe and Unsubscribe wait for a view change in progress (its subscriber calls
  // included): do not call them holding a lock that fn takes.
  int Subscribe(std::function<void(std::shared_ptr<const Topology>)> fn);
  void Unsubscribe(int id);

  // Stops background work (retries, pushes). Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

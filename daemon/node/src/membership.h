// Membership: this node's cluster view — joining through seeds, the coordinator's view
// changes, adopting pushed views (higher epochs only) — and the Topology snapshot every
// routing decision reads. Also serves ringcache.v1.Membership (cluster.proto).
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
  // order, on the thread that adopted it; fn must not block for long nor call Subscribe
  // or Unsubscribe. Returns an id for Unsubscribe, which waits for a running fn to finish.
  int Subscribe(std::function<void(std::shared_ptr<const Topology>)> fn);
  void Unsubscribe(int id);

  // Stops background work (retries, pushes). Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

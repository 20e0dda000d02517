// ReplicatedStore: a node's cache plus async primary -> replica replication.
//
//  - Writes (as the primary): apply to the cache, read the result back (value, version,
//    absolute deadline) and append it to the ordered stream of every replica of the key
//    in the current Topology, all under a per-key-stripe lock, so each link carries the
//    writes of a key in the order they were applied. Results, not commands.
//  - One link per replica node: a long-lived Replication/Replicate stream, a sender
//    thread batching entries with sequence numbers, acks read back; a bounded backlog
//    (bytes) for resume after a reconnect, else a full sync of the replicated ranges,
//    streamed shard by shard while writes continue.
//  - Write concern: WaitForAcks fires a callback once k links acked the ticket's seqs,
//    or at the timeout.
//  - As a replica: serves ringcache.v1.Replication, applying entries with
//    Cache::ApplyReplicated / ApplyReplicatedDelete.
//
// Thread safety: internal synchronization; every method may be called concurrently.
#pragma once

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peer_pool.h"
#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/node/node.h"
#include "topology.h"

namespace ringcache::internal {

struct ReplicationOptions {
  std::string self_id;
  uint64_t backlog_bytes = uint64_t{64} << 20;
  std::chrono::milliseconds ack_timeout{5000};
  Clock* clock = nullptr;  // nullptr = Clock::System()
};

class ReplicatedStore {
 public:
  // `cache` and `peers` are not owned and outlive the store.
  ReplicatedStore(ReplicationOptions options, Cache* cache, PeerPool* peers);
  ~ReplicatedStore();

  // The ringcache.v1.Replication service (callback API) to register on the node's server.
  grpc::Service* service();

  // A new view: opens links to new replicas (full sync or resume), closes links to nodes
  // that no longer replicate anything of ours. Called by Membership's subscription.
  void OnTopology(std::shared_ptr<const Topology> topology);

  // Writes with replication; same contracts as the Cache methods. `ticket` may be null.
  Result<uint64_t> Set(std::string_view key, std::string_view value, const SetOptions& options,
                       WriteTicket* ticket);
  Status Delete(std::string_view key, WriteTicket* ticket);
  Status Touch(std::string_view key, uint64_t ttl_ms, WriteTicket* ticket);
  Result<IncrResult> Incr(std::string_view key, int64_t delta, uint64_t ttl_ms_if_created,
                          WriteTicket* ticket);
  std::vector<Result<uint64_t>> MultiSet(std::span<const SetItem> items, WriteTicket* ticket);
  std::vector<Status> MultiDelete(std::span<const std::string_view> keys, WriteTicket* ticket);

  // See Node::WaitForReplicas.
  void WaitForAcks(const WriteTicket& ticket, uint32_t k, std::chrono::milliseconds timeout,
                   std::function<void(uint32_t acked)> done);

  std::vector<ReplicaLinkStats> LinkStats() const;

  // Closes every link and the replica-side streams; fires pending waits. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

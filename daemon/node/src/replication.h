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
//    Cache::ApplyReplicated / ApplyReplicatedDelete (ReplReceiver).
//
// docs/design/replication.md describes the protocol and its guarantees.
//
//  - Rebalancing: while the view is in transition, links also carry the target-ring
//    owners of this node's arcs (moving ranges); readiness is reported through a
//    callback once they are synced. Links the view drops are drained before they stop.
//
// Threads: the callers' (gRPC handlers: writes, WaitForAcks), per link a driver thread
// and a reader thread per stream (ReplLink), one timer thread (write-concern timeouts,
// link ack timeouts, stopping drained links and joining them, transition-ready reports),
// gRPC's threads for the replica side.
// Locks, in order: links_mu_ -> a stripe (one at a time: the barrier after a routing
// change) -> a link's mutex; a write holds one stripe -> the links' mutexes of its key's
// replicas;
// ReplWaiters' mutex is a leaf (its callbacks run outside it). No lock is held while
// calling gRPC or a write-concern callback.
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

#include "cluster_auth.h"
#include "peer_pool.h"
#include "ringcache/cache.h"
#include "ringcache/metrics/metrics.h"
#include "ringcache/node/node.h"
#include "topology.h"

namespace ringcache::internal {

struct ReplicationOptions {
  // This node's id (the primary_id of its links, checked as replica_id by its receiver).
  std::string self_id;
  // Per replica link: bytes of recent writes kept for resume. Default 64 MiB.
  uint64_t backlog_bytes = uint64_t{64} << 20;
  // A link whose messages go unacknowledged this long is reconnected. Default 5 s.
  std::chrono::milliseconds ack_timeout{5000};
  // Link events (connect, resume, full sync, breaks), one line each; may be empty.
  // Called from the store's threads; must be thread-safe.
  std::function<void(LogLevel level, std::string_view message)> log;
  // Who may open a Replicate stream to this node (cluster_auth.h). Not owned; nullptr =
  // anyone (tests).
  const ClusterAuth* auth = nullptr;
  // Called with the record of every write this node applies as the key's primary (or
  // before it has a view), under the key's stripe, so a key's writes come in version
  // order: it must be quick and must not call into the store. Empty: nothing is called
  // (and a write with no replica builds no record).
  std::function<void(const WriteRecord& record)> on_primary_write = nullptr;
};

class ReplicatedStore {
 public:
  // `cache` and `peers` are not owned and outlive the store.
  ReplicatedStore(ReplicationOptions options, Cache* cache, PeerPool* peers);
  ~ReplicatedStore();

  // The ringcache.v1.Replication service (callback API) to register on the node's server.
  grpc::Service* service();

  // A new view: opens links to new replicas (full sync or resume), drains then closes
  // links to nodes that no longer replicate anything of ours. While the view is in
  // transition, the links also carry, for the arcs where this node is the primary on the
  // ring, the arcs' owners on the target ring ("moving" ranges for those that are not
  // ring owners). Called by Membership's subscription (on its thread: it does not wait
  // for any replica).
  void OnTopology(std::shared_ptr<const Topology> topology);

  // Rebalancing. While the view is in transition at epoch E and this node is on the
  // ring, fn(E) is called once every link carrying moving ranges has had a full sync of
  // its current ranges acknowledged (at once if this node moves nothing), then again
  // about every second while the view stays in transition at E (the report is
  // idempotent). Never called outside a transition or on a node off the ring. Runs on
  // the store's timer thread with no store lock held: fn must not block. Set before the
  // first OnTopology.
  void SetTransitionReadyCallback(std::function<void(uint64_t epoch)> fn);

  // Progress of the current transition as a source of moving ranges (epoch 0 when the
  // view is not in transition), and the snapshot entries this node received as a
  // replica since it started. keys/bytes_remaining estimate, per moving link whose sync
  // is not acknowledged yet: the cache's items (bytes of keys + values) in the shards that
  // sync has not copied yet (all of them before it starts), assuming items are spread
  // evenly over shards, times the share of the hash circle the link's ranges cover.
  MigrationProgress Migration() const;

  // The arcs where this node is the primary on the ring that have fewer ring owners
  // than the replication factor, or a replica whose link is not streaming with a full
  // sync of its current ranges acknowledged. 0 for a node off the ring.
  uint64_t UnderReplicatedRanges() const;

  // Drops every entry of the local cache (Cache::Clear) and forgets what this node held
  // as a replica (ReplReceiver::Reset), so that every primary sends it a full sync again:
  // for a node that was declared failed and rejoins empty. Use it rather than clearing
  // the cache alone: a replica that kept its resume state would let its primaries resume
  // instead of re-sending what the clear dropped.
  void ClearLocalData();

  // Waits until every link the view no longer needs has drained (see OnTopology), up to
  // `timeout`; true if none is left. For a node that left the cluster, before Shutdown()
  // (which stops draining links at once). Blocks: not on a gRPC or membership thread.
  bool WaitDrained(std::chrono::milliseconds timeout);

  // Writes with replication; same contracts as the Cache methods. `ticket` may be null;
  // otherwise it is cleared, then receives the (link, seq) of every replica the write was
  // shipped to (MultiSet/MultiDelete: the highest seq per link over all items).
  Result<uint64_t> Set(const HashedKey& key, std::string_view value, const SetOptions& options,
                       WriteTicket* ticket);
  Status Delete(const HashedKey& key, WriteTicket* ticket);
  Status Touch(const HashedKey& key, uint64_t ttl_ms, WriteTicket* ticket);
  Result<IncrResult> Incr(const HashedKey& key, int64_t delta, uint64_t ttl_ms_if_created,
                          WriteTicket* ticket);
  Result<UpdateResult> Update(
      const HashedKey& key,
      const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
      WriteTicket* ticket, std::optional<ValueType> expected = ValueType::kString);
  std::vector<Result<uint64_t>> MultiSet(std::span<const SetItem> items, WriteTicket* ticket);
  std::vector<Status> MultiDelete(std::span<const std::string_view> keys, WriteTicket* ticket);

  // See Node::WaitForReplicas.
  void WaitForAcks(const WriteTicket& ticket, uint32_t k, std::chrono::milliseconds timeout,
                   std::function<void(uint32_t acked)> done);

  std::vector<ReplicaLinkStats> LinkStats() const;

  // For the metrics: `resolve(replica_id)` gives the histogram (or nullptr) into which
  // the link to that replica observes, per acknowledged write, the seconds from its
  // append (right after the local apply) to the replica's ack: the replication lag of
  // each write. Applied to existing and future links. The histograms must outlive the
  // store.
  void SetAckLatencyHistograms(
      std::function<metrics::Histogram*(const std::string& replica_id)> resolve);

  // Closes every link and the replica-side streams; fires pending waits. Writes still
  // work afterwards, on the local cache only. Idempotent. Must not be called from a gRPC
  // reaction. The server serving service() must shut down before the store is destroyed.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

// ReplReceiver: the replica side of replication, the ringcache.v1.Replication service.
//
// Each primary opens one Replicate stream to each of its replicas (see ReplLink). Per
// primary this node keeps, across streams, the primary's replication_id, the highest
// sequence number applied and whether it holds a complete copy up to it ("resumable"):
// a primary that reconnects within its backlog resumes after it instead of sending a
// full sync. A restarted node has no such state, so it always gets a full sync.
//
// A stream:  hello -> ack{hello_reply, resume_seq, resumable}
//            [FullSyncBegin] batches... [FullSyncEnd] ...   -> ack per message processed
//  - entries with seq > 0 are applied strictly in sequence order (a gap ends the stream
//    with FAILED_PRECONDITION and makes the state non-resumable);
//  - FullSyncBegin drops what the node holds in the ranges and marks the state
//    non-resumable until FullSyncEnd; snapshot entries (seq 0) are applied only if not
//    older than what is there and not older than a delete seen during the sync (the
//    "delete memory", so that a snapshot copy taken before a delete cannot resurrect the
//    key);
//  - a new stream from the same primary supersedes the old one: the old one stops
//    applying and ends with ABORTED.
// Entries are applied with Cache::ApplyReplicated / ApplyReplicatedDelete (and Touch),
// under the key's stripe lock (ReplStripes), on the gRPC thread that read the message.
//
// Thread safety: internal synchronization. Lock order: mu_ (the primaries and streams
// maps) -> a PrimaryState's mu -> a stripe. A stream's own mutex is a leaf, never held
// while calling gRPC or applying entries.
#pragma once

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_auth.h"
#include "repl_stripes.h"
#include "ringcache/cache.h"
#include "ringcache/node/node.h"
#include "topology.h"

namespace ringcache::internal {

class ReplReceiver {
 public:
  using LogFn = std::function<void(LogLevel, std::string_view)>;

  // `cache`, `stripes` and `auth` are not owned and outlive the receiver. `log` may be
  // empty; `auth` nullptr = no check (tests). `view_wait`: how long a full sync for a view
  // this node does not hold yet waits for it (see SetView).
  ReplReceiver(std::string self_id, Cache* cache, ReplStripes* stripes, LogFn log,
               const ClusterAuth* auth = nullptr,
               std::chrono::milliseconds view_wait = std::chrono::milliseconds(2000));
  // REQUIRES: the server serving service() has shut down (no stream is open).
  ~ReplReceiver();

  // The service to register on the node's server.
  grpc::Service* service();

  // Ends every open stream (UNAVAILABLE) and refuses new ones; waits a bounded time for
  // the open streams to end. Idempotent. Must not be called from a gRPC reaction.
  void Shutdown();

  // The primaries this node's current view (of `epoch`) marks FAILED: their hellos are
  // refused (FAILED_PRECONDITION) and an open stream of theirs applies nothing more
  // (ABORTED at its next message), so that a failed primary that is still running (cut
  // off, not yet aware) cannot make this node drop ranges it may now be the primary of.
  // Replaces the previous list; ids not in it are accepted again.
  void SetFailedPrimaries(const std::vector<std::string>& ids, uint64_t epoch);
  // This node's current view. What a stream claims is checked against it:
  //  - a hello from a primary id that is not a member is refused (FAILED_PRECONDITION
  //    naming it), so made-up ids leave no state behind;
  //  - a full sync (which drops what this node holds in its ranges) is applied only if the
  //    view makes the sender the primary (owner 0 of the ring) of every one of its ranges.
  //    Otherwise the stream ends before anything is dropped: ABORTED if the sync's epoch
  //    is below the view's (the sender has not caught up; it retries), FAILED_PRECONDITION
  //    if equal (a fork, or a lie). A sync for an epoch above the view's waits, unapplied
  //    and unacknowledged (the stream reads nothing more meanwhile), until this node holds
  //    that view (a new primary's sync often arrives before its view) and is then checked
  //    against it; after view_wait without it, ABORTED (the sender retries). The same at
  //    FullSyncEnd.
  //    Its snapshot entries must lie in those ranges (INVALID_ARGUMENT). Live entries are
  //    not checked: a link drains the writes of an earlier view after a change, and
  //    versions keep a stale one from overwriting a newer value.
  // Before the first call (a receiver driven without views, in tests) all is accepted.
  void SetView(std::shared_ptr<const Topology> topology);

  // Forgets what this node holds of every primary (after Cache::Clear): the open streams
  // end (ABORTED) and every primary's next hello gets "not resumable", hence a full sync.
  // Does not wait for the streams to end. Must not be called from a gRPC reaction.
  void Reset();

  // What this node holds for a primary, for tests and logs.
  struct PrimaryInfo {
    bool known = false;
    std::string replication_id;
    uint64_t applied_seq = 0;
    bool resumable = false;
    bool syncing = false;
  };
  PrimaryInfo Primary(const std::string& primary_id) const;

  // Snapshot entries (full-sync copies) applied since the receiver was created, and
  // their key + value bytes, over all primaries (MigrationProgress::keys_received).
  struct SnapshotTotals {
    uint64_t keys = 0;
    uint64_t bytes = 0;
  };
  SnapshotTotals SnapshotReceived() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal

// ReplLink: the primary side of one primary -> replica link.
//
// States (ReplicaLinkStats::state):
//
//   connecting --hello reply, resumable--> streaming <------------------+
//       |  \--hello reply, not resumable / ranges changed--> full_sync -+ (FullSyncEnd acked)
//       |                                                       |
//       +--- stream broke / ack timeout / address changed ------+--> disconnected
//   disconnected --backoff (100 ms doubling to 2 s)--> connecting
//   any state --Stop(), or retiring and needing a full sync--> stopped (final: the driver
//                                                               thread ends)
//
// A view change keeps a link in any state but stopped (Revive() says which); a stopped
// link is replaced by a new one (docs/design/replication.md, "Which links a view keeps").
//
// Writes are appended (Append, under the key's stripe lock) to a byte-bounded backlog
// (ReplBacklog) with the link's next sequence number, whatever the state. The driver
// thread owns the stream: it connects (hello), resumes after the replica's resume_seq if
// the backlog still holds the next entry, else sends a full sync of the link's ranges
// (FullSyncBegin at next_seq = last appended + 1, then the snapshot copied out shard by
// shard with Cache::ForEachInRange and sent in batches, live batches interleaved, then
// FullSyncEnd), and streams live entries in batches (up to kMaxBatchBytes or
// kMaxBatchEntries each). A reader thread per stream reads the acks. If the backlog drops
// an entry not yet sent (the replica is too slow), the link starts a new full sync on
// the same stream.
//
// Route changes (SetRoute): new ranges that the old ones cover (the link only lost
// ranges) need no full sync: the replica already holds them, and the entries appended
// for the lost ranges keep flowing. Any other change starts a full sync of all the new
// ranges; before its FullSyncBegin the driver first sends (on a live stream) the entries
// appended up to the change, so writes appended for ranges the link loses still reach the
// replica. Every change that needs a sync bumps the link's range generation; Sync()
// reports whether a full sync of the current generation has been acked (rebalancing
// waits for that, see ReplicatedStore).
//
// Acks count for write concern (ReplWaiters) only outside a full sync: between
// FullSyncBegin and the ack of FullSyncEnd, entries before the sync's next_seq are not
// yet on the replica, so a wait completes only once the sync is acked (or times out).
//
// Ack timeout: while messages are unacknowledged, an ack must arrive at least every
// ack_timeout; otherwise CheckTimeout() (the store's timer thread) cancels the stream and
// the link reconnects. This also bounds the wait for a hello reply.
//
// Thread safety: internal synchronization (mu_); every method may be called concurrently.
// Threads: the driver thread (Start..Join) and one reader thread per stream. Lock order:
// a stripe lock -> mu_; mu_ is never held while calling gRPC, the cache or ReplWaiters.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "peer_pool.h"
#include "repl_backlog.h"
#include "repl_range_set.h"
#include "repl_waiters.h"
#include "ringcache/cache.h"
#include "ringcache/metrics/metrics.h"
#include "ringcache/node/node.h"

namespace ringcache::internal {

struct ReplLinkOptions {
  std::string self_id;
  std::string replica_id;
  uint64_t link_id = 0;
  // Sent in the hello; unique per link instance (process id + link id), so sequence
  // numbers of another link or another run are never taken for this one's.
  std::string replication_id;
  uint64_t backlog_bytes = uint64_t{64} << 20;
  std::chrono::milliseconds ack_timeout{5000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{2000};
  std::function<void(LogLevel, std::string_view)> log;  // may be empty
};

class ReplLink {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Most entry bytes (keys + values) and entries per batch message; a single larger
  // entry goes alone.
  static constexpr uint64_t kMaxBatchBytes = uint64_t{1} << 20;
  static constexpr int kMaxBatchEntries = 8192;

  // `cache`, `peers` and `waiters` are not owned and outlive the link.
  ReplLink(ReplLinkOptions options, Cache* cache, PeerPool* peers, ReplWaiters* waiters);
  // Stops and joins.
  ~ReplLink();
  ReplLink(const ReplLink&) = delete;
  ReplLink& operator=(const ReplLink&) = delete;

  // Where the replica is and which ranges the link carries. A change of ranges starts a
  // full sync (on the open stream, or at the next connect); a change of address
  // reconnects. Call once before Start().
  void SetRoute(const std::string& address, ReplRangeSet ranges, uint64_t epoch);
  // Makes the link send a full sync of its ranges (even if the replica could resume), as
  // a change of ranges does: for a link that stopped receiving writes for a while.
  void ForceFullSync();
  // Starts the driver thread.
  void Start();
  // Asks the threads to end (cancels the stream); does not wait. Appends are still
  // accepted (and dropped with the link).
  void Stop();
  // Waits for the threads. REQUIRES: Stop() was called.
  void Join();

  // Appends a write; returns its sequence number on this link. REQUIRES: the caller
  // holds the key's stripe lock (so that per-key order is apply order).
  uint64_t Append(std::shared_ptr<const WriteRecord> record);
  // The sequence number of the last write appended (0 before the first).
  uint64_t LastSeq() const;

  // Ack timeout check (see the class comment). Called periodically by the store.
  void CheckTimeout(TimePoint now);

  // Observes, per acked entry, the time from its append to the ack (seconds). May be
  // null. The histogram must outlive the link.
  void SetAckHistogram(metrics::Histogram* histogram);

  ReplicaLinkStats Stats() const;

  // Full-sync progress of the link's current ranges (rebalancing, under-replication).
  struct SyncStatus {
    // A full sync of the current ranges (or of a superset) was acknowledged, and no full
    // sync began since (the replica has no complete copy until the sync's end).
    bool ranges_synced = false;
    // ranges_synced, and the stream is up and streaming (not in a full sync).
    bool in_sync = false;
    // A full sync of the current ranges is running: shards copied so far of it.
    bool sync_running = false;
    uint32_t shards_copied = 0;
    // Snapshot entries (and their key + value bytes) sent by the link's full syncs since
    // it was created.
    uint64_t snapshot_keys_sent = 0;
    uint64_t snapshot_bytes_sent = 0;
    // The current ranges' share of the hash circle.
    double share = 0;
  };
  SyncStatus Sync() const;

  // True once every entry appended so far is acknowledged by the replica outside a full
  // sync (nothing is pending for it). A removed link is stopped once drained.
  bool Drained() const;
  // A retiring link (removed from the route, draining) never starts a full sync: if it
  // would need one (its stream broke, the replica lost its copy), it stops by itself (its
  // driver thread ends; Stopped() turns true). Retire() marks the link so.
  void Retire();
  // Takes a retiring link back for a new route: true if it is still running (it then
  // stays running, no longer retiring); false if it has stopped (by itself, or Stop()),
  // and a stopped link never runs again: the caller must replace it with a new link.
  // Atomic with the driver's decision to stop, so a link is never kept stopped.
  [[nodiscard]] bool Revive();
  // The link was stopped (Stop(), or by itself while retiring): its driver thread has
  // ended or is ending.
  bool Stopped() const;
  uint64_t link_id() const { return options_.link_id; }
  const std::string& replica_id() const { return options_.replica_id; }

 private:
  enum class State { kConnecting, kFullSync, kStreaming, kDisconnected };
  static const char* StateName(State s);

  using Stream = grpc::ClientReaderWriter<v1::ReplicationMessage, v1::ReplicationAck>;

  struct HelloReply {
    bool received = false;
    uint64_t resume_seq = 0;
    bool resumable = false;
  };

  // A snapshot entry copied out of the cache.
  struct SnapshotItem {
    std::string key;
    std::string value;
    uint64_t version = 0;
    int64_t expires_at_ms = 0;
    ValueType type = ValueType::kString;
  };

  void Run();  // The driver thread.
  // One stream from connect to break; returns the status it ended with.
  grpc::Status RunStream();
  void ReadAcks(Stream* stream);  // The reader thread of one stream.
  // Sends one message, counting it as unacknowledged. False if the stream broke.
  bool Send(Stream* stream, const v1::ReplicationMessage& msg);
  // Copies one shard's entries in the link's ranges into snapshot_.
  void CopyShard(uint32_t shard);
  void Log(LogLevel level, const std::string& message) const;

  // Constant after construction.
  const ReplLinkOptions options_;
  Cache* const cache_;          // Not owned.
  PeerPool* const peers_;       // Not owned.
  ReplWaiters* const waiters_;  // Not owned.

  std::thread driver_;
  std::atomic<metrics::Histogram*> ack_histogram_{nullptr};

  // Used only by the driver thread.
  std::vector<SnapshotItem> snapshot_;  // Copied, not yet sent, of the current shard.
  size_t snapshot_pos_ = 0;
  uint32_t sync_shard_ = 0;   // Next shard to copy.
  ReplRangeSet sync_ranges_;  // The ranges of the sync in progress.

  mutable std::mutex mu_;
  std::condition_variable cv_;  // Appends, acks, stop, route changes, stream broken.
  // Protected by mu_.
  ReplBacklog backlog_;
  std::string address_;
  ReplRangeSet ranges_;
  uint64_t epoch_ = 0;
  bool stopping_ = false;
  bool address_changed_ = false;  // Since the current/last stream was opened.
  State state_ = State::kDisconnected;
  std::shared_ptr<grpc::ClientContext> ctx_;  // The open stream's, to cancel it.
  bool broken_ = true;                        // The current stream (if any) is over.
  HelloReply hello_;
  bool need_full_sync_ = true;  // A new link always starts with a full sync.
  bool syncing_ = false;        // FullSyncBegin sent, FullSyncEnd not yet acked.
  bool sync_sending_ = false;   // Snapshot not fully sent yet.
  uint64_t sync_end_msg_ = 0;   // Message number of FullSyncEnd on this stream (0 = none).
  uint64_t next_send_ = 1;      // Next live seq to send on the current stream.
  uint64_t live_from_ = 1;      // First seq the replica applies one by one (resume/sync).
  uint64_t acked_seq_ = 0;      // Highest seq the replica acknowledged.
  uint64_t sent_msgs_ = 0;      // Messages sent on the current stream.
  uint64_t acked_msgs_ = 0;     // Messages the replica reported processed.
  TimePoint waiting_since_;     // Since when an ack is awaited (if sent_msgs_ > acked_msgs_).
  uint64_t resumes_ = 0;
  uint64_t full_syncs_ = 0;
  uint64_t sync_keys_sent_ = 0;
  uint64_t sync_bytes_sent_ = 0;
  uint64_t total_sync_keys_sent_ = 0;
  uint64_t total_sync_bytes_sent_ = 0;
  uint64_t ranges_gen_ = 1;  // Bumped by every route change that needs a full sync.
  uint64_t sync_gen_ = 0;    // ranges_gen_ when the running (or last) full sync began.
  uint64_t synced_gen_ = 0;
  bool retiring_ = false;       // sync_gen_ of the last full sync acknowledged.
  uint32_t shards_copied_ = 0;  // Of the running full sync.
  // Before a full sync caused by a route change, entries up to flush_to_ are sent live
  // first, if the stream is live (can_flush_: resumed, or past a FullSyncBegin).
  uint64_t flush_to_ = 0;
  bool can_flush_ = false;
  std::string last_error_;       // Of the last broken stream, logged once per streak.
  bool timeout_logged_ = false;  // An ack timeout was logged since the last hello reply.
};

}  // namespace ringcache::internal

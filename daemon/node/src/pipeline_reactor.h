// PipelineReactor: one ringcache.v1.Cache/Pipeline stream on gRPC's callback API, and
// PipelineStreams, the server's list of open streams (used to drain them at shutdown).
//
// Invariants (as with the completion-queue server before it):
//  - at most one Read and one Write (or the Finish) outstanding, as gRPC requires;
//  - the operations of a request message are routed as soon as it is read, in order
//    (CacheService::ExecutePipelineOp): those served here run at once and their results are
//    appended to a queue of response messages (each closed at about kTargetMessageBytes);
//    those another node owns are queued per owner and sent there as exchanges on the
//    node's forwarding streams (forward_streams.h), at most kMaxForwardsPerOwner in flight
//    per owner: what
//    accumulates meanwhile leaves in the next call; a local write with a write concern
//    waits for its replicas. Their results join the queue when they arrive, so results may
//    come out of request order (they carry the caller's ids);
//  - while a Write is in flight, new results wait in that queue and go out together in
//    the next Write (coalescing: one response message per Write, not per request);
//  - flow control: while the queued results exceed kMaxQueuedBytes the stream stops
//    executing and stops reading (the client's sends then block: backpressure); while
//    kMaxPendingOps or more operations are pending (forwarded or waiting for replicas), or
//    more than kMaxQueuedBytes of operations wait to be forwarded, it stops reading.
//    Forwarded results count too: an exchange is sent only while the queued results and
//    the room reserved by the exchanges in flight leave room, and it carries that room as
//    a deferring limit (ResultLimit.defer) so that its owner answers no more than fits and
//    hands back the operations it did not run, which wait to be sent again. So a stream
//    holds at most one request message, about 2 × kMaxQueuedBytes of results (+ one value
//    per owner and one response message), kMaxQueuedBytes (+ one message) of operations
//    waiting to be forwarded and kMaxPendingOps (+ one message) of pending operations;
//  - the stream ends (Finish) once no more operations will come — the client half-closed,
//    the node is draining, a write failed or a message broke a limit — every pending
//    operation has its result (forwards end by their deadline at the latest), and every
//    result already computed has been written;
//  - draining (node shutdown): reading stops; the operations already read are executed,
//    except that while the stream is backlogged (results over kMaxQueuedBytes) the rest
//    are answered UNAVAILABLE without running; queued results are flushed, and the stream
//    ends with UNAVAILABLE. So an operation without a result never ran (unless the
//    connection itself broke).
//
// Threads and locking. gRPC runs the reactions (OnReadDone, OnWriteDone, OnDone) on its
// own threads, and OnReadDone and OnWriteDone may run at the same time; BeginDrain comes
// from the thread shutting the node down. All state is guarded by mu_, which is held only
// to change state and decide the next steps; it is never held while calling gRPC (a
// StartWrite or Finish made outside a reaction may run reactions inline on the calling
// thread) nor while executing operations on the cache. One thread at a time executes
// (executing_), so the stream's operations on keys this node serves still run in order;
// operations forwarded to other nodes may run in any order (up to kMaxForwardsPerOwner
// calls per owner are in flight, and a view change may move a key between messages). Results of
// pending operations arrive through Deliver (PipelineSink) on gRPC's client threads or a
// replication thread, and may arrive inline while an operation executes. mu_ is a leaf
// lock.
//
// Lifetime: reference counted. gRPC's reference is dropped in OnDone; PipelineStreams
// takes one while draining a stream outside its own lock, and every pending operation's
// owner (a forwarded exchange, a write-concern wait) one until it delivered. Deleted at the
// last Unref.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "cache_service.h"
#include "request_metadata.h"
#include "ringcache/proto/arena_message.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

struct ServerEnv;
class PipelineReactor;

// The open Pipeline streams of a server. Has internal synchronization.
// Lock order: PipelineStreams::mu_ -> nothing (it is released before a stream is called).
class PipelineStreams {
 public:
  // Adds `stream`; returns true if the server is already draining (the stream must then
  // drain at once).
  bool Register(PipelineReactor* stream);
  void Unregister(PipelineReactor* stream);
  // From now on every stream drains: those open now are asked to, later ones are told by
  // Register. Must not be called from a reaction.
  void DrainAll();
  // The node adopted the view `epoch`: streams waiting for it (see PipelineReactor,
  // "a forwarder one view ahead") start reading.
  void OnView(uint64_t epoch);

 private:
  // std::mutex, not yet the annotated ringcache::internal::Mutex (ringcache/sync/mutex.h)
  // that the daemon's classes are moving to.
  std::mutex mu_;
  // Protected by mu_.
  std::unordered_set<PipelineReactor*> streams_;
  bool draining_ = false;
};

class PipelineReactor final
    : public grpc::ServerBidiReactor<v1::PipelineRequest, v1::PipelineResponse>,
      public PipelineSink {
 public:
  // Results are cut into response messages of about this size.
  static constexpr size_t kTargetMessageBytes = size_t{1} << 20;
  // Reading and executing pause while more than this many result bytes are queued.
  static constexpr size_t kMaxQueuedBytes = size_t{8} << 20;
  // Reading pauses while this many operations are pending (forwarded, or waiting for
  // replica acks).
  static constexpr size_t kMaxPendingOps = 8192;
  // An exchange is sent only with at least this much room for its results.
  static constexpr size_t kMinForwardRoom = size_t{256} << 10;
  // Forwarded exchanges in flight per owner node and stream: the operations that arrive
  // meanwhile go out together in the next one (fewer, larger messages; measured better
  // than 2 in run_client_bench.sh's batch phase).
  static constexpr int kMaxForwardsPerOwner = 1;
  // Arena block sizes (ArenaMessage): one block holds a 16-operation message of small keys
  // and values (about 2.3 KB of message objects). A stream holds two request blocks and,
  // while busy, up to four response blocks (written, queued, spares): about 24 KiB.
  static constexpr size_t kRequestBlockBytes = 4096;
  static constexpr size_t kResponseBlockBytes = 4096;
  // Response messages kept for reuse once written.
  static constexpr size_t kMaxSpareResponses = 2;
  // A forwarded stream routed on a newer view than this node's waits up to this long for
  // that view before it reads (see the constructor).
  static constexpr std::chrono::milliseconds kMaxViewWait{500};

  // Called from the service's Pipeline method; starts the stream. `env` is not owned and
  // outlives every call.
  PipelineReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx);
  PipelineReactor(const PipelineReactor&) = delete;
  PipelineReactor& operator=(const PipelineReactor&) = delete;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

  // Node shutdown: stop reading, flush, end with UNAVAILABLE. The caller holds a reference.
  void BeginDrain();
  // The node holds the view `epoch` now (UINT64_MAX: stop waiting anyway); a stream
  // waiting for that view starts reading. The caller holds a reference.
  void ViewAdopted(uint64_t epoch);
  // The epoch this stream waits for before it reads; 0 if none (one relaxed load).
  uint64_t waiting_for_view() const { return wait_epoch_.load(std::memory_order_relaxed); }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // PipelineSink: pending operations (forwarded, or waiting for replicas).
  void AddPending(size_t ops) override;
  void Deliver(v1::PipelineResponse* results, size_t bytes, size_t ops) override;
  void ForwardDone(const std::string& owner_id) override;
  void RefSink() override { Ref(); }
  void UnrefSink() override { Unref(); }

 private:
  using RequestBuf = ArenaMessage<v1::PipelineRequest>;
  using ResponseBuf = ArenaMessage<v1::PipelineResponse>;
  struct QueuedResponse {
    std::unique_ptr<ResponseBuf> message;
    size_t bytes = 0;
  };
  // The operations of one executed stretch that one other node owns.
  struct ForwardGroup {
    const ClusterMember* owner = nullptr;  // In the executing thread's topology.
    uint64_t epoch = 0;                    // That topology's.
    v1::PipelineRequest request;
    size_t bytes = 0;                             // CacheService::ForwardBytes of the ops.
    std::chrono::milliseconds extra_deadline{0};  // Longest write-concern wait among them.
  };
  // Forwarding to one other node: calls in flight, and the operations waiting for a call.
  struct PeerQueue {
    ForwardTarget target;
    uint64_t epoch = 0;  // Of the newest view the waiting ops were routed under.
    v1::PipelineRequest waiting;
    size_t waiting_bytes = 0;  // CacheService::ForwardBytes of the waiting ops.
    std::chrono::milliseconds extra_deadline{0};
    int in_flight = 0;
    size_t reserved = 0;  // The result room the calls in flight were given.
  };
  // A forwarded call to start (outside mu_).
  struct ForwardCall {
    ForwardTarget target;
    uint64_t epoch = 0;
    v1::PipelineRequest request;
    size_t bytes = 0;
    std::chrono::milliseconds extra_deadline{0};
    size_t room = 0;  // Result bytes reserved for it (0: no limit).
  };

  ~PipelineReactor() override = default;

  // Decides and starts whatever the state allows — execute, write, read, finish — until
  // nothing more can be done now. Called without mu_ held.
  void Pump();
  // Runs (or, if `reject`, answers UNAVAILABLE) up to one response message's worth of the
  // current request's operations; those another node owns are moved into `forwards`. Only
  // the thread that set executing_ calls it, without mu_.
  void ExecuteChunk(bool reject, v1::PipelineResponse* out, size_t* bytes,
                    std::vector<ForwardGroup>* forwards);
  // Appends results to the queue, coalescing into the tail message if it has room.
  void QueueResultsLocked(v1::PipelineResponse* results, size_t bytes);
  // A response message for new results: a spare one (not yet Reset) or a new one.
  std::unique_ptr<ResponseBuf> TakeSpareLocked();
  void RecycleLocked(std::unique_ptr<ResponseBuf> message);
  // Moves `group`'s operations to its owner's queue and counts them pending.
  void EnqueueForwardLocked(ForwardGroup* group);
  // The results of a forwarded call that had `room` reserved: those the owner deferred go
  // back to the front of its queue, the others are queued for the client.
  void DeliverForward(const std::string& owner_id, size_t room,
                      std::chrono::milliseconds extra_deadline, v1::PipelineResponse* results,
                      size_t ops);
  // Bytes of operations waiting to be forwarded. REQUIRES: mu_ held.
  size_t WaitingBytesLocked() const;
  // True while a forward call has not yet run ForwardDone. REQUIRES: mu_ held.
  bool ForwardsInFlightLocked() const;
  // Takes a call for every owner with operations waiting and room for a call in flight,
  // while the stream has room for their results. REQUIRES: mu_ held.
  void TakeForwardsLocked(std::vector<ForwardCall>* calls);
  // Starts `calls`. Without mu_.
  void StartForwards(std::vector<ForwardCall>* calls);
  // Ends the stream with `status` once everything queued is written (first status wins).
  void FailStreamLocked(grpc::Status status);

  // Constant after construction.
  const ServerEnv* const env_;                  // Not owned.
  grpc::CallbackServerContext* const context_;  // gRPC's; valid until OnDone.
  const std::chrono::steady_clock::time_point started_;
  RequestMetadata metadata_;  // The stream's ringcache-* metadata.

  // Non-zero while the stream waits for the node to adopt that view before reading (a
  // forwarder routed on it). Written under mu_; read without it by PipelineStreams.
  std::atomic<uint64_t> wait_epoch_{0};
  grpc::Alarm view_alarm_;       // Ends the wait after kMaxViewWait.
  bool view_alarm_set_ = false;  // Constant after construction.

  std::atomic<int> refs_{1};

  // Messages live on arenas (ArenaMessage) and are handed over by pointer, never copied.
  // Owned by the Read in flight while read_in_flight_; then swapped with request_ (the
  // next Read resets it).
  std::unique_ptr<RequestBuf> read_buf_;
  // Owned by the executing thread while executing_; otherwise protected by mu_.
  std::unique_ptr<RequestBuf> request_;
  int next_op_ = 0;
  // The request's max_response_bytes (0 = none) and the bytes its answered reads hold so
  // far: reads past it are answered RESOURCE_EXHAUSTED without their value.
  uint64_t message_limit_ = 0;
  uint64_t message_used_ = 0;
  // The request's part (ResultLimit) that next_op_ is in: its index (-1: none yet), the
  // first operation past it, the bytes its answered reads hold, and whether a deferring
  // part crossed its limit (its later operations are handed back without running).
  int part_ = -1;
  int part_end_ = 0;
  uint64_t part_used_ = 0;
  bool part_over_ = false;
  // Owned by the executing thread, like request_: the stretch of request_ being executed,
  // decoded (views into request_).
  CacheService::DecodedOps decoded_;
  // Owned by the Write in flight while write_in_flight_; otherwise protected by mu_.
  std::unique_ptr<ResponseBuf> writing_;

  std::mutex mu_;  // A leaf; see the file comment. std::mutex for the reason given above.
  // Protected by mu_.
  std::deque<QueuedResponse> queue_;                 // Results not yet handed to a Write.
  std::vector<std::unique_ptr<ResponseBuf>> spare_;  // Written; reused by TakeSpareLocked.
  size_t queued_bytes_ = 0;
  size_t pending_ops_ = 0;        // Operations whose results will come through Deliver.
  size_t reserved_bytes_ = 0;     // Sum of peers_[i].reserved.
  size_t checked_out_bytes_ = 0;  // Of a queued message the executing thread appends to.
  std::vector<PeerQueue> peers_;  // Per owner node forwarded to; a handful.
  bool has_request_ = false;      // request_ has operations not yet executed.
  bool executing_ = false;        // A thread is executing request_ without mu_.
  bool read_in_flight_ = false;
  bool write_in_flight_ = false;
  bool reads_done_ = false;  // The client half-closed, or the call is gone.
  bool draining_ = false;    // The node is shutting down.
  bool broken_ = false;      // A Write failed: the call is gone.
  bool has_error_ = false;   // error_ is the status to end with.
  bool finish_sent_ = false;
  grpc::Status error_;
};

}  // namespace ringcache::internal

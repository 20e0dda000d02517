// CacheService: the ringcache.v1.Cache protocol on a node. A single-key rpc or Pipeline
// operation is decoded into an Op (proto_ops.h), routed by Router::Route (fencing,
// placement, write-concern limits), run here by the engine (engine.h) or forwarded, and its
// OpResult encoded back (docs/design/operations.md). No cache logic lives here. The
// callback server (callback_server.h) drives these handlers from gRPC's threads.
//
// Routing (proto/ringcache/v1/cache.proto; docs/design/routing.md):
//  - The owners of a key are Topology::Owners over the current view's ring. Writes go to
//    owner 0 (the primary); reads to the primary, or with READ_PREFERENCE_ANY_OWNER to this
//    node if it is an owner.
//  - A key served here runs inline on the calling gRPC thread, as before routing existed:
//    the topology comes from a per-thread cache (no lock, no reference count, no allocation).
//  - A key served elsewhere is forwarded one hop with gRPC's async callback client API
//    (never blocking a server thread on another node) under the deadline min(caller's,
//    forward_timeout); the owner's answer (status, message, response bytes) is relayed
//    unchanged. A call that was itself forwarded (ringcache-forwarded-by) is never forwarded
//    again: if this node is not the owner by its view, it answers UNAVAILABLE.
//  - Batches (MultiGet, MultiSet, MultiDelete, Batch) run through RunBatch (op_batch.h):
//    the local part inline, each owner's part as one Batch call, all in parallel, results
//    in request order.
//  - Write concern: after the local write, Node::WaitForReplicas; the call ends in its
//    callback with replicas_acked.
//  - Metadata: ringcache-local, ringcache-forwarded-by, ringcache-epoch (request_metadata.h).
//  - Before the node holds its first view, every rpc but Stats and Topology is UNAVAILABLE.
//  - Fenced (NodeState::kFenced, docs/design/failover.md): writes are UNAVAILABLE with the
//    fencing reason, even those that would be forwarded; reads too, unless the node runs
//    with fenced_reads: then every read is served from the local cache, never forwarded,
//    marked possibly_stale (and, on unary calls, trailing metadata
//    ringcache-possibly-stale: 1). The check is one relaxed atomic load per call (per
//    operation in a Pipeline); the rest runs only while fenced.
//
// Thread safety: every method may be called concurrently. The only mutable state is the
// topology generation (an atomic) and the per-thread topology caches.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "request_metadata.h"
#include "ringcache/cluster_view.h"
#include "ringcache/node/node.h"
#include "ringcache/pubsub.h"
#include "ringcache/v1/cache.pb.h"
#include "router.h"
#include "unary_call.h"

namespace ringcache::internal {

class ForwardStreams;
class Membership;
class PubSubRelay;
class SubscribeStreams;
class PeerPool;
struct Topology;

// ringcache::Status -> grpc::Status. The codes are numbered alike, so this is a cast.
grpc::Status ToGrpcStatus(const Status& status);

// Where a Pipeline stream's operations that do not end at once report their results: the
// forwarded ones (ForwardStreams) and local writes waiting for replica acks.
// Implemented by PipelineReactor.
class PipelineSink {
 public:
  // `ops` operations were started whose results come later through Deliver. Called before
  // they can complete.
  virtual void AddPending(size_t ops) = 0;
  // The results of `ops` pending operations (taken from `results`, which may hold fewer
  // results than `ops` if the stream's writes are gone); `bytes` estimates their size.
  // Called from any thread.
  virtual void Deliver(v1::PipelineResponse* results, size_t bytes, size_t ops) = 0;
  // A forwarded call to the node `owner_id` has ended (after its last Deliver).
  virtual void ForwardDone(const std::string& owner_id) = 0;
  // Keep the sink alive across an asynchronous operation.
  virtual void RefSink() = 0;
  virtual void UnrefSink() = 0;

 protected:
  ~PipelineSink() = default;
};

// Where a forwarded call goes: copied out of the topology, so a callback on another thread
// never reads a snapshot it does not hold.
struct ForwardTarget {
  std::string id;
  std::string address;
};

// What ExecutePipelineOp did with one operation.
struct PipelineStep {
  enum Kind {
    kAnswered,  // `result` holds its result.
    kForward,   // Send it to `owner` (result unused).
    kPending,   // A write concern wait: the result comes through the sink (result unused).
  };
  Kind kind = kAnswered;
  size_t bytes = 0;                      // kAnswered: estimated result size.
  const ClusterMember* owner = nullptr;  // kForward; points into the caller's topology.
  // kForward: how much longer than the forward timeout its answer may take (the
  // operation's write-concern wait).
  std::chrono::milliseconds extra_deadline{0};
};

// The router's view of a Node (NodeGate).
class NodeFencing final : public NodeGate {
 public:
  explicit NodeFencing(const Node* node) : node_(node) {}
  bool Fenced() const override { return node_->state() == NodeState::kFenced; }
  std::string FenceReason() const override { return node_->StateDetail(); }

 private:
  const Node* const node_;  // Not owned.
};

class CacheService final {
 public:
  template <typename Request, typename Response>
  using Call = UnaryCall<Request, Response>;

  // `membership` and `peers` may be null: a standalone node, every key served here.
  // Not owned; they must outlive the service (it subscribes to membership's views).
  explicit CacheService(Node* node, Membership* membership = nullptr, PeerPool* peers = nullptr);
  ~CacheService();
  CacheService(const CacheService&) = delete;
  CacheService& operator=(const CacheService&) = delete;

  // Each handler ends `call` exactly once, inline or later from another thread.
  void Get(Call<v1::GetRequest, v1::GetResponse>& call);
  void Set(Call<v1::SetRequest, v1::SetResponse>& call);
  void Delete(Call<v1::DeleteRequest, v1::DeleteResponse>& call);
  void Touch(Call<v1::TouchRequest, v1::TouchResponse>& call);
  void Ttl(Call<v1::TtlRequest, v1::TtlResponse>& call);
  void Incr(Call<v1::IncrRequest, v1::IncrResponse>& call);
  void Collection(Call<v1::CollectionRequest, v1::CollectionResponse>& call);
  void SetRange(Call<v1::SetRangeRequest, v1::SetRangeResponse>& call);
  void MultiGet(Call<v1::MultiGetRequest, v1::MultiGetResponse>& call);
  void MultiSet(Call<v1::MultiSetRequest, v1::MultiSetResponse>& call);
  void MultiDelete(Call<v1::MultiDeleteRequest, v1::MultiDeleteResponse>& call);
  void Batch(Call<v1::BatchRequest, v1::BatchResponse>& call);
  void Stats(Call<v1::StatsRequest, v1::StatsResponse>& call);
  void Topology(Call<v1::TopologyRequest, v1::ClusterView>& call);
  void Publish(Call<v1::PublishRequest, v1::PublishResponse>& call);
  void Snapshot(Call<v1::SnapshotRequest, v1::SnapshotResponse>& call);

  // ---- Pub/sub (Subscribe streams, the Publish rpc and Pipeline operation).

  // This node's subscribers.
  PubSub& pubsub() const { return *pubsub_; }
  // The cluster fan-out of publishes.
  PubSubRelay& pubsub_relay() const { return *relay_; }
  // The open Subscribe streams (heartbeats).
  SubscribeStreams& subscribe_streams() const { return *subscribe_streams_; }

  // ---- Views (Topology, WatchTopology).

  // Membership's current snapshot; nullptr when standalone or before the first view.
  std::shared_ptr<const internal::Topology> SharedTopology() const;
  // The view as the Topology rpc answers it: `topology`'s; for a standalone node
  // (topology null, no membership) epoch 1 with this node alone; while joining (topology
  // null) epoch 0 and no members.
  void FillView(const internal::Topology* topology, v1::ClusterView* out) const;
  Membership* membership() const { return membership_; }

  // ---- Pipeline (PipelineReactor).

  // Per message: OK, or INVALID_ARGUMENT naming max-batch (too many operations) or
  // PipelineRequest.parts (parts covering more operations than the message holds).
  grpc::Status CheckPipelineMessage(const v1::PipelineRequest& request) const;
  // The snapshot to route a stretch of Pipeline operations on; valid until this thread
  // calls into the service again for another stretch (nullptr: standalone or joining).
  const internal::Topology* ThreadTopology() const;
  // Routes `op` (received with `md`) on `topology` and, if it is served here, runs it:
  // kAnswered with `result` filled (id, status, result field) — also for routing errors;
  // kForward with its owner; kPending when a write waits for replicas (AddPending was
  // called on `sink`, and the result comes through Deliver).
  // `op` is `operation` decoded (DecodePipelineOps), or `decode_error` says why it is not.
  PipelineStep ExecutePipelineOp(const internal::Topology* topology, const RequestMetadata& md,
                                 const v1::Operation& operation, const Op& op,
                                 const Status& decode_error, v1::OperationResult* result,
                                 PipelineSink* sink);
  // Up to kPrefetchOps Pipeline operations decoded into Ops (each key hashed once, here),
  // for ExecutePipelineOp. Ops hold views into the request: valid while it is.
  static constexpr size_t kPrefetchOps = 16;
  struct DecodedOps {
    int first = 0;  // ops[first, first + count) of the request.
    int count = 0;
    std::array<Op, kPrefetchOps> ops;
    std::array<Status, kPrefetchOps> errors;  // OK, or why the operation is not decodable.
  };
  // Decodes ops[first, first + kPrefetchOps) into *out and prefetches their keys
  // (Node::Prefetch) by the hashes just computed, so that their cache misses overlap. Ops
  // routed elsewhere only waste the hint.
  void DecodePipelineOps(const google::protobuf::RepeatedPtrField<v1::Operation>& ops, int first,
                         DecodedOps* out) const;
  // Limits of one forwarded Pipeline message, as the owner checks them (nodes of a cluster
  // run with the same limits): max-batch operations, and bytes within its message size
  // limit, counted with ForwardBytes.
  size_t MaxForwardOps() const;
  size_t MaxForwardBytes() const;
  // The most bytes of results one batch response may hold (--max-response-bytes;
  // RunBatch's ResponseBudget).
  uint64_t MaxResponseBytes() const;
  // An upper estimate of `op`'s size in a message: key and value plus framing.
  static size_t ForwardBytes(const v1::Operation& op);
  static size_t ForwardBytes(const Op& op);  // The same for an operation not yet encoded.
  // Adds to `out` one result per operation in `ops` with `status` (the error of a forward
  // that failed), and returns their estimated size.
  static size_t FailedResults(const grpc::Status& status,
                              const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
                              v1::PipelineResponse* out);

  // ---- Forwarding (also used by RunBatch, PipelineReactor and ForwardStreams).

  // The deadline of a call forwarded on behalf of a caller whose deadline is
  // `caller_deadline`: min(caller's, now + forward_timeout + extra). Sets *ours if the
  // forward timeout is the earlier one.
  std::chrono::system_clock::time_point ForwardDeadline(
      std::chrono::system_clock::time_point caller_deadline, std::chrono::milliseconds extra,
      bool* ours) const;
  // The metadata of a forwarded call: ringcache-forwarded-by (this node; never forwarded
  // again) and ringcache-epoch (this node's epoch: an owner still one view behind serves
  // a read it already owns in the next view, see Route).
  void AddForwardMetadata(grpc::ClientContext* context) const;
  // The same for a forward routed under the view of `epoch` (0: none, sends no epoch).
  void AddForwardMetadata(grpc::ClientContext* context, uint64_t epoch) const;
  // A forwarded call's status as this node relays it: the owner's own answers unchanged;
  // a transport failure or our own forward timeout as UNAVAILABLE naming the owner.
  grpc::Status RelayStatus(const grpc::Status& status, const ForwardTarget& target,
                           bool our_deadline) const;
  const std::string& self_id() const;
  PeerPool* peers() const { return peers_; }
  // Where batches of forwarded operations go (null on a standalone node).
  ForwardStreams* forward_streams() const { return streams_.get(); }
  // The operation path's parts (RunBatch).
  const Router& router() const { return router_; }
  Node* node() const { return node_; }

  // Adds the trailing metadata ringcache-epoch when the caller sent an epoch (in `md`) that
  // differs from the node's (`topology`'s; standalone 1, joining 0). Call before the call
  // can end.
  void AddEpochHint(grpc::CallbackServerContext* context, const RequestMetadata& md,
                    const internal::Topology* topology) const;

 private:
  using Where = Router::Where;

  // The router's view of a call's metadata.
  static Router::Hints HintsOf(const RequestMetadata& md) {
    return {.local = md.local,
            .forwarded_by = md.forwarded_by,
            .has_epoch = md.has_epoch,
            .epoch = md.epoch,
            .role = md.role};
  }
  // OK, or UNAVAILABLE while the node has no view yet (`topology` null with membership).
  grpc::Status CheckServing(const internal::Topology* topology) const;
  // True while the node is fenced (one relaxed atomic load).
  bool Fenced() const { return router_.Fenced(); }
  // The UNAVAILABLE status of a call refused while fenced (the node's fencing reason).
  grpc::Status FencedStatus() const;
  // OK for k == 0; else INVALID_ARGUMENT if k or the timeout is over its limit.
  grpc::Status CheckWriteConcern(const internal::Topology* topology, uint32_t k,
                                 uint32_t timeout_ms) const;
  // What MultiSet and MultiDelete check before looking at their items, in this order:
  // `items` against max-batch (naming `rpc`), the epoch hint, serving, ringcache-local
  // (refused: a batch of writes), the write concern. Sets *topology (the snapshot to route
  // on) unless the batch size fails.
  grpc::Status CheckBatchWrite(std::string_view rpc, int items,
                               grpc::CallbackServerContext* context, const RequestMetadata& md,
                               uint32_t write_concern, uint32_t write_concern_timeout_ms,
                               const internal::Topology** topology) const;

  // ExecutePipelineOp for a publish: a peer's relay is delivered here; a client's is
  // relayed and its result comes through `sink` once the other nodes have answered.
  PipelineStep ExecutePipelinePublish(const RequestMetadata& md, const v1::Operation& operation,
                                      v1::OperationResult* result, PipelineSink* sink);

  // Forwards a unary call to `owner` as raw bytes and relays the answer.
  template <typename Request, typename Response>
  void Forward(Call<Request, Response>& call, const ClusterMember& owner, const std::string& method,
               std::chrono::milliseconds extra_deadline);
  // A unary single-key rpc, decoded into `op` (`decoded`: the decoding's status): routes it
  // (Router::Route) and runs it here, with its write-concern wait, or forwards `method`.
  template <typename Request, typename Response>
  void UnaryOp(Call<Request, Response>& call, const Status& decoded, const Op& op,
               const std::string& method);

  // Constant after construction.
  Node* const node_;              // Not owned.
  Membership* const membership_;  // Not owned; may be null.
  PeerPool* const peers_;         // Not owned; may be null.
  const NodeFencing gate_;        // For router_.
  const Router router_;
  int subscription_ = -1;
  std::unique_ptr<ForwardStreams> streams_;  // Set in the constructor when peers_ is.
  std::unique_ptr<PubSub> pubsub_;
  std::unique_ptr<SubscribeStreams> subscribe_streams_;
  std::unique_ptr<PubSubRelay> relay_;  // Uses streams_, pubsub_ and subscribe_streams_.

  // Changes (to a process-wide unique value) whenever membership adopts a view; a thread's
  // cached topology is current while its generation matches.
  std::atomic<uint64_t> generation_{0};
};

}  // namespace ringcache::internal

#include "cache_service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine.h"
#include "forward_streams.h"
#include "membership.h"
#include "op_batch.h"
#include "peer_pool.h"
#include "proto_ops.h"
#include "pubsub_relay.h"
#include "ringcache/proto/cluster_view.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "subscribe_stream.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

// Full method names, for forwarding calls as raw bytes. Built once, never destroyed.
struct MethodPaths {
  std::string get = "/ringcache.v1.Cache/Get";
  std::string set = "/ringcache.v1.Cache/Set";
  std::string del = "/ringcache.v1.Cache/Delete";
  std::string touch = "/ringcache.v1.Cache/Touch";
  std::string ttl = "/ringcache.v1.Cache/Ttl";
  std::string incr = "/ringcache.v1.Cache/Incr";
  std::string set_range = "/ringcache.v1.Cache/SetRange";
  std::string collection = "/ringcache.v1.Cache/Collection";
};
const MethodPaths& Paths() {
  static const MethodPaths* const kPaths = new MethodPaths();
  return *kPaths;
}

// Trailing metadata of a read a fenced node served from its own copy (--fenced-reads).
constexpr const char* kPossiblyStaleKey = "ringcache-possibly-stale";

// Process-wide, so that a generation never repeats across CacheService instances (a thread's
// cache may outlive the service it was filled for).
std::atomic<uint64_t> g_next_generation{1};
uint64_t NextGeneration() { return g_next_generation.fetch_add(1, std::memory_order_relaxed); }

// One per thread: the last topology this thread routed with, for one service.
struct ThreadTopologyCache {
  const CacheService* owner = nullptr;
  uint64_t generation = 0;
  std::shared_ptr<const Topology> topology;
};
thread_local ThreadTopologyCache t_topology;

void SetOpStatus(const grpc::Status& status, v1::OpStatus* out) {
  out->set_code(static_cast<int32_t>(status.error_code()));
  out->set_message(status.error_message());
}

// One unary call relayed as raw bytes to the key's owner. Deletes itself when it is done.
template <typename Request, typename Response>
class UnaryForward {
 public:
  UnaryForward(const CacheService* service, UnaryCall<Request, Response>* call,
               const ClusterMember& owner)
      : service_(service), call_(call), target_{owner.id, owner.peer_address()} {}

  void Start(const std::string& method, std::chrono::milliseconds extra_deadline) {
    context_.set_deadline(
        service_->ForwardDeadline(call_->context()->deadline(), extra_deadline, &our_deadline_));
    service_->AddForwardMetadata(&context_);
    // The role this node found for the client's token: the owner runs the call with it.
    if (const Role role = call_->metadata().role; role != Role::kAdmin) {
      context_.AddMetadata(std::string(RequestMetadata::kRoleKey), std::string(NameOf(role)));
    }
    grpc::GenericStub stub(service_->peers()->Channel(target_.address));
    stub.UnaryCall(&context_, method, grpc::StubOptions(), &call_->raw_request(), &response_,
                   [this](const grpc::Status& status) { Done(status); });
  }

 private:
  // On a gRPC thread. The forward is deleted before the call ends: nothing of it may run
  // after the node's server has seen its last call end.
  void Done(const grpc::Status& status) {
    UnaryCall<Request, Response>* call = call_;
    grpc::Status relayed = service_->RelayStatus(status, target_, our_deadline_);
    grpc::ByteBuffer response;
    response.Swap(&response_);
    delete this;
    call->ReplyRelayed(std::move(relayed), &response);
  }

  const CacheService* const service_;         // Not owned.
  UnaryCall<Request, Response>* const call_;  // Not owned; ended by Done.
  const ForwardTarget target_;
  bool our_deadline_ = false;
  grpc::ClientContext context_;
  grpc::ByteBuffer response_;
};

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(status.code()), status.message()};
}

CacheService::CacheService(Node* node, Membership* membership, PeerPool* peers)
    : node_(node),
      membership_(membership),
      peers_(peers),
      gate_(node),
      router_(node->options().node_id, node->options().max_key_bytes, membership == nullptr, &gate_,
              node->options().fenced_reads, node->options().replication_factor) {
  generation_.store(NextGeneration(), std::memory_order_release);
  if (peers_ != nullptr) streams_ = std::make_unique<ForwardStreams>(this);
  const NodeOptions& o = node->options();
  pubsub_ =
      std::make_unique<PubSub>(PubSub::Options{.max_buffer_bytes = o.subscriber_buffer_bytes,
                                               .max_names = PubSub::Options{}.max_names,
                                               .max_name_bytes = o.max_key_bytes,
                                               .buffer_limit_name = "--subscriber-buffer-bytes",
                                               .name_limit_name = "--max-key-bytes"});
  subscribe_streams_ = std::make_unique<SubscribeStreams>();
  relay_ = std::make_unique<PubSubRelay>(
      this, pubsub_.get(),
      PubSubRelay::Options{.incarnation = node->incarnation(),
                           .publish_timeout = o.publish_timeout,
                           .sync_interval = o.pubsub_heartbeat,
                           .on_tick = [streams = subscribe_streams_.get()] { streams->Tick(); }});
  if (membership_ != nullptr) {
    // Membership publishes current() before it calls subscribers, so a thread that sees
    // the new generation and refreshes gets this view (or a newer one).
    subscription_ =
        membership_->Subscribe([this](const std::shared_ptr<const internal::Topology>&) {
          generation_.store(NextGeneration(), std::memory_order_release);
        });
  }
}

CacheService::~CacheService() {
  // The relay's ticker sends on streams_, and relays on streams_ call back into the relay:
  // stop the ticker, end the streams (their callbacks run), then the relay goes.
  relay_->Stop();
  streams_.reset();  // Cancels the forwarding streams and waits for them to end.
  relay_.reset();
  if (membership_ != nullptr) membership_->Unsubscribe(subscription_);
}

const std::string& CacheService::self_id() const { return node_->options().node_id; }

std::shared_ptr<const internal::Topology> CacheService::SharedTopology() const {
  return membership_ == nullptr ? nullptr : membership_->current();
}

const internal::Topology* CacheService::ThreadTopology() const {
  if (membership_ == nullptr) return nullptr;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  ThreadTopologyCache& cache = t_topology;
  if (cache.owner != this || cache.generation != generation) {
    cache.topology = membership_->current();
    cache.owner = this;
    cache.generation = generation;
  }
  return cache.topology.get();
}

void CacheService::FillView(const internal::Topology* topology, v1::ClusterView* out) const {
  if (topology != nullptr) {
    proto::ToProto(topology->view, out);
    return;
  }
  const NodeOptions& options = node_->options();
  ClusterView view{.epoch = 0,
                   .members = {},
                   .replication_factor = options.replication_factor,
                   .vnodes_per_weight = options.vnodes_per_weight};
  if (membership_ == nullptr) {  // Standalone: the view a bootstrapped node would hold.
    view.epoch = 1;
    view.members.push_back({.id = options.node_id,
                            .address = node_->grpc_address(),
                            .weight = options.weight,
                            .state = MemberState::kServing});
  }
  proto::ToProto(view, out);
}

grpc::Status CacheService::CheckBatchWrite(std::string_view rpc, int items,
                                           grpc::CallbackServerContext* context,
                                           const RequestMetadata& md, uint32_t write_concern,
                                           uint32_t write_concern_timeout_ms,
                                           const internal::Topology** topology) const {
  if (Status s = node_->CheckBatchSize(rpc, static_cast<size_t>(items)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  *topology = ThreadTopology();
  AddEpochHint(context, md, *topology);
  if (grpc::Status s = CheckServing(*topology); !s.ok()) return s;
  if (md.local) return ToGrpcStatus(Router::LocalWriteRefused());  // Every item alike.
  if (Fenced()) [[unlikely]] {
    return FencedStatus();
  }
  return CheckWriteConcern(*topology, write_concern, write_concern_timeout_ms);
}

grpc::Status CacheService::FencedStatus() const { return ToGrpcStatus(router_.FencedStatus()); }

grpc::Status CacheService::CheckServing(const internal::Topology* topology) const {
  return ToGrpcStatus(router_.CheckServing(topology));
}

grpc::Status CacheService::CheckWriteConcern(const internal::Topology* topology, uint32_t k,
                                             uint32_t timeout_ms) const {
  return ToGrpcStatus(router_.CheckWriteConcern(topology, k, timeout_ms));
}

void CacheService::AddEpochHint(grpc::CallbackServerContext* context, const RequestMetadata& md,
                                const internal::Topology* topology) const {
  if (!md.has_epoch) return;
  const uint64_t epoch = topology != nullptr ? topology->epoch() : membership_ == nullptr ? 1 : 0;
  if (md.epoch == epoch) return;
  context->AddTrailingMetadata(std::string(RequestMetadata::kEpochKey), std::to_string(epoch));
}

void CacheService::AddForwardMetadata(grpc::ClientContext* context) const {
  uint64_t epoch = 0;
  if (membership_ != nullptr) {
    if (const std::shared_ptr<const internal::Topology> topology = membership_->current()) {
      epoch = topology->epoch();
    }
  }
  AddForwardMetadata(context, epoch);
}

void CacheService::AddForwardMetadata(grpc::ClientContext* context, uint64_t epoch) const {
  context->AddMetadata(std::string(RequestMetadata::kForwardedByKey), self_id());
  if (epoch != 0) {
    context->AddMetadata(std::string(RequestMetadata::kEpochKey), std::to_string(epoch));
  }
}

std::chrono::system_clock::time_point CacheService::ForwardDeadline(
    std::chrono::system_clock::time_point caller_deadline, std::chrono::milliseconds extra,
    bool* ours) const {
  const auto deadline = std::chrono::system_clock::now() + node_->options().forward_timeout + extra;
  *ours = deadline < caller_deadline;
  return *ours ? deadline : caller_deadline;
}

grpc::Status CacheService::RelayStatus(const grpc::Status& status, const ForwardTarget& target,
                                       bool our_deadline) const {
  if (status.ok()) return status;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && our_deadline) {
    return {grpc::StatusCode::UNAVAILABLE,
            "node " + target.id + " at " + target.address +
                " did not answer within the forward timeout of " +
                std::to_string(node_->options().forward_timeout.count()) + " ms; retry"};
  }
  // Every UNAVAILABLE a node gives itself starts with "node " (shutting down, joining, not
  // the owner); anything else is the transport's: say which hop failed.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      status.error_message().rfind("node ", 0) != 0) {
    return {grpc::StatusCode::UNAVAILABLE,
            "cannot reach node " + target.id + " at " + target.address +
                " (the key's owner): " + status.error_message() + "; retry"};
  }
  return status;
}

template <typename Request, typename Response>
void CacheService::Forward(Call<Request, Response>& call, const ClusterMember& owner,
                           const std::string& method, std::chrono::milliseconds extra_deadline) {
  assert(peers_ != nullptr);
  (new UnaryForward<Request, Response>(this, &call, owner))->Start(method, extra_deadline);
}

template <typename Request, typename Response>
void CacheService::UnaryOp(Call<Request, Response>& call, const Status& decoded, const Op& op,
                           const std::string& method) {
  if (!decoded.ok()) {
    call.Reply(ToGrpcStatus(decoded));
    return;
  }
  const internal::Topology* topology = ThreadTopology();
  const RequestMetadata& md = call.metadata();
  Router::Decision d = router_.Route(topology, HintsOf(md), op);
  // The forwarder routed on a view this node has not adopted yet (its push is on the
  // way): run again on that view rather than refuse (routing.md, "Views that differ").
  if (d.where == Where::kError && d.behind && call.RetryOnView(md.epoch)) return;
  // Before anything can end the call (a forward completes on another thread).
  AddEpochHint(call.context(), md, topology);
  if (d.where == Where::kError) {
    call.Reply(ToGrpcStatus(d.error));
    return;
  }
  if (d.where == Where::kRemote) {
    Forward(call, *d.owner, method,
            WriteConcernExtra(op.write_concern, op.write_concern_timeout_ms));
    return;
  }
  if (d.possibly_stale) call.context()->AddTrailingMetadata(kPossiblyStaleKey, "1");
  Response* response = call.response();
  OpResult result;
  result.possibly_stale = d.possibly_stale;
  if constexpr (requires { response->mutable_value(); }) {
    // Get's value, or Touch's with return_value (GETEX).
    if (op.kind == OpKind::kGet || op.return_value) result.value = response->mutable_value();
  }
  if constexpr (requires { response->mutable_previous(); }) {
    if (op.return_previous) result.value = response->mutable_previous();
  }
  if constexpr (requires { response->mutable_float_value(); }) {
    if (op.by_float) result.value = response->mutable_float_value();
  }
  if (op.write_concern == 0) {
    ExecuteLocal(node_, op, &result, nullptr);
    if (result.status.ok()) EncodeResult(result, response);
    call.Reply(ToGrpcStatus(result.status));
    return;
  }
  WriteTicket ticket;
  ExecuteLocal(node_, op, &result, &ticket);
  if (!result.status.ok()) {
    call.Reply(ToGrpcStatus(result.status));
    return;
  }
  EncodeResult(result, response);
  if constexpr (requires { response->set_replicas_acked(0); }) {
    node_->WaitForReplicas(ticket, op.write_concern,
                           WriteConcernTimeout(op.write_concern_timeout_ms),
                           [&call](uint32_t acked) {
                             call.response()->set_replicas_acked(acked);
                             call.Reply(grpc::Status::OK);
                           });
  } else {
    call.Reply(grpc::Status::OK);  // Not a write: never has a write concern.
  }
}

// ---- Single-key rpcs: decode, then the operation path.

void CacheService::Get(Call<v1::GetRequest, v1::GetResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().get);
}

void CacheService::Set(Call<v1::SetRequest, v1::SetResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().set);
}

void CacheService::Delete(Call<v1::DeleteRequest, v1::DeleteResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().del);
}

void CacheService::Touch(Call<v1::TouchRequest, v1::TouchResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().touch);
}

void CacheService::Ttl(Call<v1::TtlRequest, v1::TtlResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().ttl);
}

void CacheService::Incr(Call<v1::IncrRequest, v1::IncrResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().incr);
}

void CacheService::SetRange(Call<v1::SetRangeRequest, v1::SetRangeResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().set_range);
}

void CacheService::Collection(Call<v1::CollectionRequest, v1::CollectionResponse>& call) {
  Op op;
  const Status decoded = DecodeOp(call.request(), &op);
  UnaryOp(call, decoded, op, Paths().collection);
}

// ---- Batches.

namespace {

// Sets replicas_acked in whichever write result `result` carries.
void SetReplicasAcked(uint32_t acked, v1::OperationResult* result) {
  switch (result->result_case()) {
    case v1::OperationResult::kSet:
      result->mutable_set()->set_replicas_acked(acked);
      break;
    case v1::OperationResult::kDelete:
      result->mutable_delete_()->set_replicas_acked(acked);
      break;
    case v1::OperationResult::kTouch:
      result->mutable_touch()->set_replicas_acked(acked);
      break;
    case v1::OperationResult::kIncr:
      result->mutable_incr()->set_replicas_acked(acked);
      break;
    case v1::OperationResult::kSetRange:
      result->mutable_set_range()->set_replicas_acked(acked);
      break;
    case v1::OperationResult::kCollection:
      result->mutable_collection()->set_replicas_acked(acked);
      break;
    default:
      break;
  }
}

// A batch rpc's operations and their results, alive until the batch is done.
struct BatchState {
  explicit BatchState(int n)
      : ops(static_cast<size_t>(n)),
        results(static_cast<size_t>(n)),
        skip(std::make_unique<bool[]>(static_cast<size_t>(n))),
        count(static_cast<size_t>(n)) {}
  std::vector<Op> ops;
  std::vector<OpResult> results;
  std::unique_ptr<bool[]> skip;  // Answered before routing (a decoding error).
  size_t count;
  std::span<const bool> Skip() const { return {skip.get(), count}; }
};

// Runs `batch` (owned; freed here) through RunBatch for `call`, then
// `encode(*batch, call.response())` and ends the call OK: the one completion of the batch
// rpcs (MultiGet, MultiSet, MultiDelete, Batch).
template <typename Request, typename Response, typename Encode>
void RunAndReply(const CacheService* service, UnaryCall<Request, Response>& call,
                 const internal::Topology* topology, const Router::Hints& hints, BatchState* batch,
                 Encode encode) {
  RunBatch(service, topology, hints, batch->ops, batch->results, batch->Skip(),
           call.context()->deadline(),
           [&call, batch, encode = std::move(encode)](const Status& outcome) {
             // Over --max-response-bytes: the whole call fails (its results are dropped).
             if (!outcome.ok()) {
               delete batch;
               call.Reply(ToGrpcStatus(outcome));
               return;
             }
             encode(*batch, call.response());
             delete batch;
             call.Reply(grpc::Status::OK);
           });
}

}  // namespace

void CacheService::MultiGet(Call<v1::MultiGetRequest, v1::MultiGetResponse>& call) {
  const v1::MultiGetRequest& request = call.request();
  const int n = request.keys_size();
  if (Status s = node_->CheckBatchSize("MultiGet", static_cast<size_t>(n)); !s.ok()) {
    call.Reply(ToGrpcStatus(s));
    return;
  }
  bool any_owner = false;
  if (Status s = DecodeReadPreference(request.read_preference(), &any_owner); !s.ok()) {
    call.Reply(ToGrpcStatus(s));
    return;
  }
  const internal::Topology* topology = ThreadTopology();
  const RequestMetadata& md = call.metadata();
  AddEpochHint(call.context(), md, topology);
  if (grpc::Status s = CheckServing(topology); !s.ok()) {
    call.Reply(std::move(s));
    return;
  }
  // Fenced with --fenced-reads: every key from this node's copy, marked possibly stale
  // (Router::Route); without it the whole call is refused.
  if (Fenced()) [[unlikely]] {
    if (!router_.fenced_reads()) {
      call.Reply(FencedStatus());
      return;
    }
    call.context()->AddTrailingMetadata(kPossiblyStaleKey, "1");
  }

  v1::MultiGetResponse* response = call.response();
  response->mutable_results()->Reserve(n);
  auto* batch = new BatchState(n);
  for (int i = 0; i < n; ++i) {
    Op& op = batch->ops[static_cast<size_t>(i)];
    op.kind = OpKind::kGet;
    op.key = HashedKey(request.keys(i));
    op.any_owner = any_owner;
    // Each value is copied once, straight into its result.
    batch->results[static_cast<size_t>(i)].value = response->add_results()->mutable_value();
  }
  RunAndReply(this, call, topology, HintsOf(md), batch,
              [](const BatchState& b, v1::MultiGetResponse* out) {
                for (size_t i = 0; i < b.count; ++i) {
                  const OpResult& r = b.results[i];
                  v1::GetResult* result = out->mutable_results(static_cast<int>(i));
                  if (r.possibly_stale) result->set_possibly_stale(true);
                  if (!r.status.ok()) {
                    result->clear_value();
                    SetOpStatus(r.status, result->mutable_status());
                    continue;
                  }
                  result->set_version(r.version);
                  result->set_expires_at_ms(r.expires_at_ms);
                }
              });
}

void CacheService::MultiSet(Call<v1::MultiSetRequest, v1::MultiSetResponse>& call) {
  const v1::MultiSetRequest& request = call.request();
  const int n = request.items_size();
  const uint32_t wc = request.write_concern();
  const uint32_t wc_timeout = request.write_concern_timeout_ms();
  const internal::Topology* topology = nullptr;
  if (grpc::Status s = CheckBatchWrite("MultiSet", n, call.context(), call.metadata(), wc,
                                       wc_timeout, &topology);
      !s.ok()) {
    call.Reply(std::move(s));
    return;
  }
  auto* batch = new BatchState(n);
  for (int i = 0; i < n; ++i) {
    const auto j = static_cast<size_t>(i);
    // An item with an unknown mode (a wire-level problem) is answered without routing.
    if (Status s = DecodeOp(request.items(i), &batch->ops[j]); !s.ok()) {
      batch->results[j].status = std::move(s);
      batch->skip[j] = true;
    }
    // The call's write concern applies to every item (the items' own fields are ignored).
    batch->ops[j].write_concern = wc;
    batch->ops[j].write_concern_timeout_ms = wc_timeout;
  }
  RunAndReply(this, call, topology, HintsOf(call.metadata()), batch,
              [wc](const BatchState& b, v1::MultiSetResponse* out) {
                out->mutable_results()->Reserve(static_cast<int>(b.count));
                for (const OpResult& r : b.results) {
                  v1::SetResult* result = out->add_results();
                  if (!r.status.ok()) {
                    SetOpStatus(r.status, result->mutable_status());
                    continue;
                  }
                  result->set_version(r.version);
                  if (wc > 0) result->set_replicas_acked(r.replicas_acked);
                }
              });
}

void CacheService::MultiDelete(Call<v1::MultiDeleteRequest, v1::MultiDeleteResponse>& call) {
  const v1::MultiDeleteRequest& request = call.request();
  const int n = request.keys_size();
  const uint32_t wc = request.write_concern();
  const uint32_t wc_timeout = request.write_concern_timeout_ms();
  const internal::Topology* topology = nullptr;
  if (grpc::Status s = CheckBatchWrite("MultiDelete", n, call.context(), call.metadata(), wc,
                                       wc_timeout, &topology);
      !s.ok()) {
    call.Reply(std::move(s));
    return;
  }
  auto* batch = new BatchState(n);
  for (int i = 0; i < n; ++i) {
    Op& op = batch->ops[static_cast<size_t>(i)];
    op.kind = OpKind::kDelete;
    op.key = HashedKey(request.keys(i));
    op.write_concern = wc;
    op.write_concern_timeout_ms = wc_timeout;
  }
  RunAndReply(this, call, topology, HintsOf(call.metadata()), batch,
              [wc](const BatchState& b, v1::MultiDeleteResponse* out) {
                out->mutable_results()->Reserve(static_cast<int>(b.count));
                if (wc > 0) out->mutable_replicas_acked()->Reserve(static_cast<int>(b.count));
                for (const OpResult& r : b.results) {
                  v1::OpStatus* status = out->add_results();
                  if (!r.status.ok()) SetOpStatus(r.status, status);
                  if (wc > 0) out->add_replicas_acked(r.replicas_acked);
                }
              });
}

void CacheService::Batch(Call<v1::BatchRequest, v1::BatchResponse>& call) {
  const v1::BatchRequest& request = call.request();
  const int n = request.ops_size();
  if (Status s = node_->CheckBatchSize("Batch", static_cast<size_t>(n)); !s.ok()) {
    call.Reply(ToGrpcStatus(s));
    return;
  }
  const internal::Topology* topology = ThreadTopology();
  const RequestMetadata& md = call.metadata();
  AddEpochHint(call.context(), md, topology);
  if (grpc::Status s = CheckServing(topology); !s.ok()) {
    call.Reply(std::move(s));
    return;
  }
  v1::BatchResponse* response = call.response();
  response->mutable_results()->Reserve(n);
  auto* batch = new BatchState(n);
  for (int i = 0; i < n; ++i) {
    const auto j = static_cast<size_t>(i);
    v1::OperationResult* out = response->add_results();
    out->set_id(request.ops(i).id());
    if (Status s = DecodeOp(request.ops(i), &batch->ops[j]); !s.ok()) {
      batch->results[j].status = std::move(s);
      batch->skip[j] = true;
      continue;
    }
    batch->results[j].value = PipelineValueSlot(batch->ops[j], out);
  }
  RunAndReply(this, call, topology, HintsOf(md), batch,
              [](const BatchState& b, v1::BatchResponse* out) {
                for (size_t i = 0; i < b.count; ++i) {
                  v1::OperationResult* result = out->mutable_results(static_cast<int>(i));
                  const Op& op = b.ops[i];
                  const OpResult& r = b.results[i];
                  EncodeResult(op, r, result);
                  if (r.status.ok() && op.write_concern > 0)
                    SetReplicasAcked(r.replicas_acked, result);
                }
              });
}

// ---- Node-level rpcs.

// NodeState is numbered as ringcache.v1.NodeState, so Stats converts it with a cast.
static_assert(static_cast<int>(NodeState::kServing) == v1::NODE_STATE_SERVING &&
              static_cast<int>(NodeState::kFenced) == v1::NODE_STATE_FENCED &&
              static_cast<int>(NodeState::kJoining) == v1::NODE_STATE_JOINING &&
              static_cast<int>(NodeState::kLeaving) == v1::NODE_STATE_LEAVING);

void CacheService::Publish(Call<v1::PublishRequest, v1::PublishResponse>& call) {
  const RequestMetadata& md = call.metadata();
  if (!md.forwarded_by.empty()) {
    call.Reply(relay_->Receive(md, call.request(), call.response()));
    return;
  }
  relay_->Publish(call.request(), call.context()->deadline(),
                  [&call](grpc::Status status, v1::PublishResponse response) {
                    if (status.ok()) *call.response() = std::move(response);
                    call.Reply(std::move(status));
                  });
}

void CacheService::Snapshot(Call<v1::SnapshotRequest, v1::SnapshotResponse>& call) {
  node_->SnapshotNow(
      [&call, path = node_->options().data_dir + "/snapshot.rcs"](Result<SnapshotInfo> r) {
        if (r.ok()) {
          v1::SnapshotResponse* out = call.response();
          out->set_keys(r->keys);
          out->set_bytes(r->bytes);
          out->set_duration_ms(static_cast<uint64_t>(r->seconds * 1000));
          out->set_path(path);
        }
        call.Reply(ToGrpcStatus(r.status()));
      });
}

void CacheService::Stats(Call<v1::StatsRequest, v1::StatsResponse>& call) {
  NodeStats stats = node_->Stats();
  v1::StatsResponse* response = call.response();
  response->set_node_id(std::move(stats.node_id));
  response->set_server_version(std::move(stats.version));
  response->set_uptime_ms(stats.uptime_ms);
  response->set_hits(stats.cache.hits);
  response->set_misses(stats.cache.misses);
  response->set_sets(stats.cache.sets);
  response->set_deletes(stats.cache.deletes);
  response->set_evictions(stats.cache.evictions);
  response->set_expirations(stats.cache.expirations);
  response->set_items(stats.cache.items);
  response->set_bytes_used(stats.cache.bytes_used);
  response->set_capacity_bytes(stats.cache.capacity_bytes);
  response->set_epoch(stats.epoch);
  response->set_state(static_cast<v1::NodeState>(stats.state));
  response->set_state_detail(std::move(stats.state_detail));
  response->set_under_replicated_ranges(stats.under_replicated_ranges);
  v1::MigrationProgress* migration = response->mutable_migration();
  migration->set_epoch(stats.migration.epoch);
  migration->set_ranges_total(stats.migration.ranges_total);
  migration->set_ranges_done(stats.migration.ranges_done);
  migration->set_keys_sent(stats.migration.keys_sent);
  migration->set_bytes_sent(stats.migration.bytes_sent);
  migration->set_keys_remaining(stats.migration.keys_remaining);
  migration->set_bytes_remaining(stats.migration.bytes_remaining);
  migration->set_keys_received(stats.migration.keys_received);
  migration->set_bytes_received(stats.migration.bytes_received);
  if (stats.transition.epoch != 0) {
    v1::TransitionStatus* transition = response->mutable_transition();
    transition->set_epoch(stats.transition.epoch);
    transition->set_waiting_ms(stats.transition.waiting_ms);
    transition->set_coordinator(stats.transition.coordinator);
    for (const std::string& id : stats.transition.pending) transition->add_pending(id);
    for (const std::string& id : stats.transition.ready) transition->add_ready(id);
  }
  response->mutable_peers()->Reserve(static_cast<int>(stats.peers.size()));
  for (PeerHealth& peer : stats.peers) {
    v1::PeerHealth* out = response->add_peers();
    out->set_id(std::move(peer.id));
    out->set_reachable(peer.reachable);
    out->set_last_heard_ms(peer.last_heard_ms);
    out->set_suspected(peer.suspected);
    for (std::string& by : peer.suspected_by) out->add_suspected_by(std::move(by));
  }
  response->mutable_replicas()->Reserve(static_cast<int>(stats.replicas.size()));
  for (ReplicaLinkStats& link : stats.replicas) {
    v1::ReplicaLinkStats* out = response->add_replicas();
    out->set_replica_id(std::move(link.replica_id));
    out->set_address(std::move(link.address));
    out->set_state(std::move(link.state));
    out->set_lag_ops(link.lag_ops);
    out->set_lag_ms(link.lag_ms);
    out->set_last_seq(link.last_seq);
    out->set_acked_seq(link.acked_seq);
    out->set_backlog_bytes(link.backlog_bytes);
    out->set_resumes(link.resumes);
    out->set_full_syncs(link.full_syncs);
    out->set_sync_keys_sent(link.sync_keys_sent);
    out->set_sync_bytes_sent(link.sync_bytes_sent);
  }
  call.Reply(grpc::Status::OK);
}

void CacheService::Topology(Call<v1::TopologyRequest, v1::ClusterView>& call) {
  FillView(ThreadTopology(), call.response());
  call.Reply(grpc::Status::OK);
}

// ---- Pipeline.

grpc::Status CacheService::CheckPipelineMessage(const v1::PipelineRequest& request) const {
  const auto ops = static_cast<size_t>(request.ops_size());
  if (Status s = node_->CheckBatchSize("PipelineRequest", ops); !s.ok()) return ToGrpcStatus(s);
  uint64_t covered = 0;  // No wrap: a message holds a few million parts at most, each < 2^32.
  for (const v1::ResultLimit& part : request.parts()) covered += part.ops();
  if (covered <= ops) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "PipelineRequest.parts cover " + std::to_string(covered) +
                          " operations but the message has " + std::to_string(ops));
}

size_t CacheService::MaxForwardOps() const { return node_->options().max_batch; }

uint64_t CacheService::MaxResponseBytes() const { return node_->options().max_response_bytes; }

size_t CacheService::MaxForwardBytes() const {
  // The node's own receive limit is max_value + max_key + 64 KiB of slack (node.cc); keep
  // the slack for framing.
  return size_t{node_->options().max_value_bytes} + node_->options().max_key_bytes;
}

namespace {

// The key `op` acts on; empty for an operation with nothing set.
std::string_view OperationKey(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kGet:
      return op.get().key();
    case v1::Operation::kSet:
      return op.set().key();
    case v1::Operation::kDelete:
      return op.delete_().key();
    case v1::Operation::kTouch:
      return op.touch().key();
    case v1::Operation::kTtl:
      return op.ttl().key();
    case v1::Operation::kIncr:
      return op.incr().key();
    case v1::Operation::kSetRange:
      return op.set_range().key();
    case v1::Operation::kCollection:
      return op.collection().key();
    default:
      return {};
  }
}

}  // namespace

void CacheService::DecodePipelineOps(const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
                                     int first, DecodedOps* out) const {
  std::array<HashedKey, kPrefetchOps> keys;
  size_t n = 0;
  out->first = first;
  out->count = std::min(ops.size() - first, static_cast<int>(kPrefetchOps));
  for (int i = 0; i < out->count; ++i) {
    const auto k = static_cast<size_t>(i);
    out->ops[k] = Op{};
    out->errors[k] = DecodeOp(ops.Get(first + i), &out->ops[k]);
    if (out->errors[k].ok()) keys[n++] = out->ops[k].key;
  }
  node_->Prefetch(std::span<const HashedKey>(keys.data(), n));
}

namespace {
constexpr size_t kFramingBytes = 64;  // id, tags, lengths, numbers, the oneof's message
}  // namespace

// A collection command's arguments, each with its tag and length.
constexpr size_t kArgFramingBytes = 6;

size_t CacheService::ForwardBytes(const v1::Operation& op) {
  size_t value = 0;
  if (op.op_case() == v1::Operation::kSet) value = op.set().value().size();
  if (op.op_case() == v1::Operation::kCollection) {
    for (const std::string& arg : op.collection().args()) value += kArgFramingBytes + arg.size();
  }
  if (op.op_case() == v1::Operation::kPublish) {
    value = op.publish().channel().size() + op.publish().payload().size();
  }
  return kFramingBytes + OperationKey(op).size() + value;
}

size_t CacheService::ForwardBytes(const Op& op) {
  size_t args = 0;
  for (std::string_view arg : op.args) args += kArgFramingBytes + arg.size();
  return kFramingBytes + op.key.bytes().size() + op.value.size() + args;
}

size_t CacheService::FailedResults(const grpc::Status& status,
                                   const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
                                   v1::PipelineResponse* out) {
  out->mutable_results()->Reserve(out->results_size() + ops.size());
  for (const v1::Operation& op : ops) {
    v1::OperationResult* result = out->add_results();
    result->set_id(op.id());
    SetOpStatus(status, result->mutable_status());
  }
  return static_cast<size_t>(ops.size()) * (kResultOverheadBytes + status.error_message().size());
}

PipelineStep CacheService::ExecutePipelineOp(const internal::Topology* topology,
                                             const RequestMetadata& md,
                                             const v1::Operation& operation, const Op& op,
                                             const Status& decode_error,
                                             v1::OperationResult* result, PipelineSink* sink) {
  result->set_id(operation.id());
  if (operation.op_case() == v1::Operation::kPublish) [[unlikely]] {
    return ExecutePipelinePublish(md, operation, result, sink);
  }
  if (!decode_error.ok()) {
    SetOpStatus(decode_error, result->mutable_status());
    return {.kind = PipelineStep::kAnswered,
            .bytes = kResultOverheadBytes + decode_error.message().size()};
  }
  Router::Decision d = router_.Route(topology, HintsOf(md), op);
  if (d.where == Where::kError) {
    SetOpStatus(d.error, result->mutable_status());
    return {.kind = PipelineStep::kAnswered,
            .bytes = kResultOverheadBytes + d.error.message().size()};
  }
  if (d.where == Where::kRemote) {
    return {.kind = PipelineStep::kForward,
            .owner = d.owner,
            .extra_deadline = WriteConcernExtra(op.write_concern, op.write_concern_timeout_ms)};
  }
  OpResult r;
  r.value = PipelineValueSlot(op, result);
  r.possibly_stale = d.possibly_stale;
  if (op.write_concern == 0) {
    ExecuteLocal(node_, op, &r, nullptr);
    return {.kind = PipelineStep::kAnswered, .bytes = EncodeResult(op, r, result)};
  }

  // A write served here with a write concern: its result waits for the replicas' acks.
  WriteTicket ticket;
  ExecuteLocal(node_, op, &r, &ticket);
  const size_t bytes = EncodeResult(op, r, result);
  if (!r.status.ok()) return {.kind = PipelineStep::kAnswered, .bytes = bytes};
  auto* pending = new v1::PipelineResponse();
  *pending->add_results() = std::move(*result);  // One copy off the stream's arena.
  sink->AddPending(1);
  sink->RefSink();
  node_->WaitForReplicas(ticket, op.write_concern, WriteConcernTimeout(op.write_concern_timeout_ms),
                         [sink, pending, bytes](uint32_t acked) {
                           SetReplicasAcked(acked, pending->mutable_results(0));
                           sink->Deliver(pending, bytes, 1);
                           delete pending;
                           sink->UnrefSink();
                         });
  return {.kind = PipelineStep::kPending};
}

PipelineStep CacheService::ExecutePipelinePublish(const RequestMetadata& md,
                                                  const v1::Operation& operation,
                                                  v1::OperationResult* result, PipelineSink* sink) {
  if (md.role < Role::kReadWrite) {
    const Status allowed = RoleError("Publish", Role::kReadWrite, md.role);
    SetOpStatus(allowed, result->mutable_status());
    return {.kind = PipelineStep::kAnswered,
            .bytes = kResultOverheadBytes + allowed.message().size()};
  }
  if (!md.forwarded_by.empty()) {
    const grpc::Status s = relay_->Receive(md, operation.publish(), result->mutable_publish());
    if (!s.ok()) {
      result->clear_publish();
      SetOpStatus(s, result->mutable_status());
    }
    return {.kind = PipelineStep::kAnswered,
            .bytes = kResultOverheadBytes + s.error_message().size()};
  }
  // A client's publish waits for the other nodes' counts (bounded by --publish-timeout).
  auto* pending = new v1::PipelineResponse();
  pending->add_results()->set_id(operation.id());
  sink->AddPending(1);
  sink->RefSink();
  relay_->Publish(operation.publish(), std::chrono::system_clock::time_point::max(),
                  [sink, pending](grpc::Status status, v1::PublishResponse response) {
                    v1::OperationResult* r = pending->mutable_results(0);
                    if (status.ok()) {
                      *r->mutable_publish() = std::move(response);
                    } else {
                      SetOpStatus(status, r->mutable_status());
                    }
                    sink->Deliver(pending, kResultOverheadBytes + status.error_message().size(), 1);
                    delete pending;
                    sink->UnrefSink();
                  });
  return {.kind = PipelineStep::kPending};
}

}  // namespace ringcache::internal

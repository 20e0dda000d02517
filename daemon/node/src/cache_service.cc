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

#include "cluster_view_proto.h"
#include "engine.h"
#include "membership.h"
#include "peer_pool.h"
#include "proto_ops.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

// write_concern_timeout_ms: the default for 0 (the most accepted is Router's).
constexpr uint32_t kDefaultWriteConcernTimeoutMs = 1000;

// Full method names, for forwarding calls as raw bytes. Built once, never destroyed.
struct MethodPaths {
  std::string get = "/ringcache.v1.Cache/Get";
  std::string set = "/ringcache.v1.Cache/Set";
  std::string del = "/ringcache.v1.Cache/Delete";
  std::string touch = "/ringcache.v1.Cache/Touch";
  std::string ttl = "/ringcache.v1.Cache/Ttl";
  std::string incr = "/ringcache.v1.Cache/Incr";
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

std::chrono::milliseconds WriteConcernTimeout(uint32_t timeout_ms) {
  return std::chrono::milliseconds(timeout_ms == 0 ? kDefaultWriteConcernTimeoutMs : timeout_ms);
}

// How long a forwarded write may take beyond the forward timeout: its write-concern wait.
std::chrono::milliseconds WriteConcernExtra(uint32_t write_concern, uint32_t timeout_ms) {
  return write_concern == 0 ? std::chrono::milliseconds(0) : WriteConcernTimeout(timeout_ms);
}

grpc::Status UnknownReadPreference(v1::ReadPreference preference) {
  return {grpc::StatusCode::INVALID_ARGUMENT,
          "unknown read preference " + std::to_string(static_cast<int>(preference))};
}

// A batch rpc split across nodes: the local part and each remote part hold one count; the
// part that drops it to zero ends the call. Deletes itself then.
template <typename Request, typename Response>
class BatchJoin {
 public:
  BatchJoin(UnaryCall<Request, Response>* call, int parts) : call_(call), parts_(parts) {}

  // More parts (write-concern waits) while the caller still holds its own count.
  void AddParts(int parts) { parts_.fetch_add(parts, std::memory_order_relaxed); }
  // acq_rel: the part that ends the call sees every other part's writes to the response.
  void PartDone() {
    if (parts_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    UnaryCall<Request, Response>* call = call_;
    delete this;
    call->Reply(grpc::Status::OK);
  }
  Response* response() { return call_->response(); }

 private:
  UnaryCall<Request, Response>* const call_;  // Not owned.
  std::atomic<int> parts_;
};

// One remote part of a batch: the sub-request to one owner and where its items go back.
template <typename Join, typename SubRequest, typename SubResponse>
struct RemotePart {
  Join* join = nullptr;
  const ClusterMember* owner = nullptr;  // Only while splitting (the caller's topology).
  ForwardTarget target;
  bool our_deadline = false;
  grpc::ClientContext context;
  SubRequest request;
  SubResponse response;
  std::vector<int> index;  // Sub-request item j is the call's item index[j].
};

// One forwarded part per owner of `split`'s remote operations; add(part, i) copies the
// call's item i into the part's request.
template <typename Part, typename Add>
std::vector<std::unique_ptr<Part>> MakeParts(Router::Split* split, const Add& add) {
  std::vector<std::unique_ptr<Part>> parts;
  parts.reserve(split->remote.size());
  for (Router::Part& remote : split->remote) {
    auto part = std::make_unique<Part>();
    part->owner = remote.owner;
    for (const int i : remote.index) add(part.get(), i);
    part->index = std::move(remote.index);
    parts.push_back(std::move(part));
  }
  return parts;
}

// For a batch rpc over request.keys(): the parts to forward, and the keys served here in
// split->local's order.
template <typename Part, typename Request>
std::vector<std::unique_ptr<Part>> KeyParts(Router::Split* split, const Request& request,
                                            std::vector<std::string_view>* local_keys) {
  local_keys->reserve(split->local.size());
  for (const int i : split->local) local_keys->push_back(request.keys(i));
  return MakeParts<Part>(
      split, [&request](Part* part, int i) { part->request.add_keys(request.keys(i)); });
}

// What forwarding a batch rpc's parts needs to know of that rpc, one specialization each.
//   Response: the rpc's response type.
//   kItemsName: what the answer-count error calls the request's entries (" keys", " items").
//   Send: starts the async call on `stub`.
//   ErrorOut: where a relayed error for item i of a response goes.
//   TakeExtras: after the results are swapped back into the call's order, takes anything
//     else the sub-response carries per item.
template <typename Request>
struct BatchRpc;

// For a response whose results each hold their own status, with nothing else per item.
template <typename R>
struct ResultsWithStatus {
  using Response = R;
  static v1::OpStatus* ErrorOut(Response* response, int i) {
    return response->mutable_results(i)->mutable_status();
  }
  static void TakeExtras(Response*, const std::vector<int>&, Response*) {}
};

template <>
struct BatchRpc<v1::MultiGetRequest> : ResultsWithStatus<v1::MultiGetResponse> {
  static constexpr const char* kItemsName = " keys";
  template <typename Done>
  static void Send(v1::Cache::Stub* stub, grpc::ClientContext* context,
                   const v1::MultiGetRequest* request, Response* response, Done&& done) {
    stub->async()->MultiGet(context, request, response, std::forward<Done>(done));
  }
};

template <>
struct BatchRpc<v1::MultiSetRequest> : ResultsWithStatus<v1::MultiSetResponse> {
  static constexpr const char* kItemsName = " items";
  template <typename Done>
  static void Send(v1::Cache::Stub* stub, grpc::ClientContext* context,
                   const v1::MultiSetRequest* request, Response* response, Done&& done) {
    stub->async()->MultiSet(context, request, response, std::forward<Done>(done));
  }
};

template <>
struct BatchRpc<v1::MultiDeleteRequest> {
  using Response = v1::MultiDeleteResponse;
  static constexpr const char* kItemsName = " keys";
  template <typename Done>
  static void Send(v1::Cache::Stub* stub, grpc::ClientContext* context,
                   const v1::MultiDeleteRequest* request, Response* response, Done&& done) {
    stub->async()->MultiDelete(context, request, response, std::forward<Done>(done));
  }
  static v1::OpStatus* ErrorOut(Response* response, int i) { return response->mutable_results(i); }
  // replicas_acked: only when the call asked for write concern (`out` has one slot per
  // item) and the owner answered one per item.
  static void TakeExtras(Response* in, const std::vector<int>& index, Response* out) {
    if (out->replicas_acked_size() == 0 ||
        static_cast<size_t>(in->replicas_acked_size()) != index.size()) {
      return;
    }
    for (size_t j = 0; j < index.size(); ++j) {
      out->set_replicas_acked(index[j], in->replicas_acked(static_cast<int>(j)));
    }
  }
};

// On a gRPC thread: `part`'s owner answered with `s`. Its results go back to their items
// in the call's order, or the relayed error to each of its items; then the part ends its
// count on the join. Deletes the part.
template <typename Rpc, typename Part>
void PartAnswered(const CacheService* service, Part* part, grpc::Status s) {
  typename Rpc::Response* out = part->join->response();
  const size_t count = part->index.size();
  if (s.ok() && static_cast<size_t>(part->response.results_size()) != count) {
    s = grpc::Status(grpc::StatusCode::INTERNAL, "node " + part->target.id + " answered " +
                                                     std::to_string(part->response.results_size()) +
                                                     " results for " + std::to_string(count) +
                                                     Rpc::kItemsName);
  }
  if (s.ok()) {
    // Move-assigned: a pointer swap on the same arena, one copy from the heap part into
    // the call's arena (Swap would copy three times there).
    for (size_t j = 0; j < count; ++j) {
      *out->mutable_results(part->index[j]) =
          std::move(*part->response.mutable_results(static_cast<int>(j)));
    }
    Rpc::TakeExtras(&part->response, part->index, out);
  } else {
    const grpc::Status relayed = service->RelayStatus(s, part->target, part->our_deadline);
    for (const int i : part->index) SetOpStatus(relayed, Rpc::ErrorOut(out, i));
  }
  auto* join = part->join;
  delete part;
  join->PartDone();
}

// Sends each of `parts` (split off a batch call with deadline `caller_deadline`; each
// already counted on `join`) to its owner, marked as forwarded by this node, with a
// deadline of at most the forward timeout plus `extra_deadline`. `prepare` copies into
// each sub-request the call's own fields (read preference, write concern). Takes the parts'
// ownership: each deletes itself when answered (PartAnswered).
template <typename Rpc, typename Join, typename Part, typename Prepare>
void ForwardParts(const CacheService* service, Join* join,
                  std::vector<std::unique_ptr<Part>>* parts,
                  std::chrono::system_clock::time_point caller_deadline,
                  std::chrono::milliseconds extra_deadline, const Prepare& prepare) {
  for (std::unique_ptr<Part>& owned : *parts) {
    Part* part = owned.release();
    part->join = join;
    part->target = {part->owner->id, part->owner->address};
    prepare(&part->request);
    part->context.set_deadline(
        service->ForwardDeadline(caller_deadline, extra_deadline, &part->our_deadline));
    service->AddForwardMetadata(&part->context);
    Rpc::Send(service->peers()->CacheStub(part->target.address), &part->context, &part->request,
              &part->response,
              [service, part](grpc::Status s) { PartAnswered<Rpc>(service, part, std::move(s)); });
  }
}

// One unary call relayed as raw bytes to the key's owner. Deletes itself when it is done.
template <typename Request, typename Response>
class UnaryForward {
 public:
  UnaryForward(const CacheService* service, UnaryCall<Request, Response>* call,
               const ClusterMember& owner)
      : service_(service), call_(call), target_{owner.id, owner.address} {}

  void Start(const std::string& method, std::chrono::milliseconds extra_deadline) {
    context_.set_deadline(
        service_->ForwardDeadline(call_->context()->deadline(), extra_deadline, &our_deadline_));
    service_->AddForwardMetadata(&context_);
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
      fenced_reads_(node->options().fenced_reads),
      gate_(node),
      router_(node->options().node_id, node->options().max_key_bytes, membership == nullptr, &gate_,
              node->options().fenced_reads, node->options().replication_factor) {
  generation_.store(NextGeneration(), std::memory_order_release);
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
    ToProto(topology->view, out);
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
  ToProto(view, out);
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
  context->AddMetadata(std::string(RequestMetadata::kForwardedByKey), self_id());
  if (membership_ == nullptr) return;
  if (const std::shared_ptr<const internal::Topology> topology = membership_->current()) {
    context->AddMetadata(std::string(RequestMetadata::kEpochKey),
                         std::to_string(topology->epoch()));
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
    if (op.kind == OpKind::kGet) result.value = response->mutable_value();
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

// ---- Batches.

void CacheService::MultiGet(Call<v1::MultiGetRequest, v1::MultiGetResponse>& call) {
  using Rpc = BatchRpc<v1::MultiGetRequest>;
  using Join = BatchJoin<v1::MultiGetRequest, Rpc::Response>;
  using Part = RemotePart<Join, v1::MultiGetRequest, Rpc::Response>;
  const v1::MultiGetRequest& request = call.request();
  const int n = request.keys_size();
  if (Status s = node_->CheckBatchSize("MultiGet", static_cast<size_t>(n)); !s.ok()) {
    call.Reply(ToGrpcStatus(s));
    return;
  }
  Access access = Access::kReadPrimary;
  if (request.read_preference() == v1::READ_PREFERENCE_ANY_OWNER) {
    access = Access::kReadAnyOwner;
  } else if (request.read_preference() != v1::READ_PREFERENCE_PRIMARY) {
    call.Reply(UnknownReadPreference(request.read_preference()));
    return;
  }
  const internal::Topology* topology = ThreadTopology();
  const RequestMetadata& md = call.metadata();
  AddEpochHint(call.context(), md, topology);
  if (grpc::Status s = CheckServing(topology); !s.ok()) {
    call.Reply(std::move(s));
    return;
  }
  // Fenced with --fenced-reads: every key from this node's copy, marked possibly stale.
  const bool stale = Fenced();
  if (stale) [[unlikely]] {
    if (!fenced_reads_) {
      call.Reply(FencedStatus());
      return;
    }
    call.context()->AddTrailingMetadata(kPossiblyStaleKey, "1");
  }

  v1::MultiGetResponse* response = call.response();
  response->mutable_results()->Reserve(n);
  for (int i = 0; i < n; ++i) response->add_results();
  const auto key_at = [&request](int i) -> std::string_view { return request.keys(i); };
  Router::Split split;
  if (stale) {
    split.local.resize(static_cast<size_t>(n));
    std::iota(split.local.begin(), split.local.end(), 0);
  } else {
    split = router_.SplitBatch(topology, HintsOf(md), access, n, key_at);
  }
  for (const auto& [i, error] : split.errors) {
    SetOpStatus(error, response->mutable_results(i)->mutable_status());
  }
  std::vector<std::string_view> local_keys;
  std::vector<std::unique_ptr<Part>> parts = KeyParts<Part>(&split, request, &local_keys);
  const std::vector<int>& local_index = split.local;

  auto* join = new Join(&call, 1 + static_cast<int>(parts.size()));
  ForwardParts<Rpc>(this, join, &parts, call.context()->deadline(), std::chrono::milliseconds(0),
                    [&request](v1::MultiGetRequest* sub) {
                      sub->set_read_preference(request.read_preference());
                    });

  // Each value is copied once, straight into its result (the batch size was checked above,
  // so Node::MultiGet's vector of Items would only add an allocation and a copy per key).
  node_->Prefetch(local_keys);
  for (size_t j = 0; j < local_keys.size(); ++j) {
    v1::GetResult* out = response->mutable_results(local_index[j]);
    if (stale) out->set_possibly_stale(true);
    ItemMeta meta;
    if (Status s = node_->Get(local_keys[j], out->mutable_value(), &meta); !s.ok()) {
      out->clear_value();
      SetOpStatus(s, out->mutable_status());
      continue;
    }
    out->set_version(meta.version);
    out->set_expires_at_ms(meta.deadline_ms);
  }
  join->PartDone();
}

void CacheService::MultiSet(Call<v1::MultiSetRequest, v1::MultiSetResponse>& call) {
  using Rpc = BatchRpc<v1::MultiSetRequest>;
  using Join = BatchJoin<v1::MultiSetRequest, Rpc::Response>;
  using Part = RemotePart<Join, v1::MultiSetRequest, Rpc::Response>;
  const v1::MultiSetRequest& request = call.request();
  const int n = request.items_size();
  const uint32_t wc = request.write_concern();
  const uint32_t wc_timeout = request.write_concern_timeout_ms();
  const RequestMetadata& md = call.metadata();
  const internal::Topology* topology = nullptr;
  if (grpc::Status s = CheckBatchWrite("MultiSet", n, call.context(), call.metadata(), wc,
                                       wc_timeout, &topology);
      !s.ok()) {
    call.Reply(std::move(s));
    return;
  }

  v1::MultiSetResponse* response = call.response();
  response->mutable_results()->Reserve(n);
  for (int i = 0; i < n; ++i) response->add_results();
  // Items with an unknown mode (a wire-level problem) are answered here; the rest go to
  // the node in one batch, or to their owners.
  for (int i = 0; i < n; ++i) {
    SetOptions options;
    if (Status s = ToSetOptions(request.items(i), &options); !s.ok()) {
      SetOpStatus(s, response->mutable_results(i)->mutable_status());
    }
  }
  Router::Split split = router_.SplitBatch(
      topology, HintsOf(md), Access::kWrite, n,
      [&request](int i) -> std::string_view { return request.items(i).key(); },
      [response](int i) { return response->results(i).has_status(); });  // Answered above.
  for (const auto& [i, error] : split.errors) {
    SetOpStatus(error, response->mutable_results(i)->mutable_status());
  }
  std::vector<std::unique_ptr<Part>> parts = MakeParts<Part>(
      &split, [&request](Part* part, int i) { *part->request.add_items() = request.items(i); });
  const std::vector<int>& local_index = split.local;  // local_items[j] is item local_index[j].
  std::vector<SetItem> local_items;
  local_items.reserve(local_index.size());
  for (const int i : local_index) {
    const v1::SetRequest& in = request.items(i);
    SetItem item{.key = in.key(), .value = in.value(), .options = {}};
    (void)ToSetOptions(in, &item.options);  // Valid: the invalid ones were answered above.
    local_items.push_back(item);
  }

  auto* join = new Join(&call, 1 + static_cast<int>(parts.size()));
  ForwardParts<Rpc>(this, join, &parts, call.context()->deadline(),
                    WriteConcernExtra(wc, wc_timeout), [wc, wc_timeout](v1::MultiSetRequest* sub) {
                      sub->set_write_concern(wc);
                      sub->set_write_concern_timeout_ms(wc_timeout);
                    });

  if (wc == 0) {
    if (!local_items.empty()) {
      Result<std::vector<Result<uint64_t>>> versions = node_->MultiSet(local_items);
      for (size_t j = 0; j < local_items.size(); ++j) {
        v1::SetResult* out = response->mutable_results(local_index[j]);
        if (!versions.ok()) {
          SetOpStatus(versions.status(), out->mutable_status());
        } else if ((*versions)[j].ok()) {
          out->set_version(*(*versions)[j]);
        } else {
          SetOpStatus((*versions)[j].status(), out->mutable_status());
        }
      }
    }
  } else {
    // Write concern is per item: each write waits for its own replicas (a merged ticket
    // would let one replica's ack stand for a key it does not hold).
    for (size_t j = 0; j < local_items.size(); ++j) {
      v1::SetResult* out = response->mutable_results(local_index[j]);
      WriteTicket ticket;
      Result<uint64_t> version =
          node_->Set(local_items[j].key, local_items[j].value, local_items[j].options, &ticket);
      if (!version.ok()) {
        SetOpStatus(version.status(), out->mutable_status());
        continue;
      }
      out->set_version(*version);
      join->AddParts(1);
      node_->WaitForReplicas(ticket, wc, WriteConcernTimeout(wc_timeout),
                             [join, out](uint32_t acked) {
                               out->set_replicas_acked(acked);
                               join->PartDone();
                             });
    }
  }
  join->PartDone();
}

void CacheService::MultiDelete(Call<v1::MultiDeleteRequest, v1::MultiDeleteResponse>& call) {
  using Rpc = BatchRpc<v1::MultiDeleteRequest>;
  using Join = BatchJoin<v1::MultiDeleteRequest, Rpc::Response>;
  using Part = RemotePart<Join, v1::MultiDeleteRequest, Rpc::Response>;
  const v1::MultiDeleteRequest& request = call.request();
  const int n = request.keys_size();
  const uint32_t wc = request.write_concern();
  const uint32_t wc_timeout = request.write_concern_timeout_ms();
  const RequestMetadata& md = call.metadata();
  const internal::Topology* topology = nullptr;
  if (grpc::Status s = CheckBatchWrite("MultiDelete", n, call.context(), call.metadata(), wc,
                                       wc_timeout, &topology);
      !s.ok()) {
    call.Reply(std::move(s));
    return;
  }

  v1::MultiDeleteResponse* response = call.response();
  response->mutable_results()->Reserve(n);
  for (int i = 0; i < n; ++i) response->add_results();
  if (wc > 0) response->mutable_replicas_acked()->Resize(n, 0);
  const auto key_at = [&request](int i) -> std::string_view { return request.keys(i); };
  Router::Split split = router_.SplitBatch(topology, HintsOf(md), Access::kWrite, n, key_at);
  for (const auto& [i, error] : split.errors) {
    SetOpStatus(error, response->mutable_results(i));
  }
  std::vector<std::string_view> local_keys;
  std::vector<std::unique_ptr<Part>> parts = KeyParts<Part>(&split, request, &local_keys);
  const std::vector<int>& local_index = split.local;

  auto* join = new Join(&call, 1 + static_cast<int>(parts.size()));
  ForwardParts<Rpc>(this, join, &parts, call.context()->deadline(),
                    WriteConcernExtra(wc, wc_timeout),
                    [wc, wc_timeout](v1::MultiDeleteRequest* sub) {
                      sub->set_write_concern(wc);
                      sub->set_write_concern_timeout_ms(wc_timeout);
                    });

  if (wc == 0) {
    if (!local_keys.empty()) {
      Result<std::vector<Status>> statuses = node_->MultiDelete(local_keys);
      for (size_t j = 0; j < local_keys.size(); ++j) {
        const Status& status = statuses.ok() ? (*statuses)[j] : statuses.status();
        if (!status.ok()) SetOpStatus(status, response->mutable_results(local_index[j]));
      }
    }
  } else {
    for (size_t j = 0; j < local_keys.size(); ++j) {
      const int i = local_index[j];
      WriteTicket ticket;
      if (Status s = node_->Delete(local_keys[j], &ticket); !s.ok()) {
        SetOpStatus(s, response->mutable_results(i));
        continue;
      }
      join->AddParts(1);
      node_->WaitForReplicas(ticket, wc, WriteConcernTimeout(wc_timeout),
                             [join, response, i](uint32_t acked) {
                               response->set_replicas_acked(i, acked);
                               join->PartDone();
                             });
    }
  }
  join->PartDone();
}

// ---- Node-level rpcs.

// NodeState is numbered as ringcache.v1.NodeState, so Stats converts it with a cast.
static_assert(static_cast<int>(NodeState::kServing) == v1::NODE_STATE_SERVING &&
              static_cast<int>(NodeState::kFenced) == v1::NODE_STATE_FENCED &&
              static_cast<int>(NodeState::kJoining) == v1::NODE_STATE_JOINING &&
              static_cast<int>(NodeState::kLeaving) == v1::NODE_STATE_LEAVING);

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

grpc::Status CacheService::CheckPipelineMessage(int op_count) const {
  return ToGrpcStatus(node_->CheckBatchSize("PipelineRequest", static_cast<size_t>(op_count)));
}

size_t CacheService::MaxForwardOps() const { return node_->options().max_batch; }

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
    default:
      return {};
  }
}

}  // namespace

void CacheService::PrefetchPipelineOps(const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
                                       int first) const {
  std::array<std::string_view, kPrefetchOps> keys;
  size_t n = 0;
  const int end = std::min(ops.size(), first + static_cast<int>(kPrefetchOps));
  for (int i = first; i < end; ++i) {
    if (const v1::Operation& op = ops.Get(i); op.op_case() != v1::Operation::OP_NOT_SET) {
      keys[n++] = OperationKey(op);
    }
  }
  node_->Prefetch(std::span<const std::string_view>(keys.data(), n));
}

size_t CacheService::ForwardBytes(const v1::Operation& op) {
  constexpr size_t kFramingBytes = 64;  // id, tags, lengths, numbers, the oneof's message
  const size_t value = op.op_case() == v1::Operation::kSet ? op.set().value().size() : 0;
  return kFramingBytes + OperationKey(op).size() + value;
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
    default:
      break;
  }
}

}  // namespace

PipelineStep CacheService::ExecutePipelineOp(const internal::Topology* topology,
                                             const RequestMetadata& md,
                                             const v1::Operation& operation,
                                             v1::OperationResult* result, PipelineSink* sink) {
  result->set_id(operation.id());
  Op op;
  if (Status s = DecodeOp(operation, &op); !s.ok()) {
    SetOpStatus(s, result->mutable_status());
    return {.kind = PipelineStep::kAnswered, .bytes = kResultOverheadBytes + s.message().size()};
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

}  // namespace ringcache::internal

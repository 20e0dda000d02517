#include "op_batch.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache_service.h"
#include "engine.h"
#include "peer_pool.h"
#include "proto_ops.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

// One batch in flight: counts its parts (the caller's own, one per forwarded call, one per
// write-concern wait) and runs `done`, then deletes itself, when the last one ends.
class BatchRun {
 public:
  BatchRun(std::span<const Op> ops, std::span<OpResult> results, std::function<void()> done)
      : ops_(ops), results_(results), done_(std::move(done)) {}

  void AddParts(int n) { parts_.fetch_add(n, std::memory_order_relaxed); }
  // acq_rel: the part that runs `done` sees every other part's results.
  void PartDone() {
    if (parts_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::function<void()> done = std::move(done_);
    delete this;
    done();
  }
  const Op& op(size_t i) const { return ops_[i]; }
  OpResult* result(size_t i) { return &results_[i]; }

 private:
  const std::span<const Op> ops_;
  const std::span<OpResult> results_;
  std::function<void()> done_;
  std::atomic<int> parts_{1};
};

// The operations of the batch one owner gets in one forwarded call; deletes itself once
// answered. The call is a Batch, or a MultiGet when every operation is a Get with the same
// read preference (the common case, and the most compact encoding: keys only, about a
// sixth less CPU per forwarded read than a Batch of Gets on both nodes).
struct ForwardGroup {
  const ClusterMember* owner = nullptr;  // Points into the topology routed on.
  size_t bytes = 0;
  std::chrono::milliseconds extra_deadline{0};
  std::vector<size_t> index;  // Operation j of the request is the batch's index[j].
  bool gets_only = true;      // Every operation is a kGet with read preference any_owner.
  bool any_owner = false;
  // The call.
  BatchRun* run = nullptr;
  ForwardTarget target;
  bool our_deadline = false;
  grpc::ClientContext context;
  v1::BatchRequest request;
  v1::BatchResponse response;
  v1::MultiGetRequest get_request;  // gets_only: sent instead of `request`.
  v1::MultiGetResponse get_response;

  void Add(const Op& op, size_t i, size_t op_bytes) {
    if (index.empty()) any_owner = op.any_owner;
    gets_only = gets_only && op.kind == OpKind::kGet && op.any_owner == any_owner;
    index.push_back(i);
    bytes += op_bytes;
    extra_deadline =
        std::max(extra_deadline, WriteConcernExtra(op.write_concern, op.write_concern_timeout_ms));
  }

  // Encodes the operations (once, straight into the request) and starts the call.
  void Send(const CacheService* service) {
    v1::Cache::Stub* stub = service->peers()->CacheStub(target.address);
    if (!gets_only) {
      request.mutable_ops()->Reserve(static_cast<int>(index.size()));
      for (const size_t i : index) EncodeOp(run->op(i), i, request.add_ops());
      stub->async()->Batch(&context, &request, &response,
                           [this, service](grpc::Status s) { Answered(service, std::move(s)); });
      return;
    }
    get_request.set_read_preference(any_owner ? v1::READ_PREFERENCE_ANY_OWNER
                                              : v1::READ_PREFERENCE_PRIMARY);
    get_request.mutable_keys()->Reserve(static_cast<int>(index.size()));
    for (const size_t i : index) {
      const std::string_view key = run->op(i).key.bytes;
      get_request.add_keys()->assign(key.data(), key.size());
    }
    stub->async()->MultiGet(&context, &get_request, &get_response,
                            [this, service](grpc::Status s) { Answered(service, std::move(s)); });
  }

  // A MultiGet result into its slot.
  static void Take(v1::GetResult* in, OpResult* out) {
    if (in->has_status() && in->status().code() != 0) {
      out->status = Status(static_cast<StatusCode>(in->status().code()), in->status().message());
      return;
    }
    if (out->value != nullptr) out->value->swap(*in->mutable_value());
    out->version = in->version();
    out->expires_at_ms = in->expires_at_ms();
    out->possibly_stale = in->possibly_stale();
  }

  // On a gRPC thread: the owner's results back into their slots (the owner answers one per
  // operation, in order), or the relayed error into each.
  void Answered(const CacheService* service, grpc::Status s) {
    const size_t count = index.size();
    const int answered = gets_only ? get_response.results_size() : response.results_size();
    if (s.ok() && static_cast<size_t>(answered) != count) {
      s = grpc::Status(grpc::StatusCode::INTERNAL, "node " + target.id + " answered " +
                                                       std::to_string(answered) + " results for " +
                                                       std::to_string(count) + " operations");
    }
    if (s.ok() && gets_only) {
      for (size_t j = 0; j < count; ++j) {
        Take(get_response.mutable_results(static_cast<int>(j)), run->result(index[j]));
      }
    } else if (s.ok()) {
      for (size_t j = 0; j < count; ++j) {
        DecodeResult(run->op(index[j]), response.mutable_results(static_cast<int>(j)),
                     run->result(index[j]));
      }
    } else {
      const grpc::Status relayed = service->RelayStatus(s, target, our_deadline);
      const Status error(static_cast<StatusCode>(relayed.error_code()), relayed.error_message());
      for (const size_t i : index) run->result(i)->status = error;
    }
    BatchRun* batch = run;
    delete this;
    batch->PartDone();
  }
};

}  // namespace

void RunBatch(const CacheService* service, const Topology* topology, const Router::Hints& hints,
              std::span<const Op> ops, std::span<OpResult> results, std::span<const bool> skip,
              std::chrono::system_clock::time_point deadline, std::function<void()> done) {
  auto* run = new BatchRun(ops, results, std::move(done));
  const Router& router = service->router();
  const size_t max_ops = service->MaxForwardOps();
  const size_t max_bytes = service->MaxForwardBytes();
  std::vector<size_t> local;
  local.reserve(ops.size());
  std::vector<std::unique_ptr<ForwardGroup>> groups;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!skip.empty() && skip[i]) continue;
    const Op& op = ops[i];
    Router::Decision d = router.Route(topology, hints, op);
    switch (d.where) {
      case Router::Where::kError:
        results[i].status = std::move(d.error);
        break;
      case Router::Where::kHere:
        results[i].possibly_stale = d.possibly_stale;
        local.push_back(i);
        break;
      case Router::Where::kRemote: {
        const size_t bytes = CacheService::ForwardBytes(op);
        // The owner's last group, or a new one when it is full (the owner's own limits).
        auto it = std::find_if(groups.rbegin(), groups.rend(),
                               [&](const auto& g) { return g->owner == d.owner; });
        if (it == groups.rend() || (*it)->index.size() >= max_ops ||
            (!(*it)->index.empty() && (*it)->bytes + bytes > max_bytes)) {
          groups.push_back(std::make_unique<ForwardGroup>());
          groups.back()->owner = d.owner;
          it = groups.rbegin();
        }
        (*it)->Add(op, i, bytes);
        break;
      }
    }
  }

  // Forwards first, so that the owners work while this thread runs the local part.
  run->AddParts(static_cast<int>(groups.size()));
  for (std::unique_ptr<ForwardGroup>& owned : groups) {
    ForwardGroup* g = owned.release();
    g->run = run;
    g->target = {g->owner->id, g->owner->address};
    g->context.set_deadline(
        service->ForwardDeadline(deadline, g->extra_deadline, &g->our_deadline));
    service->AddForwardMetadata(&g->context);
    g->Send(service);
  }

  Node* node = service->node();
  if (local.size() > 1) {
    std::vector<std::string_view> keys;
    keys.reserve(local.size());
    for (const size_t i : local) keys.push_back(ops[i].key.bytes);
    node->Prefetch(keys);
  }
  for (const size_t i : local) {
    const Op& op = ops[i];
    OpResult* result = run->result(i);
    if (op.write_concern == 0 || ShapeOf(op.kind) != OpShape::kPointWrite) {
      ExecuteLocal(node, op, result, nullptr);
      continue;
    }
    // Write concern is per operation: each write waits for its own replicas (a merged
    // ticket would let one replica's ack stand for a key it does not hold).
    WriteTicket ticket;
    ExecuteLocal(node, op, result, &ticket);
    if (!result->status.ok()) continue;
    run->AddParts(1);
    node->WaitForReplicas(ticket, op.write_concern,
                          WriteConcernTimeout(op.write_concern_timeout_ms),
                          [run, result](uint32_t acked) {
                            result->replicas_acked = acked;
                            run->PartDone();
                          });
  }
  run->PartDone();
}

}  // namespace ringcache::internal

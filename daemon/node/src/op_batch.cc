#include "op_batch.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache_service.h"
#include "engine.h"
#include "forward_streams.h"
#include "proto_ops.h"
#include "response_budget.h"
#include "ringcache/v1/cache.pb.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

// The bytes a result adds to a response (ResponseBudget adds the per-result framing).
size_t ResultBytes(const OpResult& r) {
  size_t bytes = r.value != nullptr ? r.value->size() : 0;
  return bytes + (r.typed != nullptr ? r.typed->ApproxBytes() : 0);
}

// One batch in flight: counts its parts (the caller's own, one per forwarded exchange, one per
// write-concern wait) and runs `done`, then deletes itself, when the last one ends.
class BatchRun {
 public:
  BatchRun(std::span<const Op> ops, std::span<OpResult> results, uint64_t max_response_bytes,
           std::function<void(const Status&)> done)
      : ops_(ops), results_(results), budget_(max_response_bytes), done_(std::move(done)) {}

  void AddParts(int n) { parts_.fetch_add(n, std::memory_order_relaxed); }
  // acq_rel: the part that runs `done` sees every other part's results.
  void PartDone() {
    if (parts_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::function<void(const Status&)> done = std::move(done_);
    const Status outcome = budget_.exceeded() ? budget_.Error() : Status::Ok();
    delete this;
    done(outcome);
  }
  const Op& op(size_t i) const { return ops_[i]; }
  OpResult* result(size_t i) { return &results_[i]; }
  ResponseBudget* budget() { return &budget_; }

 private:
  const std::span<const Op> ops_;
  const std::span<OpResult> results_;
  ResponseBudget budget_;
  std::function<void(const Status&)> done_;
  std::atomic<int> parts_{1};
};

// The operations of the batch one owner gets in one forwarded exchange (ForwardStreams).
struct ForwardGroup {
  const ClusterMember* owner = nullptr;  // Points into the topology routed on.
  size_t bytes = 0;
  std::chrono::milliseconds extra_deadline{0};
  std::vector<size_t> index;  // Operation j of the exchange is the batch's index[j].

  void Add(const Op& op, size_t i, size_t op_bytes) {
    index.push_back(i);
    bytes += op_bytes;
    extra_deadline =
        std::max(extra_deadline, WriteConcernExtra(op.write_concern, op.write_concern_timeout_ms));
  }

  // Encodes the operations (once, straight into the request) and sends them; each result
  // goes into its slot, and the run learns that this part is done.
  void Send(const CacheService* service, uint64_t epoch, BatchRun* run,
            std::chrono::system_clock::time_point deadline) {
    v1::PipelineRequest request;
    request.mutable_ops()->Reserve(static_cast<int>(index.size()));
    for (size_t j = 0; j < index.size(); ++j) EncodeOp(run->op(index[j]), j, request.add_ops());
    // The owner reads no more values than the caller may still receive (at least 1 byte:
    // 0 would mean no limit).
    const ForwardStreams::Limit limit{
        .max_response_bytes = std::max<uint64_t>(run->budget()->remaining(), 1), .defer = false};
    bool ours = false;
    const auto forward_deadline = service->ForwardDeadline(deadline, extra_deadline, &ours);
    service->forward_streams()->Send(
        ForwardTarget{owner->id, owner->peer_address()}, epoch, std::move(request), bytes,
        forward_deadline, ours,
        [run, index = std::move(index)](v1::PipelineResponse* results) {
          // One result per operation, in order (ForwardStreams' promise).
          for (size_t j = 0; j < index.size(); ++j) {
            DecodeResult(run->op(index[j]), results->mutable_results(static_cast<int>(j)),
                         run->result(index[j]));
          }
          run->PartDone();
        },
        run->budget(), limit);
  }
};

}  // namespace

void RunBatch(const CacheService* service, const Topology* topology, const Router::Hints& hints,
              std::span<const Op> ops, std::span<OpResult> results, std::span<const bool> skip,
              std::chrono::system_clock::time_point deadline,
              std::function<void(const Status&)> done) {
  auto* run = new BatchRun(ops, results, service->MaxResponseBytes(), std::move(done));
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
  for (std::unique_ptr<ForwardGroup>& g : groups)
    g->Send(service, topology->epoch(), run, deadline);

  Node* node = service->node();
  if (local.size() > 1) {
    std::vector<HashedKey> keys;  // Their hashes, not the keys again.
    keys.reserve(local.size());
    for (const size_t i : local) keys.push_back(ops[i].key);
    node->Prefetch(std::span<const HashedKey>(keys));
  }
  ResponseBudget* budget = run->budget();
  for (const size_t i : local) {
    const Op& op = ops[i];
    OpResult* result = run->result(i);
    if (budget->exceeded() && ReturnsBytes(op)) {
      result->status = budget->Error();
      continue;
    }
    if (op.write_concern == 0 || ShapeOf(op.kind) != OpShape::kPointWrite) {
      ExecuteLocal(node, op, result, nullptr);
      if (!budget->Take(ResultBytes(*result)) && ShapeOf(op.kind) == OpShape::kPointRead) {
        // The read that crossed the limit is answered with it too (its value dropped), as
        // a forwarded one is.
        result->status = budget->Error();
        if (result->value != nullptr) result->value->clear();
        result->typed.reset();
      }
      continue;
    }
    // Write concern is per operation: each write waits for its own replicas (a merged
    // ticket would let one replica's ack stand for a key it does not hold).
    WriteTicket ticket;
    ExecuteLocal(node, op, result, &ticket);
    budget->Take(ResultBytes(*result));
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

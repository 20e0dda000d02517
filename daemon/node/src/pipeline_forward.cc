#include "pipeline_forward.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "peer_pool.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::internal {

void PipelineForward::Start(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                            v1::PipelineRequest request,
                            std::chrono::system_clock::time_point caller_deadline,
                            std::chrono::milliseconds extra_deadline) {
  auto* forward = new PipelineForward(service, sink, std::move(target), std::move(request));
  forward->context_.set_deadline(
      service->ForwardDeadline(caller_deadline, extra_deadline, &forward->our_deadline_));
  service->AddForwardMetadata(&forward->context_);
  service->peers()
      ->CacheStub(forward->target_.address)
      ->async()
      ->Pipeline(&forward->context_, forward);
  forward->StartWriteLast(&forward->request_, grpc::WriteOptions());
  forward->StartRead(&forward->response_);
  forward->StartCall();
}

PipelineForward::PipelineForward(const CacheService* service, PipelineSink* sink,
                                 ForwardTarget target, v1::PipelineRequest request)
    : service_(service),
      sink_(sink),
      target_(std::move(target)),
      ops_(static_cast<size_t>(request.ops_size())),
      request_(std::move(request)) {
  sink_->RefSink();
  answered_.reserve(ops_);
}

void PipelineForward::OnReadDone(bool ok) {
  if (!ok) return;  // The stream is over; OnDone follows.
  v1::PipelineResponse results;
  results.Swap(&response_);
  StartRead(&response_);
  // An owner never sends more results than operations; if one did, the extras must not
  // count against the stream's other pending operations.
  const size_t room = ops_ - std::min(ops_, answered_.size());
  const size_t count = std::min(room, static_cast<size_t>(results.results_size()));
  for (const v1::OperationResult& result : results.results()) answered_.push_back(result.id());
  if (count > 0 || results.results_size() > 0) {
    sink_->Deliver(&results, results.ByteSizeLong(), count);
  }
}

void PipelineForward::OnDone(const grpc::Status& status) {
  if (answered_.size() < ops_) {
    // Every operation without a result gets the call's error. Ids may repeat: match them as
    // multisets.
    grpc::Status error =
        status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL,
                                   "node " + target_.id + " ended a forwarded Pipeline call " +
                                       "without answering every operation")
                    : service_->RelayStatus(status, target_, our_deadline_);
    std::unordered_map<uint64_t, size_t> answered;
    for (const uint64_t id : answered_) ++answered[id];
    google::protobuf::RepeatedPtrField<v1::Operation> unanswered;
    for (v1::Operation& op : *request_.mutable_ops()) {
      auto it = answered.find(op.id());
      if (it != answered.end() && it->second > 0) {
        --it->second;
        continue;
      }
      unanswered.Add()->Swap(&op);
    }
    v1::PipelineResponse failed;
    const size_t bytes = CacheService::FailedResults(error, unanswered, &failed);
    sink_->Deliver(&failed, bytes, ops_ - std::min(ops_, answered_.size()));
  }
  PipelineSink* sink = sink_;
  const std::string owner_id = target_.id;
  delete this;
  sink->ForwardDone(owner_id);
  sink->UnrefSink();
}

}  // namespace ringcache::internal

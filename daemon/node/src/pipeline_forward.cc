#include "pipeline_forward.h"

#include <string>
#include <utility>

#include "peer_pool.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::internal {

void PipelineForward::Start(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                            v1::PipelineRequest request,
                            std::chrono::system_clock::time_point caller_deadline,
                            std::chrono::milliseconds extra_deadline) {
  auto* forward = new PipelineForward(service, sink, std::move(target), &request);
  forward->context_.set_deadline(
      service->ForwardDeadline(caller_deadline, extra_deadline, &forward->our_deadline_));
  service->AddForwardMetadata(&forward->context_);
  service->peers()
      ->CacheStub(forward->target_.address)
      ->async()
      ->Batch(&forward->context_, &forward->request_, &forward->response_,
              [forward](grpc::Status status) { forward->Done(status); });
}

PipelineForward::PipelineForward(const CacheService* service, PipelineSink* sink,
                                 ForwardTarget target, v1::PipelineRequest* request)
    : service_(service), sink_(sink), target_(std::move(target)) {
  request_.mutable_ops()->Swap(request->mutable_ops());
  sink_->RefSink();
}

void PipelineForward::Done(const grpc::Status& status) {
  const size_t ops = static_cast<size_t>(request_.ops_size());
  v1::PipelineResponse results;
  size_t bytes = 0;
  if (status.ok() && static_cast<size_t>(response_.results_size()) == ops) {
    results.mutable_results()->Swap(response_.mutable_results());
    bytes = results.ByteSizeLong();
  } else {
    // Every operation gets the call's error: the owner answers all of a Batch or none.
    const grpc::Status error =
        status.ok()
            ? grpc::Status(
                  grpc::StatusCode::INTERNAL,
                  "node " + target_.id + " answered " + std::to_string(response_.results_size()) +
                      " results for a forwarded batch of " + std::to_string(ops) + " operations")
            : service_->RelayStatus(status, target_, our_deadline_);
    bytes = CacheService::FailedResults(error, request_.ops(), &results);
  }
  sink_->Deliver(&results, bytes, ops);
  PipelineSink* sink = sink_;
  const std::string owner_id = target_.id;
  delete this;
  sink->ForwardDone(owner_id);
  sink->UnrefSink();
}

}  // namespace ringcache::internal

// PipelineForward: the operations of one stretch of a Pipeline stream that another node
// owns, sent there as one unary Batch call with ringcache-forwarded-by set (the same call
// RunBatch forwards with, op_batch.h). The owner answers every operation in order, with the
// caller's ids, and the results are relayed to the stream unchanged; if the call fails,
// every operation gets the call's error (RelayStatus: UNAVAILABLE naming the owner for a
// transport failure or the forward timeout).
//
// Why calls and not a long-lived stream per peer: every forward then has its own deadline
// (min(caller's, forward_timeout)), so a stuck owner costs those operations an error after
// the forward timeout instead of stalling the stream, and a failure affects exactly the
// operations of that call. The cost is a call per forward; PipelineReactor keeps it down
// by allowing few forwards in flight per owner and sending everything that accumulated
// meanwhile in the next one (docs/design/routing.md has the measurements). A unary call is
// the cheapest call gRPC has: a Pipeline (bidirectional) call per forward cost about a
// third more CPU per operation.
//
// Threads: gRPC runs the completion on one of its threads; no state is shared with another
// thread, so there is no lock. Deletes itself when done.
#pragma once

#include <grpcpp/client_context.h>

#include <chrono>
#include <cstdint>

#include "cache_service.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

class PipelineForward final {
 public:
  // Sends `request` to `target` and returns at once. `sink` must already count
  // request.ops_size() pending operations (AddPending); it receives exactly that many
  // results through Deliver, then ForwardDone(target.id), and is kept alive (RefSink)
  // until then. `caller_deadline` is the stream's deadline; `extra_deadline` the longest
  // write-concern wait among the ops.
  static void Start(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                    v1::PipelineRequest request,
                    std::chrono::system_clock::time_point caller_deadline,
                    std::chrono::milliseconds extra_deadline);

 private:
  PipelineForward(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                  v1::PipelineRequest* request);
  ~PipelineForward() = default;

  // On a gRPC thread: delivers the results (or the call's error for every operation), then
  // tells the sink and deletes this.
  void Done(const grpc::Status& status);

  // Constant after construction.
  const CacheService* const service_;  // Not owned.
  PipelineSink* const sink_;           // Referenced (RefSink) until Done.
  const ForwardTarget target_;

  bool our_deadline_ = false;
  grpc::ClientContext context_;
  v1::BatchRequest request_;
  v1::BatchResponse response_;
};

}  // namespace ringcache::internal

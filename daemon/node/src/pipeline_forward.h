// PipelineForward: the operations of one stretch of a Pipeline stream that another node
// owns, sent there as one Pipeline call (one request message, then half-close) with
// ringcache-forwarded-by set. The owner's results are relayed to the stream as they
// arrive, unchanged (they carry the caller's ids); when the call ends, every operation the
// owner did not answer gets the call's error (RelayStatus: UNAVAILABLE naming the owner for
// a transport failure or the forward timeout).
//
// Why calls and not a long-lived stream per peer: every forward then has its own deadline
// (min(caller's, forward_timeout)), so a stuck owner costs those operations an error after
// the forward timeout instead of stalling the stream, and a failure affects exactly the
// operations of that call. The cost is a call setup per forward; PipelineReactor keeps it
// down by allowing few forwards in flight per owner and sending everything that
// accumulated meanwhile in the next one (docs/design/routing.md has the measurements).
//
// Threads: gRPC runs OnReadDone (one at a time) and then OnDone on its threads; no state
// is shared with another thread, so there is no lock. Deletes itself in OnDone.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "cache_service.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

class PipelineForward final
    : public grpc::ClientBidiReactor<v1::PipelineRequest, v1::PipelineResponse> {
 public:
  // Sends `request` to `target` and returns at once. `sink` must already count
  // request.ops_size() pending operations (AddPending); it receives exactly that many
  // results through Deliver, then ForwardDone(target.id), and is kept alive (RefSink)
  // until then. `caller_deadline` is
  // the stream's deadline; `extra_deadline` the longest write-concern wait among the ops.
  static void Start(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                    v1::PipelineRequest request,
                    std::chrono::system_clock::time_point caller_deadline,
                    std::chrono::milliseconds extra_deadline);

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  PipelineForward(const CacheService* service, PipelineSink* sink, ForwardTarget target,
                  v1::PipelineRequest request);
  ~PipelineForward() override = default;

  // Constant after construction.
  const CacheService* const service_;  // Not owned.
  PipelineSink* const sink_;           // Referenced (RefSink) until OnDone.
  const ForwardTarget target_;
  const size_t ops_;  // Operations sent.

  // Owned by the reactions (sequential).
  bool our_deadline_ = false;
  grpc::ClientContext context_;
  v1::PipelineRequest request_;
  v1::PipelineResponse response_;   // The Read in flight.
  std::vector<uint64_t> answered_;  // Ids of the results relayed so far.
};

}  // namespace ringcache::internal

// PipelineCall: the state machine of one ringcache.v1.Cache/Pipeline stream.
//
// Invariants:
//  - at most one Read and one Write (or the Finish) outstanding, as gRPC requires;
//  - the operations of a request message are executed as soon as it is read, in order,
//    on the stream's queue thread; their results are appended to a queue of response
//    messages (each closed at kTargetMessageBytes);
//  - while a Write is in flight, new results wait in that queue and go out together in
//    the next Write (coalescing: one response message per Write, not per request);
//  - flow control: while the queued results exceed kMaxQueuedBytes the stream stops
//    executing and stops reading (the client's sends then block: backpressure), so a
//    stream holds at most one request message plus about kMaxQueuedBytes of results;
//  - the stream ends (Finish) once no more operations will come — the client half-closed,
//    the node is draining, a write failed or a message broke a limit — and every result
//    already computed has been written;
//  - draining (node shutdown): reading stops; the operations already read are executed,
//    except that if the stream is backlogged (results over kMaxQueuedBytes) the rest are
//    answered UNAVAILABLE without running; queued results are flushed, and the stream ends
//    with UNAVAILABLE. So an operation without a result never ran (unless the connection
//    itself broke).
//
// States (flags below): accepted -> streaming -> finishing -> done (deleted when no tag is
// outstanding). A Read may still be outstanding after Finish; it then completes with
// ok=false and the object is deleted after it.
//
// Thread safety: not thread-safe; every method runs on the thread of the stream's queue.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>

#include <chrono>
#include <cstddef>
#include <deque>

#include "async_server.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

class PipelineCall {
 public:
  // Results are cut into response messages of about this size.
  static constexpr size_t kTargetMessageBytes = size_t{1} << 20;
  // Reading and executing pause while more than this many result bytes are queued.
  static constexpr size_t kMaxQueuedBytes = size_t{8} << 20;

  // Requests the next Pipeline call on `context`'s queue. The object deletes itself.
  static void Request(const ServerEnv* env, CqContext* context);

  // Called on `context`'s thread by its drain alarm: every open stream of the queue stops
  // reading, flushes its results and ends with UNAVAILABLE.
  static void DrainAll(CqContext* context);

  PipelineCall(const PipelineCall&) = delete;
  PipelineCall& operator=(const PipelineCall&) = delete;

 private:
  // A tag that forwards an event to a member function.
  template <void (PipelineCall::*kFn)(bool)>
  class Tag final : public CqTag {
   public:
    explicit Tag(PipelineCall* call) : call_(call) {}
    void Proceed(bool ok) override { (call_->*kFn)(ok); }

   private:
    PipelineCall* const call_;
  };

  struct QueuedResponse {
    v1::PipelineResponse message;
    size_t bytes = 0;
  };

  PipelineCall(const ServerEnv* env, CqContext* context);
  ~PipelineCall();

  void BeginDrain();
  void OnAccepted(bool ok);
  void OnRead(bool ok);
  void OnWritten(bool ok);
  void OnFinished(bool ok);

  // Executes, writes, reads or finishes, whichever the state allows.
  void Pump();
  // Ends the stream with `status` once everything queued is written (first status wins).
  void FailStream(grpc::Status status);
  // Draining and backlogged: answers the current request's unexecuted operations with
  // UNAVAILABLE.
  void RejectRemainingOps();
  void DeleteIfDone();
  void Link();
  void Unlink();

  // Constant after construction.
  const ServerEnv* const env_;  // Not owned.
  CqContext* const context_;    // Not owned.

  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<v1::PipelineResponse, v1::PipelineRequest> stream_;
  Tag<&PipelineCall::OnAccepted> accept_tag_{this};
  Tag<&PipelineCall::OnRead> read_tag_{this};
  Tag<&PipelineCall::OnWritten> write_tag_{this};
  Tag<&PipelineCall::OnFinished> finish_tag_{this};
  std::chrono::steady_clock::time_point started_;

  // The request being executed (valid while has_request_) and the next op to run.
  v1::PipelineRequest request_;
  bool has_request_ = false;
  int next_op_ = 0;

  // Results not yet handed to a Write, and their estimated size.
  std::deque<QueuedResponse> queue_;
  size_t queued_bytes_ = 0;
  // The message of the Write in flight.
  v1::PipelineResponse writing_;

  bool accepted_ = false;
  bool read_in_flight_ = false;
  bool write_in_flight_ = false;
  bool reads_done_ = false;  // The client half-closed, or the call is gone.
  bool draining_ = false;    // The node is shutting down.
  bool broken_ = false;      // A Write failed: the call is gone.
  bool has_error_ = false;   // error_ is the status to end with.
  bool finish_sent_ = false;
  bool finished_ = false;  // The Finish completed.
  grpc::Status error_;

  // Intrusive list of the queue's open streams.
  PipelineCall* prev_ = nullptr;
  PipelineCall* next_ = nullptr;
};

}  // namespace ringcache::internal

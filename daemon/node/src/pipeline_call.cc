#include "pipeline_call.h"

#include <utility>

namespace ringcache::internal {

void PipelineCall::Request(const ServerEnv* env, CqContext* context) {
  auto* call = new PipelineCall(env, context);
  env->service->RequestPipeline(&call->ctx_, &call->stream_, context->cq.get(), context->cq.get(),
                                &call->accept_tag_);
}

void PipelineCall::DrainAll(CqContext* context) {
  context->draining = true;
  for (PipelineCall* call = context->streams; call != nullptr;) {
    PipelineCall* next = call->next_;  // BeginDrain never deletes `call`, but be safe.
    call->BeginDrain();
    call = next;
  }
}

PipelineCall::PipelineCall(const ServerEnv* env, CqContext* context)
    : env_(env), context_(context), stream_(&ctx_) {}

PipelineCall::~PipelineCall() {
  if (accepted_) {
    Unlink();
    env_->metrics->pipeline_streams().Decrement();
    context_->CallEnded();
  }
}

void PipelineCall::Link() {
  next_ = context_->streams;
  if (next_ != nullptr) next_->prev_ = this;
  context_->streams = this;
}

void PipelineCall::Unlink() {
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    context_->streams = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
}

void PipelineCall::OnAccepted(bool ok) {
  if (!ok) {  // The server is shutting down; this request never became a call.
    delete this;
    return;
  }
  Request(env_, context_);  // Keep one Pipeline call requested on this queue.
  accepted_ = true;
  context_->CallStarted();
  started_ = std::chrono::steady_clock::now();
  Link();
  env_->metrics->pipeline_streams().Increment();
  if (context_->draining) draining_ = true;
  if (ctx_.deadline() <= std::chrono::system_clock::now()) {
    FailStream(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"));
  }
  Pump();
}

void PipelineCall::BeginDrain() {
  draining_ = true;
  Pump();
}

void PipelineCall::OnRead(bool ok) {
  read_in_flight_ = false;
  if (!ok) {
    reads_done_ = true;  // Half-close by the client, or the call is over.
  } else if (!finish_sent_) {
    const int ops = request_.ops_size();
    if (grpc::Status s = env_->handlers->CheckPipelineMessage(ops); !s.ok()) {
      FailStream(std::move(s));
    } else if (ops > 0) {
      has_request_ = true;
      next_op_ = 0;
      env_->metrics->AddPipelineOps(static_cast<uint64_t>(ops));
    }
  }
  // else: a message that raced with our Finish; the client learns from the status that
  // operations without a result may or may not have run.
  Pump();
  DeleteIfDone();
}

void PipelineCall::OnWritten(bool ok) {
  write_in_flight_ = false;
  if (!ok) broken_ = true;  // The call is gone (cancelled, deadline, connection lost).
  Pump();
  DeleteIfDone();
}

void PipelineCall::OnFinished(bool /*ok*/) {
  finished_ = true;
  env_->metrics->Record(Rpc::kPipeline, error_.error_code(),
                        std::chrono::steady_clock::now() - started_);
  DeleteIfDone();
}

void PipelineCall::FailStream(grpc::Status status) {
  if (has_error_) return;
  has_error_ = true;
  error_ = std::move(status);
}

void PipelineCall::Pump() {
  if (finish_sent_) return;

  // 1. Execute the current request's operations while the queue is under its bound.
  while (has_request_ && !broken_ && queued_bytes_ <= kMaxQueuedBytes) {
    if (next_op_ == request_.ops_size()) {
      has_request_ = false;
      break;
    }
    if (queue_.empty() || queue_.back().bytes >= kTargetMessageBytes) queue_.emplace_back();
    QueuedResponse& tail = queue_.back();
    const size_t bytes =
        env_->handlers->Execute(request_.ops(next_op_++), tail.message.add_results());
    tail.bytes += bytes;
    queued_bytes_ += bytes;
  }
  if (has_request_ && next_op_ == request_.ops_size()) has_request_ = false;
  // Draining and backlogged (a slow reader): the operations not yet executed are answered
  // UNAVAILABLE without running rather than waiting for room, so that shutdown is quick
  // and every operation still either has a result or did not run.
  if (draining_ && has_request_ && !broken_) RejectRemainingOps();
  if (broken_) {  // Nothing can be delivered any more.
    has_request_ = false;
    queue_.clear();
    queued_bytes_ = 0;
  }

  // 2. Write: everything queued so far leaves in the next message (one Write at a time).
  if (!write_in_flight_ && !queue_.empty()) {
    writing_ = std::move(queue_.front().message);
    queued_bytes_ -= queue_.front().bytes;
    queue_.pop_front();
    write_in_flight_ = true;
    stream_.Write(writing_, &write_tag_);
  }

  // 3. Read the next message once the current one is done and the queue has room.
  const bool input_over = reads_done_ || draining_ || broken_ || has_error_;
  if (!input_over && !has_request_ && !read_in_flight_ && queued_bytes_ <= kMaxQueuedBytes) {
    read_in_flight_ = true;
    stream_.Read(&request_, &read_tag_);
  }

  // 4. Finish once no operation will come and every result has been written. A Read
  // may still be outstanding (draining, errors): gRPC allows ending the call early, and
  // that Read then completes with ok=false.
  if (input_over && !has_request_ && queue_.empty() && !write_in_flight_) {
    if (!has_error_ && draining_ && !reads_done_) {
      error_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
    }
    // error_ is OK unless set above or by FailStream.
    finish_sent_ = true;
    stream_.Finish(error_, &finish_tag_);
  }
}

void PipelineCall::RejectRemainingOps() {
  static constexpr size_t kRejectedResultBytes = 48;
  for (; next_op_ < request_.ops_size(); ++next_op_) {
    if (queue_.empty() || queue_.back().bytes >= kTargetMessageBytes) queue_.emplace_back();
    QueuedResponse& tail = queue_.back();
    v1::OperationResult* result = tail.message.add_results();
    result->set_id(request_.ops(next_op_).id());
    result->mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
    result->mutable_status()->set_message("node is shutting down; operation not executed");
    tail.bytes += kRejectedResultBytes;
    queued_bytes_ += kRejectedResultBytes;
  }
  has_request_ = false;
}

void PipelineCall::DeleteIfDone() {
  if (finished_ && !read_in_flight_ && !write_in_flight_) delete this;
}

}  // namespace ringcache::internal

#include "pipeline_reactor.h"

#include <utility>
#include <vector>

#include "callback_server.h"

namespace ringcache::internal {
namespace {

// The estimated size of a result answered UNAVAILABLE without running.
constexpr size_t kRejectedResultBytes = 48;

}  // namespace

bool PipelineStreams::Register(PipelineReactor* stream) {
  std::lock_guard lock(mu_);
  streams_.insert(stream);
  return draining_;
}

void PipelineStreams::Unregister(PipelineReactor* stream) {
  std::lock_guard lock(mu_);
  streams_.erase(stream);
}

void PipelineStreams::DrainAll() {
  std::vector<PipelineReactor*> open;
  {
    std::lock_guard lock(mu_);
    draining_ = true;
    open.reserve(streams_.size());
    for (PipelineReactor* stream : streams_) {
      stream->Ref();  // Keeps it alive after mu_ is released, even past its OnDone.
      open.push_back(stream);
    }
  }
  // Not under mu_: BeginDrain may run the stream's reactions inline, OnDone included,
  // and OnDone unregisters.
  for (PipelineReactor* stream : open) {
    stream->BeginDrain();
    stream->Unref();
  }
}

PipelineReactor::PipelineReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx)
    : env_(env), started_(std::chrono::steady_clock::now()) {
  env_->CallStarted();
  env_->metrics->pipeline_streams().Increment();
  const bool expired = ctx->deadline() <= std::chrono::system_clock::now();
  const bool draining = env_->streams.Register(this);
  {
    std::lock_guard lock(mu_);
    if (draining) draining_ = true;
    if (expired) {
      FailStreamLocked(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"));
    }
  }
  Pump();
}

void PipelineReactor::BeginDrain() {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  Pump();
}

void PipelineReactor::OnReadDone(bool ok) {
  {
    std::lock_guard lock(mu_);
    read_in_flight_ = false;
    if (!ok) {
      reads_done_ = true;  // Half-close by the client, or the call is over.
    } else if (!finish_sent_ && !has_error_) {
      const int ops = read_buf_.ops_size();
      if (grpc::Status s = env_->handlers->CheckPipelineMessage(ops); !s.ok()) {
        FailStreamLocked(std::move(s));
      } else if (ops > 0) {
        // A Read is started only when no request is pending, so request_ is free.
        request_.Swap(&read_buf_);
        has_request_ = true;
        next_op_ = 0;
        env_->metrics->AddPipelineOps(static_cast<uint64_t>(ops));
      }
    }
    // else: a message that raced with our Finish or an error; the client learns from the
    // status that operations without a result may or may not have run.
  }
  Pump();
}

void PipelineReactor::OnWriteDone(bool ok) {
  {
    std::lock_guard lock(mu_);
    write_in_flight_ = false;
    if (!ok) broken_ = true;  // The call is gone (cancelled, deadline, connection lost).
  }
  Pump();
}

void PipelineReactor::OnDone() {
  grpc::StatusCode code;
  {
    std::lock_guard lock(mu_);
    code = error_.error_code();
  }
  env_->metrics->Record(Rpc::kPipeline, code, std::chrono::steady_clock::now() - started_);
  env_->streams.Unregister(this);
  env_->metrics->pipeline_streams().Decrement();
  env_->CallEnded();  // The last use of env_.
  Unref();
}

void PipelineReactor::FailStreamLocked(grpc::Status status) {
  if (has_error_) return;
  has_error_ = true;
  error_ = std::move(status);
}

void PipelineReactor::Pump() {
  for (;;) {
    bool execute = false;
    bool reject = false;
    bool start_read = false;
    bool start_write = false;
    bool finish = false;
    grpc::Status finish_status;
    {
      std::lock_guard lock(mu_);
      if (finish_sent_) return;
      if (broken_ && !executing_) {  // Nothing can be delivered any more.
        has_request_ = false;
        queue_.clear();
        queued_bytes_ = 0;
      }
      // 1. Execute the current request while the queue is under its bound. Draining and
      // backlogged (a slow reader): the operations not yet executed are answered
      // UNAVAILABLE without running rather than waiting for room, so that shutdown is
      // quick and every operation still either has a result or did not run.
      if (has_request_ && !executing_ && !broken_) {
        if (queued_bytes_ <= kMaxQueuedBytes) {
          execute = true;
        } else if (draining_) {
          reject = true;
        }
        executing_ = execute || reject;
      }
      // 2. Write: everything queued so far leaves in the next message (one at a time).
      if (!write_in_flight_ && !queue_.empty()) {
        writing_ = std::move(queue_.front().message);
        queued_bytes_ -= queue_.front().bytes;
        queue_.pop_front();
        write_in_flight_ = true;
        start_write = true;
      }
      // 3. Read the next message once the current one is done and the queue has room.
      const bool input_over = reads_done_ || draining_ || broken_ || has_error_;
      if (!input_over && !has_request_ && !read_in_flight_ && queued_bytes_ <= kMaxQueuedBytes) {
        read_in_flight_ = true;
        start_read = true;
      }
      // 4. Finish once no operation will come and every result has been written. A Read
      // may still be outstanding (draining, errors): gRPC allows ending the call early,
      // and that Read then completes with ok=false.
      if (input_over && !has_request_ && !executing_ && queue_.empty() && !write_in_flight_) {
        if (!has_error_ && draining_ && !reads_done_) {
          error_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
        }
        // error_ is OK unless set above or by FailStreamLocked.
        finish_sent_ = true;
        finish = true;
        finish_status = error_;
      }
    }
    // gRPC calls without mu_: outside a reaction they may run reactions inline.
    if (finish) {
      Finish(std::move(finish_status));
      return;  // OnDone may follow at any time: `this` must not be touched any more.
    }
    if (start_write) StartWrite(&writing_);
    if (start_read) StartRead(&read_buf_);
    if (!execute && !reject) return;

    v1::PipelineResponse chunk;
    size_t bytes = 0;
    ExecuteChunk(reject, &chunk, &bytes);

    std::lock_guard lock(mu_);
    executing_ = false;
    has_request_ = next_op_ < request_.ops_size();
    if (broken_) continue;  // The loop drops everything.
    if (chunk.results_size() == 0) continue;
    if (!queue_.empty() && queue_.back().bytes + bytes <= kTargetMessageBytes) {
      // Coalesce into the message waiting for the next Write.
      QueuedResponse& tail = queue_.back();
      auto* results = tail.message.mutable_results();
      results->Reserve(results->size() + chunk.results_size());
      for (v1::OperationResult& r : *chunk.mutable_results()) results->Add()->Swap(&r);
      tail.bytes += bytes;
    } else {
      queue_.push_back({.message = std::move(chunk), .bytes = bytes});
    }
    queued_bytes_ += bytes;
  }
}

void PipelineReactor::ExecuteChunk(bool reject, v1::PipelineResponse* out, size_t* bytes) {
  const int n = request_.ops_size();
  for (; next_op_ < n && *bytes < kTargetMessageBytes; ++next_op_) {
    v1::OperationResult* result = out->add_results();
    if (reject) {
      result->set_id(request_.ops(next_op_).id());
      result->mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
      result->mutable_status()->set_message("node is shutting down; operation not executed");
      *bytes += kRejectedResultBytes;
    } else {
      *bytes += env_->handlers->Execute(request_.ops(next_op_), result);
    }
  }
}

}  // namespace ringcache::internal

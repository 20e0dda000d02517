#include "pipeline_reactor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "callback_server.h"
#include "forward_streams.h"
#include "proto_ops.h"
#include "response_budget.h"

namespace ringcache::internal {
namespace {

// The estimated size of a result answered UNAVAILABLE without running.
constexpr size_t kRejectedResultBytes = 48;

// Whether `result` is an operation a deferring part handed back (ResultLimit.defer).
bool IsDeferred(const v1::OperationResult& result) {
  return result.has_deferred() &&
         result.status().code() == static_cast<int32_t>(grpc::StatusCode::ABORTED);
}

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

void PipelineStreams::OnView(uint64_t epoch) {
  std::vector<PipelineReactor*> waiting;
  {
    std::lock_guard lock(mu_);
    for (PipelineReactor* stream : streams_) {
      const uint64_t wanted = stream->waiting_for_view();
      if (wanted != 0 && wanted <= epoch) {
        stream->Ref();  // As in DrainAll.
        waiting.push_back(stream);
      }
    }
  }
  for (PipelineReactor* stream : waiting) {
    stream->ViewAdopted(epoch);
    stream->Unref();
  }
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
    : env_(env),
      context_(ctx),
      started_(std::chrono::steady_clock::now()),
      metadata_(RequestMetadata::Read(ctx)),
      read_buf_(std::make_unique<RequestBuf>(kRequestBlockBytes)),
      request_(std::make_unique<RequestBuf>(kRequestBlockBytes)) {
  env_->CallStarted();
  env_->metrics->pipeline_streams().Increment();
  const bool expired = ctx->deadline() <= std::chrono::system_clock::now();
  // Pipeline mixes reads and writes: the router checks each operation against the role.
  grpc::Status allowed = env_->Admit(&metadata_, ctx, "Cache.Pipeline", Role::kRead);
  // A forwarder one view ahead: it routed this stream's operations on a view this node has
  // not adopted yet (the coordinator's push is on its way). Read nothing until that view is
  // here, so that they run on it instead of being refused as "not the primary", but at
  // most kMaxViewWait: then they are routed on whatever view this node holds.
  if (allowed.ok() && !metadata_.forwarded_by.empty() && metadata_.has_epoch) {
    const std::shared_ptr<const Topology> topology = env_->handlers->SharedTopology();
    if (topology != nullptr && topology->epoch() < metadata_.epoch) {
      wait_epoch_.store(metadata_.epoch, std::memory_order_relaxed);
      Ref();  // The alarm's; its callback runs exactly once (fired or cancelled).
      view_alarm_set_ = true;
      view_alarm_.Set(std::chrono::system_clock::now() + kMaxViewWait, [this](bool) {
        ViewAdopted(UINT64_MAX);
        Unref();
      });
    }
  }
  const bool draining = env_->streams.Register(this);
  {
    std::lock_guard lock(mu_);
    if (draining) draining_ = true;
    if (!allowed.ok()) {
      FailStreamLocked(std::move(allowed));
    } else if (expired) {
      FailStreamLocked(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"));
    }
  }
  // The view may have arrived between the check above and Register.
  if (const uint64_t wanted = waiting_for_view(); wanted != 0) {
    const std::shared_ptr<const Topology> topology = env_->handlers->SharedTopology();
    if (topology != nullptr && topology->epoch() >= wanted) {
      wait_epoch_.store(0, std::memory_order_relaxed);
    }
  }
  Pump();
}

void PipelineReactor::ViewAdopted(uint64_t epoch) {
  {
    std::lock_guard lock(mu_);
    const uint64_t wanted = wait_epoch_.load(std::memory_order_relaxed);
    if (wanted == 0 || epoch < wanted) return;
    wait_epoch_.store(0, std::memory_order_relaxed);
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

void PipelineReactor::AddPending(size_t ops) {
  std::lock_guard lock(mu_);
  pending_ops_ += ops;
}

void PipelineReactor::Deliver(v1::PipelineResponse* results, size_t bytes, size_t ops) {
  {
    std::lock_guard lock(mu_);
    pending_ops_ -= ops;
    // After a failed Write nothing can be delivered; the count still matters for Finish.
    if (!broken_ && results->results_size() > 0) QueueResultsLocked(results, bytes);
  }
  Pump();
}

void PipelineReactor::QueueResultsLocked(v1::PipelineResponse* results, size_t bytes) {
  // Coalesce into the message waiting for the next Write if it has room. The results come
  // from the heap (forwards, write-concern waits), so each is copied once (move-assigning
  // across arenas copies; Swap would copy three times).
  if (queue_.empty() || queue_.back().bytes + bytes > kTargetMessageBytes) {
    std::unique_ptr<ResponseBuf> message = TakeSpareLocked();
    message->Reset();
    queue_.push_back({.message = std::move(message), .bytes = 0});
  }
  QueuedResponse& tail = queue_.back();
  auto* tail_results = tail.message->get()->mutable_results();
  tail_results->Reserve(tail_results->size() + results->results_size());
  for (v1::OperationResult& r : *results->mutable_results()) *tail_results->Add() = std::move(r);
  tail.bytes += bytes;
  queued_bytes_ += bytes;
}

std::unique_ptr<PipelineReactor::ResponseBuf> PipelineReactor::TakeSpareLocked() {
  if (spare_.empty()) return std::make_unique<ResponseBuf>(kResponseBlockBytes);
  std::unique_ptr<ResponseBuf> message = std::move(spare_.back());
  spare_.pop_back();
  return message;
}

void PipelineReactor::RecycleLocked(std::unique_ptr<ResponseBuf> message) {
  if (message != nullptr && spare_.size() < kMaxSpareResponses) {
    spare_.push_back(std::move(message));
  }
}

void PipelineReactor::EnqueueForwardLocked(ForwardGroup* group) {
  PeerQueue* queue = nullptr;
  for (PeerQueue& q : peers_) {
    if (q.target.id == group->owner->id) queue = &q;
  }
  if (queue == nullptr) {
    peers_.push_back({});
    queue = &peers_.back();
    queue->target.id = group->owner->id;
  }
  queue->target.address = group->owner->peer_address();  // The newest view's.
  queue->epoch = std::max(queue->epoch, group->epoch);
  pending_ops_ += static_cast<size_t>(group->request.ops_size());
  queue->waiting_bytes += group->bytes;
  if (queue->waiting.ops_size() == 0) {
    queue->waiting.Swap(&group->request);
  } else {
    for (v1::Operation& op : *group->request.mutable_ops()) queue->waiting.add_ops()->Swap(&op);
  }
  queue->extra_deadline = std::max(queue->extra_deadline, group->extra_deadline);
}

bool PipelineReactor::ForwardsInFlightLocked() const {
  return std::any_of(peers_.begin(), peers_.end(),
                     [](const PeerQueue& q) { return q.in_flight > 0; });
}

size_t PipelineReactor::WaitingBytesLocked() const {
  size_t bytes = 0;
  for (const PeerQueue& q : peers_) bytes += q.waiting_bytes;
  return bytes;
}

void PipelineReactor::TakeForwardsLocked(std::vector<ForwardCall>* calls) {
  const auto ready = [](const PeerQueue& q) {
    return q.waiting.ops_size() > 0 && q.in_flight < kMaxForwardsPerOwner;
  };
  const size_t wanting = static_cast<size_t>(std::count_if(peers_.begin(), peers_.end(), ready));
  if (wanting == 0) return;
  // The room for the results: what the queue and the calls in flight leave of
  // kMaxQueuedBytes, shared among the owners with operations waiting. Draining, the
  // operations already read go out at once, unlimited (shutdown does not wait for a reader).
  const auto room_left = [this] {
    const size_t held = queued_bytes_ + checked_out_bytes_ + reserved_bytes_;
    return held >= kMaxQueuedBytes ? size_t{0} : kMaxQueuedBytes - held;
  };
  const size_t share = std::max(kMinForwardRoom, room_left() / wanting);
  // What accumulated may be more than the owner accepts in one message (max-batch, its
  // message size limit): a call takes at most that much, the rest waits for the next one.
  int max_ops = 0;
  size_t max_bytes = 0;
  for (PeerQueue& q : peers_) {
    if (!ready(q)) continue;
    size_t room = 0;
    if (!draining_) {
      if (room_left() < kMinForwardRoom) break;
      room = std::min(share, room_left());
    }
    if (max_ops == 0) {
      max_ops = static_cast<int>(env_->handlers->MaxForwardOps());
      max_bytes = env_->handlers->MaxForwardBytes();
    }
    q.reserved += room;
    reserved_bytes_ += room;
    calls->push_back({.target = q.target,
                      .epoch = q.epoch,
                      .request = {},
                      .bytes = 0,
                      .extra_deadline = q.extra_deadline,
                      .room = room});
    v1::PipelineRequest& request = calls->back().request;
    if (q.waiting.ops_size() <= max_ops && q.waiting_bytes <= max_bytes) {
      request.Swap(&q.waiting);
      calls->back().bytes = q.waiting_bytes;
      q.waiting_bytes = 0;
      q.extra_deadline = std::chrono::milliseconds(0);
    } else {
      int n = 0;
      size_t bytes = 0;
      while (n < q.waiting.ops_size() && n < max_ops) {
        const size_t op_bytes = CacheService::ForwardBytes(q.waiting.ops(n));
        if (n > 0 && bytes + op_bytes > max_bytes) break;
        bytes += op_bytes;
        ++n;
      }
      request.mutable_ops()->Reserve(n);
      for (int i = 0; i < n; ++i) request.add_ops()->Swap(q.waiting.mutable_ops(i));
      q.waiting.mutable_ops()->DeleteSubrange(0, n);
      calls->back().bytes = bytes;
      q.waiting_bytes -= std::min(q.waiting_bytes, bytes);
      // extra_deadline stays: it may belong to an operation still waiting.
    }
    ++q.in_flight;
  }
}

void PipelineReactor::StartForwards(std::vector<ForwardCall>* calls) {
  const CacheService* service = env_->handlers;
  for (ForwardCall& call : *calls) {
    bool ours = false;
    const auto deadline =
        service->ForwardDeadline(context_->deadline(), call.extra_deadline, &ours);
    const size_t ops = static_cast<size_t>(call.request.ops_size());
    // The owner answers no more than the room: past it, it hands the operations back.
    const ForwardStreams::Limit limit{.max_response_bytes = call.room, .defer = call.room != 0};
    RefSink();  // Until the results are delivered.
    service->forward_streams()->Send(
        call.target, call.epoch, std::move(call.request), call.bytes, deadline, ours,
        [this, ops, room = call.room, extra = call.extra_deadline,
         owner_id = call.target.id](v1::PipelineResponse* results) {
          DeliverForward(owner_id, room, extra, results, ops);
          ForwardDone(owner_id);
          UnrefSink();
        },
        /*budget=*/nullptr, limit);
  }
}

void PipelineReactor::DeliverForward(const std::string& owner_id, size_t room,
                                     std::chrono::milliseconds extra_deadline,
                                     v1::PipelineResponse* results, size_t ops) {
  // Handed-back operations go in front of those waiting: in order only because a single
  // call per owner is in flight.
  static_assert(kMaxForwardsPerOwner == 1);
  // The deferred operations, in order, to go back in front of what waits for this owner.
  v1::PipelineRequest again;
  size_t again_bytes = 0;
  auto* all = results->mutable_results();
  int kept = 0;
  for (int i = 0; i < all->size(); ++i) {
    v1::OperationResult* r = all->Mutable(i);
    if (IsDeferred(*r)) {
      v1::Operation* op = again.add_ops();
      op->Swap(r->mutable_deferred());
      op->set_id(r->id());  // The caller's id (the result carries it; the op the stream's).
      again_bytes += CacheService::ForwardBytes(*op);
      continue;
    }
    if (kept != i) all->SwapElements(kept, i);
    ++kept;
  }
  all->DeleteSubrange(kept, all->size() - kept);
  const size_t answered = ops - static_cast<size_t>(again.ops_size());
  const size_t bytes = results->ByteSizeLong();
  {
    std::lock_guard lock(mu_);
    for (PeerQueue& q : peers_) {
      if (q.target.id != owner_id) continue;
      q.reserved -= std::min(q.reserved, room);
      if (again.ops_size() > 0) {
        for (v1::Operation& op : *q.waiting.mutable_ops()) again.add_ops()->Swap(&op);
        q.waiting.Swap(&again);
        q.waiting_bytes += again_bytes;
        // A handed-back write may wait for its replicas when it runs.
        q.extra_deadline = std::max(q.extra_deadline, extra_deadline);
      }
    }
    reserved_bytes_ -= std::min(reserved_bytes_, room);
    pending_ops_ -= answered;
    if (!broken_ && kept > 0) QueueResultsLocked(results, bytes);
  }
  // ForwardDone (which the caller runs next) sends what waits and pumps.
}

void PipelineReactor::ForwardDone(const std::string& owner_id) {
  std::vector<ForwardCall> calls;
  {
    std::lock_guard lock(mu_);
    for (PeerQueue& q : peers_) {
      if (q.target.id != owner_id) continue;
      --q.in_flight;
      if (broken_) {  // Nothing can be delivered any more: do not send what waits.
        pending_ops_ -= static_cast<size_t>(q.waiting.ops_size());
        q.waiting.Clear();
        q.waiting_bytes = 0;
      }
    }
    if (!broken_) TakeForwardsLocked(&calls);
  }
  StartForwards(&calls);
  Pump();
}

void PipelineReactor::OnReadDone(bool ok) {
  {
    std::lock_guard lock(mu_);
    read_in_flight_ = false;
    if (!ok) {
      reads_done_ = true;  // Half-close by the client, or the call is over.
    } else if (!finish_sent_ && !has_error_) {
      const int ops = read_buf_->get()->ops_size();
      if (grpc::Status s = env_->handlers->CheckPipelineMessage(*read_buf_->get()); !s.ok()) {
        FailStreamLocked(std::move(s));
      } else if (ops > 0) {
        // A Read is started only when no request is pending, so request_ is free.
        std::swap(request_, read_buf_);
        has_request_ = true;
        next_op_ = 0;
        message_limit_ = request_->get()->max_response_bytes();
        message_used_ = 0;
        part_ = -1;
        part_end_ = 0;
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
    RecycleLocked(std::move(writing_));
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
  if (view_alarm_set_) view_alarm_.Cancel();  // Its callback (and reference) go at once.
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
    // Where this round's results go: the last of two or more messages waiting for a Write
    // when it has room (so they are not copied into it later), otherwise a spare one to
    // reset.
    std::unique_ptr<ResponseBuf> chunk;
    bool fresh_chunk = false;
    size_t bytes = 0;
    std::vector<ForwardCall> calls;
    {
      std::lock_guard lock(mu_);
      if (finish_sent_) return;
      if (broken_ && !executing_) {  // Nothing can be delivered any more.
        has_request_ = false;
        queue_.clear();
        queued_bytes_ = 0;
        // Operations waiting for room to be forwarded are not sent (those of a call in
        // flight are dropped by its ForwardDone).
        for (PeerQueue& q : peers_) {
          pending_ops_ -= static_cast<size_t>(q.waiting.ops_size());
          q.waiting.Clear();
          q.waiting_bytes = 0;
        }
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
      // Operations waiting to be forwarded go once there is room for their results.
      if (!broken_) TakeForwardsLocked(&calls);
      // 3. Read the next message once the current one is done and the queue has room.
      const bool input_over = reads_done_ || draining_ || broken_ || has_error_;
      if (!input_over && !has_request_ && !read_in_flight_ && queued_bytes_ <= kMaxQueuedBytes &&
          pending_ops_ < kMaxPendingOps && WaitingBytesLocked() <= kMaxQueuedBytes &&
          wait_epoch_.load(std::memory_order_relaxed) == 0) {
        read_in_flight_ = true;
        start_read = true;
      }
      // 4. Finish once no operation will come, every pending one has its result and every
      // result has been written. A Read may still be outstanding (draining, errors): gRPC
      // allows ending the call early, and that Read then completes with ok=false.
      // A forward call still in flight (its results delivered, its OnDone not yet run)
      // also holds the stream open: ForwardDone touches the server's state, which must
      // outlive it, and the server counts this stream as active until it finishes.
      if (input_over && !has_request_ && !executing_ && pending_ops_ == 0 && queue_.empty() &&
          !write_in_flight_ && !ForwardsInFlightLocked()) {
        if (!has_error_ && draining_ && !reads_done_) {
          error_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
        }
        // error_ is OK unless set above or by FailStreamLocked.
        finish_sent_ = true;
        finish = true;
        finish_status = error_;
      }
      if (execute || reject) {
        // Not the only queued message: the writer takes the front when the Write in flight
        // completes, and must not find it checked out.
        if (queue_.size() >= 2 && queue_.back().bytes < kTargetMessageBytes) {
          chunk = std::move(queue_.back().message);
          bytes = queue_.back().bytes;
          queued_bytes_ -= bytes;
          checked_out_bytes_ = bytes;  // Still held: counted against the forwards' room.
          queue_.pop_back();
        } else {
          chunk = TakeSpareLocked();
          fresh_chunk = true;
        }
      }
    }
    // gRPC calls without mu_: outside a reaction they may run reactions inline.
    StartForwards(&calls);
    if (finish) {
      // The caller's view is stale: say so in the trailers (only Finish reads them).
      if (metadata_.has_epoch) {
        env_->handlers->AddEpochHint(context_, metadata_, env_->handlers->ThreadTopology());
      }
      Finish(std::move(finish_status));
      return;  // OnDone may follow at any time: `this` must not be touched any more.
    }
    if (start_write) StartWrite(writing_->get());
    // The previous request (swapped out by OnReadDone) is fully executed: drop it.
    if (start_read) StartRead(read_buf_->Reset());
    if (!execute && !reject) return;

    if (fresh_chunk) chunk->Reset();  // On this thread, which then fills it.
    std::vector<ForwardGroup> forwards;
    ExecuteChunk(reject, chunk->get(), &bytes, &forwards);
    calls.clear();
    {
      std::lock_guard lock(mu_);
      executing_ = false;
      has_request_ = next_op_ < request_->get()->ops_size();
      checked_out_bytes_ = 0;
      if (broken_) continue;  // The loop drops everything; the call is gone.
      // Counted before any forward starts: its results may come back at once.
      for (ForwardGroup& group : forwards) EnqueueForwardLocked(&group);
      if (chunk->get()->results_size() > 0) {
        queued_bytes_ += bytes;
        queue_.push_back({.message = std::move(chunk), .bytes = bytes});
      } else {
        RecycleLocked(std::move(chunk));
      }
      TakeForwardsLocked(&calls);  // With this chunk's results counted.
    }
    StartForwards(&calls);
  }
}

void PipelineReactor::ExecuteChunk(bool reject, v1::PipelineResponse* out, size_t* bytes,
                                   std::vector<ForwardGroup>* forwards) {
  v1::PipelineRequest& request = *request_->get();
  const int n = request.ops_size();
  // Valid while this thread makes no other routing call; the forwards start before that.
  const Topology* topology = reject ? nullptr : env_->handlers->ThreadTopology();
  decoded_.first = next_op_;  // Decoded afresh for each chunk: the request may be new.
  decoded_.count = 0;
  for (; next_op_ < n && *bytes < kTargetMessageBytes; ++next_op_) {
    if (!reject && next_op_ >= decoded_.first + decoded_.count) {
      env_->handlers->DecodePipelineOps(request.ops(), next_op_, &decoded_);
    }
    v1::OperationResult* result = out->add_results();
    if (reject) {
      result->set_id(request.ops(next_op_).id());
      result->mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
      result->mutable_status()->set_message("node is shutting down; operation not executed");
      *bytes += kRejectedResultBytes;
      continue;
    }
    const auto k = static_cast<size_t>(next_op_ - decoded_.first);
    // The part (ResultLimit) this operation is in, if any.
    while (next_op_ >= part_end_ && part_ + 1 < request.parts_size()) {
      ++part_;
      part_end_ += static_cast<int>(request.parts(part_).ops());
      part_used_ = 0;
      part_over_ = false;
    }
    const v1::ResultLimit* part = next_op_ < part_end_ ? &request.parts(part_) : nullptr;
    if (part != nullptr && part->defer() && part_over_) {
      // Past a deferring part's limit: handed back, not run (the sender sends it again).
      result->set_id(request.ops(next_op_).id());
      result->mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::ABORTED));
      result->mutable_status()->set_message(
          "deferred: the part's results reached its limit; operation not executed");
      result->mutable_deferred()->CopyFrom(request.ops(next_op_));
      *bytes += kRejectedResultBytes + CacheService::ForwardBytes(request.ops(next_op_));
      continue;
    }
    // The message's own response limit and its part's (a forwarder's remaining budget, or
    // its stream's room): a read past one that fails is not run; the read that crosses it
    // loses its value. A deferring part's crossing read keeps it.
    const Op& op = decoded_.ops[k];
    const bool reads = decoded_.errors[k].ok() && ReturnsBytes(op);
    const bool message_limited = reads && message_limit_ != 0;
    const bool part_limited = reads && part != nullptr && part->max_response_bytes() != 0;
    const bool part_fails = part_limited && !part->defer();
    uint64_t over_limit = 0;  // The failing limit already reached, if any.
    if (message_limited && message_used_ >= message_limit_) over_limit = message_limit_;
    if (part_fails && part_used_ >= part->max_response_bytes()) {
      over_limit = part->max_response_bytes();
    }
    if (over_limit != 0) {
      result->set_id(request.ops(next_op_).id());
      const Status over = ResponseBudget(over_limit).Error();
      SetOpStatus(over, result->mutable_status());
      *bytes += kRejectedResultBytes + over.message().size();
      continue;
    }
    const PipelineStep step =
        env_->handlers->ExecutePipelineOp(topology, metadata_, request.ops(next_op_),
                                          decoded_.ops[k], decoded_.errors[k], result, this);
    if (step.kind == PipelineStep::kAnswered) {
      if (message_limited) {
        message_used_ += step.bytes;
        if (message_used_ > message_limit_) over_limit = message_limit_;
      }
      if (part_limited) {
        part_used_ += step.bytes;
        if (part_used_ > part->max_response_bytes()) {
          if (part->defer()) {
            part_over_ = true;
          } else {
            over_limit = part->max_response_bytes();
          }
        }
      }
      // Only a read loses its value: a write that ran keeps its true result.
      if (over_limit != 0 && result->status().code() == 0 &&
          ShapeOf(op.kind) == OpShape::kPointRead) {
        const uint64_t id = result->id();
        result->Clear();
        result->set_id(id);
        SetOpStatus(ResponseBudget(over_limit).Error(), result->mutable_status());
        *bytes += kRejectedResultBytes;
        continue;
      }
      *bytes += step.bytes;
      continue;
    }
    out->mutable_results()->RemoveLast();  // Its result comes later.
    if (step.kind == PipelineStep::kForward) {
      ForwardGroup* group = nullptr;
      for (ForwardGroup& g : *forwards) {
        if (g.owner == step.owner) group = &g;
      }
      if (group == nullptr) {
        forwards->push_back({.owner = step.owner,
                             .epoch = topology->epoch(),
                             .request = {},
                             .bytes = 0,
                             .extra_deadline = {}});
        group = &forwards->back();
      }
      group->bytes += CacheService::ForwardBytes(request.ops(next_op_));
      // One copy from the request's arena into the heap message of the forward.
      *group->request.add_ops() = std::move(*request.mutable_ops(next_op_));
      group->extra_deadline = std::max(group->extra_deadline, step.extra_deadline);
    }
  }
}

}  // namespace ringcache::internal

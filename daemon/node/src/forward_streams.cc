#include "forward_streams.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <map>
#include <utility>

#include "cache_service.h"
#include "peer_pool.h"
#include "proto_ops.h"
#include "response_budget.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/typed.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::internal {
namespace {

using SteadyClock = std::chrono::steady_clock;

// What one Send asked for, until its `done` runs.
struct Exchange {
  v1::PipelineRequest request;  // Until written; then its ops are in the stream's message.
  size_t ops = 0;
  size_t bytes = 0;
  std::vector<uint64_t> caller_ids;
  std::vector<bool> reads;       // Per operation: a read (its result may be dropped for a budget).
  v1::PipelineResponse results;  // `ops` slots, filled by id.
  size_t remaining = 0;
  uint64_t base = 0;  // The stream's id of operation 0; set when queued.
  SteadyClock::time_point deadline;
  bool our_deadline = false;
  uint64_t reads_when_written = 0;  // The stream's reads count when its message was written.
  ForwardStreams::Done done;
  ResponseBudget* budget = nullptr;  // Not owned; charged per result (may be nullptr).
  ForwardStreams::Limit limit;       // Sent as the exchange's part of the message.

  // Every slot gets `status` (the exchange failed as a whole).
  void Fail(const grpc::Status& status) {
    results.Clear();
    results.mutable_results()->Reserve(static_cast<int>(ops));
    for (size_t j = 0; j < ops; ++j) {
      v1::OperationResult* r = results.add_results();
      r->set_id(caller_ids[j]);
      SetOpStatus(Status(static_cast<StatusCode>(status.error_code()), status.error_message()),
                  r->mutable_status());
    }
  }
};

// An exchange whose `done` is due, and the status it failed with, if any.
struct Completion {
  std::unique_ptr<Exchange> exchange;
  grpc::Status failure;
  bool failed = false;
};

void RunCompletions(std::vector<Completion>* completions) {
  for (Completion& c : *completions) {
    if (c.failed) c.exchange->Fail(c.failure);
    // The exchange is gone before `done` runs: `done` may end the caller's call.
    ForwardStreams::Done done = std::move(c.exchange->done);
    v1::PipelineResponse results;
    results.Swap(&c.exchange->results);
    c.exchange.reset();
    done(&results);
  }
  completions->clear();
}

}  // namespace

// One long-lived Pipeline call to one peer (see the header). Deletes itself after OnDone.
class PeerStream final : public grpc::ClientBidiReactor<v1::PipelineRequest, v1::PipelineResponse> {
 public:
  PeerStream(ForwardStreams* owner, ForwardTarget target, uint64_t epoch)
      : owner_(owner), target_(std::move(target)), epoch_(epoch) {}

  // Lifetime: gRPC's reference (until OnDone) plus one per ForwardStreams caller acting
  // on the stream outside its lock.
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Creates the call (no operation starts, so no reaction runs): done under the owner's
  // lock, before any other thread can see the stream and queue a write on it.
  //
  // Writes (Enqueue) and the half-close (Close) are started from outside gRPC's reactions,
  // so the call holds a hold (AddHold) until no such start can come any more: without it,
  // gRPC may end the call (OnDone, freeing its state) between our decision to write and
  // the StartWrite. The hold is released once the call's reads have ended (OnReadDone
  // false: the call is over) and no outside start is in progress (outside_ == 0).
  void Bind() {
    const CacheService* service = owner_->service_;
    service->AddForwardMetadata(&context_, epoch_);
    service->peers()->CacheStub(target_.address)->async()->Pipeline(&context_, this);
    AddHold();
    MutexLock lock(&mu_);  // No other thread sees the stream yet; the lock is for the check.
    hold_ = true;
  }
  // Starts the call: once, outside the owner's lock (a Send may already have queued a
  // write; gRPC holds operations started before StartCall).
  void Start() {
    StartRead(&in_);
    StartCall();
  }

  const ForwardTarget& target() const { return target_; }
  uint64_t epoch() const { return epoch_; }

  // Queues `ex` and, if no write is in flight, writes it. False if the stream is closing
  // or over (the caller picks another).
  bool Enqueue(std::unique_ptr<Exchange>* ex) {
    bool write = false;
    {
      MutexLock lock(&mu_);
      if (closing_ || ended_) return false;
      Exchange* e = ex->get();
      e->base = next_id_;
      next_id_ += e->ops;
      queue_.push_back(std::move(*ex));
      last_activity_ = SteadyClock::now();
      write = !writing_ && PrepareWriteLocked();
      if (write) ++outside_;
    }
    if (write) {
      StartWrite(&out_);
      OutsideStartDone();
    }
    return true;
  }

  // No longer takes exchanges; half-closes once everything queued is written.
  void Close() {
    bool writes_done = false;
    {
      MutexLock lock(&mu_);
      if (closing_ || ended_) return;
      closing_ = true;
      writes_done = !writing_ && queue_.empty() && !writes_done_sent_;
      writes_done_sent_ = writes_done_sent_ || writes_done;
      if (writes_done) ++outside_;
    }
    if (writes_done) {
      StartWritesDone();
      OutsideStartDone();
    }
  }

  // Ends the call at once (a stuck owner, or shutdown); takes no more exchanges.
  void Cancel() {
    {
      MutexLock lock(&mu_);
      closing_ = true;
      cancelled_ = true;
    }
    context_.TryCancel();
  }

  // Exchanges past their deadline into `due`; true if the stream should be cancelled
  // (nothing came back since an expired exchange was written, on our own deadline).
  bool Expire(SteadyClock::time_point now, std::vector<Completion>* due) {
    const CacheService* service = owner_->service_;
    bool stuck = false;
    MutexLock lock(&mu_);
    auto expire = [&](std::unique_ptr<Exchange> e) {
      const grpc::Status timeout(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
      grpc::Status failure = service->RelayStatus(timeout, target_, e->our_deadline);
      due->push_back({.exchange = std::move(e), .failure = std::move(failure), .failed = true});
    };
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->deadline > now) {
        ++it;
        continue;
      }
      expire(std::move(*it));
      it = queue_.erase(it);
    }
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->deadline > now) {
        ++it;
        continue;
      }
      stuck = stuck || (it->second->our_deadline && reads_ == it->second->reads_when_written);
      expire(std::move(it->second));
      it = pending_.erase(it);
    }
    return stuck;
  }

  // Nothing queued or pending since `idle_since`.
  bool IdleSince(SteadyClock::time_point t) {
    MutexLock lock(&mu_);
    return queue_.empty() && pending_.empty() && !writing_ && last_activity_ < t;
  }

  void OnWriteDone(bool ok) override {
    bool write = false;
    bool writes_done = false;
    {
      MutexLock lock(&mu_);
      writing_ = false;
      out_.Clear();
      if (!ok) return;  // The call is over; OnDone fails what is left.
      write = PrepareWriteLocked();
      if (!write && closing_ && queue_.empty() && !writes_done_sent_) {
        writes_done = writes_done_sent_ = true;
      }
    }
    if (write) StartWrite(&out_);
    if (writes_done) StartWritesDone();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // The call is over; OnDone follows once the hold is released.
      bool release = false;
      {
        MutexLock lock(&mu_);
        closing_ = true;  // No more exchanges, so no more outside starts.
        release_pending_ = true;
        release = ReleaseHoldLocked();
      }
      if (release) RemoveHold();
      return;
    }
    std::vector<Completion> done;
    {
      MutexLock lock(&mu_);
      ++reads_;
      last_activity_ = SteadyClock::now();
      for (v1::OperationResult& r : *in_.mutable_results()) {
        const uint64_t id = r.id();
        auto it = pending_.upper_bound(id);
        if (it == pending_.begin()) continue;  // An exchange that expired.
        --it;
        Exchange* e = it->second.get();
        if (id - e->base >= e->ops) continue;
        v1::OperationResult* slot = e->results.mutable_results(static_cast<int>(id - e->base));
        slot->Swap(&r);
        slot->set_id(e->caller_ids[id - e->base]);
        if (slot->has_deferred()) {
          // Handed back past the exchange's deferring limit: the caller sends it again.
        } else if (e->budget != nullptr && slot->status().code() != 0 &&
                   ResponseBudget::IsBudgetError(Status(
                       static_cast<StatusCode>(slot->status().code()), slot->status().message()))) {
          // The owner stopped at the limit the exchange carried: the caller's budget is
          // spent, and its error (naming the caller's limit) stands for the owner's.
          e->budget->MarkExceeded();
          SetOpStatus(e->budget->Error(), slot->mutable_status());
        } else if (e->budget != nullptr && !e->budget->Take(slot->ByteSizeLong()) &&
                   e->reads[id - e->base]) {
          // Over the caller's response limit: a read's value is dropped for the limit's
          // error as it arrives. Writes keep their true results (they ran on the owner).
          const uint64_t caller_id = slot->id();
          slot->Clear();
          slot->set_id(caller_id);
          SetOpStatus(e->budget->Error(), slot->mutable_status());
        }
        if (--e->remaining == 0) {
          done.push_back({.exchange = std::move(it->second), .failure = {}, .failed = false});
          pending_.erase(it);
        }
      }
      in_.Clear();
    }
    StartRead(&in_);
    RunCompletions(&done);
  }

  void OnDone(const grpc::Status& status) override {
    std::vector<Completion> failed;
    {
      MutexLock lock(&mu_);
      ended_ = true;
      grpc::Status error;
      if (cancelled_) {
        error = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             "node " + target_.id + " at " + target_.address +
                                 " did not answer on the forwarding stream within the forward "
                                 "timeout; retry");
      } else if (!status.ok()) {
        error = owner_->service_->RelayStatus(status, target_, false);
      } else {
        error = grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            "node " + target_.id + " ended the forwarding stream without answering; retry");
      }
      for (auto& e : queue_)
        failed.push_back({.exchange = std::move(e), .failure = error, .failed = true});
      for (auto& [base, e] : pending_) {
        failed.push_back({.exchange = std::move(e), .failure = error, .failed = true});
      }
      queue_.clear();
      pending_.clear();
    }
    RunCompletions(&failed);
    owner_->Ended(this);
    Unref();  // gRPC's.
  }

 private:
  // After an operation started from outside a reaction: releases the hold if it is due.
  void OutsideStartDone() {
    bool release = false;
    {
      MutexLock lock(&mu_);
      --outside_;
      release = ReleaseHoldLocked();
    }
    if (release) RemoveHold();
  }
  // True (once) when the hold must go now. REQUIRES: mu_ held.
  bool ReleaseHoldLocked() RC_REQUIRES(mu_) {
    if (!hold_ || !release_pending_ || outside_ > 0) return false;
    hold_ = false;
    return true;
  }

  // Moves queued exchanges into out_ (up to the owner's limits; at least one) and marks
  // them pending. True if there is something to write. REQUIRES: mu_ held, no write in
  // flight.
  bool PrepareWriteLocked() RC_REQUIRES(mu_) {
    if (queue_.empty()) return false;
    const CacheService* service = owner_->service_;
    const size_t max_ops = service->MaxForwardOps();
    const size_t max_bytes = service->MaxForwardBytes();
    size_t ops = 0;
    size_t bytes = 0;
    while (!queue_.empty()) {
      Exchange* e = queue_.front().get();
      if (ops > 0 && (ops + e->ops > max_ops || bytes + e->bytes > max_bytes)) break;
      // Each exchange's limit is a part of the message; once one has a limit, the ones
      // before it get a part without one.
      if (e->limit.max_response_bytes != 0 && out_.parts_size() == 0 && ops > 0) {
        out_.add_parts()->set_ops(static_cast<uint32_t>(ops));
      }
      if (e->limit.max_response_bytes != 0 || out_.parts_size() > 0) {
        v1::ResultLimit* part = out_.add_parts();
        part->set_ops(static_cast<uint32_t>(e->ops));
        part->set_max_response_bytes(e->limit.max_response_bytes);
        part->set_defer(e->limit.defer && e->limit.max_response_bytes != 0);
      }
      ops += e->ops;
      bytes += e->bytes;
      auto* dst = out_.mutable_ops();
      uint64_t id = e->base;
      for (v1::Operation& op : *e->request.mutable_ops()) {
        op.set_id(id++);  // The stream's id; the caller's is in caller_ids.
        dst->Add()->Swap(&op);
      }
      e->request.Clear();
      e->reads_when_written = reads_;
      pending_.emplace(e->base, std::move(queue_.front()));
      queue_.pop_front();
    }
    writing_ = true;
    return true;
  }

  ~PeerStream() override = default;

  ForwardStreams* const owner_;  // Valid until Ended returns.
  const ForwardTarget target_;
  const uint64_t epoch_;
  grpc::ClientContext context_;
  std::atomic<int> refs_{1};

  Mutex mu_;
  // out_ and in_ belong to the Write and Read in flight, not to mu_.
  std::deque<std::unique_ptr<Exchange>> queue_ RC_GUARDED_BY(mu_);  // Not yet written.
  // Written; by base id.
  std::map<uint64_t, std::unique_ptr<Exchange>> pending_ RC_GUARDED_BY(mu_);
  uint64_t next_id_ RC_GUARDED_BY(mu_) = 1;
  uint64_t reads_ RC_GUARDED_BY(mu_) = 0;
  SteadyClock::time_point last_activity_ RC_GUARDED_BY(mu_) = SteadyClock::now();
  bool writing_ RC_GUARDED_BY(mu_) = false;
  bool closing_ RC_GUARDED_BY(mu_) = false;
  bool writes_done_sent_ RC_GUARDED_BY(mu_) = false;
  bool hold_ RC_GUARDED_BY(mu_) = false;  // AddHold'ed, not yet removed.
  // The call is over: remove the hold when outside_ is 0.
  bool release_pending_ RC_GUARDED_BY(mu_) = false;
  // StartWrite/StartWritesDone calls from outside reactions.
  int outside_ RC_GUARDED_BY(mu_) = 0;
  bool ended_ RC_GUARDED_BY(mu_) = false;
  bool cancelled_ RC_GUARDED_BY(mu_) = false;
  v1::PipelineRequest out_;
  v1::PipelineResponse in_;
};

ForwardStreams::ForwardStreams(const CacheService* service) : service_(service) {
  sweeper_ = std::thread([this] { Sweep(); });
}

ForwardStreams::~ForwardStreams() {
  std::vector<PeerStream*> streams;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    active_.clear();
    for (PeerStream* s : all_) {
      s->Ref();
      streams.push_back(s);
    }
  }
  cv_.notify_all();
  sweeper_.join();
  for (PeerStream* s : streams) {
    s->Cancel();
    s->Unref();
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return all_.empty(); });
}

void ForwardStreams::Send(const ForwardTarget& target, uint64_t epoch, v1::PipelineRequest request,
                          size_t bytes, std::chrono::system_clock::time_point deadline,
                          bool our_deadline, Done done, ResponseBudget* budget, Limit limit) {
  auto e = std::make_unique<Exchange>();
  e->ops = static_cast<size_t>(request.ops_size());
  e->bytes = bytes;
  e->remaining = e->ops;
  e->caller_ids.reserve(e->ops);
  e->reads.reserve(e->ops);
  e->results.mutable_results()->Reserve(static_cast<int>(e->ops));
  for (const v1::Operation& op : request.ops()) {
    e->caller_ids.push_back(op.id());
    const TypedCommandInfo* typed =
        op.op_case() == v1::Operation::kCollection
            ? TypedCommandNumbered(static_cast<uint32_t>(op.collection().command()))
            : nullptr;
    e->reads.push_back(op.op_case() == v1::Operation::kGet || (typed != nullptr && !typed->write));
    e->results.add_results();
  }
  e->request = std::move(request);
  e->deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                         deadline - std::chrono::system_clock::now());
  e->our_deadline = our_deadline;
  e->done = std::move(done);
  e->budget = budget;
  e->limit = limit;
  if (e->ops == 0) {
    std::vector<Completion> now;
    now.push_back({.exchange = std::move(e), .failure = {}, .failed = false});
    RunCompletions(&now);
    return;
  }
  for (;;) {
    PeerStream* stream = nullptr;
    std::vector<PeerStream*> closing;
    bool fresh = false;
    {
      std::lock_guard lock(mu_);
      stream = PickLocked(target, epoch, &closing, &fresh);
      if (stream != nullptr) stream->Ref();
    }
    for (PeerStream* s : closing) {
      s->Close();
      s->Unref();
    }
    if (stream == nullptr) break;  // Stopping: the node is shutting down.
    if (fresh) stream->Start();
    const bool queued = stream->Enqueue(&e);
    stream->Unref();
    if (queued) return;
    // It closed or ended since it was picked (it leaves the active set as it does).
    std::this_thread::yield();
  }
  std::vector<Completion> failed;
  failed.push_back({.exchange = std::move(e),
                    .failure = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                            "node " + service_->self_id() +
                                                " is shutting down; operation not forwarded"),
                    .failed = true});
  RunCompletions(&failed);
}

PeerStream* ForwardStreams::PickLocked(const ForwardTarget& target, uint64_t epoch,
                                       std::vector<PeerStream*>* closing, bool* fresh) {
  if (stopping_) return nullptr;
  std::vector<PeerStream*>& streams = active_[target.address];
  // Streams of another view (or of another node at this address) close; new ones open.
  for (auto it = streams.begin(); it != streams.end();) {
    if ((*it)->epoch() == epoch && (*it)->target().id == target.id) {
      ++it;
      continue;
    }
    (*it)->Ref();
    closing->push_back(*it);
    it = streams.erase(it);
  }
  const size_t slot = next_pick_++ % kStreamsPerPeer;
  if (slot < streams.size()) return streams[slot];
  auto* stream = new PeerStream(this, target, epoch);
  streams.push_back(stream);
  all_.insert(stream);
  stream->Bind();
  *fresh = true;
  return stream;
}

void ForwardStreams::Ended(PeerStream* stream) {
  std::lock_guard lock(mu_);
  all_.erase(stream);
  for (auto& [address, streams] : active_) std::erase(streams, stream);
  // Under the lock: once all_ is empty the destructor may return and cv_ go.
  cv_.notify_all();
}

size_t ForwardStreams::open_streams() const {
  std::lock_guard lock(mu_);
  return all_.size();
}

void ForwardStreams::Sweep() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kSweepInterval);
    if (stopping_ || all_.empty()) continue;
    const SteadyClock::time_point now = SteadyClock::now();
    std::vector<Completion> due;
    std::vector<PeerStream*> cancel;
    std::vector<PeerStream*> close;
    for (PeerStream* s : all_) {
      if (s->Expire(now, &due)) {
        s->Ref();
        cancel.push_back(s);
      }
    }
    for (auto& [address, streams] : active_) {
      for (auto it = streams.begin(); it != streams.end();) {
        const bool stuck = std::find(cancel.begin(), cancel.end(), *it) != cancel.end();
        if (!stuck && !(*it)->IdleSince(now - kIdleClose)) {
          ++it;
          continue;
        }
        if (!stuck) {
          (*it)->Ref();
          close.push_back(*it);
        }
        it = streams.erase(it);
      }
    }
    lock.unlock();
    for (PeerStream* s : cancel) {
      s->Cancel();
      s->Unref();
    }
    for (PeerStream* s : close) {
      s->Close();
      s->Unref();
    }
    RunCompletions(&due);
    lock.lock();
  }
}

}  // namespace ringcache::internal

#include "repl_receiver.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "repl_range_set.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {
namespace {

using v1::ReplicatedEntry;
using v1::ReplicationAck;
using v1::ReplicationMessage;

// How long Shutdown waits for open streams to end.
constexpr std::chrono::seconds kShutdownWait{2};

// What this node holds of one primary's stream; kept across streams (resume).
struct PrimaryState {
  // Held while a message of this primary is applied: one stream applies at a time.
  std::mutex mu;
  // Protected by mu.
  std::string replication_id;
  uint64_t applied_seq = 0;
  bool resumable = false;
  bool syncing = false;
  // Bumped by every hello; a stream applies only while it holds the latest one.
  uint64_t generation = 0;
  // Non-zero: the epoch of this node's view in which the primary is FAILED; its streams
  // are refused (a failed primary must not drop what its successor now owns).
  uint64_t failed_in_epoch = 0;
  // During a full sync: key -> highest version deleted meanwhile (the delete memory).
  std::unordered_map<std::string, uint64_t> sync_deletes;
  // During a full sync: the keys this node held in the synced ranges when it began (key ->
  // version), which the primary has not sent yet. Each stays readable until the primary's
  // copy (a snapshot entry, or a live write or delete) replaces it; those still here at
  // FullSyncEnd are not on the primary and are removed then. So the replica keeps its copy
  // of the ranges all through the sync instead of dropping it at the start: should the
  // primary die meanwhile, the data it held is still here.
  std::unordered_map<std::string, uint64_t> sync_held;
  // During a full sync: its ranges; a snapshot entry outside them is refused.
  ReplRangeSet sync_ranges;
  uint64_t sync_epoch = 0;  // The epoch its ranges were computed in.
  uint64_t sync_keys = 0;
  uint64_t sync_bytes = 0;
  uint64_t sync_held_at_start = 0;
  std::chrono::steady_clock::time_point sync_started;
};

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

struct ReplReceiver::Impl {
  class Stream;
  class Service;

  Impl(std::string id, Cache* c, ReplStripes* s, LogFn l, const ClusterAuth* a,
       std::chrono::milliseconds wait)
      : self_id(std::move(id)),
        cache(c),
        stripes(s),
        log(std::move(l)),
        auth(a),
        clock(c->options().clock != nullptr ? c->options().clock : Clock::System()),
        view_wait(wait) {}

  void Log(LogLevel level, const std::string& message) const {
    if (log) log(level, message);
  }

  // Adds a stream; returns true if the receiver is shutting down (the stream must end).
  bool Register(Stream* stream);
  void Unregister(Stream* stream);
  std::shared_ptr<PrimaryState> StateFor(const std::string& primary_id);

  // The keys (and versions) this node holds in `ranges`: the start of a full sync.
  // REQUIRES: state->mu held.
  std::unordered_map<std::string, uint64_t> HeldInRanges(const ReplRangeSet& ranges);
  // Applies one entry. REQUIRES: state->mu held.
  grpc::Status ApplyEntry(PrimaryState* state, const std::string& primary_id,
                          const ReplicatedEntry& e);
  // Applies a write of kind SET / DELETE / TOUCH under the key's stripe. Errors of the
  // local cache (limits that differ between nodes, an entry too large for this node's
  // shard) do not end the stream: the key is dropped here instead, so a stale older
  // value does not stay. During a full sync, `state`'s held copy of the key (sync_held),
  // if any, is removed first, under the same stripe: the primary's entry replaces it even
  // where the held copy has the same or a higher version (versions of one key can repeat
  // across a failover). REQUIRES: state->mu held.
  void ApplyWrite(PrimaryState* state, const std::string& primary_id, const ReplicatedEntry& e);

  // Constant after construction.
  const std::string self_id;
  Cache* const cache;          // Not owned.
  ReplStripes* const stripes;  // Not owned.
  const LogFn log;
  const ClusterAuth* const auth;  // Not owned; nullptr = no check.
  Clock* const clock;             // Not owned.
  const std::chrono::milliseconds view_wait;
  std::unique_ptr<Service> service;

  std::atomic<uint64_t> apply_errors{0};
  // Snapshot entries applied (and their key + value bytes), over all primaries.
  std::atomic<uint64_t> snapshot_keys{0};
  std::atomic<uint64_t> snapshot_bytes{0};

  mutable std::mutex mu;
  std::condition_variable streams_cv;  // Signalled when streams becomes empty.
  // Protected by mu.
  std::unordered_map<std::string, std::shared_ptr<PrimaryState>> primaries;
  std::unordered_set<Stream*> streams;
  bool shutting_down = false;

  // A leaf lock (taken under mu or a PrimaryState's mu): the view of SetView, and the
  // streams parked until it reaches an epoch.
  mutable std::mutex view_mu;
  std::condition_variable view_cv;       // The waker's: a view, a parked stream, stop.
  std::shared_ptr<const Topology> view;  // Protected by view_mu; nullptr = none yet.
  // A stream whose full-sync message names an epoch above the view's waits here, holding
  // a reference, until the view gets there or `deadline` passes. Protected by view_mu.
  struct Parked {
    Stream* stream;
    uint64_t epoch;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Parked> parked;
  bool waker_stop = false;  // Protected by view_mu.
  // Threads running a resumed stream's message (a full sync's start scans the cache: one
  // per stream, so that one replica's several new primaries do not wait for each other
  // past their ack timeouts). Protected by view_mu; Shutdown waits for them.
  int resumers = 0;
  // Resumes the parked streams (they then run their message on this thread, not on the
  // thread that brought the view: that one may hold membership's view lock).
  std::thread waker;

  std::shared_ptr<const Topology> View() const {
    std::lock_guard lock(view_mu);
    return view;
  }

  // True if the view held is below `epoch` (a view is held: without one, all is taken).
  bool Behind(uint64_t epoch) const {
    const std::shared_ptr<const Topology> t = View();
    return t != nullptr && t->epoch() < epoch;
  }

  // Parks `stream` (the caller gave it a reference, which the waker drops after resuming
  // it) until the view reaches `epoch` or view_wait passes. False once the waker has
  // stopped: the caller resumes the stream itself, as expired.
  bool Park(Stream* stream, uint64_t epoch);
  void WakerLoop();

  // OK if `id` may open a Replicate stream here: a member of this node's view.
  grpc::Status CheckPrimary(const std::string& id) const {
    const std::shared_ptr<const Topology> t = View();
    if (t == nullptr || std::any_of(t->view.members.begin(), t->view.members.end(),
                                    [&id](const ClusterMember& m) { return m.id == id; })) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "primary " + id + " is not a member of this node's view (epoch " +
                            std::to_string(t->epoch()) + "); only members replicate to it");
  }

  // OK if this node's view makes `primary` the primary of every hash in `ranges` (a full
  // sync for `epoch`); see SetView for the refusals.
  grpc::Status CheckSyncRanges(const std::string& primary, const ReplRangeSet& ranges,
                               uint64_t epoch) const {
    const std::shared_ptr<const Topology> t = View();
    if (t == nullptr) return grpc::Status::OK;
    // A sync for a view this node does not hold has waited for it (the stream parks,
    // Stream::Execute) and the view did not come.
    if (epoch > t->epoch()) {
      return grpc::Status(grpc::StatusCode::ABORTED,
                          "a full sync from " + primary + " for epoch " + std::to_string(epoch) +
                              ": this node still holds the view of epoch " +
                              std::to_string(t->epoch()) + " after waiting " +
                              std::to_string(view_wait.count()) +
                              " ms for it to catch up; the sender retries");
    }
    std::vector<HashRange> owned;
    for (const HashRing::Arc& arc : t->ring.Arcs(1)) {
      if (!arc.owners.empty() && t->ring_members[arc.owners[0]]->id == primary) {
        owned.push_back(arc.range);
      }
    }
    if (ReplRangeSet(owned).Covers(ranges)) return grpc::Status::OK;
    const std::string what = "a full sync from " + primary + " for epoch " + std::to_string(epoch) +
                             ": this node's view (epoch " + std::to_string(t->epoch()) +
                             ") makes another member the primary "
                             "of some of its ranges";
    if (epoch < t->epoch()) {
      return grpc::Status(grpc::StatusCode::ABORTED, what + "; the sender's view is out of date");
    }
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, what);
  }
};

// One Replicate stream, on the callback API. Invariants (as PipelineReactor): at most one
// Read and one Write (or the Finish) outstanding; one message executed at a time, in
// order (executing_); acks coalesce while a Write is in flight (each ack carries the
// latest state); the stream finishes once input is over or an error occurred and the
// last ack has been written. mu_ guards the state below and is never held while calling
// gRPC (a Start* or Finish outside a reaction may run reactions inline) nor while
// applying entries. Reference counted: gRPC's reference is dropped in OnDone, Shutdown
// takes one while draining.
class ReplReceiver::Impl::Stream final
    : public grpc::ServerBidiReactor<ReplicationMessage, ReplicationAck> {
 public:
  Stream(Impl* impl, grpc::CallbackServerContext* ctx) : impl_(impl), ctx_(ctx) {
    // Only members replicate (cluster_auth.h): checked before the first message is read.
    grpc::Status allowed = impl_->auth != nullptr ? impl_->auth->Check(ctx, "Replication.Replicate")
                                                  : grpc::Status::OK;
    if (impl_->Register(this)) {
      std::lock_guard lock(mu_);
      RequestFinishLocked(Unavailable());
    } else if (!allowed.ok()) {
      std::lock_guard lock(mu_);
      RequestFinishLocked(std::move(allowed));
    }
    Pump();
  }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      reading_ = false;
      if (ok) {
        have_msg_ = true;
      } else {
        input_over_ = true;  // The primary closed the stream or the call was cancelled.
        RequestFinishLocked(grpc::Status::OK);
      }
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) {
        broken_ = true;
        RequestFinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "ack write failed"));
      }
    }
    Pump();
  }

  void OnDone() override {
    impl_->Unregister(this);
    Unref();
  }

  // Shutdown: ends the stream with UNAVAILABLE after the ack in flight. The caller holds
  // a reference.
  void Drain() { Drain(Unavailable()); }
  // Ends the stream with `status` once the message being applied (if any) is done.
  void Drain(grpc::Status status) {
    {
      std::lock_guard lock(mu_);
      RequestFinishLocked(std::move(status));
    }
    Pump();
  }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Resumes a parked stream: its message runs again, checked against the view held now
  // (`expired`: the wait is over, whatever epoch the view has). The waker's thread.
  void Resume(bool expired) {
    {
      std::lock_guard lock(mu_);
      parked_ = false;
      view_wait_over_ = expired;
    }
    Pump();
  }

 private:
  ~Stream() override = default;

  grpc::Status Unavailable() const {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "node " + impl_->self_id + " is shutting down");
  }

  void RequestFinishLocked(grpc::Status status) {
    if (finish_requested_) return;  // The first reason wins.
    finish_requested_ = true;
    finish_status_ = std::move(status);
  }

  // Decides and starts whatever the state allows (execute, write, read, finish) until
  // nothing more can be done now. Called without mu_.
  void Pump() {
    for (;;) {
      enum class Action { kExecute, kWrite, kRead, kFinish } action;
      grpc::Status status;
      {
        std::lock_guard lock(mu_);
        if (finished_) return;
        if (have_msg_ && !executing_ && !parked_ && !finish_requested_) {
          have_msg_ = false;
          executing_ = true;
          action = Action::kExecute;
        } else if (ack_dirty_ && !writing_ && !broken_) {
          ack_.Clear();
          ack_.set_hello_reply(hello_reply_pending_);
          ack_.set_resume_seq(hello_reply_pending_ ? resume_seq_ : 0);
          ack_.set_resumable(resumable_);
          ack_.set_applied_seq(applied_seq_);
          ack_.set_received(received_);
          hello_reply_pending_ = false;
          ack_dirty_ = false;
          writing_ = true;
          action = Action::kWrite;
        } else if (!reading_ && !have_msg_ && !executing_ && !input_over_ && !finish_requested_) {
          reading_ = true;
          action = Action::kRead;
        } else if (finish_requested_ && !executing_ && !writing_ && (!ack_dirty_ || broken_)) {
          finished_ = true;
          status = finish_status_;
          action = Action::kFinish;
        } else {
          return;
        }
      }
      switch (action) {
        case Action::kExecute: {
          uint64_t park_epoch = 0;
          grpc::Status s = Execute(&park_epoch);
          if (park_epoch != 0) {
            // The message stays, unapplied and unacknowledged, until the view catches up.
            {
              std::lock_guard lock(mu_);
              executing_ = false;
              have_msg_ = true;
              parked_ = true;
            }
            Ref();  // The waker's.
            if (!impl_->Park(this, park_epoch)) {
              Unref();
              Resume(/*expired=*/true);
              return;
            }
            break;
          }
          std::lock_guard lock(mu_);
          executing_ = false;
          view_wait_over_ = false;  // The next message may wait again.
          ++received_;
          if (s.ok()) {
            ack_dirty_ = true;
          } else {
            RequestFinishLocked(std::move(s));
          }
          break;
        }
        case Action::kWrite:
          StartWrite(&ack_);
          break;
        case Action::kRead:
          StartRead(&msg_);
          break;
        case Action::kFinish:
          Finish(status);
          return;
      }
    }
  }

  // OnCancel: a parked stream has no Read outstanding to notice the cancellation.
  void OnCancel() override {
    Drain(grpc::Status(grpc::StatusCode::CANCELLED, "the primary cancelled the stream"));
  }

  // Applies msg_. Runs on the one executing thread, without mu_; updates the ack state
  // under mu_ at the end. Sets *park_epoch instead, applying nothing, if msg_ is a
  // full-sync message for a view this node does not hold yet: a new primary's sync often
  // gets here before its view does (the coordinator adopts a view, and its links start
  // syncing, as it pushes it out), and the sync can only be checked against that view.
  grpc::Status Execute(uint64_t* park_epoch) {
    if (state_ == nullptr) return Hello();
    bool resumable = false;
    uint64_t applied = 0;
    grpc::Status status;
    {
      std::lock_guard state_lock(state_->mu);
      if (state_->generation != generation_) {
        return grpc::Status(grpc::StatusCode::ABORTED,
                            "superseded by a newer Replicate stream from " + primary_id_);
      }
      bool over = false;
      {
        std::lock_guard lock(mu_);
        over = view_wait_over_;
      }
      if (!over) {
        uint64_t epoch = 0;
        if (msg_.has_sync_begin()) {
          epoch = msg_.sync_begin().epoch() != 0 ? msg_.sync_begin().epoch() : hello_epoch_;
        } else if (msg_.has_sync_end() && state_->syncing) {
          epoch = state_->sync_epoch;
        }
        if (epoch != 0 && impl_->Behind(epoch)) {
          *park_epoch = epoch;
          return grpc::Status::OK;
        }
      }
      status = Apply();
      resumable = state_->resumable;
      applied = state_->applied_seq;
    }
    std::lock_guard lock(mu_);
    resumable_ = resumable;
    applied_seq_ = applied;
    return status;
  }

  grpc::Status Hello() {
    if (!msg_.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the first message of a Replicate stream must be a hello");
    }
    const v1::ReplicationHello& hello = msg_.hello();
    if (hello.primary_id().empty() || hello.replication_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "hello needs primary_id and replication_id");
    }
    if (hello.replica_id() != impl_->self_id) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this node is " + impl_->self_id + ", not replica " + hello.replica_id() +
                              " (stale address?)");
    }
    // With node identity, only the primary itself streams its writes (cluster_auth.h).
    if (impl_->auth != nullptr) {
      if (grpc::Status s = impl_->auth->CheckClaim(
              ctx_, "Replication.Replicate", "ReplicationHello.primary_id", hello.primary_id());
          !s.ok()) {
        return s;
      }
    }
    if (grpc::Status member = impl_->CheckPrimary(hello.primary_id()); !member.ok()) {
      return member;
    }
    primary_id_ = hello.primary_id();
    hello_epoch_ = hello.epoch();
    state_ = impl_->StateFor(primary_id_);
    bool resumable = false;
    uint64_t resume = 0;
    {
      std::lock_guard state_lock(state_->mu);
      if (state_->failed_in_epoch != 0) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "primary " + primary_id_ + " was declared failed in epoch " +
                                std::to_string(state_->failed_in_epoch) +
                                "; its replication streams are refused");
      }
      generation_ = ++state_->generation;
      if (state_->replication_id == hello.replication_id() && state_->resumable) {
        resumable = true;
        resume = state_->applied_seq;
      } else {
        state_->replication_id = hello.replication_id();
        state_->applied_seq = 0;
        state_->resumable = false;
        state_->syncing = false;
        state_->sync_deletes.clear();
      }
    }
    impl_->Log(LogLevel::kDebug, "replication from " + primary_id_ + " (epoch " +
                                     std::to_string(hello.epoch()) + "): " +
                                     (resumable ? "can resume after seq " + std::to_string(resume)
                                                : std::string("needs a full sync")));
    std::lock_guard lock(mu_);
    hello_reply_pending_ = true;
    resume_seq_ = resume;
    resumable_ = resumable;
    applied_seq_ = resume;
    return grpc::Status::OK;
  }

  // REQUIRES: state_->mu held.
  grpc::Status Apply() {
    PrimaryState& st = *state_;
    switch (msg_.msg_case()) {
      case ReplicationMessage::kHello:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second hello on the stream");
      case ReplicationMessage::kSyncBegin: {
        const v1::FullSyncBegin& b = msg_.sync_begin();
        if (b.next_seq() == 0) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "FullSyncBegin.next_seq is 0");
        }
        std::vector<HashRange> ranges;
        ranges.reserve(b.ranges_size());
        for (const v1::HashRange& r : b.ranges()) ranges.push_back({r.start(), r.end()});
        ReplRangeSet sync_ranges(ranges);
        // Before anything changes: a refused sync leaves the state as it was.
        const uint64_t sync_epoch = b.epoch() != 0 ? b.epoch() : hello_epoch_;
        if (grpc::Status s = impl_->CheckSyncRanges(primary_id_, sync_ranges, sync_epoch);
            !s.ok()) {
          // Views that differ at one epoch: a fork, or a member lying about what it owns.
          if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            impl_->Log(LogLevel::kWarn, "refused " + s.error_message());
          }
          return s;
        }
        st.syncing = true;
        st.resumable = false;
        st.applied_seq = b.next_seq() - 1;
        st.sync_deletes.clear();
        st.sync_keys = 0;
        st.sync_bytes = 0;
        st.sync_started = std::chrono::steady_clock::now();
        st.sync_held = impl_->HeldInRanges(sync_ranges);
        st.sync_ranges = std::move(sync_ranges);
        st.sync_epoch = sync_epoch;
        st.sync_held_at_start = st.sync_held.size();
        impl_->Log(LogLevel::kInfo,
                   "full sync from " + primary_id_ + " started: " + std::to_string(ranges.size()) +
                       " ranges; the " + std::to_string(st.sync_held_at_start) +
                       " keys held there stay until the primary's copy replaces them");
        return grpc::Status::OK;
      }
      case ReplicationMessage::kBatch:
        for (const ReplicatedEntry& e : msg_.batch().entries()) {
          grpc::Status s = impl_->ApplyEntry(&st, primary_id_, e);
          if (!s.ok()) return s;
        }
        return grpc::Status::OK;
      case ReplicationMessage::kSyncEnd: {
        if (!st.syncing) {
          return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              "FullSyncEnd without FullSyncBegin");
        }
        // The keys held and not sent are removed below: checked again against the view
        // this node holds now (a failover or a flip may have moved the ranges meanwhile).
        // Refused, the sync stays unfinished: nothing is removed, and the next stream
        // starts another.
        if (grpc::Status s = impl_->CheckSyncRanges(primary_id_, st.sync_ranges, st.sync_epoch);
            !s.ok()) {
          return s;
        }
        st.syncing = false;
        st.resumable = true;
        st.sync_deletes = {};
        // What is still held was not on the primary.
        uint64_t removed = 0;
        for (const auto& [key, version] : st.sync_held) {
          const HashedKey hashed(key);
          std::lock_guard stripe(impl_->stripes->For(hashed.placement()));
          Result<bool> r = impl_->cache->ApplyReplicatedDelete(hashed, version);
          if (r.ok() && *r) ++removed;
        }
        st.sync_held = {};
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - st.sync_started)
                            .count();
        impl_->Log(LogLevel::kInfo, "full sync from " + primary_id_ +
                                        " done: " + std::to_string(st.sync_keys) + " keys, " +
                                        std::to_string(st.sync_bytes) + " bytes applied in " +
                                        std::to_string(ms) + " ms; " + std::to_string(removed) +
                                        " of the " + std::to_string(st.sync_held_at_start) +
                                        " keys held before were not on the primary and were "
                                        "removed");
        return grpc::Status::OK;
      }
      case ReplicationMessage::MSG_NOT_SET:
        break;
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty ReplicationMessage");
  }

  Impl* const impl_;
  grpc::CallbackServerContext* const ctx_;  // gRPC's; valid until OnDone.
  std::atomic<int> refs_{1};

  // Used only by the executing thread (executing_ hands it over).
  std::shared_ptr<PrimaryState> state_;
  std::string primary_id_;
  uint64_t hello_epoch_ = 0;  // The sender's view epoch, from the hello.
  uint64_t generation_ = 0;

  // Owned by the outstanding Read, then by the executing thread.
  ReplicationMessage msg_;
  // Owned by the outstanding Write.
  ReplicationAck ack_;

  std::mutex mu_;
  // Protected by mu_.
  bool reading_ = false;
  bool have_msg_ = false;
  bool executing_ = false;
  bool writing_ = false;
  bool input_over_ = false;
  bool broken_ = false;
  bool finish_requested_ = false;
  bool finished_ = false;
  bool parked_ = false;          // msg_ waits for a view (Impl::Park).
  bool view_wait_over_ = false;  // msg_ has waited: check it against the view held.
  grpc::Status finish_status_;
  bool ack_dirty_ = false;
  bool hello_reply_pending_ = false;
  uint64_t resume_seq_ = 0;
  bool resumable_ = false;
  uint64_t applied_seq_ = 0;
  uint64_t received_ = 0;
};

class ReplReceiver::Impl::Service final : public v1::Replication::CallbackService {
 public:
  explicit Service(Impl* impl) : impl_(impl) {}

  grpc::ServerBidiReactor<ReplicationMessage, ReplicationAck>* Replicate(
      grpc::CallbackServerContext* ctx) override {
    return new Stream(impl_, ctx);
  }

 private:
  Impl* const impl_;
};

bool ReplReceiver::Impl::Register(Stream* stream) {
  std::lock_guard lock(mu);
  streams.insert(stream);
  return shutting_down;
}

bool ReplReceiver::Impl::Park(Stream* stream, uint64_t epoch) {
  {
    std::lock_guard lock(view_mu);
    if (waker_stop) return false;
    parked.push_back({stream, epoch, std::chrono::steady_clock::now() + view_wait});
  }
  view_cv.notify_all();
  return true;
}

void ReplReceiver::Impl::WakerLoop() {
  pthread_setname_np(pthread_self(), "rc-repl-wait");
  std::unique_lock lock(view_mu);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const uint64_t held = view != nullptr ? view->epoch() : 0;
    std::vector<std::pair<Stream*, bool>> ready;  // The stream, expired.
    auto next = now + std::chrono::hours(1);
    for (auto it = parked.begin(); it != parked.end();) {
      if (waker_stop || it->epoch <= held || it->deadline <= now) {
        ready.emplace_back(it->stream, it->epoch > held);
        it = parked.erase(it);
      } else {
        next = std::min(next, it->deadline);
        ++it;
      }
    }
    for (const auto& [stream, expired] : ready) {
      ++resumers;
      std::thread([this, s = stream, e = expired] {
        pthread_setname_np(pthread_self(), "rc-repl-resume");
        s->Resume(e);
        s->Unref();
        // Under the lock, and nothing after it: Shutdown may free this object as soon as
        // it sees no resumer left.
        std::lock_guard done(view_mu);
        --resumers;
        view_cv.notify_all();
      }).detach();
    }
    if (waker_stop) return;
    view_cv.wait_until(lock, next);
  }
}

void ReplReceiver::Impl::Unregister(Stream* stream) {
  std::lock_guard lock(mu);
  streams.erase(stream);
  if (streams.empty()) streams_cv.notify_all();
}

std::shared_ptr<PrimaryState> ReplReceiver::Impl::StateFor(const std::string& primary_id) {
  std::lock_guard lock(mu);
  std::shared_ptr<PrimaryState>& p = primaries[primary_id];
  if (p == nullptr) p = std::make_shared<PrimaryState>();
  return p;
}

std::unordered_map<std::string, uint64_t> ReplReceiver::Impl::HeldInRanges(
    const ReplRangeSet& ranges) {
  std::unordered_map<std::string, uint64_t> held;
  for (uint32_t shard = 0; shard < cache->shard_count(); ++shard) {
    cache->ForEachInRange(HashRange::Full(), shard, [&](const ItemView& item) {
      if (ranges.Contains(item.hash)) held.emplace(item.key, item.meta.version);
      return true;
    });
  }
  return held;
}

grpc::Status ReplReceiver::Impl::ApplyEntry(PrimaryState* st, const std::string& primary_id,
                                            const ReplicatedEntry& e) {
  if (e.value_type() > kMaxValueType) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "ReplicatedEntry.value_type " + std::to_string(e.value_type()) +
                            " is not a value type this node knows (at most " +
                            std::to_string(kMaxValueType) + ")");
  }
  if (e.seq() == 0) {
    if (!st->syncing) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "snapshot entry (seq 0) outside a full sync");
    }
    if (e.kind() != v1::ENTRY_KIND_SET) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "snapshot entry that is not a set");
    }
    if (const uint64_t hash = HashedKey(e.key()).placement(); !st->sync_ranges.Contains(hash)) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "snapshot entry for key hash " + Hex(hash) + ", outside the ranges of its FullSyncBegin");
    }
    auto it = st->sync_deletes.find(e.key());
    if (it != st->sync_deletes.end() && it->second >= e.version()) return grpc::Status::OK;
    ApplyWrite(st, primary_id, e);
    ++st->sync_keys;
    st->sync_bytes += e.key().size() + e.value().size();
    snapshot_keys.fetch_add(1, std::memory_order_relaxed);
    snapshot_bytes.fetch_add(e.key().size() + e.value().size(), std::memory_order_relaxed);
    return grpc::Status::OK;
  }
  if (e.seq() != st->applied_seq + 1) {
    st->resumable = false;
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "entry seq " + std::to_string(e.seq()) + " does not follow " +
                            std::to_string(st->applied_seq));
  }
  ApplyWrite(st, primary_id, e);
  st->applied_seq = e.seq();
  if (st->syncing && e.kind() == v1::ENTRY_KIND_DELETE) {
    uint64_t& v = st->sync_deletes[e.key()];
    v = std::max(v, e.version());
  }
  return grpc::Status::OK;
}

void ReplReceiver::Impl::ApplyWrite(PrimaryState* st, const std::string& primary_id,
                                    const ReplicatedEntry& e) {
  const HashedKey key(e.key());  // Hashed once: the stripe, then the cache.
  std::lock_guard lock(stripes->For(key.placement()));
  if (!st->sync_held.empty()) {
    if (auto held = st->sync_held.find(e.key()); held != st->sync_held.end()) {
      (void)cache->ApplyReplicatedDelete(key, held->second);
      st->sync_held.erase(held);
    }
  }
  const ItemMeta meta{.version = e.version(),
                      .deadline_ms = e.expires_at_ms(),
                      .type = static_cast<ValueType>(e.value_type())};
  Status failed;
  switch (e.kind()) {
    case v1::ENTRY_KIND_SET: {
      Result<bool> r = cache->ApplyReplicated(key, e.value(), meta);
      if (!r.ok()) failed = r.status();
      break;
    }
    case v1::ENTRY_KIND_DELETE: {
      Result<bool> r = cache->ApplyReplicatedDelete(key, e.version());
      if (!r.ok()) failed = r.status();
      break;
    }
    case v1::ENTRY_KIND_TOUCH: {
      // A Touch keeps the version, which ApplyReplicated would refuse as not newer: set
      // the deadline of that very version; store the entry if this node lacks it.
      std::string scratch;
      ItemMeta have;
      const Status got = cache->GetTyped(key, meta.type, &scratch, &have);
      if (got.ok() && have.version > e.version()) break;  // A later write is here already.
      if (got.ok() && have.version == e.version()) {
        const int64_t now = clock->NowMs();
        if (e.expires_at_ms() == 0) {
          failed = cache->Touch(key, 0);
        } else if (e.expires_at_ms() <= now) {
          Result<bool> r = cache->ApplyReplicatedDelete(key, e.version());
          if (!r.ok()) failed = r.status();
        } else {
          failed = cache->Touch(key, static_cast<uint64_t>(e.expires_at_ms() - now));
          // Touch counts from the cache's clock at its own call: if a millisecond ticked
          // since `now`, the deadline is off by one. Then store the entry again with the
          // exact deadline (rare; a reader may miss the key in between).
          if (failed.ok() && cache->GetTyped(key, meta.type, &scratch, &have).ok() &&
              have.version == e.version() && have.deadline_ms != e.expires_at_ms()) {
            (void)cache->ApplyReplicatedDelete(key, e.version());
            Result<bool> r = cache->ApplyReplicated(key, e.value(), meta);
            if (!r.ok()) failed = r.status();
          }
        }
        if (failed.code() == StatusCode::kNotFound) failed = Status::Ok();  // Just expired.
        break;
      }
      Result<bool> r = cache->ApplyReplicated(key, e.value(), meta);
      if (!r.ok()) failed = r.status();
      break;
    }
    default:
      failed = Status::InvalidArgument("unknown entry kind " + std::to_string(e.kind()));
      break;
  }
  if (failed.ok()) return;
  // Do not keep an older value of a key whose newer value could not be stored.
  (void)cache->ApplyReplicatedDelete(key, e.version());
  if (apply_errors.fetch_add(1, std::memory_order_relaxed) < 10) {
    Log(LogLevel::kWarn, "replicated write from " + primary_id + " not applied (key hash " +
                             Hex(key.placement()) + "): " + failed.ToString() +
                             " (the key is dropped here; first 10 such errors are logged)");
  }
}

ReplReceiver::ReplReceiver(std::string self_id, Cache* cache, ReplStripes* stripes, LogFn log,
                           const ClusterAuth* auth, std::chrono::milliseconds view_wait)
    : impl_(std::make_unique<Impl>(std::move(self_id), cache, stripes, std::move(log), auth,
                                   view_wait)) {
  impl_->service = std::make_unique<Impl::Service>(impl_.get());
  impl_->waker = std::thread([impl = impl_.get()] { impl->WakerLoop(); });
}

ReplReceiver::~ReplReceiver() {
  Shutdown();
  if (impl_->waker.joinable()) impl_->waker.join();
}

grpc::Service* ReplReceiver::service() { return impl_->service.get(); }

void ReplReceiver::Shutdown() {
  std::vector<Impl::Stream*> open;
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutting_down = true;
    for (Impl::Stream* s : impl_->streams) {
      s->Ref();
      open.push_back(s);
    }
  }
  // Not under mu: Drain may run the stream's reactions inline, OnDone (Unregister) included.
  for (Impl::Stream* s : open) {
    s->Drain();
    s->Unref();
  }
  // Parked streams are finishing (drained): the waker lets go of them and stops.
  {
    std::lock_guard lock(impl_->view_mu);
    impl_->waker_stop = true;
  }
  impl_->view_cv.notify_all();
  if (impl_->waker.joinable() && impl_->waker.get_id() != std::this_thread::get_id()) {
    impl_->waker.join();
  }
  {
    std::unique_lock lock(impl_->view_mu);
    impl_->view_cv.wait(lock, [this] { return impl_->resumers == 0; });
  }
  std::unique_lock lock(impl_->mu);
  impl_->streams_cv.wait_for(lock, kShutdownWait, [this] { return impl_->streams.empty(); });
}

void ReplReceiver::SetFailedPrimaries(const std::vector<std::string>& ids, uint64_t epoch) {
  std::lock_guard lock(impl_->mu);
  for (const std::string& id : ids) {
    std::shared_ptr<PrimaryState>& p = impl_->primaries[id];
    if (p == nullptr) p = std::make_shared<PrimaryState>();
  }
  for (auto& [id, st] : impl_->primaries) {
    const bool failed = std::find(ids.begin(), ids.end(), id) != ids.end();
    std::lock_guard state_lock(st->mu);
    if (failed && st->failed_in_epoch == 0) {
      st->failed_in_epoch = epoch;
      ++st->generation;  // Its open stream applies nothing more.
      // A sync it left unfinished never ends: its keys stay, the list of them is moot.
      st->sync_held = {};
    } else if (!failed) {
      st->failed_in_epoch = 0;
    }
  }
}

void ReplReceiver::SetView(std::shared_ptr<const Topology> topology) {
  {
    std::lock_guard lock(impl_->view_mu);
    impl_->view = std::move(topology);
  }
  impl_->view_cv.notify_all();
}

void ReplReceiver::Reset() {
  std::vector<Impl::Stream*> open;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [id, st] : impl_->primaries) {
      std::lock_guard state_lock(st->mu);
      ++st->generation;  // Open streams of this primary are superseded.
      st->replication_id.clear();
      st->applied_seq = 0;
      st->resumable = false;
      st->syncing = false;
      st->sync_deletes = {};
    }
    for (Impl::Stream* s : impl_->streams) {
      s->Ref();
      open.push_back(s);
    }
  }
  // End the open streams now (an idle one would otherwise stay open until its primary's
  // next message): their primaries reconnect and get a full sync. Not under mu, as in
  // Shutdown.
  for (Impl::Stream* s : open) {
    s->Drain(grpc::Status(grpc::StatusCode::ABORTED,
                          "this replica cleared its data; reconnect for a full sync"));
    s->Unref();
  }
}

ReplReceiver::SnapshotTotals ReplReceiver::SnapshotReceived() const {
  return {impl_->snapshot_keys.load(std::memory_order_relaxed),
          impl_->snapshot_bytes.load(std::memory_order_relaxed)};
}

ReplReceiver::PrimaryInfo ReplReceiver::Primary(const std::string& primary_id) const {
  std::shared_ptr<PrimaryState> st;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->primaries.find(primary_id);
    if (it == impl_->primaries.end()) return {};
    st = it->second;
  }
  std::lock_guard lock(st->mu);
  return {true, st->replication_id, st->applied_seq, st->resumable, st->syncing};
}

}  // namespace ringcache::internal

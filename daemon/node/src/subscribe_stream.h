// SubscribeReactor: one ringcache.v1.Cache/Subscribe stream, and SubscribeStreams, the
// node's list of them, which the pub/sub ticker walks to send heartbeats.
//
// The stream holds one PubSub::Subscription of the node's hub. Its first response is
// `started`; then each Write carries the messages taken from the subscription (at most
// kMaxMessagesPerWrite or kMaxBytesPerWrite) and `last_seq`, the number through which
// this stream has been given everything it will get; a response with only last_seq is a
// heartbeat, written when a tick finds that no message was written since the last tick,
// and at once when last_seq passes what was last sent (a gap, PubSub::NoteGap).
//
// Ends: RESOURCE_EXHAUSTED when the subscription's buffer overflowed (the reader is too
// slow; sent once the write in flight, if any, completes: a reader that never reads again
// holds at most that one write and gRPC's flow-control windows until it goes),
// UNAVAILABLE when the node shuts down (PubSub::CloseAll), CANCELLED when the caller goes,
// INVALID_ARGUMENT for a request over the limits (before anything is subscribed).
//
// Threads and locking: the hub's wake, the ticker and gRPC's reactions all call Pump; the
// stream's state is under mu_, a leaf apart from the subscription's own lock (mu_ ->
// Subscription), never held while calling gRPC. The hub's wake reaches the reactor through
// a Waker (its own small lock), which OnDone disconnects before the reactor goes.
//
// Lifetime: reference counted like WatchTopologyReactor.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "ringcache/pubsub.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

struct ServerEnv;
class SubscribeReactor;

// The open Subscribe streams of a node (both its ports). Has internal synchronization.
class SubscribeStreams {
 public:
  void Register(SubscribeReactor* stream);
  void Unregister(SubscribeReactor* stream);
  // Lets every stream send a heartbeat if it has been idle since the last tick.
  void Tick();

 private:
  Mutex mu_;
  std::unordered_set<SubscribeReactor*> streams_ RC_GUARDED_BY(mu_);
};

class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  static constexpr size_t kMaxMessagesPerWrite = 256;
  static constexpr size_t kMaxBytesPerWrite = size_t{1} << 20;

  SubscribeReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx,
                   const v1::SubscribeRequest* request);
  SubscribeReactor(const SubscribeReactor&) = delete;
  SubscribeReactor& operator=(const SubscribeReactor&) = delete;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Called by SubscribeStreams::Tick.
  void Tick();

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  // The hub's way to this reactor: cleared in OnDone, so a wake that comes later finds
  // nothing instead of a reactor that is gone.
  struct Waker {
    Mutex mu;
    SubscribeReactor* reactor RC_GUARDED_BY(mu) = nullptr;
    void Wake();
  };

  ~SubscribeReactor() override = default;

  void Close(grpc::Status status);
  // Starts the next Write or the Finish if the state allows. Called without mu_ held.
  void Pump();

  const ServerEnv* const env_;  // Not owned.
  std::atomic<int> refs_{1};
  std::shared_ptr<Waker> waker_;
  std::shared_ptr<PubSub::Subscription> subscription_;  // Null if the request was refused.
  bool registered_ = false;                             // In env_'s SubscribeStreams.

  // Owned by the Write in flight while write_in_flight_.
  v1::SubscribeResponse writing_;
  std::vector<PubSub::Delivery> taken_;

  Mutex mu_;  // See the file comment.
  // Protected by mu_.
  v1::SubscribeResponse started_ RC_GUARDED_BY(mu_);  // Sent first.
  bool started_sent_ RC_GUARDED_BY(mu_) = false;
  bool wrote_since_tick_ RC_GUARDED_BY(mu_) = false;
  bool heartbeat_due_ RC_GUARDED_BY(mu_) = false;
  // The last_seq of the last write: a skipped number past it is written at once.
  uint64_t sent_through_ RC_GUARDED_BY(mu_) = 0;
  bool write_in_flight_ RC_GUARDED_BY(mu_) = false;
  bool closing_ RC_GUARDED_BY(mu_) = false;
  bool finish_sent_ RC_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::internal

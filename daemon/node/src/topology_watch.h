// WatchTopologyReactor: one ringcache.v1.Cache/WatchTopology stream — the node's current
// view at once, then every newer view it adopts — and TopologyWatchers, the server's list
// of open watch streams, which fans each adopted view out to them and ends them all at
// shutdown.
//
// Invariants:
//  - views go out in increasing epoch order, never the same epoch twice; while a Write is
//    in flight only the newest pending view is kept (a slow watcher skips intermediate
//    views, it never sees an older one after a newer one);
//  - the stream ends when the node shuts down (UNAVAILABLE, as soon as the Write in flight,
//    if any, completes: views are small), when the client cancels, or when a Write fails;
//  - a node that has no view yet (joining) sends nothing until its first view.
//
// Threads and locking: views arrive on the thread that adopted them (Membership's
// subscription, see CallbackServer), reactions on gRPC's threads, Close on the shutting
// down thread. The stream's state is under its mu_, a leaf lock never held while calling
// gRPC (a StartWrite or Finish outside a reaction may run reactions inline).
// TopologyWatchers::mu_ is a leaf too: it is released before any stream is called.
//
// Lifetime: reference counted like PipelineReactor; gRPC's reference is dropped in OnDone,
// TopologyWatchers takes one while it calls a stream outside its lock.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <unordered_set>

#include "ringcache/sync/mutex.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

struct ServerEnv;
class WatchTopologyReactor;

// The open WatchTopology streams of a server. Has internal synchronization.
class TopologyWatchers {
 public:
  // Adds `stream`; returns true if the server is already closing them (the stream must
  // then end at once).
  bool Register(WatchTopologyReactor* stream);
  void Unregister(WatchTopologyReactor* stream);
  // Offers `view` to every open stream. Must not be called from a reaction.
  void Publish(const v1::ClusterView& view);
  // Ends every stream with UNAVAILABLE; streams that open later end at once. Must not be
  // called from a reaction.
  void CloseAll();

 private:
  Mutex mu_;
  // Protected by mu_.
  std::unordered_set<WatchTopologyReactor*> streams_ RC_GUARDED_BY(mu_);
  bool closed_ RC_GUARDED_BY(mu_) = false;
};

class WatchTopologyReactor final : public grpc::ServerWriteReactor<v1::ClusterView> {
 public:
  // Called from the service's WatchTopology method; starts the stream. `env` is not owned
  // and outlives every call.
  WatchTopologyReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx);
  WatchTopologyReactor(const WatchTopologyReactor&) = delete;
  WatchTopologyReactor& operator=(const WatchTopologyReactor&) = delete;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Sends `view` unless a view with the same or a higher epoch was already sent or queued.
  void Offer(const v1::ClusterView& view);
  // Ends the stream with `status` once the Write in flight (if any) is done. First wins.
  void Close(grpc::Status status);

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  ~WatchTopologyReactor() override = default;

  // Starts the next Write or the Finish if the state allows. Called without mu_ held.
  void Pump();

  // Constant after construction.
  const ServerEnv* const env_;  // Not owned.

  std::atomic<int> refs_{1};

  // Owned by the Write in flight while write_in_flight_.
  v1::ClusterView writing_;

  Mutex mu_;  // A leaf; see the file comment.
  // Protected by mu_.
  v1::ClusterView pending_ RC_GUARDED_BY(mu_);
  bool has_pending_ RC_GUARDED_BY(mu_) = false;
  // A view was queued before: last_epoch_ is valid.
  bool sent_any_ RC_GUARDED_BY(mu_) = false;
  // Epoch of the newest view queued or written.
  uint64_t last_epoch_ RC_GUARDED_BY(mu_) = 0;
  bool write_in_flight_ RC_GUARDED_BY(mu_) = false;
  bool closing_ RC_GUARDED_BY(mu_) = false;
  bool finish_sent_ RC_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::internal

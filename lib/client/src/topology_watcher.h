// TopologyWatcher: keeps a WatchTopology stream open to one node of the cluster and hands
// every view it receives to the client, so the client learns a new view as soon as that
// node adopts it.
//
// States of the watcher thread:  pick a node -> streaming -> (stream ended) -> backoff
// -> pick the next node ... until Stop(). The node is taken round-robin from
// `candidates()` (the members of the client's current view, then the seeds), so a node
// that dies makes the watcher move on to another one. The stream is re-opened every
// `max_stream_age` even when healthy, which bounds how long a silently dead connection
// can hold it.
//
// Thread safety: Start() and Stop() are called by the owner (the client); the callbacks
// run on the watcher thread. Stop() cancels the stream and joins the thread promptly.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "channel_pool.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/sync/thread_annotations.h"
#include "ringcache/v1/cache.pb.h"

namespace grpc {
class ClientContext;
}

namespace ringcache::client::internal {

struct TopologyWatcherOptions {
  // The addresses to watch, in order of preference (called before each connect).
  std::function<std::vector<std::string>()> candidates;
  // Called with each view received (from the watcher thread).
  std::function<void(const v1::ClusterView&, const std::string& from)> on_view;
  // Optional log sink (may be empty).
  std::function<void(std::string_view)> log;
  // Pause after a stream that delivered nothing, doubling up to max_backoff.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds max_stream_age{std::chrono::minutes(5)};
};

class TopologyWatcher {
 public:
  // `pool` is not owned and must outlive the watcher.
  TopologyWatcher(ChannelPool* pool, TopologyWatcherOptions options);
  // Stops the thread.
  ~TopologyWatcher();
  TopologyWatcher(const TopologyWatcher&) = delete;
  TopologyWatcher& operator=(const TopologyWatcher&) = delete;

  void Start();
  // Cancels the stream and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();
  // Sleeps `d` or until Stop(); false if stopping.
  bool WaitFor(std::chrono::milliseconds d);

  // Constant after construction.
  ChannelPool* const pool_;  // Not owned.
  const TopologyWatcherOptions options_;

  ringcache::internal::Mutex mu_;
  std::condition_variable_any cv_;
  bool stop_ RC_GUARDED_BY(mu_) = false;
  // The context of the open stream, for Stop() to cancel it.
  grpc::ClientContext* context_ RC_GUARDED_BY(mu_) = nullptr;

  // Touched only by Start()/Stop() (the owner's thread).
  std::thread thread_;
};

}  // namespace ringcache::client::internal

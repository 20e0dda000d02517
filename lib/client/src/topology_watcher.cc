#include "topology_watcher.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "ringcache/status.h"

namespace ringcache::client::internal {

using ringcache::internal::MutexLock;

TopologyWatcher::TopologyWatcher(ChannelPool* pool, TopologyWatcherOptions options)
    : pool_(pool), options_(std::move(options)) {}

TopologyWatcher::~TopologyWatcher() { Stop(); }

void TopologyWatcher::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void TopologyWatcher::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool TopologyWatcher::WaitFor(std::chrono::milliseconds d) {
  std::unique_lock<ringcache::internal::Mutex> lock(mu_);
  // The predicate reads stop_ with mu_ held (unique_lock is not understood by the
  // analysis, hence the lambda's own annotation).
  return !cv_.wait_for(lock, d, [this]() RC_NO_THREAD_SAFETY_ANALYSIS { return stop_; });
}

void TopologyWatcher::Run() {
  std::chrono::milliseconds backoff = options_.initial_backoff;
  size_t next = 0;
  for (;;) {
    const std::vector<std::string> candidates = options_.candidates();
    if (candidates.empty()) {
      if (!WaitFor(options_.max_backoff)) return;
      continue;
    }
    const std::string& address = candidates[next++ % candidates.size()];
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.max_stream_age);
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      context_ = &context;
    }
    bool received = false;
    grpc::Status status;
    {
      // On a connection of its own: the stream stays open, and a node may allow one call
      // per connection. The stub holds the channel for the stream's life.
      const std::shared_ptr<v1::Cache::Stub> stub = pool_->OwnConnectionStub(address);
      std::unique_ptr<grpc::ClientReader<v1::ClusterView>> reader =
          stub->WatchTopology(&context, v1::TopologyRequest());
      v1::ClusterView view;
      while (reader->Read(&view)) {
        received = true;
        options_.on_view(view, address);
      }
      status = reader->Finish();
    }
    {
      MutexLock lock(&mu_);
      context_ = nullptr;
      if (stop_) return;
    }
    if (received) {
      backoff = options_.initial_backoff;
      --next;  // the node was fine: watch it again
    } else {
      if (options_.log) {
        options_.log("topology watch on " + address + " failed: " +
                     std::string(StatusCodeName(static_cast<StatusCode>(status.error_code()))) +
                     ": " + status.error_message());
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    if (!WaitFor(received ? std::chrono::milliseconds(0) : backoff)) return;
  }
}

}  // namespace ringcache::client::internal

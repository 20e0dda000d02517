#include "topology_watch.h"

#include <memory>
#include <utility>
#include <vector>

#include "callback_server.h"

namespace ringcache::internal {

bool TopologyWatchers::Register(WatchTopologyReactor* stream) {
  MutexLock lock(&mu_);
  streams_.insert(stream);
  return closed_;
}

void TopologyWatchers::Unregister(WatchTopologyReactor* stream) {
  MutexLock lock(&mu_);
  streams_.erase(stream);
}

void TopologyWatchers::Publish(const v1::ClusterView& view) {
  std::vector<WatchTopologyReactor*> open;
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    open.reserve(streams_.size());
    for (WatchTopologyReactor* stream : streams_) {
      stream->Ref();  // Alive after mu_ is released, even past its OnDone.
      open.push_back(stream);
    }
  }
  for (WatchTopologyReactor* stream : open) {
    stream->Offer(view);
    stream->Unref();
  }
}

void TopologyWatchers::CloseAll() {
  std::vector<WatchTopologyReactor*> open;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    open.reserve(streams_.size());
    for (WatchTopologyReactor* stream : streams_) {
      stream->Ref();
      open.push_back(stream);
    }
  }
  for (WatchTopologyReactor* stream : open) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down"));
    stream->Unref();
  }
}

WatchTopologyReactor::WatchTopologyReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx)
    : env_(env) {
  env_->CallStarted();
  // Admitted before it is registered: a view published meanwhile must not reach a caller
  // that may not read it.
  RequestMetadata md = RequestMetadata::Read(ctx);
  if (grpc::Status allowed = env_->Admit(&md, ctx, "Cache.WatchTopology", Role::kRead);
      !allowed.ok()) {
    Close(std::move(allowed));
    return;
  }
  if (env_->watchers.Register(this)) {
    Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down"));
    return;
  }
  // Registered first, then the current view: a view adopted in between reaches us through
  // Publish too, and Offer keeps only the newer one.
  const std::shared_ptr<const Topology> topology = env_->handlers->SharedTopology();
  if (topology != nullptr || env_->handlers->membership() == nullptr) {
    v1::ClusterView view;
    env_->handlers->FillView(topology.get(), &view);
    Offer(view);
  }
}

void WatchTopologyReactor::Offer(const v1::ClusterView& view) {
  {
    MutexLock lock(&mu_);
    if (closing_ || (sent_any_ && view.epoch() <= last_epoch_)) return;
    pending_ = view;
    has_pending_ = true;
    sent_any_ = true;
    last_epoch_ = view.epoch();
  }
  Pump();
}

void WatchTopologyReactor::Close(grpc::Status status) {
  {
    MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
    final_status_ = std::move(status);
  }
  Pump();
}

void WatchTopologyReactor::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok && !closing_) {  // The call is gone (cancelled, deadline, connection lost).
      closing_ = true;
      final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled");
    }
  }
  Pump();
}

void WatchTopologyReactor::OnCancel() {
  Close(grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
}

void WatchTopologyReactor::OnDone() {
  env_->watchers.Unregister(this);
  env_->CallEnded();  // The last use of env_.
  Unref();
}

void WatchTopologyReactor::Pump() {
  bool start_write = false;
  bool finish = false;
  grpc::Status status;
  {
    MutexLock lock(&mu_);
    if (finish_sent_ || write_in_flight_) return;
    if (closing_) {
      finish_sent_ = true;
      finish = true;
      status = final_status_;
    } else if (has_pending_) {
      writing_.Swap(&pending_);
      has_pending_ = false;
      write_in_flight_ = true;
      start_write = true;
    }
  }
  // gRPC calls without mu_: outside a reaction they may run reactions inline.
  if (finish) {
    Finish(std::move(status));
  } else if (start_write) {
    StartWrite(&writing_);
  }
}

}  // namespace ringcache::internal

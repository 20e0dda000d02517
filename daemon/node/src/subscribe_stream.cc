#include "subscribe_stream.h"

#include <string>
#include <utility>
#include <vector>

#include "cache_service.h"
#include "callback_server.h"
#include "keyspace_events.h"

namespace ringcache::internal {

void SubscribeStreams::Register(SubscribeReactor* stream) {
  MutexLock lock(&mu_);
  streams_.insert(stream);
}

void SubscribeStreams::Unregister(SubscribeReactor* stream) {
  MutexLock lock(&mu_);
  streams_.erase(stream);
}

void SubscribeStreams::Tick() {
  std::vector<SubscribeReactor*> open;
  {
    MutexLock lock(&mu_);
    open.reserve(streams_.size());
    for (SubscribeReactor* stream : streams_) {
      stream->Ref();  // Alive after mu_ is released, even past its OnDone.
      open.push_back(stream);
    }
  }
  for (SubscribeReactor* stream : open) {
    stream->Tick();
    stream->Unref();
  }
}

void SubscribeReactor::Waker::Wake() {
  SubscribeReactor* r = nullptr;
  {
    MutexLock lock(&mu);
    r = reactor;
    if (r != nullptr) r->Ref();
  }
  if (r == nullptr) return;
  r->Pump();
  r->Unref();
}

SubscribeReactor::SubscribeReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx,
                                   const v1::SubscribeRequest* request)
    : env_(env), waker_(std::make_shared<Waker>()) {
  env_->CallStarted();
  RequestMetadata md = RequestMetadata::Read(ctx);
  if (grpc::Status allowed = env_->Admit(&md, ctx, "Cache.Subscribe", Role::kRead); !allowed.ok()) {
    Close(std::move(allowed));
    return;
  }
  if (request->channels_size() == 0 && request->patterns_size() == 0) {
    Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "SubscribeRequest names no channel and no pattern"));
    return;
  }
  CacheService* service = env_->handlers;
  subscription_ = service->pubsub().Open([waker = waker_] { waker->Wake(); });
  // Copies of names the request already holds: bounded by the message size limit.
  const std::vector<std::string> channels(request->channels().begin(), request->channels().end());
  const std::vector<std::string> patterns(request->patterns().begin(), request->patterns().end());
  const Status subscribed = subscription_->Subscribe(channels, patterns);
  if (!subscribed.ok()) {
    Close(ToGrpcStatus(subscribed));
    return;
  }
  {
    MutexLock lock(&mu_);
    v1::SubscribeStarted* started = started_.mutable_started();
    started->set_node_id(service->self_id());
    started->set_incarnation(service->node()->incarnation());
    started->set_channels(static_cast<uint32_t>(subscription_->channels()));
    started->set_patterns(static_cast<uint32_t>(subscription_->patterns()));
    started->set_heartbeat_ms(
        static_cast<uint32_t>(service->node()->options().pubsub_heartbeat.count()));
    started->set_keyspace_events(
        KeyspaceEvents::Effective(service->node()->options().keyspace_events));
  }
  // Only now may the hub and the ticker reach the stream: `started` is ready to go first.
  // What arrived meanwhile is taken by the Pump below (a wake before this found no
  // reactor).
  {
    MutexLock lock(&waker_->mu);
    waker_->reactor = this;
  }
  service->subscribe_streams().Register(this);
  registered_ = true;
  Pump();
}

void SubscribeReactor::Close(grpc::Status status) {
  {
    MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
    final_status_ = std::move(status);
  }
  Pump();
}

void SubscribeReactor::Tick() {
  {
    MutexLock lock(&mu_);
    if (wrote_since_tick_) {
      wrote_since_tick_ = false;
      return;
    }
    heartbeat_due_ = true;
  }
  Pump();
}

void SubscribeReactor::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok && !closing_) {  // The call is gone (cancelled, deadline, connection lost).
      closing_ = true;
      final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the subscription was cancelled");
    }
  }
  Pump();
}

void SubscribeReactor::OnCancel() {
  Close(grpc::Status(grpc::StatusCode::CANCELLED, "the subscription was cancelled"));
}

void SubscribeReactor::OnDone() {
  {
    MutexLock lock(&waker_->mu);
    waker_->reactor = nullptr;
  }
  if (registered_) env_->handlers->subscribe_streams().Unregister(this);
  subscription_.reset();  // Leaves the hub.
  env_->CallEnded();      // The last use of env_.
  Unref();
}

void SubscribeReactor::Pump() {
  bool start_write = false;
  bool finish = false;
  grpc::Status status;
  {
    MutexLock lock(&mu_);
    if (finish_sent_) return;
    if (write_in_flight_) {
      // Cut off while a write waits on the reader: end with why once it completes.
      if (!closing_ && subscription_ != nullptr) {
        if (Status s = subscription_->status(); !s.ok()) {
          closing_ = true;
          final_status_ = ToGrpcStatus(s);
        }
      }
      return;
    }
    if (!closing_ && subscription_ != nullptr) {
      writing_.Clear();
      if (!started_sent_) {
        writing_.Swap(&started_);
        started_sent_ = true;
      }
      taken_.clear();
      uint64_t through = 0;
      if (!subscription_->Take(&taken_, kMaxMessagesPerWrite, kMaxBytesPerWrite, &through)) {
        closing_ = true;
        final_status_ = ToGrpcStatus(subscription_->status());
      } else if (!taken_.empty() || writing_.has_started() || heartbeat_due_ ||
                 through > sent_through_) {
        writing_.mutable_messages()->Reserve(static_cast<int>(taken_.size()));
        for (PubSub::Delivery& d : taken_) {
          v1::PubSubMessage* m = writing_.add_messages();
          m->set_seq(d.seq);
          m->set_channel(d.message->channel);
          m->set_payload(d.message->payload);
          if (!d.pattern.empty()) m->set_pattern(std::move(d.pattern));
          if (d.message->version != 0) m->set_version(d.message->version);
        }
        taken_.clear();
        writing_.set_last_seq(through);
        sent_through_ = through;
        heartbeat_due_ = false;
        // A heartbeat alone does not make the stream busy: the next tick sends another.
        if (writing_.messages_size() > 0 || writing_.has_started()) wrote_since_tick_ = true;
        write_in_flight_ = true;
        start_write = true;
      }
    }
    if (!start_write && closing_) {
      finish_sent_ = true;
      finish = true;
      status = final_status_;
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

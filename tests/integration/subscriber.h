// Subscriber: one Subscribe stream of a test, read on its own thread; Publish: one call.
// Shared by the pub/sub and keyspace-event cluster tests.
#pragma once

#include <grpcpp/client_context.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::it {

// One Subscribe stream read on its own thread. Catch macros stay on the test thread: the
// reader only records.
class Subscriber {
 public:
  // Opens the stream and waits for its `started` response (the subscription is in place
  // on the node once it comes). `read` false: nothing is read after `started` until
  // StartReading (a slow subscriber).
  Subscriber(v1::Cache::Stub* stub, std::vector<std::string> channels,
             std::vector<std::string> patterns, bool read = true)
      : reading_(read) {
    v1::SubscribeRequest request;
    for (auto& c : channels) request.add_channels(std::move(c));
    for (auto& p : patterns) request.add_patterns(std::move(p));
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    stream_ = stub->Subscribe(&ctx_, request);
    v1::SubscribeResponse first;
    if (stream_->Read(&first) && first.has_started()) {
      started_ = first.started();
      Absorb(first);
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~Subscriber() {
    ctx_.TryCancel();
    StartReading();
    thread_.join();
  }

  bool started() const { return !started_.node_id().empty(); }
  const v1::SubscribeStarted& started_info() const { return started_; }
  void StartReading() {
    std::lock_guard lock(mu_);
    reading_ = true;
    cv_.notify_all();
  }
  std::vector<v1::PubSubMessage> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }
  uint64_t last_seq() const {
    std::lock_guard lock(mu_);
    return last_seq_;
  }
  size_t heartbeats() const {
    std::lock_guard lock(mu_);
    return heartbeats_;
  }
  bool ended() const {
    std::lock_guard lock(mu_);
    return ended_;
  }
  grpc::Status status() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  void Absorb(const v1::SubscribeResponse& r) {
    std::lock_guard lock(mu_);
    for (const auto& m : r.messages()) messages_.push_back(m);
    if (r.messages_size() == 0 && !r.has_started()) ++heartbeats_;
    last_seq_ = r.last_seq();
  }
  void Run() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return reading_; });
    }
    v1::SubscribeResponse r;
    while (stream_->Read(&r)) Absorb(r);
    grpc::Status s = stream_->Finish();
    std::lock_guard lock(mu_);
    status_ = std::move(s);
    ended_ = true;
  }

  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> stream_;
  v1::SubscribeStarted started_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool reading_;
  std::vector<v1::PubSubMessage> messages_;
  uint64_t last_seq_ = 0;
  size_t heartbeats_ = 0;
  bool ended_ = false;
  grpc::Status status_;
  std::thread thread_;
};

inline grpc::Status Publish(v1::Cache::Stub* stub, const std::string& channel,
                            const std::string& payload, v1::PublishResponse* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PublishRequest request;
  request.set_channel(channel);
  request.set_payload(payload);
  return stub->Publish(&ctx, request, out);
}

}  // namespace ringcache::it

// Client::Publish and Client::Subscribe (client.h): one member per call, round-robin; a
// Subscription's stream is read on its own thread into a bounded queue that Next drains.
#include <grpcpp/client_context.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "client_impl.h"

namespace ringcache::client {

namespace {

// Addresses of the members a call may go to, starting at a round-robin offset: every
// member not declared failed.
std::vector<std::pair<std::string, std::string>> Candidates(const RoutingTable& table,
                                                            size_t spread) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const ClusterMember& m : table.view().members) {
    if (m.state != MemberState::kFailed) out.emplace_back(m.id, m.address);
  }
  if (!out.empty()) std::rotate(out.begin(), out.begin() + spread % out.size(), out.end());
  return out;
}

size_t EventBytes(const PubSubEvent& e) {
  return e.channel.size() + e.payload.size() + e.pattern.size() + 64;
}

// What a subscription uses of its client (whose Impl it cannot name).
struct ClientHooks {
  std::function<TablePtr()> current;
  std::function<std::shared_ptr<v1::Cache::Stub>(const std::string& address)> stub;
  std::function<void(const std::string& failed)> refresh;
  std::function<size_t()> next_spread;
  std::function<void()> count_rpc;
  std::function<void(const std::string&)> log;
};

class SubscriptionImpl final : public Subscription {
 public:
  // With an `observer` (not owned; outlives this), events go to it on the reader thread
  // instead of the queue Next drains.
  SubscriptionImpl(ClientHooks client, SubscribeOptions options, StreamObserver* observer = nullptr)
      : client_(std::move(client)), options_(std::move(options)), observer_(observer) {
    for (const std::string& c : options_.channels) request_.add_channels(c);
    for (const std::string& p : options_.patterns) request_.add_patterns(p);
  }
  ~SubscriptionImpl() override { Close(); }

  // Starts the reader and waits until the first stream is in place, it failed, or
  // `deadline` passed.
  Status Start(Deadline deadline) {
    thread_ = std::thread([this] { Run(); });
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, deadline, [this] { return started_ || ended_; })) {
      lock.unlock();
      Close();
      return Status(StatusCode::kDeadlineExceeded,
                    "no node put the subscription in place before the deadline");
    }
    return ended_ ? end_ : Status::Ok();
  }

  Result<PubSubEvent> Next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return !events_.empty() || ended_; })) {
      return Status(StatusCode::kDeadlineExceeded,
                    "no event within " + std::to_string(timeout.count()) + " ms");
    }
    if (events_.empty()) return end_;
    PubSubEvent e = std::move(events_.front());
    events_.pop_front();
    bytes_ -= EventBytes(e);
    cv_.notify_all();  // The reader may be waiting for room.
    return e;
  }

  void Close() override {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      if (context_ != nullptr) context_->TryCancel();
      cv_.notify_all();
    }
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  std::string node() const override {
    std::lock_guard lock(mu_);
    return node_;
  }
  uint64_t reconnects() const override {
    std::lock_guard lock(mu_);
    return reconnects_;
  }

 private:
  void Push(PubSubEvent e) {  // REQUIRES: mu_.
    if (observer_ != nullptr) {
      observer_->Event(std::move(e));
      return;
    }
    bytes_ += EventBytes(e);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }

  void End(Status status) {
    std::lock_guard lock(mu_);
    if (ended_) return;
    ended_ = true;
    end_ =
        closed_ ? Status(StatusCode::kCancelled, "the subscription was closed") : std::move(status);
    cv_.notify_all();
  }

  // Reads one stream to its end; returns its status. *opened: it got `started`.
  grpc::Status ReadStream(const std::string& id, const std::string& address, bool* opened) {
    std::shared_ptr<v1::Cache::Stub> stub = client_.stub(address);
    grpc::ClientContext* context = nullptr;
    {
      // Made under the lock, so that Close can cancel it; the call starts outside it (it
      // may wait for a connection), and a cancel before it starts is honoured.
      std::lock_guard lock(mu_);
      if (closed_) return grpc::Status(grpc::StatusCode::CANCELLED, "closed");
      context_ = std::make_unique<grpc::ClientContext>();
      context_->AddMetadata(kEpochKey, std::to_string(client_.current()->epoch()));
      context = context_.get();  // Replaced only by this thread.
    }
    client_.count_rpc();
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
        stub->Subscribe(context, request_);
    uint64_t last = 0;
    v1::SubscribeResponse r;
    while (reader->Read(&r)) {
      std::unique_lock lock(mu_);
      if (r.has_started() && !*opened) {
        *opened = true;
        node_ = r.started().node_id().empty() ? id : r.started().node_id();
        if (observer_ != nullptr) observer_->Started(r.started());
        if (started_) {
          // A stream opened again: whatever was published meanwhile is lost to us.
          PubSubEvent gap;
          gap.kind = PubSubEvent::Kind::kGap;
          Push(std::move(gap));
        }
        started_ = true;
        cv_.notify_all();
      }
      for (v1::PubSubMessage& m : *r.mutable_messages()) {
        if (m.seq() > last + 1) {
          PubSubEvent gap;
          gap.kind = PubSubEvent::Kind::kGap;
          gap.seq = m.seq();
          gap.missed = m.seq() - last - 1;
          Push(std::move(gap));
        }
        last = std::max(last, m.seq());
        PubSubEvent e;
        e.seq = m.seq();
        e.channel = std::move(*m.mutable_channel());
        e.payload = std::move(*m.mutable_payload());
        e.pattern = std::move(*m.mutable_pattern());
        e.version = m.version();
        Push(std::move(e));
      }
      if (r.last_seq() > last) {  // A heartbeat (or batch) that shows numbers skipped.
        PubSubEvent gap;
        gap.kind = PubSubEvent::Kind::kGap;
        gap.seq = r.last_seq();
        gap.missed = r.last_seq() - last;
        Push(std::move(gap));
        last = r.last_seq();
      }
      // Backpressure: stop reading while the caller is behind (the node buffers, then
      // cuts the subscription off).
      cv_.wait(lock, [this] { return closed_ || bytes_ <= options_.max_buffered_bytes; });
      if (closed_) context_->TryCancel();
    }
    grpc::Status status = reader->Finish();
    if (observer_ != nullptr && *opened) {
      std::lock_guard lock(mu_);
      observer_->Broken();
    }
    return status;
  }

  void Run() {
    constexpr int kMaxFailuresInARow = 8;
    int failures = 0;
    size_t spread = client_.next_spread();
    while (true) {
      const TablePtr table = client_.current();
      const auto candidates = Candidates(*table, spread++);
      if (candidates.empty()) {
        End(Status::Unavailable("the cluster view (epoch " + std::to_string(table->epoch()) +
                                ") has no member to subscribe on"));
        return;
      }
      const auto& [id, address] = candidates.front();
      bool opened = false;
      const grpc::Status s = ReadStream(id, address, &opened);
      {
        std::lock_guard lock(mu_);
        if (closed_) break;
      }
      bool started;
      {
        std::lock_guard lock(mu_);
        started = started_;
      }
      // Once in place, the near cache's feed never gives up (the near cache only stops
      // serving meanwhile); a caller's subscription, or the feed's first stream (whose
      // error Connect reports), ends on anything but a node going away.
      if (observer_ != nullptr && started) {
        client_.log("near cache: its subscription on " + address + " ended (" +
                    std::to_string(s.error_code()) + " " + s.error_message() +
                    "); opening it again");
      } else if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
        End(FromGrpc(s, address));
        return;
      }
      failures = opened ? 0 : failures + 1;
      const bool give_up = observer_ != nullptr
                               ? !started && failures >= kMaxFailuresInARow
                               : (started && !options_.reconnect) || failures >= kMaxFailuresInARow;
      if (give_up) {
        End(FromGrpc(s, address));
        return;
      }
      {
        std::unique_lock lock(mu_);
        if (started) ++reconnects_;
        // A short pause (longer after repeated failures), cut short by Close.
        cv_.wait_for(lock, std::chrono::milliseconds(50 * (1 << std::min(failures, 5))),
                     [this] { return closed_; });
        if (closed_) break;
      }
      client_.refresh(address);
    }
    End(Status(StatusCode::kCancelled, "the subscription was closed"));
  }

  const ClientHooks client_;
  const SubscribeOptions options_;
  StreamObserver* const observer_;
  v1::SubscribeRequest request_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_.
  std::unique_ptr<grpc::ClientContext> context_;  // The stream's now.
  std::deque<PubSubEvent> events_;
  size_t bytes_ = 0;
  bool started_ = false;
  bool ended_ = false;
  bool closed_ = false;
  Status end_;
  std::string node_;
  uint64_t reconnects_ = 0;
};

}  // namespace

Result<PublishResult> Client::Publish(std::string_view channel, std::string_view payload,
                                      const CallOptions& call) {
  const TablePtr table = impl_->Current();
  const auto candidates =
      Candidates(*table, impl_->spread_rr.fetch_add(1, std::memory_order_relaxed));
  if (candidates.empty()) return Impl::NoOwner(*table);
  const std::string& address = candidates.front().second;
  v1::PublishRequest request;
  request.set_channel(std::string(channel));
  request.set_payload(std::string(payload));
  grpc::ClientContext context;
  impl_->PrepareContext(&context, impl_->DeadlineOf(call), table->epoch());
  v1::PublishResponse r;
  impl_->rpcs.fetch_add(1, std::memory_order_relaxed);
  const grpc::Status s = impl_->pool.Stub(address)->Publish(&context, request, &r);
  if (!s.ok()) return FromGrpc(s, address);
  return PublishResult{.receivers = r.receivers(), .nodes_unreached = r.nodes_unreached()};
}

Result<std::unique_ptr<Subscription>> Client::Subscribe(SubscribeOptions options,
                                                        const CallOptions& call) {
  if (options.channels.empty() && options.patterns.empty()) {
    return Status::InvalidArgument("SubscribeOptions names no channel and no pattern");
  }
  return impl_->OpenSubscription(std::move(options), nullptr, impl_->DeadlineOf(call));
}

Result<std::unique_ptr<Subscription>> Client::Impl::OpenSubscription(SubscribeOptions subscribe,
                                                                     StreamObserver* observer,
                                                                     Deadline deadline) {
  Impl* impl = this;
  ClientHooks hooks{
      .current = [impl] { return impl->Current(); },
      .stub = [impl](const std::string& address) { return impl->pool.Stub(address); },
      .refresh =
          [impl](const std::string& failed) {
            (void)impl->RefreshSync(failed, Now() + std::chrono::seconds(1));
          },
      .next_spread = [impl] { return impl->spread_rr.fetch_add(1, std::memory_order_relaxed); },
      .count_rpc = [impl] { impl->rpcs.fetch_add(1, std::memory_order_relaxed); },
      .log = [impl](const std::string& line) { impl->Log(line); }};
  auto sub = std::make_unique<SubscriptionImpl>(std::move(hooks), std::move(subscribe), observer);
  if (Status s = sub->Start(deadline); !s.ok()) return s;
  return std::unique_ptr<Subscription>(std::move(sub));
}

}  // namespace ringcache::client

#include "pubsub_relay.h"

#include <algorithm>
#include <deque>
#include <utility>
#include <vector>

#include "cache_service.h"
#include "forward_streams.h"
#include "topology.h"

namespace ringcache::internal {

namespace {

// The state of one Publish: the answers still to come and their sum.
struct Gather {
  std::atomic<size_t> remaining{0};
  std::atomic<uint64_t> receivers{0};
  std::atomic<uint32_t> unreached{0};
  PubSubRelay::Done done;

  void Arrived() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    v1::PublishResponse response;
    response.set_receivers(receivers.load(std::memory_order_relaxed));
    response.set_nodes_unreached(unreached.load(std::memory_order_relaxed));
    done(grpc::Status::OK, std::move(response));
  }
};

}  // namespace

PubSubRelay::PubSubRelay(const CacheService* service, PubSub* hub, Options options)
    : service_(service), hub_(hub), options_(options) {
  ticker_ = std::thread([this] { Tick(); });
}

PubSubRelay::~PubSubRelay() { Stop(); }

void PubSubRelay::Stop() {
  {
    std::lock_guard lock(ticker_mu_);
    stopping_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

grpc::Status PubSubRelay::CheckSizes(const v1::PublishRequest& request) const {
  const NodeOptions& o = service_->node()->options();
  // A relay may carry a keyspace event, whose channel is a key with a prefix.
  const uint64_t max_channel = o.max_key_bytes + (request.has_relay() ? kEventChannelSlack : 0);
  if (request.channel().size() > max_channel) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "PublishRequest.channel of " + std::to_string(request.channel().size()) +
                " bytes is over the limit of " + std::to_string(max_channel) +
                " bytes (--max-key-bytes)"};
  }
  if (request.payload().size() > o.max_value_bytes) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "PublishRequest.payload of " + std::to_string(request.payload().size()) +
                " bytes is over the limit of " + std::to_string(o.max_value_bytes) +
                " bytes (--max-value-bytes)"};
  }
  return grpc::Status::OK;
}

PubSubRelay::Link* PubSubRelay::LinkTo(const std::string& address) {
  MutexLock lock(&links_mu_);
  std::unique_ptr<Link>& link = links_[address];
  if (link == nullptr) link = std::make_unique<Link>();
  return link.get();
}

PubSubRelay::Inbound* PubSubRelay::InboundFrom(const std::string& origin) {
  MutexLock lock(&inbound_mu_);
  auto it = inbound_.find(origin);
  if (it != inbound_.end()) return it->second.get();
  // Only members of this node's view are tracked, so a caller cannot grow the table
  // without bound; a member this node does not know yet is delivered untracked.
  const std::shared_ptr<const Topology> topology = service_->SharedTopology();
  if (topology == nullptr || topology->view.Find(origin) == nullptr) return nullptr;
  std::unique_ptr<Inbound>& in = inbound_[origin];
  in = std::make_unique<Inbound>();
  return in.get();
}

void PubSubRelay::Publish(const v1::PublishRequest& request,
                          std::chrono::system_clock::time_point caller_deadline, Done done) {
  if (request.has_relay()) {
    done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "PublishRequest.relay is set only by a member passing a message on; "
                      "leave it unset"),
         {});
    return;
  }
  if (grpc::Status s = CheckSizes(request); !s.ok()) {
    done(std::move(s), {});
    return;
  }
  Fanout(request, caller_deadline, std::move(done));
}

void PubSubRelay::PublishEvent(std::string channel, std::string payload, uint64_t version) {
  v1::PublishRequest request;
  request.set_channel(std::move(channel));
  request.set_payload(std::move(payload));
  request.mutable_relay()->set_version(version);  // The rest is filled per peer.
  Fanout(request, std::chrono::system_clock::time_point::max(),
         [](grpc::Status, v1::PublishResponse) {});
}

void PubSubRelay::NoteDropped(uint64_t count) {
  hub_->NoteGap(count);
  const std::shared_ptr<const Topology> topology = service_->SharedTopology();
  if (topology == nullptr) return;
  for (const ClusterMember& m : topology->view.members) {
    if (m.id != service_->self_id()) SkipPeer(LinkTo(m.peer_address()), m.id, count);
  }
}

void PubSubRelay::Fanout(const v1::PublishRequest& request,
                         std::chrono::system_clock::time_point caller_deadline, Done done) {
  const std::shared_ptr<const Topology> topology = service_->SharedTopology();
  std::vector<const ClusterMember*> peers;
  if (topology != nullptr && service_->forward_streams() != nullptr) {
    for (const ClusterMember& m : topology->view.members) {
      if (m.id == service_->self_id()) continue;
      if (m.state == MemberState::kFailed) {
        // Not waited for; but it may still run (cut off, fenced) with subscribers, so the
        // message takes a number it will never get: the sync tells it once it is back.
        SkipPeer(LinkTo(m.peer_address()), m.id);
        continue;
      }
      peers.push_back(&m);
    }
  }
  // Here first: the publisher's own node delivers before any other, in call order.
  const size_t local =
      hub_->Publish(request.channel(), request.payload(), request.relay().version());
  if (peers.empty()) {
    v1::PublishResponse response;
    response.set_receivers(local);
    done(grpc::Status::OK, std::move(response));
    return;
  }
  auto gather = std::make_shared<Gather>();
  gather->remaining.store(peers.size() + 1, std::memory_order_relaxed);
  gather->receivers.store(local, std::memory_order_relaxed);
  gather->done = std::move(done);
  const auto deadline =
      std::min(caller_deadline, std::chrono::system_clock::now() + options_.publish_timeout);
  for (const ClusterMember* peer : peers) {
    Link* link = LinkTo(peer->peer_address());
    SendRelay(link, peer->id, peer->peer_address(), request, deadline,
              [this, gather, link](const v1::OperationResult& result) {
                if (result.status().code() == 0 && result.has_publish()) {
                  gather->receivers.fetch_add(result.publish().receivers(),
                                              std::memory_order_relaxed);
                } else {
                  gather->unreached.fetch_add(1, std::memory_order_relaxed);
                  relay_failures_.fetch_add(1, std::memory_order_relaxed);
                  link->needs_sync.store(true, std::memory_order_release);
                }
                gather->Arrived();
              });
  }
  gather->Arrived();  // The count taken at the start.
}

void PubSubRelay::SkipPeer(Link* link, const std::string& id, uint64_t count) {
  MutexLock lock(&link->mu);
  link->id = id;
  link->seq += count;
  link->needs_sync.store(true, std::memory_order_release);
}

void PubSubRelay::SendRelay(Link* link, const std::string& id, const std::string& address,
                            v1::PublishRequest request,
                            std::chrono::system_clock::time_point deadline, Relayed done) {
  auto out = std::make_unique<Outgoing>();
  v1::Operation* op = out->message.add_ops();
  *op->mutable_publish() = std::move(request);
  out->bytes = CacheService::ForwardBytes(*op);
  v1::PublishRelay* relay = op->mutable_publish()->mutable_relay();
  relay->set_incarnation(options_.incarnation);
  out->target = ForwardTarget{id, address};
  out->deadline = deadline;
  out->done = std::move(done);
  {
    MutexLock lock(&link->mu);
    link->id = id;
    // One relay is always admitted, however large (up to --max-value-bytes).
    if (!relay->sync() && link->bytes_in_flight > 0 &&
        (link->bytes_in_flight + out->bytes > kMaxRelayBytesInFlight ||
         total_in_flight_.load(std::memory_order_relaxed) + out->bytes >
             kMaxRelayBytesInFlightTotal)) {
      // The peer is this far behind: the message is not sent, but it takes its number, so
      // the peer reports the gap once it catches up.
      ++link->seq;
      link->needs_sync.store(true, std::memory_order_release);
    } else {
      // Numbered, with the epoch to route under, in queue order: the one sender below
      // hands them to the stream in that order.
      relay->set_seq(relay->sync() ? link->seq : ++link->seq);
      const std::shared_ptr<const Topology> topology = service_->SharedTopology();
      out->epoch = topology == nullptr ? 0 : topology->epoch();
      link->bytes_in_flight += out->bytes;
      total_in_flight_.fetch_add(out->bytes, std::memory_order_relaxed);
      link->queue.push_back(std::move(out));
      if (link->sending) return;
      link->sending = true;
    }
  }
  if (out != nullptr) {  // Over the bound: failed at once.
    v1::OperationResult failed;
    failed.mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
    out->done(failed);
    return;
  }
  // This thread sends what is queued, no lock held across ForwardStreams::Send (which
  // starts gRPC writes); another thread's relays queued meanwhile go out after.
  for (;;) {
    std::deque<std::unique_ptr<Outgoing>> batch;
    {
      MutexLock lock(&link->mu);
      if (link->queue.empty()) {
        link->sending = false;
        return;
      }
      batch.swap(link->queue);
    }
    for (std::unique_ptr<Outgoing>& o : batch) {
      // A relay's deadline is the publish's bound, not a forward's: its expiry fails the
      // relay without declaring the shared stream stuck (our_deadline false).
      service_->forward_streams()->Send(
          o->target, o->epoch, std::move(o->message), o->bytes, o->deadline,
          /*our_deadline=*/false,
          [this, link, bytes = o->bytes, done = std::move(o->done)](v1::PipelineResponse* results) {
            {
              MutexLock lock(&link->mu);
              link->bytes_in_flight -= bytes;
            }
            total_in_flight_.fetch_sub(bytes, std::memory_order_relaxed);
            static const v1::OperationResult kMissing = [] {
              v1::OperationResult r;
              r.mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
              return r;
            }();
            done(results->results_size() > 0 ? results->results(0) : kMissing);
          });
    }
  }
}

grpc::Status PubSubRelay::Receive(const RequestMetadata& md, const v1::PublishRequest& request,
                                  v1::PublishResponse* out) {
  if (!request.has_relay()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a publish forwarded by member " +
                                                    std::string(md.forwarded_by) +
                                                    " has no PublishRequest.relay"};
  }
  if (grpc::Status s = CheckSizes(request); !s.ok()) return s;
  const v1::PublishRelay& relay = request.relay();
  Inbound* in = InboundFrom(std::string(md.forwarded_by));
  if (in == nullptr) {  // Untracked (see InboundFrom).
    if (!relay.sync()) {
      out->set_receivers(hub_->Publish(request.channel(), request.payload(), relay.version()));
    }
    return grpc::Status::OK;
  }
  MutexLock lock(&in->mu);
  // Relays of this origin that went missing (each may or may not have matched a
  // subscription here): every subscription skips that many numbers.
  uint64_t lost = 0;
  if (!in->known || in->incarnation != relay.incarnation()) {
    // A new incarnation numbers from 1: a first number above it means some went missing
    // (unless this node has never heard from the origin: it had no subscriber to miss
    // them then).
    const uint64_t first = relay.sync() ? 0 : 1;
    if (in->known && relay.seq() > first) lost = relay.seq() - first;
    in->known = true;
    in->incarnation = relay.incarnation();
    in->last = relay.seq();
  } else if (relay.seq() <= in->last) {
    if (!relay.sync()) return grpc::Status::OK;  // Behind a newer one: dropped (see header).
  } else {
    const uint64_t expected = in->last + (relay.sync() ? 0 : 1);
    if (relay.seq() > expected) lost = relay.seq() - expected;
    in->last = relay.seq();
  }
  if (lost > 0) {
    // A member's claim, bounded: past it the count says "at least".
    hub_->NoteGap(std::min<uint64_t>(lost, kMaxReportedGap));
  }
  if (!relay.sync()) {
    out->set_receivers(hub_->Publish(request.channel(), request.payload(), relay.version()));
  }
  return grpc::Status::OK;
}

void PubSubRelay::Tick() {
  std::unique_lock lock(ticker_mu_);
  while (!ticker_cv_.wait_for(lock, options_.sync_interval, [this] { return stopping_; })) {
    lock.unlock();
    if (options_.on_tick) options_.on_tick();
    std::vector<std::pair<std::string, Link*>> marked;
    const std::shared_ptr<const Topology> topology = service_->SharedTopology();
    {
      MutexLock links_lock(&links_mu_);
      for (const auto& entry : links_) {
        Link* link = entry.second.get();
        if (!link->needs_sync.load(std::memory_order_acquire)) continue;
        // A peer that left the view has no subscriber of this cluster left to tell.
        const std::string& address = entry.first;
        const bool member =
            topology != nullptr &&
            std::any_of(topology->view.members.begin(), topology->view.members.end(),
                        [&](const ClusterMember& m) { return m.peer_address() == address; });
        link->needs_sync.store(false, std::memory_order_release);
        if (member) marked.emplace_back(address, link);
      }
    }
    for (const auto& entry : marked) {
      if (service_->forward_streams() == nullptr) break;
      Link* link = entry.second;
      std::string id;
      {
        MutexLock link_lock(&link->mu);
        id = link->id;
      }
      v1::PublishRequest sync;
      sync.mutable_relay()->set_sync(true);
      const auto deadline = std::chrono::system_clock::now() + options_.publish_timeout;
      SendRelay(link, id, entry.first, std::move(sync), deadline,
                [link](const v1::OperationResult& result) {
                  if (result.status().code() != 0) {
                    link->needs_sync.store(true, std::memory_order_release);
                  }
                });
    }
    lock.lock();
  }
}

}  // namespace ringcache::internal

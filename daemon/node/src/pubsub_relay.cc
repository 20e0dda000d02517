#include "pubsub_relay.h"

#include <algorithm>
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

PubSubRelay::~PubSubRelay() {
  {
    std::lock_guard lock(ticker_mu_);
    stopping_ = true;
  }
  ticker_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

grpc::Status PubSubRelay::CheckSizes(const v1::PublishRequest& request) const {
  const NodeOptions& o = service_->node()->options();
  if (request.channel().size() > o.max_key_bytes) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "PublishRequest.channel of " + std::to_string(request.channel().size()) +
                " bytes is over the limit of " + std::to_string(o.max_key_bytes) +
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
  const std::shared_ptr<const Topology> topology = service_->SharedTopology();
  std::vector<const ClusterMember*> peers;
  if (topology != nullptr && service_->forward_streams() != nullptr) {
    // A member declared failed is not waited for (its subscribers' streams have ended);
    // one only suspected still is, up to the bound.
    for (const ClusterMember& m : topology->view.members) {
      if (m.id != service_->self_id() && m.state != MemberState::kFailed) peers.push_back(&m);
    }
  }
  // Here first: the publisher's own node delivers before any other, in call order.
  const size_t local = hub_->Publish(request.channel(), request.payload());
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
  const auto bound = std::chrono::system_clock::now() + options_.publish_timeout;
  const bool ours = bound < caller_deadline;
  const auto deadline = ours ? bound : caller_deadline;
  for (const ClusterMember* peer : peers) {
    Link* link = LinkTo(peer->peer_address());
    SendRelay(link, peer->id, peer->peer_address(), request, deadline, ours,
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

void PubSubRelay::SendRelay(Link* link, const std::string& id, const std::string& address,
                            v1::PublishRequest request,
                            std::chrono::system_clock::time_point deadline, bool our_deadline,
                            std::function<void(const v1::OperationResult&)> done) {
  v1::PipelineRequest message;
  v1::Operation* op = message.add_ops();
  *op->mutable_publish() = std::move(request);
  const size_t bytes = CacheService::ForwardBytes(*op);
  v1::PublishRelay* relay = op->mutable_publish()->mutable_relay();
  relay->set_incarnation(options_.incarnation);
  const std::shared_ptr<const Topology> topology = service_->SharedTopology();
  const uint64_t epoch = topology == nullptr ? 0 : topology->epoch();
  // Numbered and queued under the link's lock: numbers reach the stream in order.
  MutexLock lock(&link->mu);
  link->id = id;
  relay->set_seq(relay->sync() ? link->seq : ++link->seq);
  service_->forward_streams()->Send(
      ForwardTarget{id, address}, epoch, std::move(message), bytes, deadline, our_deadline,
      [done = std::move(done)](v1::PipelineResponse* results) {
        static const v1::OperationResult kMissing = [] {
          v1::OperationResult r;
          r.mutable_status()->set_code(static_cast<int32_t>(grpc::StatusCode::UNAVAILABLE));
          return r;
        }();
        done(results->results_size() > 0 ? results->results(0) : kMissing);
      });
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
    if (!relay.sync()) out->set_receivers(hub_->Publish(request.channel(), request.payload()));
    return grpc::Status::OK;
  }
  MutexLock lock(&in->mu);
  bool gap = false;
  if (!in->known || in->incarnation != relay.incarnation()) {
    // A new incarnation numbers from 1: a first number above it means some went missing
    // (unless this node has never heard from the origin: it had no subscriber to miss
    // them then).
    gap = in->known && relay.seq() > (relay.sync() ? 0 : 1);
    in->known = true;
    in->incarnation = relay.incarnation();
    in->last = relay.seq();
  } else if (relay.seq() <= in->last) {
    if (!relay.sync()) return grpc::Status::OK;  // Behind a newer one: dropped (see header).
  } else {
    gap = relay.seq() > in->last + (relay.sync() ? 0 : 1);
    in->last = relay.seq();
  }
  if (gap) {
    gaps_seen_.fetch_add(1, std::memory_order_relaxed);
    hub_->NoteGap();
  }
  if (!relay.sync()) out->set_receivers(hub_->Publish(request.channel(), request.payload()));
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
      SendRelay(link, id, entry.first, std::move(sync), deadline, /*our_deadline=*/true,
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

// PubSubRelay: the cluster half of pub/sub (docs/design/pubsub.md). A message published
// through any node is delivered to that node's own subscribers (PubSub) and passed on to
// every other member of its view, which delivers it to theirs: Redis Cluster's classic
// broadcast, one hop, on the forwarding streams the node already keeps to each peer
// (ForwardStreams), so a subscriber never needs to know where a channel "lives".
//
//   relay.Publish(request, caller_deadline, [](grpc::Status s, v1::PublishResponse r) {...});
//   relay.Receive(md, request, &response);      // a peer's relay, from its Pipeline stream
//
// A member declared failed is not sent the message (nor waited for) but the message
// takes its number for that member, which is marked for a sync: a member that was only
// cut off, and kept its subscribers, learns of the gap once it is reachable again.
//
// Counting: each node answers how many of its subscriptions it buffered the message for;
// Publish sums the answers that come back within min(caller's deadline, publish_timeout)
// and counts the other members in nodes_unreached. It never waits longer: a slow or dead
// peer costs a publish at most that bound.
//
// Gaps: every relay carries (this node's incarnation, a sequence number per peer). A peer
// that sees a number skipped, or that learns of a newer number from a sync, calls
// PubSub::NoteGap: each of its subscriptions skips a sequence number, which its reader
// sees (in the next message or heartbeat). A relay that failed leaves its peer marked; the
// ticker (which also runs Options::on_tick) sends the peer a sync (the last number sent) every
// sync_interval until one gets through, so a lost message shows within about that interval even if
// nothing else is published. A relay that arrives after a newer one from the same incarnation (only
// possible across a change of forwarding stream) is dropped, so that each publisher's
// order holds; the skip it left was already reported. What cannot be seen: a message lost
// together with the node it was published through (its publisher saw the call fail).
//
// Threads and locking: Publish and Receive run on gRPC threads. links_mu_ -> Link::mu
// (outgoing); inbound_mu_ -> Inbound::mu. A relay is numbered and queued under its Link's
// mu, and one thread at a time hands a link's queue to ForwardStreams in order, with no
// lock held (Send starts gRPC writes). An Inbound's mu is held across the delivery (so
// messages of one origin are delivered in order). The ticker thread sends syncs.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "cache_service.h"
#include "request_metadata.h"
#include "ringcache/pubsub.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

class CacheService;

class PubSubRelay {
 public:
  using Done = std::function<void(grpc::Status, v1::PublishResponse)>;

  struct Options {
    uint64_t incarnation = 0;  // This node's; random per start.
    std::chrono::milliseconds publish_timeout{250};
    std::chrono::milliseconds sync_interval{1000};
    // Called by the ticker every sync_interval (the Subscribe streams' heartbeats).
    std::function<void()> on_tick;
  };

  // Relay bytes one peer may have outstanding (sent, not yet answered); past it a
  // message is not sent to that peer (it is reported unreached, and the peer learns of
  // the gap by a sync).
  static constexpr uint64_t kMaxRelayBytesInFlight = uint64_t{32} << 20;
  // And over every peer together (one relay per peer is still always admitted).
  static constexpr uint64_t kMaxRelayBytesInFlightTotal = uint64_t{32} << 20;
  // The most numbers one gap skips (a peer's claim; more reads as "at least this many").
  static constexpr uint64_t kMaxReportedGap = uint64_t{1} << 20;
  // What a relay's channel may have beyond --max-key-bytes: a keyspace event's prefix.
  static constexpr uint64_t kEventChannelSlack = 32;

  // `service` (forwarding, topology, limits) and `hub` are not owned and outlive this.
  PubSubRelay(const CacheService* service, PubSub* hub, Options options);
  ~PubSubRelay();  // Stop().
  // Stops the ticker. Relays still in flight keep their callbacks valid until the
  // forwarding streams end: the owner stops this, then ends the streams, then destroys it.
  void Stop();
  PubSubRelay(const PubSubRelay&) = delete;
  PubSubRelay& operator=(const PubSubRelay&) = delete;

  // A client's publish: checks the request (sizes, no relay part), delivers here, relays
  // to every other member and calls `done` once with the sum (inline when there is no
  // other member).
  void Publish(const v1::PublishRequest& request,
               std::chrono::system_clock::time_point caller_deadline, Done done);
  // A keyspace event (KeyspaceEvents::Sink): delivered and relayed as Publish does, with
  // `version` in the messages, without a caller to answer. Called in event order from
  // one thread (the relay keeps that order to every peer).
  void PublishEvent(std::string channel, std::string payload, uint64_t version);
  // `count` messages that should have been published here were dropped (the keyspace
  // event queue was full): subscribers here and on every other member see that gap.
  void NoteDropped(uint64_t count);
  // A peer's relay (md.forwarded_by names it): delivers here only.
  grpc::Status Receive(const RequestMetadata& md, const v1::PublishRequest& request,
                       v1::PublishResponse* out);

  uint64_t incarnation() const { return options_.incarnation; }
  // Relays that failed or timed out (the gaps seen here are PubSub::Stats::gaps).
  uint64_t relay_failures() const { return relay_failures_.load(std::memory_order_relaxed); }

 private:
  using Relayed = std::function<void(const v1::OperationResult&)>;
  // A relay numbered and waiting to be handed to the forwarding streams.
  struct Outgoing {
    v1::PipelineRequest message;
    size_t bytes = 0;
    ForwardTarget target;
    uint64_t epoch = 0;
    std::chrono::system_clock::time_point deadline;
    Relayed done;
  };
  // What this node sends to one peer.
  struct Link {
    Mutex mu;
    uint64_t seq RC_GUARDED_BY(mu) = 0;
    std::string id RC_GUARDED_BY(mu);
    // Numbered relays not yet handed to the streams, and whether a thread is handing
    // them over (only one does, in order).
    std::deque<std::unique_ptr<Outgoing>> queue RC_GUARDED_BY(mu);
    bool sending RC_GUARDED_BY(mu) = false;
    uint64_t bytes_in_flight RC_GUARDED_BY(mu) = 0;
    std::atomic<bool> needs_sync{false};
  };
  // What this node received from one origin.
  struct Inbound {
    Mutex mu;
    bool known RC_GUARDED_BY(mu) = false;
    uint64_t incarnation RC_GUARDED_BY(mu) = 0;
    uint64_t last RC_GUARDED_BY(mu) = 0;
  };

  grpc::Status CheckSizes(const v1::PublishRequest& request) const;
  // Delivers here, relays to every other member, answers `done` (see Publish).
  void Fanout(const v1::PublishRequest& request,
              std::chrono::system_clock::time_point caller_deadline, Done done);
  Link* LinkTo(const std::string& address);
  Inbound* InboundFrom(const std::string& origin);
  // Sends `request` (its relay part filled here) to the peer at `address` as one Pipeline
  // operation; `done` gets the peer's answer or the failure (at once, over
  // kMaxRelayBytesInFlight).
  void SendRelay(Link* link, const std::string& id, const std::string& address,
                 v1::PublishRequest request, std::chrono::system_clock::time_point deadline,
                 Relayed done);
  // Messages this node does not send to `link`'s peer (declared failed, or dropped) still
  // take numbers there, and the peer is marked for a sync.
  void SkipPeer(Link* link, const std::string& id, uint64_t count = 1);
  void Tick();

  const CacheService* const service_;
  PubSub* const hub_;
  const Options options_;

  Mutex links_mu_;
  std::unordered_map<std::string, std::unique_ptr<Link>> links_ RC_GUARDED_BY(links_mu_);
  Mutex inbound_mu_;
  std::unordered_map<std::string, std::unique_ptr<Inbound>> inbound_ RC_GUARDED_BY(inbound_mu_);

  std::atomic<uint64_t> relay_failures_{0};
  // Relay bytes sent and not yet answered, over every link.
  std::atomic<uint64_t> total_in_flight_{0};

  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool stopping_ = false;  // Protected by ticker_mu_.
  std::thread ticker_;
};

}  // namespace ringcache::internal

// ringcache::client's Publish and Subscribe against a real 3-node cluster: messages
// published through the client reach a subscription wherever it is; the subscription
// reopens itself on another node when its node is killed, marking the break with a gap;
// Close ends a waiting Next.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster_harness.h"
#include "ringcache/client/client.h"

namespace ringcache {
namespace {

using client::Client;
using client::PubSubEvent;
using client::SubscribeOptions;
using it::TestCluster;
using namespace std::chrono_literals;

std::unique_ptr<Client> MustConnect(const TestCluster& cluster) {
  Result<std::unique_ptr<Client>> c = Client::Connect({.seeds = cluster.addresses()});
  REQUIRE(c.ok());
  return std::move(c).value();
}

// The next message (skipping nothing): fails the test on a gap, a timeout or an end.
PubSubEvent NextMessage(client::Subscription& sub) {
  Result<PubSubEvent> e = sub.Next(10s);
  REQUIRE(e.ok());
  return *e;
}

TEST_CASE("Client Publish reaches a client Subscription on any node, channels and patterns",
          "[client][pubsub]") {
  TestCluster cluster({.nodes = 3});
  REQUIRE(cluster.Start());
  auto c = MustConnect(cluster);
  Result<std::unique_ptr<client::Subscription>> sub =
      c->Subscribe({.channels = {"orders"}, .patterns = {"user:*"}});
  REQUIRE(sub.ok());
  const std::string on = (*sub)->node();
  CHECK_FALSE(on.empty());

  // Round-robin: these go through every node.
  for (int i = 0; i < 6; ++i) {
    Result<client::PublishResult> r =
        c->Publish(i % 2 == 0 ? "orders" : "user:7", "m" + std::to_string(i));
    REQUIRE(r.ok());
    CHECK(r->receivers == 1);
    CHECK(r->nodes_unreached == 0);
  }
  Result<client::PublishResult> none = c->Publish("other", "x");
  REQUIRE(none.ok());
  CHECK(none->receivers == 0);
  for (int i = 0; i < 6; ++i) {
    const PubSubEvent e = NextMessage(**sub);
    CHECK(e.kind == PubSubEvent::Kind::kMessage);
    CHECK(e.seq == static_cast<uint64_t>(i + 1));
    CHECK(e.payload == "m" + std::to_string(i));
    CHECK(e.pattern == (i % 2 == 0 ? "" : "user:*"));
  }
  Result<PubSubEvent> idle = (*sub)->Next(50ms);
  CHECK(idle.status().code() == StatusCode::kDeadlineExceeded);

  CHECK(c->Subscribe(SubscribeOptions{}).status().code() == StatusCode::kInvalidArgument);
  (*sub)->Close();
  CHECK((*sub)->Next(1s).status().code() == StatusCode::kCancelled);
}

TEST_CASE("A client Subscription reopens on another node when its node dies, with a gap",
          "[client][pubsub]") {
  TestCluster cluster({.nodes = 3});
  REQUIRE(cluster.Start());
  auto c = MustConnect(cluster);
  Result<std::unique_ptr<client::Subscription>> sub = c->Subscribe({.channels = {"ch"}});
  REQUIRE(sub.ok());
  const std::string first = (*sub)->node();
  size_t victim = 0;
  while (cluster.id(victim) != first) ++victim;
  REQUIRE(c->Publish("ch", "before")->receivers == 1);
  CHECK(NextMessage(**sub).payload == "before");

  cluster.Kill(victim);
  // The break shows as a gap of unknown size, then the stream is on another node.
  const PubSubEvent gap = NextMessage(**sub);
  CHECK(gap.kind == PubSubEvent::Kind::kGap);
  CHECK(gap.missed == 0);
  CHECK((*sub)->node() != first);
  CHECK((*sub)->reconnects() == 1);
  // Through the surviving nodes (the client may still list the dead one: retry).
  bool delivered = false;
  for (int i = 0; i < 20 && !delivered; ++i) {
    Result<client::PublishResult> r = c->Publish("ch", "after");
    delivered = r.ok() && r->receivers == 1;
  }
  REQUIRE(delivered);
  const PubSubEvent after = NextMessage(**sub);
  CHECK(after.kind == PubSubEvent::Kind::kMessage);
  CHECK(after.payload == "after");
  CHECK(after.seq == 1);  // A new stream numbers from 1.
}

}  // namespace
}  // namespace ringcache

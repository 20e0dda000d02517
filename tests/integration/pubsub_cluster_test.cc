// Pub/sub across a cluster (docs/design/pubsub.md): messages published through any node
// reach the subscribers of every node, once each, in each publisher's order; patterns;
// ten thousand channels; a slow subscriber is cut off with RESOURCE_EXHAUSTED; a gap in
// what a node receives shows as a skipped sequence number; heartbeats; subscribers of
// the other nodes survive a kill -9, and those of the killed node see their stream end.
#include <grpcpp/client_context.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster_checks.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "subscriber.h"

namespace ringcache::it {
namespace {

using namespace checks;
using namespace std::chrono_literals;

TEST_CASE("Messages published through every node reach every subscriber once, in order",
          "[cluster][pubsub]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < cluster.size(); ++i) stubs.push_back(cluster.Stub(i));

  // On every node: one subscriber by channel, one by pattern (matching both channels),
  // one by both (two deliveries of each message, as Redis gives "message" and
  // "pmessage").
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    subs.push_back(std::make_unique<Subscriber>(
        stubs[i].get(), std::vector<std::string>{"news", "sport"}, std::vector<std::string>{}));
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(), std::vector<std::string>{},
                                                std::vector<std::string>{"[ns]*"}));
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(), std::vector<std::string>{"news"},
                                                std::vector<std::string>{"n?ws"}));
  }
  for (const auto& s : subs) REQUIRE(s->started());
  CHECK(subs[0]->started_info().node_id() == cluster.id(0));
  CHECK(subs[0]->started_info().channels() == 2);

  // One publisher per node, concurrently; every answer counts every subscription.
  constexpr int kPerPublisher = 150;
  std::vector<std::vector<std::string>> failures(cluster.size());
  std::vector<std::thread> publishers;
  for (size_t p = 0; p < cluster.size(); ++p) {
    publishers.emplace_back([&, p] {
      for (int m = 0; m < kPerPublisher; ++m) {
        const std::string channel = m % 2 == 0 ? "news" : "sport";
        v1::PublishResponse r;
        const grpc::Status s =
            Publish(stubs[p].get(), channel, "p" + std::to_string(p) + ":" + std::to_string(m), &r);
        // news: 3 nodes x (channel + pattern + channel + pattern) = 12; sport: 3 x 2 = 6.
        const uint64_t want = channel == "news" ? 12 : 6;
        if (!s.ok() || r.receivers() != want || r.nodes_unreached() != 0) {
          failures[p].push_back(channel + " " + std::to_string(m) + ": " + s.error_message() +
                                " receivers " + std::to_string(r.receivers()) + " unreached " +
                                std::to_string(r.nodes_unreached()));
        }
      }
    });
  }
  for (auto& t : publishers) t.join();
  for (const auto& f : failures) {
    INFO((f.empty() ? std::string() : f.front()));
    CHECK(f.empty());
  }

  const size_t total = cluster.size() * kPerPublisher;
  // The third sees only the news (half), twice.
  const std::vector<size_t> want = {total, total, total};
  REQUIRE(Eventually(
      [&] {
        for (size_t i = 0; i < subs.size(); ++i) {
          if (subs[i]->count() < want[i % 3]) return false;
        }
        return true;
      },
      20s));
  std::this_thread::sleep_for(200ms);  // Anything extra (a duplicate) would show now.
  for (size_t i = 0; i < subs.size(); ++i) {
    const std::vector<v1::PubSubMessage> got = subs[i]->messages();
    INFO("subscriber " << i << " on " << cluster.id(i / 3));
    CHECK(got.size() == want[i % 3]);
    std::map<std::string, int> next;  // Per publisher and subscription kind.
    bool numbered = true;
    bool ordered = true;
    for (size_t k = 0; k < got.size(); ++k) {
      numbered = numbered && got[k].seq() == k + 1;
      const std::string& payload = got[k].payload();
      const std::string publisher = payload.substr(0, payload.find(':'));
      const int m = std::stoi(payload.substr(payload.find(':') + 1));
      int& n = next[publisher + "/" + got[k].pattern()];
      // A subscriber of both "news" and "n?ws" sees the news twice but sport not at all.
      ordered = ordered && m >= n;
      n = m + 1;
      if (i % 3 == 1) ordered = ordered && got[k].pattern() == "[ns]*";
    }
    CHECK(numbered);
    CHECK(ordered);
    CHECK(subs[i]->last_seq() == got.size());
  }
}

TEST_CASE("Ten thousand channels and patterns across nodes", "[cluster][pubsub]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  auto stub1 = cluster.Stub(0);
  auto stub2 = cluster.Stub(1);
  std::vector<std::string> channels;
  for (int i = 0; i < 10000; ++i) channels.push_back("ch:" + std::to_string(i));
  Subscriber many(stub1.get(), channels, {"user:*:login"});
  REQUIRE(many.started());
  CHECK(many.started_info().channels() == 10000);
  CHECK(many.started_info().patterns() == 1);

  int published = 0;
  for (int i = 0; i < 10000; i += 97) {
    v1::PublishResponse r;
    REQUIRE(Publish(stub2.get(), "ch:" + std::to_string(i), "x", &r).ok());
    CHECK(r.receivers() == 1);
    ++published;
  }
  v1::PublishResponse r;
  REQUIRE(Publish(stub2.get(), "user:7:login", "hi", &r).ok());
  CHECK(r.receivers() == 1);
  REQUIRE(Publish(stub2.get(), "user:7:logout", "bye", &r).ok());
  CHECK(r.receivers() == 0);
  REQUIRE(Publish(stub2.get(), "ch:10000", "none", &r).ok());
  CHECK(r.receivers() == 0);
  REQUIRE(Eventually([&] { return many.count() >= static_cast<size_t>(published + 1); }, 10s));
  const auto got = many.messages();
  CHECK(got.size() == static_cast<size_t>(published + 1));
  CHECK(got.back().channel() == "user:7:login");
  CHECK(got.back().pattern() == "user:*:login");
}

TEST_CASE("A subscriber that reads too slowly is cut off and its buffer freed",
          "[cluster][pubsub]") {
  NodeProcess node({"--subscriber-buffer-bytes", "64KiB"});
  RequireStart(node);
  auto stub = node.NewStub();
  Subscriber slow(stub.get(), {"firehose"}, {}, /*read=*/false);
  Subscriber fast(stub.get(), {"firehose"}, {});
  REQUIRE(slow.started());
  const std::string payload(1024, 'x');
  // The slow stream's transport windows fill first, then its 64 KiB buffer.
  int cut_at = -1;
  for (int i = 0; i < 20000 && cut_at < 0; ++i) {
    v1::PublishResponse r;
    REQUIRE(Publish(stub.get(), "firehose", payload, &r).ok());
    if (r.receivers() == 1) cut_at = i;
  }
  INFO("cut off after " << cut_at << " messages");
  REQUIRE(cut_at > 0);
  slow.StartReading();
  REQUIRE(Eventually([&] { return slow.ended(); }, 10s));
  const grpc::Status s = slow.status();
  CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(s.error_message(),
             Catch::Contains("--subscriber-buffer-bytes") && Catch::Contains("65536"));
  // What it got before the cut is numbered without a hole.
  const auto got = slow.messages();
  bool numbered = true;
  for (size_t k = 0; k < got.size(); ++k) numbered = numbered && got[k].seq() == k + 1;
  CHECK(numbered);
  CHECK(got.size() < static_cast<size_t>(cut_at) + 1);
  // The fast one is unaffected.
  REQUIRE(Eventually([&] { return fast.count() == static_cast<size_t>(cut_at) + 1; }, 10s));
  CHECK_FALSE(fast.ended());
}

TEST_CASE("Slow subscribers cost a node at most their buffers and 64 MiB", "[cluster][pubsub]") {
  // The bound: memory within the budget + subscribers x buffer + 64 MiB. Sixteen
  // subscribers never read; up to 128 MiB of messages are published at them (unbounded
  // buffers would hold them all: the check would fail). VmHWM is the peak resident size.
  constexpr int kSlow = 16;
  constexpr uint64_t kBuffer = 256 << 10;
  NodeProcess node({"--subscriber-buffer-bytes", "256KiB", "--memory", "64MiB"});
  RequireStart(node);
  auto stub = node.NewStub();
  std::vector<std::unique_ptr<Subscriber>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<Subscriber>(stub.get(), std::vector<std::string>{"flood"},
                                                std::vector<std::string>{}, /*read=*/false));
    REQUIRE(slow.back()->started());
  }
  const uint64_t before = ProcStatusBytes(node.Pid(), "VmRSS");
  const std::string payload(16 << 10, 'x');
  int cut_at = -1;
  for (int i = 0; i < 8192 && cut_at < 0; ++i) {
    v1::PublishResponse r;
    REQUIRE(Publish(stub.get(), "flood", payload, &r).ok());
    if (r.receivers() == 0) cut_at = i;  // Every slow subscriber has been cut off.
  }
  const uint64_t peak = ProcStatusBytes(node.Pid(), "VmHWM");
  INFO("all cut off after " << cut_at << " messages of 16 KiB; resident " << (before >> 20)
                            << " MiB before, peak " << (peak >> 20) << " MiB");
  CHECK(cut_at > 0);
  CHECK(peak <= before + kSlow * kBuffer + (uint64_t{64} << 20));
  it::checks::Figure("slow-subscribers-memory",
                     "peak " + std::to_string(peak >> 20) + " MiB, before " +
                         std::to_string(before >> 20) + " MiB, bound +" +
                         std::to_string((kSlow * kBuffer + (uint64_t{64} << 20)) >> 20) + " MiB");
}

TEST_CASE("A relay that skips a number shows as a gap and an idle stream gets heartbeats",
          "[cluster][pubsub]") {
  TestCluster cluster(
      {.nodes = 2, .replication_factor = 1, .extra_args = {"--pubsub-heartbeat-ms", "100"}});
  RequireStart(cluster);
  auto stub = cluster.Stub(0);
  Subscriber sub(stub.get(), {"ch"}, {});
  REQUIRE(sub.started());
  CHECK(sub.started_info().heartbeat_ms() == 100);
  REQUIRE(Eventually([&] { return sub.heartbeats() >= 2; }, 5s));

  // What n2 would send n1 (an open cluster: no secret needed to claim it).
  const auto relay = [&](uint64_t seq, bool sync) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("ringcache-forwarded-by", cluster.id(1));
    v1::PublishRequest request;
    request.set_channel("ch");
    request.set_payload("seq " + std::to_string(seq));
    request.mutable_relay()->set_incarnation(0xfeed);
    request.mutable_relay()->set_seq(seq);
    request.mutable_relay()->set_sync(sync);
    v1::PublishResponse r;
    const grpc::Status s = stub->Publish(&ctx, request, &r);
    return s.ok() ? static_cast<int64_t>(r.receivers()) : -1;
  };
  CHECK(relay(1, false) == 1);
  CHECK(relay(2, false) == 1);
  CHECK(relay(4, false) == 1);  // 3 went missing: the stream skips a number.
  CHECK(relay(3, false) == 0);  // Late, behind 4: dropped, so that order holds.
  CHECK(relay(6, true) == 0);   // A sync: 5 and 6 were sent and never came.
  REQUIRE(Eventually([&] { return sub.last_seq() >= 6; }, 5s));
  const auto got = sub.messages();
  REQUIRE(got.size() == 3);
  CHECK(got[0].seq() == 1);
  CHECK(got[1].seq() == 2);
  CHECK(got[2].seq() == 4);
  CHECK(got[2].payload() == "seq 4");
  CHECK(sub.last_seq() == 6);  // The sync reports two missing, shown by a heartbeat.

  // A client may not send a relay.
  v1::PublishRequest forged;
  forged.set_channel("ch");
  forged.mutable_relay()->set_seq(1);
  v1::PublishResponse r;
  grpc::ClientContext ctx;
  const grpc::Status s = stub->Publish(&ctx, forged, &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("relay"));
}

TEST_CASE("Publish and Subscribe refuse what is over the limits", "[cluster][pubsub]") {
  NodeProcess node({"--max-key-bytes", "64", "--max-value-bytes", "1KiB"});
  RequireStart(node);
  auto stub = node.NewStub();
  v1::PublishResponse r;
  grpc::Status s = Publish(stub.get(), std::string(65, 'c'), "x", &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("--max-key-bytes"));
  s = Publish(stub.get(), "c", std::string(1025, 'x'), &r);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("--max-value-bytes"));

  for (const bool empty : {true, false}) {
    grpc::ClientContext ctx;
    v1::SubscribeRequest request;
    if (!empty) request.add_patterns(std::string(65, 'p'));
    auto stream = stub->Subscribe(&ctx, request);
    v1::SubscribeResponse first;
    CHECK_FALSE(stream->Read(&first));
    s = stream->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(),
               Catch::Contains(empty ? "no channel and no pattern" : "over the limit of 64"));
  }
}

TEST_CASE("Subscribers outlive a kill -9 of another node and the killed node sees its streams end",
          "[cluster][pubsub]") {
  TestCluster cluster({.nodes = 3, .extra_args = {"--publish-timeout-ms", "200"}});
  RequireStart(cluster);
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < cluster.size(); ++i) stubs.push_back(cluster.Stub(i));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(), std::vector<std::string>{"ch"},
                                                std::vector<std::string>{}));
    REQUIRE(subs.back()->started());
  }
  v1::PublishResponse r;
  REQUIRE(Publish(stubs[0].get(), "ch", "before", &r).ok());
  CHECK(r.receivers() == 3);

  cluster.Kill(2);
  REQUIRE(Eventually([&] { return subs[2]->ended(); }, 10s));
  CHECK(subs[2]->status().error_code() == grpc::StatusCode::UNAVAILABLE);
  // While n3 is still in the view, a publish counts it unreached instead of waiting on it.
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(Publish(stubs[0].get(), "ch", "during", &r).ok());
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(r.receivers() == 2);
  CHECK(r.nodes_unreached() <= 1);  // 0 if the failure detector was quicker.
  REQUIRE(Eventually([&] { return AllSee(cluster, cluster.id(2), v1::MEMBER_STATE_FAILED); }, 15s));
  REQUIRE(Publish(stubs[1].get(), "ch", "after", &r).ok());
  CHECK(r.receivers() == 2);
  CHECK(r.nodes_unreached() == 0);  // A failed member is not asked.
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(Eventually([&] { return subs[i]->count() == 3; }, 10s));
    const auto got = subs[i]->messages();
    CHECK(got[0].payload() == "before");
    CHECK(got[1].payload() == "during");
    CHECK(got[2].payload() == "after");
    CHECK_FALSE(subs[i]->ended());
  }

  // A graceful stop ends a stream with a message that says where to go.
  cluster.node(1).Signal(SIGTERM);
  REQUIRE(Eventually([&] { return subs[1]->ended(); }, 10s));
  const grpc::Status stopped = subs[1]->status();
  CHECK(stopped.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(stopped.error_message(), Catch::Contains("shutting down"));
}

TEST_CASE("A member declared failed while it kept its subscribers sees the gap once back",
          "[cluster][pubsub]") {
  TestCluster cluster({.nodes = 3, .extra_args = {"--pubsub-heartbeat-ms", "100"}});
  RequireStart(cluster);
  auto stub1 = cluster.Stub(0);
  auto stub3 = cluster.Stub(2);
  Subscriber sub(stub3.get(), {"ch"}, {});
  REQUIRE(sub.started());
  v1::PublishResponse r;
  REQUIRE(Publish(stub1.get(), "ch", "before", &r).ok());
  CHECK(r.receivers() == 1);
  REQUIRE(Eventually([&] { return sub.count() == 1; }, 10s));

  // n3 stops (its connections stay open) until the others declare it failed; what is
  // published meanwhile is not sent to it, but takes its number there.
  REQUIRE(cluster.node(2).SignalStopAndWait(5s));
  const auto others_see_failed = [&] {
    for (size_t i = 0; i < 2; ++i) {
      auto view = TopologyOf(*cluster.Stub(i));
      if (!view || StateIn(*view, cluster.id(2)) != v1::MEMBER_STATE_FAILED) return false;
    }
    return true;
  };
  REQUIRE(Eventually(others_see_failed, 15s));
  REQUIRE(Publish(stub1.get(), "ch", "missed", &r).ok());
  CHECK(r.receivers() == 0);
  CHECK(r.nodes_unreached() == 0);  // Declared failed: not waited for.
  cluster.node(2).Signal(SIGCONT);

  // The sync reaches n3 once it answers again: its subscriber sees the number skipped.
  REQUIRE(Eventually([&] { return sub.last_seq() >= 2 || sub.ended(); }, 20s));
  INFO("subscription ended: " << sub.ended() << " " << sub.status().error_message());
  CHECK(sub.last_seq() == 2);
  const auto got = sub.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload() == "before");
}

}  // namespace
}  // namespace ringcache::it

// Keyspace notifications across a cluster (docs/design/pubsub.md, "Keyspace
// notifications"): with --keyspace-events on every node, each key's primary announces its
// changes (set, del, expire, incrby, expired, evicted) to subscribers on every node, in
// the order of the key's versions, with the version; a node without the flag announces
// nothing and says so when a stream starts.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "subscriber.h"

namespace ringcache::it {
namespace {

using namespace checks;
using namespace std::chrono_literals;

constexpr std::string_view kKeyspace = "__keyspace@0__:";

// "event@version" per key, in the order one subscriber got them, from the keyspace
// channels it saw.
std::map<std::string, std::vector<std::string>> ByKey(const std::vector<v1::PubSubMessage>& got) {
  std::map<std::string, std::vector<std::string>> out;
  for (const v1::PubSubMessage& m : got) {
    if (!m.channel().starts_with(kKeyspace)) continue;
    out[m.channel().substr(kKeyspace.size())].push_back(m.payload() + "@" +
                                                        std::to_string(m.version()));
  }
  return out;
}

TEST_CASE("Every key's changes reach subscribers on every node in version order",
          "[cluster][pubsub][keyspace]") {
  TestCluster cluster({.nodes = 3, .extra_args = {"--keyspace-events", "KEA"}});
  RequireStart(cluster);
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < cluster.size(); ++i) stubs.push_back(cluster.Stub(i));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(), std::vector<std::string>{},
                                                std::vector<std::string>{"__keyspace@0__:*"}));
    // By event, as Redis's __keyevent@0__ channels.
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(),
                                                std::vector<std::string>{"__keyevent@0__:del"},
                                                std::vector<std::string>{}));
  }
  for (const auto& s : subs) {
    REQUIRE(s->started());
    CHECK(s->started_info().keyspace_events() == "AKE");
  }

  // Through every node (each write goes to its key's primary), concurrently per node.
  constexpr int kKeys = 30;
  std::vector<std::map<std::string, uint64_t>> versions(cluster.size());  // After each step.
  std::vector<std::string> failures;
  std::mutex failures_mu;
  std::vector<std::thread> writers;
  for (size_t w = 0; w < cluster.size(); ++w) {
    writers.emplace_back([&, w] {
      auto fail = [&](const std::string& what, const grpc::Status& s) {
        std::lock_guard lock(failures_mu);
        failures.push_back(what + ": " + s.error_message());
      };
      for (int k = static_cast<int>(w); k < kKeys; k += static_cast<int>(cluster.size())) {
        const std::string key = "key" + std::to_string(k);
        auto set1 = Set(*stubs[w], key, "a");
        auto set2 = Set(*stubs[w], key, "b", {.ttl_ms = 600'000});
        auto incr = Incr(*stubs[w], "n" + key, 5);
        auto del = Delete(*stubs[w], key);
        if (!set1.status.ok()) fail(key + " set", set1.status);
        if (!set2.status.ok()) fail(key + " set ttl", set2.status);
        if (!incr.status.ok()) fail(key + " incr", incr.status);
        if (!del.status.ok()) fail(key + " del", del.status);
        std::lock_guard lock(failures_mu);
        versions[w][key + "/1"] = set1.response.version();
        versions[w][key + "/2"] = set2.response.version();
        versions[w]["n" + key] = incr.response.version();
      }
    });
  }
  for (auto& t : writers) t.join();
  for (const auto& f : failures) FAIL_CHECK(f);
  std::map<std::string, uint64_t> version;
  for (const auto& v : versions) version.insert(v.begin(), v.end());

  // Per key: set, set + expire, del (at the second set's version); per counter: incrby.
  constexpr size_t kEach = kKeys * 4 + kKeys;
  REQUIRE(Eventually([&] {
    for (size_t i = 0; i < subs.size(); i += 2) {
      if (subs[i]->count() < kEach || subs[i + 1]->count() < kKeys) return false;
    }
    return true;
  }));
  std::this_thread::sleep_for(300ms);  // A duplicate would show now.
  for (size_t i = 0; i < subs.size(); i += 2) {
    INFO("subscriber on " << cluster.id(i / 2));
    const std::vector<v1::PubSubMessage> got = subs[i]->messages();
    CHECK(got.size() == kEach);
    const auto by_key = ByKey(got);
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "key" + std::to_string(k);
      const std::string v1 = std::to_string(version[key + "/1"]);
      const std::string v2 = std::to_string(version[key + "/2"]);
      INFO(key);
      CHECK(by_key.count(key) == 1);
      if (by_key.count(key) == 1) {
        CHECK(by_key.at(key) ==
              std::vector<std::string>{"set@" + v1, "set@" + v2, "expire@" + v2, "del@" + v2});
      }
      const std::string counter = "nkey" + std::to_string(k);
      CHECK(by_key.count(counter) == 1);
      if (by_key.count(counter) == 1) {
        CHECK(by_key.at(counter) ==
              std::vector<std::string>{"incrby@" + std::to_string(version[counter])});
      }
    }
    // The stream numbers every message 1, 2, 3, ...: nothing was lost on the way.
    bool numbered = true;
    for (size_t k = 0; k < got.size(); ++k) numbered = numbered && got[k].seq() == k + 1;
    CHECK(numbered);
    // The event channel: the key as payload.
    std::set<std::string> deleted;
    for (const v1::PubSubMessage& m : subs[i + 1]->messages()) deleted.insert(m.payload());
    CHECK(deleted.size() == kKeys);
  }
}

TEST_CASE("Expiry and eviction are announced once, by the key's primary",
          "[cluster][pubsub][keyspace]") {
  // A small budget, so that writes evict; a short TTL, so the janitor expires.
  TestCluster cluster({.nodes = 3, .extra_args = {"--keyspace-events", "Kxe", "--memory", "4MiB"}});
  RequireStart(cluster);
  auto stub = cluster.Stub(0);
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    auto s = cluster.Stub(i);
    subs.push_back(std::make_unique<Subscriber>(s.get(), std::vector<std::string>{},
                                                std::vector<std::string>{"__keyspace@0__:*"}));
    REQUIRE(subs.back()->started());
  }
  for (int k = 0; k < 10; ++k) {
    REQUIRE(Set(*stub, "short" + std::to_string(k), "v", {.ttl_ms = 300}).status.ok());
  }
  auto expired_of = [](const std::vector<v1::PubSubMessage>& got) {
    std::multiset<std::string> keys;
    for (const auto& m : got) {
      if (m.payload() == "expired") keys.insert(m.channel().substr(kKeyspace.size()));
    }
    return keys;
  };
  REQUIRE(Eventually([&] { return expired_of(subs[0]->messages()).size() >= 10; }));
  // Then eviction: each node is the primary of about a third of the keys and holds a
  // replica's copy of another third, so 4 MiB a node fills with well under 300 values of
  // 32 KiB written.
  const std::string value(32 << 10, 'x');
  for (int k = 0; k < 300; ++k) {
    REQUIRE(Set(*stub, "big" + std::to_string(k), value).status.ok());
  }
  auto evicted_of = [](const std::vector<v1::PubSubMessage>& got) {
    return std::count_if(got.begin(), got.end(),
                         [](const auto& m) { return m.payload() == "evicted"; });
  };
  REQUIRE(Eventually([&] { return evicted_of(subs[2]->messages()) > 0; }));
  std::this_thread::sleep_for(300ms);  // A replica's expiry, if announced, would show now.
  for (const auto& s : subs) {
    const std::vector<v1::PubSubMessage> got = s->messages();
    const std::multiset<std::string> expired = expired_of(got);
    CHECK(expired.size() == 10);  // Once each: replicas expire their copies silently.
    CHECK(std::set<std::string>(expired.begin(), expired.end()).size() == 10);
    CHECK(evicted_of(got) > 0);
    CHECK(std::all_of(got.begin(), got.end(), [](const auto& m) { return m.version() != 0; }));
  }
  // Every subscriber saw the same events.
  CHECK(subs[0]->count() == subs[1]->count());
  CHECK(subs[1]->count() == subs[2]->count());
}

TEST_CASE("Without --keyspace-events nothing is announced and streams say so",
          "[cluster][pubsub][keyspace]") {
  TestCluster cluster({.nodes = 1});
  RequireStart(cluster);
  auto stub = cluster.Stub(0);
  Subscriber sub(stub.get(), {}, {"__key*"});
  REQUIRE(sub.started());
  CHECK(sub.started_info().keyspace_events().empty());
  REQUIRE(Set(*stub, "k", "v").status.ok());
  v1::PublishResponse r;
  REQUIRE(Publish(stub.get(), "__keyspace@0__:marker", "after", &r).ok());
  REQUIRE(Eventually([&] { return sub.count() >= 1; }));
  const std::vector<v1::PubSubMessage> got = sub.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload() == "after");
  CHECK(got[0].version() == 0);  // A client's message carries no version.
}

}  // namespace
}  // namespace ringcache::it

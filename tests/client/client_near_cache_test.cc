// ringcache::client's near cache against a real 3-node cluster with keyspace events: a
// repeated Get is answered from memory; a write through another client drops the entry
// (the next Get sees it); this client's own write is seen at once; a member that stops
// ticking (SIGSTOP) stops the near cache until it is back; a cluster without
// --keyspace-events refuses the near cache at Connect.
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster_checks.h"
#include "cluster_harness.h"
#include "ringcache/client/client.h"

namespace ringcache {
namespace {

using client::Client;
using it::TestCluster;
using it::checks::Eventually;
using namespace std::chrono_literals;

// `max_silence` 0: three heartbeats (the default).
std::unique_ptr<Client> Connect(const TestCluster& cluster, bool near,
                                std::chrono::milliseconds max_silence = {}) {
  Result<std::unique_ptr<Client>> c = Client::Connect(
      {.seeds = cluster.addresses(),
       .near_cache = {.enabled = near, .capacity_bytes = 8 << 20, .max_silence = max_silence}});
  REQUIRE(c.ok());
  return std::move(c).value();
}

// A member that is not the key's primary, nor its replica (3 nodes, factor 2).
size_t Bystander(const Client& c, const TestCluster& cluster, const std::string& key) {
  const std::vector<std::string> owners = c.Owners(key);
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (std::find(owners.begin(), owners.end(), cluster.id(i)) == owners.end()) return i;
  }
  return 0;
}

TEST_CASE("The near cache answers repeated Gets and drops a key another client changes",
          "[client][nearcache]") {
  TestCluster cluster(
      {.nodes = 3, .extra_args = {"--keyspace-events", "KA", "--pubsub-heartbeat-ms", "100"}});
  REQUIRE(cluster.Start());
  auto writer = Connect(cluster, false);
  // A long bound: a loaded machine's pauses must not cost the "all from memory" check.
  auto reader = Connect(cluster, true, 30s);
  REQUIRE(writer->Set("k", "v1").ok());
  // Trusted once every member has ticked on the reader's stream (a tick every 100 ms).
  REQUIRE(Eventually([&] {
    (void)reader->Get("k");
    return reader->near_cache_stats().hits > 0;
  }));
  const uint64_t rpcs = reader->stats().rpcs;
  for (int i = 0; i < 100; ++i) {
    Result<Item> item = reader->Get("k");
    REQUIRE(item.ok());
    CHECK(item->value == "v1");
  }
  CHECK(reader->stats().rpcs == rpcs);  // All from memory.
  // A read of any owner may come from a lagging replica: it is answered, never kept.
  const uint64_t fills = reader->near_cache_stats().fills;
  REQUIRE(writer->Set("replica-read", "x").ok());
  for (int i = 0; i < 5; ++i) {
    CHECK(reader->Get("replica-read", {.read_preference = client::ReadPreference::kAnyOwner}).ok());
  }
  CHECK(reader->near_cache_stats().fills == fills);

  // Another client's write: the event drops the entry, and a Get reads the new value.
  REQUIRE(writer->Set("k", "v2").ok());
  REQUIRE(Eventually([&] {
    Result<Item> item = reader->Get("k");
    return item.ok() && item->value == "v2";
  }));
  CHECK(reader->near_cache_stats().invalidations >= 1);
  REQUIRE(writer->Delete("k").ok());
  REQUIRE(Eventually([&] { return reader->Get("k").status().code() == StatusCode::kNotFound; }));

  // Its own writes are seen at once (no wait for the event).
  for (int i = 0; i < 20; ++i) {
    const std::string value = "own" + std::to_string(i);
    REQUIRE(reader->Set("mine", value).ok());
    Result<Item> item = reader->Get("mine");
    REQUIRE(item.ok());
    CHECK(item->value == value);
    (void)reader->Get("mine");  // A hit, most of the time.
  }
}

TEST_CASE("A member that stops ticking stops the near cache until it is back",
          "[client][nearcache]") {
  // A long failure timeout: the stopped node stays a member (not declared failed).
  TestCluster cluster({.nodes = 3,
                       .extra_args = {"--keyspace-events", "KA", "--pubsub-heartbeat-ms", "100",
                                      "--failure-timeout-ms", "60000"}});
  REQUIRE(cluster.Start());
  auto reader = Connect(cluster, true);
  REQUIRE(reader->Set("k", "v").ok());
  REQUIRE(Eventually([&] {
    (void)reader->Get("k");
    return reader->near_cache_stats().hits > 0;
  }));
  const size_t stopped = Bystander(*reader, cluster, "k");
  REQUIRE(cluster.node(stopped).SignalStopAndWait(5s));
  // Past max_silence (300 ms) without its ticks, nothing is served from memory: Gets of
  // k go to its primary, which still runs.
  const uint64_t untrusted = reader->near_cache_stats().untrusted;
  REQUIRE(Eventually([&] {
    Result<Item> item = reader->Get("k");
    return item.ok() && reader->near_cache_stats().untrusted > untrusted;
  }));
  cluster.node(stopped).Signal(SIGCONT);
  const uint64_t hits = reader->near_cache_stats().hits;
  REQUIRE(Eventually([&] {
    (void)reader->Get("k");
    return reader->near_cache_stats().hits > hits;
  }));
}

TEST_CASE("A cluster without keyspace events refuses a near cache", "[client][nearcache]") {
  TestCluster cluster({.nodes = 1, .extra_args = {"--keyspace-events", "Kx"}});
  REQUIRE(cluster.Start());
  Result<std::unique_ptr<Client>> c =
      Client::Connect({.seeds = cluster.addresses(), .near_cache = {.enabled = true}});
  REQUIRE(c.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(c.status().message(), Catch::Contains("--keyspace-events \"xK\""));
  CHECK_THAT(c.status().message(), Catch::Contains("KA or KEA"));
}

}  // namespace
}  // namespace ringcache

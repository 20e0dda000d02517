// ringcache::client::Client against in-process fake nodes (fake_node.h): where each key
// is sent, batching, epoch hints, the topology watch, retries and their bounds. The fakes
// never forward, so every check sees exactly the client's own routing decisions.

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fake_node.h"
#include "ringcache/client/client.h"
#include "ringcache/key_hash.h"

namespace ringcache::client_test {
namespace {

using client::Client;
using client::Options;
using client::ReadPreference;
using Steady = std::chrono::steady_clock;

// Polls `cond` every 10 ms for at most `timeout`.
template <typename Cond>
bool Eventually(Cond cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = Steady::now() + timeout;
  while (!cond()) {
    if (Steady::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::unique_ptr<Client> MustConnect(Options options) {
  Result<std::unique_ptr<Client>> c = Client::Connect(std::move(options));
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return std::move(c).value();
}

// The primary of `key` in `view`, computed without the client.
std::string PrimaryOf(const ClusterView& view, std::string_view key) {
  Result<HashRing> ring = view.BuildRing();
  REQUIRE(ring.ok());
  return ring->members()[static_cast<size_t>(ring->Primary(HashKey(key)))].id;
}

std::vector<std::string> Keys(int n, const std::string& prefix = "key-") {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

std::vector<std::string_view> Views(const std::vector<std::string>& keys) {
  return {keys.begin(), keys.end()};
}

grpc::Status Unavailable(const std::string& message) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
}

// Three fakes sharing one view (replication factor 1 unless told otherwise).
struct ThreeFakes {
  explicit ThreeFakes(uint32_t replication_factor = 1) {
    view = FakeNode::ViewOf(1, {&a, &b, &c}, replication_factor);
    for (FakeNode* n : all()) n->SetView(view);
  }
  std::vector<FakeNode*> all() { return {&a, &b, &c}; }
  std::vector<const FakeNode*> all_const() const { return {&a, &b, &c}; }
  FakeNode* ById(const std::string& id) {
    for (FakeNode* n : all()) {
      if (n->id() == id) return n;
    }
    FAIL("no fake node " << id);
    return nullptr;
  }
  Options ClientOptions() const {
    return Options{.seeds = {b.address()}, .retry_backoff = std::chrono::milliseconds(1)};
  }

  FakeNode a{"a"};
  FakeNode b{"b"};
  FakeNode c{"c"};
  ClusterView view;
};

TEST_CASE("Client sends each key straight to its primary", "[client][routing]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  CHECK(client->epoch() == 1);
  CHECK(client->view() == fakes.view);

  const std::vector<std::string> keys = Keys(90);
  std::map<std::string, std::vector<std::string>> expected;  // node id -> keys
  for (const std::string& key : keys) {
    const auto written = client->Set(key, "v:" + key);
    INFO(key << ": " << written.status().ToString());
    REQUIRE(written.ok());
    expected[PrimaryOf(fakes.view, key)].push_back(key);
    CHECK(client->Owners(key) == std::vector<std::string>{PrimaryOf(fakes.view, key)});
  }
  for (FakeNode* n : fakes.all()) {
    INFO("node " << n->id());
    CHECK(n->Received("Set") == expected[n->id()]);
    CHECK(!expected[n->id()].empty());   // 90 keys reach every node of 3
    CHECK(n->LastEpochHeader() == "1");  // the client tells its epoch
  }
  for (const std::string& key : keys) {
    auto item = client->Get(key);
    REQUIRE(item.ok());
    CHECK(item->value == "v:" + key);
  }
  for (FakeNode* n : fakes.all()) CHECK(n->Received("Get") == expected[n->id()]);
}

TEST_CASE("Client splits a batch per node and sends the parts in parallel in input order",
          "[client][routing]") {
  ThreeFakes fakes;
  Options options = fakes.ClientOptions();
  options.max_batch_keys = 7;
  auto client = MustConnect(options);

  const std::vector<std::string> keys = Keys(100, "batch-");
  std::vector<SetItem> items;
  std::vector<std::string> values;  // SetItem holds views: the strings must outlive it
  for (const std::string& key : keys) values.push_back("v:" + key);
  for (size_t i = 0; i < keys.size(); ++i) {
    items.push_back({.key = keys[i], .value = values[i], .options = {}});
  }
  const uint64_t rpcs_before = client->stats().rpcs;
  const auto written = client->MultiSet(items);
  REQUIRE(written.size() == keys.size());
  for (const auto& w : written) CHECK(w.ok());

  std::map<std::string, std::vector<std::string>> expected;
  for (const std::string& key : keys) expected[PrimaryOf(fakes.view, key)].push_back(key);
  uint64_t expected_rpcs = 0;
  for (FakeNode* n : fakes.all()) {
    INFO("node " << n->id());
    // The parts to one node run in parallel: compare as sets.
    std::vector<std::string> received = n->Received("MultiSet");
    std::sort(received.begin(), received.end());
    std::sort(expected[n->id()].begin(), expected[n->id()].end());
    CHECK(received == expected[n->id()]);
    const int parts = static_cast<int>((expected[n->id()].size() + 6) / 7);  // 7 keys per rpc
    CHECK(n->Calls("MultiSet") == parts);
    expected_rpcs += static_cast<uint64_t>(parts);
  }
  CHECK(client->stats().rpcs - rpcs_before == expected_rpcs);

  // Reads come back in request order, with per-key misses, duplicates included.
  std::vector<std::string> query = {"batch-5", "absent-1", "batch-99", "batch-5", "batch-0"};
  const auto got = client->MultiGet(Views(query));
  REQUIRE(got.size() == query.size());
  CHECK((got[0].ok() && got[0]->value == "v:batch-5"));
  CHECK(got[1].status().code() == StatusCode::kNotFound);
  CHECK((got[2].ok() && got[2]->value == "v:batch-99"));
  CHECK((got[3].ok() && got[3]->value == "v:batch-5"));
  CHECK((got[4].ok() && got[4]->value == "v:batch-0"));

  std::vector<std::string> doomed = {"batch-1", "absent-2", "batch-2"};
  const auto deleted = client->MultiDelete(Views(doomed));
  REQUIRE(deleted.size() == 3);
  CHECK(deleted[0].ok());
  CHECK(deleted[1].status().code() == StatusCode::kNotFound);
  CHECK(deleted[2].ok());

  CHECK(client->MultiGet({}).empty());  // no rpc for an empty batch
}

TEST_CASE("Client refreshes its view when a reply carries a newer epoch", "[client][routing]") {
  FakeNode a("a");
  FakeNode b("b");
  const ClusterView one = FakeNode::ViewOf(1, {&a});
  a.SetView(one);
  b.SetView(one);
  Options options{.seeds = {a.address()}, .watch_topology = false};
  auto client = MustConnect(options);
  REQUIRE(client->epoch() == 1);

  // b joins: the nodes hold epoch 2, the client still routes everything to a.
  const ClusterView two = FakeNode::ViewOf(2, {&a, &b});
  a.SetView(two);
  b.SetView(two);
  a.SetEpochHint(2);
  REQUIRE(client->Set("k", "v").ok());
  CHECK(a.LastEpochHeader() == "1");
  REQUIRE(Eventually([&] { return client->epoch() == 2; }));
  CHECK(client->stats().epoch_hints >= 1);
  CHECK(client->view() == two);

  // Now keys whose primary is b go to b.
  std::string key_on_b;
  for (const std::string& key : Keys(100)) {
    if (PrimaryOf(two, key) == "b") {
      key_on_b = key;
      break;
    }
  }
  REQUIRE(!key_on_b.empty());
  REQUIRE(client->Set(key_on_b, "v").ok());
  CHECK(b.Received("Set") == std::vector<std::string>{key_on_b});
  CHECK(b.LastEpochHeader() == "2");
}

TEST_CASE("Client learns a new view from WatchTopology without making calls", "[client][routing]") {
  FakeNode a("a");
  FakeNode b("b");
  a.SetView(FakeNode::ViewOf(1, {&a}));
  auto client = MustConnect(Options{.seeds = {a.address()}});
  REQUIRE(Eventually([&] { return a.Watchers() == 1; }));

  const ClusterView two = FakeNode::ViewOf(2, {&a, &b});
  a.SetView(two);
  REQUIRE(Eventually([&] { return client->epoch() == 2; }));
  CHECK(client->view() == two);
  CHECK(client->stats().views_adopted == 2);

  // The watch moves to another node when its node dies.
  b.SetView(two);
  a.Stop();
  REQUIRE(Eventually([&] { return b.Watchers() == 1; }));
  const ClusterView three = FakeNode::ViewOf(3, {&b});
  b.SetView(three);
  REQUIRE(Eventually([&] { return client->epoch() == 3; }));
}

TEST_CASE("Client retries UNAVAILABLE after refreshing the view", "[client][routing][retry]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  FakeNode* primary = fakes.ById(PrimaryOf(fakes.view, "k"));
  const int topology_calls =
      fakes.a.Calls("Topology") + fakes.b.Calls("Topology") + fakes.c.Calls("Topology");

  primary->FailNext("Set", Unavailable("Socket closed"));
  REQUIRE(client->Set("k", "v").ok());  // SetMode::kAlways: safe to repeat
  CHECK(primary->Calls("Set") == 2);
  CHECK(client->stats().retries == 1);
  CHECK(fakes.a.Calls("Topology") + fakes.b.Calls("Topology") + fakes.c.Calls("Topology") ==
        topology_calls + 1);

  primary->FailNext("Get", Unavailable("Socket closed"));
  primary->FailNext("Get", Unavailable("Socket closed"));
  auto item = client->Get("k");
  REQUIRE(item.ok());
  CHECK(item->value == "v");
  CHECK(primary->Calls("Get") == 3);
}

TEST_CASE("Client repeats a non-idempotent write only if the node surely did not run it",
          "[client][routing][retry]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  FakeNode* primary = fakes.ById(PrimaryOf(fakes.view, "counter"));

  // The connection broke: the increment may have happened. Not repeated.
  primary->FailNext("Incr", Unavailable("Socket closed"));
  auto r = client->Incr("counter", 1);
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(r.status().message().find(primary->address()) != std::string::npos);
  CHECK(primary->Calls("Incr") == 1);

  // A node that refused to run it (not the primary in its newer view): repeated.
  primary->FailNext("Incr", Unavailable("node " + primary->id() +
                                        " is not the primary of this key in epoch 2 "
                                        "(forwarded by x); retry"));
  r = client->Incr("counter", 5);
  REQUIRE(r.ok());
  CHECK(r->value == 5);
  CHECK(primary->Calls("Incr") == 3);

  // The same for a conditional Set and for Delete.
  primary->FailNext("Set", Unavailable("Socket closed"));
  auto s = client->Set("counter", "x", {.mode = SetMode::kIfAbsent});
  CHECK(s.status().code() == StatusCode::kUnavailable);
  primary->FailNext("Delete", Unavailable("node a is joining the cluster"));
  CHECK(client->Delete("counter").ok());
}

TEST_CASE("Client repeats a non-idempotent write to a node it could not reach",
          "[client][routing][retry]") {
  ThreeFakes fakes;
  Options options = fakes.ClientOptions();
  options.max_attempts = 3;
  auto client = MustConnect(options);
  std::string key;  // a key whose primary is c
  for (const std::string& k : Keys(100)) {
    if (PrimaryOf(fakes.view, k) == "c") {
      key = k;
      break;
    }
  }
  REQUIRE(!key.empty());
  fakes.c.Stop();  // connection refused: the Incr never reached a node
  auto r = client->Incr(key, 1);
  INFO(r.status().ToString());
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(client->stats().retries == 2);
}

TEST_CASE("Client gives up after max_attempts and names the node", "[client][routing][retry]") {
  ThreeFakes fakes;
  Options options = fakes.ClientOptions();
  options.max_attempts = 3;
  auto client = MustConnect(options);
  FakeNode* primary = fakes.ById(PrimaryOf(fakes.view, "k"));
  for (int i = 0; i < 10; ++i) primary->FailNext("Get", Unavailable("overloaded"));
  auto item = client->Get("k");
  CHECK(item.status().code() == StatusCode::kUnavailable);
  CHECK(item.status().message() == "node " + primary->address() + ": overloaded");
  CHECK(primary->Calls("Get") == 3);
  CHECK(client->stats().retries == 2);
}

TEST_CASE("Client keeps retries within the call's deadline", "[client][routing][retry]") {
  ThreeFakes fakes;
  Options options = fakes.ClientOptions();
  options.max_attempts = 100;
  options.retry_backoff = std::chrono::milliseconds(50);
  auto client = MustConnect(options);
  FakeNode* primary = fakes.ById(PrimaryOf(fakes.view, "k"));
  for (int i = 0; i < 100; ++i) primary->FailNext("Get", Unavailable("overloaded"));
  auto item = client->Get("k", {.timeout = std::chrono::milliseconds(300)});
  CHECK(item.status().code() == StatusCode::kUnavailable);
  // 50, 100, 200 ms of backoff already exceed 300 ms: far fewer than 100 attempts.
  CHECK(primary->Calls("Get") < 10);
}

TEST_CASE("Client passes node errors through unchanged", "[client][routing]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  REQUIRE(client->Set("k", "v").ok());
  auto again = client->Set("k", "w", {.mode = SetMode::kIfAbsent});
  CHECK(again.status() == Status(StatusCode::kAlreadyExists, "key already exists"));
  CHECK(client->Get("absent").status() == Status(StatusCode::kNotFound, "key not found"));
  FakeNode* primary = fakes.ById(PrimaryOf(fakes.view, "bad"));
  primary->FailNext("Set", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "write_concern 3 is over the replication factor's 1 "
                                        "replicas"));
  auto bad = client->Set("bad", "v", {}, {.write_concern = 3});
  CHECK(bad.status() == Status(StatusCode::kInvalidArgument,
                               "write_concern 3 is over the replication factor's 1 replicas"));
  CHECK(primary->Calls("Set") == 1);  // not retried
}

TEST_CASE("A dead node fails only its own keys of a batch", "[client][routing][retry]") {
  ThreeFakes fakes;
  Options options = fakes.ClientOptions();
  options.max_attempts = 2;
  auto client = MustConnect(options);
  const std::vector<std::string> keys = Keys(60);
  for (const std::string& key : keys) REQUIRE(client->Set(key, "v").ok());

  fakes.c.Stop();
  const auto got = client->MultiGet(Views(keys), {.timeout = std::chrono::seconds(5)});
  REQUIRE(got.size() == keys.size());
  int on_c = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    INFO(keys[i] << ": " << got[i].status().ToString());
    if (PrimaryOf(fakes.view, keys[i]) == "c") {
      ++on_c;
      CHECK(got[i].status().code() == StatusCode::kUnavailable);
      CHECK(got[i].status().message().find(fakes.c.address()) != std::string::npos);
    } else {
      CHECK(got[i].ok());
    }
  }
  CHECK(on_c > 0);
}

TEST_CASE("Client reads from any owner round-robin when asked to", "[client][routing]") {
  ThreeFakes fakes(/*replication_factor=*/3);
  auto client = MustConnect(fakes.ClientOptions());
  REQUIRE(client->Set("k", "v").ok());
  REQUIRE(client->Owners("k").size() == 3);
  for (int i = 0; i < 9; ++i) {
    (void)client->Get("k", {.read_preference = ReadPreference::kAnyOwner});
  }
  for (FakeNode* n : fakes.all()) CHECK(n->Calls("Get") == 3);
  // PRIMARY reads stay on the primary.
  FakeNode* primary = fakes.ById(client->Owners("k")[0]);
  const int before = primary->Calls("Get");
  for (int i = 0; i < 3; ++i) REQUIRE(client->Get("k").ok());
  CHECK(primary->Calls("Get") == before + 3);
}

TEST_CASE("Client Stats and Topology reach the node asked for", "[client][routing]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  auto by_id = client->Stats("c");
  REQUIRE(by_id.ok());
  CHECK(by_id->node_id == "c");
  auto by_address = client->Stats(fakes.a.address());
  REQUIRE(by_address.ok());
  CHECK(by_address->node_id == "a");
  CHECK(client->Stats("nope").status().code() == StatusCode::kNotFound);

  const ClusterView two = FakeNode::ViewOf(2, {&fakes.a, &fakes.b});
  for (FakeNode* n : fakes.all()) n->SetView(two);
  auto view = client->Topology();
  REQUIRE(view.ok());
  CHECK(*view == two);
  CHECK(client->epoch() == 2);
}

TEST_CASE("Client Connect validates options and reports unreachable seeds", "[client][routing]") {
  CHECK(Client::Connect({}).status().code() == StatusCode::kInvalidArgument);
  CHECK(Client::Connect({.seeds = {"x:1"}, .max_attempts = 0}).status().code() ==
        StatusCode::kInvalidArgument);

  FakeNode dead("dead");
  dead.Stop();
  auto r = Client::Connect(
      {.seeds = {dead.address()}, .connect_timeout = std::chrono::milliseconds(300)});
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(r.status().message().find(dead.address()) != std::string::npos);

  // A node without a view yet (epoch 0) is not enough.
  FakeNode fresh("fresh");
  r = Client::Connect(
      {.seeds = {fresh.address()}, .connect_timeout = std::chrono::milliseconds(300)});
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("no cluster view yet"));

  // One good seed among dead ones is enough.
  fresh.SetView(FakeNode::ViewOf(4, {&fresh}));
  r = Client::Connect({.seeds = {dead.address(), fresh.address()}});
  REQUIRE(r.ok());
  CHECK((*r)->epoch() == 4);
}

TEST_CASE("Client is safe to use from many threads while the view changes",
          "[client][routing][threads]") {
  ThreeFakes fakes;
  auto client = MustConnect(fakes.ClientOptions());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!client->Set(key, "v").ok()) errors.fetch_add(1);
        if (!client->Get(key).ok()) errors.fetch_add(1);
        const std::vector<std::string_view> batch = {key, "t0-0"};
        for (const auto& r : client->MultiGet(batch)) {
          if (!r.ok() && r.status().code() != StatusCode::kNotFound) errors.fetch_add(1);
        }
      }
    });
  }
  // Same members, new epochs: the routing does not change, the tables do.
  for (uint64_t epoch = 2; epoch <= 20; ++epoch) {
    for (FakeNode* n : fakes.all()) n->SetView(FakeNode::ViewOf(epoch, fakes.all_const()));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let calls interleave
  }
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  CHECK(Eventually([&] { return client->epoch() == 20; }));
}

}  // namespace
}  // namespace ringcache::client_test

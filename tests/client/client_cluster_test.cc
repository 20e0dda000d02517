// ringcache::client::Client against a real cluster of ringcached processes
// (tests/integration/cluster_harness.h): routing agrees with the nodes, every operation
// works end to end, the client follows a node joining and a node restarting at a new
// address, and a dead node fails only its own keys.
//
// "What does node X hold" is asked with the request metadata `ringcache-local: 1` (the
// node answers from its own cache, no routing).

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster_harness.h"
#include "private_file.h"
#include "ringcache/client/client.h"
#include "test_certs.h"

namespace ringcache::client_test {
namespace {

using client::Client;
using client::Options;
using client::ReadPreference;
using it::TestCluster;
using Steady = std::chrono::steady_clock;

template <typename Cond>
bool Eventually(Cond cond, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const auto end = Steady::now() + timeout;
  while (!cond()) {
    if (Steady::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::unique_ptr<Client> MustConnect(const TestCluster& cluster, Options options = {}) {
  if (options.seeds.empty()) options.seeds = {cluster.address(cluster.size() - 1)};
  Result<std::unique_ptr<Client>> c = Client::Connect(std::move(options));
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return std::move(c).value();
}

// Index of the node with this id ("n3" -> 2).
size_t IndexOf(const std::string& id) { return std::stoul(id.substr(1)) - 1; }

// Node i's own copy of `key` (ringcache-local: 1), or nullopt if it holds none.
std::optional<std::string> LocalValue(const TestCluster& cluster, size_t i,
                                      const std::string& key) {
  auto stub = cluster.Stub(i);
  grpc::ClientContext context;
  it::SetDeadline(context);
  context.AddMetadata("ringcache-local", "1");
  v1::GetRequest request;
  request.set_key(key);
  v1::GetResponse response;
  const grpc::Status s = stub->Get(&context, request, &response);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return std::nullopt;
  INFO("local Get of " << key << " on n" << i + 1 << ": " << s.error_message());
  REQUIRE(s.ok());
  return response.value();
}

std::vector<std::string> Keys(int n, const std::string& prefix) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

TEST_CASE("Client on a 3-node cluster routes every key to the owners the nodes agree on",
          "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster);
  CHECK(client->epoch() == cluster.epoch());
  CHECK(client->view().members.size() == 3);
  CHECK(client->view().replication_factor == 2);

  const std::vector<std::string> keys = Keys(60, "route-");
  for (const std::string& key : keys) {
    auto w = client->Set(key, "v:" + key, {}, {.write_concern = 1});
    INFO(key << ": " << w.status().ToString());
    REQUIRE(w.ok());
    CHECK(w->replicas_acked == 1);
  }
  // With write concern 1 each key is on exactly its two owners once the write returns.
  std::map<std::string, int> primaries;
  for (const std::string& key : keys) {
    const std::vector<std::string> owners = client->Owners(key);
    REQUIRE(owners.size() == 2);
    ++primaries[owners[0]];
    for (size_t i = 0; i < cluster.size(); ++i) {
      const bool owner = std::find(owners.begin(), owners.end(), cluster.id(i)) != owners.end();
      INFO(key << " on " << cluster.id(i) << " (owners " << owners[0] << "," << owners[1] << ")");
      CHECK(LocalValue(cluster, i, key) ==
            (owner ? std::optional<std::string>("v:" + key) : std::nullopt));
    }
  }
  CHECK(primaries.size() == 3);  // 60 keys have a primary on every node
}

TEST_CASE("Client runs every operation against a real cluster", "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster);

  auto v1 = client->Set("user:1", "Ada", {.ttl_ms = 60'000});
  REQUIRE(v1.ok());
  auto item = client->Get("user:1");
  REQUIRE(item.ok());
  CHECK(item->value == "Ada");
  CHECK(item->meta.version == v1->version);
  CHECK(item->meta.deadline_ms > 0);
  auto ttl = client->Ttl("user:1");
  REQUIRE(ttl.ok());
  CHECK((*ttl > 0 && *ttl <= 60'000));
  REQUIRE(client->Touch("user:1", 0).ok());
  CHECK(*client->Ttl("user:1") == 0);

  // Compare-and-set and the other modes keep their codes through the client.
  auto cas = client->Set("user:1", "Grace",
                         {.mode = SetMode::kIfVersion, .expected_version = v1->version});
  REQUIRE(cas.ok());
  CHECK(cas->version > v1->version);
  auto stale =
      client->Set("user:1", "lost", {.mode = SetMode::kIfVersion, .expected_version = v1->version});
  CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
  CHECK(client->Set("user:1", "x", {.mode = SetMode::kIfAbsent}).status().code() ==
        StatusCode::kAlreadyExists);
  CHECK(client->Set("nobody", "x", {.mode = SetMode::kIfPresent}).status().code() ==
        StatusCode::kNotFound);

  auto n = client->Incr("hits", 5);
  REQUIRE(n.ok());
  CHECK(n->value == 5);
  n = client->Incr("hits", -2);
  REQUIRE(n.ok());
  CHECK(n->value == 3);
  CHECK(client->Incr("user:1", 1).status().code() == StatusCode::kFailedPrecondition);

  REQUIRE(client->Delete("user:1").ok());
  CHECK(client->Delete("user:1").status().code() == StatusCode::kNotFound);
  CHECK(client->Get("user:1").status().code() == StatusCode::kNotFound);

  // Bad input: the node's error, field named.
  auto empty = client->Set("", "v");
  CHECK(empty.status().code() == StatusCode::kInvalidArgument);
  CHECK(empty.status().message().find("key") != std::string::npos);
  auto over = client->Set("k", "v", {}, {.write_concern = 2});
  CHECK(over.status().code() == StatusCode::kInvalidArgument);
  CHECK(over.status().message().find("write_concern 2") != std::string::npos);

  // Read preference: with write concern 1 the replica has the value too.
  REQUIRE(client->Set("shared", "s", {}, {.write_concern = 1}).ok());
  for (int i = 0; i < 4; ++i) {
    auto any = client->Get("shared", {.read_preference = ReadPreference::kAnyOwner});
    REQUIRE(any.ok());
    CHECK(any->value == "s");
  }

  // Stats of each node, by id; Topology.
  uint64_t items = 0;
  for (size_t i = 0; i < cluster.size(); ++i) {
    auto stats = client->Stats(cluster.id(i));
    INFO(stats.status().ToString());
    REQUIRE(stats.ok());
    CHECK(stats->node_id == cluster.id(i));
    CHECK(stats->epoch == cluster.epoch());
    items += stats->cache.items;
  }
  CHECK(items >= 2);  // "hits" and "shared" (on their owners)
  auto view = client->Topology();
  REQUIRE(view.ok());
  CHECK(view->epoch == cluster.epoch());
}

TEST_CASE("Client runs the calls of Redis's string commands against a real cluster",
          "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();

  // SET ... GET: the previous value, and none the first time.
  auto first = client->SetGet("s", "one");
  REQUIRE(first.ok());
  CHECK_FALSE(first->value.has_value());
  CHECK(first->write.version > 0);
  auto second = client->SetGet("s", "two", {.ttl_ms = 60'000});
  REQUIRE(second.ok());
  CHECK(second->value == "one");
  // SET NX GET on a present key: not written, not an error, the value answered.
  auto refused = client->SetGet("s", "three", {.mode = SetMode::kIfAbsent});
  REQUIRE(refused.ok());
  CHECK(refused->write.version == 0);
  CHECK(refused->value == "two");
  // KEEPTTL keeps the deadline; EXAT sets an absolute one.
  const int64_t deadline = client->Get("s")->meta.deadline_ms;
  REQUIRE(client->Set("s", "kept", {}, {.keep_ttl = true}).ok());
  CHECK(client->Get("s")->meta.deadline_ms == deadline);
  REQUIRE(client->Set("s", "at", {}, {.expires_at_ms = now_ms + 120'000}).ok());
  CHECK(client->Get("s")->meta.deadline_ms == now_ms + 120'000);
  auto both = client->Set("s", "x", {.ttl_ms = 5}, {.keep_ttl = true});
  CHECK(both.status().code() == StatusCode::kInvalidArgument);

  // GETEX and PEXPIREAT.
  auto touched = client->GetTouch("s", 0);
  REQUIRE(touched.ok());
  CHECK(*touched == "at");
  CHECK(client->Get("s")->meta.deadline_ms == 0);
  REQUIRE(client->TouchAt("s", now_ms + 90'000).ok());
  CHECK(client->Get("s")->meta.deadline_ms == now_ms + 90'000);
  CHECK(client->GetTouch("absent", 10).status().code() == StatusCode::kNotFound);
  // EXPIRE NX/XX/GT/LT.
  using client::ExpireCondition;
  auto nx = client->TouchIf("s", {.ttl_ms = 30'000, .condition = ExpireCondition::kIfNone});
  REQUIRE(nx.ok());
  CHECK_FALSE(nx->changed);  // It has an expiry already.
  auto gt = client->TouchIf(
      "s", {.expires_at_ms = now_ms + 200'000, .condition = ExpireCondition::kIfLater});
  REQUIRE(gt.ok());
  CHECK(gt->changed);
  CHECK(client->Get("s")->meta.deadline_ms == now_ms + 200'000);
  auto lt = client->TouchIf(
      "s", {.expires_at_ms = now_ms + 300'000, .condition = ExpireCondition::kIfEarlier});
  REQUIRE(lt.ok());
  CHECK_FALSE(lt->changed);
  CHECK(client->TouchIf("s", {.ttl_ms = 5, .expires_at_ms = now_ms + 1}).status().code() ==
        StatusCode::kInvalidArgument);

  // GETDEL.
  auto gone = client->GetDelete("s");
  REQUIRE(gone.ok());
  CHECK(gone->value == "at");
  CHECK(client->Get("s").status().code() == StatusCode::kNotFound);
  auto nothing = client->GetDelete("s");
  REQUIRE(nothing.ok());
  CHECK_FALSE(nothing->value.has_value());

  // INCRBYFLOAT.
  auto f = client->IncrByFloat("price", "10.5");
  REQUIRE(f.ok());
  CHECK(f->value == "10.5");
  f = client->IncrByFloat("price", "0.1");
  REQUIRE(f.ok());
  CHECK(f->value == "10.6");
  CHECK(client->IncrByFloat("price", "abc").status().code() == StatusCode::kInvalidArgument);
  CHECK(client->IncrByFloat("price", "").status().code() == StatusCode::kInvalidArgument);
  REQUIRE(client->Set("word", "hello").ok());
  CHECK(client->IncrByFloat("word", "1").status().code() == StatusCode::kFailedPrecondition);

  // SETRANGE and APPEND.
  auto r = client->SetRange("word", 6, "world");
  REQUIRE(r.ok());
  CHECK(r->length == 11);
  CHECK(client->Get("word")->value == std::string("hello\0world", 11));
  r = client->Append("word", "!");
  REQUIRE(r.ok());
  CHECK(r->length == 12);
  r = client->Append("fresh", "abc");
  REQUIRE(r.ok());
  CHECK(r->length == 3);
  CHECK(client->Get("fresh")->value == "abc");
}

// The value of a result that must be OK.
template <typename T>
T Ok(Result<T> r) {
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *std::move(r);
}

TEST_CASE("Client runs hash, list and set commands against a real cluster", "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster);
  // Keys on every node: each is written with a write concern of 1, so its replica holds
  // it too, and read back from the primary and from any owner.
  for (int i = 0; i < 24; ++i) {
    const std::string h = "user:" + std::to_string(i);
    const std::string tag = "t" + std::to_string(i);
    const FieldValue fields[] = {{"name", "ada"}, {"tag", tag}};
    REQUIRE(Ok(client->HashSet(h, fields)) == 2);
    const std::string_view more[] = {"visits", "1"};
    auto acked =
        client->Collection(h, {.command = TypedCommand::kHSet, .args = more}, {.write_concern = 1});
    REQUIRE(acked.ok());
    CHECK(acked->integer == 1);
    CHECK(acked->replicas_acked == 1);
    for (auto pref : {ReadPreference::kPrimary, ReadPreference::kAnyOwner}) {
      auto all = client->HashGetAll(h, {.read_preference = pref});
      REQUIRE(all.ok());
      CHECK(*all == std::vector<std::pair<std::string, std::string>>{
                        {"name", "ada"}, {"tag", tag}, {"visits", "1"}});
    }
  }
  CHECK(Ok(client->HashGet("user:1", "tag")) == std::optional<std::string>("t1"));
  CHECK(Ok(client->HashGet("user:1", "nope")) == std::optional<std::string>());

  const std::string_view jobs[] = {"j1", "j2", "j3"};
  CHECK(Ok(client->ListPush("queue", ListEnd::kRight, jobs)) == 3);
  CHECK(Ok(client->ListPop("queue", ListEnd::kLeft, 2)) == std::vector<std::string>{"j1", "j2"});
  CHECK(Ok(client->ListRange("queue", 0, -1)) == std::vector<std::string>{"j3"});
  const std::string_view tags[] = {"x", "y", "x"};
  CHECK(Ok(client->SetAdd("tags", tags)) == 2);
  CHECK(Ok(client->SetIsMember("tags", "y")) == true);
  CHECK(Ok(client->SetMembers("tags")) == std::vector<std::string>{"x", "y"});
  const std::string_view gone[] = {"x", "y"};
  CHECK(Ok(client->SetRemove("tags", gone)) == 2);
  CHECK(client->Ttl("tags").status().code() == StatusCode::kNotFound);  // The set is gone.

  // Compare-and-set on a hash's version.
  auto len = client->Collection("user:2", {.command = TypedCommand::kHLen});
  REQUIRE(len.ok());
  const std::string_view field[] = {"k", "v"};
  auto stale = client->Collection(
      "user:2", {.command = TypedCommand::kHSet, .args = field, .if_version = len->version + 1});
  CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
  auto fresh = client->Collection(
      "user:2", {.command = TypedCommand::kHSet, .args = field, .if_version = len->version});
  REQUIRE(fresh.ok());
  CHECK(fresh->version > len->version);

  // Errors: a wrong type in Redis's words; malformed arguments refused before any call.
  auto wrong = client->ListPush("user:3", ListEnd::kLeft, jobs);
  CHECK(wrong.status().code() == StatusCode::kFailedPrecondition);
  CHECK(wrong.status().message().starts_with("WRONGTYPE "));
  CHECK(client->Get("user:3").status().message().starts_with("WRONGTYPE "));
  const std::string_view odd[] = {"f"};
  CHECK(client->Collection("h", {.command = TypedCommand::kHSet, .args = odd}).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("Client batches span all nodes and keep request order", "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster, {.max_batch_keys = 50});

  const std::vector<std::string> keys = Keys(300, "batch-");
  std::vector<SetItem> items;
  std::vector<std::string> values;  // SetItem holds views: the strings must outlive it
  for (const std::string& key : keys) values.push_back("v:" + key);
  for (size_t i = 0; i < keys.size(); ++i) {
    items.push_back({.key = keys[i], .value = values[i], .options = {}});
  }
  for (const auto& r : client->MultiSet(items)) {
    INFO(r.status().ToString());
    CHECK(r.ok());
  }
  std::vector<std::string_view> query(keys.begin(), keys.end());
  query.push_back("batch-missing");
  const auto got = client->MultiGet(query);
  REQUIRE(got.size() == keys.size() + 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    INFO(keys[i] << ": " << got[i].status().ToString());
    REQUIRE(got[i].ok());
    CHECK(got[i]->value == "v:" + keys[i]);
  }
  CHECK(got.back().status().code() == StatusCode::kNotFound);

  // Each primary holds its keys (no node had to forward: the nodes agree on owners).
  for (size_t i = 0; i < 30; ++i) {
    CHECK(LocalValue(cluster, IndexOf(client->Owners(keys[i])[0]), keys[i]) == "v:" + keys[i]);
  }

  const auto deleted = client->MultiDelete(query);
  REQUIRE(deleted.size() == query.size());
  for (size_t i = 0; i < keys.size(); ++i) CHECK(deleted[i].ok());
  CHECK(deleted.back().status().code() == StatusCode::kNotFound);
  for (const auto& r : client->MultiGet(query)) CHECK(r.status().code() == StatusCode::kNotFound);
}

TEST_CASE("Client sees a node join and routes keys to the new node", "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster);
  const uint64_t before = client->epoch();

  REQUIRE(cluster.AddNode());
  INFO("cluster epoch " << cluster.epoch());
  REQUIRE(Eventually([&] { return client->epoch() == cluster.epoch(); }));
  CHECK(client->epoch() > before);
  CHECK(client->view().Find("n4") != nullptr);

  // Keys whose primary is now n4 are written to n4.
  int on_n4 = 0;
  for (const std::string& key : Keys(80, "join-")) {
    REQUIRE(client->Set(key, "v").ok());
    if (client->Owners(key)[0] != "n4") continue;
    ++on_n4;
    CHECK(LocalValue(cluster, 3, key) == "v");
  }
  CHECK(on_n4 > 0);
}

// A node with a cluster port of its own may allow one call per client connection: the
// client's topology watch, a stream that stays open, must not hold that call.
TEST_CASE("Client works against nodes that allow one call per connection", "[client][cluster]") {
  TestCluster cluster({.nodes = 3,
                       .replication_factor = 2,
                       .extra_args = {"--max-streams-per-connection", "1"},
                       .cluster_port = true});
  it::RequireStart(cluster);
  Options options;
  options.timeout = std::chrono::milliseconds(3000);
  auto client = MustConnect(cluster, std::move(options));
  for (const std::string& key : Keys(30, "one-stream-")) {
    auto set = client->Set(key, "v");
    INFO(key << ": " << set.status().ToString());
    REQUIRE(set.ok());
  }
  for (const std::string& key : Keys(30, "one-stream-")) {
    auto item = client->Get(key);
    REQUIRE(item.ok());
    CHECK(item->value == "v");
  }
  REQUIRE(cluster.AddNode());
  CHECK(Eventually([&] { return client->epoch() == cluster.epoch(); }));  // The watch works.
}

TEST_CASE("Client without a watch catches up from a newer epoch in a reply", "[client][cluster]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = {}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster, {.watch_topology = false});
  const uint64_t before = client->epoch();
  REQUIRE(cluster.AddNode());
  CHECK(client->epoch() == before);  // nothing tells it yet
  // Any call now carries the nodes' newer epoch back.
  REQUIRE(Eventually([&] {
    (void)client->Set("probe", "v");
    return client->epoch() == cluster.epoch();
  }));
  CHECK(client->stats().epoch_hints >= 1);
}

TEST_CASE("A killed node fails only its keys and is used again once restarted elsewhere",
          "[client][cluster]") {
  // A long failure timeout: n3 stays the owner of its keys while it is down (failover is
  // failover_test.cc's subject).
  TestCluster cluster(
      {.nodes = 3, .replication_factor = 2, .extra_args = {"--failure-timeout-ms", "60000"}});
  it::RequireStart(cluster);
  auto client = MustConnect(cluster, {.seeds = {cluster.address(0)},
                                      .timeout = std::chrono::milliseconds(3000),
                                      .max_attempts = 3});
  const std::vector<std::string> keys = Keys(60, "dead-");
  for (const std::string& key : keys) REQUIRE(client->Set(key, "v").ok());

  cluster.Kill(2);  // n3 stays in the view, SERVING, within the failure timeout
  std::vector<std::string_view> query(keys.begin(), keys.end());
  const auto got = client->MultiGet(query);
  int on_n3 = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    INFO(keys[i] << ": " << got[i].status().ToString());
    if (client->Owners(keys[i])[0] == "n3") {
      ++on_n3;
      CHECK(got[i].status().code() == StatusCode::kUnavailable);
    } else {
      CHECK(got[i].ok());
    }
  }
  CHECK(on_n3 > 0);
  std::string key_on_n3;
  for (const std::string& key : keys) {
    if (client->Owners(key)[0] == "n3") key_on_n3 = key;
  }
  CHECK(client->Set(key_on_n3, "w").status().code() == StatusCode::kUnavailable);

  // n3 comes back empty at a new port; the client follows its new address.
  REQUIRE(cluster.Restart(2));
  REQUIRE(Eventually([&] { return client->epoch() == cluster.epoch(); }));
  CHECK(client->view().Find("n3")->address == cluster.address(2));
  auto w = client->Set(key_on_n3, "w");
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  CHECK(LocalValue(cluster, 2, key_on_n3) == "w");
}

TEST_CASE("Client carries its token to every node, and a node refuses a client without one",
          "[client][cluster][security]") {
  it::PrivateFile secret("cluster.secret", "client-test-cluster-secret\n");
  it::PrivateFile tokens("tokens",
                         "app read-write app-token-0123456789abcdef\n"
                         "dash read dash-token-0123456789abcdef\n");
  TestCluster cluster(
      {.nodes = 3,
       .extra_args = {"--cluster-secret-file", secret.path(), "--auth-tokens-file", tokens.path()},
       .token = "dash-token-0123456789abcdef"});
  REQUIRE(cluster.Start());

  // Without a token the client cannot even learn the view.
  Result<std::unique_ptr<Client>> anonymous = Client::Connect(
      {.seeds = {cluster.address(0)}, .connect_timeout = std::chrono::milliseconds(500)});
  REQUIRE_FALSE(anonymous.ok());
  CHECK_THAT(anonymous.status().message(), Catch::Contains("needs a client token"));

  // With the writer's token, keys on every node are written and read back.
  auto app = MustConnect(cluster, {.token = "app-token-0123456789abcdef"});
  const std::vector<std::string> keys = Keys(30, "tok:");
  for (const std::string& key : keys) REQUIRE(app->Set(key, "v:" + key).ok());
  for (const std::string& key : keys) CHECK(app->Get(key)->value == "v:" + key);
  // The reader's token reads, and its writes are refused with the role named.
  auto dash = MustConnect(cluster, {.token = "dash-token-0123456789abcdef"});
  CHECK(dash->Get(keys[0])->value == "v:" + keys[0]);
  const auto refused = dash->Set(keys[0], "x");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(refused.status().message(), Catch::Contains("needs the role read-write"));
  CHECK(Client::Connect({.seeds = {cluster.address(0)}, .token = "bad token"}).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("Client reaches a TLS cluster with its CA, and not without it",
          "[client][cluster][security][tls]") {
  it::TestCerts certs;
  TestCluster cluster(
      {.nodes = 2, .extra_args = certs.NodeFlags(), .credentials = certs.Client("ca.pem")});
  REQUIRE(cluster.Start());
  Options tls{.seeds = {cluster.address(0)}};
  tls.tls = {.enabled = true, .ca_file = certs.path("ca.pem")};
  auto client = MustConnect(cluster, tls);
  const std::vector<std::string> keys = Keys(20, "tls:");
  for (const std::string& key : keys) REQUIRE(client->Set(key, "v:" + key).ok());
  for (const std::string& key : keys) CHECK(client->Get(key)->value == "v:" + key);

  Options plaintext{.seeds = {cluster.address(0)},
                    .connect_timeout = std::chrono::milliseconds(500)};
  CHECK_FALSE(Client::Connect(plaintext).ok());
  Options wrong_ca = tls;
  wrong_ca.connect_timeout = std::chrono::milliseconds(500);
  wrong_ca.tls.ca_file = certs.path("other-ca.pem");
  CHECK_FALSE(Client::Connect(wrong_ca).ok());
  Options missing = tls;
  missing.tls.ca_file = certs.path("no-such.pem");
  const auto refused = Client::Connect(missing);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("cannot read"));
}

}  // namespace
}  // namespace ringcache::client_test

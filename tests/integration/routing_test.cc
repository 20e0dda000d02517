// Routing on a real cluster (TestCluster, 3 nodes, replication factor 2): any node accepts
// any key and forwards it one hop to its owner; batches and Pipeline streams are split per
// owner and merged back; forwarded answers keep their code and message; the
// ringcache-local, ringcache-forwarded-by and ringcache-epoch metadata; read preference;
// write concern validation; Topology and WatchTopology; an owner that is down or stuck.
//
// The tests compute each key's owners themselves from the Topology view (the same ring the
// nodes build), so they know which calls must be forwarded.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "ringcache/cluster_view.h"
#include "ringcache/key_hash.h"
#include "ringcache/v1/cluster.grpc.pb.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using Stream = grpc::ClientReaderWriter<v1::PipelineRequest, v1::PipelineResponse>;

// Owners of keys as the nodes compute them: the ring of a Topology view.
class Ring {
 public:
  explicit Ring(const v1::ClusterView& proto) {
    view_.epoch = proto.epoch();
    view_.replication_factor = proto.replication_factor();
    view_.vnodes_per_weight = proto.vnodes_per_weight();
    for (const v1::Member& m : proto.members()) {
      view_.members.push_back({.id = m.id(),
                               .address = m.address(),
                               .weight = m.weight(),
                               .state = static_cast<MemberState>(m.state())});
    }
    view_.Normalize();
    Result<HashRing> ring = view_.BuildRing();
    REQUIRE(ring.ok());
    ring_ = std::move(ring).value();
    members_ = view_.ring_members();
  }

  // Node indexes (n1 = 0) of the key's owners, primary first.
  std::vector<size_t> Owners(const std::string& key) const {
    uint32_t owners[16];
    const size_t n =
        ring_.Owners(HashKey(key), std::span<uint32_t>(owners, view_.replication_factor));
    std::vector<size_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(std::stoul(members_[owners[i]]->id.substr(1)) - 1);
    return out;
  }
  size_t Primary(const std::string& key) const { return Owners(key).front(); }
  bool IsOwner(const std::string& key, size_t node) const {
    const std::vector<size_t> owners = Owners(key);
    return std::find(owners.begin(), owners.end(), node) != owners.end();
  }
  // The first key "<prefix><i>" that `node` does not own at all (so a call there forwards).
  std::string KeyNotOwnedBy(size_t node, const std::string& prefix) const {
    for (int i = 0; i < 10000; ++i) {
      std::string key = prefix + std::to_string(i);
      if (!IsOwner(key, node)) return key;
    }
    FAIL("no key outside node " << node);
    return {};
  }
  // The first key "<prefix><i>" whose primary is `primary` and replica `replica`.
  std::string KeyOwnedBy(size_t primary, size_t replica, const std::string& prefix) const {
    for (int i = 0; i < 10000; ++i) {
      std::string key = prefix + std::to_string(i);
      const std::vector<size_t> owners = Owners(key);
      if (owners.size() >= 2 && owners[0] == primary && owners[1] == replica) return key;
    }
    FAIL("no key with primary " << primary << " and replica " << replica);
    return {};
  }

 private:
  ClusterView view_;
  HashRing ring_;
  std::vector<const ClusterMember*> members_;
};

Ring RingOf(const TestCluster& cluster) {
  std::optional<v1::ClusterView> view = cluster.Topology(0);
  REQUIRE(view.has_value());
  return Ring(*view);
}

// Small nodes; the cluster's own flags come from the harness. `max_batch` and `extra` are
// added to every node's flags (a flag may be given only once).
ClusterOptions SmallCluster(std::vector<std::string> extra = {}, int max_batch = 1000) {
  std::vector<std::string> args = {
      "--memory", "64MiB", "--max-batch", std::to_string(max_batch), "--max-value-bytes", "1000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return {.nodes = 3, .replication_factor = 2, .extra_args = args};
}

template <typename Request, typename Response>
Reply<Response> UnaryWith(v1::Cache::Stub& stub,
                          grpc::Status (v1::Cache::Stub::*method)(grpc::ClientContext*,
                                                                  const Request&, Response*),
                          const Request& request,
                          const std::vector<std::pair<std::string, std::string>>& metadata,
                          std::multimap<std::string, std::string>* trailers = nullptr) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  Reply<Response> reply;
  reply.status = (stub.*method)(&ctx, request, &reply.response);
  if (trailers != nullptr) {
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      trailers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
  }
  return reply;
}

Reply<v1::GetResponse> GetLocal(v1::Cache::Stub& stub, const std::string& key) {
  v1::GetRequest r;
  r.set_key(key);
  return UnaryWith(stub, &v1::Cache::Stub::Get, r, {{"ringcache-local", "1"}});
}

// Sends every request on a Pipeline stream, half-closes, and collects the results by id.
struct PipelineRun {
  grpc::Status status;
  std::map<uint64_t, v1::OperationResult> results;
  int duplicates = 0;
};
PipelineRun RunPipeline(v1::Cache::Stub& stub, const std::vector<v1::PipelineRequest>& requests,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(20'000)) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  std::unique_ptr<Stream> stream = stub.Pipeline(&ctx);
  std::thread writer([&] {
    for (const v1::PipelineRequest& r : requests) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  PipelineRun run;
  v1::PipelineResponse response;
  while (stream->Read(&response)) {
    for (const v1::OperationResult& r : response.results()) {
      if (!run.results.emplace(r.id(), r).second) ++run.duplicates;
    }
  }
  writer.join();
  run.status = stream->Finish();
  return run;
}

TEST_CASE("Routing: a key written through any node reads the same through every node",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < 3; ++i) stubs.push_back(cluster.Stub(i));

  constexpr int kKeys = 60;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "route:" + std::to_string(k);
    INFO("key " << key);
    REQUIRE_THAT(Set(*stubs[k % 3], key, "v" + std::to_string(k)).status, IsOk());
  }
  for (size_t node = 0; node < 3; ++node) {
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "route:" + std::to_string(k);
      INFO("key " << key << " read through n" << node + 1);
      auto got = Get(*stubs[node], key);
      REQUIRE_THAT(got.status, IsOk());
      CHECK(got.response.value() == "v" + std::to_string(k));
    }
  }
  // Each key sits on its primary (and nowhere but its owners).
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = "route:" + std::to_string(k);
    INFO("key " << key);
    CHECK_THAT(GetLocal(*stubs[ring.Primary(key)], key).status, IsOk());
    for (size_t node = 0; node < 3; ++node) {
      if (!ring.IsOwner(key, node)) {
        CHECK_THAT(GetLocal(*stubs[node], key).status, StatusIs(StatusCode::NOT_FOUND));
      }
    }
  }

  // Every single-key rpc through a node that owns nothing of the key.
  const std::string key = ring.KeyNotOwnedBy(0, "ops:");
  v1::Cache::Stub& far = *stubs[0];
  REQUIRE_THAT(Set(far, key, "41").status, IsOk());
  auto incr = Incr(far, key, 1);
  REQUIRE_THAT(incr.status, IsOk());
  CHECK(incr.response.value() == 42);
  REQUIRE_THAT(Touch(far, key, 60'000).status, IsOk());
  auto ttl = Ttl(far, key);
  REQUIRE_THAT(ttl.status, IsOk());
  CHECK(ttl.response.ttl_ms() > 0);
  CHECK(ttl.response.ttl_ms() <= 60'000);
  auto get = Get(far, key);
  REQUIRE_THAT(get.status, IsOk());
  CHECK(get.response.value() == "42");
  CHECK(get.response.version() == incr.response.version());
  CHECK(get.response.expires_at_ms() > 0);
  REQUIRE_THAT(Delete(far, key).status, IsOk());
  CHECK_THAT(Get(far, key).status, StatusIs(StatusCode::NOT_FOUND, {"key not found"}));
  CHECK_THAT(GetLocal(*stubs[ring.Primary(key)], key).status, StatusIs(StatusCode::NOT_FOUND));
}

TEST_CASE("Routing: keys sharing a hash tag live on the same nodes", "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < 3; ++i) stubs.push_back(cluster.Stub(i));
  constexpr int kTags = 24;
  constexpr int kKeysPerTag = 8;
  auto key_of = [](int tag, int k) {
    return "{cart:" + std::to_string(tag) + "}:item" + std::to_string(k);
  };
  // Written through every node, with write concern 1: each key is on both its owners.
  for (int tag = 0; tag < kTags; ++tag) {
    for (int k = 0; k < kKeysPerTag; ++k) {
      v1::SetRequest set = MakeSet(key_of(tag, k), "v");
      set.set_write_concern(1);
      auto reply = Unary(*stubs[static_cast<size_t>(tag + k) % 3], &v1::Cache::Stub::Set, set);
      REQUIRE_THAT(reply.status, IsOk());
      REQUIRE(reply.response.replicas_acked() == 1);
    }
  }
  // Which nodes hold each key, from their own copies (no routing, no ring computed here).
  auto holders = [&](const std::string& key) {
    std::vector<size_t> out;
    for (size_t node = 0; node < 3; ++node) {
      if (GetLocal(*stubs[node], key).status.ok()) out.push_back(node);
    }
    return out;
  };
  std::set<std::vector<size_t>> distinct;
  for (int tag = 0; tag < kTags; ++tag) {
    const std::vector<size_t> first = holders(key_of(tag, 0));
    INFO("tag " << tag);
    CHECK(first.size() == 2);
    for (int k = 1; k < kKeysPerTag; ++k) CHECK(holders(key_of(tag, k)) == first);
    distinct.insert(first);
  }
  // The tags themselves spread over the cluster (3 possible pairs of owners).
  CHECK(distinct.size() >= 2);
}

TEST_CASE("Routing: batches spanning every node come back whole and in request order",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  auto n1 = cluster.Stub(0);
  auto n2 = cluster.Stub(1);
  auto n3 = cluster.Stub(2);

  constexpr int kItems = 90;
  std::vector<size_t> primaries(3, 0);
  v1::MultiSetRequest set;
  for (int i = 0; i < kItems; ++i) {
    const std::string key = "batch:" + std::to_string(i);
    ++primaries[ring.Primary(key)];
    *set.add_items() = MakeSet(key, "value-" + std::to_string(i));
  }
  for (size_t node = 0; node < 3; ++node) REQUIRE(primaries[node] > 0);  // spans every node
  // Two items the node answers itself, in the middle of the batch.
  *set.add_items() = MakeSet("", "empty key");
  set.mutable_items(kItems)->Swap(set.mutable_items(kItems / 2));
  *set.add_items() = MakeSet("batch:bad-mode", "x");
  set.mutable_items(kItems + 1)->set_mode(static_cast<v1::SetMode>(9));

  auto set_reply = Unary(*n2, &v1::Cache::Stub::MultiSet, set);
  REQUIRE_THAT(set_reply.status, IsOk());
  REQUIRE(set_reply.response.results_size() == set.items_size());
  for (int i = 0; i < set.items_size(); ++i) {
    const v1::SetRequest& item = set.items(i);
    INFO("item " << i << " key '" << item.key() << "'");
    const v1::SetResult& r = set_reply.response.results(i);
    if (item.key().empty()) {
      CHECK_THAT(r.status(), OpIs(StatusCode::INVALID_ARGUMENT, {"key"}));
    } else if (item.mode() == 9) {
      CHECK_THAT(r.status(), OpIs(StatusCode::INVALID_ARGUMENT, {"unknown set mode 9"}));
    } else {
      CHECK_THAT(r.status(), OpIs(StatusCode::OK));
      CHECK(r.version() > 0);
      CHECK_THAT(GetLocal(*cluster.Stub(ring.Primary(item.key())), item.key()).status, IsOk());
    }
  }

  // MultiGet through another node, with misses and a duplicate, in order.
  v1::MultiGetRequest get;
  for (int i = kItems - 1; i >= 0; --i) get.add_keys("batch:" + std::to_string(i));
  get.add_keys("batch:missing");
  get.add_keys("batch:7");
  auto get_reply = Unary(*n3, &v1::Cache::Stub::MultiGet, get);
  REQUIRE_THAT(get_reply.status, IsOk());
  REQUIRE(get_reply.response.results_size() == get.keys_size());
  for (int i = 0; i < kItems; ++i) {
    const v1::GetResult& r = get_reply.response.results(i);
    const std::string want = "value-" + get.keys(i).substr(6);
    INFO("key " << get.keys(i));
    CHECK_THAT(r.status(), OpIs(StatusCode::OK));
    CHECK(r.value() == want);
    CHECK(r.version() > 0);
  }
  CHECK_THAT(get_reply.response.results(kItems).status(), OpIs(StatusCode::NOT_FOUND));
  CHECK(get_reply.response.results(kItems + 1).value() == "value-7");

  // MultiDelete through the third node: present keys deleted, absent ones NOT_FOUND.
  v1::MultiDeleteRequest del;
  for (int i = 0; i < kItems; i += 2) del.add_keys("batch:" + std::to_string(i));
  del.add_keys("batch:missing");
  auto del_reply = Unary(*n1, &v1::Cache::Stub::MultiDelete, del);
  REQUIRE_THAT(del_reply.status, IsOk());
  REQUIRE(del_reply.response.results_size() == del.keys_size());
  CHECK(del_reply.response.replicas_acked_size() == 0);  // no write concern asked
  for (int i = 0; i + 1 < del.keys_size(); ++i) {
    INFO("key " << del.keys(i));
    CHECK_THAT(del_reply.response.results(i), OpIs(StatusCode::OK));
  }
  CHECK_THAT(del_reply.response.results(del.keys_size() - 1), OpIs(StatusCode::NOT_FOUND));
  for (int i = 0; i < kItems; ++i) {
    const std::string key = "batch:" + std::to_string(i);
    INFO("key " << key);
    CHECK_THAT(Get(*n2, key).status, i % 2 == 0 ? StatusIs(StatusCode::NOT_FOUND) : IsOk());
  }

  // With a write concern, every item reports its own replica acks.
  v1::MultiSetRequest wc_set;
  for (int i = 0; i < 30; ++i) *wc_set.add_items() = MakeSet("wc:" + std::to_string(i), "x");
  wc_set.set_write_concern(1);
  auto wc_reply = Unary(*n1, &v1::Cache::Stub::MultiSet, wc_set);
  REQUIRE_THAT(wc_reply.status, IsOk());
  for (const v1::SetResult& r : wc_reply.response.results()) {
    CHECK_THAT(r.status(), OpIs(StatusCode::OK));
    CHECK(r.replicas_acked() == 1);
  }
  v1::MultiDeleteRequest wc_del;
  for (int i = 0; i < 30; ++i) wc_del.add_keys("wc:" + std::to_string(i));
  wc_del.set_write_concern(1);
  auto wc_del_reply = Unary(*n2, &v1::Cache::Stub::MultiDelete, wc_del);
  REQUIRE_THAT(wc_del_reply.status, IsOk());
  REQUIRE(wc_del_reply.response.replicas_acked_size() == 30);
  for (int i = 0; i < 30; ++i) {
    CHECK_THAT(wc_del_reply.response.results(i), OpIs(StatusCode::OK));
    CHECK(wc_del_reply.response.replicas_acked(i) == 1);
  }
}

TEST_CASE("Routing: Set and Delete answer the value they replace or remove, through any node",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "prev:");
  auto n2 = cluster.Stub(1);  // Not the primary: unary calls are relayed, Batch is forwarded.

  // Unary Set with return_previous and keep_ttl: the replaced value and its expiry.
  v1::SetRequest first = MakeSet(key, "one");
  first.set_ttl_ms(100'000);
  REQUIRE_THAT(Unary(*n2, &v1::Cache::Stub::Set, first).status, IsOk());
  v1::SetRequest swap = MakeSet(key, "two");
  swap.set_return_previous(true);
  swap.set_keep_ttl(true);
  auto swapped = Unary(*n2, &v1::Cache::Stub::Set, swap);
  REQUIRE_THAT(swapped.status, IsOk());
  CHECK(swapped.response.had_previous());
  CHECK(swapped.response.previous() == "one");
  CHECK(swapped.response.version() > 0);
  auto ttl = Ttl(*n2, key);
  REQUIRE_THAT(ttl.status, IsOk());
  CHECK(ttl.response.ttl_ms() > 90'000);  // Kept, not cleared.

  // keep_ttl with a ttl, or expires_at_ms with either: INVALID_ARGUMENT naming them.
  v1::SetRequest both = MakeSet(key, "x");
  both.set_keep_ttl(true);
  both.set_ttl_ms(5);
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Set, both).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"keep_ttl", "exclusive"}));
  both.set_keep_ttl(false);
  both.set_expires_at_ms(5);
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Set, both).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"expires_at_ms"}));
  // A TTL over the limit on the read-modify-write path: the cache's own words, no overflow.
  v1::SetRequest huge = MakeSet(key, "x");
  huge.set_ttl_ms(UINT64_MAX - 1);
  huge.set_return_previous(true);
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Set, huge).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"ttl_ms", "100 years"}));
  v1::TouchRequest huge_touch;
  huge_touch.set_key(key);
  huge_touch.set_ttl_ms(uint64_t{1} << 63);
  huge_touch.set_condition(v1::EXPIRE_CONDITION_IF_SOME);
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Touch, huge_touch).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"ttl_ms", "100 years"}));

  // The same through a Batch (forwarded as operations): NX refused quietly with GET, then
  // an absolute expiry, then Delete with return_previous on a present and an absent key.
  v1::BatchRequest batch;
  auto add = [&batch](uint64_t id) {
    v1::Operation* op = batch.add_ops();
    op->set_id(id);
    return op;
  };
  v1::SetRequest* nx = add(1)->mutable_set();
  *nx = MakeSet(key, "three");
  nx->set_mode(v1::SET_MODE_IF_ABSENT);
  nx->set_return_previous(true);
  const int64_t at = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()) +
                     500'000;
  v1::SetRequest* exat = add(2)->mutable_set();
  *exat = MakeSet(key, "four");
  exat->set_expires_at_ms(at);
  exat->set_return_previous(true);
  add(3)->mutable_get()->set_key(key);
  v1::DeleteRequest* getdel = add(4)->mutable_delete_();
  getdel->set_key(key);
  getdel->set_return_previous(true);
  v1::DeleteRequest* again = add(5)->mutable_delete_();
  again->set_key(key);
  again->set_return_previous(true);
  auto reply = Unary(*n2, &v1::Cache::Stub::Batch, batch);
  REQUIRE_THAT(reply.status, IsOk());
  REQUIRE(reply.response.results_size() == 5);
  const auto& r = reply.response.results();
  CHECK_THAT(r[0].status(), OpIs(StatusCode::OK));
  CHECK(r[0].set().version() == 0);       // NX refused: nothing written...
  CHECK(r[0].set().previous() == "two");  // ...and the value it would have replaced.
  CHECK_THAT(r[1].status(), OpIs(StatusCode::OK));
  CHECK(r[1].set().version() > swapped.response.version());
  CHECK(r[1].set().previous() == "two");
  CHECK(r[2].get().value() == "four");
  CHECK(r[2].get().expires_at_ms() == at);  // Exactly the absolute time asked.
  CHECK_THAT(r[3].status(), OpIs(StatusCode::OK));
  CHECK(r[3].delete_().had_previous());
  CHECK(r[3].delete_().previous() == "four");
  CHECK_THAT(r[4].status(), OpIs(StatusCode::OK));  // Absent: not an error with previous.
  CHECK_FALSE(r[4].delete_().had_previous());
  CHECK_THAT(Get(*n2, key).status, StatusIs(StatusCode::NOT_FOUND));

  // Replicated like any write: the replica holds what the read-modify-write left.
  const std::string replicated = ring.KeyOwnedBy(0, 1, "prevrepl:");  // n1, replica n2
  REQUIRE_THAT(Set(*n2, replicated, "a").status, IsOk());
  v1::SetRequest acked = MakeSet(replicated, "b");
  acked.set_return_previous(true);
  acked.set_keep_ttl(true);
  acked.set_write_concern(1);
  auto acked_reply = Unary(*cluster.Stub(2), &v1::Cache::Stub::Set, acked);
  REQUIRE_THAT(acked_reply.status, IsOk());
  CHECK(acked_reply.response.previous() == "a");
  CHECK(acked_reply.response.replicas_acked() == 1);
  auto on_replica = GetLocal(*n2, replicated);
  REQUIRE_THAT(on_replica.status, IsOk());
  CHECK(on_replica.response.value() == "b");
}

TEST_CASE("Routing: Touch with a condition, an absolute time or the value, through any node",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "touchx:");
  auto n2 = cluster.Stub(1);
  REQUIRE_THAT(Set(*n2, key, "v").status, IsOk());
  const int64_t now_ms =
      static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());

  // Unary (relayed): only if it has an expiry (XX) on a key without one: not changed.
  v1::TouchRequest xx;
  xx.set_key(key);
  xx.set_ttl_ms(100'000);
  xx.set_condition(v1::EXPIRE_CONDITION_IF_SOME);
  auto unchanged = Unary(*n2, &v1::Cache::Stub::Touch, xx);
  REQUIRE_THAT(unchanged.status, IsOk());
  CHECK_FALSE(unchanged.response.changed());
  CHECK(Ttl(*n2, key).response.ttl_ms() == 0);

  // Batch (forwarded as operations): NX sets an absolute expiry, GT with an earlier one
  // does nothing, a read with the value, then a time already past removes the key.
  v1::BatchRequest batch;
  auto add = [&batch](uint64_t id) {
    v1::Operation* op = batch.add_ops();
    op->set_id(id);
    return op->mutable_touch();
  };
  v1::TouchRequest* nx = add(1);
  nx->set_key(key);
  nx->set_expires_at_ms(now_ms + 300'000);
  nx->set_condition(v1::EXPIRE_CONDITION_IF_NONE);
  v1::TouchRequest* gt = add(2);
  gt->set_key(key);
  gt->set_expires_at_ms(now_ms + 200'000);
  gt->set_condition(v1::EXPIRE_CONDITION_IF_LATER);
  v1::TouchRequest* getex = add(3);
  getex->set_key(key);
  getex->set_expires_at_ms(now_ms + 100'000);
  getex->set_condition(v1::EXPIRE_CONDITION_IF_EARLIER);
  getex->set_return_value(true);
  v1::TouchRequest* past = add(4);
  past->set_key(key);
  past->set_expires_at_ms(1);
  v1::TouchRequest* absent = add(5);
  absent->set_key(key);
  absent->set_ttl_ms(5);
  auto reply = Unary(*n2, &v1::Cache::Stub::Batch, batch);
  REQUIRE_THAT(reply.status, IsOk());
  REQUIRE(reply.response.results_size() == 5);
  const auto& r = reply.response.results();
  CHECK(r[0].touch().changed());
  CHECK_FALSE(r[1].touch().changed());
  CHECK(r[2].touch().changed());
  CHECK(r[2].touch().value() == "v");
  CHECK(r[3].touch().changed());
  CHECK_THAT(r[4].status(), OpIs(StatusCode::NOT_FOUND));  // Removed by the past time.

  // Two expiries at once, or an unknown condition: INVALID_ARGUMENT.
  v1::TouchRequest both;
  both.set_key(key);
  both.set_ttl_ms(5);
  both.set_expires_at_ms(now_ms + 5);
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Touch, both).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"exclusive"}));
  v1::TouchRequest odd;
  odd.set_key(key);
  odd.set_condition(static_cast<v1::ExpireCondition>(42));
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Touch, odd).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"expire condition 42"}));
}

TEST_CASE("Routing: Incr by a float through any node (INCRBYFLOAT)", "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "flt:");
  auto n2 = cluster.Stub(1);
  auto incr = [&](const std::string& by) {
    v1::IncrRequest r;
    r.set_key(key);
    r.set_by_float(by);
    return Unary(*n2, &v1::Cache::Stub::Incr, r);
  };
  // Unary, relayed to the owner: creates the key, then adds.
  auto first = incr("10.5");
  REQUIRE_THAT(first.status, IsOk());
  CHECK(first.response.float_value() == "10.5");
  CHECK(first.response.version() > 0);
  auto second = incr("0.1");
  REQUIRE_THAT(second.status, IsOk());
  CHECK(second.response.float_value() == "10.6");
  CHECK(Get(*cluster.Stub(ring.Primary(key)), key).response.value() == "10.6");
  // Errors, in Redis's words.
  CHECK_THAT(incr("abc").status, StatusIs(StatusCode::INVALID_ARGUMENT, {"not a valid float"}));
  CHECK_THAT(incr("inf").status,
             StatusIs(StatusCode::FAILED_PRECONDITION, {"would produce NaN or Infinity"}));
  v1::IncrRequest both;
  both.set_key(key);
  both.set_delta(1);
  both.set_by_float("1");
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Incr, both).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"both delta and by_float"}));
  // In a Batch, forwarded to the owner as part of a batch.
  v1::BatchRequest batch;
  v1::IncrRequest* op = batch.add_ops()->mutable_incr();
  op->set_key(key);
  op->set_by_float("-0.6");
  auto batched = Unary(*n2, &v1::Cache::Stub::Batch, batch);
  REQUIRE_THAT(batched.status, IsOk());
  REQUIRE(batched.response.results_size() == 1);
  CHECK(batched.response.results(0).incr().float_value() == "10");
}

TEST_CASE("Routing: SetRange writes at an offset or the end, through any node",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());  // --max-value-bytes 1000
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "range:");
  auto n2 = cluster.Stub(1);
  auto range = [&](std::string value, uint64_t offset, bool append) {
    v1::SetRangeRequest r;
    r.set_key(key);
    r.set_value(std::move(value));
    r.set_offset(offset);
    r.set_append(append);
    return Unary(*n2, &v1::Cache::Stub::SetRange, r);
  };
  auto appended = range("Hello", 0, true);  // Unary, relayed: creates the key.
  REQUIRE_THAT(appended.status, IsOk());
  CHECK(appended.response.length() == 5);
  CHECK(appended.response.version() > 0);
  auto padded = range("!", 7, false);
  REQUIRE_THAT(padded.status, IsOk());
  CHECK(padded.response.length() == 8);
  CHECK(Get(*n2, key).response.value() == std::string("Hello\0\0!", 8));

  // Forwarded as an operation of a Batch.
  v1::BatchRequest batch;
  v1::Operation* op = batch.add_ops();
  op->set_id(1);
  op->mutable_set_range()->set_key(key);
  op->mutable_set_range()->set_value("AB");
  op->mutable_set_range()->set_offset(1);
  auto reply = Unary(*n2, &v1::Cache::Stub::Batch, batch);
  REQUIRE_THAT(reply.status, IsOk());
  CHECK(reply.response.results(0).set_range().length() == 8);
  CHECK(Get(*n2, key).response.value() == std::string("HABlo\0\0!", 8));

  // Limits, checked before anything is allocated: the offset is the caller's number.
  CHECK_THAT(range("x", uint64_t{1} << 62, false).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max_value_bytes"}));
  CHECK_THAT(range(std::string(995, 'y'), 0, true).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max_value_bytes"}));
  CHECK_THAT(range("x", 3, true).status, StatusIs(StatusCode::INVALID_ARGUMENT, {"exclusive"}));
  CHECK(Get(*n2, key).response.value().size() == 8);  // Unchanged by the refusals.
}

TEST_CASE("Routing: a Batch of mixed operations spanning every node answers each in order",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster({}, 100));
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  auto n1 = cluster.Stub(0);
  auto n2 = cluster.Stub(1);

  // Sets of keys on every node, through n1, with ids the caller chose.
  constexpr int kKeys = 60;
  v1::BatchRequest sets;
  std::vector<size_t> primaries(3, 0);
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "mixed:" + std::to_string(i);
    ++primaries[ring.Primary(key)];
    v1::Operation* op = sets.add_ops();
    op->set_id(1000 + static_cast<uint64_t>(i));
    *op->mutable_set() = MakeSet(key, "v" + std::to_string(i));
    op->mutable_set()->set_write_concern(1);
  }
  for (size_t node = 0; node < 3; ++node) REQUIRE(primaries[node] > 0);  // spans every node
  auto set_reply = Unary(*n1, &v1::Cache::Stub::Batch, sets);
  REQUIRE_THAT(set_reply.status, IsOk());
  REQUIRE(set_reply.response.results_size() == kKeys);
  for (int i = 0; i < kKeys; ++i) {
    const v1::OperationResult& r = set_reply.response.results(i);
    INFO("op " << i);
    CHECK(r.id() == 1000 + static_cast<uint64_t>(i));
    CHECK_THAT(r.status(), OpIs(StatusCode::OK));
    REQUIRE(r.has_set());
    CHECK(r.set().version() > 0);
    CHECK(r.set().replicas_acked() == 1);
  }

  // Then every kind at once through n2, with errors that stay per operation.
  v1::BatchRequest mixed;
  auto add = [&mixed](uint64_t id) {
    v1::Operation* op = mixed.add_ops();
    op->set_id(id);
    return op;
  };
  for (int i = 0; i < kKeys; ++i) add(i)->mutable_get()->set_key("mixed:" + std::to_string(i));
  add(100)->mutable_get()->set_key("mixed:missing");
  v1::IncrRequest* incr = add(101)->mutable_incr();
  incr->set_key("mixed:counter");
  incr->set_delta(5);
  add(102)->mutable_incr()->set_key("mixed:3");  // Not an integer.
  add(103)->mutable_ttl()->set_key("mixed:4");
  v1::TouchRequest* touch = add(104)->mutable_touch();
  touch->set_key("mixed:5");
  touch->set_ttl_ms(60'000);
  add(105)->mutable_delete_()->set_key("mixed:6");
  add(106);  // Nothing set.
  add(107)->mutable_get()->set_key("");
  auto reply = Unary(*n2, &v1::Cache::Stub::Batch, mixed);
  REQUIRE_THAT(reply.status, IsOk());
  REQUIRE(reply.response.results_size() == mixed.ops_size());
  for (int i = 0; i < kKeys; ++i) {
    const v1::OperationResult& r = reply.response.results(i);
    INFO("get " << i);
    CHECK(r.id() == static_cast<uint64_t>(i));
    CHECK_THAT(r.status(), OpIs(StatusCode::OK));
    CHECK(r.get().value() == "v" + std::to_string(i));
    CHECK(r.get().version() == set_reply.response.results(i).set().version());
  }
  const auto& results = reply.response.results();
  CHECK_THAT(results[kKeys].status(), OpIs(StatusCode::NOT_FOUND));
  CHECK(results[kKeys + 1].incr().value() == 5);
  CHECK_THAT(results[kKeys + 2].status(), OpIs(StatusCode::FAILED_PRECONDITION, {"integer"}));
  CHECK_THAT(results[kKeys + 3].status(), OpIs(StatusCode::OK));
  CHECK(results[kKeys + 3].ttl().ttl_ms() == 0);
  CHECK(results[kKeys + 4].has_touch());
  CHECK(results[kKeys + 5].has_delete_());
  CHECK_THAT(results[kKeys + 6].status(),
             OpIs(StatusCode::INVALID_ARGUMENT, {"operation 106 has no get/set"}));
  CHECK_THAT(results[kKeys + 7].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"key"}));
  CHECK(results[kKeys + 7].id() == 107);
  CHECK_THAT(Get(*n1, "mixed:6").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK(Get(*n1, "mixed:5").response.expires_at_ms() > 0);

  // Over max-batch: the whole call is refused, naming the limit.
  v1::BatchRequest big;
  for (int i = 0; i < 101; ++i) big.add_ops()->mutable_get()->set_key("k");
  CHECK_THAT(Unary(*n1, &v1::Cache::Stub::Batch, big).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max-batch"}));
}

TEST_CASE("Routing: a Pipeline stream through one node serves keys of every node",
          "[integration][routing][pipeline]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  auto n2 = cluster.Stub(1);

  // Message 1 sets keys (some with a write concern), message 2 reads, increments, touches
  // and deletes them; ids are unique. Every result is known in advance.
  constexpr int kKeys = 200;
  v1::PipelineRequest writes;
  for (int i = 0; i < kKeys; ++i) {
    v1::Operation* op = writes.add_ops();
    op->set_id(static_cast<uint64_t>(i));
    *op->mutable_set() = MakeSet("pipe:" + std::to_string(i), std::to_string(i));
    if (i % 10 == 0) op->mutable_set()->set_write_concern(1);
  }
  v1::PipelineRequest mixed;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "pipe:" + std::to_string(i);
    v1::Operation* op = mixed.add_ops();
    op->set_id(1000 + static_cast<uint64_t>(i));
    switch (i % 4) {
      case 0:
        op->mutable_get()->set_key(key);
        break;
      case 1:
        op->mutable_incr()->set_key(key);
        op->mutable_incr()->set_delta(1000);
        break;
      case 2:
        op->mutable_touch()->set_key(key);
        op->mutable_touch()->set_ttl_ms(60'000);
        break;
      default:
        op->mutable_delete_()->set_key(key);
        break;
    }
  }
  v1::Operation* miss = mixed.add_ops();
  miss->set_id(5000);
  miss->mutable_get()->set_key("pipe:missing");
  v1::Operation* bad_wc = mixed.add_ops();
  bad_wc->set_id(5001);
  *bad_wc->mutable_set() = MakeSet("pipe:bad-wc", "x");
  bad_wc->mutable_set()->set_write_concern(2);

  size_t remote = 0;
  for (int i = 0; i < kKeys; ++i) remote += ring.Primary("pipe:" + std::to_string(i)) != 1;
  REQUIRE(remote > 0);

  // Writes first (one stream), then the mixed message (a second stream): ops of one
  // stream may run in any order across owners.
  PipelineRun first = RunPipeline(*n2, {writes});
  REQUIRE_THAT(first.status, IsOk());
  CHECK(first.duplicates == 0);
  REQUIRE(first.results.size() == kKeys);
  for (const auto& [id, r] : first.results) {
    INFO("op " << id);
    CHECK_THAT(r.status(), OpIs(StatusCode::OK));
    CHECK(r.set().version() > 0);
    CHECK(r.set().replicas_acked() == (id % 10 == 0 ? 1u : 0u));
  }

  PipelineRun second = RunPipeline(*n2, {mixed});
  REQUIRE_THAT(second.status, IsOk());
  CHECK(second.duplicates == 0);
  REQUIRE(second.results.size() == static_cast<size_t>(mixed.ops_size()));
  for (int i = 0; i < kKeys; ++i) {
    const v1::OperationResult& r = second.results.at(1000 + static_cast<uint64_t>(i));
    INFO("op " << i);
    REQUIRE_THAT(r.status(), OpIs(StatusCode::OK));
    switch (i % 4) {
      case 0:
        CHECK(r.get().value() == std::to_string(i));
        break;
      case 1:
        CHECK(r.incr().value() == i + 1000);
        break;
      case 2:
        CHECK(r.has_touch());
        break;
      default:
        CHECK(r.has_delete_());
        break;
    }
  }
  CHECK_THAT(second.results.at(5000).status(), OpIs(StatusCode::NOT_FOUND));
  CHECK_THAT(second.results.at(5001).status(),
             OpIs(StatusCode::INVALID_ARGUMENT, {"write_concern 2", "1 replicas"}));
  // The effects landed on the owners.
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "pipe:" + std::to_string(i);
    INFO("key " << key);
    auto got = GetLocal(*cluster.Stub(ring.Primary(key)), key);
    if (i % 4 == 3) {
      CHECK_THAT(got.status, StatusIs(StatusCode::NOT_FOUND));
    } else {
      REQUIRE_THAT(got.status, IsOk());
      CHECK(got.response.value() == std::to_string(i % 4 == 1 ? i + 1000 : i));
    }
  }
}

TEST_CASE("Routing: Pipeline forwards stay within the owner's max-batch when ops pile up",
          "[integration][routing][pipeline]") {
  // max-batch 50: many full messages for one owner accumulate while its forwards are in
  // flight; each forwarded call must still carry at most 50 operations.
  TestCluster cluster(SmallCluster({}, 50));
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 2000 && i < 100'000; ++i) {
    std::string key = "pile:" + std::to_string(i);
    if (ring.Primary(key) == 1) keys.push_back(std::move(key));
  }
  REQUIRE(keys.size() == 2000);
  std::vector<v1::PipelineRequest> messages(40);
  for (size_t i = 0; i < keys.size(); ++i) {
    v1::Operation* op = messages[i / 50].add_ops();
    op->set_id(i);
    *op->mutable_set() = MakeSet(keys[i], std::string(400, 'v'));
  }
  PipelineRun run = RunPipeline(*cluster.Stub(0), messages);
  REQUIRE_THAT(run.status, IsOk());
  CHECK(run.duplicates == 0);
  REQUIRE(run.results.size() == keys.size());
  for (const auto& [id, r] : run.results) {
    INFO("op " << id);
    REQUIRE_THAT(r.status(), OpIs(StatusCode::OK));
  }
  CHECK_THAT(GetLocal(*cluster.Stub(1), keys.back()).status, IsOk());
}

TEST_CASE("Routing: a forwarded call's error keeps its code and message",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(2, "err:");
  auto owner = cluster.Stub(ring.Primary(key));
  auto far = cluster.Stub(2);
  REQUIRE_THAT(Set(*owner, key, "not a number").status, IsOk());

  auto check_same = [](const grpc::Status& direct, const grpc::Status& forwarded) {
    CHECK(forwarded.error_code() == direct.error_code());
    CHECK(forwarded.error_message() == direct.error_message());
  };
  const SetArgs if_absent{.mode = v1::SET_MODE_IF_ABSENT};
  auto direct = Set(*owner, key, "x", if_absent).status;
  CHECK_THAT(direct, StatusIs(StatusCode::ALREADY_EXISTS));
  check_same(direct, Set(*far, key, "x", if_absent).status);

  const SetArgs wrong_version{.mode = v1::SET_MODE_IF_VERSION, .expected_version = 12345};
  direct = Set(*owner, key, "x", wrong_version).status;
  CHECK_THAT(direct, StatusIs(StatusCode::FAILED_PRECONDITION));
  check_same(direct, Set(*far, key, "x", wrong_version).status);

  direct = Incr(*owner, key, 1).status;
  CHECK_THAT(direct, StatusIs(StatusCode::FAILED_PRECONDITION));
  check_same(direct, Incr(*far, key, 1).status);

  const std::string absent = ring.KeyNotOwnedBy(2, "err-absent:");
  direct = Touch(*cluster.Stub(ring.Primary(absent)), absent, 5).status;
  CHECK_THAT(direct, StatusIs(StatusCode::NOT_FOUND));
  check_same(direct, Touch(*far, absent, 5).status);

  // A value over the limit: the owner's message, naming the limit, comes back unchanged.
  const std::string big(2000, 'x');  // over --max-value-bytes 1000
  auto too_big = Set(*far, key, big);
  CHECK_THAT(too_big.status, StatusIs(StatusCode::INVALID_ARGUMENT, {"value"}));
}

TEST_CASE("Routing: a forwarded call is never forwarded again", "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "hop:");
  const size_t primary = ring.Primary(key);
  auto n2 = cluster.Stub(1);
  REQUIRE_THAT(Set(*n2, key, "v").status, IsOk());

  // As if another node had forwarded it: n2 owns nothing of the key, so it refuses.
  v1::GetRequest get;
  get.set_key(key);
  auto refused = UnaryWith(*n2, &v1::Cache::Stub::Get, get, {{"ringcache-forwarded-by", "n9"}});
  CHECK_THAT(refused.status, StatusIs(StatusCode::UNAVAILABLE,
                                      {"node n2 is not the primary of this key in epoch [0-9]+",
                                       "forwarded by n9", "retry"}));
  v1::SetRequest set = MakeSet(key, "w");
  CHECK_THAT(UnaryWith(*n2, &v1::Cache::Stub::Set, set, {{"ringcache-forwarded-by", "n9"}}).status,
             StatusIs(StatusCode::UNAVAILABLE, {"not the primary", "forwarded by n9"}));
  // The primary serves a forwarded call.
  auto served = UnaryWith(*cluster.Stub(primary), &v1::Cache::Stub::Get, get,
                          {{"ringcache-forwarded-by", "n9"}});
  REQUIRE_THAT(served.status, IsOk());
  CHECK(served.response.value() == "v");

  // Batches and Pipeline: per item.
  v1::MultiGetRequest mget;
  mget.add_keys(key);
  auto mget_reply =
      UnaryWith(*n2, &v1::Cache::Stub::MultiGet, mget, {{"ringcache-forwarded-by", "n9"}});
  REQUIRE_THAT(mget_reply.status, IsOk());
  CHECK_THAT(mget_reply.response.results(0).status(),
             OpIs(StatusCode::UNAVAILABLE, {"forwarded by n9"}));
}

TEST_CASE("Routing: a forwarder on an older view has its call sent on to the owner",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "hop2:");
  auto n2 = cluster.Stub(1);
  REQUIRE_THAT(Set(*n2, key, "v").status, IsOk());
  const uint64_t epoch = cluster.epoch();
  REQUIRE(epoch >= 2);
  const std::string older = std::to_string(epoch - 1);

  // n9 routed on the view before ours: n2's view is the better guess, so n2 sends the call
  // on to the primary it knows (which sees n2's epoch and serves it).
  v1::GetRequest get;
  get.set_key(key);
  auto served = UnaryWith(*n2, &v1::Cache::Stub::Get, get,
                          {{"ringcache-forwarded-by", "n9"}, {"ringcache-epoch", older}});
  REQUIRE_THAT(served.status, IsOk());
  CHECK(served.response.value() == "v");
  CHECK_THAT(UnaryWith(*n2, &v1::Cache::Stub::Set, MakeSet(key, "w"),
                       {{"ringcache-forwarded-by", "n9"}, {"ringcache-epoch", older}})
                 .status,
             IsOk());
  CHECK(Get(*cluster.Stub(ring.Primary(key)), key).response.value() == "w");

  // The same view as ours: one hop only, as before.
  CHECK_THAT(
      UnaryWith(*n2, &v1::Cache::Stub::Get, get,
                {{"ringcache-forwarded-by", "n9"}, {"ringcache-epoch", std::to_string(epoch)}})
          .status,
      StatusIs(StatusCode::UNAVAILABLE, {"not the primary", "forwarded by n9"}));
}

TEST_CASE("Routing: a forwarded stream routed on a newer view waits for it, then is refused",
          "[integration][routing][pipeline]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(1, "ahead:");
  auto n2 = cluster.Stub(1);
  // n9 claims a view one newer than the cluster's, which never comes: n2 holds the stream
  // unread for its bounded wait (PipelineReactor::kMaxViewWait, 500 ms), then routes on the
  // view it has, where it is not the primary, and refuses.
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  ctx.AddMetadata("ringcache-forwarded-by", "n9");
  ctx.AddMetadata("ringcache-epoch", std::to_string(cluster.epoch() + 1));
  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<Stream> stream = n2->Pipeline(&ctx);
  v1::PipelineRequest request;
  v1::Operation* op = request.add_ops();
  op->set_id(7);
  op->mutable_get()->set_key(key);
  REQUIRE(stream->Write(request));
  REQUIRE(stream->WritesDone());
  v1::PipelineResponse response;
  std::vector<v1::OperationResult> results;
  while (stream->Read(&response)) {
    for (const auto& r : response.results()) results.push_back(r);
  }
  REQUIRE_THAT(stream->Finish(), IsOk());
  const auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE(results.size() == 1);
  CHECK(results[0].id() == 7);
  CHECK_THAT(results[0].status(), OpIs(StatusCode::UNAVAILABLE, {"not the primary"}));
  // A lower bound only: the wait is at least that long by construction.
  CHECK(waited >= std::chrono::milliseconds(450));
}

TEST_CASE("Routing: a unary call routed on a newer view waits for that view",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  // Primary n3, replica n2: n2 holds a copy but is not the primary in this view.
  const std::string key = ring.KeyOwnedBy(2, 1, "ahead1:");
  v1::SetRequest set = MakeSet(key, "v");
  set.set_write_concern(1);  // n2 holds it before the reads below.
  REQUIRE_THAT(Unary(*cluster.Stub(2), &v1::Cache::Stub::Set, set).status, IsOk());
  const uint64_t epoch = cluster.epoch();
  const std::string ahead = std::to_string(epoch + 1);
  v1::GetRequest get;
  get.set_key(key);
  auto n2 = cluster.Stub(1);

  // The view never comes: n2 waits its bound (ViewWaits::kMaxWait, 500 ms), then refuses
  // on the view it holds, as before.
  auto started = std::chrono::steady_clock::now();
  auto refused = UnaryWith(*n2, &v1::Cache::Stub::Get, get,
                           {{"ringcache-forwarded-by", "n9"}, {"ringcache-epoch", ahead}});
  CHECK_THAT(refused.status, StatusIs(StatusCode::UNAVAILABLE, {"not the primary"}));
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(450));

  // The view comes while the call waits: n2 serves it on that view, before the bound. The
  // coordinator's push is simulated: the view one epoch on, with n3 failed, so that n2 is
  // the key's primary in it.
  auto view = cluster.Topology(1);
  REQUIRE(view.has_value());
  view->set_epoch(epoch + 1);
  for (v1::Member& m : *view->mutable_members()) {
    if (m.id() == "n3") m.set_state(v1::MEMBER_STATE_FAILED);
  }
  started = std::chrono::steady_clock::now();
  Reply<v1::GetResponse> served;
  std::chrono::steady_clock::time_point answered;
  std::thread call([&] {
    served = UnaryWith(*n2, &v1::Cache::Stub::Get, get,
                       {{"ringcache-forwarded-by", "n9"}, {"ringcache-epoch", ahead}});
    answered = std::chrono::steady_clock::now();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto pushed_at = std::chrono::steady_clock::now();
  {
    auto membership = v1::Membership::NewStub(cluster.node(1).NewChannel());
    v1::PushViewRequest push;
    *push.mutable_view() = *view;
    push.set_from_id("n1");
    push.set_to_id("n2");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PushViewResponse pushed;
    REQUIRE_THAT(membership->PushView(&ctx, push, &pushed), IsOk());
  }
  call.join();
  const auto waited = std::chrono::steady_clock::now() - started;
  INFO("waited " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms");
  REQUIRE_THAT(served.status, IsOk());
  CHECK(served.response.value() == "v");
  CHECK(answered >= pushed_at);  // It waited for the push, rather than being served at once...
  CHECK(waited < std::chrono::milliseconds(450));  // ...and not for the whole bound.
}

TEST_CASE("Routing: ringcache-local reads this node's own cache and refuses writes",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyNotOwnedBy(0, "local:");
  auto n1 = cluster.Stub(0);
  REQUIRE_THAT(Set(*n1, key, "v").status, IsOk());
  CHECK_THAT(Get(*n1, key).status, IsOk());                                // routed
  CHECK_THAT(GetLocal(*n1, key).status, StatusIs(StatusCode::NOT_FOUND));  // not held here
  auto held = GetLocal(*cluster.Stub(ring.Primary(key)), key);
  REQUIRE_THAT(held.status, IsOk());
  CHECK(held.response.value() == "v");

  v1::MultiGetRequest mget;
  mget.add_keys(key);
  auto local_mget = UnaryWith(*n1, &v1::Cache::Stub::MultiGet, mget, {{"ringcache-local", "1"}});
  REQUIRE_THAT(local_mget.status, IsOk());
  CHECK_THAT(local_mget.response.results(0).status(), OpIs(StatusCode::NOT_FOUND));

  CHECK_THAT(
      UnaryWith(*n1, &v1::Cache::Stub::Set, MakeSet(key, "w"), {{"ringcache-local", "1"}}).status,
      StatusIs(StatusCode::INVALID_ARGUMENT, {"ringcache-local", "reads only"}));
  v1::MultiDeleteRequest mdel;
  mdel.add_keys(key);
  CHECK_THAT(UnaryWith(*n1, &v1::Cache::Stub::MultiDelete, mdel, {{"ringcache-local", "1"}}).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"ringcache-local"}));
  CHECK(Get(*n1, key).response.value() == "v");  // unchanged
}

TEST_CASE("Routing: read preference ANY_OWNER is answered by a replica that receives it",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const std::string key = ring.KeyOwnedBy(0, 1, "pref:");  // primary n1, replica n2
  auto n1 = cluster.Stub(0);
  auto n2 = cluster.Stub(1);
  v1::SetRequest set = MakeSet(key, "v");
  set.set_write_concern(1);  // the replica holds it before the reply
  auto set_reply = Unary(*n1, &v1::Cache::Stub::Set, set);
  REQUIRE_THAT(set_reply.status, IsOk());
  REQUIRE(set_reply.response.replicas_acked() == 1);

  auto hits = [&](size_t node) { return Stats(*cluster.Stub(node)).response.hits(); };
  v1::GetRequest get;
  get.set_key(key);
  get.set_read_preference(v1::READ_PREFERENCE_ANY_OWNER);
  uint64_t h1 = hits(0);
  uint64_t h2 = hits(1);
  auto any = Unary(*n2, &v1::Cache::Stub::Get, get);
  REQUIRE_THAT(any.status, IsOk());
  CHECK(any.response.value() == "v");
  CHECK(hits(1) == h2 + 1);  // n2 answered from its replica copy
  CHECK(hits(0) == h1);

  get.set_read_preference(v1::READ_PREFERENCE_PRIMARY);
  h1 = hits(0);
  h2 = hits(1);
  REQUIRE_THAT(Unary(*n2, &v1::Cache::Stub::Get, get).status, IsOk());
  CHECK(hits(0) == h1 + 1);  // forwarded to the primary
  CHECK(hits(1) == h2);

  // A node that owns nothing of the key forwards ANY_OWNER to the primary.
  const std::string other = ring.KeyOwnedBy(0, 1, "pref-b:");
  REQUIRE_THAT(Set(*n1, other, "w").status, IsOk());
  get.set_key(other);
  get.set_read_preference(v1::READ_PREFERENCE_ANY_OWNER);
  auto via_n3 = Unary(*cluster.Stub(2), &v1::Cache::Stub::Get, get);
  REQUIRE_THAT(via_n3.status, IsOk());
  CHECK(via_n3.response.value() == "w");

  get.set_read_preference(static_cast<v1::ReadPreference>(7));
  CHECK_THAT(Unary(*n2, &v1::Cache::Stub::Get, get).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"unknown read preference 7"}));
}

TEST_CASE("Routing: write concern over the replication factor is refused",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  auto n1 = cluster.Stub(0);
  const std::string key = ring.KeyNotOwnedBy(0, "wc:");

  v1::SetRequest set = MakeSet(key, "v");
  set.set_write_concern(2);
  CHECK_THAT(Unary(*n1, &v1::Cache::Stub::Set, set).status,
             StatusIs(StatusCode::INVALID_ARGUMENT,
                      {"write_concern 2 is over the replication factor's 1 replicas"}));
  set.set_write_concern(1);
  set.set_write_concern_timeout_ms(70'000);
  CHECK_THAT(Unary(*n1, &v1::Cache::Stub::Set, set).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"write_concern_timeout_ms 70000", "60000"}));
  CHECK_THAT(Get(*n1, key).status, StatusIs(StatusCode::NOT_FOUND));  // nothing written

  v1::DeleteRequest del;
  del.set_key(key);
  del.set_write_concern(5);
  CHECK_THAT(Unary(*n1, &v1::Cache::Stub::Delete, del).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"write_concern 5"}));
  v1::MultiSetRequest mset;
  *mset.add_items() = MakeSet(key, "v");
  mset.set_write_concern(3);
  CHECK_THAT(Unary(*n1, &v1::Cache::Stub::MultiSet, mset).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"write_concern 3"}));

  // A valid write concern through a node that forwards: the owner waits and says so.
  set.set_write_concern(1);
  set.set_write_concern_timeout_ms(0);
  auto ok = Unary(*n1, &v1::Cache::Stub::Set, set);
  REQUIRE_THAT(ok.status, IsOk());
  CHECK(ok.response.replicas_acked() == 1);
  v1::IncrRequest incr;
  incr.set_key(key + ":n");
  incr.set_delta(3);
  incr.set_write_concern(1);
  auto incr_reply = Unary(*n1, &v1::Cache::Stub::Incr, incr);
  REQUIRE_THAT(incr_reply.status, IsOk());
  CHECK(incr_reply.response.value() == 3);
  CHECK(incr_reply.response.replicas_acked() == 1);
}

TEST_CASE("Routing: a caller with another epoch gets the node's epoch in the trailers",
          "[integration][routing]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  const uint64_t epoch = cluster.epoch();
  REQUIRE(epoch > 1);
  auto n1 = cluster.Stub(0);
  for (const std::string& key : {ring.KeyNotOwnedBy(0, "ep:"), ring.KeyOwnedBy(0, 1, "ep:")}) {
    INFO("key " << key);
    v1::GetRequest get;
    get.set_key(key);
    std::multimap<std::string, std::string> trailers;
    UnaryWith(*n1, &v1::Cache::Stub::Get, get, {{"ringcache-epoch", "1"}}, &trailers);
    REQUIRE(trailers.count("ringcache-epoch") == 1);
    CHECK(trailers.find("ringcache-epoch")->second == std::to_string(epoch));
    trailers.clear();
    UnaryWith(*n1, &v1::Cache::Stub::Get, get, {{"ringcache-epoch", std::to_string(epoch)}},
              &trailers);
    CHECK(trailers.count("ringcache-epoch") == 0);
  }
}

TEST_CASE("Routing: a Pipeline stream with another epoch gets the epoch in its trailers",
          "[integration][routing][pipeline]") {
  TestCluster cluster(SmallCluster());
  RequireStart(cluster);
  auto n3 = cluster.Stub(2);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  ctx.AddMetadata("ringcache-epoch", "1");
  std::unique_ptr<Stream> stream = n3->Pipeline(&ctx);
  v1::PipelineRequest request;
  v1::Operation* op = request.add_ops();
  op->set_id(1);
  op->mutable_get()->set_key("epoch:key");
  REQUIRE(stream->Write(request));
  REQUIRE(stream->WritesDone());
  v1::PipelineResponse response;
  int results = 0;
  while (stream->Read(&response)) results += response.results_size();
  REQUIRE_THAT(stream->Finish(), IsOk());
  CHECK(results == 1);
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("ringcache-epoch");
  REQUIRE(it != trailers.end());
  CHECK(std::string(it->second.data(), it->second.size()) == std::to_string(cluster.epoch()));
}

TEST_CASE("Routing: a node still joining answers UNAVAILABLE, and Stats and Topology",
          "[integration][routing]") {
  // A free port for the node to listen on (it writes no ready file until it has joined),
  // and a seed where nothing listens, so the node keeps trying to join.
  auto free_port = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return static_cast<int>(ntohs(addr.sin_port));
  };
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  const std::string dead_seed = "127.0.0.1:" + std::to_string(free_port());
  NodeProcess node;
  node.SpawnRaw({"--node-id", "joiner", "--listen", listen, "--metrics-listen", "", "--seeds",
                 dead_seed, "--join-timeout-ms", "30000", "--log-level", "info"});
  auto channel = grpc::CreateChannel(listen, grpc::InsecureChannelCredentials());
  auto stub = v1::Cache::NewStub(channel);

  // Poll (bounded) until the server answers: before that the port is not open yet.
  grpc::Status status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    status = Get(*stub, "any-key").status;
    if (status.error_message().find("joining") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK_THAT(status, StatusIs(StatusCode::UNAVAILABLE, {"node joiner is joining the cluster"}));
  CHECK_THAT(Set(*stub, "k", "v").status, StatusIs(StatusCode::UNAVAILABLE, {"joining"}));
  v1::MultiGetRequest mget;
  mget.add_keys("k");
  CHECK_THAT(Unary(*stub, &v1::Cache::Stub::MultiGet, mget).status,
             StatusIs(StatusCode::UNAVAILABLE, {"joining"}));
  auto stats = Stats(*stub);
  REQUIRE_THAT(stats.status, IsOk());
  CHECK(stats.response.node_id() == "joiner");
  CHECK(stats.response.epoch() == 0);
  auto view = Unary(*stub, &v1::Cache::Stub::Topology, v1::TopologyRequest());
  REQUIRE_THAT(view.status, IsOk());
  CHECK(view.response.epoch() == 0);
  CHECK(view.response.members_size() == 0);
  node.Kill();
}

TEST_CASE("Routing: Topology agrees on every node and WatchTopology sees a join",
          "[integration][routing][topology]") {
  TestCluster cluster(SmallCluster({"--shutdown-grace-ms", "30000"}));
  RequireStart(cluster);
  const uint64_t epoch = cluster.epoch();
  for (size_t i = 0; i < 3; ++i) {
    std::optional<v1::ClusterView> view = cluster.Topology(i);
    REQUIRE(view.has_value());
    CHECK(view->epoch() == epoch);
    CHECK(view->replication_factor() == 2);
    REQUIRE(view->members_size() == 3);
    for (int m = 0; m < 3; ++m) {
      CHECK(view->members(m).id() == TestCluster::IdOf(static_cast<size_t>(m)));
      CHECK(view->members(m).address() == cluster.address(static_cast<size_t>(m)));
      CHECK(view->members(m).state() == v1::MEMBER_STATE_SERVING);
      CHECK(view->members(m).weight() == 1);
    }
  }

  auto n2 = cluster.Stub(1);
  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::milliseconds(60'000));
  std::unique_ptr<grpc::ClientReader<v1::ClusterView>> watch =
      n2->WatchTopology(&ctx, v1::TopologyRequest());
  v1::ClusterView first;
  REQUIRE(watch->Read(&first));
  CHECK(first.epoch() == epoch);
  CHECK(first.members_size() == 3);

  REQUIRE(cluster.AddNode());
  const uint64_t joined = cluster.epoch();
  REQUIRE(joined > epoch);
  // Bounded: the watch sees the new view (it may skip none here, but allow intermediates).
  v1::ClusterView seen;
  bool found = false;
  for (int i = 0; i < 10 && !found; ++i) {
    REQUIRE(watch->Read(&seen));
    CHECK(seen.epoch() > epoch);
    found = seen.epoch() == joined;
  }
  REQUIRE(found);
  CHECK(seen.members_size() == 4);
  CHECK(seen.members(3).id() == "n4");

  // The watch ends with UNAVAILABLE when the node shuts down, long before the 30 s grace
  // period that an open call would hold it for.
  std::optional<ExitStatus> exit = cluster.node(1).Terminate(std::chrono::milliseconds(10'000));
  REQUIRE(exit.has_value());
  CHECK(*exit == ExitStatus::Code(0));
  v1::ClusterView more;
  while (watch->Read(&more)) {
  }
  CHECK_THAT(watch->Finish(), StatusIs(StatusCode::UNAVAILABLE));
}

TEST_CASE("Routing: an owner that is down or stuck gives UNAVAILABLE naming it",
          "[integration][routing]") {
  // A long failure timeout: n3 must stay the owner (not be failed over) while it is down.
  TestCluster cluster(SmallCluster({"--forward-timeout-ms", "500", "--shutdown-grace-ms", "20000",
                                    "--failure-timeout-ms", "60000"}));
  RequireStart(cluster);
  const Ring ring = RingOf(cluster);
  auto n1 = cluster.Stub(0);
  const std::string to_n3 = ring.KeyOwnedBy(2, 0, "down:");
  const std::string to_n2 = ring.KeyOwnedBy(1, 0, "down:");
  REQUIRE_THAT(Set(*n1, to_n2, "v2").status, IsOk());

  // Stuck (SIGSTOP): the forward timeout ends the call, not the caller's deadline.
  REQUIRE(cluster.node(2).SignalStopAndWait(std::chrono::seconds(5)));
  auto stuck = Get(*n1, to_n3);
  cluster.node(2).Signal(SIGCONT);
  CHECK_THAT(stuck.status,
             StatusIs(StatusCode::UNAVAILABLE, {"node n3", "forward timeout of 500 ms"}));

  // Down (SIGKILL; it stays in the view, SERVING, within the failure timeout): the
  // transport error, naming the owner.
  cluster.Kill(2);
  CHECK_THAT(Get(*n1, to_n3).status,
             StatusIs(StatusCode::UNAVAILABLE, {"cannot reach node n3 at 127.0.0.1:"}));
  v1::MultiGetRequest mget;
  mget.add_keys(to_n2);
  mget.add_keys(to_n3);
  auto mget_reply = Unary(*n1, &v1::Cache::Stub::MultiGet, mget);
  REQUIRE_THAT(mget_reply.status, IsOk());
  CHECK_THAT(mget_reply.response.results(0).status(), OpIs(StatusCode::OK));
  CHECK(mget_reply.response.results(0).value() == "v2");
  CHECK_THAT(mget_reply.response.results(1).status(),
             OpIs(StatusCode::UNAVAILABLE, {"cannot reach node n3"}));

  v1::PipelineRequest ops;
  for (const std::string& key : {to_n2, to_n3}) {
    v1::Operation* op = ops.add_ops();
    op->set_id(static_cast<uint64_t>(ops.ops_size()));
    op->mutable_get()->set_key(key);
  }
  PipelineRun run = RunPipeline(*n1, {ops});
  REQUIRE_THAT(run.status, IsOk());
  REQUIRE(run.results.size() == 2);
  CHECK(run.results.at(1).get().value() == "v2");
  CHECK_THAT(run.results.at(2).status(), OpIs(StatusCode::UNAVAILABLE, {"cannot reach node n3"}));
}

}  // namespace
}  // namespace ringcache::it

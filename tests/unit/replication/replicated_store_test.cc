// ReplicatedStore end to end, in-process: two "nodes" (a cache, a store, a gRPC server on
// 127.0.0.1:0 serving the store's Replication service) wired by a hand-made cluster view.
// In one process the threads of both sides (link drivers, ack readers, the timer, the
// receiver's reactions) are visible to ThreadSanitizer, and a full sync can be raced
// against concurrent writes of every kind on purpose.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "peer_pool.h"
#include "repl_link.h"
#include "repl_waiters.h"
#include "replication.h"
#include "ringcache/cache.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

using namespace std::chrono_literals;

bool Eventually(const std::function<bool()>& ok, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (ok()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// The store's log lines, for tests that check them.
struct LogLines {
  std::mutex mu;
  std::vector<std::string> lines;
  bool Has(const std::string& part) {
    std::lock_guard lock(mu);
    for (const std::string& l : lines) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

struct TestNode {
  // `listen`: the server's address; port 0 picks a free one (a node restarted on the
  // address of a stopped one passes that).
  explicit TestNode(std::string node_id, uint64_t backlog_bytes = 8 << 20,
                    std::chrono::milliseconds ack_timeout = 2000ms,
                    const std::string& listen = "127.0.0.1:0")
      : id(std::move(node_id)) {
    cache = std::move(Cache::Create({.capacity_bytes = 64 << 20})).value();
    peers = std::make_unique<PeerPool>(8 << 20);
    store = std::make_unique<ReplicatedStore>(
        ReplicationOptions{.self_id = id,
                           .backlog_bytes = backlog_bytes,
                           .ack_timeout = ack_timeout,
                           .log =
                               [l = log.get()](LogLevel, std::string_view line) {
                                 std::lock_guard lock(l->mu);
                                 l->lines.emplace_back(line);
                               }},
        cache.get(), peers.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(store->service());
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    address = "127.0.0.1:" + std::to_string(port);
  }
  ~TestNode() { Stop(); }
  void Stop() {
    if (server == nullptr) return;
    store->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() + 2s);
    server.reset();
  }

  std::string id;
  std::string address;
  std::unique_ptr<LogLines> log = std::make_unique<LogLines>();
  std::unique_ptr<Cache> cache;
  std::unique_ptr<PeerPool> peers;
  std::unique_ptr<ReplicatedStore> store;
  std::unique_ptr<grpc::Server> server;
};

std::shared_ptr<const Topology> TopologyFor(const std::vector<TestNode*>& nodes, uint32_t rf,
                                            const std::string& self, uint64_t epoch = 2) {
  ClusterView view;
  view.epoch = epoch;
  view.replication_factor = rf;
  for (TestNode* n : nodes) view.members.push_back(ClusterMember{n->id, n->address});
  Result<std::shared_ptr<const Topology>> t = Topology::Make(view, self);
  REQUIRE(t.ok());
  return *t;
}

// Epochs of the views the tests publish: each higher than the last (a store adopts only
// newer views, as nodes do).
uint64_t NextEpoch() {
  static uint64_t epoch = 1;
  return ++epoch;
}

// Gives every node the view of `nodes`; returns its epoch.
uint64_t Publish(const std::vector<TestNode*>& nodes, uint32_t rf) {
  const uint64_t epoch = NextEpoch();
  for (TestNode* n : nodes) n->store->OnTopology(TopologyFor(nodes, rf, n->id, epoch));
  return epoch;
}

// A view whose members have the given states (a transition when some join or leave).
using Members = std::vector<std::pair<TestNode*, MemberState>>;
std::shared_ptr<const Topology> StatesTopology(const Members& members, uint32_t rf,
                                               const std::string& self, uint64_t epoch) {
  ClusterView view;
  view.epoch = epoch;
  view.replication_factor = rf;
  for (const auto& [n, state] : members) {
    view.members.push_back(ClusterMember{n->id, n->address, 1, state});
  }
  Result<std::shared_ptr<const Topology>> t = Topology::Make(view, self);
  REQUIRE(t.ok());
  return *t;
}

// Gives `to` (default: every member) the view of `members`; returns its epoch.
uint64_t PublishStates(const Members& members, uint32_t rf, std::vector<TestNode*> to = {}) {
  const uint64_t epoch = NextEpoch();
  if (to.empty()) {
    for (const auto& [n, state] : members) to.push_back(n);
  }
  for (TestNode* n : to) n->store->OnTopology(StatesTopology(members, rf, n->id, epoch));
  return epoch;
}

// Keys whose primary is `primary` in `t`.
std::vector<std::string> KeysOf(const Topology& t, const std::string& primary, size_t n) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n && i < 10'000'000; ++i) {
    std::string k = "key" + std::to_string(i);
    if (t.Primary(HashKey(k))->id == primary) keys.push_back(std::move(k));
  }
  return keys;
}

// The keys of `keys` whose primary is `primary` in `t`.
std::vector<std::string> PrimaryOnly(const Topology& t, const std::vector<std::string>& keys,
                                     const std::string& primary) {
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    if (t.Primary(HashKey(k))->id == primary) out.push_back(k);
  }
  return out;
}

std::optional<ReplicaLinkStats> LinkTo(const TestNode& from, const std::string& to) {
  for (const ReplicaLinkStats& l : from.store->LinkStats()) {
    if (l.replica_id == to) return l;
  }
  return std::nullopt;
}

bool CaughtUp(const TestNode& from, const std::string& to) {
  std::optional<ReplicaLinkStats> l = LinkTo(from, to);
  return l && l->state == "streaming" && l->lag_ops == 0;
}

// "" if `b` holds exactly what `a` holds for `keys` (value and version), else the first
// difference.
std::string Diff(Cache& a, Cache& b, const std::vector<std::string>& keys) {
  for (const std::string& k : keys) {
    std::string va, vb;
    ItemMeta ma, mb;
    const bool ha = a.Get(k, &va, &ma).ok();
    const bool hb = b.Get(k, &vb, &mb).ok();
    if (ha != hb ||
        (ha && (va != vb || ma.version != mb.version || ma.deadline_ms != mb.deadline_ms))) {
      auto show = [](bool has, const std::string& v, const ItemMeta& m) {
        return has ? v + "@" + std::to_string(m.version) + " expires " +
                         std::to_string(m.deadline_ms)
                   : std::string("absent");
      };
      return k + ": primary " + show(ha, va, ma) + ", replica " + show(hb, vb, mb);
    }
  }
  return "";
}

// Waits for done(acked) of a WaitForAcks.
struct AckResult {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<uint32_t> acked;
  std::function<void(uint32_t)> Fn() {
    return [this](uint32_t a) {
      std::lock_guard lock(mu);
      acked = a;
      cv.notify_all();
    };
  }
  std::optional<uint32_t> Wait(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [this] { return acked.has_value(); });
    return acked;
  }
};

TEST_CASE("ReplicatedStore ships writes to the replica and reports write-concern acks",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 200);
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));

  for (size_t i = 0; i < keys.size(); ++i) {
    WriteTicket ticket;
    REQUIRE(a.store->Set(keys[i], "v" + std::to_string(i), {}, &ticket).ok());
    REQUIRE(ticket.links.size() == 1);
    if (i % 50 == 0) {
      AckResult r;
      a.store->WaitForAcks(ticket, 1, 5s, r.Fn());
      CHECK(r.Wait() == std::optional<uint32_t>(1));
      std::string v;
      CHECK(b.cache->Get(keys[i], &v).ok());  // Acked means applied.
    }
  }
  WriteTicket ticket;
  REQUIRE(a.store->Incr(keys[0] + "n", 5, 0, &ticket).ok());
  REQUIRE(a.store->Touch(keys[1], 60'000, &ticket).ok());
  REQUIRE(a.store->Delete(keys[2], &ticket).ok());
  std::vector<SetItem> items{{keys[3], "m3", {}}, {keys[4], "m4", {.ttl_ms = 30'000}}};
  REQUIRE(a.store->MultiSet(items, &ticket).size() == 2);
  CHECK(ticket.links.size() == 1);
  AckResult r;
  a.store->WaitForAcks(ticket, 1, 5s, r.Fn());
  CHECK(r.Wait() == std::optional<uint32_t>(1));
  std::vector<std::string> all = keys;
  all.push_back(keys[0] + "n");
  CHECK(Diff(*a.cache, *b.cache, PrimaryOnly(*t, all, "a")) == "");

  // Keys b is the primary of go the other way; a write concern over the live links ends
  // at once with what it can count.
  const std::vector<std::string> b_keys = KeysOf(*t, "b", 10);
  WriteTicket bt;
  REQUIRE(b.store->Set(b_keys[0], "x", {}, &bt).ok());
  AckResult two;
  b.store->WaitForAcks(bt, 2, 5s, two.Fn());
  CHECK(two.Wait(100ms).has_value());
  CHECK(Eventually([&] { return Diff(*b.cache, *a.cache, b_keys) == ""; }));
}

TEST_CASE("ReplicatedStore write concern times out when the replica does not ack",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 1);
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  b.Stop();  // The replica goes away; a keeps writing.
  WriteTicket ticket;
  REQUIRE(a.store->Set(keys[0], "v", {}, &ticket).ok());
  AckResult r;
  const auto t0 = std::chrono::steady_clock::now();
  a.store->WaitForAcks(ticket, 1, 150ms, r.Fn());
  CHECK(r.Wait() == std::optional<uint32_t>(0));
  CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
  // Shutdown ends pending waits at once.
  AckResult pending;
  a.store->WaitForAcks(ticket, 1, 60s, pending.Fn());
  a.Stop();
  CHECK(pending.Wait(5s) == std::optional<uint32_t>(0));
  // Writes still work on the local cache after the shutdown.
  CHECK(a.store->Set(keys[0], "after", {}, nullptr).ok());
}

TEST_CASE("ReplicatedStore full sync racing concurrent writes converges to the primary",
          "[unit][replication]") {
  // A backlog big enough for the run, and one so small that the link keeps falling behind
  // and restarts its full sync on the open stream.
  const uint64_t backlog = GENERATE(uint64_t{16} << 20, uint64_t{64} << 10);
  INFO("backlog " << backlog);
  TestNode a("a", backlog);
  TestNode b("b");
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 20000);
  // a holds data before it has any replica: the link's full sync must copy it.
  for (size_t i = 0; i < keys.size(); ++i) REQUIRE(a.cache->Set(keys[i], "old").ok());
  // b holds stale data in a's ranges that the sync must drop.
  for (size_t i = 0; i < keys.size(); i += 3) REQUIRE(b.cache->Set(keys[i], "stale").ok());

  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937 rng(w);
      while (!stop.load()) {
        const std::string& k = keys[rng() % keys.size()];
        switch (rng() % 5) {
          case 0:
            (void)a.store->Delete(k, nullptr);
            break;
          case 1:
            (void)a.store->Touch(k, 3'600'000, nullptr);
            break;
          case 2:
            (void)a.store->Incr(k + "#n", 1, 0, nullptr);
            break;
          default:
            (void)a.store->Set(k, "w" + std::to_string(rng()), {}, nullptr);
        }
      }
    });
  }
  std::this_thread::sleep_for(20ms);  // Writes in flight before the view arrives, too.
  Publish({&a, &b}, 2);
  // Let the sync and the writes overlap, then stop writing. (With the tiny backlog the
  // link may not reach "streaming" while the writers run: every sync takes longer than
  // the backlog lasts. It must converge once they stop.)
  CHECK(Eventually([&] {
    std::optional<ReplicaLinkStats> l = LinkTo(a, "b");
    return l && l->full_syncs >= 1;
  }));
  std::this_thread::sleep_for(100ms);
  stop.store(true);
  for (std::thread& th : writers) th.join();
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  std::vector<std::string> all = keys;
  for (const std::string& k : keys) all.push_back(k + "#n");
  CHECK(Diff(*a.cache, *b.cache, PrimaryOnly(*t, all, "a")) == "");
}

TEST_CASE("ReplicatedStore re-syncs when the view gives a link new ranges", "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  TestNode c("c");
  Publish({&a, &b}, 2);
  const auto t2 = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t2, "a", 500);
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v", {}, nullptr).ok());
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  const uint64_t syncs = LinkTo(a, "b")->full_syncs;

  // c joins: some of a's keys now replicate to c, and b only loses ranges from a: it
  // holds the rest already, so its link needs no new full sync.
  Publish({&a, &b, &c}, 2);
  const auto t3 = TopologyFor({&a, &b, &c}, 2, "a");
  REQUIRE(Eventually([&] { return CaughtUp(a, "b") && CaughtUp(a, "c"); }));
  CHECK(LinkTo(a, "b")->full_syncs == syncs);
  // Every key a is still the primary of is on its replica in the new view.
  for (const std::string& k : keys) {
    uint32_t owners[2];
    if (t3->Owners(HashKey(k), owners) < 2 || static_cast<int>(owners[0]) != t3->self) continue;
    TestNode* replica = t3->ring_members[owners[1]]->id == "b" ? &b : &c;
    INFO(k << " on " << replica->id);
    CHECK(Diff(*a.cache, *replica->cache, {k}) == "");
  }
  // c leaves again (it stops first, so that it no longer streams to a): a's link to c
  // closes, and b gets its ranges back with a full sync.
  c.Stop();
  Publish({&a, &b}, 2);
  CHECK(Eventually([&] { return !LinkTo(a, "c").has_value(); }));
  // (More than one when a's sync reached b before b held the view: b refuses a sync of
  // ranges its own view gives another primary, ABORTED, and a's link tries again.)
  REQUIRE(Eventually([&] { return CaughtUp(a, "b") && LinkTo(a, "b")->full_syncs > syncs; }));
  // (c, primary of some of a's keys while it was in the view with an empty cache, made a
  // drop them; b may have dropped them too, or not, depending on when its sync ran.)
  std::vector<std::string> on_a;
  for (const std::string& k : keys) {
    std::string v;
    if (a.cache->Get(k, &v).ok()) on_a.push_back(k);
  }
  CHECK(Diff(*a.cache, *b.cache, on_a) == "");
}

// Records the transition-ready reports of a store.
struct ReadyCalls {
  std::mutex mu;
  std::vector<uint64_t> epochs;
  std::string first_check;  // What `check` said at the first report.
  std::function<std::string()> check;
  std::function<void(uint64_t)> Fn() {
    return [this](uint64_t epoch) {
      std::string checked = check && epochs.empty() ? check() : "";
      std::lock_guard lock(mu);
      if (epochs.empty()) first_check = checked;
      epochs.push_back(epoch);
    };
  }
  size_t count() {
    std::lock_guard lock(mu);
    return epochs.size();
  }
};

TEST_CASE("ReplicatedStore streams moving ranges to a joiner and reports ready after the sync",
          "[unit][replication]") {
  // A long ack timeout: under a sanitizer a slow apply must not restart the sync (the
  // counts below are exact).
  TestNode a("a", 8 << 20, 20s);
  TestNode j("j", 8 << 20, 20s);
  ReadyCalls ready_a, ready_j;
  a.store->SetTransitionReadyCallback(ready_a.Fn());
  j.store->SetTransitionReadyCallback(ready_j.Fn());
  PublishStates({{&a, MemberState::kServing}}, 1);
  CHECK(a.store->Migration().epoch == 0);

  // a holds data; the keys whose target owner is j are the moving ones.
  const Members transition{{&a, MemberState::kServing}, {&j, MemberState::kJoining}};
  const auto target = StatesTopology(transition, 1, "a", 1);
  std::vector<std::string> moving, staying;
  uint64_t moving_bytes = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "key" + std::to_string(i);
    const std::string v = "value-" + std::to_string(i * 7919);
    REQUIRE(a.cache->Set(k, v).ok());
    uint32_t owner;
    REQUIRE(target->target_ring.Owners(HashKey(k), std::span<uint32_t>(&owner, 1)) == 1);
    if (target->target_ring_members[owner]->id == "j") {
      moving.push_back(k);
      moving_bytes += k.size() + v.size();
    } else {
      staying.push_back(k);
    }
  }
  REQUIRE(!moving.empty());
  REQUIRE(!staying.empty());
  // At its first report, j must already hold every moving key.
  ready_a.check = [&] { return Diff(*a.cache, *j.cache, moving); };

  const uint64_t epoch = PublishStates(transition, 1);
  REQUIRE(Eventually([&] { return ready_a.count() >= 1; }, 30s));
  {
    std::lock_guard lock(ready_a.mu);
    CHECK(ready_a.epochs[0] == epoch);
    CHECK(ready_a.first_check == "");
  }
  CHECK(a.log->Has("migration for epoch " + std::to_string(epoch) + ": "));
  CHECK(a.log->Has(" ranges moving to j ("));
  CHECK(Eventually([&] {
    return a.log->Has("migration for epoch " + std::to_string(epoch) +
                      " done on this node: " + std::to_string(moving.size()) + " keys");
  }));
  const MigrationProgress m = a.store->Migration();
  CHECK(m.epoch == epoch);
  CHECK(m.ranges_total > 0);
  CHECK(m.ranges_done == m.ranges_total);
  CHECK(m.keys_sent == moving.size());
  CHECK(m.bytes_sent == moving_bytes);
  CHECK(m.keys_remaining == 0);
  CHECK(m.bytes_remaining == 0);
  CHECK(j.store->Migration().keys_received == moving.size());
  CHECK(j.store->Migration().bytes_received == moving_bytes);
  CHECK(j.store->Migration().epoch == epoch);
  CHECK(a.store->UnderReplicatedRanges() == 0);  // RF 1: the ring owner is enough.
  // Nothing but the moving keys went to j.
  std::string v;
  for (size_t i = 0; i < staying.size(); i += 97) CHECK_FALSE(j.cache->Get(staying[i], &v).ok());

  // During the transition, writes of moving keys go to j too; the others do not.
  WriteTicket ticket;
  REQUIRE(a.store->Set(moving[0], "live", {}, &ticket).ok());
  CHECK(ticket.links.size() == 1);
  AckResult acked;
  a.store->WaitForAcks(ticket, 1, 5s, acked.Fn());
  CHECK(acked.Wait() == std::optional<uint32_t>(1));
  CHECK(Diff(*a.cache, *j.cache, {moving[0]}) == "");
  REQUIRE(a.store->Set(staying[0], "local", {}, &ticket).ok());
  CHECK(ticket.links.empty());

  // The report repeats while the view stays in transition; j (off the ring) never reports.
  CHECK(Eventually([&] { return ready_a.count() >= 2; }, 5s));
  CHECK(ready_j.count() == 0);

  // The flip: j serves its ranges; a (RF 1) no longer replicates anything.
  PublishStates({{&a, MemberState::kServing}, {&j, MemberState::kServing}}, 1);
  CHECK(a.store->Migration().epoch == 0);
  CHECK(a.store->WaitDrained(5s));
  CHECK(!LinkTo(a, "j").has_value());
  CHECK(Diff(*a.cache, *j.cache, moving) == "");
}

TEST_CASE("ReplicatedStore drains a link the view removes before closing it",
          "[unit][replication]") {
  // The drain may take up to the ack timeout: a long one, so that a slow (sanitizer) run
  // drains rather than times out.
  TestNode a("a", 8 << 20, 20s);
  TestNode b("b", 8 << 20, 20s);
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 3000);
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  // Writes appended right before b stops being a's replica (b failed, as a sees it) ...
  WriteTicket ticket;
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(a.store->Set(keys[i], std::string(100, 'a' + i % 26), {}, &ticket).ok());
  }
  PublishStates({{&a, MemberState::kServing}, {&b, MemberState::kFailed}}, 2, {&a});
  // ... still reach b: the link closes once they are acknowledged, and a write-concern
  // wait on them counts the ack.
  AckResult acked;
  a.store->WaitForAcks(ticket, 1, 30s, acked.Fn());
  CHECK(acked.Wait(30s) == std::optional<uint32_t>(1));
  CHECK(a.store->WaitDrained(30s));
  CHECK(a.log->Has("replication link to b closing in epoch"));
  CHECK(Eventually([&] { return a.log->Has("replication link to b closed: drained"); }));
  CHECK(!LinkTo(a, "b").has_value());
  CHECK(Diff(*a.cache, *b.cache, keys) == "");
}

TEST_CASE("ReplicatedStore replaces a link that stopped while draining when a view needs it again",
          "[unit][replication]") {
  // The join stall of a restarted node: a's link to b is draining (b died, a's view has
  // it FAILED) when b's new process, empty, answers on the same address before the view
  // that re-adds it reaches a. The replica has no usable copy, and a retiring link never
  // full-syncs, so the link stops. The view that needs b again must not keep that stopped
  // link: nothing would ever sync b, and b's transition would never complete.
  TestNode a("a", 8 << 20, 20s);
  auto b = std::make_unique<TestNode>("b", 8 << 20, 20s);
  const std::string b_address = b->address;
  Publish({&a, b.get()}, 2);
  const auto t = TopologyFor({&a, b.get()}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 500);
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v1", {}, nullptr).ok());
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));

  b.reset();  // b dies (its server stops: the link breaks and retries)
  // Writes the link cannot deliver, then a's view with b FAILED: the link drains.
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v2", {}, nullptr).ok());
  auto view_of = [&](MemberState b_state, uint64_t epoch) {
    ClusterView view;
    view.epoch = epoch;
    view.replication_factor = 2;
    view.members = {ClusterMember{"a", a.address, 1, MemberState::kServing},
                    ClusterMember{"b", b_address, 1, b_state}};
    Result<std::shared_ptr<const Topology>> topology = Topology::Make(view, "a");
    REQUIRE(topology.ok());
    return *topology;
  };
  a.store->OnTopology(view_of(MemberState::kFailed, NextEpoch()));
  REQUIRE(a.log->Has("replication link to b closing in epoch"));

  // b's new process, empty, on the same address; a's view does not hold it yet.
  TestNode b2("b", 8 << 20, 20s, b_address);
  REQUIRE(b2.address == b_address);
  REQUIRE(
      Eventually([&] { return a.log->Has("replication link to b stopped while draining"); }, 20s));

  // The view that re-adds b (as a joiner would be, once its ranges arrive): a new link
  // takes over and syncs b fully. (Either the store closed the stopped link already, or
  // it finds it in its draining list and replaces it: never keeps it.)
  const uint64_t readded = NextEpoch();
  a.store->OnTopology(view_of(MemberState::kServing, readded));
  const std::string e = std::to_string(readded);
  CHECK((a.log->Has("replication link to b replaced in epoch " + e) ||
         a.log->Has("replication link to b (" + b_address + ") opened in epoch " + e)));
  CHECK(!a.log->Has("replication link to b kept in epoch"));
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }, 20s));
  CHECK(Diff(*a.cache, *b2.cache, keys) == "");
  CHECK(a.store->UnderReplicatedRanges() == 0);
}

TEST_CASE(
    "ReplLink: a retiring link that reconnects to an empty replica stops, and cannot be "
    "revived",
    "[unit][replication]") {
  // The link state machine alone: retiring + "replica has no usable copy" = stopped, for
  // good; Revive() says so, so that its owner replaces it instead of keeping it.
  TestNode b("b", 8 << 20, 20s);
  auto cache = std::move(Cache::Create({.capacity_bytes = 16 << 20})).value();
  PeerPool peers(8 << 20);
  ReplWaiters waiters;
  LogLines log;
  auto make_link = [&](uint64_t id) {
    auto link =
        std::make_unique<ReplLink>(ReplLinkOptions{.self_id = "a",
                                                   .replica_id = "b",
                                                   .link_id = id,
                                                   .replication_id = "test." + std::to_string(id),
                                                   .ack_timeout = 20s,
                                                   .backoff_initial = 10ms,
                                                   .backoff_max = 50ms,
                                                   .log =
                                                       [&log](LogLevel, std::string_view line) {
                                                         std::lock_guard lock(log.mu);
                                                         log.lines.emplace_back(line);
                                                       }},
                                   cache.get(), &peers, &waiters);
    waiters.AddLink(id);
    const std::vector<HashRange> full{HashRange::Full()};
    link->SetRoute(b.address, ReplRangeSet(full), 1);
    return link;
  };
  auto record = [](int i) {
    return std::make_shared<const WriteRecord>(WriteRecord{
        WriteRecord::Kind::kSet, "k" + std::to_string(i), "v", static_cast<uint64_t>(i + 1), 0});
  };

  // A running, retiring link is revived.
  auto running = make_link(1);
  running->Start();
  REQUIRE(Eventually([&] { return running->Sync().in_sync; }));
  running->Retire();
  CHECK(running->Revive());
  CHECK(!running->Stopped());
  running->Stop();
  running->Join();
  CHECK(!running->Revive());  // Stopped by its owner: final too.

  // A retiring link whose replica lost its copy stops by itself.
  auto link = make_link(2);
  link->Start();
  REQUIRE(Eventually([&] { return link->Sync().in_sync; }));
  link->Retire();
  b.store->ClearLocalData();  // The replica "restarted empty": its resume state is gone.
  for (int i = 0; i < 10; ++i) link->Append(record(i));
  // The receiver ends the open stream (ABORTED); the link reconnects and the hello says
  // the replica has no usable copy: a retiring link may not full-sync, so it stops.
  REQUIRE(Eventually([&] { return link->Stopped(); }, 20s));
  CHECK(log.Has("replication link to b stopped while draining"));
  CHECK(!link->Revive());
  CHECK(link->Stopped());
  link->Join();
}

TEST_CASE("ReplicatedStore keeps a draining link that still runs when a view needs it again",
          "[unit][replication]") {
  // The other side of the rule: a draining link that has not stopped is taken back (one
  // link per replica), and it re-sends what the replica missed with a full sync.
  TestNode a("a", 8 << 20, 20s);
  TestNode b("b", 8 << 20, 20s);
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 300);
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v1", {}, nullptr).ok());
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  PublishStates({{&a, MemberState::kServing}, {&b, MemberState::kFailed}}, 2, {&a});
  // Written while b is off a's route: b gets them only through the revived link's sync.
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v2", {}, nullptr).ok());
  const std::string e = std::to_string(Publish({&a, &b}, 2));
  // The link may have drained and closed before the second view (then a new one opens).
  CHECK((a.log->Has("replication link to b kept in epoch " + e) ||
         a.log->Has("replication link to b (" + b.address + ") opened in epoch " + e)));
  // Not CaughtUp alone: the kept link reports streaming with no lag until it learns that
  // it must sync, so the replica's copy is what the wait is for.
  CHECK(
      Eventually([&] { return CaughtUp(a, "b") && Diff(*a.cache, *b.cache, keys).empty(); }, 20s));
  CHECK(Diff(*a.cache, *b.cache, keys) == "");
}

// The version a write got (through the store, as a node writes).
uint64_t WriteVersion(TestNode& n, const std::string& key, const std::string& value) {
  Result<uint64_t> v = n.store->Set(key, value, {}, nullptr);
  REQUIRE(v.ok());
  return *v;
}

uint64_t VersionOn(Cache& cache, const std::string& key) {
  std::string value;
  ItemMeta meta;
  REQUIRE(cache.Get(key, &value, &meta).ok());
  return meta.version;
}

TEST_CASE("Versions never repeat: a promoted replica writes above its failed primary's writes",
          "[unit][replication][versions]") {
  TestNode a("a");
  TestNode b("b");
  const uint64_t e1 = Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::string key = KeysOf(*t, "a", 1)[0];
  const uint64_t v1 = WriteVersion(a, key, "v1");
  CHECK(v1 > VersionFloor(e1));
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  CHECK(VersionOn(*b.cache, key) == v1);
  // a's last writes never reach b (write concern 0, a dies with them): written on a's
  // cache alone, as if the link had not sent them yet.
  uint64_t lost = 0;
  for (int i = 0; i < 3; ++i) {
    Result<uint64_t> v = a.cache->Set(key, "lost" + std::to_string(i));
    REQUIRE(v.ok());
    lost = *v;
  }
  a.Stop();
  // b is promoted: its first write of the key must be above every version a wrote,
  // including the ones b never saw (without the epoch floor it would be v1 + 1, the
  // version of a's first lost write).
  PublishStates({{&a, MemberState::kFailed}, {&b, MemberState::kServing}}, 2, {&b});
  const uint64_t promoted = WriteVersion(b, key, "after failover");
  CHECK(promoted > lost);
  CHECK(promoted > v1);
}

TEST_CASE("Versions never repeat: a primary that comes back empty writes above what it missed",
          "[unit][replication][versions]") {
  auto a = std::make_unique<TestNode>("a");
  TestNode b("b");
  Publish({a.get(), &b}, 2);
  const auto t = TopologyFor({a.get(), &b}, 2, "a");
  const std::string key = KeysOf(*t, "a", 1)[0];
  WriteVersion(*a, key, "v1");
  REQUIRE(Eventually([&] { return CaughtUp(*a, "b"); }));
  const std::string a_address = a->address;
  a.reset();  // a dies; b takes over its ranges and deletes the key.
  auto failed_view = [&](MemberState a_state, uint64_t epoch) {
    ClusterView view;
    view.epoch = epoch;
    view.replication_factor = 2;
    view.members = {ClusterMember{"a", a_address, 1, a_state},
                    ClusterMember{"b", b.address, 1, MemberState::kServing}};
    return view;
  };
  auto topology_for = [&](const ClusterView& view, const std::string& self) {
    Result<std::shared_ptr<const Topology>> made = Topology::Make(view, self);
    REQUIRE(made.ok());
    return *made;
  };
  b.store->OnTopology(topology_for(failed_view(MemberState::kFailed, NextEpoch()), "b"));
  const uint64_t b_write = WriteVersion(b, key, "written while a was away");
  WriteRecord deleted;
  REQUIRE(b.cache->Delete(key, &deleted).ok());
  CHECK(deleted.version == b_write);
  // a comes back as a new, empty process on its old address and, once its transition
  // flips, is the key's primary again. It never saw b's write nor the delete; its
  // counters start over, but its first write of the key is above both.
  TestNode a2("a", 8 << 20, 2000ms, a_address);
  const uint64_t joined = NextEpoch();
  for (TestNode* n : {&a2, &b}) {
    n->store->OnTopology(topology_for(failed_view(MemberState::kJoining, joined), n->id));
  }
  const uint64_t flipped = NextEpoch();
  for (TestNode* n : {&a2, &b}) {
    n->store->OnTopology(topology_for(failed_view(MemberState::kServing, flipped), n->id));
  }
  const uint64_t back = WriteVersion(a2, key, "a is back");
  CHECK(back > deleted.version);
  CHECK(back > VersionFloor(flipped));
}

TEST_CASE("Versions never repeat: the new owner of a moved range writes above the old owner",
          "[unit][replication][versions]") {
  TestNode a("a", 8 << 20, 20s);
  TestNode j("j", 8 << 20, 20s);
  PublishStates({{&a, MemberState::kServing}}, 1);
  const Members joining{{&a, MemberState::kServing}, {&j, MemberState::kJoining}};
  const auto target = StatesTopology(joining, 1, "a", 1);
  std::string key;
  for (int i = 0; key.empty(); ++i) {
    const std::string k = "key" + std::to_string(i);
    uint32_t owner;
    REQUIRE(target->target_ring.Owners(HashKey(k), std::span<uint32_t>(&owner, 1)) == 1);
    if (target->target_ring_members[owner]->id == "j") key = k;
  }
  WriteVersion(a, key, "before the move");
  PublishStates(joining, 1);
  REQUIRE(Eventually([&] { return CaughtUp(a, "j"); }, 20s));
  // The flip reaches j first. a, still holding the older view, writes the key as its
  // primary; that write has not reached j yet when j writes the key as the new primary.
  const uint64_t flip = NextEpoch();
  const Members flipped{{&a, MemberState::kServing}, {&j, MemberState::kServing}};
  j.store->OnTopology(StatesTopology(flipped, 1, "j", flip));
  Result<uint64_t> racing = a.cache->Set(key, "old owner, in flight");
  REQUIRE(racing.ok());
  const uint64_t new_owner = WriteVersion(j, key, "new owner");
  CHECK(new_owner > *racing);
  CHECK(new_owner > VersionFloor(flip));
  // A later write of the old owner (still at the older epoch) reaches j and loses to the
  // new owner's: j keeps "new owner".
  WriteVersion(a, key, "old owner, late");
  REQUIRE(Eventually([&] { return CaughtUp(a, "j"); }, 20s));
  std::string v;
  REQUIRE(j.cache->Get(key, &v).ok());
  CHECK(v == "new owner");
  CHECK(VersionOn(*j.cache, key) == new_owner);
}

TEST_CASE("ReplicatedStore counts under-replicated ranges until its replicas are in sync",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  CHECK(a.store->UnderReplicatedRanges() == 0);  // No view yet.
  Publish({&a}, 2);  // One owner for RF 2: every arc of a is under-replicated.
  const uint64_t alone = a.store->UnderReplicatedRanges();
  CHECK(alone > 0);
  for (int i = 0; i < 2000; ++i) REQUIRE(a.cache->Set("k" + std::to_string(i), "v").ok());
  Publish({&a, &b}, 2);
  REQUIRE(Eventually([&] { return a.store->UnderReplicatedRanges() == 0; }));
  CHECK(CaughtUp(a, "b"));
  b.Stop();  // The replica goes away: its link breaks.
  CHECK(Eventually([&] { return a.store->UnderReplicatedRanges() > 0; }));
}

TEST_CASE("ReplicatedStore keeps a failed primary's data on the new primary and re-replicates it",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  TestNode c("c");
  Publish({&a, &b, &c}, 2);
  const auto t = TopologyFor({&a, &b, &c}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 3000);
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(a.store->Set(keys[i], "v" + std::to_string(i), {}, nullptr).ok());
  }
  REQUIRE(Eventually([&] { return CaughtUp(a, "b") && CaughtUp(a, "c"); }));
  a.Stop();  // a crashes; b and c adopt the view where it is FAILED.
  const Members after{
      {&a, MemberState::kFailed}, {&b, MemberState::kServing}, {&c, MemberState::kServing}};
  PublishStates(after, 2, {&b, &c});
  // a's first replica became the primary of each of its arcs: it kept its copy, and its
  // new replica gets the keys by a full sync.
  const auto t2 = StatesTopology(after, 2, "b", 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    TestNode* primary = t2->Primary(HashKey(keys[i]))->id == "b" ? &b : &c;
    std::string v;
    INFO(keys[i] << " on " << primary->id);
    REQUIRE(primary->cache->Get(keys[i], &v).ok());
    CHECK(v == "v" + std::to_string(i));
  }
  REQUIRE(Eventually([&] {
    return b.store->UnderReplicatedRanges() == 0 && c.store->UnderReplicatedRanges() == 0;
  }));
  CHECK(Diff(*b.cache, *c.cache, keys) == "");
}

TEST_CASE("ReplicatedStore ClearLocalData makes the primaries send everything again",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 1000);
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v", {}, nullptr).ok());
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  const uint64_t syncs = LinkTo(a, "b")->full_syncs;
  // b rejoins empty: without forgetting its resume state, a would resume its idle stream
  // and never re-send what b dropped.
  b.store->ClearLocalData();
  CHECK(b.cache->Stats().items == 0);
  REQUIRE(Eventually([&] { return LinkTo(a, "b")->full_syncs > syncs && CaughtUp(a, "b"); }));
  CHECK(Diff(*a.cache, *b.cache, keys) == "");
}

TEST_CASE("ReplicatedStore refuses the streams of a primary its view marks failed",
          "[unit][replication]") {
  TestNode a("a");
  TestNode b("b");
  Publish({&a, &b}, 2);
  const auto t = TopologyFor({&a, &b}, 2, "a");
  const std::vector<std::string> keys = KeysOf(*t, "a", 100);
  for (const std::string& k : keys) REQUIRE(a.store->Set(k, "v", {}, nullptr).ok());
  REQUIRE(Eventually([&] { return CaughtUp(a, "b"); }));
  // b (now the primary of everything) learns that a failed; a, cut off, does not and
  // keeps writing: b applies none of it, and a's link is refused.
  PublishStates({{&a, MemberState::kFailed}, {&b, MemberState::kServing}}, 2, {&b});
  REQUIRE(a.store->Set(keys[0], "zombie", {}, nullptr).ok());
  CHECK(Eventually([&] { return a.log->Has("primary a was declared failed in epoch"); }));
  std::string v;
  REQUIRE(b.cache->Get(keys[0], &v).ok());
  CHECK(v == "v");
  for (const std::string& k : keys) CHECK(b.cache->Get(k, &v).ok());
}

}  // namespace
}  // namespace ringcache::internal

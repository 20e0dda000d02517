// Replication between real ringcached processes (docs/design/replication.md): keys land on
// exactly their owners, write concern, resume after a pause, full sync after a backlog
// overflow or a restart, TTL / delete / touch / incr replication, link stats and metrics.
//
// Writes go straight to each key's primary (computed from the Topology the nodes report,
// as a smart client does), so these tests do not depend on forwarding. What a node holds
// is read with `ringcache-local: 1`. Replication is asynchronous: expectations about
// replicas are polled with a deadline (Eventually), never slept on.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "raw_socket.h"
#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/key_hash.h"

namespace ringcache::it {
namespace {

using namespace std::chrono_literals;

// Polls `ok` every 20 ms until it returns true or `timeout` passes.
bool Eventually(const std::function<bool()>& ok, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (ok()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

using checks::LocalGet;
using checks::Ring;

Ring CurrentRing(TestCluster& cluster) {
  std::optional<v1::ClusterView> view = cluster.Topology(0);
  REQUIRE(view.has_value());
  std::optional<Ring> ring = checks::RingOf(*view);
  REQUIRE(ring.has_value());
  return *ring;
}

std::optional<v1::StatsResponse> Stats(v1::Cache::Stub& stub) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::StatsResponse resp;
  if (!stub.Stats(&ctx, v1::StatsRequest(), &resp).ok()) return std::nullopt;
  return resp;
}

// The link `from` -> replica `to_id` as `from`'s Stats reports it.
std::optional<v1::ReplicaLinkStats> Link(v1::Cache::Stub& from, const std::string& to_id) {
  std::optional<v1::StatsResponse> s = Stats(from);
  if (!s) return std::nullopt;
  for (const v1::ReplicaLinkStats& l : s->replicas()) {
    if (l.replica_id() == to_id) return l;
  }
  return std::nullopt;
}

// A link that is streaming with everything acknowledged.
bool CaughtUp(const std::optional<v1::ReplicaLinkStats>& l) {
  return l && l->state() == "streaming" && l->lag_ops() == 0 && l->acked_seq() == l->last_seq();
}

std::string LinkString(const std::optional<v1::ReplicaLinkStats>& l) {
  if (!l) return "(no link)";
  return l->replica_id() + " " + l->state() + " lag_ops=" + std::to_string(l->lag_ops()) +
         " last=" + std::to_string(l->last_seq()) + " acked=" + std::to_string(l->acked_seq()) +
         " resumes=" + std::to_string(l->resumes()) +
         " full_syncs=" + std::to_string(l->full_syncs());
}

// Node stubs, one per node index (rebuilt after a restart).
std::vector<std::unique_ptr<v1::Cache::Stub>> Stubs(TestCluster& cluster) {
  std::vector<std::unique_ptr<v1::Cache::Stub>> out;
  for (size_t i = 0; i < cluster.size(); ++i) out.push_back(cluster.Stub(i));
  return out;
}

// Keys "<prefix><i>" whose owners (primary first) satisfy `want`, `n` of them.
std::vector<std::string> KeysWhere(const Ring& ring, const std::string& prefix, size_t n,
                                   const std::function<bool(const std::vector<size_t>&)>& want) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n && i < 1'000'000; ++i) {
    std::string k = prefix + std::to_string(i);
    if (want(ring.Owners(k))) keys.push_back(std::move(k));
  }
  REQUIRE(keys.size() == n);
  return keys;
}

// Sets `key` on its primary; returns the new version (0 on failure, which is CHECKed).
uint64_t SetOnPrimary(std::vector<std::unique_ptr<v1::Cache::Stub>>& stubs, const Ring& ring,
                      const std::string& key, const std::string& value, uint64_t ttl_ms = 0) {
  auto reply = Unary(*stubs[ring.Owners(key)[0]], &v1::Cache::Stub::Set,
                     MakeSet(key, value, {.ttl_ms = ttl_ms}));
  CHECK(reply.status.error_message() == "");
  CHECK(reply.status.ok());
  return reply.response.version();
}

// Whether node `node` holds `key` with exactly `version` (0 = must not hold it).
bool Holds(v1::Cache::Stub& node, const std::string& key, uint64_t version) {
  auto got = LocalGet(node, key);
  if (version == 0) return got.status.error_code() == grpc::StatusCode::NOT_FOUND;
  return got.status.ok() && got.response.version() == version;
}

// The failure timeout is long: these tests pause and kill replicas to watch the links,
// and must not see them failed over (or, with 2 nodes, the primary fenced) meanwhile.
std::vector<std::string> ClusterFlags() {
  return {"--memory", "64MiB", "--threads", "2", "--replication-ack-timeout-ms", "400",
          // No failover while a replica is paused or down (see above).
          "--failure-timeout-ms", "60000"};
}

void CheckEveryKeyOnExactlyItsOwners(int nodes, uint32_t rf) {
  TestCluster cluster({.nodes = nodes, .replication_factor = rf, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);

  std::map<std::string, uint64_t> versions;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    versions[key] = SetOnPrimary(stubs, ring, key, "value-" + std::to_string(i));
  }
  // Every node holds exactly the keys it owns, at the primary's version.
  auto mismatches = [&] {
    std::vector<std::string> bad;
    for (const auto& [key, version] : versions) {
      const std::vector<size_t> owners = ring.Owners(key);
      for (size_t n = 0; n < stubs.size(); ++n) {
        const bool owner = std::find(owners.begin(), owners.end(), n) != owners.end();
        if (!Holds(*stubs[n], key, owner ? version : 0))
          bad.push_back(key + "@n" + std::to_string(n + 1));
      }
    }
    return bad;
  };
  const bool converged = Eventually([&] { return mismatches().empty(); });
  INFO("keys not where they belong: " << Catch::Detail::stringify(mismatches()));
  CHECK(converged);
  CHECK(ring.Owners("k0").size() == std::min<size_t>(rf, nodes));

  // Each node has a caught-up link to every node that replicates some of its keys.
  for (size_t n = 0; n < stubs.size(); ++n) {
    std::optional<v1::StatsResponse> s = Stats(*stubs[n]);
    REQUIRE(s.has_value());
    CHECK(s->epoch() == cluster.epoch());
    CHECK(static_cast<size_t>(s->replicas_size()) >= 1);
    for (const v1::ReplicaLinkStats& l : s->replicas()) {
      INFO("n" << n + 1 << " -> " << LinkString(l));
      CHECK(Eventually([&] { return CaughtUp(Link(*stubs[n], l.replica_id())); }, 5s));
      CHECK(l.full_syncs() >= 1);  // A new link always starts with a (here tiny) full sync.
      CHECK_FALSE(l.address().empty());
    }
  }
}

TEST_CASE("Replication puts every key on exactly its owners, 3 nodes RF 2",
          "[integration][replication]") {
  CheckEveryKeyOnExactlyItsOwners(3, 2);
}

TEST_CASE("Replication puts every key on exactly its owners, 5 nodes RF 3",
          "[integration][replication]") {
  CheckEveryKeyOnExactlyItsOwners(5, 3);
}

TEST_CASE("Replication exports link metrics per replica", "[integration][replication]") {
  TestCluster cluster({.nodes = 2, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  for (int i = 0; i < 50; ++i) SetOnPrimary(stubs, ring, "m" + std::to_string(i), "v");
  REQUIRE(Eventually([&] { return CaughtUp(Link(*stubs[0], "n2")); }));
  std::string body;
  const bool found = Eventually([&] {
    HttpResponse r = HttpGet(cluster.node(0).MetricsAddress(), "/metrics");
    body = r.body;
    return r.status == 200 &&
           body.find("ringcache_replication_ack_latency_seconds_count{replica=\"n2\"}") !=
               std::string::npos;
  });
  INFO(body);
  CHECK(found);
  CHECK(body.find("ringcache_cluster_epoch ") != std::string::npos);
  CHECK(body.find("ringcache_cluster_members 2") != std::string::npos);
  CHECK(body.find("ringcache_replication_lag_ops{replica=\"n2\"} 0") != std::string::npos);
  CHECK(body.find("ringcache_replication_acked_seq{replica=\"n2\"}") != std::string::npos);
  CHECK(body.find("ringcache_replication_backlog_bytes{replica=\"n2\"}") != std::string::npos);
  CHECK(body.find("ringcache_replication_full_syncs_total{replica=\"n2\"} 1") != std::string::npos);
  CHECK(body.find("ringcache_replication_resumes_total{replica=\"n2\"} 0") != std::string::npos);
}

TEST_CASE("Write concern 1 returns after the replica has applied the write",
          "[integration][replication]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);

  for (int i = 0; i < 40; ++i) {
    const std::string key = "wc" + std::to_string(i);
    const std::vector<size_t> owners = ring.Owners(key);
    REQUIRE(owners.size() == 2);
    v1::SetRequest set = MakeSet(key, "value-" + std::to_string(i));
    set.set_write_concern(1);
    set.set_write_concern_timeout_ms(5000);
    auto reply = Unary(*stubs[owners[0]], &v1::Cache::Stub::Set, set);
    REQUIRE(reply.status.ok());
    CHECK(reply.response.replicas_acked() == 1);
    // Right after the reply, with no waiting: the replica has it.
    auto got = LocalGet(*stubs[owners[1]], key);
    REQUIRE(got.status.ok());
    CHECK(got.response.value() == "value-" + std::to_string(i));
    CHECK(got.response.version() == reply.response.version());

    if (i % 4 == 0) {
      v1::DeleteRequest del;
      del.set_key(key);
      del.set_write_concern(1);
      auto d = Unary(*stubs[owners[0]], &v1::Cache::Stub::Delete, del);
      REQUIRE(d.status.ok());
      CHECK(d.response.replicas_acked() == 1);
      CHECK(LocalGet(*stubs[owners[1]], key).status.error_code() == grpc::StatusCode::NOT_FOUND);
    }
  }
}

TEST_CASE("Write concern times out with the count of replicas that acked",
          "[integration][replication]") {
  TestCluster cluster({.nodes = 2, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  const std::string key = KeysWhere(ring, "t", 1, [](const auto& o) { return o[0] == 0; })[0];
  REQUIRE(Eventually([&] { return CaughtUp(Link(*stubs[0], "n2")); }));

  REQUIRE(cluster.node(1).SignalStopAndWait(5s));
  v1::SetRequest set = MakeSet(key, "v");
  set.set_write_concern(1);
  set.set_write_concern_timeout_ms(200);
  const auto t0 = std::chrono::steady_clock::now();
  auto reply = Unary(*stubs[0], &v1::Cache::Stub::Set, set);
  const auto waited = std::chrono::steady_clock::now() - t0;
  cluster.node(1).Signal(SIGCONT);
  REQUIRE(reply.status.ok());  // The write is applied on the primary either way.
  CHECK(reply.response.replicas_acked() == 0);
  CHECK(waited >= 200ms);
  // And it reaches the replica once it runs again.
  CHECK(Eventually([&] { return Holds(*stubs[1], key, reply.response.version()); }));
}

// Pauses the replica past the ack timeout while the primary writes `keys` (and deletes
// `deleted`), then lets it run; returns the link's stats before and after it caught up.
struct PauseResult {
  v1::ReplicaLinkStats before;
  v1::ReplicaLinkStats after;
};

PauseResult PauseReplicaWhileWriting(TestCluster& cluster,
                                     std::vector<std::unique_ptr<v1::Cache::Stub>>& stubs,
                                     const Ring& ring, const std::vector<std::string>& keys,
                                     const std::string& value,
                                     const std::vector<std::string>& deleted,
                                     std::map<std::string, uint64_t>* versions) {
  REQUIRE(Eventually([&] { return CaughtUp(Link(*stubs[0], "n2")); }));
  PauseResult r;
  r.before = *Link(*stubs[0], "n2");
  REQUIRE(cluster.node(1).SignalStopAndWait(5s));
  for (const std::string& key : keys) (*versions)[key] = SetOnPrimary(stubs, ring, key, value);
  for (const std::string& key : deleted) {
    v1::DeleteRequest del;
    del.set_key(key);
    CHECK(Unary(*stubs[0], &v1::Cache::Stub::Delete, del).status.ok());
    (*versions)[key] = 0;
  }
  // The ack timeout (400 ms) breaks the link.
  const bool broke = Eventually([&] {
    auto l = Link(*stubs[0], "n2");
    return l && l->state() != "streaming" && l->state() != "full_sync";
  });
  cluster.node(1).Signal(SIGCONT);
  REQUIRE(broke);
  std::optional<v1::ReplicaLinkStats> last;
  const bool caught_up = Eventually(
      [&] {
        last = Link(*stubs[0], "n2");
        return CaughtUp(last) &&
               last->resumes() + last->full_syncs() > r.before.resumes() + r.before.full_syncs();
      },
      20s);
  INFO(LinkString(last));
  REQUIRE(caught_up);
  r.after = *last;
  return r;
}

TEST_CASE("A replica paused past the ack timeout resumes from the backlog",
          "[integration][replication]") {
  TestCluster cluster({.nodes = 2, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  auto n1_primary = [](const std::vector<size_t>& o) { return o[0] == 0; };
  const std::vector<std::string> early = KeysWhere(ring, "early", 100, n1_primary);
  const std::vector<std::string> later = KeysWhere(ring, "later", 200, n1_primary);

  std::map<std::string, uint64_t> versions;
  for (const std::string& key : early) versions[key] = SetOnPrimary(stubs, ring, key, "e");
  const std::vector<std::string> deleted(early.begin(), early.begin() + 20);
  const PauseResult r =
      PauseReplicaWhileWriting(cluster, stubs, ring, later, "value", deleted, &versions);
  INFO("before: " << LinkString(r.before) << "; after: " << LinkString(r.after));
  CHECK(r.after.resumes() == r.before.resumes() + 1);
  CHECK(r.after.full_syncs() == r.before.full_syncs());
  for (const auto& [key, version] : versions) {
    INFO(key);
    CHECK(Holds(*stubs[1], key, version));
  }
}

TEST_CASE("A replica further behind than the backlog gets a full sync",
          "[integration][replication]") {
  std::vector<std::string> flags = ClusterFlags();
  flags.insert(flags.end(), {"--replication-backlog", "1MiB"});
  TestCluster cluster({.nodes = 2, .replication_factor = 2, .extra_args = flags});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  auto n1_primary = [](const std::vector<size_t>& o) { return o[0] == 0; };
  const std::vector<std::string> early = KeysWhere(ring, "early", 100, n1_primary);
  // 2000 x 1000 B: about twice the backlog.
  const std::vector<std::string> later = KeysWhere(ring, "later", 2000, n1_primary);

  std::map<std::string, uint64_t> versions;
  for (const std::string& key : early) versions[key] = SetOnPrimary(stubs, ring, key, "e");
  const std::vector<std::string> deleted(early.begin(), early.begin() + 20);
  const PauseResult r = PauseReplicaWhileWriting(cluster, stubs, ring, later,
                                                 std::string(1000, 'x'), deleted, &versions);
  INFO("before: " << LinkString(r.before) << "; after: " << LinkString(r.after));
  CHECK(r.after.full_syncs() == r.before.full_syncs() + 1);
  CHECK(r.after.resumes() == r.before.resumes());
  CHECK(r.after.backlog_bytes() <= (uint64_t{1} << 20));
  // Deleted keys are gone too: the full sync dropped the replica's copy of the ranges.
  size_t wrong = 0;
  for (const auto& [key, version] : versions) {
    if (!Holds(*stubs[1], key, version)) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("A killed and restarted replica gets a full sync", "[integration][replication]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  // Keys n1 is the primary of and n2 the replica.
  const std::vector<std::string> keys =
      KeysWhere(ring, "r", 200, [](const auto& o) { return o[0] == 0 && o[1] == 1; });
  std::map<std::string, uint64_t> versions;
  for (const std::string& key : keys) versions[key] = SetOnPrimary(stubs, ring, key, "before");
  REQUIRE(Eventually([&] { return CaughtUp(Link(*stubs[0], "n2")); }));
  const v1::ReplicaLinkStats before = *Link(*stubs[0], "n2");

  cluster.Kill(1);
  // Writes while it is down wait in the backlog; the restarted process knows nothing of
  // them, nor of anything else.
  for (size_t i = 0; i < keys.size(); i += 2) {
    versions[keys[i]] = SetOnPrimary(stubs, ring, keys[i], "while-down");
  }
  REQUIRE(cluster.Restart(1));
  stubs = Stubs(cluster);
  std::optional<v1::ReplicaLinkStats> after;
  const bool synced = Eventually(
      [&] {
        after = Link(*stubs[0], "n2");
        return CaughtUp(after) && after->full_syncs() > before.full_syncs();
      },
      20s);
  INFO("before: " << LinkString(before) << "; after: " << LinkString(after));
  REQUIRE(synced);
  // The restarted replica came back empty as JOINING: the migration to it is a full sync
  // (one per link restart; it cannot resume from a process that knows nothing).
  CHECK(after->full_syncs() >= before.full_syncs() + 1);
  CHECK(after->resumes() == before.resumes());
  CHECK(after->address() == cluster.address(1));
  size_t wrong = 0;
  for (const auto& [key, version] : versions) {
    if (!Holds(*stubs[1], key, version)) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("TTL, touch, delete and incr replicate as results", "[integration][replication]") {
  TestCluster cluster({.nodes = 2, .replication_factor = 2, .extra_args = ClusterFlags()});
  RequireStart(cluster);
  auto stubs = Stubs(cluster);
  const Ring ring = CurrentRing(cluster);
  const std::vector<std::string> keys =
      KeysWhere(ring, "ttl", 4, [](const auto& o) { return o[0] == 0; });
  v1::Cache::Stub& primary = *stubs[0];
  v1::Cache::Stub& replica = *stubs[1];

  // TTL: the replica gets the primary's absolute deadline, to the millisecond.
  const uint64_t expiring_version = SetOnPrimary(stubs, ring, keys[0], "expiring", 600'000);
  REQUIRE(Eventually([&] { return Holds(replica, keys[0], expiring_version); }));
  auto on_primary = LocalGet(primary, keys[0]);
  auto on_replica = LocalGet(replica, keys[0]);
  REQUIRE(on_primary.status.ok());
  REQUIRE(on_replica.status.ok());
  CHECK(on_primary.response.expires_at_ms() > 0);
  CHECK(on_replica.response.expires_at_ms() == on_primary.response.expires_at_ms());

  // Touch: a new deadline at the same version.
  v1::TouchRequest touch;
  touch.set_key(keys[0]);
  touch.set_ttl_ms(1'200'000);
  REQUIRE(Unary(primary, &v1::Cache::Stub::Touch, touch).status.ok());
  const int64_t touched = LocalGet(primary, keys[0]).response.expires_at_ms();
  CHECK(touched > on_primary.response.expires_at_ms());
  CHECK(Eventually([&] { return LocalGet(replica, keys[0]).response.expires_at_ms() == touched; }));
  CHECK(LocalGet(replica, keys[0]).response.version() == expiring_version);

  // A short TTL expires on the replica as on the primary.
  const uint64_t short_v = SetOnPrimary(stubs, ring, keys[1], "short", 300);
  (void)short_v;
  CHECK(Eventually([&] { return Holds(replica, keys[1], 0) && Holds(primary, keys[1], 0); }, 5s));

  // Delete.
  const uint64_t v3 = SetOnPrimary(stubs, ring, keys[2], "doomed");
  REQUIRE(Eventually([&] { return Holds(replica, keys[2], v3); }));
  v1::DeleteRequest del;
  del.set_key(keys[2]);
  REQUIRE(Unary(primary, &v1::Cache::Stub::Delete, del).status.ok());
  CHECK(Eventually([&] { return Holds(replica, keys[2], 0); }));

  // Incr ships the new value and version, not the delta.
  v1::IncrRequest incr;
  incr.set_key(keys[3]);
  incr.set_delta(5);
  auto i1 = Unary(primary, &v1::Cache::Stub::Incr, incr);
  REQUIRE(i1.status.ok());
  incr.set_delta(-2);
  auto i2 = Unary(primary, &v1::Cache::Stub::Incr, incr);
  REQUIRE(i2.status.ok());
  CHECK(Eventually([&] {
    auto got = LocalGet(replica, keys[3]);
    return got.status.ok() && got.response.value() == "3" &&
           got.response.version() == i2.response.version();
  }));
}

}  // namespace
}  // namespace ringcache::it

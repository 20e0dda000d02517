// ReplReceiver, the replica side of replication, driven in-process: a gRPC server on
// 127.0.0.1:0 serving only the receiver, and crafted Replicate streams from a synchronous
// client. Covers what the integration tests cannot make happen on purpose: a snapshot entry
// arriving after a live delete (the delete memory), sequence gaps, superseded streams, the
// resume rules, malformed streams.
#include "repl_receiver.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "repl_range_set.h"
#include "repl_stripes.h"
#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/key_hash.h"
#include "ringcache/v1/cluster.grpc.pb.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

namespace v1 = ::ringcache::v1;
using Stream = grpc::ClientReaderWriter<v1::ReplicationMessage, v1::ReplicationAck>;

constexpr std::chrono::milliseconds kViewWait{500};

class Fixture {
 public:
  Fixture() {
    cache_ = std::move(Cache::Create({.capacity_bytes = 16 << 20,
                                      .max_value_bytes = 1024,
                                      .clock = &clock_,
                                      .start_janitor = false}))
                 .value();
    // A short wait for views that have not arrived (SetView), so that tests of it are quick.
    receiver_ = std::make_unique<ReplReceiver>("replica", cache_.get(), &stripes_, nullptr, nullptr,
                                               kViewWait);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(receiver_->service());
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
    stub_ = v1::Replication::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
  }
  ~Fixture() {
    receiver_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  // One Replicate stream of a test.
  struct Conn {
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> stream;

    bool Send(const v1::ReplicationMessage& m) { return stream->Write(m); }
    std::optional<v1::ReplicationAck> Ack() {
      v1::ReplicationAck ack;
      if (!stream->Read(&ack)) return std::nullopt;
      return ack;
    }
    // Reads acks until one reports `received` messages processed.
    std::optional<v1::ReplicationAck> AckOf(uint64_t received) {
      for (int i = 0; i < 1000; ++i) {
        std::optional<v1::ReplicationAck> a = Ack();
        if (!a || a->received() >= received) return a;
      }
      return std::nullopt;
    }
    grpc::Status End() {
      stream->WritesDone();
      v1::ReplicationAck ack;
      while (stream->Read(&ack)) {
      }
      return stream->Finish();
    }
  };

  std::unique_ptr<Conn> Open() {
    auto c = std::make_unique<Conn>();
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->stream = stub_->Replicate(&c->ctx);
    return c;
  }

  Cache& cache() { return *cache_; }
  ReplReceiver& receiver() { return *receiver_; }
  ManualClock& clock() { return clock_; }

 private:
  ManualClock clock_;
  std::unique_ptr<Cache> cache_;
  ReplStripes stripes_;
  std::unique_ptr<ReplReceiver> receiver_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Replication::Stub> stub_;
};

v1::ReplicationMessage Hello(const std::string& replication_id,
                             const std::string& replica = "replica") {
  v1::ReplicationMessage m;
  m.mutable_hello()->set_primary_id("primary");
  m.mutable_hello()->set_replication_id(replication_id);
  m.mutable_hello()->set_replica_id(replica);
  m.mutable_hello()->set_epoch(1);
  return m;
}

v1::ReplicationMessage SyncBegin(std::vector<HashRange> ranges, uint64_t next_seq,
                                 uint64_t epoch = 0) {
  v1::ReplicationMessage m;
  m.mutable_sync_begin()->set_epoch(epoch);
  for (const HashRange& r : ranges) {
    v1::HashRange* p = m.mutable_sync_begin()->add_ranges();
    p->set_start(r.start);
    p->set_end(r.end);
  }
  m.mutable_sync_begin()->set_next_seq(next_seq);
  return m;
}

v1::ReplicationMessage SyncEnd() {
  v1::ReplicationMessage m;
  m.mutable_sync_end();
  return m;
}

struct E {
  uint64_t seq;
  v1::EntryKind kind;
  std::string key;
  std::string value;
  uint64_t version;
  int64_t expires_at_ms = 0;
};

v1::ReplicationMessage Batch(const std::vector<E>& entries) {
  v1::ReplicationMessage m;
  for (const E& e : entries) {
    v1::ReplicatedEntry* p = m.mutable_batch()->add_entries();
    p->set_seq(e.seq);
    p->set_kind(e.kind);
    p->set_key(e.key);
    p->set_value(e.value);
    p->set_version(e.version);
    p->set_expires_at_ms(e.expires_at_ms);
  }
  return m;
}

constexpr v1::EntryKind kSet = v1::ENTRY_KIND_SET;
constexpr v1::EntryKind kDelete = v1::ENTRY_KIND_DELETE;
constexpr v1::EntryKind kTouch = v1::ENTRY_KIND_TOUCH;

std::optional<ItemMeta> Meta(Cache& cache, const std::string& key, std::string* value = nullptr) {
  std::string v;
  ItemMeta meta;
  if (!cache.Get(key, &v, &meta).ok()) return std::nullopt;
  if (value != nullptr) *value = v;
  return meta;
}

// Opens a stream and brings it to "synced over the whole ring, live from seq 1".
std::unique_ptr<Fixture::Conn> Synced(Fixture& f, const std::string& rid) {
  auto c = f.Open();
  REQUIRE(c->Send(Hello(rid)));
  REQUIRE(c->Send(SyncBegin({HashRange::Full()}, 1)));
  REQUIRE(c->Send(SyncEnd()));
  REQUIRE(c->AckOf(3).has_value());
  return c;
}

TEST_CASE("ReplReceiver answers the hello of an unknown primary with no resumable state",
          "[unit][replication]") {
  Fixture f;
  auto c = f.Open();
  REQUIRE(c->Send(Hello("r1")));
  std::optional<v1::ReplicationAck> ack = c->Ack();
  REQUIRE(ack.has_value());
  CHECK(ack->hello_reply());
  CHECK_FALSE(ack->resumable());
  CHECK(ack->resume_seq() == 0);
  CHECK(ack->received() == 1);
  CHECK(c->End().ok());
  CHECK(f.receiver().Primary("primary").known);
  CHECK_FALSE(f.receiver().Primary("nobody").known);
}

TEST_CASE("ReplReceiver applies live entries in order and acks the highest seq",
          "[unit][replication]") {
  Fixture f;
  auto c = Synced(f, "r1");
  REQUIRE(
      c->Send(Batch({{1, kSet, "a", "1", 10}, {2, kSet, "b", "2", 11}, {3, kSet, "a", "3", 12}})));
  std::optional<v1::ReplicationAck> ack = c->AckOf(4);
  REQUIRE(ack.has_value());
  CHECK(ack->applied_seq() == 3);
  std::string value;
  REQUIRE(Meta(f.cache(), "a", &value).has_value());
  CHECK(value == "3");
  CHECK(Meta(f.cache(), "a")->version == 12);
  CHECK(Meta(f.cache(), "b")->version == 11);
  // A delete of the version held removes it; local writes then number above it.
  REQUIRE(c->Send(Batch({{4, kDelete, "a", "", 12}})));
  REQUIRE(c->AckOf(5).has_value());
  CHECK_FALSE(Meta(f.cache(), "a").has_value());
  Result<uint64_t> v = f.cache().Set("a", "local");
  REQUIRE(v.ok());
  CHECK(*v > 12);
  CHECK(c->End().ok());
}

TEST_CASE("ReplReceiver stores the value type an entry carries, and refuses an unknown one",
          "[unit][replication]") {
  Fixture f;
  auto c = Synced(f, "r1");
  // A hash's pack (one field f = v), as a typed write's record ships it.
  v1::ReplicationMessage m = Batch({{1, kSet, "h",
                                     std::string("\x01\x01"
                                                 "f"
                                                 "\x01"
                                                 "v"),
                                     10}});
  m.mutable_batch()->mutable_entries(0)->set_value_type(1);
  REQUIRE(c->Send(m));
  REQUIRE(c->AckOf(4).has_value());
  std::string pack;
  ItemMeta meta;
  REQUIRE(f.cache().GetTyped("h", ValueType::kHash, &pack, &meta).ok());
  CHECK(meta.version == 10);
  CHECK(f.cache().Get("h", &pack).code() == StatusCode::kFailedPrecondition);  // WRONGTYPE
  v1::ReplicationMessage bad = Batch({{2, kSet, "x", "v", 11}});
  bad.mutable_batch()->mutable_entries(0)->set_value_type(9);
  c->Send(bad);
  const grpc::Status s = c->End();
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("value_type 9"));
  CHECK_FALSE(Meta(f.cache(), "x").has_value());
}

TEST_CASE("ReplReceiver ends a stream with a sequence gap and forgets its resume point",
          "[unit][replication]") {
  Fixture f;
  auto c = Synced(f, "r1");
  REQUIRE(c->Send(Batch({{1, kSet, "a", "1", 10}})));
  REQUIRE(c->AckOf(4).has_value());
  c->Send(Batch({{3, kSet, "b", "2", 11}}));
  grpc::Status s = c->End();
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(s.error_message(), Catch::Contains("seq 3 does not follow 1"));
  CHECK_FALSE(f.receiver().Primary("primary").resumable);
  CHECK_FALSE(Meta(f.cache(), "b").has_value());
}

TEST_CASE("ReplReceiver lets a primary resume its stream, and only that stream",
          "[unit][replication]") {
  Fixture f;
  {
    auto c = Synced(f, "r1");
    REQUIRE(c->Send(Batch({{1, kSet, "a", "1", 10}, {2, kSet, "b", "2", 11}})));
    REQUIRE(c->AckOf(4).has_value());
    CHECK(c->End().ok());
  }
  {
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r1")));
    std::optional<v1::ReplicationAck> ack = c->Ack();
    REQUIRE(ack.has_value());
    CHECK(ack->hello_reply());
    CHECK(ack->resumable());
    CHECK(ack->resume_seq() == 2);
    REQUIRE(c->Send(Batch({{3, kSet, "c", "3", 12}})));
    CHECK(c->AckOf(2)->applied_seq() == 3);
    CHECK(c->End().ok());
  }
  {
    // Another replication id (a restarted primary): nothing to resume.
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r2")));
    std::optional<v1::ReplicationAck> ack = c->Ack();
    REQUIRE(ack.has_value());
    CHECK_FALSE(ack->resumable());
    CHECK(ack->resume_seq() == 0);
    CHECK(c->End().ok());
  }
  {
    // r1 is forgotten too: the replica follows one stream per primary.
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r1")));
    CHECK_FALSE(c->Ack()->resumable());
    CHECK(c->End().ok());
  }
}

TEST_CASE("ReplReceiver is not resumable while a full sync is incomplete", "[unit][replication]") {
  Fixture f;
  {
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r1")));
    REQUIRE(c->Send(SyncBegin({HashRange::Full()}, 5)));
    REQUIRE(c->Send(Batch({{0, kSet, "a", "1", 3}, {5, kSet, "b", "2", 4}})));
    std::optional<v1::ReplicationAck> ack = c->AckOf(3);
    REQUIRE(ack.has_value());
    CHECK(ack->applied_seq() == 5);
    CHECK_FALSE(ack->resumable());
    CHECK(f.receiver().Primary("primary").syncing);
    CHECK(c->End().ok());
  }
  auto c = f.Open();
  REQUIRE(c->Send(Hello("r1")));
  CHECK_FALSE(c->Ack()->resumable());
  CHECK(c->End().ok());
}

TEST_CASE("ReplReceiver full sync keeps the held copy until replaced, never resurrects a delete",
          "[unit][replication]") {
  Fixture f;
  // Find keys inside and outside a range.
  const uint64_t mid = uint64_t{1} << 63;
  const HashRange lower{0, mid};  // (0, 2^63]
  std::vector<std::string> in, out;
  for (int i = 0; in.size() < 5 || out.size() < 2; ++i) {
    const std::string k = "k" + std::to_string(i);
    const uint64_t h = HashKey(k);
    (lower.Contains(h) ? in : out).push_back(k);
  }
  for (const std::string& k : in) REQUIRE(f.cache().Set(k, "old").ok());
  for (const std::string& k : out) REQUIRE(f.cache().Set(k, "keep").ok());
  // in[4] is held at a higher version than the primary's copy (versions of a key can
  // repeat across a failover): the primary's copy must still replace it.
  REQUIRE(f.cache().Delete(in[4]).ok());
  REQUIRE(f.cache().ApplyReplicated(in[4], "held-v99", ItemMeta{.version = 99}).ok());

  auto c = f.Open();
  REQUIRE(c->Send(Hello("r1")));
  REQUIRE(c->Send(SyncBegin({lower}, 100)));
  REQUIRE(c->AckOf(2).has_value());
  // The sync has begun: everything held is still here (readable if the primary dies now).
  std::string value;
  for (const std::string& k : in) CHECK(Meta(f.cache(), k).has_value());
  for (const std::string& k : out) CHECK(Meta(f.cache(), k).has_value());

  // Live: set in[0] v50, delete in[1] (v40). Snapshot copies taken earlier arrive later.
  REQUIRE(c->Send(Batch({{100, kSet, in[0], "live", 50}, {101, kDelete, in[1], "", 40}})));
  REQUIRE(c->Send(Batch({{0, kSet, in[0], "snap", 45},      // older than the live set
                         {0, kSet, in[1], "snap", 40},      // copied before the delete
                         {0, kSet, in[2], "snap", 30},      // plain snapshot entry
                         {0, kSet, in[4], "snap", 20}})));  // older than the held copy
  REQUIRE(c->AckOf(4).has_value());
  // in[3] is not on the primary, but it is held until the sync ends.
  REQUIRE(Meta(f.cache(), in[3], &value).has_value());
  CHECK(value == "old");
  REQUIRE(c->Send(SyncEnd()));
  std::optional<v1::ReplicationAck> ack = c->AckOf(5);
  REQUIRE(ack.has_value());
  CHECK(ack->applied_seq() == 101);
  CHECK(ack->resumable());
  REQUIRE(Meta(f.cache(), in[0], &value).has_value());
  CHECK(value == "live");
  CHECK_FALSE(Meta(f.cache(), in[1]).has_value());
  REQUIRE(Meta(f.cache(), in[2], &value).has_value());
  CHECK(value == "snap");
  CHECK_FALSE(Meta(f.cache(), in[3]).has_value());  // Not on the primary: removed at the end.
  std::optional<ItemMeta> meta = Meta(f.cache(), in[4], &value);
  REQUIRE(meta.has_value());
  CHECK(value == "snap");
  CHECK(meta->version == 20);
  for (const std::string& k : out) {
    REQUIRE(Meta(f.cache(), k, &value).has_value());
    CHECK(value == "keep");
  }
  // After the sync the delete memory is gone; a snapshot entry is now a protocol error.
  c->Send(Batch({{0, kSet, in[3], "late", 60}}));
  grpc::Status s = c->End();
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("ReplReceiver keeps the held copy when the primary goes away during a full sync",
          "[unit][replication]") {
  Fixture f;
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    keys.push_back("held" + std::to_string(i));
    REQUIRE(f.cache().Set(keys.back(), "v" + std::to_string(i)).ok());
  }
  auto c = f.Open();
  REQUIRE(c->Send(Hello("r1")));
  REQUIRE(c->Send(SyncBegin({HashRange::Full()}, 1)));
  REQUIRE(c->Send(Batch({{0, kSet, keys[0], "primary", 500}})));
  REQUIRE(c->AckOf(3).has_value());
  c->End();  // The primary is gone before FullSyncEnd.
  std::string value;
  REQUIRE(Meta(f.cache(), keys[0], &value).has_value());
  CHECK(value == "primary");
  for (size_t i = 1; i < keys.size(); ++i) {
    REQUIRE(Meta(f.cache(), keys[i], &value).has_value());
    CHECK(value == "v" + std::to_string(i));
  }
}

TEST_CASE("ReplReceiver applies a touch to the same version and stores what it lacks",
          "[unit][replication]") {
  Fixture f;
  const int64_t now = f.clock().NowMs();
  auto c = Synced(f, "r1");
  REQUIRE(c->Send(Batch({{1, kSet, "t", "v", 7, now + 10'000},
                         {2, kTouch, "t", "v", 7, now + 50'000},
                         {3, kTouch, "u", "uv", 9, now + 20'000},  // never saw the set
                         {4, kSet, "gone", "v", 3, now - 1}})));   // deadline passed
  REQUIRE(c->AckOf(4).has_value());
  REQUIRE(Meta(f.cache(), "t").has_value());
  CHECK(Meta(f.cache(), "t")->version == 7);
  CHECK(Meta(f.cache(), "t")->deadline_ms == now + 50'000);
  std::string value;
  REQUIRE(Meta(f.cache(), "u", &value).has_value());
  CHECK(value == "uv");
  CHECK(Meta(f.cache(), "u")->deadline_ms == now + 20'000);
  CHECK_FALSE(Meta(f.cache(), "gone").has_value());
  // A touch to "never expires".
  REQUIRE(c->Send(Batch({{5, kTouch, "t", "v", 7, 0}})));
  REQUIRE(c->AckOf(5).has_value());
  CHECK(Meta(f.cache(), "t")->deadline_ms == 0);
  CHECK(c->End().ok());
}

TEST_CASE("ReplReceiver refuses malformed streams with a clear status", "[unit][replication]") {
  Fixture f;
  SECTION("no hello first") {
    auto c = f.Open();
    c->Send(Batch({{1, kSet, "a", "1", 1}}));
    grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("must be a hello"));
  }
  SECTION("a hello meant for another node") {
    auto c = f.Open();
    c->Send(Hello("r1", "someone-else"));
    grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(s.error_message(),
               Catch::Contains("this node is replica, not replica someone-else"));
  }
  SECTION("a second hello") {
    auto c = f.Open();
    c->Send(Hello("r1"));
    c->Send(Hello("r1"));
    grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("an empty message") {
    auto c = f.Open();
    c->Send(Hello("r1"));
    c->Send(v1::ReplicationMessage());
    grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("a value over the cache's limit drops the key instead of ending the stream") {
    auto c = Synced(f, "r1");
    REQUIRE(c->Send(Batch({{1, kSet, "big", "small", 5}})));
    REQUIRE(c->AckOf(4).has_value());
    const std::string huge(f.cache().options().max_value_bytes + 1, 'x');
    REQUIRE(c->Send(Batch({{2, kSet, "big", huge, 6}, {3, kSet, "next", "ok", 7}})));
    std::optional<v1::ReplicationAck> ack = c->AckOf(5);
    REQUIRE(ack.has_value());
    CHECK(ack->applied_seq() == 3);
    CHECK_FALSE(Meta(f.cache(), "big").has_value());
    CHECK(Meta(f.cache(), "next").has_value());
    CHECK(c->End().ok());
  }
}

// The view of epoch 5 that the fixture's receiver ("replica") holds in the ownership tests:
// "other", "primary" and "replica", all SERVING, 2 owners per key.
std::shared_ptr<const Topology> ThreeMemberView() {
  ClusterView view;
  view.epoch = 5;
  for (const char* id : {"other", "primary", "replica"}) {
    ClusterMember m;
    m.id = id;
    m.address = std::string(id) + ":1";
    view.members.push_back(m);
  }
  Result<std::shared_ptr<const Topology>> t = Topology::Make(view, "replica");
  REQUIRE(t.ok());
  return std::move(t).value();
}

// The arcs whose ring primary is `id`.
std::vector<HashRange> PrimaryArcs(const Topology& t, const std::string& id) {
  std::vector<HashRange> arcs;
  for (const HashRing::Arc& arc : t.ring.Arcs(1)) {
    if (t.ring_members[arc.owners[0]]->id == id) arcs.push_back(arc.range);
  }
  return arcs;
}

// A key whose placement hash lies in `ranges`.
std::string KeyIn(const std::vector<HashRange>& ranges, const std::string& prefix) {
  const ReplRangeSet set(ranges);
  for (int i = 0; i < 100000; ++i) {
    const std::string key = prefix + std::to_string(i);
    if (set.Contains(HashKey(key))) return key;
  }
  FAIL("no key found in the ranges");
  return {};
}

TEST_CASE("ReplReceiver applies a full sync only of ranges its view gives the sender",
          "[unit][replication]") {
  Fixture f;
  const std::shared_ptr<const Topology> view = ThreeMemberView();
  f.receiver().SetView(view);
  const std::vector<HashRange> mine = PrimaryArcs(*view, "primary");
  const std::vector<HashRange> others = PrimaryArcs(*view, "other");
  REQUIRE_FALSE(mine.empty());
  REQUIRE_FALSE(others.empty());
  // What this node holds of "other"'s ranges: a forged sync must not drop it.
  const std::string held = KeyIn(others, "held-");
  REQUIRE(f.cache().Set(held, "kept").ok());
  const std::string in_mine = KeyIn(mine, "mine-");

  SECTION("the sender's own ranges, at the view's epoch or one it knows is older") {
    // 5: the view's; 0: the hello's (1), behind. The ranges are the sender's in this
    // node's view, so the epochs do not matter.
    for (uint64_t epoch : {uint64_t{5}, uint64_t{0}}) {
      auto c = f.Open();
      REQUIRE(c->Send(Hello("r" + std::to_string(epoch))));
      REQUIRE(c->Send(SyncBegin(mine, 1, epoch)));
      REQUIRE(c->Send(Batch({{0, kSet, in_mine, "synced", 9}})));
      REQUIRE(c->Send(SyncEnd()));
      REQUIRE(c->AckOf(4).has_value());
      CHECK(c->End().ok());
      std::string value;
      CHECK(Meta(f.cache(), in_mine, &value).has_value());
      CHECK(value == "synced");
    }
  }
  SECTION("ranges of another primary end the stream before anything is dropped") {
    struct Case {
      uint64_t epoch;
      grpc::StatusCode code;
      const char* says;
    };
    for (const Case& k : {Case{5, grpc::StatusCode::FAILED_PRECONDITION, "for epoch 5"},
                          Case{4, grpc::StatusCode::ABORTED, "out of date"},
                          // 0: the hello's epoch (1), below the view's.
                          Case{0, grpc::StatusCode::ABORTED, "for epoch 1"}}) {
      INFO("sync epoch " << k.epoch);
      for (const std::vector<HashRange>& ranges :
           {std::vector<HashRange>{HashRange::Full()}, others}) {
        auto c = f.Open();
        REQUIRE(c->Send(Hello("r-forged")));
        c->Send(SyncBegin(ranges, 1, k.epoch));
        c->Send(SyncEnd());
        const grpc::Status s = c->End();
        CHECK(s.error_code() == k.code);
        CHECK_THAT(s.error_message(), Catch::Contains("a full sync from primary") &&
                                          Catch::Contains("makes another member the primary") &&
                                          Catch::Contains(k.says));
        std::string value;
        REQUIRE(Meta(f.cache(), held, &value).has_value());
        CHECK(value == "kept");
      }
    }
  }
  // A new primary's sync often arrives before its view does: it waits for the view, and
  // is then checked against it (SetView).
  // Epoch 6: only "primary" is on the ring ("other" and "replica" are joining), so it is
  // the primary of every range, "other"'s of epoch 5 included.
  ClusterView primary_alone = view->view;
  primary_alone.epoch = 6;
  for (ClusterMember& m : primary_alone.members) {
    if (m.id != "primary") m.state = MemberState::kJoining;
  }
  Result<std::shared_ptr<const Topology>> alone6 = Topology::Make(primary_alone, "replica");
  REQUIRE(alone6.ok());
  SECTION("a sync for a view this node does not hold waits for it, then is taken") {
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r-ahead")));
    REQUIRE(c->AckOf(1).has_value());
    REQUIRE(c->Send(SyncBegin(others, 1, 6)));
    REQUIRE(c->Send(Batch({{0, kSet, held, "from the new primary", 9}})));
    // Parked: nothing is applied while the view is behind.
    std::this_thread::sleep_for(kViewWait / 5);
    CHECK_FALSE(f.receiver().Primary("primary").syncing);
    f.receiver().SetView(*alone6);
    REQUIRE(c->Send(SyncEnd()));
    REQUIRE(c->AckOf(4).has_value());
    CHECK(c->End().ok());
    std::string value;
    REQUIRE(Meta(f.cache(), held, &value).has_value());
    CHECK(value == "from the new primary");
  }
  SECTION("a sync for a view that arrives and does not give the sender its ranges is refused") {
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r-ahead")));
    REQUIRE(c->Send(SyncBegin(others, 1, 6)));
    c->Send(SyncEnd());
    std::this_thread::sleep_for(kViewWait / 5);
    ClusterView same_owners = view->view;
    same_owners.epoch = 6;
    Result<std::shared_ptr<const Topology>> t6_same = Topology::Make(same_owners, "replica");
    REQUIRE(t6_same.ok());
    f.receiver().SetView(*t6_same);
    const grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(s.error_message(), Catch::Contains("makes another member the primary"));
    std::string value;
    REQUIRE(Meta(f.cache(), held, &value).has_value());
    CHECK(value == "kept");
  }
  SECTION("a sync for a view that never arrives ends ABORTED after the wait, dropping nothing") {
    const auto started = std::chrono::steady_clock::now();
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r-ahead")));
    REQUIRE(c->Send(SyncBegin(others, 1, 1'000'000)));
    c->Send(SyncEnd());
    const grpc::Status s = c->End();
    CHECK(std::chrono::steady_clock::now() - started >= kViewWait);
    CHECK(s.error_code() == grpc::StatusCode::ABORTED);
    CHECK_THAT(s.error_message(), Catch::Contains("still holds the view of epoch 5"));
    std::string value;
    REQUIRE(Meta(f.cache(), held, &value).has_value());
    CHECK(value == "kept");
  }
  SECTION("the view changes during the sync: its end is refused and nothing is removed") {
    const std::string held_mine = KeyIn(mine, "held-mine-");
    REQUIRE(f.cache().Set(held_mine, "kept").ok());
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r1")));
    REQUIRE(c->Send(SyncBegin(mine, 1, 5)));
    REQUIRE(c->AckOf(2).has_value());
    // Epoch 6: "primary" has left the view; "other" and "replica" own its ranges now.
    ClusterView next = view->view;
    next.epoch = 6;
    std::erase_if(next.members, [](const ClusterMember& m) { return m.id == "primary"; });
    Result<std::shared_ptr<const Topology>> t6 = Topology::Make(next, "replica");
    REQUIRE(t6.ok());
    f.receiver().SetView(*t6);
    c->Send(SyncEnd());
    const grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::ABORTED);
    CHECK_THAT(s.error_message(), Catch::Contains("out of date"));
    // The key held in the synced ranges and not sent is still here.
    std::string value;
    REQUIRE(Meta(f.cache(), held_mine, &value).has_value());
    CHECK(value == "kept");
  }
  SECTION("a snapshot entry outside the sync's ranges is refused and not stored") {
    auto c = f.Open();
    REQUIRE(c->Send(Hello("r1")));
    REQUIRE(c->Send(SyncBegin(mine, 1, 5)));
    c->Send(Batch({{0, kSet, held, "forged", 99}}));
    const grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("outside the ranges of its FullSyncBegin"));
    std::string value;
    REQUIRE(Meta(f.cache(), held, &value).has_value());
    CHECK(value == "kept");
  }
  SECTION("a hello from a primary that is not in the view") {
    auto c = f.Open();
    v1::ReplicationMessage hello = Hello("r1");
    hello.mutable_hello()->set_primary_id("stranger");
    c->Send(hello);
    const grpc::Status s = c->End();
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(s.error_message(), Catch::Contains("stranger is not a member"));
  }
}

TEST_CASE("ReplReceiver stops applying a stream superseded by a newer one", "[unit][replication]") {
  Fixture f;
  auto old_stream = Synced(f, "r1");
  auto new_stream = f.Open();
  REQUIRE(new_stream->Send(Hello("r1")));
  std::optional<v1::ReplicationAck> ack = new_stream->Ack();
  REQUIRE(ack.has_value());
  CHECK(ack->resumable());
  old_stream->Send(Batch({{1, kSet, "stale", "x", 5}}));
  grpc::Status s = old_stream->End();
  CHECK(s.error_code() == grpc::StatusCode::ABORTED);
  CHECK_FALSE(Meta(f.cache(), "stale").has_value());
  REQUIRE(new_stream->Send(Batch({{1, kSet, "fresh", "y", 6}})));
  CHECK(new_stream->AckOf(2)->applied_seq() == 1);
  CHECK(new_stream->End().ok());
}

TEST_CASE("ReplReceiver Shutdown ends open streams with UNAVAILABLE", "[unit][replication]") {
  Fixture f;
  auto c = Synced(f, "r1");
  f.receiver().Shutdown();
  grpc::Status s = c->End();
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(s.error_message(), Catch::Contains("shutting down"));
  // New streams are refused too.
  auto late = f.Open();
  late->Send(Hello("r1"));
  CHECK(late->End().error_code() == grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace ringcache::internal

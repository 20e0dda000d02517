// Membership in-process: real Membership objects behind gRPC servers on 127.0.0.1:0 (no
// cache, no replication). The replication side's transition-ready reports are made by hand
// with ReportTransitionReady, so the coordinator's logic is tested without migrations.
#include "membership.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "peer_pool.h"
#include "ringcache/proto/cluster_view.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {
namespace {

using namespace std::chrono_literals;

bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Calls `fn` until it answers other than UNAVAILABLE, as every caller of a view change
// does: a coordinator refuses a change until it has heard that a majority holds its view,
// and that news (a push answer) can arrive just after the members have adopted the view.
Status RetryWhileUnavailable(const std::function<Status()>& fn,
                             std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Status status = fn();
  while (status.code() == StatusCode::kUnavailable && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    status = fn();
  }
  return status;
}

// One member: its Membership behind its own server, its log lines kept.
class TestMember {
 public:
  // `listen`: the address to serve on (a free port by default).
  TestMember(std::string id, std::vector<std::string> seeds,
             const std::string& listen = "127.0.0.1:0")
      : id_(std::move(id)), pool_(4 << 20) {
    membership_ =
        std::make_unique<Membership>(MembershipOptions{.self_id = id_,
                                                       .seeds = std::move(seeds),
                                                       .replication_factor = 2,
                                                       .vnodes_per_weight = 16,
                                                       .join_timeout = 10s,
                                                       .call_timeout = 1s,
                                                       .log =
                                                           [this](LogLevel, std::string_view line) {
                                                             std::lock_guard lock(mu_);
                                                             logs_ += std::string(line) + "\n";
                                                           }},
                                     &pool_);
    membership_->SetRejoinHook([this] { ++rejoins_; });
    membership_->SetLeftHook([this] { ++lefts_; });
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(membership_->service());
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~TestMember() {
    // As the node does: the server first (no handler runs afterwards), then Membership.
    StopServer();
    membership_->Shutdown();
  }
  // Cuts this member off: its server stops answering (its Membership stays).
  void StopServer() {
    if (server_stopped_) return;
    server_stopped_ = true;
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_->Wait();
  }

  Status Join() { return membership_->JoinOrBootstrap(address_); }

  Membership& m() { return *membership_; }
  const std::string& address() const { return address_; }
  uint64_t epoch() const {
    auto t = membership_->current();
    return t == nullptr ? 0 : t->epoch();
  }
  // This member's state in its own view (kUnspecified if absent).
  MemberState StateOf(const std::string& id) const {
    auto t = membership_->current();
    const ClusterMember* m = t == nullptr ? nullptr : t->view.Find(id);
    return m == nullptr ? MemberState::kUnspecified : m->state;
  }
  std::string Logs() const {
    std::lock_guard lock(mu_);
    return logs_;
  }
  std::unique_ptr<v1::Membership::Stub> Stub() {
    return v1::Membership::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }
  int rejoins() const { return rejoins_.load(); }
  int lefts() const { return lefts_.load(); }

 private:
  const std::string id_;
  PeerPool pool_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<grpc::Server> server_;
  bool server_stopped_ = false;
  std::string address_;
  mutable std::mutex mu_;
  std::string logs_;
  std::atomic<int> rejoins_{0};
  std::atomic<int> lefts_{0};
};

// A view of `held`'s epoch and settings whose members are `members` (id, state), at the
// addresses `held` has for them: a fork of that epoch.
v1::ClusterView ForkOf(const Topology& held,
                       const std::vector<std::pair<std::string, v1::MemberState>>& members) {
  v1::ClusterView view;
  view.set_epoch(held.epoch());
  view.set_replication_factor(held.view.replication_factor);
  view.set_vnodes_per_weight(held.view.vnodes_per_weight);
  for (const auto& [id, state] : members) {
    const ClusterMember* m = held.view.Find(id);
    REQUIRE(m != nullptr);
    auto* out = view.add_members();
    out->set_id(id);
    out->set_address(m->address);
    out->set_weight(m->weight);
    out->set_state(state);
  }
  return view;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// n1 bootstraps, n2..nN join through n1; every member reports ready for every epoch it
// sees while `auto_ready` is set (what the replication side does with nothing to move).
struct TestCluster {
  std::vector<std::unique_ptr<TestMember>> members;

  void Add(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::string> seeds;
      if (!members.empty()) seeds.push_back(members[0]->address());
      members.push_back(
          std::make_unique<TestMember>("n" + std::to_string(members.size() + 1), seeds));
      REQUIRE(members.back()->Join().ok());
    }
  }
  // n1..n3, all SERVING at epoch 4: n2 and n3 join (epochs 2, 3), then n1, the only voter
  // of epoch 3, reports ready and the view flips.
  void AddThreeServing() {
    Add(3);
    members[0]->m().ReportTransitionReady(3);
    REQUIRE(Eventually([&] { return AllAt(4, {0, 1, 2}); }));
  }
  TestMember& operator[](size_t i) { return *members.at(i); }
  // Every member that is in a view reports ready for the epoch it holds.
  void ReportAll() {
    for (auto& m : members) m->m().ReportTransitionReady(m->epoch());
  }
  bool AllAt(uint64_t epoch, const std::vector<size_t>& which) {
    for (size_t i : which) {
      if (members[i]->epoch() != epoch) return false;
    }
    return true;
  }
};

TEST_CASE("Membership: a joiner is JOINING until every voter reported ready, then SERVING",
          "[unit][membership]") {
  TestCluster c;
  c.Add(1);
  CHECK(c[0].StateOf("n1") == MemberState::kServing);  // Bootstrap: SERVING at once.
  c.Add(2);
  // Epoch 2: n2 JOINING; epoch 3: n3 JOINING too (adds to the transition).
  REQUIRE(Eventually([&] { return c.AllAt(3, {0, 1, 2}); }));
  CHECK(c[0].StateOf("n2") == MemberState::kJoining);
  CHECK(c[0].StateOf("n3") == MemberState::kJoining);
  CHECK(c[2].StateOf("n3") == MemberState::kJoining);

  // A report for an old epoch changes nothing; a joiner's report does not count.
  c[0].m().ReportTransitionReady(2);
  c[1].m().ReportTransitionReady(3);
  std::this_thread::sleep_for(100ms);
  CHECK(c[0].epoch() == 3);

  // The only voter, n1 (the coordinator), reports: the view flips.
  c[0].m().ReportTransitionReady(3);
  REQUIRE(Eventually([&] { return c.AllAt(4, {0, 1, 2}); }));
  for (size_t i = 0; i < 3; ++i) {
    for (const char* id : {"n1", "n2", "n3"}) CHECK(c[i].StateOf(id) == MemberState::kServing);
  }
  CHECK_THAT(c[0].Logs(),
             Catch::Contains("transition of epoch 3 complete (n2, n3 joined); epoch 3 -> 4"));

  // A 4th joiner: every voter (n1, n2, n3) must report, through the coordinator n1.
  c.Add(1);
  REQUIRE(Eventually([&] { return c.AllAt(5, {0, 1, 2, 3}); }));
  c[0].m().ReportTransitionReady(5);
  c[1].m().ReportTransitionReady(5);
  std::this_thread::sleep_for(100ms);
  CHECK(c[0].epoch() == 5);
  c[2].m().ReportTransitionReady(5);  // Sent to n1 by n3's worker.
  REQUIRE(Eventually([&] { return c.AllAt(6, {0, 1, 2, 3}); }));
  CHECK(c[3].StateOf("n4") == MemberState::kServing);
}

TEST_CASE("Membership: a member leaves through the coordinator and learns it has left",
          "[unit][membership]") {
  TestCluster c;
  c.AddThreeServing();

  // A leave request for another node is refused by the Leave rpc.
  {
    v1::LeaveRequest request;
    request.set_node_id("n3");
    v1::LeaveResponse response;
    grpc::ClientContext ctx;
    const grpc::Status status = c[1].Stub()->Leave(&ctx, request, &response);
    CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(status.error_message(), Catch::Contains("this is node n2, not n3"));
  }
  // n2 leaves through the rpc, as ringcache-cli does.
  v1::LeaveRequest request;
  request.set_node_id("n2");
  v1::LeaveResponse response;
  grpc::ClientContext ctx;
  const grpc::Status status = c[1].Stub()->Leave(&ctx, request, &response);
  REQUIRE(status.ok());
  CHECK(response.view().epoch() == 5);
  CHECK(c[1].m().leave_requested());
  REQUIRE(Eventually([&] { return c.AllAt(5, {0, 1, 2}); }));
  CHECK(c[2].StateOf("n2") == MemberState::kLeaving);
  CHECK_THAT(c[1].Logs(), Catch::Contains("leave requested by a client; asking coordinator n1"));
  CHECK_THAT(c[0].Logs(), Catch::Contains("n2 leaving; epoch 4 -> 5"));
  CHECK(c[1].m().RequestLeave().ok());  // Already LEAVING: nothing to do.
  CHECK(c[0].epoch() == 5);

  // Every voter, the leaver included, reports; the coordinator removes n2.
  c.ReportAll();
  REQUIRE(Eventually([&] { return c.AllAt(6, {0, 1, 2}); }));
  CHECK(c[0].StateOf("n2") == MemberState::kUnspecified);
  CHECK(c[1].m().WaitLeft(5s));
  CHECK(c[1].m().left());
  CHECK(Eventually([&] { return c[1].lefts() == 1; }));  // Called after WaitLeft's wake-up.
  CHECK_THAT(c[1].Logs(), Catch::Contains("left the cluster in epoch 6"));
  CHECK_THAT(c[0].Logs(), Catch::Contains("transition of epoch 5 complete (n2 left)"));
  // The last serving member but one may leave; the last one may not.
  CHECK(c[2].m().RequestLeave().ok());
  c.ReportAll();
  REQUIRE(Eventually([&] { return c.AllAt(8, {0, 2}); }));
  CHECK(c[2].m().WaitLeft(5s));
  const Status last = c[0].m().RequestLeave();
  CHECK(last.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(last.message(), Catch::Contains("only serving member"));
}

TEST_CASE("Membership: a leaving coordinator removes itself and the next lowest id takes over",
          "[unit][membership]") {
  TestCluster c;
  c.AddThreeServing();
  REQUIRE(c[0].m().RequestLeave().ok());
  REQUIRE(Eventually([&] { return c.AllAt(5, {0, 1, 2}); }));
  CHECK(c[1].StateOf("n1") == MemberState::kLeaving);
  CHECK_FALSE(c[0].m().left());
  c.ReportAll();
  REQUIRE(Eventually([&] { return c.AllAt(6, {0, 1, 2}); }));
  CHECK(c[0].m().WaitLeft(5s));
  CHECK(c[1].StateOf("n1") == MemberState::kUnspecified);
  // n2 coordinates now: a join goes there.
  std::vector<std::string> seeds = {c[2].address()};
  c.members.push_back(std::make_unique<TestMember>("n4", seeds));
  REQUIRE(c[3].Join().ok());
  REQUIRE(Eventually([&] { return c.AllAt(7, {1, 2, 3}); }));
  CHECK(c[1].StateOf("n4") == MemberState::kJoining);
}

TEST_CASE("Membership: MarkFailed on the coordinator, then the failed node rejoins as JOINING",
          "[unit][membership]") {
  TestCluster c;
  c.AddThreeServing();

  // Only the coordinator (lowest voter once the ids are left out) may fail members.
  Status refused = c[1].m().MarkFailed({"n3"}, "test");
  CHECK(refused.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.message(), Catch::Contains("not the coordinator"));
  CHECK(c[0].m().MarkFailed({"n1"}, "test").code() == StatusCode::kFailedPrecondition);
  // n2 is the coordinator once n1 is left out.
  CHECK(c[1].m().MarkFailed({"n1"}, "suspected by n2, n3 (2 of 3 voters) for 1000 ms").ok());
  // (n1 may have rejoined, epoch 6, before the first look.)
  REQUIRE(Eventually([&] { return c[1].epoch() >= 5; }));
  CHECK_THAT(c[1].Logs(), Catch::Contains("adopted view epoch 5: members n1,n2,n3 (n1 serving -> "
                                          "failed; as coordinator)"));
  CHECK_THAT(c[1].Logs(),
             Catch::Contains("n1 failed: suspected by n2, n3 (2 of 3 voters) for 1000 ms; "
                             "epoch 4 -> 5"));
  // n1 learns it was failed from the push, clears (rejoin hook) and rejoins as JOINING
  // through n2, the coordinator of joins now.
  REQUIRE(Eventually([&] { return c.AllAt(6, {0, 1, 2}); }));
  CHECK(c[0].rejoins() == 1);
  CHECK(c[1].StateOf("n1") == MemberState::kJoining);
  CHECK_THAT(c[0].Logs(), Catch::Contains("this node was declared failed in epoch 5"));
  // A JOINING member can be failed too; it rejoins again (the hook runs once per failure).
  // (n3's answer to the push of epoch 6 may reach n2 just after the look above.)
  CHECK(RetryWhileUnavailable([&] { return c[1].m().MarkFailed({"n1"}, "again"); }).ok());
  REQUIRE(Eventually([&] { return c.AllAt(8, {0, 1, 2}); }));  // Failed, then rejoined.
  CHECK(c[0].rejoins() == 2);
  // Unknown ids are refused.
  CHECK(c[1].m().MarkFailed({"n9"}, "test").code() == StatusCode::kFailedPrecondition);
  // The voters (n2, n3) report: n1 is SERVING again.
  c.ReportAll();
  REQUIRE(Eventually([&] { return c[1].StateOf("n1") == MemberState::kServing; }));
}

TEST_CASE("Membership: a coordinator makes no second view change until a majority holds one",
          "[unit][membership]") {
  TestCluster c;
  c.AddThreeServing();
  c[0].m().SetHeartbeatHandler([](const v1::HeartbeatRequest&, v1::HeartbeatResponse*) {});

  // n1, the coordinator, is cut off from n2 and n3. Epoch 4 is held by all three (their
  // push answers said so), so n1 may still make one change: it admits n4 at epoch 5.
  // n4 serves on n2's former address: n1's pushes meant for n2 reach n4, which holds
  // epoch 5 too but refuses them (PushViewRequest.to_id), so n2 is not counted.
  c[1].StopServer();
  c[2].StopServer();
  TestMember n4("n4", {c[0].address()}, c[1].address());
  REQUIRE(n4.Join().ok());
  REQUIRE(c[0].epoch() == 5);
  REQUIRE(Eventually([&] { return n4.epoch() == 5; }));
  {
    v1::PushViewRequest push;
    proto::ToProto(c[0].m().current()->view, push.mutable_view());
    push.set_from_id("n1");
    push.set_to_id("n2");
    v1::PushViewResponse response;
    grpc::ClientContext ctx;
    // The address was n2's: a channel to it may still be backing off from n2's stop, and
    // would fail at once; wait (bounded) for n4 instead.
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status misdirected = n4.Stub()->PushView(&ctx, push, &response);
    CHECK(misdirected.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(misdirected.error_message() ==
          "this is node n4, not n2 (the address now belongs to another node)");
  }
  // (Give n1's misdirected pushes time to be answered.)
  REQUIRE(Eventually([&] { return Count(c[0].Logs(), "cannot push view epoch 5 to n2") >= 1; }));

  // Only n1 holds epoch 5 (1 of 3 voters): no second change, whatever its kind.
  auto stub = c[0].Stub();
  v1::JoinRequest join;
  join.mutable_member()->set_id("n5");
  join.mutable_member()->set_address("127.0.0.1:1");
  join.mutable_member()->set_weight(1);
  join.set_replication_factor(2);
  join.set_vnodes_per_weight(16);
  auto join_n5 = [&] {
    v1::JoinResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 2s);
    return stub->Join(&ctx, join, &response);
  };
  const grpc::Status refused = join_n5();
  CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(refused.error_message(),
             Catch::Contains("the view of epoch 5 is held by 1 of 3 voting members so far (a "
                             "majority is 2)"));
  Status mark = c[0].m().MarkFailed({"n3"}, "test");
  CHECK(mark.code() == StatusCode::kUnavailable);
  CHECK_THAT(mark.message(), Catch::Contains("held by 1 of 3"));
  CHECK(c[0].m().MarkFailed({"n3"}, "test").code() == StatusCode::kUnavailable);
  CHECK(c[0].epoch() == 5);

  // A heartbeat from n2 at epoch 5 with another view (a fork of that epoch) does not count.
  auto heartbeat = [&](uint64_t digest) {
    v1::HeartbeatRequest request;
    request.set_from_id("n2");
    request.set_to_id("n1");
    request.set_epoch(5);
    request.set_view_digest(digest);
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    return stub->Heartbeat(&ctx, request, &response);
  };
  const uint64_t digest = c[0].m().current()->digest;
  REQUIRE(heartbeat(digest == 1 ? 2 : digest ^ 1).ok());
  CHECK(c[0].m().MarkFailed({"n3"}, "test").code() == StatusCode::kUnavailable);
  // One that holds n1's view of epoch 5 makes a majority (n1, n2): the next change is made.
  REQUIRE(heartbeat(digest).ok());
  REQUIRE(c[0].m().MarkFailed({"n3"}, "test").ok());
  CHECK(c[0].epoch() == 6);
  CHECK(join_n5().error_code() == grpc::StatusCode::UNAVAILABLE);  // n2 has not seen 6.
}

TEST_CASE("Membership: the Heartbeat rpc calls the handler and sends newer views",
          "[unit][membership]") {
  TestCluster c;
  c.Add(2);
  auto stub = c[0].Stub();
  v1::HeartbeatRequest request;
  request.set_from_id("n2");
  request.set_epoch(1);
  {
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    CHECK(stub->Heartbeat(&ctx, request, &response).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  c[0].m().SetHeartbeatHandler(
      [](const v1::HeartbeatRequest& req, v1::HeartbeatResponse* response) {
        response->set_id("n1");
        response->add_suspects(req.from_id() + "-seen");
      });
  {
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    REQUIRE(stub->Heartbeat(&ctx, request, &response).ok());
    CHECK(response.suspects(0) == "n2-seen");
    CHECK(response.view().epoch() == 2);  // The caller's epoch was older.
  }
  {
    request.set_epoch(2);
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    REQUIRE(stub->Heartbeat(&ctx, request, &response).ok());
    CHECK_FALSE(response.has_view());
  }
  {
    // The same epoch with the same view (digest): nothing to send.
    request.set_view_digest(c[0].m().current()->digest);
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    REQUIRE(stub->Heartbeat(&ctx, request, &response).ok());
    CHECK_FALSE(response.has_view());
  }
  {
    // The same epoch with another view: a fork; the receiver sends its view.
    request.set_view_digest(c[0].m().current()->digest ^ 1);
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    REQUIRE(stub->Heartbeat(&ctx, request, &response).ok());
    CHECK(response.view().epoch() == 2);
    CHECK(response.view().members_size() == 2);
  }
  {
    request.set_to_id("n7");
    v1::HeartbeatResponse response;
    grpc::ClientContext ctx;
    CHECK(stub->Heartbeat(&ctx, request, &response).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);
  }
}

TEST_CASE("Membership: OfferView adopts a newer view and a FAILED self starts a rejoin",
          "[unit][membership]") {
  TestCluster c;
  c.Add(2);
  c[0].m().ReportTransitionReady(2);
  REQUIRE(Eventually([&] { return c.AllAt(3, {0, 1}); }));
  // A same-epoch view that differs but holds this node live is not taken (a fork this
  // node keeps its side of), with one warning per sender and epoch.
  const std::shared_ptr<const Topology> before = c[1].m().current();
  v1::ClusterView same = ForkOf(*before, {{"n2", v1::MEMBER_STATE_SERVING}});
  c[1].m().OfferView(same, "n9");
  c[1].m().OfferView(same, "n9");
  CHECK(c[1].m().current() == before);
  CHECK(Count(c[1].Logs(), "kept our view of epoch 3: n9 holds another one") == 1);
  CHECK(c[1].rejoins() == 0);
}

TEST_CASE("Membership: a fork of the same epoch that failed this node wins, and it rejoins",
          "[unit][membership]") {
  // The majority failed n2 over while n2 (cut off) held another view of that epoch: the
  // view in which n2 is FAILED replaces n2's own, and n2 rejoins empty through n1.
  TestCluster c;
  c.Add(2);
  c[0].m().ReportTransitionReady(2);
  REQUIRE(Eventually([&] { return c.AllAt(3, {0, 1}); }));
  v1::ClusterView fork = ForkOf(
      *c[1].m().current(), {{"n1", v1::MEMBER_STATE_SERVING}, {"n2", v1::MEMBER_STATE_FAILED}});
  c[1].m().OfferView(fork, "n1");
  REQUIRE(Eventually([&] { return c[1].rejoins() == 1; }));
  CHECK_THAT(c[1].Logs(), Catch::Contains("the view of epoch 3 from n1 (members n1,n2) differs "
                                          "from ours (n1,n2) and has it failed"));
  // The rejoin goes through n1, whose own view still holds n2 SERVING, so n1 answers
  // with it; either way n2 ends in a view that holds it live again.
  REQUIRE(Eventually([&] {
    const MemberState s = c[1].StateOf("n2");
    return s == MemberState::kServing || s == MemberState::kJoining;
  }));
}

TEST_CASE("Membership: a JOINING node missing from a fork of its epoch joins again",
          "[unit][membership]") {
  // n2 was admitted (JOINING, epoch 2) by a coordinator that the others had failed over at
  // that same epoch: their view does not hold n2, and theirs wins.
  TestCluster c;
  c.Add(2);
  REQUIRE(c[1].StateOf("n2") == MemberState::kJoining);
  v1::ClusterView fork = ForkOf(*c[1].m().current(), {{"n1", v1::MEMBER_STATE_SERVING}});
  c[1].m().OfferView(fork, "n1");
  REQUIRE(Eventually([&] { return c[1].rejoins() == 1; }));
  CHECK_THAT(c[1].Logs(), Catch::Contains("and does not hold this node"));
  CHECK(c[1].lefts() == 0);  // Rejoining, not leaving.
  CHECK(c[1].epoch() == 2);
  CHECK(c[1].StateOf("n2") == MemberState::kUnspecified);
  // Its rejoin asks n1, whose view of epoch 2 holds n2 JOINING: an answer of the same
  // epoch does not undo the settlement. Once n1 moves on (it completes the transition:
  // epoch 3, n2 SERVING), a newer view holds n2 again. (A join attempt in flight may
  // reach n1 just after that flip and be admitted again as JOINING, epoch 4: n1 then
  // reports for that transition too.)
  std::this_thread::sleep_for(300ms);
  CHECK(c[1].StateOf("n2") == MemberState::kUnspecified);
  bool serving = false;
  for (int i = 0; i < 100 && !serving; ++i) {
    c[0].m().ReportTransitionReady(c[0].epoch());
    serving = Eventually([&] { return c[1].StateOf("n2") == MemberState::kServing; }, 100ms);
  }
  REQUIRE(serving);
  CHECK(c[1].epoch() >= 3);
  // A SERVING node missing from a fork keeps its view (only the JOINING rule applies).
  const std::shared_ptr<const Topology> held = c[1].m().current();
  // (A join attempt still in flight may have n1 admit n2 again meanwhile: a newer view
  // replaces `held` then, which is not the fork's doing.)
  c[1].m().OfferView(ForkOf(*held, {{"n1", v1::MEMBER_STATE_SERVING}}), "n1");
  const std::shared_ptr<const Topology> after = c[1].m().current();
  if (after->epoch() == held->epoch()) CHECK(after == held);
  CHECK(after->epoch() >= held->epoch());
  CHECK(c[1].StateOf("n2") != MemberState::kUnspecified);
  CHECK(c[1].rejoins() == 1);
  CHECK(c[1].lefts() == 0);
}

}  // namespace
}  // namespace ringcache::internal

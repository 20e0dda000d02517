// FailoverManager with a manual clock and a fake HeartbeatTransport (the tests answer or
// fail each heartbeat), plus the gRPC transport against an in-process server.
#include "failover_manager.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "peer_pool.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {
namespace {

using TimePoint = FailoverManager::TimePoint;
using std::chrono::milliseconds;
using Ids = std::vector<std::string>;
using Done = std::function<void(const grpc::Status&, const v1::HeartbeatResponse&)>;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

ClusterMember M(const std::string& id, MemberState state = MemberState::kServing) {
  return ClusterMember{id, id + ".local:7700", 1, state};
}

std::shared_ptr<const Topology> Topo(uint64_t epoch, std::vector<ClusterMember> members,
                                     const std::string& self) {
  auto topology = Topology::Make(ClusterView{.epoch = epoch, .members = std::move(members)}, self);
  REQUIRE(topology.ok());
  return *topology;
}

// Records every Send; the test answers or fails the calls still pending.
class FakeTransport final : public HeartbeatTransport {
 public:
  struct Call {
    std::string address;
    v1::HeartbeatRequest request;
    milliseconds deadline{0};
    Done done;
    TimePoint sent_at{};
  };

  void Send(const std::string& address, const v1::HeartbeatRequest& request, milliseconds deadline,
            Done done) override {
    std::lock_guard lock(mu_);
    sent_.push_back(request);
    pending_.push_back(
        {address, request, deadline, std::move(done), clock_ ? clock_->load() : TimePoint{}});
    if (on_send_) on_send_();
  }

  // Runs the dones of the pending calls with CANCELLED: inline, or (async_cancel) on
  // another thread after CancelAll returned, as gRPC may.
  void CancelAll() override {
    std::vector<Call> calls;
    {
      std::lock_guard lock(mu_);
      ++cancel_alls_;
      calls.swap(pending_);
    }
    auto run = [calls = std::move(calls)] {
      for (const Call& call : calls) {
        call.done(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), v1::HeartbeatResponse{});
      }
    };
    if (async_cancel_) {
      canceller_ = std::thread(run);
    } else {
      run();
    }
  }

  ~FakeTransport() override {
    if (canceller_.joinable()) canceller_.join();
  }

  // Answers the pending calls to `to_id` with `response`; returns how many.
  int Answer(const std::string& to_id, const v1::HeartbeatResponse& response) {
    return Complete(to_id, grpc::Status::OK, response);
  }
  // Answers as `to_id` itself would: its id, `epoch`, `suspects`.
  int AnswerAs(const std::string& to_id, const Ids& suspects = {}, uint64_t epoch = 1) {
    v1::HeartbeatResponse response;
    response.set_id(to_id);
    response.set_epoch(epoch);
    for (const auto& id : suspects) response.add_suspects(id);
    return Answer(to_id, response);
  }
  int Fail(const std::string& to_id, grpc::StatusCode code = grpc::StatusCode::DEADLINE_EXCEEDED) {
    return Complete(to_id, grpc::Status(code, "failed"), v1::HeartbeatResponse{});
  }

  // Fails (DEADLINE_EXCEEDED) the calls whose deadline passed at `now`, as gRPC would.
  void FailExpired(TimePoint now) {
    std::vector<std::string> expired;
    for (const Call& call : Calls()) {
      if (call.sent_at + call.deadline <= now) expired.push_back(call.request.to_id());
    }
    for (const auto& id : expired) Fail(id);
  }

  int Pending(const std::string& to_id) {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(pending_.begin(), pending_.end(), [&](const Call& c) {
      return c.request.to_id() == to_id;
    }));
  }
  std::vector<v1::HeartbeatRequest> TakeSent() {
    std::lock_guard lock(mu_);
    return std::exchange(sent_, {});
  }
  std::vector<Call> Calls() {
    std::lock_guard lock(mu_);
    return pending_;
  }
  int cancel_alls() {
    std::lock_guard lock(mu_);
    return cancel_alls_;
  }
  void set_async_cancel(bool on) { async_cancel_ = on; }
  // The manual clock that stamps the calls (for FailExpired).
  void set_clock(const std::atomic<TimePoint>* clock) { clock_ = clock; }
  void set_on_send(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    on_send_ = std::move(fn);
  }

 private:
  int Complete(const std::string& to_id, const grpc::Status& status,
               const v1::HeartbeatResponse& response) {
    std::vector<Call> calls;
    {
      std::lock_guard lock(mu_);
      auto it = std::stable_partition(pending_.begin(), pending_.end(),
                                      [&](const Call& c) { return c.request.to_id() != to_id; });
      calls.assign(std::make_move_iterator(it), std::make_move_iterator(pending_.end()));
      pending_.erase(it, pending_.end());
    }
    for (const Call& call : calls) call.done(status, response);
    return static_cast<int>(calls.size());
  }

  std::mutex mu_;
  std::vector<v1::HeartbeatRequest> sent_;
  std::vector<Call> pending_;
  int cancel_alls_ = 0;
  bool async_cancel_ = false;
  std::thread canceller_;
  std::function<void()> on_send_;
  const std::atomic<TimePoint>* clock_ = nullptr;
};

// One node's manager with a manual clock, recording hook calls and log lines.
struct Harness {
  Harness(const std::string& self, std::vector<ClusterMember> members) {
    FailoverOptions options;
    options.self_id = self;
    options.log = [this](LogLevel, std::string_view line) {
      std::lock_guard lock(mu);
      logs.emplace_back(line);
    };
    options.now = [this] { return now.load(); };
    FailoverHooks hooks;
    hooks.mark_failed = [this](const Ids& ids, const std::string& reason) {
      std::lock_guard lock(mu);
      marked.push_back({ids, reason});
      return mark_result;
    };
    hooks.offer_view = [this](const v1::ClusterView& view, const std::string& from) {
      std::lock_guard lock(mu);
      offered.push_back({view, from});
    };
    hooks.on_fence_change = [this](bool fenced, const std::string& reason) {
      std::lock_guard lock(mu);
      fence_changes.push_back({fenced, reason});
    };
    transport.set_clock(&now);
    manager = std::make_unique<FailoverManager>(options, &transport, hooks);
    manager->OnTopology(Topo(1, std::move(members), self));
  }

  void Tick() { manager->Tick(now.load()); }
  void AdvanceTo(milliseconds since_t0) { now = kT0 + since_t0; }
  // Every tick from now to kT0 + until (step 200 ms), answering the listed peers each time
  // (with `suspects`) and failing the calls of the others once their deadline passed.
  void Run(milliseconds until, const Ids& answering, const Ids& suspects = {}) {
    while (now.load() <= kT0 + until) {
      transport.FailExpired(now.load());
      for (const auto& call : transport.Calls()) {
        const std::string& to = call.request.to_id();
        if (std::find(answering.begin(), answering.end(), to) != answering.end()) {
          transport.AnswerAs(to, suspects);
        }
      }
      Tick();
      now = now.load() + milliseconds(200);
    }
    now = now.load() - milliseconds(200);
  }
  bool Logged(const std::string& text) {
    std::lock_guard lock(mu);
    return std::any_of(logs.begin(), logs.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }
  int CountLogs(const std::string& text) {
    std::lock_guard lock(mu);
    return static_cast<int>(std::count_if(logs.begin(), logs.end(), [&](const std::string& l) {
      return l.find(text) != std::string::npos;
    }));
  }

  std::atomic<TimePoint> now{kT0};
  std::mutex mu;
  std::vector<std::string> logs;
  std::vector<std::pair<Ids, std::string>> marked;
  Status mark_result;
  std::vector<std::pair<v1::ClusterView, std::string>> offered;
  std::vector<std::pair<bool, std::string>> fence_changes;
  FakeTransport transport;
  std::unique_ptr<FailoverManager> manager;  // Last: destroyed (shut down) first.
};

TEST_CASE("FailoverManager heartbeats every non-failed peer with one call outstanding each",
          "[unit][failover]") {
  Harness h("n1",
            {M("n1"), M("n2"), M("n3", MemberState::kJoining), M("n4", MemberState::kFailed)});
  h.Tick();
  auto sent = h.transport.TakeSent();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].to_id() == "n2");
  CHECK(sent[1].to_id() == "n3");  // JOINING members are heartbeated too.
  CHECK(sent[0].from_id() == "n1");
  CHECK(sent[0].epoch() == 1);
  CHECK(sent[0].suspects().empty());
  auto calls = h.transport.Calls();
  CHECK(calls[0].address == "n2.local:7700");
  CHECK(calls[0].deadline == milliseconds(1000));

  h.AdvanceTo(milliseconds(200));
  h.Tick();
  CHECK(h.transport.TakeSent().empty());  // Both still outstanding.
  h.transport.AnswerAs("n2");
  h.AdvanceTo(milliseconds(400));
  h.Tick();
  sent = h.transport.TakeSent();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].to_id() == "n2");
}

TEST_CASE("FailoverManager raises no suspicion while slow answers arrive within the timeout",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  // Ticks every 200 ms; every heartbeat is answered 900 ms after it left.
  for (int t = 0; t <= 20000; t += 100) {
    h.AdvanceTo(milliseconds(t));
    for (const auto& call : h.transport.Calls()) {
      if (call.sent_at + milliseconds(900) <= h.now.load())
        h.transport.AnswerAs(call.request.to_id());
    }
    if (t % 200 == 0) h.Tick();
  }
  CHECK_FALSE(h.Logged("suspect"));
  CHECK(h.fence_changes.empty());
  CHECK(h.marked.empty());
  for (const auto& row : h.manager->Peers(h.now.load())) CHECK(row.reachable);
}

TEST_CASE("FailoverManager logs a suspicion after exactly the failure timeout and its end",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(800), {"n3"});
  h.AdvanceTo(milliseconds(999));
  h.Tick();
  CHECK_FALSE(h.Logged("suspect n2"));
  h.transport.Fail("n2");  // Its deadline (1000 ms) passed.
  h.AdvanceTo(milliseconds(1000));
  h.Tick();
  CHECK(h.Logged("suspect n2: no heartbeat answer for 1000 ms"));
  CHECK(h.CountLogs("suspect") == 1);
  // The suspicion travels in the next heartbeats.
  auto sent = h.transport.TakeSent();
  REQUIRE_FALSE(sent.empty());
  CHECK(sent.back().to_id() == "n2");
  REQUIRE(sent.back().suspects_size() == 1);
  CHECK(sent.back().suspects(0) == "n2");
  // Logged once, ended by an answer.
  h.AdvanceTo(milliseconds(1200));
  h.Tick();
  CHECK(h.CountLogs("suspect n2") == 1);
  h.transport.AnswerAs("n2");
  h.AdvanceTo(milliseconds(1400));
  h.Tick();
  CHECK(h.Logged("n2 no longer suspected"));
  CHECK(h.marked.empty());  // 1 of 3 was never a majority.
}

TEST_CASE("FailoverManager coordinator marks a member failed once a majority suspects it",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(1000), {"n2"});  // n3 silent; n2 does not suspect it yet.
  CHECK(h.Logged("suspect n3"));
  CHECK(h.marked.empty());  // Only this node suspects n3: 1 of 3.
  // n2's next answer suspects n3 too.
  h.AdvanceTo(milliseconds(1200));
  h.transport.AnswerAs("n2", {"n3"});
  h.Tick();
  REQUIRE(h.marked.size() == 1);
  CHECK(h.marked[0].first == Ids{"n3"});
  CHECK(h.marked[0].second == "suspected by n1, n2 (2 of 3 voters) for 1200 ms");
  CHECK(h.manager->failovers() == 1);
  CHECK(
      h.Logged("n3 declared failed: suspected by n1, n2 (2 of 3 voters) for 1200 ms; "
               "coordinator n1 (this node)"));
  // Not again while the view has not caught up (the call succeeded).
  h.AdvanceTo(milliseconds(1400));
  h.transport.AnswerAs("n2", {"n3"});
  h.Tick();
  CHECK(h.marked.size() == 1);
  // The new view has n3 FAILED: no more heartbeats to it, nothing more to mark.
  h.manager->OnTopology(Topo(2, {M("n1"), M("n2"), M("n3", MemberState::kFailed)}, "n1"));
  h.transport.Fail("n3");
  h.transport.TakeSent();
  h.AdvanceTo(milliseconds(1600));
  h.transport.AnswerAs("n2", {"n3"});
  h.Tick();
  CHECK(h.marked.size() == 1);
  for (const auto& r : h.transport.TakeSent()) CHECK(r.to_id() != "n3");
  CHECK(h.manager->Peers(h.now.load()).size() == 1);
}

TEST_CASE("FailoverManager on a node that is not the coordinator never calls mark_failed",
          "[unit][failover]") {
  Harness h("n2", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(3000), {"n1"}, {"n3"});  // n1 suspects n3 as well.
  CHECK(h.Logged("n3 declared failed: suspected by n1, n2 (2 of 3 voters)"));
  CHECK(h.Logged("coordinator n1"));
  CHECK(h.marked.empty());
  CHECK_FALSE(h.manager->fenced());
}

TEST_CASE("FailoverManager next lowest voter takes over when the coordinator is declared failed",
          "[unit][failover]") {
  Harness h("n2", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(800), {"n3"});
  CHECK(h.marked.empty());
  h.Run(milliseconds(1400), {"n3"}, {"n1"});  // n1 silent, n3 suspects it.
  REQUIRE_FALSE(h.marked.empty());
  CHECK(h.marked[0].first == Ids{"n1"});
  CHECK(h.Logged("n1 declared failed: suspected by n2, n3 (2 of 3 voters)"));
  CHECK(h.Logged("coordinator n2 (this node)"));
}

TEST_CASE("FailoverManager retries a failed mark_failed each tick and logs it once per epoch",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  h.mark_result = Status::Unavailable("view change in progress");
  h.Run(milliseconds(1600), {"n2"}, {"n3"});
  // Declared at +1000; ticks at 1000, 1200, 1400, 1600.
  CHECK(h.marked.size() == 4);
  CHECK(h.CountLogs("cannot mark n3 failed (epoch 1): UNAVAILABLE: view change in progress") == 1);
  CHECK(h.manager->failovers() == 0);
  // Another epoch (n3 still SERVING): logged once more.
  h.manager->OnTopology(Topo(2, {M("n1"), M("n2"), M("n3")}, "n1"));
  h.AdvanceTo(milliseconds(1800));
  h.Run(milliseconds(2200), {"n2"}, {"n3"});
  CHECK(h.marked.size() == 7);
  CHECK(h.CountLogs("cannot mark n3 failed (epoch 2)") == 1);
  // It works at last.
  h.mark_result = Status::Ok();
  h.AdvanceTo(milliseconds(2400));
  h.Run(milliseconds(2600), {"n2"}, {"n3"});
  CHECK(h.marked.size() == 8);
  CHECK(h.manager->failovers() == 1);
}

TEST_CASE(
    "FailoverManager on the minority side of a partition fences and never marks, then unfences",
    "[unit][failover]") {
  // n1 is the lowest id (the coordinator) but is cut off from n2 and n3.
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(800), {});
  CHECK_FALSE(h.manager->fenced());
  CHECK(h.fence_changes.empty());
  h.transport.Fail("n2");
  h.transport.Fail("n3");
  // Nothing heard from n2 nor n3 for the failure timeout: fenced at once.
  h.AdvanceTo(milliseconds(1000));
  h.Tick();
  CHECK(h.manager->fenced());
  REQUIRE(h.fence_changes.size() == 1);
  CHECK(h.fence_changes[0].first);
  const std::string reason =
      "node n1 is fenced: it has reached 1 of 3 voting members (a majority is 2) for the last "
      "1.0 s; writes are refused until it rejoins the cluster";
  CHECK(h.fence_changes[0].second == reason);
  CHECK(h.manager->fence_reason() == reason);
  CHECK(h.Logged("fenced: " + reason));
  h.AdvanceTo(milliseconds(1200));
  h.Run(milliseconds(5000), {});
  CHECK(h.marked.empty());
  CHECK(h.manager->fence_reason().find("for the last 5.0 s") != std::string::npos);
  CHECK(h.fence_changes.size() == 1);

  // The network heals: n2 answers (it suspects n1, which does not matter here).
  h.transport.Fail("n2");
  h.transport.Fail("n3");
  h.AdvanceTo(milliseconds(5200));
  h.Tick();
  h.transport.AnswerAs("n2", {"n1"});
  h.AdvanceTo(milliseconds(5400));
  h.Tick();
  CHECK_FALSE(h.manager->fenced());
  CHECK(h.manager->fence_reason().empty());
  REQUIRE(h.fence_changes.size() == 2);
  CHECK_FALSE(h.fence_changes[1].first);
  CHECK(h.Logged("unfenced: node n1 reaches 2 of 3 voting members (a majority is 2)"));
}

TEST_CASE("FailoverManager stays fenced once declared failed and unfences when it rejoins",
          "[unit][failover]") {
  Harness h("n3", {M("n1"), M("n2"), M("n3")});
  h.Run(milliseconds(2000), {});
  REQUIRE(h.manager->fenced());
  // The heartbeat answer that brings the view in which n3 is FAILED (Membership adopts it).
  h.manager->OnTopology(Topo(2, {M("n1"), M("n2"), M("n3", MemberState::kFailed)}, "n3"));
  h.AdvanceTo(milliseconds(2200));
  h.Run(milliseconds(2400), {"n1", "n2"});
  CHECK(h.manager->fenced());
  CHECK(h.manager->fence_reason() ==
        "node n3 is fenced: the cluster declared it failed (epoch 2); writes are refused until "
        "it rejoins the cluster");
  // Rejoined as JOINING.
  h.manager->OnTopology(Topo(3, {M("n1"), M("n2"), M("n3", MemberState::kJoining)}, "n3"));
  h.AdvanceTo(milliseconds(2600));
  h.Run(milliseconds(2600), {"n1", "n2"});
  CHECK_FALSE(h.manager->fenced());
  REQUIRE(h.fence_changes.size() == 2);
  CHECK(h.fence_changes[1] ==
        std::pair<bool, std::string>{false,
                                     "node n3 is joining the cluster again (it owns no ranges)"});
}

TEST_CASE("FailoverManager in a two-voter cluster fences when the peer is lost",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2")});
  h.Run(milliseconds(800), {});
  CHECK_FALSE(h.manager->fenced());
  h.transport.Fail("n2");
  h.AdvanceTo(milliseconds(1000));
  h.Tick();
  CHECK(h.manager->fenced());
  CHECK(h.manager->fence_reason().find("reached 1 of 2 voting members (a majority is 2)") !=
        std::string::npos);
  h.AdvanceTo(milliseconds(2200));
  h.Run(milliseconds(4000), {});
  CHECK(h.marked.empty());
}

TEST_CASE("FailoverManager passes a view from a heartbeat answer to offer_view",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2")});
  h.Tick();
  v1::HeartbeatResponse response;
  response.set_id("n2");
  response.set_epoch(5);
  response.mutable_view()->set_epoch(5);
  REQUIRE(h.transport.Answer("n2", response) == 1);
  REQUIRE(h.offered.size() == 1);
  CHECK(h.offered[0].first.epoch() == 5);
  CHECK(h.offered[0].second == "n2");
  // No view: no offer.
  h.AdvanceTo(milliseconds(200));
  h.Tick();
  h.transport.AnswerAs("n2");
  CHECK(h.offered.size() == 1);
}

TEST_CASE("FailoverManager counts an answer from another id or FAILED_PRECONDITION as a failure",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  v1::HeartbeatResponse other;
  other.set_id("n9");  // Another node now has n2's address.
  other.mutable_view()->set_epoch(9);
  for (int t = 0; t <= 1000; t += 200) {
    h.AdvanceTo(milliseconds(t));
    h.transport.Answer("n2", other);
    h.transport.Fail("n3", grpc::StatusCode::FAILED_PRECONDITION);
    h.Tick();
  }
  CHECK(h.Logged("suspect n2: no heartbeat answer for 1000 ms"));
  CHECK(h.Logged("suspect n3: no heartbeat answer for 1000 ms"));
  CHECK(h.offered.empty());
}

TEST_CASE("FailoverManager HandleHeartbeat fills suspects and records the sender as heard",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  v1::HeartbeatRequest request;
  request.set_from_id("n2");
  request.set_epoch(1);
  request.set_to_id("n1");
  request.add_suspects("n3");
  v1::HeartbeatResponse response;
  h.manager->HandleHeartbeat(request, &response, kT0 + milliseconds(500));
  CHECK(response.id() == "n1");
  CHECK(response.epoch() == 1);
  CHECK(response.suspects().empty());
  CHECK_FALSE(response.has_view());  // Membership's job.

  // A request meant for another id is answered but not recorded.
  v1::HeartbeatRequest stray = request;
  stray.set_to_id("n7");
  stray.clear_suspects();
  v1::HeartbeatResponse ignored;
  h.manager->HandleHeartbeat(stray, &ignored, kT0 + milliseconds(900));
  CHECK(ignored.id() == "n1");

  // At +1000: n2 heard at +500 (no suspicion), n3 silent; n2's fresh list names n3.
  response.Clear();
  h.manager->HandleHeartbeat(request, &response, kT0 + milliseconds(1000));
  REQUIRE(response.suspects_size() == 1);
  CHECK(response.suspects(0) == "n3");
  auto peers = h.manager->Peers(kT0 + milliseconds(1000));
  REQUIRE(peers.size() == 2);
  CHECK(peers[0].id == "n2");
  CHECK(peers[0].reachable);
  CHECK(peers[0].last_heard_ms == 0);
  CHECK(peers[1].id == "n3");
  CHECK(peers[1].suspected);
  CHECK(peers[1].suspected_by == Ids{"n1", "n2"});
  // Which makes n3 declared failed, and this node (n1) the coordinator.
  h.AdvanceTo(milliseconds(1000));
  h.Tick();
  REQUIRE(h.marked.size() == 1);
  CHECK(h.marked[0].first == Ids{"n3"});
}

TEST_CASE("FailoverManager Shutdown cancels outstanding heartbeats and waits for their dones",
          "[unit][failover]") {
  Harness h("n1", {M("n1"), M("n2"), M("n3")});
  h.transport.set_async_cancel(true);  // The dones run on another thread, later.
  h.Tick();
  REQUIRE(h.transport.Pending("n2") == 1);
  REQUIRE(h.transport.Pending("n3") == 1);
  h.manager->Shutdown();
  CHECK(h.transport.cancel_alls() == 1);
  CHECK(h.transport.Pending("n2") == 0);
  h.manager->Shutdown();  // Idempotent.
  CHECK(h.transport.cancel_alls() == 1);
  // Nothing more once shut down.
  h.AdvanceTo(milliseconds(5000));
  h.Tick();
  CHECK(h.transport.TakeSent().size() == 2);
  CHECK(h.marked.empty());
  CHECK(h.fence_changes.empty());
}

TEST_CASE("FailoverManager Start ticks on the rc-failover thread until Shutdown",
          "[unit][failover]") {
  FakeTransport transport;
  std::mutex mu;
  std::condition_variable cv;
  int sends = 0;
  std::string thread_name;
  transport.set_on_send([&] {
    char name[32] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    std::lock_guard lock(mu);
    ++sends;
    thread_name = name;
    cv.notify_all();
  });
  FailoverOptions options;
  options.self_id = "n1";
  options.heartbeat_interval = milliseconds(10);
  FailoverManager manager(options, &transport, {});
  manager.OnTopology(Topo(1, {M("n1"), M("n2")}, "n1"));
  manager.Start();
  {
    std::unique_lock lock(mu);
    // Each tick sends once the previous call was answered (here: right away).
    for (int answered = 0; answered < 3; ++answered) {
      REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return sends > answered; }));
      lock.unlock();
      transport.AnswerAs("n2");
      lock.lock();
    }
    CHECK(thread_name == "rc-failover");
  }
  manager.Shutdown();
  CHECK(transport.cancel_alls() == 1);
}

// ---- The gRPC transport.

// Membership.Heartbeat served by a FailoverManager (as Membership's service does), or,
// with `hold`, never answered until Release() (a peer that hangs).
class HeartbeatService final : public v1::Membership::CallbackService {
 public:
  explicit HeartbeatService(FailoverManager* manager, bool hold = false)
      : manager_(manager), hold_(hold) {}
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (hold_) {
      std::lock_guard lock(mu_);
      held_.push_back(reactor);
      cv_.notify_all();
      return reactor;
    }
    manager_->HandleHeartbeat(*request, response);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // Waits (up to 10 s) until `n` calls are held.
  bool WaitHeld(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return held_.size() >= n; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    for (auto* reactor : held_) reactor->Finish(grpc::Status::OK);
    held_.clear();
  }

 private:
  FailoverManager* const manager_;
  const bool hold_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<grpc::ServerUnaryReactor*> held_;
};

// Serves `service` on 127.0.0.1 at a free port (set in *port).
std::unique_ptr<grpc::Server> StartLoopbackServer(grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

TEST_CASE("GrpcHeartbeatTransport carries heartbeats to a real server and reports failures",
          "[unit][failover]") {
  FakeTransport unused;
  FailoverOptions options;
  options.self_id = "n2";
  FailoverManager server_side(options, &unused, {});
  server_side.OnTopology(Topo(3, {M("n1"), M("n2")}, "n2"));
  HeartbeatService service(&server_side);
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartLoopbackServer(&service, &port);
  REQUIRE(server);
  REQUIRE(port > 0);

  PeerPool peers(4 << 20);
  auto transport = MakeGrpcHeartbeatTransport(&peers);
  v1::HeartbeatRequest request;
  request.set_from_id("n1");
  request.set_epoch(3);
  request.set_to_id("n2");

  std::promise<std::pair<grpc::Status, v1::HeartbeatResponse>> answered;
  transport->Send("127.0.0.1:" + std::to_string(port), request, milliseconds(5000),
                  [&](const grpc::Status& status, const v1::HeartbeatResponse& response) {
                    answered.set_value({status, response});
                  });
  auto [status, response] = answered.get_future().get();
  CHECK(status.ok());
  CHECK(response.id() == "n2");
  CHECK(response.epoch() == 3);
  // n2's manager heard from n1.
  auto rows = server_side.Peers();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].reachable);

  // Nobody listens on the server's port once it is gone: the done still runs, not OK.
  server->Shutdown();
  server->Wait();
  std::promise<grpc::Status> failed;
  transport->Send(
      "127.0.0.1:" + std::to_string(port), request, milliseconds(300),
      [&](const grpc::Status& s, const v1::HeartbeatResponse&) { failed.set_value(s); });
  CHECK_FALSE(failed.get_future().get().ok());
}

TEST_CASE("GrpcHeartbeatTransport runs every done before its destructor returns",
          "[unit][failover]") {
  HeartbeatService service(nullptr, /*hold=*/true);  // A peer that never answers.
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartLoopbackServer(&service, &port);
  REQUIRE(server);

  PeerPool peers(4 << 20);
  auto transport = MakeGrpcHeartbeatTransport(&peers);
  std::atomic<int> dones{0};
  std::atomic<int> ok{0};
  v1::HeartbeatRequest request;
  request.set_from_id("n1");
  // A long deadline: only the destructor's cancel can end these quickly.
  for (int i = 0; i < 4; ++i) {
    transport->Send("127.0.0.1:" + std::to_string(port), request, milliseconds(60000),
                    [&](const grpc::Status& s, const v1::HeartbeatResponse&) {
                      if (s.ok()) ok.fetch_add(1);  // (No Catch assertions off the test thread.)
                      dones.fetch_add(1);
                    });
  }
  REQUIRE(service.WaitHeld(4));
  transport.reset();
  CHECK(dones.load() == 4);
  CHECK(ok.load() == 0);
  service.Release();
  server->Shutdown();
  server->Wait();
}

}  // namespace
}  // namespace ringcache::internal

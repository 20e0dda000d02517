// FailureDetector: the decisions of failure detection, driven by explicit time points.
#include "failure_detector.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

using TimePoint = FailureDetector::TimePoint;
using std::chrono::milliseconds;
using Ids = std::vector<std::string>;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);
constexpr milliseconds kTimeout{1000};

ClusterMember M(const std::string& id, MemberState state = MemberState::kServing) {
  return ClusterMember{id, id + ".local:7700", 1, state};
}

ClusterView View(uint64_t epoch, std::vector<ClusterMember> members) {
  ClusterView view{.epoch = epoch, .members = std::move(members)};
  view.Normalize();
  return view;
}

// A detector for `self` that adopted `view` at kT0.
FailureDetector Make(const std::string& self, const ClusterView& view) {
  FailureDetector d(self, kTimeout);
  d.SetView(view, kT0);
  return d;
}

TEST_CASE("FailureDetector suspects a peer exactly when the failure timeout passed without news",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  // New peers start as heard-from-now.
  CHECK_FALSE(d.Suspects("n2", kT0));
  CHECK_FALSE(d.Suspects("n2", kT0 + milliseconds(999)));
  CHECK(d.Suspects("n2", kT0 + kTimeout));
  CHECK(d.SuspectList(kT0 + kTimeout) == Ids{"n2", "n3"});

  // An answer at +500 moves n2's deadline to +1500.
  auto targets = d.StartHeartbeats();
  REQUIRE(targets.size() == 2);
  d.EndHeartbeat(targets[0].id, targets[0].call_id, /*ok=*/true, {}, kT0 + milliseconds(500));
  CHECK(targets[0].id == "n2");
  CHECK_FALSE(d.Suspects("n2", kT0 + milliseconds(1499)));
  CHECK(d.Suspects("n2", kT0 + milliseconds(1500)));
  CHECK(d.Suspects("n3", kT0 + milliseconds(1000)));
  // A failed call is no news.
  d.EndHeartbeat(targets[1].id, targets[1].call_id, /*ok=*/false, {}, kT0 + milliseconds(900));
  CHECK(d.Suspects("n3", kT0 + milliseconds(1000)));
  // Self is never a peer.
  CHECK_FALSE(d.Suspects("n1", kT0 + milliseconds(5000)));
}

TEST_CASE("FailureDetector raises no false suspicion while slow answers keep coming in time",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  // Ticks every 200 ms; each heartbeat is answered 700 ms after it left (one outstanding
  // per peer, so the next one leaves at the first tick after the answer).
  struct InFlight {
    FailureDetector::Target target;
    TimePoint answer_at;
  };
  std::vector<InFlight> in_flight;
  for (TimePoint now = kT0; now < kT0 + milliseconds(20000); now += milliseconds(100)) {
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->answer_at <= now) {
        d.EndHeartbeat(it->target.id, it->target.call_id, true, {}, now);
        it = in_flight.erase(it);
      } else {
        ++it;
      }
    }
    INFO("at +" << (now - kT0).count());
    REQUIRE(d.SuspectList(now).empty());
    REQUIRE(d.DeclaredFailed(now).empty());
    REQUIRE_FALSE(d.UpdateFence(now).fenced);
    if ((now - kT0) % milliseconds(200) == milliseconds(0)) {
      for (auto& t : d.StartHeartbeats()) in_flight.push_back({t, now + milliseconds(700)});
    }
  }
}

TEST_CASE("FailureDetector declares a member failed only when a majority of voters suspects it",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  const TimePoint t = kT0 + kTimeout;
  d.OnRequest("n2", Ids{}, t);  // n2 is alive and suspects no one.
  // Self alone suspects n3: 1 of 3 is not a majority.
  CHECK(d.VotersSuspecting("n3", t) == Ids{"n1"});
  CHECK(d.DeclaredFailed(t).empty());
  CHECK(d.Coordinator(t) == "n1");
  // n2 suspects n3 too: 2 of 3.
  d.OnRequest("n2", Ids{"n3"}, t);
  CHECK(d.VotersSuspecting("n3", t) == Ids{"n1", "n2"});
  CHECK(d.DeclaredFailed(t) == Ids{"n3"});

  // Another view: only n2 suspects n3 while this node still hears n3: 1 of 3.
  FailureDetector e = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  e.OnRequest("n3", Ids{}, t);
  e.OnRequest("n2", Ids{"n3"}, t);
  CHECK(e.VotersSuspecting("n3", t) == Ids{"n2"});
  CHECK(e.DeclaredFailed(t).empty());
}

TEST_CASE("FailureDetector ignores suspect lists older than the failure timeout",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  const TimePoint t = kT0 + kTimeout;
  d.OnRequest("n2", Ids{"n3"}, t);
  CHECK(d.DeclaredFailed(t) == Ids{"n3"});
  // Still fresh when exactly failure_timeout old, stale after.
  CHECK(d.DeclaredFailed(t + kTimeout) == Ids{"n3"});
  CHECK(d.VotersSuspecting("n3", t + kTimeout) == Ids{"n1", "n2"});
  CHECK(d.VotersSuspecting("n3", t + kTimeout + milliseconds(1)) == Ids{"n1"});
  CHECK(d.DeclaredFailed(t + kTimeout + milliseconds(1)).empty());
  // A newer list replaces the older one (n2 no longer suspects n3).
  d.OnRequest("n2", Ids{}, t + milliseconds(200));
  CHECK(d.VotersSuspecting("n3", t + milliseconds(200)) == Ids{"n1"});
}

TEST_CASE("FailureDetector never counts a member for its own failure and never declares self",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  const TimePoint t = kT0 + milliseconds(500);
  // Both peers suspect this node: it is not a tracked peer, so nothing follows.
  d.OnRequest("n2", Ids{"n1"}, t);
  d.OnRequest("n3", Ids{"n1"}, t);
  CHECK(d.DeclaredFailed(t).empty());
  CHECK(d.Coordinator(t) == "n1");
  // n3 "suspects itself" and n2 suspects n3: n3's own list does not count.
  d.OnRequest("n3", Ids{"n3"}, t);
  d.OnRequest("n2", Ids{"n3"}, t);
  CHECK(d.VotersSuspecting("n3", t) == Ids{"n2"});
  CHECK(d.DeclaredFailed(t).empty());
}

TEST_CASE("FailureDetector coordinator is the lowest voter id not declared failed",
          "[unit][failover]") {
  // n0 is JOINING (not a voter) though its id is the lowest.
  FailureDetector d =
      Make("n2", View(1, {M("n0", MemberState::kJoining), M("n1"), M("n2"), M("n3"), M("n4")}));
  TimePoint t = kT0 + kTimeout;
  d.OnRequest("n0", Ids{}, t);
  d.OnRequest("n3", Ids{}, t);
  d.OnRequest("n4", Ids{}, t);
  CHECK(d.Coordinator(t) == "n1");
  // 4 voters: majority 3. Self and n3 suspect n1: not yet.
  d.OnRequest("n3", Ids{"n1"}, t);
  CHECK(d.DeclaredFailed(t).empty());
  CHECK(d.Coordinator(t) == "n1");
  // The JOINING member's suspicion does not count.
  d.OnRequest("n0", Ids{"n1"}, t);
  CHECK(d.DeclaredFailed(t).empty());
  // n4 too: 3 of 4, and n2 takes over.
  d.OnRequest("n4", Ids{"n1"}, t);
  CHECK(d.DeclaredFailed(t) == Ids{"n1"});
  CHECK(d.Coordinator(t) == "n2");
  // Once the view marks n1 FAILED it is no longer tracked, and n2 stays coordinator.
  d.SetView(View(2, {M("n0", MemberState::kJoining), M("n1", MemberState::kFailed), M("n2"),
                     M("n3"), M("n4")}),
            t);
  CHECK(d.DeclaredFailed(t).empty());
  CHECK(d.Coordinator(t) == "n2");
  CHECK(d.SuspectList(t + kTimeout * 10) == Ids{"n0", "n3", "n4"});
}

TEST_CASE("FailureDetector fences a minority node after the timeout and unfences with a majority",
          "[unit][failover]") {
  FailureDetector d = Make("n3", View(1, {M("n1"), M("n2"), M("n3")}));
  // Nothing heard since kT0: reachable drops to 1 of 3 at +1000, and the node fences
  // then (no majority heard from for the failure timeout).
  auto s = d.UpdateFence(kT0 + milliseconds(999));
  CHECK(s.quorum.reachable == 3);
  CHECK_FALSE(s.fenced);
  s = d.UpdateFence(kT0 + milliseconds(1000));
  CHECK(s.quorum.reachable == 1);
  CHECK(s.quorum.majority == 2);
  CHECK(s.fenced);
  CHECK(s.changed);
  CHECK(s.below_for == milliseconds(1000));
  CHECK(d.fenced());
  s = d.UpdateFence(kT0 + milliseconds(2200));
  CHECK(s.fenced);
  CHECK_FALSE(s.changed);
  CHECK(s.below_for == milliseconds(2200));
  // The minority side never gathers a majority of suspicions.
  CHECK(d.DeclaredFailed(kT0 + milliseconds(2200)).empty());

  // One voter heard again: 2 of 3, unfenced at once.
  d.OnRequest("n1", Ids{"n3"}, kT0 + milliseconds(5000));
  s = d.UpdateFence(kT0 + milliseconds(5000));
  CHECK_FALSE(s.fenced);
  CHECK(s.changed);
  CHECK(s.quorum.reachable == 2);
}

TEST_CASE("FailureDetector fencing does not depend on how often it is evaluated",
          "[unit][failover]") {
  FailureDetector d = Make("n3", View(1, {M("n1"), M("n2"), M("n3")}));
  d.OnRequest("n1", Ids{}, kT0 + milliseconds(300));
  // Last voter heard at +300 (n1), lost at +1300; first evaluation long after: already
  // fenced, and cut off since +300.
  auto s = d.UpdateFence(kT0 + milliseconds(2300));
  CHECK(s.fenced);
  CHECK(s.below_for == milliseconds(2000));
  FailureDetector e = Make("n3", View(1, {M("n1"), M("n2"), M("n3")}));
  e.OnRequest("n1", Ids{}, kT0 + milliseconds(300));
  CHECK_FALSE(e.UpdateFence(kT0 + milliseconds(1299)).fenced);
  CHECK(e.UpdateFence(kT0 + milliseconds(1300)).fenced);
}

TEST_CASE("FailureDetector fences the survivor of a two-voter cluster", "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2")}));
  CHECK_FALSE(d.UpdateFence(kT0 + milliseconds(999)).fenced);
  auto s = d.UpdateFence(kT0 + milliseconds(1000));
  CHECK(s.fenced);
  CHECK(s.quorum.reachable == 1);
  CHECK(s.quorum.voters == 2);
  CHECK(s.quorum.majority == 2);
  // 1 of 2 suspecting is no majority: nothing is declared failed.
  CHECK(d.DeclaredFailed(kT0 + milliseconds(2000)).empty());
}

TEST_CASE("FailureDetector never fences a single-voter cluster nor a joining node",
          "[unit][failover]") {
  FailureDetector alone = Make("n1", View(1, {M("n1")}));
  CHECK_FALSE(alone.UpdateFence(kT0 + milliseconds(60000)).fenced);
  CHECK(alone.StartHeartbeats().empty());

  FailureDetector joining = Make("n3", View(1, {M("n1"), M("n2"), M("n3", MemberState::kJoining)}));
  CHECK_FALSE(joining.UpdateFence(kT0 + milliseconds(60000)).fenced);
  CHECK(joining.QuorumAt(kT0 + milliseconds(60000)).reachable == 0);
}

TEST_CASE("FailureDetector stays fenced while FAILED in its view and unfences once joining",
          "[unit][failover]") {
  FailureDetector d = Make("n3", View(1, {M("n1"), M("n2"), M("n3")}));
  REQUIRE(d.UpdateFence(kT0 + milliseconds(2000)).fenced);
  d.SetView(View(2, {M("n1"), M("n2"), M("n3", MemberState::kFailed)}), kT0 + milliseconds(3000));
  d.OnRequest("n1", Ids{}, kT0 + milliseconds(3000));
  d.OnRequest("n2", Ids{}, kT0 + milliseconds(3000));
  CHECK(d.UpdateFence(kT0 + milliseconds(3000)).fenced);
  d.SetView(View(3, {M("n1"), M("n2"), M("n3", MemberState::kJoining)}), kT0 + milliseconds(3500));
  auto s = d.UpdateFence(kT0 + milliseconds(3500));
  CHECK_FALSE(s.fenced);
  CHECK(s.changed);
}

TEST_CASE("FailureDetector heartbeats JOINING members but does not count them as voters",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3", MemberState::kJoining), M("n4"),
                                          M("n5", MemberState::kFailed)}));
  std::vector<std::string> ids;
  for (const auto& t : d.StartHeartbeats()) ids.push_back(t.id);
  CHECK(ids == Ids{"n2", "n3", "n4"});  // Not self, not the FAILED member.
  const TimePoint t = kT0 + kTimeout;
  auto q = d.QuorumAt(t);
  CHECK(q.voters == 3);
  CHECK(q.majority == 2);
  // n3 silent and suspected by self and n4: a JOINING member can be declared failed.
  d.OnRequest("n2", Ids{}, t);
  d.OnRequest("n4", Ids{"n3"}, t);
  CHECK(d.DeclaredFailed(t) == Ids{"n3"});
  // n3's suspicion of n2 (with self's) does not make a majority.
  d.OnRequest("n3", Ids{"n2"}, t + milliseconds(1500));
  CHECK(d.VotersSuspecting("n2", t + milliseconds(1500)) == Ids{"n1"});
  // Reachable counts voters only: self, n2 and n4 (heard at t) at t + 500.
  CHECK(d.QuorumAt(t + milliseconds(500)).reachable == 3);
  CHECK(d.QuorumAt(t + milliseconds(1500)).reachable == 1);
}

TEST_CASE("FailureDetector keeps at most one heartbeat outstanding per peer", "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  auto first = d.StartHeartbeats();
  REQUIRE(first.size() == 2);
  CHECK(d.StartHeartbeats().empty());
  CHECK(d.call_outstanding("n2"));
  d.EndHeartbeat("n2", first[0].call_id, false, {}, kT0 + milliseconds(100));
  CHECK_FALSE(d.call_outstanding("n2"));
  auto second = d.StartHeartbeats();
  REQUIRE(second.size() == 1);
  CHECK(second[0].id == "n2");
  CHECK(second[0].call_id != first[0].call_id);
  // The end of a call that is not the outstanding one is ignored.
  d.EndHeartbeat("n2", first[0].call_id, true, {}, kT0 + milliseconds(900));
  CHECK(d.call_outstanding("n2"));
  CHECK(d.SilenceOf("n2", kT0 + milliseconds(900)) == milliseconds(900));
}

TEST_CASE("FailureDetector forgets peers that leave the view and restarts those that come back",
          "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  auto calls = d.StartHeartbeats();
  REQUIRE(calls.size() == 2);
  d.SetView(View(2, {M("n1"), M("n2"), M("n3", MemberState::kFailed)}), kT0 + milliseconds(1500));
  CHECK(d.SuspectList(kT0 + milliseconds(1500)) == Ids{"n2"});
  d.EndHeartbeat("n3", calls[1].call_id, true, {}, kT0 + milliseconds(1600));  // Ignored.
  // n3 rejoins (JOINING): heard-from-now, a new call can start.
  d.SetView(View(3, {M("n1"), M("n2"), M("n3", MemberState::kJoining)}), kT0 + milliseconds(4000));
  CHECK_FALSE(d.Suspects("n3", kT0 + milliseconds(4999)));
  CHECK(d.Suspects("n3", kT0 + milliseconds(5000)));
  auto again = d.StartHeartbeats();
  REQUIRE(again.size() == 1);
  CHECK(again[0].id == "n3");
  CHECK(again[0].address == "n3.local:7700");
}

TEST_CASE("FailureDetector reports peer health rows", "[unit][failover]") {
  FailureDetector d = Make("n1", View(1, {M("n1"), M("n2"), M("n3")}));
  const TimePoint t = kT0 + milliseconds(1200);
  d.OnRequest("n2", Ids{"n3"}, kT0 + milliseconds(1000));
  auto rows = d.Peers(t);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].id == "n2");
  CHECK(rows[0].reachable);
  CHECK_FALSE(rows[0].suspected);
  CHECK(rows[0].last_heard_ms == 200);
  CHECK(rows[0].suspected_by.empty());
  CHECK(rows[1].id == "n3");
  CHECK_FALSE(rows[1].reachable);
  CHECK(rows[1].suspected);
  CHECK(rows[1].last_heard_ms == 1200);
  CHECK(rows[1].suspected_by == Ids{"n1", "n2"});
}

}  // namespace
}  // namespace ringcache::internal

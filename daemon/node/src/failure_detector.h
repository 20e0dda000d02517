// FailureDetector: the decisions of failure detection (docs/design/failover.md), as pure
// logic over explicit time points: who this node suspects, which members a majority of
// the voters suspects (declared failed), who the coordinator is, and whether this node
// must fence itself. FailoverManager drives it (heartbeats, timer, hooks); unit tests
// drive it with a manual clock.
//
// Definitions (the contract in docs/design/failover.md):
//  - Tracked peers: the members of the view other than self that are not FAILED
//    (JOINING members included). Each has a last-heard time: the last successful
//    heartbeat answer from it or heartbeat request from it; a peer that enters the view
//    starts as heard-from-now.
//  - Self suspects P when P was not heard from for failure_timeout (now - last_heard >=
//    failure_timeout).
//  - Each peer's latest suspect list (from its requests and answers) is kept with the
//    time it arrived; a list older than failure_timeout is ignored ("stale").
//  - Voters: members in state SERVING or LEAVING (self included if it is one); majority =
//    voters / 2 + 1.
//  - X (tracked) is declared failed when the voters suspecting it number >= majority:
//    self if self is a voter and suspects X, and each voter peer P != X whose fresh list
//    holds X. X never counts for itself; self is never declared failed.
//  - Coordinator: the voter with the lowest id that is not declared failed.
//  - Reachable: (self is a voter ? 1 : 0) + voter peers heard from within failure_timeout.
//    Fenced once no majority has been heard from for >= failure_timeout, i.e. as soon as
//    reachable < majority (the period is computed exactly from the last-heard times, so it
//    does not depend on how often UpdateFence runs): a cut-off node fences before the
//    majority declares it failed (timeout + a heartbeat interval); unfenced as soon as reachable >=
//    majority and self is a voter. A node that is not a voter is not fenced if it is JOINING (it
//    owns nothing); a node FAILED in or absent from its view keeps its fencing state until it
//    rejoins.
//
// Thread safety: not thread-safe; FailoverManager calls it under its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/node/node.h"

namespace ringcache::internal {

class FailureDetector {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  // A heartbeat to send (StartHeartbeats).
  struct Target {
    std::string id;
    std::string address;
    uint64_t call_id = 0;  // Pass back to EndHeartbeat.
  };

  // The quorum as this node sees it now.
  struct Quorum {
    int reachable = 0;  // Voters heard from within the failure timeout, self included.
    int voters = 0;
    int majority = 0;
  };

  // What UpdateFence decided.
  struct FenceStatus {
    bool fenced = false;
    bool changed = false;  // fenced differs from the previous UpdateFence.
    Quorum quorum;
    // How long no majority has been heard from (0 if one is reachable).
    Duration below_for{0};
  };

  // REQUIRES: failure_timeout > 0.
  FailureDetector(std::string self_id, std::chrono::milliseconds failure_timeout);

  const std::string& self_id() const { return self_id_; }
  std::chrono::milliseconds failure_timeout() const { return failure_timeout_; }

  // Adopts `view` (the caller passes only newer epochs): peers that enter are heard from
  // `now`; peers that leave or become FAILED are forgotten (a call still outstanding to
  // them is then ignored when it ends). A peer whose address changed keeps its state.
  void SetView(const ClusterView& view, TimePoint now);
  // False until the first SetView.
  bool has_view() const { return has_view_; }
  uint64_t epoch() const { return epoch_; }
  // Self's state in the view; kUnspecified if self is absent.
  MemberState self_state() const { return self_state_; }
  // The member's state in the view, or nullopt if it is absent.
  std::optional<MemberState> StateOf(const std::string& id) const;

  // The tracked peers with no heartbeat outstanding: marks one outstanding for each and
  // returns them (sorted by id). A peer gets at most one outstanding call.
  std::vector<Target> StartHeartbeats();
  // The call `call_id` to `id` ended. ok: a valid answer from that peer (then it is heard
  // from at `now` and `suspects` is its latest list). Ignored if the call is not the
  // peer's outstanding one (it left the view meanwhile).
  void EndHeartbeat(const std::string& id, uint64_t call_id, bool ok,
                    std::span<const std::string> suspects, TimePoint now);
  // A heartbeat request from `from_id` arrived: heard from, with its list. Ignored for a
  // sender that is not a tracked peer.
  void OnRequest(const std::string& from_id, std::span<const std::string> suspects, TimePoint now);
  // Whether a heartbeat to `id` is outstanding (tests).
  bool call_outstanding(const std::string& id) const;

  // Whether self suspects tracked peer `id` (false for an unknown id).
  bool Suspects(const std::string& id, TimePoint now) const;
  // The tracked peers self suspects, sorted: the list its heartbeats carry.
  std::vector<std::string> SuspectList(TimePoint now) const;
  // Time since `id` was last heard from (0 for an unknown id).
  Duration SilenceOf(const std::string& id, TimePoint now) const;
  // The voters (self included) that suspect tracked peer `id`, sorted: the count that
  // decides a failure.
  std::vector<std::string> VotersSuspecting(const std::string& id, TimePoint now) const;
  // Tracked peers declared failed, sorted.
  std::vector<std::string> DeclaredFailed(TimePoint now) const;
  // The coordinator (lowest voter id not declared failed), or "" if there is none.
  std::string Coordinator(TimePoint now) const;

  Quorum QuorumAt(TimePoint now) const;
  // Re-evaluates fencing at `now` (call it regularly, with non-decreasing `now`).
  FenceStatus UpdateFence(TimePoint now);
  bool fenced() const { return fenced_; }

  // One row per tracked peer, sorted by id. suspected_by lists every member (self
  // included) whose fresh list holds the peer, voter or not.
  std::vector<PeerHealth> Peers(TimePoint now) const;

  // voters / 2 + 1.
  static int MajorityOf(int voters) { return voters / 2 + 1; }

 private:
  struct Peer {
    std::string address;
    MemberState state = MemberState::kServing;
    TimePoint last_heard;
    bool call_outstanding = false;
    uint64_t call_id = 0;  // Of the outstanding call.
    bool has_list = false;
    std::vector<std::string> suspects;  // Latest list, sorted.
    TimePoint list_received;
  };

  static bool IsVoter(MemberState state) {
    return state == MemberState::kServing || state == MemberState::kLeaving;
  }
  bool self_voter() const { return IsVoter(self_state_); }
  bool SuspectsPeer(const Peer& peer, TimePoint now) const {
    return now - peer.last_heard >= failure_timeout_;
  }
  bool ListFresh(const Peer& peer, TimePoint now) const {
    return peer.has_list && now - peer.list_received <= failure_timeout_;
  }
  void RecordList(Peer& peer, std::span<const std::string> suspects, TimePoint now);
  // When reachable last dropped below the majority, assuming it is below at `now`.
  TimePoint BelowMajoritySince(const Quorum& quorum, TimePoint now) const;

  const std::string self_id_;
  const std::chrono::milliseconds failure_timeout_;

  bool has_view_ = false;
  uint64_t epoch_ = 0;
  TimePoint view_since_{};  // When the current view was set.
  MemberState self_state_ = MemberState::kUnspecified;
  std::map<std::string, MemberState> members_;  // Every member of the view, by id.
  std::vector<std::string> voters_;             // Sorted; self included if a voter.
  std::map<std::string, Peer> peers_;           // Tracked peers, by id.
  uint64_t next_call_id_ = 1;

  bool fenced_ = false;
  std::optional<TimePoint> below_since_;  // Set while reachable < majority.
};

}  // namespace ringcache::internal

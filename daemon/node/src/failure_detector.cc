#include "failure_detector.h"

#include <algorithm>
#include <cassert>
#include <functional>
#include <utility>

namespace ringcache::internal {

FailureDetector::FailureDetector(std::string self_id, std::chrono::milliseconds failure_timeout)
    : self_id_(std::move(self_id)), failure_timeout_(failure_timeout) {
  assert(failure_timeout_.count() > 0);
}

void FailureDetector::SetView(const ClusterView& view, TimePoint now) {
  has_view_ = true;
  epoch_ = view.epoch;
  view_since_ = now;
  self_state_ = MemberState::kUnspecified;
  members_.clear();
  voters_.clear();
  std::map<std::string, Peer> peers;
  for (const ClusterMember& m : view.members) {
    members_[m.id] = m.state;
    if (IsVoter(m.state)) voters_.push_back(m.id);
    if (m.id == self_id_) {
      self_state_ = m.state;
      continue;
    }
    if (m.state == MemberState::kFailed) continue;
    auto old = peers_.find(m.id);
    Peer peer;
    if (old != peers_.end()) {
      peer = std::move(old->second);
    } else {
      peer.last_heard = now;  // A new peer starts as heard-from-now.
    }
    peer.address = m.peer_address();
    peer.state = m.state;
    peers.emplace(m.id, std::move(peer));
  }
  std::sort(voters_.begin(), voters_.end());
  peers_ = std::move(peers);
}

std::optional<MemberState> FailureDetector::StateOf(const std::string& id) const {
  auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second;
}

std::vector<FailureDetector::Target> FailureDetector::StartHeartbeats() {
  std::vector<Target> targets;
  for (auto& [id, peer] : peers_) {
    if (peer.call_outstanding) continue;
    peer.call_outstanding = true;
    peer.call_id = next_call_id_++;
    targets.push_back({id, peer.address, peer.call_id});
  }
  return targets;
}

void FailureDetector::RecordList(Peer& peer, std::span<const std::string> suspects, TimePoint now) {
  peer.has_list = true;
  peer.suspects.assign(suspects.begin(), suspects.end());
  std::sort(peer.suspects.begin(), peer.suspects.end());
  peer.suspects.erase(std::unique(peer.suspects.begin(), peer.suspects.end()), peer.suspects.end());
  peer.list_received = std::max(peer.list_received, now);
}

void FailureDetector::EndHeartbeat(const std::string& id, uint64_t call_id, bool ok,
                                   std::span<const std::string> suspects, TimePoint now) {
  auto it = peers_.find(id);
  if (it == peers_.end() || !it->second.call_outstanding || it->second.call_id != call_id) return;
  Peer& peer = it->second;
  peer.call_outstanding = false;
  if (!ok) return;
  peer.last_heard = std::max(peer.last_heard, now);
  RecordList(peer, suspects, now);
}

void FailureDetector::OnRequest(const std::string& from_id, std::span<const std::string> suspects,
                                TimePoint now) {
  auto it = peers_.find(from_id);
  if (it == peers_.end()) return;
  it->second.last_heard = std::max(it->second.last_heard, now);
  RecordList(it->second, suspects, now);
}

bool FailureDetector::call_outstanding(const std::string& id) const {
  auto it = peers_.find(id);
  return it != peers_.end() && it->second.call_outstanding;
}

bool FailureDetector::Suspects(const std::string& id, TimePoint now) const {
  auto it = peers_.find(id);
  return it != peers_.end() && SuspectsPeer(it->second, now);
}

std::vector<std::string> FailureDetector::SuspectList(TimePoint now) const {
  std::vector<std::string> out;
  for (const auto& [id, peer] : peers_) {
    if (SuspectsPeer(peer, now)) out.push_back(id);
  }
  return out;
}

FailureDetector::Duration FailureDetector::SilenceOf(const std::string& id, TimePoint now) const {
  auto it = peers_.find(id);
  if (it == peers_.end()) return Duration{0};
  return std::max(Duration{0}, now - it->second.last_heard);
}

std::vector<std::string> FailureDetector::VotersSuspecting(const std::string& id,
                                                           TimePoint now) const {
  std::vector<std::string> out;
  auto target = peers_.find(id);
  if (target == peers_.end()) return out;
  if (self_voter() && SuspectsPeer(target->second, now)) out.push_back(self_id_);
  for (const auto& [pid, peer] : peers_) {
    if (pid == id || !IsVoter(peer.state) || !ListFresh(peer, now)) continue;
    if (std::binary_search(peer.suspects.begin(), peer.suspects.end(), id)) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> FailureDetector::DeclaredFailed(TimePoint now) const {
  std::vector<std::string> out;
  const int majority = MajorityOf(static_cast<int>(voters_.size()));
  for (const auto& [id, peer] : peers_) {
    if (static_cast<int>(VotersSuspecting(id, now).size()) >= majority) out.push_back(id);
  }
  return out;
}

std::string FailureDetector::Coordinator(TimePoint now) const {
  const std::vector<std::string> failed = DeclaredFailed(now);
  for (const std::string& id : voters_) {  // Sorted: the first one not failed.
    if (!std::binary_search(failed.begin(), failed.end(), id)) return id;
  }
  return "";
}

FailureDetector::Quorum FailureDetector::QuorumAt(TimePoint now) const {
  Quorum q;
  q.voters = static_cast<int>(voters_.size());
  q.majority = MajorityOf(q.voters);
  q.reachable = self_voter() ? 1 : 0;
  for (const auto& [id, peer] : peers_) {
    if (IsVoter(peer.state) && !SuspectsPeer(peer, now)) ++q.reachable;
  }
  return q;
}

FailureDetector::TimePoint FailureDetector::BelowMajoritySince(const Quorum& quorum,
                                                               TimePoint now) const {
  // Reachable voters are those whose last_heard + timeout is still ahead. Going back in
  // time (last-heard times only grow), the count was >= majority until the `needed`-th
  // latest expiry, where `needed` is how many peers the majority takes besides self. The
  // node has been cut off from a majority since the `needed`-th latest last-heard time
  // (that expiry minus the timeout): by the time reachable drops below the majority, it
  // has not heard from one for the failure timeout already, and it fences then, before
  // the majority can declare it failed (which takes the timeout plus the time the others'
  // suspicions need to reach their coordinator).
  const int needed = quorum.majority - (self_voter() ? 1 : 0);
  std::vector<TimePoint> expiries;
  for (const auto& [id, peer] : peers_) {
    if (IsVoter(peer.state)) expiries.push_back(peer.last_heard + failure_timeout_);
  }
  TimePoint since = view_since_;  // Not enough voter peers at all: since the view.
  if (needed >= 1 && static_cast<int>(expiries.size()) >= needed) {
    std::nth_element(expiries.begin(), expiries.begin() + (needed - 1), expiries.end(),
                     std::greater<>());
    since = std::max(since, expiries[needed - 1] - failure_timeout_);
  }
  return std::min(since, now);
}

FailureDetector::FenceStatus FailureDetector::UpdateFence(TimePoint now) {
  FenceStatus status;
  status.quorum = QuorumAt(now);
  const bool was_fenced = fenced_;
  const bool below = status.quorum.reachable < status.quorum.majority;
  if (!below) {
    below_since_.reset();
  } else if (!below_since_) {
    below_since_ = BelowMajoritySince(status.quorum, now);
  }
  if (below_since_) status.below_for = now - *below_since_;

  if (self_voter()) {
    if (!below) {
      fenced_ = false;
    } else if (status.below_for >= failure_timeout_) {
      fenced_ = true;
    }
  } else if (self_state_ == MemberState::kJoining) {
    fenced_ = false;  // Owns nothing.
  }
  // FAILED in or absent from the view: keep the state until the node rejoins.

  status.fenced = fenced_;
  status.changed = fenced_ != was_fenced;
  return status;
}

std::vector<PeerHealth> FailureDetector::Peers(TimePoint now) const {
  std::vector<PeerHealth> rows;
  rows.reserve(peers_.size());
  for (const auto& [id, peer] : peers_) {
    PeerHealth row;
    row.id = id;
    row.suspected = SuspectsPeer(peer, now);
    row.reachable = !row.suspected;
    row.last_heard_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(SilenceOf(id, now)).count());
    if (row.suspected) row.suspected_by.push_back(self_id_);
    for (const auto& [pid, other] : peers_) {
      if (pid == id || !ListFresh(other, now)) continue;
      if (std::binary_search(other.suspects.begin(), other.suspects.end(), id)) {
        row.suspected_by.push_back(pid);
      }
    }
    std::sort(row.suspected_by.begin(), row.suspected_by.end());
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace ringcache::internal

// ReplWaiters: the write-concern waits of a node (Node::WaitForReplicas).
//
// A wait holds a WriteTicket (link id + sequence number per replica link that carries
// the write), the number k of replicas it needs and a deadline. It completes, calling
// done(acked) exactly once, as soon as one of these holds:
//  - k of its links have acknowledged its sequence number (acked = k);
//  - k can no longer be reached because links it counted on were removed (acked < k);
//  - its deadline passed (ExpireDue; acked = what had acked by then);
//  - CompleteAll() (shutdown).
// A wait that can decide at once (already acked, k = 0, fewer than k live links)
// completes inside Wait(), on the caller's thread.
//
// Acks are cumulative per link: OnAck(link, s) acknowledges every seq <= s of that link.
// The links report here only acks that mean "the replica has this write" (see
// ReplLink: not during a full sync).
//
// Pure logic: no threads and no clock of its own (the caller passes `now`), so it is
// unit-tested directly (tests/unit/replication/).
//
// Thread safety: internal synchronization (mu_); every method may be called
// concurrently. `done` callbacks run after mu_ is released, on the thread of the call
// that completed them; they may call back into this object.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ringcache/node/node.h"
#include "ringcache/sync/mutex.h"

namespace ringcache::internal {

class ReplWaiters {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Done = std::function<void(uint32_t acked)>;

  // A link that may acknowledge (created by the store). Acks of unknown links are ignored,
  // and a ticket's unknown links count as never acking.
  void AddLink(uint64_t link_id);
  // The link is gone (replica left the view, store shut down): its acks will never come.
  void RemoveLink(uint64_t link_id);
  // The link acknowledged every seq <= acked_seq. Lower values than before are ignored.
  void OnAck(uint64_t link_id, uint64_t acked_seq);
  // The link will never deliver seqs in [from, to) themselves (a full sync replaced them;
  // the replica's later ack covers their numbers but not necessarily their keys): waits on
  // them stop counting this link. Conservative: such a write is reported as not acked here.
  void Skip(uint64_t link_id, uint64_t from, uint64_t to);

  // Registers a wait (see the class comment).
  void Wait(const WriteTicket& ticket, uint32_t k, TimePoint deadline, Done done);

  // Completes the waits whose deadline is <= now. Returns the earliest deadline still
  // pending, or TimePoint::max() if none.
  TimePoint ExpireDue(TimePoint now);
  // Completes every pending wait with what has acked so far.
  void CompleteAll();

  size_t pending() const;
  // The highest acked seq reported for the link (0 if unknown).
  uint64_t acked(uint64_t link_id) const;

 private:
  struct Waiter {
    uint32_t k = 0;
    uint32_t acked = 0;
    uint32_t possible = 0;  // links of the ticket that have not acked yet but still may
    Done done;
    std::multimap<TimePoint, uint64_t>::iterator deadline_it;
    // Where this waiter sits in each link's pending map, to unlink it when it completes.
    std::vector<std::pair<uint64_t, std::multimap<uint64_t, uint64_t>::iterator>> pending_its;
  };
  struct LinkState {
    uint64_t acked = 0;
    std::multimap<uint64_t, uint64_t> pending;  // seq -> waiter id
  };
  using Ready = std::vector<std::pair<Done, uint32_t>>;

  // Removes waiter `id` from every index and moves its callback to `ready`.
  void CompleteLocked(uint64_t id, Ready* ready) RC_REQUIRES(mu_);
  static void Run(Ready* ready);

  mutable Mutex mu_;
  // Protected by mu_.
  uint64_t next_id_ RC_GUARDED_BY(mu_) = 1;
  std::unordered_map<uint64_t, Waiter> waiters_ RC_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, LinkState> links_ RC_GUARDED_BY(mu_);
  std::multimap<TimePoint, uint64_t> deadlines_ RC_GUARDED_BY(mu_);  // deadline -> waiter id
};

}  // namespace ringcache::internal

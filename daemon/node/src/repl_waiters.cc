#include "repl_waiters.h"

namespace ringcache::internal {

void ReplWaiters::AddLink(uint64_t link_id) {
  MutexLock lock(&mu_);
  links_.try_emplace(link_id);
}

void ReplWaiters::RemoveLink(uint64_t link_id) {
  Ready ready;
  {
    MutexLock lock(&mu_);
    auto it = links_.find(link_id);
    if (it == links_.end()) return;
    std::vector<uint64_t> hopeless;
    for (const auto& [seq, id] : it->second.pending) {
      Waiter& w = waiters_.at(id);
      --w.possible;
      if (w.acked + w.possible < w.k) hopeless.push_back(id);
    }
    // Unlink this link's entries before erasing the map they point into.
    for (auto& [id, w] : waiters_) {
      std::erase_if(w.pending_its, [&](const auto& p) { return p.first == link_id; });
    }
    links_.erase(it);
    for (uint64_t id : hopeless) CompleteLocked(id, &ready);
  }
  Run(&ready);
}

void ReplWaiters::Skip(uint64_t link_id, uint64_t from, uint64_t to) {
  Ready ready;
  {
    MutexLock lock(&mu_);
    auto it = links_.find(link_id);
    if (it == links_.end()) return;
    auto& pending = it->second.pending;
    std::vector<uint64_t> hopeless;
    for (auto p = pending.lower_bound(from); p != pending.end() && p->first < to;) {
      Waiter& w = waiters_.at(p->second);
      --w.possible;
      std::erase_if(w.pending_its,
                    [&](const auto& e) { return e.first == link_id && e.second == p; });
      if (w.acked + w.possible < w.k) hopeless.push_back(p->second);
      p = pending.erase(p);
    }
    for (uint64_t id : hopeless) CompleteLocked(id, &ready);
  }
  Run(&ready);
}

void ReplWaiters::OnAck(uint64_t link_id, uint64_t acked_seq) {
  Ready ready;
  {
    MutexLock lock(&mu_);
    auto it = links_.find(link_id);
    if (it == links_.end() || acked_seq <= it->second.acked) return;
    LinkState& link = it->second;
    link.acked = acked_seq;
    std::vector<uint64_t> satisfied;
    for (auto p = link.pending.begin(); p != link.pending.end() && p->first <= acked_seq;) {
      Waiter& w = waiters_.at(p->second);
      ++w.acked;
      --w.possible;
      // Iterators of different links' maps must not be compared: match the link first.
      std::erase_if(w.pending_its,
                    [&](const auto& e) { return e.first == link_id && e.second == p; });
      if (w.acked >= w.k) satisfied.push_back(p->second);
      p = link.pending.erase(p);
    }
    for (uint64_t id : satisfied) CompleteLocked(id, &ready);
  }
  Run(&ready);
}

void ReplWaiters::Wait(const WriteTicket& ticket, uint32_t k, TimePoint deadline, Done done) {
  uint32_t acked = 0;
  {
    MutexLock lock(&mu_);
    uint32_t possible = 0;
    for (const WriteTicket::Link& l : ticket.links) {
      auto it = links_.find(l.link_id);
      if (it == links_.end()) continue;
      if (it->second.acked >= l.seq) {
        ++acked;
      } else {
        ++possible;
      }
    }
    if (acked < k && acked + possible >= k) {
      const uint64_t id = next_id_++;
      Waiter& w = waiters_[id];
      w.k = k;
      w.acked = acked;
      w.possible = possible;
      w.done = std::move(done);
      w.deadline_it = deadlines_.emplace(deadline, id);
      for (const WriteTicket::Link& l : ticket.links) {
        auto it = links_.find(l.link_id);
        if (it == links_.end() || it->second.acked >= l.seq) continue;
        w.pending_its.emplace_back(l.link_id, it->second.pending.emplace(l.seq, id));
      }
      return;
    }
  }
  done(acked);  // Decided at once: outside the lock, on the caller's thread.
}

ReplWaiters::TimePoint ReplWaiters::ExpireDue(TimePoint now) {
  Ready ready;
  TimePoint next = TimePoint::max();
  {
    MutexLock lock(&mu_);
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      CompleteLocked(deadlines_.begin()->second, &ready);
    }
    if (!deadlines_.empty()) next = deadlines_.begin()->first;
  }
  Run(&ready);
  return next;
}

void ReplWaiters::CompleteAll() {
  Ready ready;
  {
    MutexLock lock(&mu_);
    while (!deadlines_.empty()) CompleteLocked(deadlines_.begin()->second, &ready);
  }
  Run(&ready);
}

size_t ReplWaiters::pending() const {
  MutexLock lock(&mu_);
  return waiters_.size();
}

uint64_t ReplWaiters::acked(uint64_t link_id) const {
  MutexLock lock(&mu_);
  auto it = links_.find(link_id);
  return it == links_.end() ? 0 : it->second.acked;
}

void ReplWaiters::CompleteLocked(uint64_t id, Ready* ready) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  Waiter& w = it->second;
  for (auto& [link_id, pit] : w.pending_its) links_.at(link_id).pending.erase(pit);
  deadlines_.erase(w.deadline_it);
  ready->emplace_back(std::move(w.done), w.acked);
  waiters_.erase(it);
}

void ReplWaiters::Run(Ready* ready) {
  for (auto& [done, acked] : *ready) done(acked);
}

}  // namespace ringcache::internal

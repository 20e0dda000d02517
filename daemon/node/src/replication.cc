// ReplicatedStore: writes with async primary -> replica replication (replication.h).
//
// Routing: `route` (the Topology and, per ring member, the link to it) is read by writes
// under their key's stripe, so a write routes by one view from its apply to its appends.
// OnTopology publishes a new route, then passes ReplStripes::Barrier(): after it no write
// still routes by the old one (which is then freed). Links whose ranges change get their
// new ranges only after the barrier: the full sync they then start copies every write
// that was routed by the old view.
//
// Transitions: the route also maps target-ring members to links, and a write of a key
// this node is the ring primary of goes to the key's target-ring owners too. Links the
// view drops move to `draining` and are stopped by the timer thread once drained (or
// after ack_timeout); the timer thread also reports transition readiness.
#include "replication.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "byte_size.h"
#include "repl_backlog.h"
#include "repl_link.h"
#include "repl_range_set.h"
#include "repl_receiver.h"
#include "repl_stripes.h"
#include "repl_waiters.h"

namespace ringcache::internal {
namespace {

// The timer thread's period when no write-concern deadline is nearer (ack timeouts are
// checked at this granularity).
constexpr std::chrono::milliseconds kTimerTick{50};
// Replication factor limit (NodeOptions::replication_factor).
constexpr size_t kMaxOwners = 16;
// How often the transition-ready report is repeated while the view stays in transition.
constexpr std::chrono::seconds kReadyRepeat{1};

std::string RandomHex() {
  std::random_device rd;
  const uint64_t v =
      (uint64_t{rd()} << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Adds (link, seq) to `ticket`, keeping the highest seq per link.
void AddToTicket(WriteTicket* ticket, uint64_t link_id, uint64_t seq) {
  for (WriteTicket::Link& l : ticket->links) {
    if (l.link_id == link_id) {
      l.seq = std::max(l.seq, seq);
      return;
    }
  }
  ticket->links.push_back({link_id, seq});
}

}  // namespace

struct ReplicatedStore::Impl {
  // What a write routes by. Immutable once published.
  struct Route {
    std::shared_ptr<const Topology> topology;
    std::vector<ReplLink*> by_member;  // ring member index -> the link to it, or nullptr
    // While the view is in transition: target ring member index -> the link to it, or
    // nullptr. Empty otherwise.
    std::vector<ReplLink*> by_target;
    std::vector<std::shared_ptr<ReplLink>> links;  // keeps the links above alive
  };
  // Ring owners and target-ring owners of a key, self excluded.
  using Links = std::array<ReplLink*, 2 * kMaxOwners>;

  // A link the view no longer needs, kept running until everything appended to it is
  // acknowledged (or until its deadline).
  struct Draining {
    std::shared_ptr<ReplLink> link;
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point deadline;
  };

  // An arc where this node is the primary on the ring: its ring owners (self first).
  struct PrimaryArc {
    uint32_t owners = 0;
    std::vector<std::string> replicas;
  };

  // The rebalancing of the current transition, as the source of moving ranges.
  struct Migration {
    struct Link {
      std::shared_ptr<ReplLink> link;
      std::string id;
      uint64_t ranges = 0;  // Moving ranges it carries.
      // The link's snapshot counters when the transition started.
      uint64_t base_keys = 0;
      uint64_t base_bytes = 0;
    };
    uint64_t epoch = 0;  // 0 = the view is not in transition.
    bool on_ring = false;
    std::chrono::steady_clock::time_point started;
    std::vector<Link> links;
    bool done_logged = false;
    bool reported = false;
    std::chrono::steady_clock::time_point last_report;
  };

  Impl(ReplicationOptions o, Cache* c, PeerPool* p)
      : options(std::move(o)),
        cache(c),
        peers(p),
        process_id(RandomHex()),
        // A full sync that arrives before its view waits for it at most half the ack
        // timeout (the sender's link gives up on unacknowledged messages after a whole one).
        receiver(std::make_unique<ReplReceiver>(
            options.self_id, c, &stripes, options.log, options.auth,
            std::min<std::chrono::milliseconds>(std::chrono::milliseconds(2000),
                                                options.ack_timeout / 2))) {}

  void Log(LogLevel level, const std::string& message) const {
    if (options.log) options.log(level, message);
  }

  // The links that replicate `hash`, if this node is its primary; returns how many.
  // *primary (if given) tells whether this node is the key's primary (also with no view
  // yet: a node alone).
  // REQUIRES: the stripe of `hash` held.
  size_t ReplicasLocked(uint64_t hash, Links* out, bool* primary = nullptr) const {
    const Route* r = route.load(std::memory_order_acquire);
    if (primary != nullptr) *primary = r == nullptr;
    if (r == nullptr || (r->links.empty() && primary == nullptr)) return 0;
    const Topology& t = *r->topology;
    std::array<uint32_t, kMaxOwners> owners;
    const size_t n = t.Owners(
        hash,
        std::span<uint32_t>(owners.data(), std::min<size_t>(t.replication_factor(), kMaxOwners)));
    if (n == 0 || static_cast<int>(owners[0]) != t.self) return 0;
    if (primary != nullptr) *primary = true;
    if (r->links.empty()) return 0;
    size_t k = 0;
    for (size_t i = 1; i < n; ++i) {
      ReplLink* link = r->by_member[owners[i]];
      if (link != nullptr) (*out)[k++] = link;
    }
    if (!r->by_target.empty()) {
      // In transition: the target ring's owners get the key too (one link per node).
      const size_t m = t.target_ring.Owners(
          hash,
          std::span<uint32_t>(owners.data(), std::min<size_t>(t.replication_factor(), kMaxOwners)));
      for (size_t i = 0; i < m; ++i) {
        ReplLink* link = r->by_target[owners[i]];
        if (link != nullptr &&
            std::find(out->begin(), out->begin() + k, link) == out->begin() + k) {
          (*out)[k++] = link;
        }
      }
    }
    return k;
  }

  // Appends `record` to `n` links and adds the seqs to `ticket` (if non-null).
  // REQUIRES: the record's key's stripe held.
  static void ShipLocked(const Links& links, size_t n, std::shared_ptr<const WriteRecord> record,
                         WriteTicket* ticket) {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t seq = links[i]->Append(record);
      if (ticket != nullptr) AddToTicket(ticket, links[i]->link_id(), seq);
    }
  }

  // A local write of `key`: under its stripe, `write(record)` runs the cache write (filling
  // *record when the key has replicas or the write is observed, else given nullptr) and
  // returns its result; on success the record goes to options.on_primary_write and is
  // shipped to every replica. One lookup per write: the cache fills the record inside the
  // write, so it cannot disagree with what was stored.
  template <typename Write>
  auto WriteOne(const HashedKey& key, WriteTicket* ticket, Write&& write) {
    const uint64_t hash = key.placement();
    std::lock_guard lock(stripes.For(hash));
    Links targets;
    bool primary = false;
    const bool observed = static_cast<bool>(options.on_primary_write);
    const size_t n = ReplicasLocked(hash, &targets, observed ? &primary : nullptr);
    if (n == 0 && !primary) return write(nullptr);
    auto record = std::make_shared<WriteRecord>();
    auto r = write(record.get());
    // A write that changed nothing (an Update that decided so) left no record: version 0.
    // Its write concern then waits for what the replicas were already sent (the key's
    // last write among it), so that an acked reply means they hold the state it read.
    if (r.ok() && record->version != 0) {
      if (primary) options.on_primary_write(*record);  // Under the stripe: in key order.
      ShipLocked(targets, n, std::move(record), ticket);
    } else if (r.ok() && ticket != nullptr) {
      for (size_t i = 0; i < n; ++i)
        AddToTicket(ticket, targets[i]->link_id(), targets[i]->LastSeq());
    }
    return r;
  }

  Result<uint64_t> SetOne(const HashedKey& key, std::string_view value, const SetOptions& o,
                          WriteTicket* ticket) {
    return WriteOne(key, ticket,
                    [&](WriteRecord* record) { return cache->Set(key, value, o, record); });
  }

  // A key the primary no longer holds (evicted) is NOT_FOUND and is not shipped: see
  // replication.md.
  Status DeleteOne(const HashedKey& key, WriteTicket* ticket) {
    return WriteOne(key, ticket, [&](WriteRecord* record) { return cache->Delete(key, record); });
  }

  // Routes by a new view (see the file comment). Links the view no longer needs start
  // draining (CheckDraining stops them).
  void ApplyTopology(std::shared_ptr<const Topology> topology);
  // Timer thread: stops drained links (and those past their deadline); returns them, to
  // be joined and removed from the waiters outside links_mu.
  std::vector<std::shared_ptr<ReplLink>> CheckDraining(std::chrono::steady_clock::time_point now);
  // Timer thread: the "migration done" log line and the transition-ready report.
  void CheckMigration(std::chrono::steady_clock::time_point now);
  void TimerLoop();

  // Constant after construction.
  const ReplicationOptions options;
  Cache* const cache;     // Not owned.
  PeerPool* const peers;  // Not owned.
  const std::string process_id;

  ReplStripes stripes;
  ReplWaiters waiters;
  std::unique_ptr<ReplReceiver> receiver;

  // Written under links_mu, then ReplStripes::Barrier(); read by writes under a stripe.
  std::atomic<const Route*> route{nullptr};

  mutable std::mutex links_mu;
  // Protected by links_mu.
  std::shared_ptr<const Route> route_owner;
  std::map<std::string, std::shared_ptr<ReplLink>> links;  // by replica id
  std::vector<std::shared_ptr<ReplLink>> retired;          // stopped, replaced, to be joined
  std::vector<Draining> draining;                          // running, not in `links`
  std::vector<PrimaryArc> primary_arcs;                    // of the current route
  Migration migration;
  std::function<void(uint64_t)> ready_fn;
  std::function<metrics::Histogram*(const std::string&)> resolve_histogram;
  uint64_t next_link_id = 1;
  bool shut_down = false;
  std::condition_variable drained_cv;  // With links_mu: `draining` became empty.

  std::mutex timer_mu;
  std::condition_variable timer_cv;
  // Protected by timer_mu.
  bool timer_stop = false;
  std::chrono::steady_clock::time_point timer_wake;
  std::thread timer;
};

void ReplicatedStore::Impl::ApplyTopology(std::shared_ptr<const Topology> topology) {
  const Topology& t = *topology;
  const uint32_t rf = t.replication_factor();
  // The ranges each replica gets from this node: the arcs where self is owner 0 on the
  // ring, to their other ring owners and (in transition) their target-ring owners. The
  // target owners not among the ring owners get "moving" ranges.
  std::map<std::string, std::vector<HashRange>> ranges_by_replica;
  std::map<std::string, std::vector<HashRange>> moving_by_replica;
  std::map<std::string, const ClusterMember*> member_by_id;
  std::vector<PrimaryArc> arcs;
  if (t.self >= 0) {
    for (const HashRing::Arc& arc : t.ring.Arcs(rf)) {
      if (arc.owners.empty() || static_cast<int>(arc.owners[0]) != t.self) continue;
      PrimaryArc pa{static_cast<uint32_t>(arc.owners.size()), {}};
      for (size_t i = 1; i < arc.owners.size(); ++i) {
        const ClusterMember* m = t.ring_members[arc.owners[i]];
        ranges_by_replica[m->id].push_back(arc.range);
        member_by_id[m->id] = m;
        pa.replicas.push_back(m->id);
      }
      arcs.push_back(std::move(pa));
    }
    if (t.view.in_transition()) {
      // The two rings' arcs have different boundaries: Diff splits the circle at both
      // and lists the pieces whose owner lists differ.
      for (const RingChange& c : HashRing::Diff(t.ring, t.target_ring, rf)) {
        if (c.old_owners.empty() || c.old_owners[0] != t.self_id) continue;
        for (const std::string& id : c.new_owners) {
          if (id == t.self_id ||
              std::find(c.old_owners.begin(), c.old_owners.end(), id) != c.old_owners.end()) {
            continue;
          }
          const ClusterMember* m = t.view.Find(id);
          if (m == nullptr) continue;  // Cannot happen: target members are view members.
          ranges_by_replica[id].push_back(c.range);
          moving_by_replica[id].push_back(c.range);
          member_by_id[id] = m;
        }
      }
    }
  }

  std::vector<std::string> failed;
  for (const ClusterMember& m : t.view.members) {
    if (m.state == MemberState::kFailed && m.id != t.self_id) failed.push_back(m.id);
  }
  std::vector<std::string> log_lines;
  {
    std::lock_guard lock(links_mu);
    if (shut_down) return;
    // Views arrive from the subscription and once from Node::Start (a view adopted before
    // the store subscribed): keep only newer ones, or another snapshot of the same epoch
    // (Membership settled a fork of that epoch in its favour).
    if (route_owner != nullptr &&
        (t.epoch() < route_owner->topology->epoch() || topology == route_owner->topology)) {
      return;
    }
    // Under links_mu (views apply in epoch order); the receiver's locks come after it.
    receiver->SetFailedPrimaries(failed, t.epoch());
    receiver->SetView(topology);
    // Before the route is published: every write this view routes here gets a version
    // above every version of an earlier epoch, written on any node (a lost write of a
    // failed primary, a delete this node never saw, a write racing a range's move). A
    // Node has raised it already, before Membership published the view (its gRPC front
    // end routes by that view at once); this covers a store driven without Membership.
    cache->RaiseVersionFloor(VersionFloor(t.epoch()));
    const auto now = std::chrono::steady_clock::now();
    auto next_route = std::make_shared<Route>();
    next_route->topology = topology;
    std::map<std::string, std::shared_ptr<ReplLink>> next_links;
    std::vector<std::shared_ptr<ReplLink>> created;
    std::vector<std::shared_ptr<ReplLink>> revived;  // Taken back from `draining`.
    for (const auto& [id, ranges] : ranges_by_replica) {
      std::shared_ptr<ReplLink> link;
      if (auto it = links.find(id); it != links.end()) {
        link = it->second;
      } else if (auto d = std::find_if(
                     draining.begin(), draining.end(),
                     [&id = id](const Draining& x) { return x.link->replica_id() == id; });
                 d != draining.end()) {
        std::shared_ptr<ReplLink> old = std::move(d->link);
        draining.erase(d);
        if (old->Revive()) {
          // Needed again before it drained, and still running: keep it (a second link to
          // the same replica would supersede this one's stream on the replica, and the
          // reverse).
          link = std::move(old);
          revived.push_back(link);
          log_lines.push_back("replication link to " + id + " kept in epoch " +
                              std::to_string(t.epoch()) + ": needed again while draining");
        } else {
          // It stopped while draining (its replica restarted empty): a stopped link never
          // runs again, so keeping it would leave the replica without a sync for good. The
          // timer thread joins it; a new link below takes over.
          retired.push_back(std::move(old));
          log_lines.push_back("replication link to " + id + " replaced in epoch " +
                              std::to_string(t.epoch()) +
                              ": needed again, but it had stopped while draining");
        }
      }
      if (link == nullptr) {
        const uint64_t link_id = next_link_id++;
        link = std::make_shared<ReplLink>(
            ReplLinkOptions{.self_id = options.self_id,
                            .replica_id = id,
                            .link_id = link_id,
                            .replication_id = process_id + "." + std::to_string(link_id),
                            .backlog_bytes = options.backlog_bytes,
                            .ack_timeout = options.ack_timeout,
                            .log = options.log},
            cache, peers, &waiters);
        waiters.AddLink(link_id);
        if (resolve_histogram) link->SetAckHistogram(resolve_histogram(id));
        created.push_back(link);
      }
      next_route->links.push_back(link);
      next_links[id] = link;
    }
    next_route->by_member.assign(t.ring_members.size(), nullptr);
    for (size_t i = 0; i < t.ring_members.size(); ++i) {
      if (auto it = next_links.find(t.ring_members[i]->id); it != next_links.end()) {
        next_route->by_member[i] = it->second.get();
      }
    }
    if (!moving_by_replica.empty()) {
      next_route->by_target.assign(t.target_ring_members.size(), nullptr);
      for (size_t i = 0; i < t.target_ring_members.size(); ++i) {
        if (auto it = next_links.find(t.target_ring_members[i]->id); it != next_links.end()) {
          next_route->by_target[i] = it->second.get();
        }
      }
    }
    std::vector<std::shared_ptr<ReplLink>> removed;
    for (const auto& [id, link] : links) {
      if (!next_links.contains(id)) removed.push_back(link);
    }

    std::shared_ptr<const Route> old = std::move(route_owner);
    route_owner = next_route;
    route.store(next_route.get(), std::memory_order_release);
    stripes.Barrier();
    old.reset();  // No write uses it any more.
    links = std::move(next_links);
    primary_arcs = std::move(arcs);

    // Rebalancing bookkeeping, before the links get their new ranges (and new links
    // start): the snapshot counters' baselines must precede the syncs this view causes.
    if (!t.view.in_transition()) {
      migration = Migration{};
    } else {
      Migration next;
      next.epoch = t.epoch();
      next.on_ring = t.self >= 0;
      // A transition that goes on in a newer epoch (another member joins meanwhile)
      // keeps its start and the counters of the links it keeps.
      next.started = migration.epoch != 0 ? migration.started : now;
      uint64_t total = 0;
      std::string per_link;
      for (const auto& [id, ranges] : moving_by_replica) {
        Migration::Link ml;
        ml.link = links.at(id);
        ml.id = id;
        ml.ranges = ReplRangeSet(ranges).ranges().size();
        const ReplLink::SyncStatus st = ml.link->Sync();
        ml.base_keys = st.snapshot_keys_sent;
        ml.base_bytes = st.snapshot_bytes_sent;
        for (const Migration::Link& prev : migration.links) {
          if (prev.link == ml.link) {
            ml.base_keys = prev.base_keys;
            ml.base_bytes = prev.base_bytes;
          }
        }
        total += ml.ranges;
        per_link +=
            (per_link.empty() ? "" : ", ") + id + " (" + std::to_string(ml.ranges) + " ranges)";
        next.links.push_back(std::move(ml));
      }
      migration = std::move(next);
      if (migration.on_ring) {
        log_lines.push_back("migration for epoch " + std::to_string(t.epoch()) + ": " +
                            (total == 0 ? std::string("no ranges move from this node")
                                        : std::to_string(total) + " ranges moving to " + per_link));
      }
    }

    for (const auto& [id, ranges] : ranges_by_replica) {
      ReplRangeSet set(ranges);
      const bool is_new = std::any_of(created.begin(), created.end(),
                                      [&id = id](const auto& l) { return l->replica_id() == id; });
      if (is_new) {
        log_lines.push_back("replication link to " + id + " (" +
                            member_by_id.at(id)->peer_address() + ") opened in epoch " +
                            std::to_string(t.epoch()) + ": " + std::to_string(set.ranges().size()) +
                            " ranges");
      }
      const std::shared_ptr<ReplLink>& link = links.at(id);
      // A revived link received no writes since it was removed: the replica lacks them.
      if (std::find(revived.begin(), revived.end(), link) != revived.end()) link->ForceFullSync();
      link->SetRoute(member_by_id.at(id)->peer_address(), std::move(set), t.epoch());
    }
    for (const auto& link : created) link->Start();
    // Removed links keep running until what was appended to them is acknowledged: the
    // barrier above guarantees nothing more is appended.
    for (const auto& link : removed) {
      const ReplicaLinkStats st = link->Stats();
      log_lines.push_back("replication link to " + link->replica_id() + " closing in epoch " +
                          std::to_string(t.epoch()) +
                          ": it no longer replicates keys of this node (draining " +
                          std::to_string(st.lag_ops) + " unacknowledged entries)");
      link->Retire();
      draining.push_back(Draining{link, now, now + options.ack_timeout});
    }
  }
  for (const std::string& line : log_lines) Log(LogLevel::kInfo, line);
}

std::vector<std::shared_ptr<ReplLink>> ReplicatedStore::Impl::CheckDraining(
    std::chrono::steady_clock::time_point now) {
  std::vector<std::shared_ptr<ReplLink>> done;
  std::vector<std::string> log_lines;
  {
    std::lock_guard lock(links_mu);
    for (auto it = draining.begin(); it != draining.end();) {
      const bool drained = it->link->Drained();
      // A link that stopped by itself (it would have needed a full sync) delivers nothing
      // more: close it now rather than at its deadline.
      const bool stopped = !drained && it->link->Stopped();
      if (!drained && !stopped && now < it->deadline) {
        ++it;
        continue;
      }
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - it->since).count();
      if (stopped) {
        log_lines.push_back("replication link to " + it->link->replica_id() + " closed after " +
                            std::to_string(ms) + " ms: it stopped while draining, " +
                            std::to_string(it->link->Stats().lag_ops) +
                            " entries unacknowledged (it would have needed a full sync)");
      } else if (drained) {
        log_lines.push_back("replication link to " + it->link->replica_id() +
                            " closed: drained in " + std::to_string(ms) + " ms");
      } else {
        log_lines.push_back("replication link to " + it->link->replica_id() +
                            " closed: " + std::to_string(it->link->Stats().lag_ops) +
                            " entries still unacknowledged after " + std::to_string(ms) +
                            " ms (ack timeout)");
      }
      done.push_back(std::move(it->link));
      it = draining.erase(it);
    }
    if (draining.empty()) drained_cv.notify_all();
  }
  for (const auto& link : done) link->Stop();  // Cancels a stream: not under links_mu.
  for (const std::string& line : log_lines) Log(LogLevel::kInfo, line);
  return done;
}

void ReplicatedStore::Impl::CheckMigration(std::chrono::steady_clock::time_point now) {
  std::function<void(uint64_t)> fn;
  uint64_t epoch = 0;
  std::string done_line;
  {
    std::lock_guard lock(links_mu);
    if (migration.epoch == 0 || !migration.on_ring) return;
    uint64_t keys = 0;
    uint64_t bytes = 0;
    bool all = true;
    for (const Migration::Link& ml : migration.links) {
      const ReplLink::SyncStatus st = ml.link->Sync();
      // In sync now, not merely once: a replica that restarted (or whose stream broke)
      // since its sync was acked may have lost what it got.
      all = all && st.in_sync;
      keys += st.snapshot_keys_sent - ml.base_keys;
      bytes += st.snapshot_bytes_sent - ml.base_bytes;
    }
    if (!all) return;
    if (!migration.done_logged) {
      migration.done_logged = true;
      if (!migration.links.empty()) {
        const double secs = std::chrono::duration<double>(now - migration.started).count();
        char buf[160];
        std::snprintf(buf, sizeof(buf), "%llu keys, %s in %.1f s (%.0f keys/s)",
                      static_cast<unsigned long long>(keys), FormatMib(bytes).c_str(), secs,
                      secs > 0 ? static_cast<double>(keys) / secs : 0.0);
        done_line =
            "migration for epoch " + std::to_string(migration.epoch) + " done on this node: " + buf;
      }
    }
    if (ready_fn && (!migration.reported || now - migration.last_report >= kReadyRepeat)) {
      migration.reported = true;
      migration.last_report = now;
      fn = ready_fn;
      epoch = migration.epoch;
    }
  }
  if (!done_line.empty()) Log(LogLevel::kInfo, done_line);
  if (fn) fn(epoch);
}

void ReplicatedStore::Impl::TimerLoop() {
  std::unique_lock lock(timer_mu);
  while (!timer_stop) {
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    const auto next_deadline = waiters.ExpireDue(now);
    std::vector<std::shared_ptr<ReplLink>> check;
    std::vector<std::shared_ptr<ReplLink>> finished;
    {
      std::lock_guard links_lock(links_mu);
      for (const auto& [id, link] : links) check.push_back(link);
      finished.swap(retired);
    }
    for (const auto& link : check) link->CheckTimeout(now);
    // Links a view replaced after they had stopped: joined, their waits ended.
    for (const auto& link : finished) {
      link->Join();
      waiters.RemoveLink(link->link_id());
    }
    finished.clear();
    // Drained links end their write-concern waits here (acked ones were counted).
    for (const auto& link : CheckDraining(now)) {
      link->Join();
      waiters.RemoveLink(link->link_id());
    }
    CheckMigration(now);
    lock.lock();
    timer_wake = std::min(next_deadline, std::chrono::steady_clock::now() + kTimerTick);
    // WaitForAcks may move timer_wake earlier (and notify): re-read it after every wake.
    while (!timer_stop && std::chrono::steady_clock::now() < timer_wake) {
      timer_cv.wait_until(lock, timer_wake);
    }
  }
}

ReplicatedStore::ReplicatedStore(ReplicationOptions options, Cache* cache, PeerPool* peers)
    : impl_(std::make_unique<Impl>(std::move(options), cache, peers)) {
  impl_->timer = std::thread([impl = impl_.get()] { impl->TimerLoop(); });
}

ReplicatedStore::~ReplicatedStore() { Shutdown(); }

grpc::Service* ReplicatedStore::service() { return impl_->receiver->service(); }

void ReplicatedStore::OnTopology(std::shared_ptr<const Topology> topology) {
  if (topology == nullptr) return;
  impl_->ApplyTopology(std::move(topology));
}

void ReplicatedStore::SetTransitionReadyCallback(std::function<void(uint64_t epoch)> fn) {
  std::lock_guard lock(impl_->links_mu);
  impl_->ready_fn = std::move(fn);
}

MigrationProgress ReplicatedStore::Migration() const {
  Impl& m = *impl_;
  MigrationProgress p;
  const ReplReceiver::SnapshotTotals received = m.receiver->SnapshotReceived();
  p.keys_received = received.keys;
  p.bytes_received = received.bytes;
  // Outside links_mu (the cache takes its shard locks).
  const CacheStats cs = m.cache->Stats();
  const uint32_t shards = m.cache->shard_count();
  const uint64_t overhead = cs.items * Cache::EntryOverheadBytes();
  const double data_bytes =
      static_cast<double>(cs.bytes_used > overhead ? cs.bytes_used - overhead : 0);
  std::lock_guard lock(m.links_mu);
  p.epoch = m.migration.epoch;
  for (const Impl::Migration::Link& ml : m.migration.links) {
    const ReplLink::SyncStatus st = ml.link->Sync();
    p.ranges_total += ml.ranges;
    p.keys_sent += st.snapshot_keys_sent - ml.base_keys;
    p.bytes_sent += st.snapshot_bytes_sent - ml.base_bytes;
    if (st.ranges_synced) {
      p.ranges_done += ml.ranges;
      continue;
    }
    // The shards the sync has not copied yet, times the link's share of the circle.
    const uint32_t left = shards - std::min(shards, st.sync_running ? st.shards_copied : 0u);
    const double fraction = st.share * left / std::max<uint32_t>(shards, 1);
    p.keys_remaining += static_cast<uint64_t>(static_cast<double>(cs.items) * fraction);
    p.bytes_remaining += static_cast<uint64_t>(data_bytes * fraction);
  }
  return p;
}

uint64_t ReplicatedStore::UnderReplicatedRanges() const {
  Impl& m = *impl_;
  std::lock_guard lock(m.links_mu);
  if (m.route_owner == nullptr) return 0;
  const uint32_t rf = m.route_owner->topology->replication_factor();
  std::map<std::string, bool> in_sync;
  for (const auto& [id, link] : m.links) in_sync[id] = link->Sync().in_sync;
  uint64_t n = 0;
  for (const Impl::PrimaryArc& arc : m.primary_arcs) {
    bool under = arc.owners < rf;
    for (const std::string& id : arc.replicas) {
      auto it = in_sync.find(id);
      under = under || it == in_sync.end() || !it->second;
    }
    n += under ? 1 : 0;
  }
  return n;
}

void ReplicatedStore::ClearLocalData() {
  // Clear first: an entry applied between the two is only extra; the other way round, a
  // full sync started between them would be wiped by the clear.
  impl_->cache->Clear();
  impl_->receiver->Reset();
}

bool ReplicatedStore::WaitDrained(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  std::unique_lock lock(m.links_mu);
  return m.drained_cv.wait_for(lock, timeout, [&] { return m.draining.empty() || m.shut_down; }) &&
         m.draining.empty();
}

Result<uint64_t> ReplicatedStore::Set(const HashedKey& key, std::string_view value,
                                      const SetOptions& options, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  return impl_->SetOne(key, value, options, ticket);
}

Status ReplicatedStore::Delete(const HashedKey& key, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  return impl_->DeleteOne(key, ticket);
}

Status ReplicatedStore::Touch(const HashedKey& key, uint64_t ttl_ms, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  return impl_->WriteOne(
      key, ticket, [&](WriteRecord* record) { return impl_->cache->Touch(key, ttl_ms, record); });
}

Result<IncrResult> ReplicatedStore::Incr(const HashedKey& key, int64_t delta,
                                         uint64_t ttl_ms_if_created, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  // Results, not commands: the record is the new value and version (and the deadline).
  return impl_->WriteOne(key, ticket, [&](WriteRecord* record) {
    return impl_->cache->Incr(key, delta, ttl_ms_if_created, record);
  });
}

Result<UpdateResult> ReplicatedStore::Update(
    const HashedKey& key,
    const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
    WriteTicket* ticket, std::optional<ValueType> expected) {
  if (ticket != nullptr) ticket->links.clear();
  // Results, not commands: the record is what the update left (a set, a delete or a touch),
  // and none is shipped when it changed nothing.
  return impl_->WriteOne(key, ticket, [&](WriteRecord* record) {
    return impl_->cache->Update(key, fn, record, expected);
  });
}

std::vector<Result<uint64_t>> ReplicatedStore::MultiSet(std::span<const SetItem> items,
                                                        WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  std::vector<Result<uint64_t>> out;
  out.reserve(items.size());
  for (const SetItem& item : items) {
    out.push_back(impl_->SetOne(item.key, item.value, item.options, ticket));
  }
  return out;
}

std::vector<Status> ReplicatedStore::MultiDelete(std::span<const std::string_view> keys,
                                                 WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  std::vector<Status> out;
  out.reserve(keys.size());
  for (std::string_view key : keys) out.push_back(impl_->DeleteOne(key, ticket));
  return out;
}

void ReplicatedStore::WaitForAcks(const WriteTicket& ticket, uint32_t k,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(uint32_t acked)> done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  impl_->waiters.Wait(ticket, k, deadline, std::move(done));
  bool wake = false;
  {
    std::lock_guard lock(impl_->timer_mu);
    if (deadline < impl_->timer_wake) {
      impl_->timer_wake = deadline;
      wake = true;
    }
  }
  if (wake) impl_->timer_cv.notify_one();
}

std::vector<ReplicaLinkStats> ReplicatedStore::LinkStats() const {
  std::lock_guard lock(impl_->links_mu);
  std::vector<ReplicaLinkStats> out;
  out.reserve(impl_->links.size());
  for (const auto& [id, link] : impl_->links) out.push_back(link->Stats());
  return out;
}

void ReplicatedStore::SetAckLatencyHistograms(
    std::function<metrics::Histogram*(const std::string& replica_id)> resolve) {
  std::lock_guard lock(impl_->links_mu);
  impl_->resolve_histogram = std::move(resolve);
  for (const auto& [id, link] : impl_->links) {
    link->SetAckHistogram(impl_->resolve_histogram ? impl_->resolve_histogram(id) : nullptr);
  }
}

void ReplicatedStore::Shutdown() {
  Impl& m = *impl_;
  std::vector<std::shared_ptr<ReplLink>> all;
  {
    std::lock_guard lock(m.links_mu);
    if (m.shut_down) return;
    m.shut_down = true;
    std::shared_ptr<const Impl::Route> old = std::move(m.route_owner);
    m.route.store(nullptr, std::memory_order_release);
    m.stripes.Barrier();
    for (auto& [id, link] : m.links) all.push_back(link);
    all.insert(all.end(), m.retired.begin(), m.retired.end());
    for (auto& d : m.draining) all.push_back(d.link);
    m.links.clear();
    m.retired.clear();
    m.draining.clear();
    m.migration = Impl::Migration{};
    m.drained_cv.notify_all();
  }
  {
    std::lock_guard lock(m.timer_mu);
    m.timer_stop = true;
  }
  m.timer_cv.notify_all();
  if (m.timer.joinable()) m.timer.join();
  for (const auto& link : all) link->Stop();
  for (const auto& link : all) {
    link->Join();
    m.waiters.RemoveLink(link->link_id());
  }
  m.waiters.CompleteAll();
  m.receiver->Shutdown();
}

}  // namespace ringcache::internal

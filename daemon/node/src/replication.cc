// ReplicatedStore: writes with async primary -> replica replication (replication.h).
//
// Routing: `route` (the Topology and, per ring member, the link to it) is read by writes
// under their key's stripe, so a write routes by one view from its apply to its appends.
// OnTopology publishes a new route, then passes ReplStripes::Barrier(): after it no write
// still routes by the old one (which is then freed). Links whose ranges change get their
// new ranges only after the barrier: the full sync they then start copies every write
// that was routed by the old view.
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
    std::vector<std::shared_ptr<ReplLink>> links;  // keeps by_member's links alive
  };
  using Links = std::array<ReplLink*, kMaxOwners>;

  Impl(ReplicationOptions o, Cache* c, PeerPool* p)
      : options(std::move(o)),
        cache(c),
        peers(p),
        clock(options.clock != nullptr ? options.clock : Clock::System()),
        process_id(RandomHex()),
        receiver(std::make_unique<ReplReceiver>(options.self_id, c, &stripes, options.log)) {}

  void Log(LogLevel level, const std::string& message) const {
    if (options.log) options.log(level, message);
  }

  // The links that replicate `hash`, if this node is its primary; returns how many.
  // REQUIRES: the stripe of `hash` held.
  size_t ReplicasLocked(uint64_t hash, Links* out) const {
    const Route* r = route.load(std::memory_order_acquire);
    if (r == nullptr || r->links.empty()) return 0;
    const Topology& t = *r->topology;
    std::array<uint32_t, kMaxOwners> owners;
    const size_t n = t.Owners(
        hash,
        std::span<uint32_t>(owners.data(), std::min<size_t>(t.replication_factor(), kMaxOwners)));
    if (n == 0 || static_cast<int>(owners[0]) != t.self) return 0;
    size_t k = 0;
    for (size_t i = 1; i < n; ++i) {
      ReplLink* link = r->by_member[owners[i]];
      if (link != nullptr) (*out)[k++] = link;
    }
    return k;
  }

  // Appends `record` to `n` links and adds the seqs to `ticket` (if non-null).
  // REQUIRES: the record's key's stripe held.
  static void ShipLocked(const Links& links, size_t n, std::shared_ptr<const ReplRecord> record,
                         WriteTicket* ticket) {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t seq = links[i]->Append(record);
      if (ticket != nullptr) AddToTicket(ticket, links[i]->link_id(), seq);
    }
  }

  // The entry's absolute deadline and, if wanted, value after a local write at `version`.
  // Falls back to `fallback_deadline` if the entry is already gone (evicted, expired).
  int64_t ReadBack(std::string_view key, uint64_t version, int64_t fallback_deadline,
                   std::string* value) const {
    thread_local std::string scratch;
    std::string* out = value != nullptr ? value : &scratch;
    ItemMeta meta;
    if (cache->Get(key, out, &meta).ok() && meta.version == version) return meta.deadline_ms;
    return fallback_deadline;
  }

  Result<uint64_t> SetOne(std::string_view key, std::string_view value, const SetOptions& o,
                          WriteTicket* ticket) {
    const uint64_t hash = HashKey(key);
    std::lock_guard lock(stripes.For(hash));
    Links targets;
    const size_t n = ReplicasLocked(hash, &targets);
    Result<uint64_t> r = cache->Set(key, value, o);
    if (!r.ok() || n == 0) return r;
    int64_t deadline = 0;
    if (o.ttl_ms != 0) {
      deadline = ReadBack(key, *r, clock->NowMs() + static_cast<int64_t>(o.ttl_ms), nullptr);
    }
    ShipLocked(targets, n,
               std::make_shared<const ReplRecord>(ReplRecord{
                   ReplRecord::Kind::kSet, std::string(key), std::string(value), *r, deadline}),
               ticket);
    return r;
  }

  Status DeleteOne(std::string_view key, WriteTicket* ticket) {
    const uint64_t hash = HashKey(key);
    std::lock_guard lock(stripes.For(hash));
    Links targets;
    const size_t n = ReplicasLocked(hash, &targets);
    uint64_t version = 0;
    Status s = cache->Delete(key, &version);
    // A key the primary no longer holds (evicted) is not shipped: see replication.md.
    if (!s.ok() || n == 0) return s;
    ShipLocked(targets, n,
               std::make_shared<const ReplRecord>(
                   ReplRecord{ReplRecord::Kind::kDelete, std::string(key), {}, version, 0}),
               ticket);
    return s;
  }

  // Routes by a new view (see the file comment); returns the links it stopped, whose
  // write-concern waits the caller ends (outside links_mu: their callbacks run then).
  std::vector<std::shared_ptr<ReplLink>> ApplyTopology(std::shared_ptr<const Topology> topology);
  void TimerLoop();

  // Constant after construction.
  const ReplicationOptions options;
  Cache* const cache;     // Not owned.
  PeerPool* const peers;  // Not owned.
  Clock* const clock;     // Not owned.
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
  std::vector<std::shared_ptr<ReplLink>> retired;          // stopped, to be joined
  std::function<metrics::Histogram*(const std::string&)> resolve_histogram;
  uint64_t next_link_id = 1;
  bool shut_down = false;

  std::mutex timer_mu;
  std::condition_variable timer_cv;
  // Protected by timer_mu.
  bool timer_stop = false;
  std::chrono::steady_clock::time_point timer_wake;
  std::thread timer;
};

std::vector<std::shared_ptr<ReplLink>> ReplicatedStore::Impl::ApplyTopology(
    std::shared_ptr<const Topology> topology) {
  // The ranges each replica gets from this node: arcs where self is owner 0.
  std::map<std::string, std::vector<HashRange>> ranges_by_replica;
  std::map<std::string, std::pair<size_t, const ClusterMember*>> member_by_id;
  if (topology->self >= 0) {
    for (const HashRing::Arc& arc : topology->ring.Arcs(topology->replication_factor())) {
      if (arc.owners.empty() || static_cast<int>(arc.owners[0]) != topology->self) continue;
      for (size_t i = 1; i < arc.owners.size(); ++i) {
        const ClusterMember* m = topology->ring_members[arc.owners[i]];
        ranges_by_replica[m->id].push_back(arc.range);
        member_by_id[m->id] = {arc.owners[i], m};
      }
    }
  }

  std::lock_guard lock(links_mu);
  if (shut_down) return {};
  // Views arrive from the subscription and once from Node::Start (a view adopted before
  // the store subscribed): keep only newer ones.
  if (route_owner != nullptr && topology->epoch() <= route_owner->topology->epoch()) return {};
  auto next_route = std::make_shared<Route>();
  next_route->topology = topology;
  next_route->by_member.assign(topology->ring_members.size(), nullptr);
  std::map<std::string, std::shared_ptr<ReplLink>> next_links;
  std::vector<std::shared_ptr<ReplLink>> created;
  for (const auto& [id, ranges] : ranges_by_replica) {
    std::shared_ptr<ReplLink> link;
    if (auto it = links.find(id); it != links.end()) {
      link = it->second;
    } else {
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
    next_route->by_member[member_by_id.at(id).first] = link.get();
    next_route->links.push_back(link);
    next_links[id] = link;
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

  for (const auto& [id, ranges] : ranges_by_replica) {
    ReplRangeSet set(ranges);
    const bool is_new = std::any_of(created.begin(), created.end(),
                                    [&](const auto& l) { return l->replica_id() == id; });
    if (is_new) {
      Log(LogLevel::kInfo, "replication link to " + id + " (" +
                               member_by_id.at(id).second->address + ") opened in epoch " +
                               std::to_string(topology->epoch()) + ": " +
                               std::to_string(set.ranges().size()) + " ranges");
    }
    links.at(id)->SetRoute(member_by_id.at(id).second->address, std::move(set), topology->epoch());
  }
  for (const auto& link : created) link->Start();
  for (const auto& link : removed) {
    Log(LogLevel::kInfo, "replication link to " + link->replica_id() + " closed in epoch " +
                             std::to_string(topology->epoch()) +
                             ": it no longer replicates keys of this node");
    link->Stop();
    retired.push_back(link);
  }
  return removed;
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
    for (const auto& link : finished) link->Join();
    finished.clear();
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
  for (const auto& link : impl_->ApplyTopology(std::move(topology))) {
    impl_->waiters.RemoveLink(link->link_id());
  }
}

Result<uint64_t> ReplicatedStore::Set(std::string_view key, std::string_view value,
                                      const SetOptions& options, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  return impl_->SetOne(key, value, options, ticket);
}

Status ReplicatedStore::Delete(std::string_view key, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  return impl_->DeleteOne(key, ticket);
}

Status ReplicatedStore::Touch(std::string_view key, uint64_t ttl_ms, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  Impl& m = *impl_;
  const uint64_t hash = HashKey(key);
  std::lock_guard lock(m.stripes.For(hash));
  Impl::Links targets;
  const size_t n = m.ReplicasLocked(hash, &targets);
  Status s = m.cache->Touch(key, ttl_ms);
  if (!s.ok() || n == 0) return s;
  auto record = std::make_shared<ReplRecord>();
  ItemMeta meta;
  if (!m.cache->Get(key, &record->value, &meta).ok()) return s;  // Gone already (expired).
  record->kind = ReplRecord::Kind::kTouch;
  record->key = std::string(key);
  record->version = meta.version;
  record->expires_at_ms = meta.deadline_ms;
  Impl::ShipLocked(targets, n, std::move(record), ticket);
  return s;
}

Result<IncrResult> ReplicatedStore::Incr(std::string_view key, int64_t delta,
                                         uint64_t ttl_ms_if_created, WriteTicket* ticket) {
  if (ticket != nullptr) ticket->links.clear();
  Impl& m = *impl_;
  const uint64_t hash = HashKey(key);
  std::lock_guard lock(m.stripes.For(hash));
  Impl::Links targets;
  const size_t n = m.ReplicasLocked(hash, &targets);
  Result<IncrResult> r = m.cache->Incr(key, delta, ttl_ms_if_created);
  if (!r.ok() || n == 0) return r;
  // Results, not commands: ship the new value and version (and the entry's deadline).
  auto record = std::make_shared<ReplRecord>();
  record->kind = ReplRecord::Kind::kSet;
  record->key = std::string(key);
  record->version = r->version;
  record->expires_at_ms = m.ReadBack(key, r->version, 0, &record->value);
  if (record->value.empty()) record->value = std::to_string(r->value);
  Impl::ShipLocked(targets, n, std::move(record), ticket);
  return r;
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
    m.links.clear();
    m.retired.clear();
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

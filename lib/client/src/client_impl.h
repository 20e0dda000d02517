// Client::Impl and the helpers the client's calls share: private to the client's sources
// (client.cc: connecting, routing, retries and batches; key_calls.cc: the single-key calls).
//
// Threads: the caller's threads run the calls (blocking unary rpcs; batches start one
// async rpc per node part and wait for all of them); gRPC's callback threads complete
// batch parts and the hint-triggered Topology refresh; the TopologyWatcher's thread reads
// the WatchTopology stream.
//
// Locks (never nested, none held across an rpc):
//   Impl::mu          the current RoutingTable (a shared_ptr swapped on adoption)
//   Impl::refresh_mu  the one hint-triggered refresh in flight
//   ChannelPool, TopologyWatcher: their own
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <thread>
#include <utility>

#include "channel_pool.h"
#include "near_cache.h"
#include "ringcache/client/client.h"
#include "ringcache/key_hash.h"
#include "ringcache/proto/cluster_view.h"
#include "ringcache/proto/set_mode.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/sync/thread_annotations.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "routing_table.h"
#include "topology_watcher.h"

namespace ringcache::client {
namespace detail {

using internal::ChannelPool;
using internal::ChannelSecurity;
using internal::RoutingTable;
using internal::TopologyWatcher;
using ringcache::internal::Mutex;
using ringcache::internal::MutexLock;
using Deadline = std::chrono::system_clock::time_point;
using TablePtr = std::shared_ptr<const RoutingTable>;

// Request metadata: the client's view epoch; trailing metadata: the node's, if different.
constexpr char kEpochKey[] = "ringcache-epoch";
// Refreshes tried per retry (each on another node).
constexpr size_t kRefreshCandidates = 3;
// Pause between rounds of Connect() over the seeds.
constexpr std::chrono::milliseconds kConnectRetryPause{100};

inline Deadline Now() { return std::chrono::system_clock::now(); }

// Whether an operation may be repeated after a failure that may have applied it.
enum class RetryPolicy {
  kAlways,        // repeating it cannot change the outcome (reads, Touch, Set kAlways)
  kIfNotApplied,  // only if the node certainly did not run it (Incr, Delete, conditional Set)
};

inline RetryPolicy PolicyOf(SetMode mode) {
  return mode == SetMode::kAlways ? RetryPolicy::kAlways : RetryPolicy::kIfNotApplied;
}

// True if an UNAVAILABLE failure certainly did not run the operation: the connection was
// never made, or the node refused the call before running it.
inline bool CertainlyNotApplied(std::string_view message) {
  for (std::string_view marker :
       {"failed to connect", "Failed to connect", "Connection refused", "is not the primary",
        "is joining the cluster", "not executed", "DNS resolution failed"}) {
    if (message.find(marker) != std::string_view::npos) return true;
  }
  return false;
}

inline bool Retryable(const Status& s, RetryPolicy policy) {
  return s.code() == StatusCode::kUnavailable &&
         (policy == RetryPolicy::kAlways || CertainlyNotApplied(s.message()));
}

// A failed rpc as a Status. Transport-level failures name the node.
inline Status FromGrpc(const grpc::Status& s, const std::string& address) {
  if (s.ok()) return Status::Ok();
  const auto code = static_cast<StatusCode>(s.error_code());
  if (code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded) {
    return Status(code, "node " + address + ": " + s.error_message());
  }
  return Status(code, s.error_message());
}

inline Status FromOp(const v1::OpStatus& s) {
  if (s.code() == 0) return Status::Ok();
  return Status(static_cast<StatusCode>(s.code()), s.message());
}

inline v1::ReadPreference ToProto(ReadPreference p) {
  return p == ReadPreference::kAnyOwner ? v1::READ_PREFERENCE_ANY_OWNER
                                        : v1::READ_PREFERENCE_PRIMARY;
}

inline uint32_t WriteConcernTimeoutMs(const CallOptions& call) {
  const int64_t ms = call.write_concern_timeout.count();
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, std::numeric_limits<uint32_t>::max()));
}

// Sets the write concern fields every write request has.
template <typename Request>
void SetWriteConcern(Request* request, const CallOptions& call) {
  request->set_write_concern(call.write_concern);
  request->set_write_concern_timeout_ms(WriteConcernTimeoutMs(call));
}

inline void FillSet(v1::SetRequest* r, std::string_view key, std::string_view value,
                    const SetOptions& options) {
  r->set_key(key.data(), key.size());
  r->set_value(value.data(), value.size());
  r->set_ttl_ms(options.ttl_ms);
  r->set_mode(proto::ToProto(options.mode));
  r->set_expected_version(options.expected_version);
}

// Counts down to zero; Wait() returns then. For the parts of a batch.
class Latch {
 public:
  explicit Latch(size_t n) : n_(n) {}
  void CountDown() {
    MutexLock lock(&mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<Mutex> lock(mu_);
    cv_.wait(lock, [this]() RC_NO_THREAD_SAFETY_ANALYSIS { return n_ == 0; });
  }

 private:
  Mutex mu_;
  std::condition_variable_any cv_;
  size_t n_ RC_GUARDED_BY(mu_);
};

// Receives a subscription's stream as it is read (the near cache's feed), instead of a
// queue for Subscription::Next. Called on the subscription's reader thread, in stream
// order, under its lock: must not call into the subscription.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // A stream (the first or a reopened one) is in place on a node.
  virtual void Started(const v1::SubscribeStarted& started) = 0;
  // A message or a gap.
  virtual void Event(PubSubEvent event) = 0;
  // The stream ended (the subscription may open another).
  virtual void Broken() = 0;
};

}  // namespace detail

using namespace detail;  // NOLINT: the helpers above, in this private header only

struct Client::Impl {
  Impl(Options o, ChannelSecurity security) : options(std::move(o)), pool(std::move(security)) {}

  ~Impl() {
    // The near cache's feed reads the view and refreshes it: first.
    if (near_feed != nullptr) near_feed->Close();
    // The watcher and the refresh callback call Adopt(): stop them while all is alive.
    if (watcher != nullptr) watcher->Stop();
    {
      MutexLock lock(&refresh_mu);
      closing = true;
      if (refresh_in_flight != nullptr) refresh_in_flight->context.TryCancel();
    }
    std::unique_lock<Mutex> lock(refresh_mu);
    refresh_cv.wait(lock, [this]() RC_NO_THREAD_SAFETY_ANALYSIS { return refresh_callbacks == 0; });
  }

  // ---- the view -------------------------------------------------------------------------

  TablePtr Current() const {
    MutexLock lock(&mu);
    return current_table;
  }

  uint64_t CurrentEpoch() const {
    TablePtr t = Current();
    return t != nullptr ? t->epoch() : 0;
  }

  void Log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // Takes `in` if it is valid and newer than the current view. Returns its status.
  Status Adopt(const v1::ClusterView& in, const std::string& from) {
    if (in.epoch() == 0) {
      return Status::Unavailable("node " + from + " holds no cluster view yet");
    }
    Result<ClusterView> view = proto::FromProto(in);
    if (!view.ok()) {
      Log("ignoring an invalid view from " + from + ": " + view.status().ToString());
      return view.status();
    }
    if (view->epoch <= CurrentEpoch()) return Status::Ok();
    Result<TablePtr> built = RoutingTable::Build(std::move(view).value());
    if (!built.ok()) {
      Log("ignoring a view from " + from + ": " + built.status().ToString());
      return built.status();
    }
    TablePtr fresh = std::move(built).value();
    {
      MutexLock lock(&mu);
      if (current_table != nullptr && current_table->epoch() >= fresh->epoch()) return Status::Ok();
      current_table = fresh;
    }
    views_adopted.fetch_add(1, std::memory_order_relaxed);
    std::string members;
    for (const ClusterMember& m : fresh->view().members) {
      if (!members.empty()) members += ",";
      members += m.id + "@" + m.address;
      if (m.state != MemberState::kServing)
        members += "(" + std::string(MemberStateName(m.state)) + ")";
    }
    Log("adopted view epoch " + std::to_string(fresh->epoch()) + " from " + from + ": " + members);
    std::vector<std::string> keep = fresh->addresses();
    keep.insert(keep.end(), options.seeds.begin(), options.seeds.end());
    pool.Retain(keep);
    return Status::Ok();
  }

  // Nodes to ask for the view: the current members, then the seeds (no duplicates).
  std::vector<std::string> Candidates() const {
    std::vector<std::string> out;
    if (TablePtr t = Current(); t != nullptr) out = t->addresses();
    for (const std::string& seed : options.seeds) {
      if (std::find(out.begin(), out.end(), seed) == out.end()) out.push_back(seed);
    }
    return out;
  }

  // One blocking Topology call on `address`; adopts the answer if newer.
  Status FetchTopology(const std::string& address, Deadline deadline) {
    grpc::ClientContext context;
    context.set_deadline(deadline);
    v1::ClusterView response;
    topology_fetches.fetch_add(1, std::memory_order_relaxed);
    const grpc::Status s = pool.Stub(address)->Topology(&context, v1::TopologyRequest(), &response);
    if (!s.ok()) return FromGrpc(s, address);
    return Adopt(response, address);
  }

  // Refreshes the view from up to kRefreshCandidates nodes other than `avoid` (a node
  // that just failed), round-robin; stops at the first answer.
  Status RefreshSync(const std::string& avoid, Deadline deadline) {
    std::vector<std::string> candidates = Candidates();
    if (candidates.size() > 1) std::erase(candidates, avoid);
    if (candidates.empty()) return Status::Unavailable("no node to ask for the cluster view");
    const size_t start = refresh_rr.fetch_add(1, std::memory_order_relaxed);
    Status last;
    for (size_t i = 0; i < std::min(kRefreshCandidates, candidates.size()); ++i) {
      if (Now() >= deadline) break;
      last = FetchTopology(candidates[(start + i) % candidates.size()], deadline);
      if (last.ok()) return last;
    }
    return last;
  }

  // A reply carried the node's epoch: if it is newer than ours, refresh from that node
  // in the background (the reply itself is valid: the node routed the call by its view).
  void NoteEpochTrailer(const grpc::ClientContext& context, const std::string& address) {
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find(kEpochKey);
    if (it == trailers.end()) return;
    uint64_t epoch = 0;
    const char* begin = it->second.data();
    const char* end = begin + it->second.size();
    if (auto [p, ec] = std::from_chars(begin, end, epoch); ec != std::errc() || p != end) return;
    if (epoch <= CurrentEpoch()) return;
    epoch_hints.fetch_add(1, std::memory_order_relaxed);
    StartAsyncRefresh(address);
  }

  // At most one in flight: hints come in bursts (every reply of a stale client has one).
  struct AsyncRefresh {
    grpc::ClientContext context;
    v1::ClusterView response;
    std::string address;
    std::shared_ptr<v1::Cache::Stub> stub;
  };

  void StartAsyncRefresh(const std::string& address) {
    auto* r = new AsyncRefresh;
    {
      MutexLock lock(&refresh_mu);
      if (closing || refresh_in_flight != nullptr) {
        delete r;
        return;
      }
      refresh_in_flight = r;
      ++refresh_callbacks;
    }
    r->address = address;
    r->stub = pool.Stub(address);
    r->context.set_deadline(Now() + options.timeout);
    topology_fetches.fetch_add(1, std::memory_order_relaxed);
    static const v1::TopologyRequest kRequest;
    r->stub->async()->Topology(
        &r->context, &kRequest, &r->response, [this, r](const grpc::Status& s) {
          if (s.ok()) (void)Adopt(r->response, r->address);
          {
            MutexLock lock(&refresh_mu);
            refresh_in_flight = nullptr;  // From here on ~Impl does not touch r.
          }
          delete r;
          MutexLock lock(&refresh_mu);
          --refresh_callbacks;
          refresh_cv.notify_all();  // Under the lock: ~Impl cannot finish before we are done.
        });
  }

  // ---- calls ------------------------------------------------------------------------------

  Deadline DeadlineOf(const CallOptions& call) const {
    return Now() + (call.timeout.count() > 0 ? call.timeout : options.timeout);
  }

  // Sleeps before retry `attempt` (>= 1), within the deadline. False if no time is left.
  bool Backoff(uint32_t attempt, Deadline deadline) const {
    const auto pause = options.retry_backoff * (1 << std::min<uint32_t>(attempt - 1, 4));
    const auto now = Now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::system_clock::duration>(pause, deadline - now));
    return Now() < deadline;
  }

  // The node to send key `hash` to, or "" if the view has no owner for it. `spread`
  // chooses among the owners for kAnyOwner (a retry moves on to the next owner).
  static std::string PickTarget(const RoutingTable& table, uint64_t hash, ReadPreference pref,
                                size_t spread) {
    const std::vector<uint32_t> owners = table.Owners(hash);
    if (owners.empty()) return "";
    const size_t i = pref == ReadPreference::kAnyOwner ? spread % owners.size() : 0;
    return table.address(owners[i]);
  }

  static Status NoOwner(const RoutingTable& table) {
    return Status::Unavailable("the cluster view (epoch " + std::to_string(table.epoch()) +
                               ") has no serving member to route to");
  }

  void PrepareContext(grpc::ClientContext* context, Deadline deadline, uint64_t epoch) const {
    context->set_deadline(deadline);
    context->AddMetadata(kEpochKey, std::to_string(epoch));
  }

  // A write of one key: `method` of the stub with `request`, to the key's primary.
  template <typename Request, typename Response>
  Status CallWrite(std::string_view key, RetryPolicy policy, const CallOptions& call,
                   const Request& request, Response* response,
                   grpc::Status (v1::Cache::Stub::*method)(grpc::ClientContext*, const Request&,
                                                           Response*)) {
    Status s = CallKey(key, ReadPreference::kPrimary, policy, call, response,
                       [&](v1::Cache::Stub& stub, grpc::ClientContext* context, Response* out) {
                         return (stub.*method)(context, request, out);
                       });
    // Whatever the outcome (it may have been applied): this client reads its own writes.
    if (near != nullptr) near->Invalidate(key);
    return s;
  }

  // One single-key rpc, routed and retried. `rpc(stub, context, response)` makes the call.
  template <typename Response, typename Rpc>
  Status CallKey(std::string_view key, ReadPreference pref, RetryPolicy policy,
                 const CallOptions& call, Response* response, const Rpc& rpc) {
    const Deadline deadline = DeadlineOf(call);
    const uint64_t hash = HashKey(key);
    const size_t spread = spread_rr.fetch_add(1, std::memory_order_relaxed);
    Status last;
    std::string failed;
    for (uint32_t attempt = 0; attempt < options.max_attempts; ++attempt) {
      if (attempt > 0) {
        if (!Backoff(attempt, deadline)) break;
        (void)RefreshSync(failed, deadline);
        retries.fetch_add(1, std::memory_order_relaxed);
      }
      const TablePtr table = Current();
      const std::string address = PickTarget(*table, hash, pref, spread + attempt);
      if (address.empty()) {
        last = NoOwner(*table);
        continue;
      }
      grpc::ClientContext context;
      PrepareContext(&context, deadline, table->epoch());
      rpcs.fetch_add(1, std::memory_order_relaxed);
      const grpc::Status s = rpc(*pool.Stub(address), &context, response);
      NoteEpochTrailer(context, address);
      if (s.ok()) return Status::Ok();
      last = FromGrpc(s, address);
      if (!Retryable(last, policy)) return last;
      failed = address;
    }
    return last;
  }

  // Runs a batch: routes every pending item by the current view, sends one async rpc per
  // (node, chunk) in parallel, waits for all, and hands each item's outcome to `op`;
  // retryable failures go again next round (after a view refresh). `Op` provides:
  //   using Request, Response;
  //   std::string_view Key(size_t i); uint64_t Bytes(size_t i); RetryPolicy Policy(size_t i);
  //   void Prepare(Request*);               request-level fields
  //   void Add(Request*, size_t i);         appends item i
  //   void Start(v1::Cache::StubInterface::async_interface*, grpc::ClientContext*, const Request*,
  //   Response*,
  //              std::function<void(grpc::Status)>);
  //   int Count(const Response&);           results in the response
  //   Status ItemStatus(const Response&, int j);
  //   void Accept(size_t i, const Response&, int j);   item i succeeded as result j
  //   void Fail(size_t i, Status);
  template <typename Op>
  void RunBatch(Op& op, size_t n, ReadPreference pref, const CallOptions& call) {
    using Request = typename Op::Request;
    using Response = typename Op::Response;
    struct Part {
      std::string address;
      std::shared_ptr<v1::Cache::Stub> stub;  // Keeps the channel for the async call.
      std::vector<size_t> items;
      grpc::ClientContext context;
      Request request;
      Response response;
      grpc::Status status;
    };
    if (n == 0) return;
    const Deadline deadline = DeadlineOf(call);
    const size_t spread = spread_rr.fetch_add(n, std::memory_order_relaxed);
    std::vector<size_t> pending(n);
    std::iota(pending.begin(), pending.end(), size_t{0});
    std::vector<Status> last(n);
    std::string failed;
    for (uint32_t attempt = 0; attempt < options.max_attempts && !pending.empty(); ++attempt) {
      if (attempt > 0) {
        if (!Backoff(attempt, deadline)) break;
        (void)RefreshSync(failed, deadline);
      }
      const TablePtr table = Current();
      std::map<std::string, std::vector<size_t>> groups;
      std::vector<size_t> retry;
      for (size_t i : pending) {
        std::string address = PickTarget(*table, HashKey(op.Key(i)), pref, spread + i + attempt);
        if (address.empty()) {
          last[i] = NoOwner(*table);
          retry.push_back(i);
        } else {
          groups[std::move(address)].push_back(i);
        }
      }
      // Split each node's items into chunks within the per-rpc limits.
      std::vector<std::unique_ptr<Part>> parts;
      for (auto& [address, items] : groups) {
        uint64_t bytes = 0;
        for (size_t i : items) {
          const uint64_t b = op.Bytes(i);
          if (parts.empty() || parts.back()->address != address ||
              parts.back()->items.size() >= options.max_batch_keys ||
              (!parts.back()->items.empty() && bytes + b > options.max_batch_bytes)) {
            parts.push_back(std::make_unique<Part>());
            parts.back()->address = address;
            bytes = 0;
          }
          parts.back()->items.push_back(i);
          bytes += b;
        }
      }
      Latch latch(parts.size());
      for (const std::unique_ptr<Part>& part : parts) {
        Part* p = part.get();
        PrepareContext(&p->context, deadline, table->epoch());
        op.Prepare(&p->request);
        for (size_t i : p->items) op.Add(&p->request, i);
        rpcs.fetch_add(1, std::memory_order_relaxed);
        if (attempt > 0) retries.fetch_add(1, std::memory_order_relaxed);
        p->stub = pool.Stub(p->address);
        op.Start(p->stub->async(), &p->context, &p->request, &p->response,
                 [p, &latch](const grpc::Status& s) {
                   p->status = s;
                   latch.CountDown();
                 });
      }
      latch.Wait();
      for (const std::unique_ptr<Part>& part : parts) {
        NoteEpochTrailer(part->context, part->address);
        if (!part->status.ok()) {
          const Status s = FromGrpc(part->status, part->address);
          for (size_t i : part->items) {
            if (Retryable(s, op.Policy(i))) {
              last[i] = s;
              retry.push_back(i);
            } else {
              op.Fail(i, s);
            }
          }
          failed = part->address;
          continue;
        }
        if (op.Count(part->response) != static_cast<int>(part->items.size())) {
          const Status s = Status::Internal(
              "node " + part->address + " answered " + std::to_string(op.Count(part->response)) +
              " results for " + std::to_string(part->items.size()) + " items");
          for (size_t i : part->items) op.Fail(i, s);
          continue;
        }
        for (size_t j = 0; j < part->items.size(); ++j) {
          const size_t i = part->items[j];
          Status s = op.ItemStatus(part->response, static_cast<int>(j));
          if (s.ok()) {
            op.Accept(i, part->response, static_cast<int>(j));
          } else if (Retryable(s, op.Policy(i))) {
            last[i] = std::move(s);
            retry.push_back(i);
          } else {
            op.Fail(i, std::move(s));
          }
        }
      }
      pending = std::move(retry);
    }
    for (size_t i : pending) {
      op.Fail(i, last[i].ok() ? Status(StatusCode::kDeadlineExceeded,
                                       "the call's deadline passed before this item was sent")
                              : last[i]);
    }
  }

  // A subscription (pubsub.cc): its events go to `observer` if given, else to its queue.
  Result<std::unique_ptr<Subscription>> OpenSubscription(SubscribeOptions subscribe,
                                                         StreamObserver* observer,
                                                         Deadline deadline);

  // Constant after construction.
  const Options options;
  ChannelPool pool;
  // Set by Connect() before the client is shared; stopped first by ~Impl.
  std::unique_ptr<TopologyWatcher> watcher;

  mutable Mutex mu;
  TablePtr current_table RC_GUARDED_BY(mu);

  Mutex refresh_mu;
  std::condition_variable_any refresh_cv;
  bool closing RC_GUARDED_BY(refresh_mu) = false;
  AsyncRefresh* refresh_in_flight RC_GUARDED_BY(refresh_mu) = nullptr;
  int refresh_callbacks RC_GUARDED_BY(refresh_mu) = 0;

  // Round-robin counters (any-owner reads, refresh candidates).
  std::atomic<size_t> spread_rr{0};
  std::atomic<size_t> refresh_rr{0};

  // The near cache (null without one) and what feeds it; set by Connect() before the
  // client is shared. The feed's subscription is closed first by ~Impl.
  std::unique_ptr<internal::NearCache> near;
  std::unique_ptr<StreamObserver> near_observer;
  std::unique_ptr<Subscription> near_feed;

  // ClientStats.
  std::atomic<uint64_t> rpcs{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> views_adopted{0};
  std::atomic<uint64_t> epoch_hints{0};
  std::atomic<uint64_t> topology_fetches{0};
};

}  // namespace ringcache::client

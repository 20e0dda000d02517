// Membership. Locks and their order (never taken the other way round):
//
//   adopt_mu_  serializes view changes: loading current_, building the next snapshot,
//              publishing it and notifying subscribers. Held across subscriber calls.
//   subs_mu_   the subscriber table; held while subscribers run (so Unsubscribe waits).
//   mu_        pushes, in-flight async calls, stopping_, self_address_. Never held while
//              calling into gRPC (a call's completion may run inline on the caller).
//
// adopt_mu_ -> subs_mu_, adopt_mu_ -> mu_. current_ is an atomic shared_ptr: readers (every
// routed operation) never take a lock.
#include "membership.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/server_callback.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "cluster_view_proto.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Push retries back off from kPushBackoffMin, doubling, to kPushBackoffMax.
constexpr auto kPushBackoffMin = std::chrono::milliseconds(50);
constexpr auto kPushBackoffMax = std::chrono::milliseconds(2000);
// Rounds over the seeds back off from kJoinBackoffMin, doubling, to kJoinBackoffMax.
constexpr auto kJoinBackoffMin = std::chrono::milliseconds(100);
constexpr auto kJoinBackoffMax = std::chrono::milliseconds(1000);

grpc::Status ToGrpc(const Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
}

std::string GrpcCodeName(grpc::StatusCode code) {
  return std::string(StatusCodeName(static_cast<StatusCode>(code)));
}

std::string JoinIds(const std::vector<ClusterMember>& members) {
  std::string out;
  for (const ClusterMember& m : members) {
    if (!out.empty()) out += ",";
    out += m.id;
  }
  return out;
}

std::string JoinStrings(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

// What changed from `before` (nullptr: nothing held) to `after`, for the log line:
// "n3 joined", "n2 moved from A to B", ...
std::string DescribeChange(const ClusterView* before, const ClusterView& after) {
  if (before == nullptr) return "";
  std::vector<std::string> changes;
  for (const ClusterMember& m : after.members) {
    const ClusterMember* old = before->Find(m.id);
    if (old == nullptr) {
      changes.push_back(m.id + " joined");
      continue;
    }
    if (old->address != m.address) {
      changes.push_back(m.id + " moved from " + old->address + " to " + m.address);
    }
    if (old->weight != m.weight) {
      changes.push_back(m.id + " weight " + std::to_string(old->weight) + " -> " +
                        std::to_string(m.weight));
    }
    if (old->state != m.state) {
      changes.push_back(m.id + " " + std::string(MemberStateName(old->state)) + " -> " +
                        std::string(MemberStateName(m.state)));
    }
  }
  for (const ClusterMember& m : before->members) {
    if (after.Find(m.id) == nullptr) changes.push_back(m.id + " left");
  }
  return JoinStrings(changes);
}

// The member that handles a join of `joiner_id`: the lowest id other than the joiner's
// (members are sorted by id). nullptr if the joiner is the only member.
const ClusterMember* CoordinatorFor(const ClusterView& view, std::string_view joiner_id) {
  for (const ClusterMember& m : view.members) {
    if (m.id != joiner_id) return &m;
  }
  return nullptr;
}

// An async client call this object started and must see completed before it is
// destroyed: a push, a forwarded join, a probe. Shared by the tracking table and the
// completion callback; TryCancel at shutdown.
struct AsyncCall {
  virtual ~AsyncCall() = default;
  grpc::ClientContext ctx;
};

struct PushCall final : AsyncCall {
  std::string member_id;
  uint64_t epoch = 0;
  std::shared_ptr<const v1::PushViewRequest> request;
  v1::PushViewResponse response;
};

struct ForwardJoinCall final : AsyncCall {
  v1::JoinRequest request;
};

struct ProbeCall final : AsyncCall {
  v1::JoinRequest join;  // The join waiting for the probe's answer.
  std::string old_address;
  v1::StatsRequest request;
  v1::StatsResponse response;
};

}  // namespace

struct Membership::Impl {
  Impl(MembershipOptions opts, PeerPool* pool) : options(std::move(opts)), peers(pool) {}

  // ---- The service (callback API). Handlers never block on another node.
  class Service final : public v1::Membership::CallbackService {
   public:
    explicit Service(Impl* impl) : impl_(impl) {}
    grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* request,
                                   v1::JoinResponse* response) override {
      return impl_->HandleJoin(ctx, *request, response);
    }
    grpc::ServerUnaryReactor* PushView(grpc::CallbackServerContext* ctx,
                                       const v1::PushViewRequest* request,
                                       v1::PushViewResponse* response) override {
      return impl_->HandlePushView(ctx, *request, response);
    }

   private:
    Impl* const impl_;  // Not owned.
  };

  // One member's pending push.
  struct Push {
    std::string address;
    uint64_t epoch = 0;  // Of `request`, the newest view to deliver.
    std::shared_ptr<const v1::PushViewRequest> request;
    bool in_flight = false;
    SteadyClock::time_point next_attempt;
    std::chrono::milliseconds backoff = kPushBackoffMin;
    int failures = 0;
  };

  void Log(LogLevel level, const std::string& message) const {
    if (options.log) options.log(level, message);
  }

  std::shared_ptr<const Topology> Current() const { return current.load(); }

  // ---- Views.

  // Adopts `view` if its epoch is higher than the current one. REQUIRES: adopt_mu held.
  // `why` ends the log line. Returns the snapshot now current (the new one, or the one that
  // was newer), or the error Topology::Make gave.
  Result<std::shared_ptr<const Topology>> AdoptLocked(ClusterView view, const std::string& why) {
    std::shared_ptr<const Topology> before = current.load();
    if (before != nullptr && view.epoch <= before->epoch()) return before;
    Result<std::shared_ptr<const Topology>> made = Topology::Make(std::move(view), options.self_id);
    if (!made.ok()) return made.status();
    std::shared_ptr<const Topology> topology = std::move(made).value();
    current.store(topology);

    std::string change = DescribeChange(before ? &before->view : nullptr, topology->view);
    if (!why.empty()) change = change.empty() ? why : change + "; " + why;
    Log(LogLevel::kInfo, "adopted view epoch " + std::to_string(topology->epoch()) + ": members " +
                             JoinIds(topology->view.members) +
                             (change.empty() ? "" : " (" + change + ")"));
    {
      std::lock_guard subs_lock(subs_mu);
      for (auto& [id, fn] : subscribers) fn(topology);
    }
    return topology;
  }

  Result<std::shared_ptr<const Topology>> Adopt(ClusterView view, const std::string& why) {
    std::lock_guard lock(adopt_mu);
    return AdoptLocked(std::move(view), why);
  }

  // True if `topology` holds this node at `address`.
  bool HoldsSelf(const Topology* topology, const std::string& address) const {
    if (topology == nullptr) return false;
    const ClusterMember* self = topology->view.Find(options.self_id);
    return self != nullptr && self->address == address;
  }

  // ---- Async call tracking.

  // Registers `call`; false if shutting down (then do not start it).
  bool Track(const std::shared_ptr<AsyncCall>& call) {
    std::lock_guard lock(mu);
    if (stopping) return false;
    in_flight.emplace(call.get(), call);
    return true;
  }

  // The last thing a completion does with this object.
  void Untrack(const AsyncCall* call) {
    std::lock_guard lock(mu);
    in_flight.erase(call);
    cv.notify_all();
  }

  // ---- Join (server side).

  grpc::ServerUnaryReactor* HandleJoin(grpc::CallbackServerContext* ctx,
                                       const v1::JoinRequest& request, v1::JoinResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const std::shared_ptr<const Topology> topology = Current();
    if (topology == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "node " + options.self_id + " is joining the cluster"));
      return reactor;
    }
    const v1::Member& joiner = request.member();
    if (Status s = CheckJoinRequest(request, topology->view); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    const ClusterMember* coordinator = CoordinatorFor(topology->view, joiner.id());
    if (coordinator != nullptr && coordinator->id != options.self_id) {
      if (request.forwarded()) {
        reactor->Finish(grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            "node " + options.self_id + " is not the coordinator in epoch " +
                std::to_string(topology->epoch()) + " (" + coordinator->id + " is); retry"));
        return reactor;
      }
      ForwardJoin(ctx, request, response, reactor, *coordinator);
      return reactor;
    }

    // This node coordinates the join.
    const ClusterMember* known = topology->view.Find(joiner.id());
    if (known != nullptr && known->address != joiner.address()) {
      // A known id at a new address: a restarted node, unless the old address still
      // answers as that id (two live nodes with one id). Ask it before replacing it.
      Probe(ctx, request, response, reactor, known->address);
      return reactor;
    }
    reactor->Finish(ApplyJoin(request, response, known != nullptr ? known->address : ""));
    return reactor;
  }

  // INVALID_ARGUMENT for a malformed request, FAILED_PRECONDITION if the joiner's settings
  // differ from the cluster's or its id is this node's.
  Status CheckJoinRequest(const v1::JoinRequest& request, const ClusterView& view) const {
    const v1::Member& joiner = request.member();
    if (joiner.id().empty()) return Status::InvalidArgument("JoinRequest.member.id is empty");
    if (joiner.address().empty()) {
      return Status::InvalidArgument("JoinRequest.member.address is empty (node " + joiner.id() +
                                     ")");
    }
    if (joiner.weight() == 0) {
      return Status::InvalidArgument("JoinRequest.member.weight must be >= 1 (node " + joiner.id() +
                                     ")");
    }
    if (request.replication_factor() != view.replication_factor) {
      return Status::FailedPrecondition(
          "node " + joiner.id() + " has replication factor " +
          std::to_string(request.replication_factor()) + " but the cluster has " +
          std::to_string(view.replication_factor) + " (start it with --replication-factor " +
          std::to_string(view.replication_factor) + ")");
    }
    if (request.vnodes_per_weight() != view.vnodes_per_weight) {
      return Status::FailedPrecondition(
          "node " + joiner.id() + " has " + std::to_string(request.vnodes_per_weight()) +
          " vnodes per weight but the cluster has " + std::to_string(view.vnodes_per_weight) +
          " (start it with --vnodes " + std::to_string(view.vnodes_per_weight) + ")");
    }
    if (joiner.id() == options.self_id) {
      const ClusterMember* self = view.Find(options.self_id);
      return Status::FailedPrecondition(
          "node id " + joiner.id() + " is already used by the live member at " +
          (self != nullptr ? self->address : "?") + " (each node needs its own --node-id)");
    }
    return Status::Ok();
  }

  // Sends the join to the coordinator (one hop) and relays its answer.
  void ForwardJoin(grpc::CallbackServerContext* ctx, const v1::JoinRequest& request,
                   v1::JoinResponse* response, grpc::ServerUnaryReactor* reactor,
                   const ClusterMember& coordinator) {
    auto call = std::make_shared<ForwardJoinCall>();
    call->request = request;
    call->request.set_forwarded(true);
    call->ctx.set_deadline(
        std::min(ctx->deadline(), std::chrono::system_clock::now() + options.call_timeout));
    if (!Track(call)) {
      reactor->Finish(ShuttingDown());
      return;
    }
    const std::string coordinator_id = coordinator.id;
    peers->MembershipStub(coordinator.address)
        ->async()
        ->Join(&call->ctx, &call->request, response,
               [this, call, reactor, coordinator_id](grpc::Status status) {
                 if (!status.ok() && status.error_code() != grpc::StatusCode::FAILED_PRECONDITION &&
                     status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
                   status = grpc::Status(status.error_code(),
                                         "coordinator " + coordinator_id +
                                             " did not answer the join: " + status.error_message() +
                                             "; retry");
                 }
                 reactor->Finish(status);
                 Untrack(call.get());
               });
  }

  // Asks the old address of a known id who it is; a live node with that id refuses the
  // join, anything else (no answer, another id) lets it replace the old address.
  void Probe(grpc::CallbackServerContext* ctx, const v1::JoinRequest& request,
             v1::JoinResponse* response, grpc::ServerUnaryReactor* reactor,
             const std::string& old_address) {
    auto call = std::make_shared<ProbeCall>();
    call->join = request;
    call->old_address = old_address;
    // Half the call timeout: the joiner's own call must outlive the probe.
    call->ctx.set_deadline(
        std::min(ctx->deadline(), std::chrono::system_clock::now() + options.call_timeout / 2));
    if (!Track(call)) {
      reactor->Finish(ShuttingDown());
      return;
    }
    peers->CacheStub(old_address)
        ->async()
        ->Stats(&call->ctx, &call->request, &call->response,
                [this, call, reactor, response](grpc::Status status) {
                  if (status.ok() && call->response.node_id() == call->join.member().id()) {
                    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                 "node id " + call->join.member().id() +
                                                     " is already used by the live member at " +
                                                     call->old_address +
                                                     " (each node needs its own --node-id)"));
                  } else {
                    reactor->Finish(ApplyJoin(call->join, response, call->old_address));
                  }
                  Untrack(call.get());
                });
  }

  // The coordinator's view change for a join: add the member, or update its address or
  // weight; nothing changes (and the epoch stays) if the view already holds it as asked.
  // `checked_address`: the joiner's address in the view when HandleJoin checked it ("" if
  // it was not a member). The view may have changed since (another join, a probe's
  // wait): if this node is no longer the coordinator, or the joiner's entry moved, the
  // checks no longer hold and the join is refused with UNAVAILABLE, to be retried.
  grpc::Status ApplyJoin(const v1::JoinRequest& request, v1::JoinResponse* response,
                         const std::string& checked_address) {
    std::shared_ptr<const Topology> adopted;
    {
      std::lock_guard lock(adopt_mu);
      const std::shared_ptr<const Topology> topology = current.load();
      const ClusterMember* coordinator = CoordinatorFor(topology->view, request.member().id());
      const ClusterMember* entry = topology->view.Find(request.member().id());
      if ((coordinator != nullptr && coordinator->id != options.self_id) ||
          (entry != nullptr ? entry->address : std::string()) != checked_address) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the view changed while node " + options.self_id +
                                " handled the join (now epoch " +
                                std::to_string(topology->epoch()) + "); retry");
      }
      ClusterView view = topology->view;
      ClusterMember joiner = FromProto(request.member());
      joiner.state = MemberState::kServing;
      auto it = std::find_if(view.members.begin(), view.members.end(),
                             [&](const ClusterMember& m) { return m.id == joiner.id; });
      if (it != view.members.end() && *it == joiner) {
        ToProto(view, response->mutable_view());
        return grpc::Status::OK;
      }
      if (it == view.members.end()) {
        view.members.push_back(joiner);
      } else {
        *it = joiner;
      }
      view.epoch = topology->epoch() + 1;
      view.Normalize();
      Result<std::shared_ptr<const Topology>> result =
          AdoptLocked(std::move(view), "as coordinator");
      if (!result.ok()) return ToGrpc(result.status());
      adopted = std::move(result).value();
      SchedulePushes(adopted->view);
    }
    ToProto(adopted->view, response->mutable_view());
    return grpc::Status::OK;
  }

  // ---- PushView (server side).

  grpc::ServerUnaryReactor* HandlePushView(grpc::CallbackServerContext* ctx,
                                           const v1::PushViewRequest& request,
                                           v1::PushViewResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Result<ClusterView> view = FromProto(request.view());
    if (!view.ok()) {
      reactor->Finish(ToGrpc(view.status()));
      return reactor;
    }
    // Not newer than ours: nothing to do; our epoch acknowledges it.
    if (const std::shared_ptr<const Topology> held = Current();
        held != nullptr && view->epoch <= held->epoch()) {
      response->set_epoch(held->epoch());
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    // A view for the node that had this address before (or a confused sender): refuse it
    // rather than adopt a view without this node.
    const ClusterMember* self = view->Find(options.self_id);
    std::string address;
    {
      std::lock_guard lock(mu);
      address = self_address;
    }
    if (self == nullptr || (!address.empty() && self->address != address)) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          "node " + options.self_id + " at " + address + " is not in the pushed view of epoch " +
              std::to_string(view->epoch) + " (from " + request.from_id() + ")"));
      return reactor;
    }
    Result<std::shared_ptr<const Topology>> adopted =
        Adopt(std::move(view).value(), "pushed by " + request.from_id());
    if (!adopted.ok()) {
      reactor->Finish(ToGrpc(adopted.status()));
      return reactor;
    }
    response->set_epoch((*adopted)->epoch());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // ---- Pushes (coordinator side).

  // Queues `view` for every member but this node. REQUIRES: adopt_mu held (so pushes are
  // queued in epoch order).
  void SchedulePushes(const ClusterView& view) {
    auto request = std::make_shared<v1::PushViewRequest>();
    ToProto(view, request->mutable_view());
    request->set_from_id(options.self_id);
    const auto now = SteadyClock::now();
    std::lock_guard lock(mu);
    if (stopping) return;
    // Members that left the view get no more pushes.
    for (auto it = pushes.begin(); it != pushes.end();) {
      it = view.Find(it->first) == nullptr ? pushes.erase(it) : std::next(it);
    }
    for (const ClusterMember& m : view.members) {
      if (m.id == options.self_id) continue;
      Push& push = pushes[m.id];
      push.address = m.address;
      push.epoch = view.epoch;
      push.request = request;
      push.next_attempt = now;
      push.backoff = kPushBackoffMin;
      push.failures = 0;
    }
    cv.notify_all();
  }

  // The pusher thread: starts the pushes that are due, one call per member at a time.
  void PusherLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      const auto now = SteadyClock::now();
      auto wake = now + std::chrono::seconds(60);
      std::vector<std::shared_ptr<PushCall>> due;
      std::vector<std::string> addresses;
      for (auto& [id, push] : pushes) {
        if (push.in_flight) continue;
        if (push.next_attempt > now) {
          wake = std::min(wake, push.next_attempt);
          continue;
        }
        auto call = std::make_shared<PushCall>();
        call->member_id = id;
        call->epoch = push.epoch;
        call->request = push.request;
        call->ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
        push.in_flight = true;
        in_flight.emplace(call.get(), call);
        due.push_back(std::move(call));
        addresses.push_back(push.address);
      }
      if (due.empty()) {
        cv.wait_until(lock, wake);
        continue;
      }
      lock.unlock();
      for (size_t i = 0; i < due.size(); ++i) StartPush(due[i], addresses[i]);
      lock.lock();
    }
  }

  void StartPush(const std::shared_ptr<PushCall>& call, const std::string& address) {
    peers->MembershipStub(address)->async()->PushView(
        &call->ctx, call->request.get(), &call->response,
        [this, call, address](const grpc::Status& status) { PushDone(*call, address, status); });
  }

  void PushDone(const PushCall& call, const std::string& address, const grpc::Status& status) {
    {
      std::lock_guard lock(mu);
      auto it = pushes.find(call.member_id);
      if (it != pushes.end()) {
        Push& push = it->second;
        push.in_flight = false;
        const bool acked = status.ok() && call.response.epoch() >= call.epoch;
        if (acked && push.epoch <= call.response.epoch()) {
          pushes.erase(it);
        } else if (acked) {
          push.next_attempt = SteadyClock::now();  // A newer view is waiting.
        } else {
          // Logged once per view and member, then every 10th failure, so that a dead
          // member (no failure detection yet) does not flood the log.
          if (push.failures++ % 10 == 0 && !stopping) {
            // Logged under mu: once the call leaves in_flight, *this may be gone.
            Log(LogLevel::kWarn,
                "cannot push view epoch " + std::to_string(call.epoch) + " to " + call.member_id +
                    " at " + address + " (attempt " + std::to_string(push.failures) + "): " +
                    (status.ok()
                         ? "it answered with epoch " + std::to_string(call.response.epoch())
                         : GrpcCodeName(status.error_code()) + ": " + status.error_message()) +
                    "; retrying");
          }
          push.next_attempt = SteadyClock::now() + push.backoff;
          push.backoff = std::min(push.backoff * 2, kPushBackoffMax);
        }
      }
      // The last thing done with *this (Shutdown waits for in_flight to empty).
      in_flight.erase(&call);
      cv.notify_all();
    }
  }

  static grpc::Status ShuttingDown() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node is shutting down");
  }

  // ---- Joining (client side).

  Status JoinOrBootstrap(const std::string& address) {
    {
      std::lock_guard lock(mu);
      self_address = address;
    }
    std::vector<std::string> seeds;
    for (const std::string& seed : options.seeds) {
      if (seed != address && std::find(seeds.begin(), seeds.end(), seed) == seeds.end()) {
        seeds.push_back(seed);
      }
    }
    const ClusterMember self{.id = options.self_id,
                             .address = address,
                             .weight = options.weight,
                             .state = MemberState::kServing};
    if (seeds.empty()) {
      Result<std::shared_ptr<const Topology>> adopted =
          Adopt(ClusterView{.epoch = 1,
                            .members = {self},
                            .replication_factor = options.replication_factor,
                            .vnodes_per_weight = options.vnodes_per_weight},
                "bootstrapped a new cluster");
      return adopted.status();
    }

    v1::JoinRequest request;
    ToProto(self, request.mutable_member());
    request.set_replication_factor(options.replication_factor);
    request.set_vnodes_per_weight(options.vnodes_per_weight);
    const auto started = SteadyClock::now();
    const auto deadline = started + options.join_timeout;
    auto backoff = kJoinBackoffMin;
    std::string last_error = "no seed tried";
    while (true) {
      for (const std::string& seed : seeds) {
        if (HoldsSelf(Current().get(), address)) return Status::Ok();  // Pushed meanwhile.
        const auto now = SteadyClock::now();
        if (now >= deadline || IsStopping()) break;
        // Room for a forward and a probe behind the seed.
        const auto timeout =
            std::min<SteadyClock::duration>(deadline - now, options.call_timeout * 2);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + timeout);
        v1::JoinResponse response;
        const grpc::Status status = peers->MembershipStub(seed)->Join(&ctx, request, &response);
        if (status.ok()) {
          Result<ClusterView> view = FromProto(response.view());
          if (!view.ok()) {
            last_error = seed + " answered with an invalid view: " + view.status().message();
            continue;
          }
          Result<std::shared_ptr<const Topology>> adopted =
              Adopt(std::move(view).value(), "joined through " + seed);
          if (!adopted.ok()) {
            last_error =
                seed + " answered with a view this node cannot use: " + adopted.status().message();
            continue;
          }
          if (HoldsSelf(adopted->get(), address)) return Status::Ok();
          last_error = seed + " answered with a view without this node at " + address;
          continue;
        }
        if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
            status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
          return Status::FailedPrecondition("the cluster refused node " + options.self_id +
                                            " (through seed " + seed +
                                            "): " + status.error_message());
        }
        const std::string error = GrpcCodeName(status.error_code()) + ": " + status.error_message();
        last_error = seed + ": " + error;
        Log(LogLevel::kWarn, "join through " + seed + " failed: " + error + "; retrying");
      }
      if (HoldsSelf(Current().get(), address)) return Status::Ok();
      const auto now = SteadyClock::now();
      if (now >= deadline || IsStopping()) break;
      std::unique_lock lock(mu);
      cv.wait_until(lock, std::min(deadline, now + backoff), [this] { return stopping; });
      backoff = std::min(backoff * 2, kJoinBackoffMax);
    }
    if (IsStopping()) return Status::Unavailable("node is shutting down; join abandoned");
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    return Status::Unavailable("could not join the cluster through seeds " + JoinStrings(seeds) +
                               " within " + std::to_string(waited.count()) + " ms (join timeout " +
                               std::to_string(options.join_timeout.count()) +
                               " ms); last error: " + last_error);
  }

  bool IsStopping() {
    std::lock_guard lock(mu);
    return stopping;
  }

  // ---- Shutdown.

  void Shutdown() {
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      stopping = true;
      pushes.clear();
      cv.notify_all();
    }
    if (pusher.joinable()) pusher.join();
    // No call starts from now on (Track refuses, the pusher is gone).
    std::vector<std::shared_ptr<AsyncCall>> calls;
    {
      std::lock_guard lock(mu);
      for (auto& [ptr, call] : in_flight) calls.push_back(call);
    }
    // Outside mu: a cancelled call's completion may run inline here.
    for (auto& call : calls) call->ctx.TryCancel();
    calls.clear();
    std::unique_lock lock(mu);
    cv.wait(lock, [this] { return in_flight.empty(); });
  }

  // Constant after construction.
  const MembershipOptions options;
  PeerPool* const peers;  // Not owned.
  Service service{this};

  // The published snapshot; written only under adopt_mu.
  std::atomic<std::shared_ptr<const Topology>> current;

  std::mutex adopt_mu;

  std::mutex subs_mu;
  // Protected by subs_mu.
  std::map<int, std::function<void(std::shared_ptr<const Topology>)>> subscribers;
  int next_subscriber = 1;

  std::mutex mu;
  std::condition_variable cv;
  // Protected by mu.
  bool stopping = false;
  std::string self_address;                      // Set by JoinOrBootstrap.
  std::unordered_map<std::string, Push> pushes;  // member id -> its pending push
  std::unordered_map<const AsyncCall*, std::shared_ptr<AsyncCall>> in_flight;

  std::thread pusher;  // Runs PusherLoop; joined by Shutdown.
};

Membership::Membership(MembershipOptions options, PeerPool* peers)
    : impl_(std::make_unique<Impl>(std::move(options), peers)) {
  impl_->pusher = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "rc-membership");
    impl->PusherLoop();
  });
}

Membership::~Membership() { Shutdown(); }

grpc::Service* Membership::service() { return &impl_->service; }

Status Membership::JoinOrBootstrap(const std::string& self_address) {
  return impl_->JoinOrBootstrap(self_address);
}

std::shared_ptr<const Topology> Membership::current() const { return impl_->Current(); }

int Membership::Subscribe(std::function<void(std::shared_ptr<const Topology>)> fn) {
  // Under adopt_mu: no view is being adopted, so "from now on" is exact against current().
  std::lock_guard adopt_lock(impl_->adopt_mu);
  std::lock_guard lock(impl_->subs_mu);
  const int id = impl_->next_subscriber++;
  impl_->subscribers.emplace(id, std::move(fn));
  return id;
}

void Membership::Unsubscribe(int id) {
  std::lock_guard lock(impl_->subs_mu);
  impl_->subscribers.erase(id);
}

void Membership::Shutdown() { impl_->Shutdown(); }

}  // namespace ringcache::internal

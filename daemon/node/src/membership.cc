// Membership. Locks and their order (never taken the other way round):
//
//   adopt_mu_  serializes view changes: loading current_, building the next snapshot,
//              publishing it and notifying subscribers. Held across subscriber calls.
//   subs_mu_   the subscriber table; held while subscribers run (so Unsubscribe waits).
//   mu_        pushes, in-flight async calls, stopping_, self_address_, the worker's
//              pending work (rejoin, transition-ready report, the leaving coordinator's
//              last wait), left_ and the hooks. Never held while calling into gRPC (a
//              call's completion may run inline on the caller) nor while calling a hook.
//
// adopt_mu_ -> subs_mu_, adopt_mu_ -> mu_. current_ is an atomic shared_ptr: readers (every
// routed operation) never take a lock. The coordinator's ready set (ready_epoch_, ready_)
// is protected by adopt_mu_: it belongs to the view it was collected for.
//
// Threads of this object: the pusher (starts pushes) and the worker (rejoins after this
// node was failed, sends transition-ready reports, waits for the leaving coordinator's last
// pushes). Both are joined by Shutdown.
#include "membership.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/server_callback.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "request_metadata.h"
#include "ringcache/proto/cluster_view.h"
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
// Transition-ready reports are retried from kReportBackoffMin, doubling, to
// kReportBackoffMax.
constexpr auto kReportBackoffMin = std::chrono::milliseconds(50);
constexpr auto kReportBackoffMax = std::chrono::milliseconds(1000);
// A rejoin (after this node was failed) retries with this backoff, doubling, up to
// kRejoinBackoffMax, until it succeeds or the node shuts down.
constexpr auto kRejoinBackoffMax = std::chrono::milliseconds(2000);
// How long a coordinator that removed itself (its leave completed) waits for its last
// pushes to be acknowledged before it counts as left.
constexpr auto kLeaveFinishWait = std::chrono::milliseconds(2000);

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

std::string EpochChange(uint64_t from, uint64_t to) {
  return "epoch " + std::to_string(from) + " -> " + std::to_string(to);
}

// What changed from `before` (nullptr: nothing held) to `after`, for the log line:
// "n3 joining", "n3 joined" (entered as SERVING), "n2 moved from A to B",
// "n4 joining -> serving", "n2 left", ...
std::string DescribeChange(const ClusterView* before, const ClusterView& after) {
  if (before == nullptr) return "";
  std::vector<std::string> changes;
  for (const ClusterMember& m : after.members) {
    const ClusterMember* old = before->Find(m.id);
    if (old == nullptr) {
      changes.push_back(m.id + (m.state == MemberState::kJoining ? " joining" : " joined"));
      continue;
    }
    if (old->address != m.address) {
      changes.push_back(m.id + " moved from " + old->address + " to " + m.address);
    }
    if (old->cluster_address != m.cluster_address) {
      changes.push_back(m.id + " cluster plane moved from " +
                        (old->cluster_address.empty() ? old->address : old->cluster_address) +
                        " to " + m.peer_address());
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

bool IsVoter(const ClusterMember& m) {
  return m.state == MemberState::kServing || m.state == MemberState::kLeaving;
}

// The member that handles a join of `joiner_id`: the lowest id other than the joiner's,
// skipping FAILED and JOINING members (members are sorted by id). nullptr if there is none
// (e.g. the joiner is the only voter).
const ClusterMember* CoordinatorFor(const ClusterView& view, std::string_view joiner_id) {
  for (const ClusterMember& m : view.members) {
    if (m.id == joiner_id || m.state == MemberState::kFailed || m.state == MemberState::kJoining) {
      continue;
    }
    return &m;
  }
  return nullptr;
}

// The coordinator of every other view change (failover, leave, transition): the voter with
// the lowest id whose id is not in `excluded`. nullptr if there is none.
const ClusterMember* VoterCoordinator(const ClusterView& view,
                                      const std::vector<std::string>& excluded = {}) {
  for (const ClusterMember& m : view.members) {
    if (IsVoter(m) && std::find(excluded.begin(), excluded.end(), m.id) == excluded.end()) {
      return &m;
    }
  }
  return nullptr;
}

// The next view of a completed transition: JOINING -> SERVING, LEAVING members removed,
// epoch + 1. `summary` gets "n4 joined; n2 left".
ClusterView FlipTransition(const ClusterView& view, std::string* summary) {
  ClusterView next = view;
  next.epoch = view.epoch + 1;
  std::vector<std::string> joined;
  std::vector<std::string> left;
  next.members.clear();
  for (const ClusterMember& m : view.members) {
    if (m.state == MemberState::kLeaving) {
      left.push_back(m.id);
      continue;
    }
    ClusterMember copy = m;
    if (m.state == MemberState::kJoining) {
      copy.state = MemberState::kServing;
      joined.push_back(m.id);
    }
    next.members.push_back(std::move(copy));
  }
  std::vector<std::string> parts;
  if (!joined.empty()) parts.push_back(JoinStrings(joined) + " joined");
  if (!left.empty()) parts.push_back(JoinStrings(left) + " left");
  *summary = "";
  for (const std::string& p : parts) *summary += (summary->empty() ? "" : "; ") + p;
  return next;
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

struct ForwardReadyCall final : AsyncCall {
  v1::TransitionReadyRequest request;
};

// A client's leave passed on to the coordinator by the leaving node.
struct ForwardLeaveCall final : AsyncCall {
  v1::LeaveRequest request;
  v1::LeaveResponse response;
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
    // `client_port`: the service on the client port of a node whose cluster plane has a
    // port of its own, where only an operator's Leave is served.
    Service(Impl* impl, bool client_port) : impl_(impl), client_port_(client_port) {}
    grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* request,
                                   v1::JoinResponse* response) override {
      if (client_port_) return ClusterPortOnly(ctx, "Membership.Join");
      // A joiner speaks for itself; a member passing a join on relays another's.
      const Claim claim =
          request->forwarded() ? Claim{} : Claim{"JoinRequest.member.id", request->member().id()};
      return MembersOnly(
          ctx, "Membership.Join", [&] { return impl_->HandleJoin(ctx, *request, response); },
          claim);
    }
    grpc::ServerUnaryReactor* PushView(grpc::CallbackServerContext* ctx,
                                       const v1::PushViewRequest* request,
                                       v1::PushViewResponse* response) override {
      if (client_port_) return ClusterPortOnly(ctx, "Membership.PushView");
      return MembersOnly(
          ctx, "Membership.PushView",
          [&] { return impl_->HandlePushView(ctx, *request, response); },
          Claim{"PushViewRequest.from_id", request->from_id()});
    }
    grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                        const v1::HeartbeatRequest* request,
                                        v1::HeartbeatResponse* response) override {
      if (client_port_) return ClusterPortOnly(ctx, "Membership.Heartbeat");
      return MembersOnly(
          ctx, "Membership.Heartbeat",
          [&] { return impl_->HandleHeartbeat(ctx, *request, response); },
          Claim{"HeartbeatRequest.from_id", request->from_id()});
    }
    grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* ctx,
                                    const v1::LeaveRequest* request,
                                    v1::LeaveResponse* response) override {
      // An operator's ringcache-cli may ask with an admin token instead of the secret.
      // A member asks only for its own leave (passed on to the coordinator, or to itself).
      return MembersOnly(
          ctx, "Membership.Leave", [&] { return impl_->HandleLeave(ctx, *request, response); },
          Claim{"LeaveRequest.node_id", request->node_id()}, /*admin_token_may=*/true);
    }
    grpc::ServerUnaryReactor* TransitionReady(grpc::CallbackServerContext* ctx,
                                              const v1::TransitionReadyRequest* request,
                                              v1::TransitionReadyResponse* response) override {
      if (client_port_) return ClusterPortOnly(ctx, "Membership.TransitionReady");
      const Claim claim = request->forwarded()
                              ? Claim{}
                              : Claim{"TransitionReadyRequest.from_id", request->from_id()};
      return MembersOnly(
          ctx, "Membership.TransitionReady",
          [&] { return impl_->HandleTransitionReady(ctx, *request, response); }, claim);
    }

   private:
    // A member's rpc on the client port: refused, naming the port to use.
    static grpc::ServerUnaryReactor* ClusterPortOnly(grpc::CallbackServerContext* ctx,
                                                     std::string_view what) {
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      reactor->Finish(grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          std::string(what) +
              " is served on the node's cluster port (--cluster-listen), not on its client "
              "port: give members the cluster addresses of the others as --seeds"));
      return reactor;
    }

    // Every rpc of this service is for members only (cluster_auth.h): a caller without the
    // cluster secret is refused before its request is looked at.
    // With `admin_token_may`, a call that carries a client token (authorization) is
    // checked as a client's instead, and needs the role admin. A member's call is then
    // held to its `claim` (with node identity: ClusterAuth::CheckClaim).
    struct Claim {
      std::string_view field;  // Empty: the call speaks for no one member.
      std::string_view id;
    };
    template <typename Handle>
    grpc::ServerUnaryReactor* MembersOnly(grpc::CallbackServerContext* ctx, std::string_view what,
                                          Handle handle, Claim claim,
                                          bool admin_token_may = false) {
      grpc::Status allowed;
      const RequestMetadata md = RequestMetadata::Read(ctx);
      if (admin_token_may && impl_->options.admin_token && !md.authorization.empty() &&
          md.cluster_secret.empty()) {
        allowed = impl_->options.admin_token(md.authorization, ctx, what);
      } else if (const ClusterAuth* auth = impl_->options.auth; auth != nullptr) {
        allowed = auth->Check(md.cluster_secret, ctx, what);
        if (allowed.ok() && !claim.field.empty()) {
          allowed = auth->CheckClaim(ctx, what, claim.field, claim.id);
        }
      }
      if (!allowed.ok()) {
        grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
        reactor->Finish(std::move(allowed));
        return reactor;
      }
      return handle();
    }

    Impl* const impl_;  // Not owned.
    const bool client_port_;
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

  // What AdoptLocked does with a view of the current epoch that differs from the current
  // one: keep ours (the rule), or take it (settling a fork, see ReceiveView).
  enum class SameEpoch { kKeep, kReplace };

  // Adopts `view` if its epoch is higher than the current one (or equal, as `same_epoch`
  // says). REQUIRES: adopt_mu held. `why` ends the log line. Returns the snapshot now
  // current (the new one, or the one that was newer), or the error Topology::Make gave.
  Result<std::shared_ptr<const Topology>> AdoptLocked(ClusterView view, const std::string& why,
                                                      SameEpoch same_epoch = SameEpoch::kKeep) {
    std::shared_ptr<const Topology> before = current.load();
    if (before != nullptr && view.epoch < before->epoch()) return before;
    if (before != nullptr && view.epoch == before->epoch()) {
      if (same_epoch == SameEpoch::kKeep) return before;
      view.Normalize();
      if (view == before->view) return before;
    }
    Result<std::shared_ptr<const Topology>> made = Topology::Make(std::move(view), options.self_id);
    if (!made.ok()) return made.status();
    std::shared_ptr<const Topology> topology = std::move(made).value();
    if (options.before_adopt) options.before_adopt(topology->epoch());
    current.store(topology);
    if (!topology->view.in_transition()) {
      transition_since.reset();
    } else {
      // The wait reported goes back to the transition's first view; the warning counts
      // from this epoch's (its ready reports start over with every epoch).
      if (!transition_since.has_value()) transition_since = SteadyClock::now();
      if (before == nullptr || before->epoch() != topology->epoch()) {
        transition_warned = SteadyClock::now();
      }
    }

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

  // True if `topology` holds this node at `address` (and at its cluster address), in any
  // state but FAILED. A view that holds it at an old cluster address (restarted with
  // another --cluster-listen port) does not count: the node joins again to correct it.
  bool HoldsSelf(const Topology* topology, const std::string& address) {
    if (topology == nullptr) return false;
    const ClusterMember* self = topology->view.Find(options.self_id);
    return self != nullptr && self->address == address &&
           self->cluster_address == SelfClusterAddress() && self->state != MemberState::kFailed;
  }

  std::string SelfClusterAddress() {
    std::lock_guard lock(mu);
    return self_cluster_address;
  }

  std::string SelfAddress() {
    std::lock_guard lock(mu);
    return self_address;
  }

  // ---- Views from other nodes (PushView, a heartbeat answer, a Leave answer).

  // Adopts `view` (from `from_id`, by `how`: "pushed by", "from a heartbeat of", ...) if it
  // is newer than ours and meant for this node: it holds this node at its address (in any
  // state; FAILED starts a rejoin), or it does not hold it and this node asked to leave
  // (it has then left). FAILED_PRECONDITION otherwise. `*epoch` gets the epoch held
  // afterwards. Runs the follow-ups (rejoin, left hook) after the view lock.
  // `kind` names the view in the refusal ("pushed", "offered", "leave").
  Status ReceiveView(ClusterView view, const std::string& why, const std::string& from_id,
                     const char* kind, uint64_t* epoch) {
    const std::string address = SelfAddress();
    bool failed = false;
    bool gone = false;
    bool missing = false;  // Settled a fork: the winning view does not hold this node.
    {
      std::lock_guard lock(adopt_mu);
      const std::shared_ptr<const Topology> held = current.load();
      if (held != nullptr && view.epoch == held->epoch()) {
        *epoch = held->epoch();
        view.Normalize();
        if (view == held->view) return Status::Ok();
        const Fork fork = SettleFork(*held, view, address);
        if (fork == Fork::kKeepOurs) {
          LogForkOnce(view, from_id);
          return Status::Ok();
        }
        missing = fork == Fork::kMissingThere;
        failed = !missing;
        Log(LogLevel::kWarn, "the view of epoch " + std::to_string(view.epoch) + " from " +
                                 from_id + " (members " + JoinIds(view.members) +
                                 ") differs from ours (" + JoinIds(held->view.members) + ") and " +
                                 (missing ? "does not hold this node" : "has it failed") +
                                 ": the cluster changed the view without this node; taking it");
        Result<std::shared_ptr<const Topology>> adopted =
            AdoptLocked(std::move(view), why, SameEpoch::kReplace);
        if (!adopted.ok()) return adopted.status();
      } else {
        // Older than ours: nothing to do; our epoch acknowledges it.
        if (held != nullptr && view.epoch < held->epoch()) {
          *epoch = held->epoch();
          return Status::Ok();
        }
        // A jump this large is a member's bug or a forged view: taking it would move the
        // cluster's epoch toward its end, and every view with a lower epoch would lose.
        if (held != nullptr && view.epoch - held->epoch() > options.max_epoch_jump) {
          const std::string message = std::string("the ") + kind + " view of epoch " +
                                      std::to_string(view.epoch) + " (from " + from_id +
                                      ") is more than " + std::to_string(options.max_epoch_jump) +
                                      " epochs above this node's " + std::to_string(held->epoch()) +
                                      " (--max-epoch-jump); refused";
          Log(LogLevel::kWarn, message);
          return Status::FailedPrecondition(message);
        }
        // A view for the node that had this address before (or a confused sender): refuse
        // it rather than adopt a view that does not hold this node.
        const ClusterMember* self = view.Find(options.self_id);
        // Out of the view after a leave: asked here, or LEAVING in the view we hold (the
        // leave was applied although its answer was lost).
        const bool leaving =
            leave_requested.load() || (held != nullptr && held->self_member != nullptr &&
                                       held->self_member->state == MemberState::kLeaving);
        if ((self == nullptr && !leaving) ||
            (self != nullptr && !address.empty() && self->address != address)) {
          return Status::FailedPrecondition("node " + options.self_id + " at " + address +
                                            " is not in the " + kind + " view of epoch " +
                                            std::to_string(view.epoch) + " (from " + from_id + ")");
        }
        // A newer view that still holds this node FAILED (while it rejoins) starts nothing
        // new.
        const bool was_failed = held != nullptr && held->self_member != nullptr &&
                                held->self_member->state == MemberState::kFailed;
        failed = self != nullptr && self->state == MemberState::kFailed && !was_failed;
        gone = self == nullptr;
        Result<std::shared_ptr<const Topology>> adopted = AdoptLocked(std::move(view), why);
        if (!adopted.ok()) return adopted.status();
        *epoch = (*adopted)->epoch();
      }
    }
    if (failed) {
      Log(LogLevel::kWarn,
          "this node was declared failed in epoch " + std::to_string(*epoch) + "; rejoining empty");
    }
    if (failed || missing) StartRejoin();
    if (gone) MarkLeft(*epoch);
    return Status::Ok();
  }

  // Two views of one epoch: while this side of a partition changed the view (a coordinator
  // cut off from the majority, in the failure timeout before it fenced, applied a join),
  // the other side changed it too (it failed the coordinator over). Heartbeats find such
  // forks (HeartbeatRequest.view_digest) and each node settles its own, the same way on
  // every node: the view in which this node is FAILED wins over ours if ours has it live
  // (it was failed over: it rejoins empty), and so does a view that does not hold this
  // node while ours has it JOINING (admitted by the cut-off coordinator: it joins again
  // through the others). Otherwise ours is kept; the fork then ends with the next view
  // change, which the rejoins bring about. REQUIRES: adopt_mu held.
  enum class Fork { kKeepOurs, kFailedThere, kMissingThere };
  Fork SettleFork(const Topology& held, const ClusterView& offered,
                  const std::string& address) const {
    const ClusterMember* ours = held.self_member;
    if (ours == nullptr || ours->state == MemberState::kFailed) return Fork::kKeepOurs;
    const ClusterMember* theirs = offered.Find(options.self_id);
    if (theirs != nullptr && theirs->state == MemberState::kFailed &&
        (address.empty() || theirs->address == address)) {
      return Fork::kFailedThere;
    }
    if (theirs == nullptr && ours->state == MemberState::kJoining && !leave_requested.load()) {
      return Fork::kMissingThere;
    }
    return Fork::kKeepOurs;
  }

  // One warning per sender and epoch for a fork this node keeps its side of (heartbeats
  // bring the other view every interval until the next view change). REQUIRES: adopt_mu.
  void LogForkOnce(const ClusterView& offered, const std::string& from_id) {
    if (offered.epoch != fork_logged_epoch) {
      fork_logged_epoch = offered.epoch;
      fork_logged_from.clear();
    }
    if (!fork_logged_from.insert(from_id).second) return;
    Log(LogLevel::kWarn, "kept our view of epoch " + std::to_string(offered.epoch) + ": " +
                             from_id + " holds another one (members " + JoinIds(offered.members) +
                             "); the next view change ends the fork");
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

  // Untrack for a completion holding `call`: drops the completion's reference first, so
  // the call (whose ClientContext holds a channel reference) is destroyed inside Untrack,
  // while Shutdown still waits for it. Destroyed later, on a gRPC thread, it could drop a
  // channel's last reference once the PeerPool is gone, which gRPC 1.51 does not survive
  // (failover_manager.cc has the details).
  template <typename Call>
  void UntrackLast(std::shared_ptr<Call>& call) {
    const AsyncCall* raw = call.get();
    call.reset();
    Untrack(raw);
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
    if (coordinator == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "no member can coordinate the join of " + joiner.id() +
                                       " in epoch " + std::to_string(topology->epoch()) +
                                       " (no serving member but it); retry"));
      return reactor;
    }
    if (coordinator->id != options.self_id) {
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
    // The joiner's cluster plane where the old entry's was: the probe would reach the
    // joiner itself (restarted with a new client port and the same cluster port).
    const std::string& joiner_peer =
        joiner.cluster_address().empty() ? joiner.address() : joiner.cluster_address();
    if (known != nullptr && known->address != joiner.address() &&
        known->peer_address() != joiner_peer) {
      // A known id at a new address: a restarted node, unless the old address still
      // answers as that id (two live nodes with one id). Ask it before replacing it.
      Probe(ctx, request, response, reactor, known->address, known->peer_address());
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
    if (const std::string& c = joiner.cluster_address();
        !c.empty() && (c.rfind(':') == std::string::npos || c.rfind(':') == 0 ||
                       c.rfind(':') + 1 == c.size() || c == joiner.address())) {
      return Status::InvalidArgument("JoinRequest.member.cluster_address \"" + c +
                                     "\" must be a HOST:PORT other than its address (node " +
                                     joiner.id() + ")");
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
    peers->MembershipStub(coordinator.peer_address())
        ->async()
        ->Join(&call->ctx, &call->request, response,
               [this, call, reactor, coordinator_id](grpc::Status status) mutable {
                 if (!status.ok() && status.error_code() != grpc::StatusCode::FAILED_PRECONDITION &&
                     status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
                   status = grpc::Status(status.error_code(),
                                         "coordinator " + coordinator_id +
                                             " did not answer the join: " + status.error_message() +
                                             "; retry");
                 }
                 reactor->Finish(status);
                 UntrackLast(call);
               });
  }

  // Asks the old address of a known id who it is; a live node with that id refuses the
  // join, anything else (no answer, another id) lets it replace the old address.
  void Probe(grpc::CallbackServerContext* ctx, const v1::JoinRequest& request,
             v1::JoinResponse* response, grpc::ServerUnaryReactor* reactor,
             const std::string& old_address, const std::string& old_peer_address) {
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
    peers->CacheStub(old_peer_address)
        ->async()
        ->Stats(&call->ctx, &call->request, &call->response,
                [this, call, reactor, response](grpc::Status status) mutable {
                  if (status.ok() && call->response.node_id() == call->join.member().id()) {
                    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                 "node id " + call->join.member().id() +
                                                     " is already used by the live member at " +
                                                     call->old_address +
                                                     " (each node needs its own --node-id)"));
                  } else {
                    reactor->Finish(ApplyJoin(call->join, response, call->old_address));
                  }
                  UntrackLast(call);
                });
  }

  // The coordinator's view change for a join: add the member as JOINING, or set a known
  // one JOINING (FAILED, or restarted) with its address and weight; nothing changes (and
  // the epoch stays) if the view already holds it JOINING as asked.
  // `checked_address`: the joiner's address in the view when HandleJoin checked it ("" if
  // it was not a member). The view may have changed since (another join, a probe's
  // wait): if this node is no longer the coordinator, or the joiner's entry moved, the
  // checks no longer hold and the join is refused with UNAVAILABLE, to be retried.
  grpc::Status ApplyJoin(const v1::JoinRequest& request, v1::JoinResponse* response,
                         const std::string& checked_address) {
    std::shared_ptr<const Topology> adopted;
    if (!MayCoordinate()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "node " + options.self_id +
                              " is fenced (it cannot reach a majority) and does not change the "
                              "view; retry through another member");
    }
    {
      std::lock_guard lock(adopt_mu);
      const std::shared_ptr<const Topology> topology = current.load();
      const ClusterMember* coordinator = CoordinatorFor(topology->view, request.member().id());
      const ClusterMember* entry = topology->view.Find(request.member().id());
      if (coordinator == nullptr || coordinator->id != options.self_id ||
          (entry != nullptr ? entry->address : std::string()) != checked_address) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the view changed while node " + options.self_id +
                                " handled the join (now epoch " +
                                std::to_string(topology->epoch()) + "); retry");
      }
      ClusterView view = topology->view;
      ClusterMember joiner = proto::FromProto(request.member());
      joiner.state = MemberState::kJoining;
      auto it = std::find_if(view.members.begin(), view.members.end(),
                             [&](const ClusterMember& m) { return m.id == joiner.id; });
      if (it != view.members.end() && *it == joiner) {
        proto::ToProto(view, response->mutable_view());
        return grpc::Status::OK;
      }
      if (Status committed = CheckCommitted(*topology); !committed.ok()) {
        return ToGrpc(committed);
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
    proto::ToProto(adopted->view, response->mutable_view());
    return grpc::Status::OK;
  }

  // FAILED_PRECONDITION if a call meant for member `to_id` reached this node (the
  // member's address now belongs to another node); OK for this node's id or an empty one.
  Status CheckAddressedHere(const std::string& to_id) const {
    if (to_id.empty() || to_id == options.self_id) return Status::Ok();
    return Status::FailedPrecondition("this is node " + options.self_id + ", not " + to_id +
                                      " (the address now belongs to another node)");
  }

  // ---- PushView (server side).

  grpc::ServerUnaryReactor* HandlePushView(grpc::CallbackServerContext* ctx,
                                           const v1::PushViewRequest& request,
                                           v1::PushViewResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (Status st = CheckAddressedHere(request.to_id()); !st.ok()) {
      reactor->Finish(ToGrpc(st));
      return reactor;
    }
    Result<ClusterView> view = proto::FromProto(request.view());
    if (!view.ok()) {
      reactor->Finish(ToGrpc(view.status()));
      return reactor;
    }
    // The sender holds the view it pushes (for the commit rule: CheckCommitted).
    view->Normalize();
    NotePeerView(request.from_id(), view->epoch, ViewDigest(*view));
    uint64_t epoch = 0;
    if (Status st = ReceiveView(std::move(view).value(), "pushed by " + request.from_id(),
                                request.from_id(), "pushed", &epoch);
        !st.ok()) {
      reactor->Finish(ToGrpc(st));
      return reactor;
    }
    response->set_epoch(epoch);
    if (const std::shared_ptr<const Topology> held = Current();
        held != nullptr && held->epoch() == epoch) {
      response->set_view_digest(held->digest);
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // ---- Which voters hold this node's view (the commit rule).
  //
  // A coordinator makes a view change only once a majority of the voters of the view it
  // holds (itself included) hold that same view: the same epoch and digest, as each said in
  // its last push, push answer or heartbeat. So at most one view change can be made that a
  // majority has not seen. A coordinator cut off from the majority can still make one (in
  // the failure timeout before it fences), at the epoch the majority then uses for its own
  // change: that fork is settled (SettleFork). Without the rule it could make two, and its
  // higher epoch would win over the majority's view after the heal.

  // What a peer last said it holds. digest 0 (a node from before view digests) counts by
  // its epoch alone, so that a rolling upgrade can still change the view.
  struct PeerView {
    uint64_t epoch = 0;
    uint64_t digest = 0;
  };

  void NotePeerView(const std::string& id, uint64_t epoch, uint64_t digest) {
    std::lock_guard lock(mu);
    NotePeerViewLocked(id, epoch, digest);
  }
  // REQUIRES: mu held. The latest report wins (a restarted peer reports a lower epoch).
  void NotePeerViewLocked(const std::string& id, uint64_t epoch, uint64_t digest) {
    if (id.empty() || id == options.self_id) return;
    peer_views[id] = PeerView{epoch, digest};
  }

  // OK if a majority of the voters of `held` (this node counts) hold it; UNAVAILABLE, naming
  // the counts, otherwise. Then `held` is also pushed to the voters not known to hold it
  // (a view another node made, or heartbeats not yet seen): their answers say what they
  // hold, so the caller's retry finds out soon. REQUIRES: adopt_mu held (not mu).
  Status CheckCommitted(const Topology& held) {
    size_t voters = 0;
    size_t holding = 0;
    std::vector<const ClusterMember*> unknown;
    {
      std::lock_guard lock(mu);
      for (const ClusterMember& m : held.view.members) {
        if (!IsVoter(m)) continue;
        ++voters;
        if (m.id == options.self_id) {
          ++holding;
          continue;
        }
        auto it = peer_views.find(m.id);
        if (it != peer_views.end() && it->second.epoch == held.epoch() &&
            (it->second.digest == held.digest || it->second.digest == 0)) {
          ++holding;
        } else {
          unknown.push_back(&m);
        }
      }
    }
    const size_t majority = voters / 2 + 1;
    if (holding >= majority) return Status::Ok();
    SchedulePushes(held.view, {}, &unknown);
    return Status::Unavailable("the view of epoch " + std::to_string(held.epoch()) +
                               " is held by " + std::to_string(holding) + " of " +
                               std::to_string(voters) + " voting members so far (a majority is " +
                               std::to_string(majority) + "): node " + options.self_id +
                               " makes no further view change until a majority holds it; retry");
  }

  // ---- Pushes (coordinator side).

  // Queues `view` for every member but this node, and for `also` (members this view
  // removed, which learn from it that they have left). With `only`, for those members of
  // the view alone, and not where a push of this view or a newer one is pending.
  // REQUIRES: adopt_mu held (so pushes are queued in epoch order).
  void SchedulePushes(const ClusterView& view, const std::vector<ClusterMember>& also = {},
                      const std::vector<const ClusterMember*>* only = nullptr) {
    v1::PushViewRequest request;
    proto::ToProto(view, request.mutable_view());
    request.set_from_id(options.self_id);
    const auto now = SteadyClock::now();
    std::lock_guard lock(mu);
    if (stopping) return;
    // Members that left the view get no more pushes (but this last one).
    for (auto it = pushes.begin(); it != pushes.end();) {
      it = view.Find(it->first) == nullptr ? pushes.erase(it) : std::next(it);
    }
    std::vector<const ClusterMember*> targets;
    if (only != nullptr) {
      for (const ClusterMember* m : *only) {
        auto pending = pushes.find(m->id);
        if (pending == pushes.end() || pending->second.epoch < view.epoch) targets.push_back(m);
      }
    } else {
      for (const ClusterMember& m : view.members) targets.push_back(&m);
    }
    for (const ClusterMember& m : also) targets.push_back(&m);
    for (const ClusterMember* target : targets) {
      const ClusterMember& m = *target;
      if (m.id == options.self_id) continue;
      // Addressed to the member: another node at its address refuses it (the commit
      // rule must not take that node's answer for the member's).
      auto addressed = std::make_shared<v1::PushViewRequest>(request);
      addressed->set_to_id(m.id);
      Push& push = pushes[m.id];
      push.address = m.peer_address();
      push.epoch = view.epoch;
      push.request = std::move(addressed);
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
        [this, call = std::shared_ptr<PushCall>(call),
         address](const grpc::Status& status) mutable {
          // PushDone erases the call from in_flight last: hand it the only reference (see
          // UntrackLast).
          const PushCall* raw = call.get();
          call.reset();
          PushDone(*raw, address, status);
        });
  }

  void PushDone(const PushCall& call, const std::string& address, const grpc::Status& status) {
    {
      std::lock_guard lock(mu);
      auto it = pushes.find(call.member_id);
      if (it != pushes.end()) {
        Push& push = it->second;
        push.in_flight = false;
        if (status.ok()) {
          NotePeerViewLocked(call.member_id, call.response.epoch(), call.response.view_digest());
        }
        const bool acked = status.ok() && call.response.epoch() >= call.epoch;
        if (acked && push.epoch <= call.response.epoch()) {
          pushes.erase(it);
        } else if (acked) {
          push.next_attempt = SteadyClock::now();  // A newer view is waiting.
        } else {
          // Logged once per view and member, then every 10th failure, so that a dead
          // member (a FAILED one keeps getting the newest view) does not flood the log.
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

  Status JoinOrBootstrap(const std::string& address, const std::string& cluster_address) {
    {
      std::lock_guard lock(mu);
      self_address = address;
      self_cluster_address = cluster_address;
    }
    std::vector<std::string> seeds;
    for (const std::string& seed : options.seeds) {
      if (seed != address && seed != cluster_address &&
          std::find(seeds.begin(), seeds.end(), seed) == seeds.end()) {
        seeds.push_back(seed);
      }
    }
    if (seeds.empty()) {
      // The very first member is SERVING: there is nothing to migrate to it.
      const ClusterMember self{.id = options.self_id,
                               .address = address,
                               .weight = options.weight,
                               .state = MemberState::kServing,
                               .cluster_address = cluster_address};
      Result<std::shared_ptr<const Topology>> adopted =
          Adopt(ClusterView{.epoch = 1,
                            .members = {self},
                            .replication_factor = options.replication_factor,
                            .vnodes_per_weight = options.vnodes_per_weight},
                "bootstrapped a new cluster");
      if (!adopted.ok()) return adopted.status();
      return Joined();
    }

    const v1::JoinRequest request = MakeJoinRequest(address);
    const auto started = SteadyClock::now();
    const auto deadline = started + options.join_timeout;
    auto backoff = kJoinBackoffMin;
    std::string last_error = "no seed tried";
    while (true) {
      for (const std::string& seed : seeds) {
        if (HoldsSelf(Current().get(), address)) return Joined();  // Pushed meanwhile.
        const auto now = SteadyClock::now();
        if (now >= deadline || IsStopping()) break;
        // Room for a forward and a probe behind the seed.
        const auto timeout =
            std::min<SteadyClock::duration>(deadline - now, options.call_timeout * 2);
        const JoinAttempt attempt =
            TryJoin(seed, request, address, timeout, "joined through " + seed, &last_error);
        if (attempt == JoinAttempt::kJoined) return Joined();
        if (attempt == JoinAttempt::kRefused) {
          return Status::FailedPrecondition("the cluster refused node " + options.self_id +
                                            " (through seed " + seed + "): " + last_error);
        }
      }
      if (HoldsSelf(Current().get(), address)) return Joined();
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

  // JoinOrBootstrap succeeded: from now on a view holding this node as FAILED starts a
  // rejoin (before, JoinOrBootstrap's own retries take care of it).
  Status Joined() {
    std::lock_guard lock(mu);
    joined = true;
    return Status::Ok();
  }

  v1::JoinRequest MakeJoinRequest(const std::string& address) {
    const ClusterMember self{.id = options.self_id,
                             .address = address,
                             .weight = options.weight,
                             .state = MemberState::kJoining,
                             .cluster_address = SelfClusterAddress()};
    v1::JoinRequest request;
    proto::ToProto(self, request.mutable_member());
    request.set_replication_factor(options.replication_factor);
    request.set_vnodes_per_weight(options.vnodes_per_weight);
    return request;
  }

  enum class JoinAttempt { kJoined, kFailed, kRefused };

  // One synchronous Join through `seed` (deadline `timeout`), adopting the answer with
  // `why`. kRefused: FAILED_PRECONDITION or INVALID_ARGUMENT (the message in *last_error);
  // kFailed: anything else, logged, *last_error says what. The call can be cancelled by
  // Shutdown (sync_calls).
  JoinAttempt TryJoin(const std::string& seed, const v1::JoinRequest& request,
                      const std::string& address, SteadyClock::duration timeout,
                      const std::string& why, std::string* last_error) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    {
      std::lock_guard lock(mu);
      if (stopping) return JoinAttempt::kFailed;
      sync_calls.insert(&ctx);
    }
    v1::JoinResponse response;
    const grpc::Status status = peers->MembershipStub(seed)->Join(&ctx, request, &response);
    {
      std::lock_guard lock(mu);
      sync_calls.erase(&ctx);
    }
    if (status.ok()) {
      Result<ClusterView> view = proto::FromProto(response.view());
      if (!view.ok()) {
        *last_error = seed + " answered with an invalid view: " + view.status().message();
        return JoinAttempt::kFailed;
      }
      // Only a newer view counts. After a fork settled against this node's admission
      // (ReceiveView) the coordinator of the winning view admits it at a new epoch; an
      // answer of the same epoch comes from the losing side and would undo the settlement.
      Result<std::shared_ptr<const Topology>> adopted = Adopt(std::move(view).value(), why);
      if (!adopted.ok()) {
        *last_error =
            seed + " answered with a view this node cannot use: " + adopted.status().message();
        return JoinAttempt::kFailed;
      }
      if (HoldsSelf(adopted->get(), address)) return JoinAttempt::kJoined;
      *last_error = seed + " answered with a view without this node at " + address;
      return JoinAttempt::kFailed;
    }
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      *last_error = status.error_message();
      return JoinAttempt::kRefused;
    }
    const std::string error = GrpcCodeName(status.error_code()) + ": " + status.error_message();
    *last_error = seed + ": " + error;
    if (!IsStopping()) {
      Log(LogLevel::kWarn, "join through " + seed + " failed: " + error + "; retrying");
    }
    return JoinAttempt::kFailed;
  }

  // ---- Heartbeat (server side; the logic is the FailoverManager's).

  grpc::ServerUnaryReactor* HandleHeartbeat(grpc::CallbackServerContext* ctx,
                                            const v1::HeartbeatRequest& request,
                                            v1::HeartbeatResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (Status st = CheckAddressedHere(request.to_id()); !st.ok()) {
      reactor->Finish(ToGrpc(st));
      return reactor;
    }
    std::shared_ptr<const HeartbeatHandler> handler;
    {
      std::lock_guard lock(mu);
      handler = heartbeat_handler;
    }
    if (handler == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "node " + options.self_id + " does not answer heartbeats yet"));
      return reactor;
    }
    NotePeerView(request.from_id(), request.epoch(), request.view_digest());
    (*handler)(request, response);
    // A sender behind us gets our view; so does one with another view of the same epoch
    // (a fork, settled by the sender: ReceiveView).
    if (const std::shared_ptr<const Topology> topology = Current();
        topology != nullptr &&
        (request.epoch() < topology->epoch() ||
         (request.epoch() == topology->epoch() && request.view_digest() != 0 &&
          request.view_digest() != topology->digest))) {
      proto::ToProto(topology->view, response->mutable_view());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // ---- Failover (coordinator side).

  Status MarkFailed(const std::vector<std::string>& ids, const std::string& reason) {
    std::lock_guard lock(adopt_mu);
    const std::shared_ptr<const Topology> topology = current.load();
    if (topology == nullptr) {
      return Status::FailedPrecondition("node " + options.self_id + " holds no view yet");
    }
    const ClusterMember* coordinator = VoterCoordinator(topology->view, ids);
    if (coordinator == nullptr || coordinator->id != options.self_id) {
      return Status::FailedPrecondition(
          "node " + options.self_id + " is not the coordinator in epoch " +
          std::to_string(topology->epoch()) + " once " + JoinStrings(ids) + " are left out (" +
          (coordinator != nullptr ? coordinator->id : std::string("no voter")) + " is)");
    }
    ClusterView view = topology->view;
    std::vector<std::string> failed;
    for (const std::string& id : ids) {
      if (id == options.self_id) {
        return Status::FailedPrecondition("node " + options.self_id +
                                          " cannot declare itself failed");
      }
      auto it = std::find_if(view.members.begin(), view.members.end(),
                             [&](const ClusterMember& m) { return m.id == id; });
      if (it == view.members.end()) {
        return Status::FailedPrecondition("node " + id + " is not a member in epoch " +
                                          std::to_string(view.epoch));
      }
      if (it->state == MemberState::kFailed) continue;
      it->state = MemberState::kFailed;
      failed.push_back(id);
    }
    if (failed.empty()) return Status::Ok();
    if (Status committed = CheckCommitted(*topology); !committed.ok()) return committed;
    view.epoch = topology->epoch() + 1;
    Log(LogLevel::kWarn, JoinStrings(failed) + " failed: " + reason + "; " +
                             EpochChange(topology->epoch(), view.epoch));
    Result<std::shared_ptr<const Topology>> adopted =
        AdoptLocked(std::move(view), "as coordinator");
    if (!adopted.ok()) return adopted.status();
    SchedulePushes((*adopted)->view);
    return Status::Ok();
  }

  // ---- Transitions.

  grpc::ServerUnaryReactor* HandleTransitionReady(grpc::CallbackServerContext* ctx,
                                                  const v1::TransitionReadyRequest& request,
                                                  v1::TransitionReadyResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const std::shared_ptr<const Topology> topology = Current();
    if (topology == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "node " + options.self_id + " is joining the cluster"));
      return reactor;
    }
    const ClusterMember* coordinator = VoterCoordinator(topology->view);
    if (coordinator != nullptr && coordinator->id != options.self_id) {
      if (request.forwarded()) {
        reactor->Finish(grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            "node " + options.self_id + " is not the coordinator in epoch " +
                std::to_string(topology->epoch()) + " (" + coordinator->id + " is); retry"));
        return reactor;
      }
      auto call = std::make_shared<ForwardReadyCall>();
      call->request = request;
      call->request.set_forwarded(true);
      call->ctx.set_deadline(
          std::min(ctx->deadline(), std::chrono::system_clock::now() + options.call_timeout));
      if (!Track(call)) {
        reactor->Finish(ShuttingDown());
        return reactor;
      }
      peers->MembershipStub(coordinator->peer_address())
          ->async()
          ->TransitionReady(&call->ctx, &call->request, response,
                            [this, call, reactor](grpc::Status status) mutable {
                              reactor->Finish(status);
                              UntrackLast(call);
                            });
      return reactor;
    }
    if (coordinator == nullptr) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          "no voting member in epoch " + std::to_string(topology->epoch()) + "; retry"));
      return reactor;
    }
    response->set_epoch(RecordReady(request.from_id(), request.epoch()));
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // The coordinator records that voter `from_id` is ready for `epoch`; flips the view when
  // every voter is. Reports for another epoch, from a non-voter, or while no transition is
  // in progress change nothing. Returns the epoch held afterwards.
  // False while this node must not change the view (it is fenced: it may be on the
  // minority side of a partition). MarkFailed is guarded by the failover manager itself.
  bool MayCoordinate() {
    std::function<bool()> fn;
    {
      std::lock_guard lock(mu);
      fn = may_coordinate;
    }
    return !fn || fn();
  }

  // Returns the epoch the report counts for; 0 = not recorded (a fenced coordinator: the
  // sender retries).
  uint64_t RecordReady(const std::string& from_id, uint64_t epoch) {
    bool self_removed = false;
    uint64_t now_epoch = 0;
    if (!MayCoordinate()) return 0;
    {
      std::lock_guard lock(adopt_mu);
      const std::shared_ptr<const Topology> topology = current.load();
      if (topology == nullptr) return 0;
      const ClusterView& view = topology->view;
      const ClusterMember* coordinator = VoterCoordinator(view);
      const ClusterMember* from = view.Find(from_id);
      if (epoch != view.epoch || !view.in_transition() || from == nullptr || !IsVoter(*from) ||
          coordinator == nullptr || coordinator->id != options.self_id) {
        return view.epoch;
      }
      if (ready_epoch != view.epoch) {
        ready_epoch = view.epoch;
        ready.clear();
      }
      ready.insert(from_id);
      for (const ClusterMember& m : view.members) {
        if (IsVoter(m) && ready.count(m.id) == 0) return view.epoch;
      }
      // Every voter is ready: complete the transition.
      std::string summary;
      ClusterView next = FlipTransition(view, &summary);
      std::vector<ClusterMember> removed;
      for (const ClusterMember& m : view.members) {
        if (m.state == MemberState::kLeaving) removed.push_back(m);
      }
      Log(LogLevel::kInfo, "transition of epoch " + std::to_string(view.epoch) + " complete (" +
                               summary + "); " + EpochChange(view.epoch, next.epoch));
      self_removed = next.Find(options.self_id) == nullptr;
      Result<std::shared_ptr<const Topology>> adopted =
          AdoptLocked(std::move(next), "as coordinator");
      if (!adopted.ok()) {
        Log(LogLevel::kError, "cannot complete the transition of epoch " +
                                  std::to_string(view.epoch) + ": " + adopted.status().message());
        return view.epoch;
      }
      SchedulePushes((*adopted)->view, removed);
      now_epoch = (*adopted)->epoch();
    }
    if (self_removed) {
      // This coordinator left: the worker waits for the last pushes, then marks it left.
      std::lock_guard lock(mu);
      leave_finish_epoch = now_epoch;
      leave_finish_deadline = SteadyClock::now() + kLeaveFinishWait;
      cv.notify_all();
    }
    return now_epoch;
  }

  TransitionStatus Transition() {
    std::lock_guard lock(adopt_mu);
    return TransitionLocked(SteadyClock::now());
  }

  // REQUIRES: adopt_mu held.
  TransitionStatus TransitionLocked(SteadyClock::time_point now) const {
    TransitionStatus st;
    const std::shared_ptr<const Topology> topology = current.load();
    if (topology == nullptr || !topology->view.in_transition() || !transition_since) return st;
    const ClusterView& view = topology->view;
    st.epoch = view.epoch;
    st.waiting_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - *transition_since).count());
    const ClusterMember* coordinator = VoterCoordinator(view);
    st.coordinator = coordinator != nullptr && coordinator->id == options.self_id;
    if (!st.coordinator) return st;
    for (const ClusterMember& m : view.members) {
      if (!IsVoter(m)) continue;
      const bool is_ready = ready_epoch == view.epoch && ready.count(m.id) != 0;
      (is_ready ? st.ready : st.pending).push_back(m.id);
    }
    return st;
  }

  // Worker thread: the coordinator's warning about a transition that waits for its
  // sources longer than options.transition_warn (then once per such period).
  void CheckTransitionWait() {
    std::string line;
    {
      std::lock_guard lock(adopt_mu);
      const auto now = SteadyClock::now();
      if (!transition_since || now - transition_warned < options.transition_warn) return;
      const TransitionStatus st = TransitionLocked(now);
      if (!st.coordinator || st.pending.empty()) return;
      transition_warned = now;
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%.1f", static_cast<double>(st.waiting_ms) / 1000.0);
      line = "the transition of epoch " + std::to_string(st.epoch) + " has waited " + secs +
             " s (warning bound " + std::to_string(options.transition_warn.count()) +
             " ms) for TransitionReady from " + JoinStrings(st.pending) +
             (st.ready.empty() ? std::string() : " (ready: " + JoinStrings(st.ready) + ")") +
             "; a source that never reports keeps its joiners JOINING (check its replication "
             "links in cluster status and its log)";
    }
    Log(LogLevel::kWarn, line);
  }

  void ReportTransitionReady(uint64_t epoch) {
    std::lock_guard lock(mu);
    if (epoch < report_epoch || (epoch == report_epoch && (report_pending || report_done))) {
      return;
    }
    report_epoch = epoch;
    report_pending = true;
    report_done = false;
    report_next = SteadyClock::now();
    report_backoff = kReportBackoffMin;
    cv.notify_all();
  }

  // One attempt of the pending report for `epoch` (worker thread). True when it is done:
  // acknowledged by the coordinator, recorded locally, or superseded by a newer view.
  bool SendReport(uint64_t epoch) {
    const std::shared_ptr<const Topology> topology = Current();
    if (topology == nullptr) return false;
    if (topology->epoch() > epoch) return true;   // Superseded.
    if (topology->epoch() < epoch) return false;  // The view is not here yet.
    const ClusterMember* coordinator = VoterCoordinator(topology->view);
    if (coordinator == nullptr) return false;
    if (coordinator->id == options.self_id) return RecordReady(options.self_id, epoch) != 0;
    v1::TransitionReadyRequest request;
    request.set_from_id(options.self_id);
    request.set_epoch(epoch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    {
      std::lock_guard lock(mu);
      if (stopping) return true;
      sync_calls.insert(&ctx);
    }
    v1::TransitionReadyResponse response;
    const grpc::Status status = peers->MembershipStub(coordinator->peer_address())
                                    ->TransitionReady(&ctx, request, &response);
    {
      std::lock_guard lock(mu);
      sync_calls.erase(&ctx);
    }
    if (status.ok() && response.epoch() >= epoch) return true;
    if (report_failures++ % 10 == 0 && !IsStopping()) {
      Log(LogLevel::kWarn,
          "cannot report the transition of epoch " + std::to_string(epoch) + " ready to " +
              coordinator->id + " (attempt " + std::to_string(report_failures) + "): " +
              (status.ok() ? "it is at epoch " + std::to_string(response.epoch())
                           : GrpcCodeName(status.error_code()) + ": " + status.error_message()) +
              "; retrying");
    }
    return false;
  }

  // ---- Leave.

  // FAILED_PRECONDITION unless `id` may leave in `view`: a SERVING member (LEAVING: OK,
  // nothing to do) with another SERVING member to take over its ranges.
  static Status CheckLeave(const ClusterView& view, const std::string& id) {
    const ClusterMember* m = view.Find(id);
    if (m == nullptr) {
      return Status::FailedPrecondition("node " + id + " is not a member in epoch " +
                                        std::to_string(view.epoch));
    }
    if (m->state == MemberState::kLeaving) return Status::Ok();
    if (m->state != MemberState::kServing) {
      return Status::FailedPrecondition("node " + id + " is " +
                                        std::string(MemberStateName(m->state)) +
                                        ", not serving: only a serving member can leave");
    }
    const bool another =
        std::any_of(view.members.begin(), view.members.end(), [&](const ClusterMember& other) {
          return other.id != id && other.state == MemberState::kServing;
        });
    if (!another) {
      return Status::FailedPrecondition("node " + id +
                                        " is the only serving member of the cluster: it cannot "
                                        "leave (its ranges would have no owner)");
    }
    return Status::Ok();
  }

  // The coordinator's view change for a leave: `id` becomes LEAVING, epoch + 1, adopted and
  // pushed; `out` gets the view (also when it already was LEAVING).
  Status ApplyLeave(const std::string& id, v1::ClusterView* out) {
    if (!MayCoordinate()) {
      return Status::Unavailable("node " + options.self_id +
                                 " is fenced (it cannot reach a majority) and does not change "
                                 "the view; retry");
    }
    std::lock_guard lock(adopt_mu);
    const std::shared_ptr<const Topology> topology = current.load();
    if (topology == nullptr) {
      return Status::Unavailable("node " + options.self_id + " holds no view yet; retry");
    }
    const ClusterMember* coordinator = VoterCoordinator(topology->view);
    if (coordinator == nullptr || coordinator->id != options.self_id) {
      return Status::Unavailable("node " + options.self_id + " is not the coordinator in epoch " +
                                 std::to_string(topology->epoch()) + " (" +
                                 (coordinator != nullptr ? coordinator->id : std::string("none")) +
                                 " is); retry");
    }
    if (Status s = CheckLeave(topology->view, id); !s.ok()) return s;
    ClusterView view = topology->view;
    auto it = std::find_if(view.members.begin(), view.members.end(),
                           [&](const ClusterMember& m) { return m.id == id; });
    if (it->state == MemberState::kLeaving) {
      proto::ToProto(topology->view, out);
      return Status::Ok();
    }
    if (Status committed = CheckCommitted(*topology); !committed.ok()) return committed;
    it->state = MemberState::kLeaving;
    view.epoch = topology->epoch() + 1;
    Log(LogLevel::kInfo, id + " leaving; " + EpochChange(topology->epoch(), view.epoch));
    Result<std::shared_ptr<const Topology>> adopted =
        AdoptLocked(std::move(view), "as coordinator");
    if (!adopted.ok()) return adopted.status();
    SchedulePushes((*adopted)->view);
    proto::ToProto((*adopted)->view, out);
    return Status::Ok();
  }

  // Sets leave_requested and tells the node (its state follows it) if it changed. Called
  // with no lock of this object held.
  void SetLeaveRequested(bool requested) {
    if (leave_requested.exchange(requested) == requested) return;
    std::function<void()> hook;
    {
      std::lock_guard lock(mu);
      hook = leave_state_hook;
    }
    if (hook) hook();
  }

  // The leave was not accepted: forget the request unless this node is LEAVING anyway.
  void LeaveFailed() {
    const std::shared_ptr<const Topology> topology = Current();
    if (topology == nullptr || topology->self_member == nullptr ||
        topology->self_member->state != MemberState::kLeaving) {
      SetLeaveRequested(false);
    }
  }

  grpc::ServerUnaryReactor* HandleLeave(grpc::CallbackServerContext* ctx,
                                        const v1::LeaveRequest& request,
                                        v1::LeaveResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const std::shared_ptr<const Topology> topology = Current();
    if (topology == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "node " + options.self_id + " is joining the cluster"));
      return reactor;
    }
    if (request.forwarded()) {
      // This node is (or should be) the coordinator; the leaver is the caller.
      if (Status s = ApplyLeave(request.node_id(), response->mutable_view()); !s.ok()) {
        reactor->Finish(ToGrpc(s));
        return reactor;
      }
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    if (request.node_id() != options.self_id) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          "this is node " + options.self_id + ", not " +
              (request.node_id().empty() ? std::string("(no node_id given)") : request.node_id()) +
              ": a leave must be sent to the node that leaves"));
      return reactor;
    }
    if (left.load()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                   "node " + options.self_id + " has already left the cluster"));
      return reactor;
    }
    if (Status s = CheckLeave(topology->view, options.self_id); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    const ClusterMember* coordinator = VoterCoordinator(topology->view);
    SetLeaveRequested(true);
    if (coordinator == nullptr || coordinator->id == options.self_id) {
      Log(LogLevel::kInfo, "leave requested by a client; this node is the coordinator");
      Status s = ApplyLeave(options.self_id, response->mutable_view());
      if (!s.ok()) LeaveFailed();
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    Log(LogLevel::kInfo, "leave requested by a client; asking coordinator " + coordinator->id);
    auto call = std::make_shared<ForwardLeaveCall>();
    call->request.set_node_id(options.self_id);
    call->request.set_forwarded(true);
    call->ctx.set_deadline(
        std::min(ctx->deadline(), std::chrono::system_clock::now() + options.call_timeout));
    if (!Track(call)) {
      LeaveFailed();
      reactor->Finish(ShuttingDown());
      return reactor;
    }
    const std::string coordinator_id = coordinator->id;
    peers->MembershipStub(coordinator->peer_address())
        ->async()
        ->Leave(&call->ctx, &call->request, &call->response,
                [this, call, reactor, response, coordinator_id](grpc::Status status) mutable {
                  if (status.ok()) {
                    status = AcceptLeaveAnswer(call->response, coordinator_id);
                    if (status.ok()) *response = call->response;
                  } else if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
                    status = grpc::Status(
                        status.error_code(),
                        "coordinator " + coordinator_id +
                            " did not answer the leave: " + status.error_message() + "; retry");
                  }
                  if (!status.ok()) LeaveFailed();
                  reactor->Finish(status);
                  UntrackLast(call);
                });
    return reactor;
  }

  // The coordinator's answer to this node's leave: adopt the view (this node LEAVING).
  grpc::Status AcceptLeaveAnswer(const v1::LeaveResponse& answer, const std::string& from_id) {
    Result<ClusterView> view = proto::FromProto(answer.view());
    if (!view.ok()) return ToGrpc(view.status());
    uint64_t epoch = 0;
    if (Status s = ReceiveView(std::move(view).value(), "leave accepted by " + from_id, from_id,
                               "leave", &epoch);
        !s.ok()) {
      return ToGrpc(s);
    }
    Log(LogLevel::kInfo, "leave accepted by " + from_id + " in epoch " + std::to_string(epoch));
    return grpc::Status::OK;
  }

  Status RequestLeave() {
    Status last = Status::Unavailable("no attempt");
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (attempt > 0) {
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping; });
      }
      if (IsStopping()) return Status::Unavailable("node is shutting down; leave abandoned");
      const std::shared_ptr<const Topology> topology = Current();
      if (topology == nullptr) {
        return Status::Unavailable("node " + options.self_id + " is not in the cluster yet");
      }
      if (left.load()) return Status::Ok();
      if (Status s = CheckLeave(topology->view, options.self_id); !s.ok()) return s;
      if (topology->self_member->state == MemberState::kLeaving) {
        SetLeaveRequested(true);
        return Status::Ok();
      }
      const ClusterMember* coordinator = VoterCoordinator(topology->view);
      SetLeaveRequested(true);
      if (coordinator == nullptr || coordinator->id == options.self_id) {
        if (attempt == 0) Log(LogLevel::kInfo, "leave requested; this node is the coordinator");
        v1::ClusterView ignored;
        last = ApplyLeave(options.self_id, &ignored);
      } else {
        if (attempt == 0) {
          Log(LogLevel::kInfo, "leave requested; asking coordinator " + coordinator->id);
        }
        v1::LeaveRequest request;
        request.set_node_id(options.self_id);
        request.set_forwarded(true);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
        v1::LeaveResponse response;
        const grpc::Status status =
            peers->MembershipStub(coordinator->peer_address())->Leave(&ctx, request, &response);
        if (status.ok()) {
          const grpc::Status accepted = AcceptLeaveAnswer(response, coordinator->id);
          last = Status(static_cast<StatusCode>(accepted.error_code()), accepted.error_message());
        } else {
          last = Status(static_cast<StatusCode>(status.error_code()),
                        "coordinator " + coordinator->id +
                            " did not accept the leave: " + status.error_message());
          if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) break;
        }
      }
      if (last.ok() || last.code() == StatusCode::kFailedPrecondition) break;
    }
    if (!last.ok()) LeaveFailed();
    return last;
  }

  // This node has left (once): wake WaitLeft, call the left hook.
  void MarkLeft(uint64_t epoch) {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu);
      if (left.load()) return;
      // Logged before WaitLeft can return.
      Log(LogLevel::kInfo, "left the cluster in epoch " + std::to_string(epoch));
      left.store(true);
      hook = left_hook;
      cv.notify_all();
    }
    if (hook) hook();
  }

  bool WaitLeft(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [this] { return left.load() || stopping; });
    return left.load();
  }

  // ---- Rejoin after this node was declared failed (worker thread).

  void StartRejoin() {
    // Failed while leaving: the leave is over (its ranges went to the replicas); the node
    // rejoins as any other and may be asked to leave again.
    SetLeaveRequested(false);
    std::lock_guard lock(mu);
    if (!joined || stopping) return;  // JoinOrBootstrap is still at it.
    rejoin_wanted = true;
    cv.notify_all();
  }

  // Joins through the other members of the current view until it holds this node again
  // (not FAILED), or shutdown.
  void Rejoin() {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu);
      hook = rejoin_hook;
    }
    if (hook) hook();
    const std::string address = SelfAddress();
    const v1::JoinRequest request = MakeJoinRequest(address);
    auto backoff = kJoinBackoffMin;
    int rounds = 0;
    std::string last_error = "no member to join through";
    while (!IsStopping()) {
      const std::shared_ptr<const Topology> topology = Current();
      if (HoldsSelf(topology.get(), address)) return;
      // Seeds: the view's other members, those not FAILED first.
      std::vector<std::string> seeds;
      for (int pass = 0; pass < 2; ++pass) {
        for (const ClusterMember& m : topology->view.members) {
          if (m.id == options.self_id) continue;
          if ((m.state == MemberState::kFailed) == (pass == 1)) seeds.push_back(m.peer_address());
        }
      }
      for (const std::string& seed : seeds) {
        if (IsStopping() || HoldsSelf(Current().get(), address)) break;
        const JoinAttempt attempt = TryJoin(seed, request, address, options.call_timeout * 2,
                                            "rejoined through " + seed, &last_error);
        if (attempt == JoinAttempt::kJoined) {
          Log(LogLevel::kInfo, "rejoined the cluster through " + seed + " in epoch " +
                                   std::to_string(Current()->epoch()));
          return;
        }
        if (attempt == JoinAttempt::kRefused) {
          Log(LogLevel::kError,
              "rejoin through " + seed + " refused: " + last_error + "; retrying");
        }
      }
      if (++rounds % 10 == 0) {
        Log(LogLevel::kWarn, "still rejoining after " + std::to_string(rounds) +
                                 " rounds; last error: " + last_error);
      }
      std::unique_lock lock(mu);
      cv.wait_for(lock, backoff, [this] { return stopping; });
      backoff = std::min(backoff * 2, kRejoinBackoffMax);
    }
  }

  // ---- The worker thread: rejoins, transition-ready reports, the leaving coordinator's
  // last wait.

  void WorkerLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      if (rejoin_wanted) {
        rejoin_wanted = false;
        lock.unlock();
        const std::shared_ptr<const Topology> topology = Current();
        // Still (or again) FAILED in the view held, or out of it without having left (a
        // fork settled against this node's admission): rejoin.
        const ClusterMember* self = topology != nullptr ? topology->self_member : nullptr;
        if (topology != nullptr && ((self != nullptr && self->state == MemberState::kFailed) ||
                                    (self == nullptr && !left.load() && !leave_requested.load()))) {
          Rejoin();
        }
        lock.lock();
        continue;
      }
      const auto now = SteadyClock::now();
      if (leave_finish_epoch != 0) {
        if (pushes.empty() || now >= leave_finish_deadline) {
          const uint64_t epoch = leave_finish_epoch;
          leave_finish_epoch = 0;
          lock.unlock();
          MarkLeft(epoch);
          lock.lock();
          continue;
        }
      }
      if (report_pending && report_next <= now) {
        const uint64_t epoch = report_epoch;
        lock.unlock();
        const bool done = SendReport(epoch);
        lock.lock();
        if (report_epoch == epoch && report_pending) {
          if (done) {
            report_pending = false;
            report_done = true;
            report_failures = 0;
          } else {
            report_next = SteadyClock::now() + report_backoff;
            report_backoff = std::min(report_backoff * 2, kReportBackoffMax);
          }
        }
        continue;
      }
      lock.unlock();
      CheckTransitionWait();
      lock.lock();
      if (stopping || rejoin_wanted) continue;
      // Once a second at least, for the transition-wait warning (views are adopted on
      // other threads without waking this one).
      auto wake = now + std::chrono::seconds(1);
      if (report_pending) wake = std::min(wake, report_next);
      // The leaving coordinator polls its pushes (PushDone does not wake this thread).
      if (leave_finish_epoch != 0) {
        wake = std::min({wake, leave_finish_deadline, now + std::chrono::milliseconds(20)});
      }
      cv.wait_until(lock, wake);
    }
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
      // A synchronous call of the worker (a rejoin, a report): cancelled, it returns at
      // once (no completion runs inline for a synchronous call).
      for (grpc::ClientContext* ctx : sync_calls) ctx->TryCancel();
      cv.notify_all();
    }
    if (pusher.joinable()) pusher.join();
    if (worker.joinable()) worker.join();
    // No call starts from now on (Track refuses, the pusher is gone).
    std::vector<std::shared_ptr<AsyncCall>> calls;
    {
      std::lock_guard lock(mu);
      for (auto& [ptr, call] : in_flight) calls.push_back(call);
    }
    // Outside mu: a cancelled call's completion may run inline here.
    for (auto& call : calls) call->ctx.TryCancel();
    calls.clear();
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [this] { return in_flight.empty(); });
    }
    // A view change still in progress (a handler that the stopped server let finish) ends
    // before this returns.
    std::lock_guard adopt_lock(adopt_mu);
  }

  // Constant after construction.
  const MembershipOptions options;
  PeerPool* const peers;  // Not owned.
  Service service{this, /*client_port=*/false};
  Service client_port_service{this, /*client_port=*/true};

  // The published snapshot; written only under adopt_mu.
  std::atomic<std::shared_ptr<const Topology>> current;

  std::mutex adopt_mu;

  std::mutex subs_mu;
  // Protected by subs_mu.
  std::map<int, std::function<void(std::shared_ptr<const Topology>)>> subscribers;
  int next_subscriber = 1;

  // Protected by adopt_mu: the senders of a forked view of fork_logged_epoch already
  // logged (LogForkOnce).
  uint64_t fork_logged_epoch = 0;
  std::set<std::string> fork_logged_from;

  // Protected by adopt_mu: the coordinator's ready set, for the view of ready_epoch.
  uint64_t ready_epoch = 0;
  std::set<std::string> ready;
  // Protected by adopt_mu: when the transition of the view held began (unset while the
  // view is not in transition), and when its wait was last warned about (or when the
  // current epoch of it was adopted).
  std::optional<SteadyClock::time_point> transition_since;
  SteadyClock::time_point transition_warned;

  using HeartbeatHandler = std::function<void(const v1::HeartbeatRequest&, v1::HeartbeatResponse*)>;

  std::mutex mu;
  std::condition_variable cv;
  // Protected by mu.
  bool stopping = false;
  bool joined = false;                                   // JoinOrBootstrap succeeded.
  std::string self_address;                              // Set by JoinOrBootstrap.
  std::string self_cluster_address;                      // Set by JoinOrBootstrap.
  std::unordered_map<std::string, Push> pushes;          // member id -> its pending push
  std::unordered_map<std::string, PeerView> peer_views;  // member id -> what it last said
  std::unordered_map<const AsyncCall*, std::shared_ptr<AsyncCall>> in_flight;
  std::shared_ptr<const HeartbeatHandler> heartbeat_handler;
  std::function<void()> rejoin_hook;
  std::function<void()> left_hook;
  std::function<void()> leave_state_hook;
  std::function<bool()> may_coordinate;
  // Synchronous calls in progress (the worker's, JoinOrBootstrap's): Shutdown cancels them.
  std::set<grpc::ClientContext*> sync_calls;
  // The worker's work.
  bool rejoin_wanted = false;
  uint64_t report_epoch = 0;    // The newest epoch reported ready.
  bool report_pending = false;  // Not yet acknowledged.
  bool report_done = false;     // Acknowledged (or superseded).
  SteadyClock::time_point report_next;
  std::chrono::milliseconds report_backoff = kReportBackoffMin;
  uint64_t leave_finish_epoch = 0;  // != 0: this coordinator removed itself in that epoch.
  SteadyClock::time_point leave_finish_deadline;

  // Written under mu, read without it.
  std::atomic<bool> left{false};
  std::atomic<bool> leave_requested{false};

  // Worker thread only.
  int report_failures = 0;

  std::thread pusher;  // Runs PusherLoop; joined by Shutdown.
  std::thread worker;  // Runs WorkerLoop; joined by Shutdown.
};

Membership::Membership(MembershipOptions options, PeerPool* peers)
    : impl_(std::make_unique<Impl>(std::move(options), peers)) {
  impl_->pusher = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "rc-membership");
    impl->PusherLoop();
  });
  impl_->worker = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "rc-member-work");
    impl->WorkerLoop();
  });
}

Membership::~Membership() { Shutdown(); }

grpc::Service* Membership::service() { return &impl_->service; }
grpc::Service* Membership::client_port_service() { return &impl_->client_port_service; }

Status Membership::JoinOrBootstrap(const std::string& self_address,
                                   const std::string& self_cluster_address) {
  return impl_->JoinOrBootstrap(self_address, self_cluster_address);
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

void Membership::SetHeartbeatHandler(
    std::function<void(const v1::HeartbeatRequest&, v1::HeartbeatResponse*)> fn) {
  auto handler = fn ? std::make_shared<const Impl::HeartbeatHandler>(std::move(fn)) : nullptr;
  std::lock_guard lock(impl_->mu);
  impl_->heartbeat_handler = std::move(handler);
}

Status Membership::MarkFailed(const std::vector<std::string>& ids, const std::string& reason) {
  return impl_->MarkFailed(ids, reason);
}

void Membership::OfferView(const v1::ClusterView& view, const std::string& from_id) {
  Result<ClusterView> parsed = proto::FromProto(view);
  if (!parsed.ok()) {
    impl_->Log(LogLevel::kWarn,
               "ignored an invalid view from " + from_id + ": " + parsed.status().message());
    return;
  }
  uint64_t epoch = 0;
  // A refusal (a view for a previous process at this address) is not worth a line per
  // heartbeat.
  (void)impl_->ReceiveView(std::move(parsed).value(), "from a heartbeat of " + from_id, from_id,
                           "offered", &epoch);
}

void Membership::ReportTransitionReady(uint64_t epoch) { impl_->ReportTransitionReady(epoch); }

TransitionStatus Membership::Transition() const { return impl_->Transition(); }

Status Membership::RequestLeave() { return impl_->RequestLeave(); }

bool Membership::WaitLeft(std::chrono::milliseconds timeout) { return impl_->WaitLeft(timeout); }

bool Membership::left() const { return impl_->left.load(); }

bool Membership::leave_requested() const { return impl_->leave_requested.load(); }

void Membership::SetRejoinHook(std::function<void()> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->rejoin_hook = std::move(fn);
}

void Membership::SetLeftHook(std::function<void()> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->left_hook = std::move(fn);
}

void Membership::SetMayCoordinate(std::function<bool()> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->may_coordinate = std::move(fn);
}

void Membership::SetLeaveStateHook(std::function<void()> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->leave_state_hook = std::move(fn);
}

}  // namespace ringcache::internal

// CallbackServer: the gRPC server of a node, on gRPC's callback API.
//
// Layout (docs/design/threading.md has the full picture and the measurement that chose
// this API over completion queues):
//  - every method of ringcache.v1.Cache is registered on the callback API; gRPC runs the
//    handlers and reactions on its own threads (there are no ringcache server threads);
//  - unary rpcs: a small ServerUnaryReactor per call parses the request, runs the
//    CacheService handler inline and records the call's metrics when it is done;
//  - Pipeline: PipelineReactor (pipeline_reactor.h), one Read and one Write outstanding
//    at most, its state under a per-stream mutex;
//  - WatchTopology: WatchTopologyReactor (topology_watch.h); the server subscribes to the
//    node's Membership and fans every adopted view out to the open watch streams;
//  - health (grpc.health.v1) and reflection come from gRPC's own implementations. The
//    services "" and "ringcache.v1.Cache" report the node's state (SetServing): a node with
//    membership starts NOT_SERVING and the Node flips it to SERVING in NodeState::kServing.
//
// Shutdown: BeginShutdown() flips health to NOT_SERVING, ends every WatchTopology stream
// (UNAVAILABLE) and asks every Pipeline stream to drain; Shutdown(deadline) stops accepting, waits
// for calls to finish until `deadline`, cancels the rest, and returns once every ringcache call is
// done. Calls that are not ours (health Watch, reflection streams) never end by themselves: once no
// ringcache call is left they are cancelled, so they do not hold the shutdown for the whole grace
// period.
//
// Thread safety: Start, BeginShutdown and Shutdown are called by the owning Node (which
// serializes them); never from a gRPC thread. SetServing may be called from any thread,
// concurrently with them (health_mu_).
#pragma once

#include <grpcpp/impl/service_type.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache_service.h"
#include "client_auth.h"
#include "cluster_auth.h"
#include "node_metrics.h"
#include "pipeline_reactor.h"
#include "request_metadata.h"
#include "ringcache/status.h"
#include "topology_watch.h"
#include "view_waits.h"

namespace ringcache::internal {

class Membership;

// Who calls a gRPC port: clients and members alike (one port), or one plane only (a node
// with a cluster port of its own, NodeOptions::cluster_listen_address).
enum class PortPlane : uint8_t {
  kShared,   // Clients, and members' calls (forwarded calls, probes).
  kClients,  // The client port: a member's call is refused (members use the cluster port).
  kCluster,  // The cluster port: with a cluster secret, a call without it is refused.
};

// What every call needs. Constant after CallbackServer::Start, apart from the members
// that say otherwise.
struct ServerEnv {
  CacheService* handlers = nullptr;  // Not owned.
  NodeMetrics* metrics = nullptr;    // Not owned.
  // Who may forward calls to this node (cluster_auth.h). Not owned; nullptr = anyone.
  const ClusterAuth* cluster_auth = nullptr;
  // Which clients may call, and what they may do (client_auth.h). Not owned; nullptr or
  // without tokens: any caller is admin.
  const ClientAuth* client_auth = nullptr;
  PortPlane plane = PortPlane::kShared;

  // Whether a call may run, and with which role (md->role), checked before its request is
  // acted on. First the cluster plane: a call that claims to be forwarded by a member
  // (ringcache-forwarded-by) skips routing, so it must carry the cluster secret. It then
  // runs with the role its forwarder found (ringcache-role), or as admin without one (a
  // member's stream of forwarded operations: the forwarder checked each one). Any other
  // call runs with its client token's role. Last, the rpc's own need (`needed`: Stats
  // needs read; MultiSet, read-write). `what` names the rpc ("Cache.Get") in errors.
  // (Client tokens need a cluster secret, NodeOptions::Validate: otherwise anyone could
  // claim to forward.)
  // On a port of one plane (PortPlane), a call of the other plane is refused first.
  grpc::Status Admit(RequestMetadata* md, grpc::ServerContextBase* ctx, std::string_view what,
                     Role needed) const {
    if (plane != PortPlane::kShared) [[unlikely]] {
      if (grpc::Status s = CheckPlane(*md, ctx, what); !s.ok()) return s;
    }
    // With node identity, a member forwards only in its own name.
    if (!md->forwarded_by.empty() && cluster_auth != nullptr && cluster_auth->node_identity())
        [[unlikely]] {
      if (grpc::Status s = cluster_auth->CheckClaim(ctx, "a forwarded call",
                                                    "ringcache-forwarded-by", md->forwarded_by);
          !s.ok()) {
        return s;
      }
    }
    // A member's own calls (a coordinator's Stats probe of a joiner's address) carry the
    // secret without forwarding anything: they are members' calls too.
    if ((!md->forwarded_by.empty() || !md->cluster_secret.empty()) && cluster_auth != nullptr &&
        !cluster_auth->open()) {
      if (grpc::Status s = cluster_auth->Check(
              md->cluster_secret, ctx,
              md->forwarded_by.empty() ? "a member's call" : "a forwarded call");
          !s.ok()) {
        return s;
      }
      md->role = md->role_claim.empty() ? Role::kAdmin : RoleNamed(md->role_claim);
    } else if (client_auth == nullptr) {
      md->role = Role::kAdmin;
    } else if (grpc::Status s = client_auth->Authenticate(md->authorization, ctx, what, &md->role);
               !s.ok()) {
      return s;
    }
    if (md->role < needed) [[unlikely]] {
      return RoleTooLow(what, needed, md->role);
    }
    return grpc::Status::OK;
  }
  // A member's call (forwarded, or carrying the cluster secret) on the client port is
  // PERMISSION_DENIED; a call without the cluster secret on the cluster port is
  // UNAUTHENTICATED (counted as a cluster-plane refusal). OK otherwise.
  grpc::Status CheckPlane(const RequestMetadata& md, grpc::ServerContextBase* ctx,
                          std::string_view what) const;

  // Internal synchronization.
  mutable PipelineStreams streams;
  mutable TopologyWatchers watchers;
  mutable ViewWaits view_waits;  // Unary calls forwarded from one view ahead.
  // ringcache calls (unary and Pipeline) that have started and whose OnDone has not
  // finished. Read by Shutdown().
  mutable std::atomic<int64_t> active_calls{0};

  void CallStarted() const { active_calls.fetch_add(1, std::memory_order_relaxed); }
  // The last thing a call does with the env.
  void CallEnded() const { active_calls.fetch_sub(1, std::memory_order_release); }
};

struct CallbackServerOptions {
  // HOST:PORT to bind; port 0 = any free port (see CallbackServer::port()).
  std::string listen_address;
  // Largest request message accepted. Default 4 MiB.
  int max_receive_message_bytes = 4 << 20;
  // NodeOptions::max_streams_per_connection and grow_receive_windows.
  uint32_t max_streams_per_connection = 0;
  bool grow_receive_windows = true;
  // More services to serve on the same port (the node's Membership and Replication). Not
  // owned; they must outlive the server. Default none.
  std::vector<grpc::Service*> extra_services = {};
  // The port's credentials (NodeTls's with TLS); nullptr = plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;
  // Check forwarded calls and clients' tokens (ServerEnv::Admit). Not owned; nullptr = no
  // check.
  const ClusterAuth* cluster_auth = nullptr;
  const ClientAuth* client_auth = nullptr;
  // Who calls this port. Default both planes.
  PortPlane plane = PortPlane::kShared;
};

class CallbackServer {
 public:
  // Binds options.listen_address and starts the server. UNAVAILABLE naming the address if
  // it cannot be bound. `handlers` and `metrics` are not owned and must outlive the server.
  static Result<std::unique_ptr<CallbackServer>> Start(const CallbackServerOptions& options,
                                                       CacheService* handlers,
                                                       NodeMetrics* metrics);

  // Calls Shutdown(now) if Shutdown was not called.
  ~CallbackServer();
  CallbackServer(const CallbackServer&) = delete;
  CallbackServer& operator=(const CallbackServer&) = delete;

  // The health status of "" and "ringcache.v1.Cache": SERVING or NOT_SERVING. Ignored once
  // BeginShutdown has started (health stays NOT_SERVING). Any thread.
  void SetServing(bool serving);

  // Health NOT_SERVING; WatchTopology streams end with UNAVAILABLE; Pipeline streams
  // flush what they have read (and wait for their forwarded operations) and end with
  // UNAVAILABLE. Returns at once. Idempotent.
  void BeginShutdown();
  // BeginShutdown(), then stop accepting, let calls finish until `deadline`, cancel the
  // rest; returns when no ringcache call is left. Idempotent.
  void Shutdown(std::chrono::system_clock::time_point deadline);

  int port() const { return port_; }

 private:
  class Service;

  CallbackServer();

  // Constant after Start.
  ServerEnv env_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  // Serializes health changes against BeginShutdown's final NOT_SERVING.
  std::mutex health_mu_;
  bool health_closed_ = false;  // Protected by health_mu_.

  // Used only by the owner's thread (see the class comment).
  Membership* membership_ = nullptr;  // Not owned; null once unsubscribed.
  int subscription_ = -1;             // Feeds env_.watchers.
  bool shutdown_begun_ = false;
  bool shut_down_ = false;
};

}  // namespace ringcache::internal

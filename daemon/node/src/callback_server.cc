#include "callback_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <cassert>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "membership.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "subscribe_stream.h"
#include "topology.h"

namespace ringcache::internal {
namespace {

// The health service names that report the node's state.
constexpr const char* kHealthServices[] = {"", "ringcache.v1.Cache"};

// One unary call, and the UnaryCall its CacheService handler serves. The handler runs in
// the constructor, on the gRPC thread that delivered the call, and ends the call with Reply
// or ReplyRelayed, inline (a key served here) or later from another thread (a forwarded call,
// a write-concern wait). gRPC keeps a Finish made before the reactor is bound (the handler
// returns it) and sends it once bound, so the handler may end the call at any time. OnDone
// (the response sent, or the call gone) records the metrics and deletes the reactor, so the
// latency includes sending the response, as it did on the completion-queue server. (gRPC's
// DefaultReactor would save the allocation but has no completion event.)
//
// The methods are registered raw (ByteBuffer in and out) and parse here, for two reasons:
// gRPC 1.51's typed callback handler answers a request that does not parse with
// UNIMPLEMENTED, while every earlier front end (and the generated completion-queue and
// synchronous handlers) answered INTERNAL; and a forwarded call relays the raw bytes both
// ways without parsing the response. A request that does not parse is not counted in the
// metrics.
// Traits: Request/Response types, kRpc, kName, kHandler (CacheService::X).
template <typename Traits>
class UnaryReactor final : public grpc::ServerUnaryReactor,
                           public UnaryCall<typename Traits::Request, typename Traits::Response> {
 public:
  using Request = typename Traits::Request;
  using Response = typename Traits::Response;
  using Call = UnaryCall<Request, Response>;

  UnaryReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx,
               const grpc::ByteBuffer* request_bytes, grpc::ByteBuffer* response_bytes)
      : Call(ctx, request_bytes), env_(env), response_bytes_(response_bytes) {
    env_->CallStarted();
    grpc::ByteBuffer buffer(*request_bytes);  // Shares the slices; Deserialize consumes it.
    if (!grpc::SerializationTraits<Request>::Deserialize(&buffer, this->request_).ok()) {
      counted_ = false;
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot parse the request message"));
      return;
    }
    started_ = std::chrono::steady_clock::now();
    if (ctx->deadline() <= std::chrono::system_clock::now()) {
      code_ = grpc::StatusCode::DEADLINE_EXCEEDED;
      Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"));
      return;
    }
    this->metadata_ = RequestMetadata::Read(ctx);
    if (grpc::Status allowed = env_->Admit(&this->metadata_, ctx, Traits::kWhat, Traits::kNeeds);
        !allowed.ok()) {
      code_ = allowed.error_code();
      Finish(std::move(allowed));
      return;
    }
    (env_->handlers->*Traits::kHandler)(*this);
    // The call may be over (and this deleted, once bound) as soon as the handler ended it.
  }

  void Reply(grpc::Status status) override {
    if (status.ok()) {
      bool own_buffer = false;
      status = grpc::SerializationTraits<Response>::Serialize(*this->response_, response_bytes_,
                                                              &own_buffer);
    }
    code_ = status.error_code();
    Finish(std::move(status));
  }

  // The handler runs again once this node holds the view `epoch` (or after ViewWaits'
  // bound), on the thread that reports it; only once per call.
  bool RetryOnView(uint64_t epoch) override {
    if (view_wait_ != nullptr) return false;
    view_wait_ = std::make_unique<ViewWaits::Waiter>();
    view_wait_->rerun = [this] { (env_->handlers->*Traits::kHandler)(*this); };
    const CacheService* handlers = env_->handlers;
    env_->view_waits.Wait(view_wait_.get(), epoch, this->context()->deadline(), [handlers] {
      const auto now = handlers->SharedTopology();
      return now != nullptr ? now->epoch() : 0;
    });
    return true;
  }

  void ReplyRelayed(grpc::Status status, grpc::ByteBuffer* response_bytes) override {
    if (status.ok()) response_bytes_->Swap(response_bytes);
    code_ = status.error_code();
    Finish(std::move(status));
  }

  // OnDone only records the metrics and frees the reactor, so it may run inline on the
  // thread that completes the call. Otherwise gRPC 1.51 hands every unary OnDone to its
  // default-executor thread: a wake-up and a context switch per call (see threading.md).
  bool InternalInlineable() override { return true; }

  void OnDone() override {
    if (counted_) {
      env_->metrics->Record(Traits::kRpc, code_, std::chrono::steady_clock::now() - started_);
    }
    const ServerEnv* env = env_;
    delete this;
    env->CallEnded();
  }

 private:
  ~UnaryReactor() override = default;

  const ServerEnv* const env_;              // Not owned.
  grpc::ByteBuffer* const response_bytes_;  // gRPC's; valid until OnDone.
  std::chrono::steady_clock::time_point started_;
  // Written by whichever thread ends the call, read in OnDone (which gRPC orders after).
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  bool counted_ = true;  // False: the request did not parse.
  // Set by RetryOnView (the handler runs at most twice); freed with the reactor, after
  // its alarm's callback has finished the call.
  std::unique_ptr<ViewWaits::Waiter> view_wait_;
};

// kNeeds: the least role that may make the call at all (client_auth.h). Batch and
// Pipeline mix reads and writes, so the router checks each of their operations (as it
// does every operation; CheckRole).
#define RINGCACHE_UNARY_TRAITS(Name, Needs)                   \
  struct Name##Traits {                                       \
    using Request = v1::Name##Request;                        \
    using Response = v1::Name##Response;                      \
    static constexpr Rpc kRpc = Rpc::k##Name;                 \
    static constexpr const char* kName = #Name;               \
    static constexpr std::string_view kWhat = "Cache." #Name; \
    static constexpr Role kNeeds = Role::Needs;               \
    static constexpr auto kHandler = &CacheService::Name;     \
  };

RINGCACHE_UNARY_TRAITS(Get, kRead)
RINGCACHE_UNARY_TRAITS(Set, kReadWrite)
RINGCACHE_UNARY_TRAITS(Delete, kReadWrite)
RINGCACHE_UNARY_TRAITS(Touch, kReadWrite)
RINGCACHE_UNARY_TRAITS(Ttl, kRead)
RINGCACHE_UNARY_TRAITS(Incr, kReadWrite)
RINGCACHE_UNARY_TRAITS(SetRange, kReadWrite)
// Reads and writes: the router checks each command's own role (CheckRole), as for Batch.
RINGCACHE_UNARY_TRAITS(Collection, kRead)
RINGCACHE_UNARY_TRAITS(MultiGet, kRead)
RINGCACHE_UNARY_TRAITS(MultiSet, kReadWrite)
RINGCACHE_UNARY_TRAITS(MultiDelete, kReadWrite)
RINGCACHE_UNARY_TRAITS(Batch, kRead)
RINGCACHE_UNARY_TRAITS(Stats, kRead)
RINGCACHE_UNARY_TRAITS(Publish, kReadWrite)
RINGCACHE_UNARY_TRAITS(Snapshot, kAdmin)
#undef RINGCACHE_UNARY_TRAITS

// Topology answers a ClusterView, so the macro's naming does not fit.
struct TopologyTraits {
  using Request = v1::TopologyRequest;
  using Response = v1::ClusterView;
  static constexpr Rpc kRpc = Rpc::kTopology;
  static constexpr const char* kName = "Topology";
  static constexpr std::string_view kWhat = "Cache.Topology";
  static constexpr Role kNeeds = Role::kRead;
  static constexpr auto kHandler = &CacheService::Topology;
};

// The index of `method` in ringcache.v1.Cache, which is its index in the generated service.
int MethodIndex(const char* method) {
  const google::protobuf::MethodDescriptor* m =
      v1::GetRequest::descriptor()->file()->FindServiceByName("Cache")->FindMethodByName(method);
  assert(m != nullptr);
  return m->index();
}

template <typename Traits>
grpc::internal::MethodHandler* UnaryHandler(const ServerEnv* env) {
  return new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
      [env](grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
            grpc::ByteBuffer* response) -> grpc::ServerUnaryReactor* {
        return new UnaryReactor<Traits>(env, ctx, request, response);
      });
}

}  // namespace

// ringcache.v1.Cache on the callback API: each method only creates its reactor. The unary
// methods are raw (see UnaryReactor); Pipeline is typed.
class CallbackServer::Service final : public v1::Cache::Service {
 public:
  explicit Service(const ServerEnv* env) {
    MarkUnary<GetTraits>(env);
    MarkUnary<SetTraits>(env);
    MarkUnary<DeleteTraits>(env);
    MarkUnary<TouchTraits>(env);
    MarkUnary<TtlTraits>(env);
    MarkUnary<IncrTraits>(env);
    MarkUnary<SetRangeTraits>(env);
    MarkUnary<CollectionTraits>(env);
    MarkUnary<MultiGetTraits>(env);
    MarkUnary<MultiSetTraits>(env);
    MarkUnary<MultiDeleteTraits>(env);
    MarkUnary<BatchTraits>(env);
    MarkUnary<StatsTraits>(env);
    MarkUnary<TopologyTraits>(env);
    MarkUnary<PublishTraits>(env);
    MarkUnary<SnapshotTraits>(env);
    MarkMethodCallback(
        MethodIndex("Subscribe"),
        new grpc::internal::CallbackServerStreamingHandler<v1::SubscribeRequest,
                                                           v1::SubscribeResponse>(
            [env](grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* request) {
              return new SubscribeReactor(env, ctx, request);
            }));
    MarkMethodCallback(
        MethodIndex("WatchTopology"),
        new grpc::internal::CallbackServerStreamingHandler<v1::TopologyRequest, v1::ClusterView>(
            [env](grpc::CallbackServerContext* ctx, const v1::TopologyRequest*) {
              return new WatchTopologyReactor(env, ctx);
            }));
    MarkMethodCallback(
        MethodIndex("Pipeline"),
        new grpc::internal::CallbackBidiHandler<v1::PipelineRequest, v1::PipelineResponse>(
            [env](grpc::CallbackServerContext* ctx) { return new PipelineReactor(env, ctx); }));
  }

 private:
  template <typename Traits>
  void MarkUnary(const ServerEnv* env) {
    MarkMethodRawCallback(MethodIndex(Traits::kName), UnaryHandler<Traits>(env));
  }
};

grpc::Status ServerEnv::CheckPlane(const RequestMetadata& md, grpc::ServerContextBase* ctx,
                                   std::string_view what) const {
  if (plane == PortPlane::kClients) {
    if (md.forwarded_by.empty() && md.cluster_secret.empty()) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string(what) +
                            ": this is the node's client port, and members call each other on "
                            "its cluster port (--cluster-listen); a call that is forwarded or "
                            "carries the cluster secret is refused here");
  }
  // The cluster port: members only. An open plane cannot tell a member from anyone else.
  if (cluster_auth == nullptr || cluster_auth->open()) return grpc::Status::OK;
  return cluster_auth->Check(md.cluster_secret, ctx,
                             std::string(what) +
                                 " on the cluster port (members only; clients "
                                 "call the node's client port)");
}

CallbackServer::CallbackServer() = default;

Result<std::unique_ptr<CallbackServer>> CallbackServer::Start(const CallbackServerOptions& options,
                                                              CacheService* handlers,
                                                              NodeMetrics* metrics) {
  // Both are process-wide switches read by ServerBuilder; setting them again is harmless.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<CallbackServer> server(new CallbackServer());
  server->env_.handlers = handlers;
  server->env_.metrics = metrics;
  server->env_.cluster_auth = options.cluster_auth;
  server->env_.client_auth = options.client_auth;
  server->env_.plane = options.plane;
  server->service_ = std::make_unique<Service>(&server->env_);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      options.listen_address,
      options.credentials != nullptr ? options.credentials : grpc::InsecureServerCredentials(),
      &port);
  builder.RegisterService(server->service_.get());
  for (grpc::Service* service : options.extra_services) builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which would let two nodes bind the same port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_streams_per_connection != 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(options.max_streams_per_connection));
  }
  if (!options.grow_receive_windows) builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Reflection is a synchronous service: give it a small poller pool of its own.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return Status::Unavailable("cannot listen on " + options.listen_address +
                               " (address in use, not local, or malformed; gRPC's log above "
                               "has the reason)");
  }
  server->port_ = port;
  if (Membership* membership = handlers->membership()) {
    // Every view adopted from now on goes to the open watch streams. (A stream reads the
    // current view itself when it opens.)
    const ServerEnv* env = &server->env_;
    server->membership_ = membership;
    server->subscription_ =
        membership->Subscribe([env](const std::shared_ptr<const Topology>& topology) {
          v1::ClusterView view;
          env->handlers->FillView(topology.get(), &view);
          env->watchers.Publish(view);
          env->streams.OnView(topology->epoch());
          env->view_waits.OnView(topology->epoch());
        });
  }
  // A standalone server serves at once; a cluster node's health follows its state (the
  // Node calls SetServing once it is serving).
  server->SetServing(handlers->membership() == nullptr);
  return server;
}

void CallbackServer::SetServing(bool serving) {
  std::lock_guard lock(health_mu_);
  if (health_closed_ || server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    for (const char* name : kHealthServices) health->SetServingStatus(name, serving);
  }
}

CallbackServer::~CallbackServer() { Shutdown(std::chrono::system_clock::now()); }

void CallbackServer::BeginShutdown() {
  if (shutdown_begun_ || server_ == nullptr) return;
  shutdown_begun_ = true;
  SetServing(false);
  {
    std::lock_guard lock(health_mu_);
    health_closed_ = true;
  }
  // No more views for the watchers (Unsubscribe waits for a Publish in progress), then end
  // them: a watch never ends by itself, and must not hold the shutdown for the grace period.
  if (membership_ != nullptr) {
    membership_->Unsubscribe(subscription_);
    membership_ = nullptr;
  }
  env_.watchers.CloseAll();
  env_.handlers->pubsub().CloseAll(Status::Unavailable(
      "node " + env_.handlers->self_id() + " is shutting down; subscribe through another node"));
  env_.streams.DrainAll();
}

void CallbackServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ == nullptr) return;
  BeginShutdown();
  // Server::Shutdown stops accepting, waits for in-flight calls until the deadline, then
  // cancels them.
  std::atomic<bool> stopped{false};
  std::thread stopper([this, deadline, &stopped] {
    server_->Shutdown(deadline);
    stopped.store(true, std::memory_order_release);
  });
  // Meanwhile: once our own calls are done (seen twice, 5 ms apart, so that a call
  // accepted just before the shutdown has reached its handler), cancel what is left —
  // only calls of other services (health Watch, reflection) can be. Cancelling drops the
  // connections without flushing them, and a Pipeline stream's final status may still be
  // in a connection's write buffer when its OnDone has run (seen once in ~150 runs of the
  // drain test under load). So first give Server::Shutdown kSettle to end by itself,
  // which it does when no other service's call is open; only a watcher pays the wait.
  constexpr auto kPoll = std::chrono::milliseconds(5);
  constexpr int kSettlePolls = 10;  // kSettle = 50 ms.
  int idle_polls = 0;
  while (!stopped.load(std::memory_order_acquire) && std::chrono::system_clock::now() < deadline) {
    idle_polls = env_.active_calls.load(std::memory_order_acquire) == 0 ? idle_polls + 1 : 0;
    if (idle_polls >= 2 + kSettlePolls) {
      grpc_server_cancel_all_calls(server_->c_server());
      break;
    }
    std::this_thread::sleep_for(kPoll);
  }
  stopper.join();
  // Every call has been completed or cancelled; wait for the last OnDone reactions, which
  // use the handlers and metrics the Node destroys after this returns.
  while (env_.active_calls.load(std::memory_order_acquire) != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace ringcache::internal

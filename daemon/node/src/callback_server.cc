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
#include <string>
#include <thread>
#include <utility>

#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::internal {
namespace {

// The health service names that report the node's state.
constexpr const char* kHealthServices[] = {"", "ringcache.v1.Cache"};

// One unary call. The handler runs inline in the constructor, on the gRPC thread that
// delivered the call; OnDone (the response sent, or the call gone) records the metrics
// and deletes the reactor, so the latency includes sending the response, as it did on the
// completion-queue server. (gRPC's DefaultReactor would save the allocation but has no
// completion event.)
//
// The methods are registered raw (ByteBuffer in and out) and parse here, for one reason:
// gRPC 1.51's typed callback handler answers a request that does not parse with
// UNIMPLEMENTED, while every earlier front end (and the generated completion-queue and
// synchronous handlers) answered INTERNAL. Such a call never reached a handler before and
// is not counted in the metrics now either.
// Traits: Request/Response types, kRpc, kName, kHandler (CacheService::X).
template <typename Traits>
class UnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  using Request = typename Traits::Request;
  using Response = typename Traits::Response;

  UnaryReactor(const ServerEnv* env, grpc::CallbackServerContext* ctx,
               const grpc::ByteBuffer* request_bytes, grpc::ByteBuffer* response_bytes)
      : env_(env) {
    env_->CallStarted();
    grpc::ByteBuffer buffer(*request_bytes);  // Shares the slices; Deserialize consumes it.
    Request request;
    if (!grpc::SerializationTraits<Request>::Deserialize(&buffer, &request).ok()) {
      counted_ = false;
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot parse the request message"));
      return;
    }
    started_ = std::chrono::steady_clock::now();
    grpc::Status status;
    Response response;
    if (ctx->deadline() <= std::chrono::system_clock::now()) {
      status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
    } else {
      status = (env_->handlers->*Traits::kHandler)(request, &response);
    }
    if (status.ok()) {
      bool own_buffer = false;
      status =
          grpc::SerializationTraits<Response>::Serialize(response, response_bytes, &own_buffer);
    }
    code_ = status.error_code();
    Finish(std::move(status));
  }

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

  const ServerEnv* const env_;  // Not owned.
  std::chrono::steady_clock::time_point started_;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  bool counted_ = true;  // False: the request did not parse.
};

#define RINGCACHE_UNARY_TRAITS(Name)                      \
  struct Name##Traits {                                   \
    using Request = v1::Name##Request;                    \
    using Response = v1::Name##Response;                  \
    static constexpr Rpc kRpc = Rpc::k##Name;             \
    static constexpr const char* kName = #Name;           \
    static constexpr auto kHandler = &CacheService::Name; \
  };

RINGCACHE_UNARY_TRAITS(Get)
RINGCACHE_UNARY_TRAITS(Set)
RINGCACHE_UNARY_TRAITS(Delete)
RINGCACHE_UNARY_TRAITS(Touch)
RINGCACHE_UNARY_TRAITS(Ttl)
RINGCACHE_UNARY_TRAITS(Incr)
RINGCACHE_UNARY_TRAITS(MultiGet)
RINGCACHE_UNARY_TRAITS(MultiSet)
RINGCACHE_UNARY_TRAITS(MultiDelete)
RINGCACHE_UNARY_TRAITS(Stats)
#undef RINGCACHE_UNARY_TRAITS

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
    MarkUnary<MultiGetTraits>(env);
    MarkUnary<MultiSetTraits>(env);
    MarkUnary<MultiDeleteTraits>(env);
    MarkUnary<StatsTraits>(env);
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
  server->service_ = std::make_unique<Service>(&server->env_);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which would let two nodes bind the same port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
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
  if (grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService()) {
    for (const char* name : kHealthServices) health->SetServingStatus(name, true);
  }
  return server;
}

CallbackServer::~CallbackServer() { Shutdown(std::chrono::system_clock::now()); }

void CallbackServer::BeginShutdown() {
  if (shutdown_begun_ || server_ == nullptr) return;
  shutdown_begun_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    for (const char* name : kHealthServices) health->SetServingStatus(name, false);
  }
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

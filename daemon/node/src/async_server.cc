#include "async_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>
#include <pthread.h>

#include <string>
#include <utility>

#include "pipeline_call.h"

namespace ringcache::internal {
namespace {

// The health service names that report the node's state.
constexpr const char* kHealthServices[] = {"", "ringcache.v1.Cache"};

// One unary call: requested -> (arrived) handled, Finish sent -> (finished) recorded, deleted.
// Traits: Request/Response types, kRpc, kRequestFn (AsyncService::RequestX), kHandler
// (CacheService::X).
template <typename Traits>
class UnaryCall final : public CqTag {
 public:
  // Requests the next call of this rpc on `context`'s queue. The object deletes itself.
  static void Request(const ServerEnv* env, CqContext* context) {
    auto* call = new UnaryCall(env, context);
    (env->service->*Traits::kRequestFn)(&call->ctx_, &call->request_, &call->responder_,
                                        context->cq.get(), context->cq.get(), call);
  }

  void Proceed(bool ok) override {
    if (!finishing_) {
      if (!ok) {  // The server is shutting down; no call arrived.
        delete this;
        return;
      }
      Request(env_, context_);  // Keep one call of this rpc requested on this queue.
      context_->CallStarted();
      started_ = std::chrono::steady_clock::now();
      grpc::Status status;
      if (ctx_.deadline() <= std::chrono::system_clock::now()) {
        status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
      } else {
        status = (env_->handlers->*Traits::kHandler)(request_, &response_);
      }
      code_ = status.error_code();
      finishing_ = true;
      if (status.ok()) {
        responder_.Finish(response_, status, this);
      } else {
        responder_.FinishWithError(status, this);
      }
      return;
    }
    // Finish completed (ok=false: the client was gone; the call is over either way).
    env_->metrics->Record(Traits::kRpc, code_, std::chrono::steady_clock::now() - started_);
    context_->CallEnded();
    delete this;
  }

 private:
  UnaryCall(const ServerEnv* env, CqContext* context)
      : env_(env), context_(context), responder_(&ctx_) {}
  ~UnaryCall() = default;

  const ServerEnv* const env_;  // Not owned.
  CqContext* const context_;    // Not owned.
  grpc::ServerContext ctx_;
  typename Traits::Request request_;
  typename Traits::Response response_;
  grpc::ServerAsyncResponseWriter<typename Traits::Response> responder_;
  std::chrono::steady_clock::time_point started_;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  bool finishing_ = false;
};

#define RINGCACHE_UNARY_TRAITS(Name)                                            \
  struct Name##Traits {                                                         \
    using Request = v1::Name##Request;                                          \
    using Response = v1::Name##Response;                                        \
    static constexpr Rpc kRpc = Rpc::k##Name;                                   \
    static constexpr auto kRequestFn = &v1::Cache::AsyncService::Request##Name; \
    static constexpr auto kHandler = &CacheService::Name;                       \
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

// Requests one call of every rpc on a queue.
void RequestAll(const ServerEnv* env, CqContext* context) {
  UnaryCall<GetTraits>::Request(env, context);
  UnaryCall<SetTraits>::Request(env, context);
  UnaryCall<DeleteTraits>::Request(env, context);
  UnaryCall<TouchTraits>::Request(env, context);
  UnaryCall<TtlTraits>::Request(env, context);
  UnaryCall<IncrTraits>::Request(env, context);
  UnaryCall<MultiGetTraits>::Request(env, context);
  UnaryCall<MultiSetTraits>::Request(env, context);
  UnaryCall<MultiDeleteTraits>::Request(env, context);
  UnaryCall<StatsTraits>::Request(env, context);
  PipelineCall::Request(env, context);
}

}  // namespace

void DrainTag::Proceed(bool ok) {
  if (ok) PipelineCall::DrainAll(context_);
}

Result<std::unique_ptr<AsyncServer>> AsyncServer::Start(const AsyncServerOptions& options,
                                                        CacheService* handlers,
                                                        NodeMetrics* metrics) {
  // Both are process-wide switches read by ServerBuilder; setting them again is harmless.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<AsyncServer> server(new AsyncServer());
  server->env_ = ServerEnv{.service = &server->service_, .handlers = handlers, .metrics = metrics};

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&server->service_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which would let two nodes bind the same port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Reflection is a synchronous service: give it a small poller pool of its own.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  for (uint32_t i = 0; i < options.threads; ++i) {
    auto context = std::make_unique<CqContext>();
    context->index = static_cast<int>(i);
    context->cq = builder.AddCompletionQueue();
    server->queues_.push_back(std::move(context));
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    // Nothing was requested on the queues: destroying them shuts them down. (Shutting them
    // down through the C++ API here logs a spurious "shutdown before its server" error.)
    server->queues_.clear();
    return Status::Unavailable("cannot listen on " + options.listen_address +
                               " (address in use, not local, or malformed; gRPC's log above "
                               "has the reason)");
  }
  server->port_ = port;
  if (grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService()) {
    for (const char* name : kHealthServices) health->SetServingStatus(name, true);
  }
  for (auto& context : server->queues_) RequestAll(&server->env_, context.get());
  server->threads_.reserve(server->queues_.size());
  for (auto& context : server->queues_) {
    CqContext* c = context.get();
    AsyncServer* s = server.get();
    server->threads_.emplace_back([s, c] { s->RunQueue(c); });
  }
  return server;
}

AsyncServer::~AsyncServer() { Shutdown(std::chrono::system_clock::now()); }

void AsyncServer::RunQueue(CqContext* context) {
  const std::string name = "rc-cq-" + std::to_string(context->index);
  pthread_setname_np(pthread_self(), name.c_str());
  void* tag = nullptr;
  bool ok = false;
  while (context->cq->Next(&tag, &ok)) static_cast<CqTag*>(tag)->Proceed(ok);
}

void AsyncServer::BeginShutdown() {
  if (shutdown_begun_ || server_ == nullptr) return;
  shutdown_begun_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    for (const char* name : kHealthServices) health->SetServingStatus(name, false);
  }
  for (auto& context : queues_) {
    // Fires right away, on the queue's own thread, which owns the stream list.
    context->drain_alarm.Set(context->cq.get(), gpr_now(GPR_CLOCK_MONOTONIC), &context->drain_tag);
  }
}

int64_t AsyncServer::ActiveCalls() const {
  int64_t n = 0;
  for (const auto& context : queues_) n += context->active_calls.load(std::memory_order_relaxed);
  return n;
}

void AsyncServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    BeginShutdown();
    // Server::Shutdown stops accepting, waits for in-flight calls until the deadline, then
    // cancels them. Every call's last event is processed before it returns (see
    // threading.md), so no queue thread requests a new call after the queues are shut
    // down below.
    std::atomic<bool> stopped{false};
    std::thread stopper([this, deadline, &stopped] {
      server_->Shutdown(deadline);
      stopped.store(true, std::memory_order_release);
    });
    // Meanwhile: once our own calls are done (seen twice, 5 ms apart, so that a call
    // accepted just before the shutdown has reached its queue), cancel what is left —
    // only calls of other services (health Watch, reflection) can be.
    constexpr auto kPoll = std::chrono::milliseconds(5);
    int idle_polls = 0;
    while (!stopped.load(std::memory_order_acquire) &&
           std::chrono::system_clock::now() < deadline) {
      idle_polls = ActiveCalls() == 0 ? idle_polls + 1 : 0;
      if (idle_polls >= 2) {
        grpc_server_cancel_all_calls(server_->c_server());
        break;
      }
      std::this_thread::sleep_for(kPoll);
    }
    stopper.join();
  }
  for (auto& context : queues_) context->cq->Shutdown();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace ringcache::internal

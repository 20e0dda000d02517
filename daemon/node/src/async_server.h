// AsyncServer: the gRPC server of a node, on the asynchronous completion-queue API.
//
// Layout (docs/design/threading.md has the full picture):
//  - one grpc::ServerCompletionQueue per server thread; the thread runs Next() in a loop
//    and hands every tag to its CqTag::Proceed;
//  - every rpc of ringcache.v1.Cache keeps one call requested on every queue; a call's
//    events all arrive on the queue it was requested on, so each call's state machine
//    runs on exactly one thread and needs no lock;
//  - unary rpcs: UnaryCall<Traits> (requested -> handled + Finish -> done);
//  - Pipeline: PipelineCall (pipeline_call.h), one Read and one Write outstanding at most;
//  - health (grpc.health.v1) and reflection come from gRPC's own implementations.
//
// Shutdown: BeginShutdown() flips health to NOT_SERVING and asks every Pipeline stream to
// drain (an Alarm per queue brings the request onto the queue's thread); Shutdown(deadline)
// stops accepting, waits for calls to finish until `deadline`, cancels the rest, then
// shuts the queues down and joins the threads. Calls that are not ours (health Watch,
// reflection streams) never end by themselves: once no ringcache call is left they are
// cancelled, so they do not hold the shutdown for the whole grace period.
//
// Thread safety: Start, BeginShutdown and Shutdown are called by the owning Node (which
// serializes them); never from a queue thread.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache_service.h"
#include "node_metrics.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::internal {

// Anything whose address is used as a completion-queue tag.
class CqTag {
 public:
  // Called on the queue's thread with the event's `ok` flag.
  virtual void Proceed(bool ok) = 0;

 protected:
  ~CqTag() = default;
};

class PipelineCall;
struct CqContext;

// The tag of a queue's drain alarm: drains the queue's Pipeline streams.
class DrainTag final : public CqTag {
 public:
  explicit DrainTag(CqContext* context) : context_(context) {}
  void Proceed(bool ok) override;

 private:
  CqContext* const context_;  // Not owned.
};

// Per-queue state. Everything but `cq` and `drain_alarm` is touched only by the queue's
// own thread.
struct CqContext {
  int index = 0;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  // Drain request from BeginShutdown(): set once, fires on this queue's thread.
  grpc::Alarm drain_alarm;
  DrainTag drain_tag{this};
  // Open Pipeline streams of this queue (intrusive list through PipelineCall).
  PipelineCall* streams = nullptr;
  // Set by the drain alarm; streams accepted afterwards start draining immediately.
  bool draining = false;
  // ringcache calls of this queue that have arrived and not finished (unary calls and
  // Pipeline streams). Written only by the queue's thread; read by Shutdown().
  std::atomic<int64_t> active_calls{0};

  // Single writer: a plain load + store, no read-modify-write.
  void CallStarted() { AddCalls(1); }
  void CallEnded() { AddCalls(-1); }
  void AddCalls(int64_t n) {
    active_calls.store(active_calls.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// What every call state machine needs. Constant after AsyncServer::Start.
struct ServerEnv {
  v1::Cache::AsyncService* service = nullptr;  // Not owned.
  CacheService* handlers = nullptr;            // Not owned.
  NodeMetrics* metrics = nullptr;              // Not owned.
};

struct AsyncServerOptions {
  std::string listen_address;
  uint32_t threads = 1;
  int max_receive_message_bytes = 4 << 20;
};

class AsyncServer {
 public:
  // Binds options.listen_address, starts the server and its queue threads. UNAVAILABLE
  // naming the address if it cannot be bound. `handlers` and `metrics` are not owned and
  // must outlive the server.
  static Result<std::unique_ptr<AsyncServer>> Start(const AsyncServerOptions& options,
                                                    CacheService* handlers, NodeMetrics* metrics);

  // Calls Shutdown(now) if Shutdown was not called.
  ~AsyncServer();
  AsyncServer(const AsyncServer&) = delete;
  AsyncServer& operator=(const AsyncServer&) = delete;

  // Health NOT_SERVING; Pipeline streams flush what they have read and end with
  // UNAVAILABLE. Returns at once. Idempotent.
  void BeginShutdown();
  // BeginShutdown(), then stop accepting, let calls finish until `deadline`, cancel the
  // rest, stop the queues and join their threads. Idempotent.
  void Shutdown(std::chrono::system_clock::time_point deadline);

  int port() const { return port_; }

 private:
  AsyncServer() = default;
  void RunQueue(CqContext* context);
  int64_t ActiveCalls() const;

  // Constant after Start.
  v1::Cache::AsyncService service_;
  ServerEnv env_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<CqContext>> queues_;
  std::vector<std::thread> threads_;
  int port_ = 0;

  // Used only by the owner's thread (see the class comment).
  bool shutdown_begun_ = false;
  bool shut_down_ = false;
};

}  // namespace ringcache::internal

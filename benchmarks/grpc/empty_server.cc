// ringcache_empty_server: the transport floor of the daemon benchmarks.
//
// Implements ringcache.v1.Cache with no cache behind it: Get answers a fixed, preallocated
// value (32 bytes by default) at once, Set answers version 1, MultiGet/MultiSet/Pipeline
// answer every item likewise, and so on for every rpc. No hashing, no locking, no
// allocation beyond what gRPC and the messages need. It runs on the same server API as
// ringcached (async completion queues, one queue and one polling thread per --threads),
// so ringcache_loadgen drives both with identical message shapes and the ratio
// ringcached / floor is what the cache and the service layer cost on top of gRPC.
//
// Threads: main starts the server, writes --ready-file and waits for SIGINT/SIGTERM.
// Each worker thread owns one ServerCompletionQueue and every call object requested on
// it, so call objects need no synchronization. Shutdown: main sets shutting_down, shuts
// the server down (bounded), then posts an alarm to each queue; the worker that receives
// it shuts its own queue down (so nothing is ever posted to a queue after its Shutdown)
// and drains it.
//
// Flags: --listen HOST:PORT (default 127.0.0.1:7799; port 0 = any free port),
//        --ready-file PATH (atomically writes "grpc=HOST:PORT" once serving),
//        --threads N (default: number of cores), --value-size N (default 32),
//        --pending N (calls of each hot rpc kept requested per queue, default 16).

#include <absl/synchronization/mutex.h>
#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ringcache/v1/cache.grpc.pb.h"
#include "ringcache/v1/cache.pb.h"

namespace {

namespace pb = ringcache::v1;
using Service = pb::Cache::AsyncService;

std::atomic<bool> g_shutting_down{false};

// The fixed answers. Constant after main() parses the flags.
std::string g_value;

// Something posted to a completion queue. cq_open is false once the owning worker has
// shut its queue down: the object must then post nothing and only clean up.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok, bool cq_open) = 0;
};

// --- fixed answers -----------------------------------------------------------------------

void Answer(const pb::GetRequest&, pb::GetResponse* r) {
  r->set_value(g_value);
  r->set_version(1);
}
void Answer(const pb::SetRequest&, pb::SetResponse* r) { r->set_version(1); }
void Answer(const pb::DeleteRequest&, pb::DeleteResponse*) {}
void Answer(const pb::TouchRequest&, pb::TouchResponse*) {}
void Answer(const pb::TtlRequest&, pb::TtlResponse* r) { r->set_ttl_ms(0); }
void Answer(const pb::IncrRequest& q, pb::IncrResponse* r) {
  r->set_value(q.delta());
  r->set_version(1);
}
void Answer(const pb::MultiGetRequest& q, pb::MultiGetResponse* r) {
  r->mutable_results()->Reserve(q.keys_size());
  for (int i = 0; i < q.keys_size(); ++i) {
    pb::GetResult* g = r->add_results();
    g->set_value(g_value);
    g->set_version(1);
  }
}
void Answer(const pb::MultiSetRequest& q, pb::MultiSetResponse* r) {
  r->mutable_results()->Reserve(q.items_size());
  for (int i = 0; i < q.items_size(); ++i) r->add_results()->set_version(1);
}
void Answer(const pb::MultiDeleteRequest& q, pb::MultiDeleteResponse* r) {
  for (int i = 0; i < q.keys_size(); ++i) r->add_results();
}
void Answer(const pb::StatsRequest&, pb::StatsResponse* r) {
  r->set_node_id("empty");
  r->set_server_version("empty-server");
}
void Answer(const pb::PipelineRequest& q, pb::PipelineResponse* r) {
  r->mutable_results()->Reserve(q.ops_size());
  for (const pb::Operation& op : q.ops()) {
    pb::OperationResult* res = r->add_results();
    res->set_id(op.id());
    switch (op.op_case()) {
      case pb::Operation::kGet:
        res->mutable_get()->set_value(g_value);
        res->mutable_get()->set_version(1);
        break;
      case pb::Operation::kSet:
        res->mutable_set()->set_version(1);
        break;
      case pb::Operation::kDelete:
        res->mutable_delete_();
        break;
      case pb::Operation::kTouch:
        res->mutable_touch();
        break;
      case pb::Operation::kTtl:
        res->mutable_ttl();
        break;
      case pb::Operation::kIncr:
        res->mutable_incr()->set_value(op.incr().delta());
        res->mutable_incr()->set_version(1);
        break;
      case pb::Operation::kSetRange:
        res->mutable_set_range()->set_length(op.set_range().value().size());
        res->mutable_set_range()->set_version(1);
        break;
      case pb::Operation::kCollection:
        res->mutable_collection()->set_version(1);
        break;
      case pb::Operation::kPublish:
        res->mutable_publish();
        break;
      case pb::Operation::OP_NOT_SET:
        res->mutable_status()->set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
        res->mutable_status()->set_message("operation has no op set");
        break;
    }
  }
}

// --- unary calls -------------------------------------------------------------------------

// How a unary rpc is requested from the async service. One struct per rpc.
#define RC_UNARY_METHOD(Name, Req, Resp)                                    \
  struct Name##Method {                                                     \
    using Request = pb::Req;                                                \
    using Response = pb::Resp;                                              \
    static void RequestCall(Service* s, grpc::ServerContext* c, Request* q, \
                            grpc::ServerAsyncResponseWriter<Response>* w,   \
                            grpc::ServerCompletionQueue* cq, void* tag) {   \
      s->Request##Name(c, q, w, cq, cq, tag);                               \
    }                                                                       \
  };
RC_UNARY_METHOD(Get, GetRequest, GetResponse)
RC_UNARY_METHOD(Set, SetRequest, SetResponse)
RC_UNARY_METHOD(Delete, DeleteRequest, DeleteResponse)
RC_UNARY_METHOD(Touch, TouchRequest, TouchResponse)
RC_UNARY_METHOD(Ttl, TtlRequest, TtlResponse)
RC_UNARY_METHOD(Incr, IncrRequest, IncrResponse)
RC_UNARY_METHOD(MultiGet, MultiGetRequest, MultiGetResponse)
RC_UNARY_METHOD(MultiSet, MultiSetRequest, MultiSetResponse)
RC_UNARY_METHOD(MultiDelete, MultiDeleteRequest, MultiDeleteResponse)
RC_UNARY_METHOD(Stats, StatsRequest, StatsResponse)
#undef RC_UNARY_METHOD

// One unary call: requested, answered at once, deleted when the answer is sent.
template <typename Method>
class UnaryCall final : public Tag {
 public:
  UnaryCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), writer_(&ctx_) {
    Method::RequestCall(service_, &ctx_, &request_, &writer_, cq_, this);
  }

  void Proceed(bool ok, bool cq_open) override {
    if (answered_ || !ok || !cq_open) {
      delete this;
      return;
    }
    if (!g_shutting_down.load(std::memory_order_relaxed)) new UnaryCall(service_, cq_);
    Answer(request_, &response_);
    answered_ = true;
    writer_.Finish(response_, grpc::Status::OK, this);
  }

 private:
  Service* const service_;           // Not owned.
  grpc::ServerCompletionQueue* cq_;  // Not owned.
  grpc::ServerContext ctx_;
  typename Method::Request request_;
  typename Method::Response response_;
  grpc::ServerAsyncResponseWriter<typename Method::Response> writer_;
  bool answered_ = false;
};

// --- the Pipeline stream -----------------------------------------------------------------

// One Pipeline stream. Keeps one Read and one Write outstanding at a time; answers each
// request message with one response message, in order; reads ahead up to kMaxQueued
// unsent responses. Deleted once finished and no operation is outstanding.
class PipelineCall final {
 public:
  PipelineCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), stream_(&ctx_) {
    ++pending_;
    service_->RequestPipeline(&ctx_, &stream_, cq_, cq_, &accept_tag_);
  }

 private:
  static constexpr size_t kMaxQueued = 64;
  enum class Kind { kAccept, kRead, kWrite, kFinish };

  class OpTag final : public Tag {
   public:
    OpTag(PipelineCall* call, Kind kind) : call_(call), kind_(kind) {}
    void Proceed(bool ok, bool cq_open) override { call_->On(kind_, ok, cq_open); }

   private:
    PipelineCall* const call_;
    const Kind kind_;
  };

  void On(Kind kind, bool ok, bool cq_open) {
    --pending_;
    if (!cq_open) cq_closed_ = true;
    switch (kind) {
      case Kind::kAccept:
        if (!ok || cq_closed_) {
          done_ = true;
          break;
        }
        accepted_ = true;
        if (!g_shutting_down.load(std::memory_order_relaxed)) new PipelineCall(service_, cq_);
        StartRead();
        break;
      case Kind::kRead:
        reading_ = false;
        if (!ok) {
          read_closed_ = true;
        } else if (!broken_ && !cq_closed_) {
          out_.emplace_back();
          Answer(request_, &out_.back());
          if (!writing_) StartWrite();
          if (out_.size() < kMaxQueued) StartRead();
        }
        break;
      case Kind::kWrite:
        writing_ = false;
        out_.pop_front();
        if (!ok) {
          broken_ = true;
          out_.clear();
        }
        if (!out_.empty()) StartWrite();
        if (!reading_ && !read_closed_) StartRead();
        break;
      case Kind::kFinish:
        done_ = true;
        break;
    }
    MaybeFinish();
    if (done_ && pending_ == 0) delete this;
  }

  void StartRead() {
    if (cq_closed_ || broken_) return;
    reading_ = true;
    ++pending_;
    stream_.Read(&request_, &read_tag_);
  }

  void StartWrite() {
    if (cq_closed_) return;
    writing_ = true;
    ++pending_;
    stream_.Write(out_.front(), &write_tag_);
  }

  void MaybeFinish() {
    if (!accepted_ || finishing_ || done_ || reading_ || writing_) return;
    if (cq_closed_) {
      done_ = true;  // Cannot post anything any more; just wait for the last tags.
      return;
    }
    if (!read_closed_ && !broken_) return;
    if (!out_.empty() && !broken_) return;
    finishing_ = true;
    ++pending_;
    stream_.Finish(grpc::Status::OK, &finish_tag_);
  }

  Service* const service_;           // Not owned.
  grpc::ServerCompletionQueue* cq_;  // Not owned.
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<pb::PipelineResponse, pb::PipelineRequest> stream_;
  OpTag accept_tag_{this, Kind::kAccept};
  OpTag read_tag_{this, Kind::kRead};
  OpTag write_tag_{this, Kind::kWrite};
  OpTag finish_tag_{this, Kind::kFinish};
  pb::PipelineRequest request_;
  std::deque<pb::PipelineResponse> out_;  // out_.front() is being written when writing_.
  int pending_ = 0;                       // operations posted and not yet returned
  bool accepted_ = false, reading_ = false, writing_ = false, read_closed_ = false;
  bool broken_ = false, finishing_ = false, done_ = false, cq_closed_ = false;
};

// --- workers -----------------------------------------------------------------------------

// Posted by main after the server has shut down: the worker shuts its own queue down.
class ShutdownTag final : public Tag {
 public:
  explicit ShutdownTag(grpc::ServerCompletionQueue* cq) : cq_(cq) {}
  void Proceed(bool, bool) override { cq_->Shutdown(); }

 private:
  grpc::ServerCompletionQueue* cq_;  // Not owned.
};

// Requests every rpc on `cq` (`pending` of each hot one, so a burst of new calls finds a
// pending request), then serves the queue until it is shut down and drained.
void ServeQueue(Service* service, grpc::ServerCompletionQueue* cq, Tag* shutdown_tag, int pending) {
  for (int i = 0; i < pending; ++i) {
    new UnaryCall<GetMethod>(service, cq);
    new UnaryCall<SetMethod>(service, cq);
    new UnaryCall<MultiGetMethod>(service, cq);
    new UnaryCall<MultiSetMethod>(service, cq);
    new PipelineCall(service, cq);
  }
  for (int i = 0; i < std::min(pending, 2); ++i) {
    new UnaryCall<DeleteMethod>(service, cq);
    new UnaryCall<TouchMethod>(service, cq);
    new UnaryCall<TtlMethod>(service, cq);
    new UnaryCall<IncrMethod>(service, cq);
    new UnaryCall<MultiDeleteMethod>(service, cq);
    new UnaryCall<StatsMethod>(service, cq);
  }
  bool cq_open = true;
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    Tag* t = static_cast<Tag*>(tag);
    if (t == shutdown_tag) cq_open = false;
    t->Proceed(ok, cq_open);
  }
}

// --- flags -------------------------------------------------------------------------------

struct Flags {
  std::string listen = "127.0.0.1:7799";
  std::string ready_file;
  int threads = 0;  // 0 = number of cores
  int value_size = 32;
  int pending = 16;            // calls of each hot rpc kept requested per queue
  bool sync_services = false;  // also serve health + reflection, as ringcached does
};

void PrintHelp() {
  std::printf(
      "ringcache_empty_server: ringcache.v1.Cache answering fixed values (the gRPC floor)\n"
      "\n"
      "Usage: ringcache_empty_server [--flag=value | --flag value]...\n"
      "  --listen HOST:PORT  address to serve (default 127.0.0.1:7799; port 0 = any free)\n"
      "  --ready-file PATH   once serving, atomically write \"grpc=HOST:PORT\" (actual port)\n"
      "  --threads N         completion queues, one polling thread each (default: cores)\n"
      "  --value-size N      bytes of the fixed value of every Get (default 32)\n"
      "  --pending N         calls of Get/Set/MultiGet/MultiSet/Pipeline kept requested\n"
      "                      per queue (default 16)\n"
      "  --sync-services     also serve grpc.health.v1 and reflection with a small sync\n"
      "                      poller pool, as ringcached does (to measure what they cost)\n"
      "  --help              this text\n");
}

bool ParseInt(const std::string& s, int* out) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0 || v > (1 << 26)) return false;
  *out = static_cast<int>(v);
  return true;
}

// Returns 0 to run, 1 after --help, 2 on a bad flag (message printed).
int ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      PrintHelp();
      return 1;
    }
    if (a == "--sync-services") {
      f->sync_services = true;
      continue;
    }
    std::string value;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "ringcache_empty_server: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    bool ok = true;
    if (a == "--listen") {
      f->listen = value;
    } else if (a == "--ready-file") {
      f->ready_file = value;
    } else if (a == "--threads") {
      ok = ParseInt(value, &f->threads);
    } else if (a == "--value-size") {
      ok = ParseInt(value, &f->value_size);
    } else if (a == "--pending") {
      ok = ParseInt(value, &f->pending) && f->pending >= 1;
    } else {
      std::fprintf(stderr, "ringcache_empty_server: unknown flag %s (see --help)\n", a.c_str());
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "ringcache_empty_server: bad value '%s' for %s\n", value.c_str(),
                   a.c_str());
      return 2;
    }
  }
  return 0;
}

bool WriteReadyFile(const std::string& path, const std::string& addr) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fprintf(f, "grpc=%s\n", addr.c_str()) > 0;
  if (std::fclose(f) != 0 || !ok) return false;
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's lock-order (deadlock)
  // detection on: every lock gRPC takes then updates a global graph under a global
  // spinlock, several % of the CPU of a busy server. It only checks gRPC's own
  // locks, so it goes off here as in ringcached, before gRPC starts.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (const int rc = ParseFlags(argc, argv, &flags); rc != 0) return rc == 1 ? 0 : 2;
  if (flags.threads == 0) flags.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (flags.threads <= 0) flags.threads = 1;
  g_value.assign(static_cast<size_t>(flags.value_size), 'v');

  const size_t colon = flags.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "ringcache_empty_server: --listen must be HOST:PORT, got '%s'\n",
                 flags.listen.c_str());
    return 2;
  }
  const std::string host = flags.listen.substr(0, colon);

  // Block the stop signals in every thread (gRPC's included); main waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (flags.sync_services) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  Service service;
  grpc::ServerBuilder builder;
  if (flags.sync_services) {
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  }
  int port = 0;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(-1);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < flags.threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ringcache_empty_server: cannot listen on %s\n", flags.listen.c_str());
    return 1;
  }
  const std::string bound = host + ":" + std::to_string(port);

  std::vector<std::unique_ptr<ShutdownTag>> shutdown_tags;
  std::vector<std::thread> workers;
  for (auto& cq : cqs) {
    shutdown_tags.push_back(std::make_unique<ShutdownTag>(cq.get()));
    workers.emplace_back(ServeQueue, &service, cq.get(), shutdown_tags.back().get(), flags.pending);
  }

  if (!flags.ready_file.empty() && !WriteReadyFile(flags.ready_file, bound)) {
    std::fprintf(stderr, "ringcache_empty_server: cannot write %s\n", flags.ready_file.c_str());
    std::_Exit(1);
  }
  std::fprintf(stderr, "ringcache_empty_server: serving on %s with %d threads, value %d bytes\n",
               bound.c_str(), flags.threads, flags.value_size);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  g_shutting_down.store(true);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::vector<std::unique_ptr<grpc::Alarm>> alarms;
  for (size_t i = 0; i < cqs.size(); ++i) {
    alarms.push_back(std::make_unique<grpc::Alarm>());
    alarms.back()->Set(cqs[i].get(), std::chrono::system_clock::now(), shutdown_tags[i].get());
  }
  for (auto& w : workers) w.join();
  std::fprintf(stderr, "ringcache_empty_server: stopped (signal %d)\n", sig);
  return 0;
}

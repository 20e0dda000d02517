// grpc_client_example: talk to one ringcached node with nothing but the generated stubs of
// proto/ringcache/v1/cache.proto (target ringcache::proto).
//
//   ringcached --listen 127.0.0.1:7700 &
//   grpc_client_example --addr 127.0.0.1:7700
//
// Shows: Set with a TTL, Get, compare-and-set (SET_MODE_IF_VERSION), Incr, MultiGet, and a
// Pipeline stream with hundreds of operations in flight. Every call carries a deadline:
// a call without one can wait forever on a node that accepted the connection and hangs.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>

#include "ringcache/v1/cache.grpc.pb.h"

namespace {

namespace pb = ringcache::v1;

constexpr std::chrono::milliseconds kCallTimeout{2000};
constexpr std::chrono::milliseconds kStreamTimeout{10000};

// Every call gets a fresh context with a deadline (a ClientContext is single-use).
void SetDeadline(grpc::ClientContext* context, std::chrono::milliseconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}

// Prints a failed call and returns false; true if `status` is OK.
bool Check(const grpc::Status& status, const char* what) {
  if (status.ok()) return true;
  std::fprintf(stderr, "%s failed: code %d: %s\n", what, static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return false;
}

bool Run(pb::Cache::Stub& stub) {
  // Set with a TTL of one minute.
  uint64_t version = 0;
  {
    pb::SetRequest request;
    request.set_key("greeting");
    request.set_value("hello");
    request.set_ttl_ms(60'000);
    pb::SetResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    if (!Check(stub.Set(&context, request, &response), "Set")) return false;
    version = response.version();
    std::printf("Set greeting=hello ttl=60s -> version %llu\n",
                static_cast<unsigned long long>(version));
  }

  // Get: the value, its version and its absolute expiry.
  {
    pb::GetRequest request;
    request.set_key("greeting");
    pb::GetResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    if (!Check(stub.Get(&context, request, &response), "Get")) return false;
    std::printf("Get greeting -> \"%s\" version %llu expires_at_ms %lld\n",
                response.value().c_str(), static_cast<unsigned long long>(response.version()),
                static_cast<long long>(response.expires_at_ms()));
  }

  // Compare-and-set: succeeds with the version we read, then fails with the stale one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    pb::SetRequest request;
    request.set_key("greeting");
    request.set_value(attempt == 0 ? "hello, world" : "lost update");
    request.set_mode(pb::SET_MODE_IF_VERSION);
    request.set_expected_version(version);
    pb::SetResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    const grpc::Status status = stub.Set(&context, request, &response);
    if (attempt == 0) {
      if (!Check(status, "Set IF_VERSION")) return false;
      std::printf("CAS with version %llu -> ok, new version %llu\n",
                  static_cast<unsigned long long>(version),
                  static_cast<unsigned long long>(response.version()));
    } else if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      std::printf("CAS with stale version %llu -> FAILED_PRECONDITION (%s), as expected\n",
                  static_cast<unsigned long long>(version), status.error_message().c_str());
    } else {
      std::fprintf(stderr, "CAS with a stale version should fail, got code %d\n",
                   static_cast<int>(status.error_code()));
      return false;
    }
  }

  // Incr: an absent key counts as 0; the delta may be negative.
  for (int64_t delta : {10, -3}) {
    pb::IncrRequest request;
    request.set_key("visits");
    request.set_delta(delta);
    pb::IncrResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    if (!Check(stub.Incr(&context, request, &response), "Incr")) return false;
    std::printf("Incr visits by %lld -> %lld\n", static_cast<long long>(delta),
                static_cast<long long>(response.value()));
  }

  // MultiGet: one result per key, in order; a missing key is a per-key NOT_FOUND.
  {
    pb::MultiGetRequest request;
    for (const char* key : {"greeting", "visits", "no-such-key"}) request.add_keys(key);
    pb::MultiGetResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    if (!Check(stub.MultiGet(&context, request, &response), "MultiGet")) return false;
    for (int i = 0; i < response.results_size(); ++i) {
      const pb::GetResult& result = response.results(i);
      if (result.status().code() == 0) {
        std::printf("MultiGet %s -> \"%s\"\n", request.keys(i).c_str(), result.value().c_str());
      } else {
        std::printf("MultiGet %s -> code %d (%s)\n", request.keys(i).c_str(),
                    result.status().code(), result.status().message().c_str());
      }
    }
  }

  // Pipeline: one writer thread streams kOps operations in messages of kPerMessage while
  // this thread reads results, so hundreds are in flight. Results may come back grouped
  // and ordered differently: they are matched by id.
  constexpr uint64_t kOps = 400;
  constexpr uint64_t kPerMessage = 50;
  {
    grpc::ClientContext context;
    SetDeadline(&context, kStreamTimeout);
    std::unique_ptr<grpc::ClientReaderWriter<pb::PipelineRequest, pb::PipelineResponse>> stream =
        stub.Pipeline(&context);
    std::thread writer([&stream] {
      for (uint64_t first = 0; first < kOps; first += kPerMessage) {
        pb::PipelineRequest request;
        for (uint64_t id = first; id < first + kPerMessage; ++id) {
          pb::Operation* op = request.add_ops();
          op->set_id(id);
          if (id % 2 == 0) {  // even ids write a key, odd ids bump a shared counter
            op->mutable_set()->set_key("pipe:" + std::to_string(id));
            op->mutable_set()->set_value(std::to_string(id));
          } else {
            op->mutable_incr()->set_key("pipe:counter");
            op->mutable_incr()->set_delta(1);
          }
        }
        if (!stream->Write(request)) break;  // the stream failed: Finish() says why
      }
      stream->WritesDone();
    });
    std::unordered_set<uint64_t> pending;
    for (uint64_t id = 0; id < kOps; ++id) pending.insert(id);
    uint64_t failed = 0;
    pb::PipelineResponse response;
    while (stream->Read(&response)) {
      for (const pb::OperationResult& result : response.results()) {
        pending.erase(result.id());
        if (result.status().code() != 0) ++failed;
      }
    }
    writer.join();
    if (!Check(stream->Finish(), "Pipeline")) return false;
    std::printf("Pipeline: %llu ops, %llu results missing, %llu failed\n",
                static_cast<unsigned long long>(kOps),
                static_cast<unsigned long long>(pending.size()),
                static_cast<unsigned long long>(failed));
    if (!pending.empty() || failed != 0) return false;
  }
  {
    pb::GetRequest request;
    request.set_key("pipe:counter");
    pb::GetResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, kCallTimeout);
    if (!Check(stub.Get(&context, request, &response), "Get pipe:counter")) return false;
    std::printf("Get pipe:counter -> %s (the counter was incremented %llu times in the pipeline)\n",
                response.value().c_str(), static_cast<unsigned long long>(kOps / 2));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string addr = "127.0.0.1:7700";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
      addr = argv[++i];
    } else if (std::strncmp(argv[i], "--addr=", 7) == 0) {
      addr = argv[i] + 7;
    } else {
      std::fprintf(stderr, "usage: %s [--addr HOST:PORT]   (default 127.0.0.1:7700)\n", argv[0]);
      return 2;
    }
  }
  // Values can be as large as the node allows (8 MiB by default): lift the client's
  // default 4 MiB receive limit.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  const std::unique_ptr<pb::Cache::Stub> stub = pb::Cache::NewStub(channel);
  std::printf("talking to ringcached at %s\n", addr.c_str());
  return Run(*stub) ? 0 : 1;
}

// Bounded responses (--max-response-bytes, docs/api.md): a small request that names a
// large value many times is refused with RESOURCE_EXHAUSTED naming the limit, through the
// key's owner and through a node that forwards, on MultiGet, Batch and the Redis port's
// MGET, and no node's memory grows with what the request asked for.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_harness.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using namespace std::chrono_literals;

// The peak resident set of process `pid` (VmHWM), in bytes; 0 if unknown.
uint64_t PeakRss(pid_t pid) { return ProcStatusBytes(pid, "VmHWM"); }

TEST_CASE("A response over --max-response-bytes is refused through any node in bounded memory",
          "[integration][cluster][security]") {
  // Default limits: 8 MiB values, so the automatic response limit is 64 MiB.
  TestCluster cluster({.nodes = 3,
                       .replication_factor = 2,
                       // Parts of up to 64 MiB move between nodes: on a loaded 2-core
                       // machine that can take longer than the default 5 s forward timeout.
                       .extra_args = {"--memory", "256MiB", "--resp-listen", "127.0.0.1:0",
                                      "--forward-timeout-ms", "30000"}});
  RequireStart(cluster);
  const std::string big(8 << 20, 'x');
  {
    auto n1 = cluster.Stub(0);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    v1::SetRequest set;
    set.set_key("big");
    set.set_value(big);
    set.set_write_concern(1);  // Both owners hold it before the reads below.
    v1::SetResponse response;
    REQUIRE_THAT(n1->Set(&ctx, set, &response), IsOk());
  }

  // 300 times the 8 MiB key: a 2 KiB request for 2.4 GB of results. Each node is the
  // primary, a replica or neither of the key, so this goes through the owner and through
  // a node that forwards it.
  for (size_t n = 0; n < cluster.size(); ++n) {
    INFO("through " << cluster.id(n));
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // The successful read below is 56 MiB.
    auto stub = v1::Cache::NewStub(
        grpc::CreateCustomChannel(cluster.address(n), grpc::InsecureChannelCredentials(), args));
    v1::MultiGetRequest mget;
    for (int i = 0; i < 300; ++i) mget.add_keys("big");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    v1::MultiGetResponse response;
    const grpc::Status s = stub->MultiGet(&ctx, mget, &response);
    INFO(s.error_message());
    CHECK(s.error_code() == StatusCode::RESOURCE_EXHAUSTED);
    CHECK(s.error_message().find("--max-response-bytes") != std::string::npos);
    CHECK(s.error_message().find(std::to_string(uint64_t{64} << 20)) != std::string::npos);

    v1::BatchRequest batch;
    for (int i = 0; i < 300; ++i) batch.add_ops()->mutable_get()->set_key("big");
    grpc::ClientContext bctx;
    bctx.set_deadline(std::chrono::system_clock::now() + 60s);
    v1::BatchResponse bresponse;
    const grpc::Status bs = stub->Batch(&bctx, batch, &bresponse);
    CHECK(bs.error_code() == StatusCode::RESOURCE_EXHAUSTED);
    if (bs.ok()) {
      std::map<std::string, int> outcomes;
      for (const v1::OperationResult& r : bresponse.results()) {
        ++outcomes[std::to_string(r.status().code()) + " " + r.status().message().substr(0, 60) +
                   " value " + std::to_string(r.get().value().size())];
      }
      for (const auto& [what, count] : outcomes) UNSCOPED_INFO(count << " x " << what);
      CHECK(outcomes.empty());
    }

    // Within the limit the same read succeeds: 7 × 8 MiB.
    // Within the limit the same read succeeds: 7 × 8 MiB. A forward that timed out on a
    // loaded machine (UNAVAILABLE, TRYAGAIN: "retry") is retried, as a client would.
    v1::MultiGetRequest small;
    for (int i = 0; i < 7; ++i) small.add_keys("big");
    v1::MultiGetResponse sresponse;
    for (int attempt = 0; attempt < 3; ++attempt) {
      grpc::ClientContext sctx;
      sctx.set_deadline(std::chrono::system_clock::now() + 60s);
      sresponse.Clear();
      REQUIRE_THAT(stub->MultiGet(&sctx, small, &sresponse), IsOk());
      const bool retry = std::any_of(
          sresponse.results().begin(), sresponse.results().end(), [](const v1::GetResult& r) {
            return r.status().code() == static_cast<int>(StatusCode::UNAVAILABLE);
          });
      if (!retry) break;
    }
    REQUIRE(sresponse.results_size() == 7);
    for (const v1::GetResult& r : sresponse.results()) {
      INFO("result status " << r.status().code() << " " << r.status().message());
      CHECK(r.status().code() == 0);
      CHECK(r.value().size() == big.size());
    }

    // The Redis port: the MGET answers the error; a write read in the same batch after it
    // (forwarded or not) runs and answers as usual; the connection goes on.
    std::string command = "MGET";
    for (int i = 0; i < 300; ++i) command += " big";
    RawExchange x;
    for (int attempt = 0; attempt < 3; ++attempt) {
      x = SendRawBytes(cluster.node(n).RespAddress(),
                       command + "\r\nINCR budget-counter\r\nPING\r\nQUIT\r\n", 60s);
      if (x.received.rfind("-TRYAGAIN", 0) != 0) break;
    }
    INFO(x.received.substr(0, 200));
    // RESOURCE_EXHAUSTED is -OOM on the Redis port (docs/redis.md).
    CHECK(x.received.rfind("-OOM the response would be over the limit of", 0) == 0);
    CHECK(x.received.find("\r\n:") != std::string::npos);  // The INCR ran.
    CHECK(x.received.find("\r\n+PONG\r\n") != std::string::npos);
  }

  // No node held what was asked for: the peak stays far below 2.4 GB (the value, its
  // copies, one response's worth of results and the servers' own buffers).
  for (size_t n = 0; n < cluster.size(); ++n) {
    const uint64_t peak = PeakRss(cluster.node(n).Pid());
    INFO(cluster.id(n) << " peak RSS " << (peak >> 20) << " MiB");
    CHECK(peak > 0);
    CHECK(peak < (uint64_t{600} << 20));
    std::printf("bounded_response: %s peak RSS %llu MiB\n", cluster.id(n).c_str(),
                static_cast<unsigned long long>(peak >> 20));
  }
}

}  // namespace
}  // namespace ringcache::it

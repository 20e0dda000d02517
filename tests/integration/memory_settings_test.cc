// The settings that bound a node's memory (docs/operations.md, "Memory"):
// --max-streams-per-connection holds a connection's calls beyond the limit on the client,
// and the heap release reports itself in the metrics.
#include <grpcpp/create_channel.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;

using Stream = grpc::ClientReaderWriter<v1::PipelineRequest, v1::PipelineResponse>;

// A channel of its own (gRPC would otherwise share one connection between channels with
// the same target and arguments).
std::unique_ptr<v1::Cache::Stub> StubOnOwnConnection(const NodeProcess& node, int tag) {
  grpc::ChannelArguments args;
  args.SetInt("ringcache.test.connection", tag);
  return v1::Cache::NewStub(
      grpc::CreateCustomChannel(node.GrpcAddress(), grpc::InsecureChannelCredentials(), args));
}

// Opens a Pipeline stream on `stub` and waits for the answer to one Get, so that the stream
// holds one of its connection's stream slots.
std::unique_ptr<Stream> OpenStream(v1::Cache::Stub& stub, grpc::ClientContext* ctx) {
  SetDeadline(*ctx, std::chrono::seconds(20));
  std::unique_ptr<Stream> stream = stub.Pipeline(ctx);
  v1::PipelineRequest req;
  auto* op = req.add_ops();
  op->set_id(1);
  op->mutable_get()->set_key("k");
  REQUIRE(stream->Write(req));
  v1::PipelineResponse resp;
  REQUIRE(stream->Read(&resp));
  REQUIRE(resp.results_size() == 1);
  return stream;
}

void CloseStream(Stream* stream) {
  stream->WritesDone();
  v1::PipelineResponse resp;
  while (stream->Read(&resp)) {
  }
  CHECK_THAT(stream->Finish(), IsOk());
}

TEST_CASE("A stream limit per connection holds a connection's extra calls until a slot frees",
          "[integration][memory]") {
  SECTION("with a limit of 1, a Get waits behind an open Pipeline stream on its connection") {
    std::vector<std::string> flags = SmallNodeFlags();
    flags.insert(flags.end(), {"--max-streams-per-connection", "1"});
    NodeProcess node(flags);
    RequireStart(node);
    auto stub = StubOnOwnConnection(node, 1);
    REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> stream = OpenStream(*stub, &ctx);
    // Queued on the client, never sent: its deadline passes.
    CHECK_THAT(Unary(
                   *stub, &v1::Cache::Stub::Get,
                   [] {
                     v1::GetRequest r;
                     r.set_key("k");
                     return r;
                   }(),
                   milliseconds(700))
                   .status,
               StatusIs(StatusCode::DEADLINE_EXCEEDED));
    // Another connection is not held up.
    auto other = StubOnOwnConnection(node, 2);
    CHECK_THAT(Get(*other, "k").status, IsOk());
    CloseStream(stream.get());
    // The slot is free again.
    CHECK_THAT(Get(*stub, "k").status, IsOk());
  }
  SECTION("without a limit, the same Get is answered while the stream is open") {
    NodeProcess node(SmallNodeFlags());
    RequireStart(node);
    auto stub = StubOnOwnConnection(node, 3);
    REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> stream = OpenStream(*stub, &ctx);
    v1::GetRequest r;
    r.set_key("k");
    CHECK_THAT(Unary(*stub, &v1::Cache::Stub::Get, r, milliseconds(5000)).status, IsOk());
    CloseStream(stream.get());
  }
}

TEST_CASE("The node serves with receive windows that do not grow, and reports its heap release",
          "[integration][memory]") {
  const std::vector<std::string> flags = {"--node-id",
                                          "it-node",
                                          "--memory",
                                          "64MiB",
                                          "--max-value-bytes",
                                          "1MiB",
                                          "--grow-receive-windows=false",
                                          "--heap-release-interval-ms",
                                          "50"};
  NodeProcess node(flags);
  RequireStart(node);
  auto stub = node.NewStub();
  // Values larger than the 64 KiB window go through.
  const std::string value(200 << 10, 'x');
  REQUIRE_THAT(Set(*stub, "big", value).status, IsOk());
  const auto got = Get(*stub, "big");
  REQUIRE_THAT(got.status, IsOk());
  CHECK(got.response.value() == value);
  const HttpResponse metrics = HttpGet(node.MetricsAddress(), "/metrics");
  CHECK(metrics.body.find("\nringcache_heap_free_bytes ") != std::string::npos);
  CHECK(metrics.body.find("\nringcache_heap_releases_total ") != std::string::npos);
}

}  // namespace
}  // namespace ringcache::it

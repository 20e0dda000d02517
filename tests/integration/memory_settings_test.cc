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

// `n` Pipeline streams open on one connection, each past its first answer.
struct OpenStreams {
  OpenStreams(v1::Cache::Stub& stub, int n) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      streams.push_back(OpenStream(stub, contexts.back().get()));
    }
  }
  void CloseOne() {
    CloseStream(streams.back().get());
    streams.pop_back();  // Before its context.
    contexts.pop_back();
  }
  void CloseAll() {
    while (!streams.empty()) CloseOne();
  }

  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> streams;
};

TEST_CASE("A stream limit per connection holds a connection's extra calls until a slot frees",
          "[integration][memory]") {
  // 16, the least a node takes: 16 open Pipeline streams fill the connection.
  std::vector<std::string> flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--max-streams-per-connection", "16"});
  NodeProcess node(flags);
  RequireStart(node);
  auto stub = StubOnOwnConnection(node, 1);
  REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
  OpenStreams open(*stub, 16);
  v1::GetRequest get;
  get.set_key("k");
  // Queued on the client, never sent: its deadline passes.
  CHECK_THAT(Unary(*stub, &v1::Cache::Stub::Get, get, milliseconds(700)).status,
             StatusIs(StatusCode::DEADLINE_EXCEEDED));
  // Another connection is not held up.
  auto other = StubOnOwnConnection(node, 2);
  CHECK_THAT(Get(*other, "k").status, IsOk());
  // One slot free again: the Get goes through.
  open.CloseOne();
  CHECK_THAT(Unary(*stub, &v1::Cache::Stub::Get, get, milliseconds(5000)).status, IsOk());
  open.CloseAll();
}

TEST_CASE("Without a stream limit a connection's calls are not held behind open streams",
          "[integration][memory]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = StubOnOwnConnection(node, 3);
  REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
  OpenStreams open(*stub, 16);
  v1::GetRequest get;
  get.set_key("k");
  CHECK_THAT(Unary(*stub, &v1::Cache::Stub::Get, get, milliseconds(5000)).status, IsOk());
  open.CloseAll();
}

TEST_CASE("A stream limit below what members need is refused at startup", "[integration][memory]") {
  NodeProcess node;
  node.SpawnRaw(
      {"--listen", "127.0.0.1:0", "--metrics-listen", "", "--max-streams-per-connection", "4"});
  const std::optional<ExitStatus> exit = node.WaitExit(std::chrono::seconds(10));
  REQUIRE(exit.has_value());
  CHECK(*exit == ExitStatus::Code(2));
  CHECK(node.Stderr().find("--max-streams-per-connection") != std::string::npos);
  CHECK(node.Stderr().find("members call each other on this port") != std::string::npos);
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

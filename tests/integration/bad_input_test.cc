// Bad input on the wire: garbage bytes and HTTP/1.1 on the gRPC port, malformed protobuf
// payloads, unknown methods, messages over the size limit, expired deadlines. The node
// must answer with the right code (or drop the connection) and keep serving.
#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <future>
#include <random>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// The node is still running and serves a Set + Get on a fresh connection.
void CheckStillServing(NodeProcess& node, const std::string& key) {
  REQUIRE_FALSE(node.WaitExit(milliseconds(0)).has_value());
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, key, "still-here").status, IsOk());
  auto get = Get(*stub, key);
  REQUIRE_THAT(get.status, IsOk());
  CHECK(get.response.value() == "still-here");
}

// Calls `method` with raw request bytes through the generic stub; bounded by `timeout`.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& payload, milliseconds timeout = kRpcTimeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  auto future = done.get_future();
  if (future.wait_for(timeout + milliseconds(2000)) != std::future_status::ready) {
    ctx.TryCancel();
    future.wait();
    return grpc::Status(grpc::StatusCode::UNKNOWN, "test: the call did not complete in time");
  }
  return future.get();
}

TEST_CASE("Garbage bytes on the gRPC port do not disturb the node", "[integration][wire]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "before", "v").status, IsOk());

  // All of it against one node, while an idle connection that never speaks stays open.
  std::thread idle([&] { SendRawBytes(node.GrpcAddress(), "", milliseconds(1500)); });

  {  // Random bytes.
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      auto r = SendRawBytes(node.GrpcAddress(), RandomBytes(64 * 1024, seed), milliseconds(1000));
      CHECK(r.connected);
    }
  }
  {  // An HTTP/1.1 request.
    auto r = SendRawBytes(node.GrpcAddress(),
                          "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                          milliseconds(1000));
    CHECK(r.connected);
    // gRPC answers HTTP/1.x with an error or just hangs up; either way, never a 200.
    CHECK(r.received.find(" 200 ") == std::string::npos);
  }
  {  // The HTTP/2 preface followed by garbage frames.
    std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    bytes += RandomBytes(4096, 42);
    auto r = SendRawBytes(node.GrpcAddress(), bytes, milliseconds(1000));
    CHECK(r.connected);
  }
  {  // A truncated HTTP/2 preface, then hang up.
    auto r = SendRawBytes(node.GrpcAddress(), "PRI * HTTP/2.0\r\n", milliseconds(200));
    CHECK(r.connected);
  }
  {  // Many short garbage connections.
    for (uint32_t i = 0; i < 50; ++i) {
      auto r =
          SendRawBytes(node.GrpcAddress(), RandomBytes(1 + i * 37, 100 + i), milliseconds(200));
      CHECK(r.connected);
    }
  }

  // The existing connection and a new one both still work (CHECK only: a REQUIRE would
  // throw past the joinable thread).
  CHECK_THAT(Get(*stub, "before").status, IsOk());
  CHECK_THAT(Get(*node.NewStub(), "before").status, IsOk());
  idle.join();
  CheckStillServing(node, "after");
}

TEST_CASE("A malformed protobuf payload fails the call, not the node", "[integration][wire]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto channel = node.NewChannel();

  // Field 1 (key) declared as 100 bytes long, 3 present: cannot be parsed.
  const std::string truncated(
      "\x0a\x64"
      "abc",
      5);
  const grpc::Status st = RawUnaryCall(channel, "/ringcache.v1.Cache/Get", truncated);
  INFO(Describe(st));
  CHECK_FALSE(st.ok());
  CHECK(
      (st.error_code() == StatusCode::INTERNAL || st.error_code() == StatusCode::INVALID_ARGUMENT));

  CHECK_THAT(RawUnaryCall(channel, "/ringcache.v1.Cache/NoSuchMethod", ""),
             StatusIs(StatusCode::UNIMPLEMENTED));
  CHECK_THAT(RawUnaryCall(channel, "/no.such.Service/Get", ""),
             StatusIs(StatusCode::UNIMPLEMENTED));
  // An empty payload is a valid (empty) GetRequest: empty key.
  CHECK_THAT(RawUnaryCall(channel, "/ringcache.v1.Cache/Get", ""),
             StatusIs(StatusCode::INVALID_ARGUMENT, {"key"}));
  CheckStillServing(node, "after");
}

TEST_CASE("A message over the size limit is RESOURCE_EXHAUSTED", "[integration][wire][limits]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  // Limit = max-value-bytes + max-key-bytes + 64 KiB = 66,600 bytes here.
  const std::string key(kTestMaxKeyBytes, 'k');

  SECTION("a maximum Set fits; a value just over the limit is INVALID_ARGUMENT") {
    CHECK_THAT(Set(*stub, key, std::string(kTestMaxValueBytes, 'v')).status, IsOk());
    CHECK_THAT(Set(*stub, key, std::string(kTestMaxValueBytes + 1, 'v')).status,
               StatusIs(StatusCode::INVALID_ARGUMENT));
  }
  SECTION("a Set message of 100 KiB") {
    CHECK_THAT(Set(*stub, "k", std::string(100 * 1024, 'v')).status,
               StatusIs(StatusCode::RESOURCE_EXHAUSTED));
  }
  SECTION("a MultiSet message of 100 items of 1000 bytes") {
    v1::MultiSetRequest req;
    for (int i = 0; i < kTestMaxBatch; ++i) {
      *req.add_items() = MakeSet("k" + std::to_string(i), std::string(kTestMaxValueBytes, 'v'));
    }
    CHECK_THAT(Unary(*stub, &v1::Cache::Stub::MultiSet, req).status,
               StatusIs(StatusCode::RESOURCE_EXHAUSTED));
  }
  SECTION("a Pipeline message over the limit fails the stream") {
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(10'000));
    auto stream = stub->Pipeline(&ctx);
    v1::PipelineRequest req;
    for (int i = 0; i < 90; ++i) {
      auto* op = req.add_ops();
      op->set_id(static_cast<uint64_t>(i));
      op->mutable_set()->set_key("k" + std::to_string(i));
      op->mutable_set()->set_value(std::string(kTestMaxValueBytes, 'v'));
    }
    stream->Write(req);  // May fail once the server has reset the stream.
    stream->WritesDone();
    v1::PipelineResponse resp;
    while (stream->Read(&resp)) {
    }
    CHECK_THAT(stream->Finish(), StatusIs(StatusCode::RESOURCE_EXHAUSTED));
  }
  CheckStillServing(node, "after");
}

TEST_CASE("With default limits a maximum Set fits and a bigger message is RESOURCE_EXHAUSTED",
          "[integration][wire][limits]") {
  NodeProcess node({"--memory", "64MiB", "--threads", "2"});
  RequireStart(node);
  auto stub = node.NewStub();
  const std::string max_key(4096, 'k');
  const size_t max_value = size_t{8} << 20;

  REQUIRE_THAT(Set(*stub, max_key, std::string(max_value, 'v')).status, IsOk());
  auto get = Get(*stub, max_key);
  REQUIRE_THAT(get.status, IsOk());
  CHECK(get.response.value().size() == max_value);

  CHECK_THAT(Set(*stub, "k", std::string(max_value + 1, 'v')).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max[-_]value[-_]bytes"}));
  CHECK_THAT(Set(*stub, "k", std::string(max_value + 4096 + 64 * 1024 + 1, 'v')).status,
             StatusIs(StatusCode::RESOURCE_EXHAUSTED));
  CheckStillServing(node, "after");
}

TEST_CASE("An expired deadline is DEADLINE_EXCEEDED", "[integration][wire]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());

  SECTION("a deadline already in the past") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() - milliseconds(1));
    v1::GetRequest req;
    req.set_key("k");
    v1::GetResponse resp;
    CHECK_THAT(stub->Get(&ctx, req, &resp), StatusIs(StatusCode::DEADLINE_EXCEEDED));
  }
  SECTION("a Pipeline stream left open past its deadline") {
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(500));
    const auto start = std::chrono::steady_clock::now();
    auto stream = stub->Pipeline(&ctx);
    v1::PipelineRequest req;
    auto* op = req.add_ops();
    op->set_id(1);
    op->mutable_get()->set_key("k");
    REQUIRE(stream->Write(req));
    v1::PipelineResponse resp;
    int results = 0;
    while (stream->Read(&resp)) results += resp.results_size();  // Ends at the deadline.
    CHECK(results <= 1);  // Normally 1; 0 if the machine is too busy to answer in time.
    CHECK_THAT(stream->Finish(), StatusIs(StatusCode::DEADLINE_EXCEEDED));
    CHECK(std::chrono::steady_clock::now() - start < milliseconds(5000));
  }
  CheckStillServing(node, "after");
}

}  // namespace
}  // namespace ringcache::it

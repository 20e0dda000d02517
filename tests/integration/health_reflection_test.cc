// The standard gRPC side services of a node: grpc.health.v1 health checking and server
// reflection (grpc.reflection.v1alpha), through client stubs generated from the standard
// protocol definitions (tests/integration/proto/); and how health (gRPC and /healthz)
// follows the node's state (serving, joining, fenced).
#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/descriptor.pb.h>

#include "cache_calls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
namespace health = ::grpc::health::v1;
namespace reflection = ::grpc::reflection::v1alpha;

Reply<health::HealthCheckResponse> Check(health::Health::Stub& stub, const std::string& service) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  health::HealthCheckRequest req;
  req.set_service(service);
  Reply<health::HealthCheckResponse> reply;
  reply.status = stub.Check(&ctx, req, &reply.response);
  return reply;
}

// Sends each request on one reflection stream and returns the responses in order.
std::vector<reflection::ServerReflectionResponse> Reflect(
    const std::shared_ptr<grpc::Channel>& channel,
    const std::vector<reflection::ServerReflectionRequest>& requests, grpc::Status* finish) {
  auto stub = reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  auto stream = stub->ServerReflectionInfo(&ctx);
  std::vector<reflection::ServerReflectionResponse> responses;
  for (const auto& req : requests) {
    if (!stream->Write(req)) break;
    reflection::ServerReflectionResponse resp;
    if (!stream->Read(&resp)) break;
    responses.push_back(resp);
  }
  stream->WritesDone();
  *finish = stream->Finish();
  return responses;
}

TEST_CASE("Health reports SERVING for the server and ringcache.v1.Cache", "[integration][health]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = health::Health::NewStub(node.NewChannel());

  for (const std::string service : {"", "ringcache.v1.Cache"}) {
    INFO("service '" << service << "'");
    auto reply = Check(*stub, service);
    REQUIRE_THAT(reply.status, IsOk());
    CHECK(reply.response.status() == health::HealthCheckResponse::SERVING);
  }
  // The default health service answers NOT_FOUND for services it does not know.
  CHECK_THAT(Check(*stub, "no.such.Service").status, StatusIs(StatusCode::NOT_FOUND));
}

// Flags of cluster member `id`, with fast failure detection.
std::vector<std::string> MemberFlags(const std::string& id,
                                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> flags = SmallNodeFlags();
  flags[1] = id;  // After "--node-id".
  flags.insert(flags.end(), {"--heartbeat-interval-ms", "50", "--failure-timeout-ms", "400"});
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

// Polls `done` every 20 ms until it is true or `timeout` passes; returns its last value.
template <typename Done>
bool Eventually(Done done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// The health status of both service names if they agree; UNKNOWN if they differ or fail.
health::HealthCheckResponse::ServingStatus HealthOf(const NodeProcess& node) {
  auto stub = health::Health::NewStub(node.NewChannel());
  const auto whole = Check(*stub, "");
  const auto cache = Check(*stub, "ringcache.v1.Cache");
  if (!whole.status.ok() || !cache.status.ok() ||
      whole.response.status() != cache.response.status()) {
    return health::HealthCheckResponse::UNKNOWN;
  }
  return whole.response.status();
}

v1::NodeState StateOf(const NodeProcess& node) {
  auto stub = node.NewStub();
  const auto stats = Stats(*stub);
  return stats.status.ok() ? stats.response.state() : v1::NODE_STATE_UNSPECIFIED;
}

TEST_CASE("A joining node's health follows its state: SERVING once it serves",
          "[integration][health][cluster]") {
  NodeProcess n1(MemberFlags("n1"));
  RequireStart(n1);
  CHECK(StateOf(n1) == v1::NODE_STATE_SERVING);
  CHECK(HealthOf(n1) == health::HealthCheckResponse::SERVING);

  NodeProcess n2(MemberFlags("n2", {"--seeds", n1.GrpcAddress()}));
  RequireStart(n2);
  // Start returns once n2 is in the view (JOINING); it serves once its ranges arrived.
  const v1::NodeState first = StateOf(n2);
  CHECK((first == v1::NODE_STATE_JOINING || first == v1::NODE_STATE_SERVING));
  const bool serving = Eventually(
      [&] {
        return StateOf(n2) == v1::NODE_STATE_SERVING &&
               HealthOf(n2) == health::HealthCheckResponse::SERVING;
      },
      std::chrono::seconds(15));
  INFO("n2 state " << v1::NodeState_Name(StateOf(n2)) << "\nn2 log:\n" << n2.Stderr());
  REQUIRE(serving);
  const HttpResponse healthz = HttpGet(n2.MetricsAddress(), "/healthz");
  INFO(healthz.error);
  CHECK(healthz.status == 200);
  CHECK(healthz.body == "ok\n");
  // n1 hears n2's heartbeats.
  CHECK(Eventually(
      [&] {
        auto stub = n1.NewStub();
        const auto stats = Stats(*stub);
        return stats.status.ok() && stats.response.peers_size() == 1 &&
               stats.response.peers(0).id() == "n2" && stats.response.peers(0).reachable();
      },
      std::chrono::seconds(5)));
}

TEST_CASE(
    "A node that loses the majority fences itself: NOT_SERVING, /healthz 503 fenced, writes "
    "refused, reads marked possibly stale with --fenced-reads",
    "[integration][health][cluster]") {
  NodeProcess n1(MemberFlags("n1", {"--fenced-reads"}));
  RequireStart(n1);
  NodeProcess n2(MemberFlags("n2", {"--seeds", n1.GrpcAddress()}));
  RequireStart(n2);
  REQUIRE(Eventually(
      [&] {
        return HealthOf(n1) == health::HealthCheckResponse::SERVING &&
               HealthOf(n2) == health::HealthCheckResponse::SERVING;
      },
      std::chrono::seconds(15)));
  auto stub = n1.NewStub();
  // Replication factor 2 on two nodes: both hold every key.
  REQUIRE_THAT(Set(*stub, "fenced-key", "v").status, IsOk());
  REQUIRE(Eventually(
      [&] {
        grpc::ClientContext ctx;
        SetDeadline(ctx);
        ctx.AddMetadata("ringcache-local", "1");
        v1::GetRequest req;
        req.set_key("fenced-key");
        v1::GetResponse resp;
        return stub->Get(&ctx, req, &resp).ok();
      },
      std::chrono::seconds(5)));

  // Two voters: without n2, n1 reaches 1 of 2 (a majority is 2) and fences itself.
  n2.Kill();
  REQUIRE(
      Eventually([&] { return StateOf(n1) == v1::NODE_STATE_FENCED; }, std::chrono::seconds(10)));
  CHECK(HealthOf(n1) == health::HealthCheckResponse::NOT_SERVING);
  const HttpResponse healthz = HttpGet(n1.MetricsAddress(), "/healthz");
  INFO(healthz.error);
  CHECK(healthz.status == 503);
  CHECK(healthz.body == "fenced\n");
  const auto stats = Stats(*stub);
  REQUIRE_THAT(stats.status, IsOk());
  CHECK_THAT(stats.response.state_detail(), Catch::Contains("node n1 is fenced"));
  const HttpResponse metrics = HttpGet(n1.MetricsAddress(), "/metrics");
  CHECK_THAT(metrics.body, Catch::Contains("ringcache_node_state{state=\"fenced\"} 1"));
  CHECK_THAT(metrics.body, Catch::Contains("ringcache_node_state{state=\"serving\"} 0"));
  CHECK_THAT(metrics.body, Catch::Contains("ringcache_peer_reachable{peer=\"n2\"} 0"));

  // Writes: UNAVAILABLE with the reason, whichever node owns the key.
  for (int i = 0; i < 8; ++i) {
    const auto set = Set(*stub, "w" + std::to_string(i), "v");
    CHECK_THAT(set.status, StatusIs(StatusCode::UNAVAILABLE));
    CHECK_THAT(set.status.error_message(), Catch::Contains("node n1 is fenced"));
  }
  // Reads (--fenced-reads): this node's copy, marked possibly stale.
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::GetRequest req;
  req.set_key("fenced-key");
  v1::GetResponse resp;
  REQUIRE_THAT(stub->Get(&ctx, req, &resp), IsOk());
  CHECK(resp.value() == "v");
  CHECK(resp.possibly_stale());
  const auto& trailers = ctx.GetServerTrailingMetadata();
  const auto stale = trailers.find("ringcache-possibly-stale");
  REQUIRE(stale != trailers.end());
  CHECK(std::string(stale->second.data(), stale->second.size()) == "1");

  // MultiGet: every key from this node's copy, each result marked.
  {
    grpc::ClientContext mctx;
    SetDeadline(mctx);
    v1::MultiGetRequest mreq;
    mreq.add_keys("fenced-key");
    mreq.add_keys("absent-key");
    v1::MultiGetResponse mresp;
    REQUIRE_THAT(stub->MultiGet(&mctx, mreq, &mresp), IsOk());
    REQUIRE(mresp.results_size() == 2);
    CHECK(mresp.results(0).value() == "v");
    CHECK(mresp.results(0).possibly_stale());
    CHECK(mresp.results(1).status().code() == static_cast<int>(StatusCode::NOT_FOUND));
  }
  // Pipeline: a get answered here and marked, a set refused with the reason.
  {
    grpc::ClientContext pctx;
    SetDeadline(pctx);
    auto stream = stub->Pipeline(&pctx);
    v1::PipelineRequest preq;
    v1::Operation* get = preq.add_ops();
    get->set_id(1);
    get->mutable_get()->set_key("fenced-key");
    v1::Operation* set = preq.add_ops();
    set->set_id(2);
    set->mutable_set()->set_key("fenced-set");
    set->mutable_set()->set_value("v");
    REQUIRE(stream->Write(preq));
    stream->WritesDone();
    std::map<uint64_t, v1::OperationResult> results;
    v1::PipelineResponse presp;
    while (stream->Read(&presp)) {
      for (const v1::OperationResult& r : presp.results()) results[r.id()] = r;
    }
    REQUIRE_THAT(stream->Finish(), IsOk());
    REQUIRE(results.size() == 2);
    CHECK(results[1].get().value() == "v");
    CHECK(results[1].get().possibly_stale());
    CHECK(results[2].status().code() == static_cast<int>(StatusCode::UNAVAILABLE));
    CHECK_THAT(results[2].status().message(), Catch::Contains("node n1 is fenced"));
  }
}

TEST_CASE("Server reflection lists the services and describes ringcache.v1.Cache",
          "[integration][reflection]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto channel = node.NewChannel();

  reflection::ServerReflectionRequest list;
  list.set_list_services("*");
  reflection::ServerReflectionRequest file;
  file.set_file_containing_symbol("ringcache.v1.Cache");
  reflection::ServerReflectionRequest unknown;
  unknown.set_file_containing_symbol("no.such.Symbol");
  grpc::Status finish;
  auto responses = Reflect(channel, {list, file, unknown}, &finish);
  CHECK_THAT(finish, IsOk());
  REQUIRE(responses.size() == 3);

  // 1. list_services
  REQUIRE(responses[0].message_response_case() ==
          reflection::ServerReflectionResponse::kListServicesResponse);
  std::vector<std::string> names;
  for (const auto& s : responses[0].list_services_response().service()) names.push_back(s.name());
  INFO("services: " << Catch::Detail::stringify(names));
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  CHECK(has("ringcache.v1.Cache"));
  CHECK(has("grpc.health.v1.Health"));
  CHECK(has("grpc.reflection.v1alpha.ServerReflection"));

  // 2. the file that defines ringcache.v1.Cache, with every rpc of the contract.
  REQUIRE(responses[1].message_response_case() ==
          reflection::ServerReflectionResponse::kFileDescriptorResponse);
  bool found = false;
  for (const std::string& bytes : responses[1].file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto fd;
    REQUIRE(fd.ParseFromString(bytes));
    if (fd.package() != "ringcache.v1") continue;
    for (const auto& svc : fd.service()) {
      if (svc.name() != "Cache") continue;
      found = true;
      std::vector<std::string> methods;
      for (const auto& m : svc.method()) methods.push_back(m.name());
      std::sort(methods.begin(), methods.end());
      CHECK(methods == std::vector<std::string>{"Batch", "Collection", "Delete", "Get", "Incr",
                                                "MultiDelete", "MultiGet", "MultiSet", "Pipeline",
                                                "Publish", "Set", "SetRange", "Snapshot", "Stats",
                                                "Subscribe", "Topology", "Touch", "Ttl",
                                                "WatchTopology"});
    }
  }
  CHECK(found);

  // 3. an unknown symbol is an error response, not a broken stream.
  REQUIRE(responses[2].message_response_case() ==
          reflection::ServerReflectionResponse::kErrorResponse);
  CHECK(responses[2].error_response().error_code() == static_cast<int>(StatusCode::NOT_FOUND));
}

}  // namespace
}  // namespace ringcache::it

// The standard gRPC side services of a node: grpc.health.v1 health checking and server
// reflection (grpc.reflection.v1alpha), through client stubs generated from the standard
// protocol definitions (tests/integration/proto/).
#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/descriptor.pb.h>

#include "cache_calls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "node_process.h"
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
      CHECK(methods == std::vector<std::string>{"Delete", "Get", "Incr", "MultiDelete", "MultiGet",
                                                "MultiSet", "Pipeline", "Set", "Stats", "Topology",
                                                "Touch", "Ttl", "WatchTopology"});
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

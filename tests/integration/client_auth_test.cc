// Client tokens (docs/security.md, "Client tokens"): with --auth-tokens-file, a call needs a
// known token (UNAUTHENTICATED otherwise, before its request is looked at), and the
// token's role bounds what it may do (PERMISSION_DENIED): read, read-write, admin. The
// same holds for calls a node forwards to the key's owner, for every operation of a batch
// or a pipeline, and for a Leave. SIGHUP reads the file again. Without tokens, a node
// listens on loopback addresses only (protected mode).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "private_file.h"
#include "raw_socket.h"
#include "ringcache/v1/cluster.grpc.pb.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using namespace std::chrono_literals;

const std::string kSecret = "s3cret-for-the-client-auth-test";
const std::string kReader = "reader-token-0123456789abcdef";
const std::string kWriter = "writer-token-0123456789abcdef";
const std::string kAdmin = "admin-token-0123456789abcdef";

std::string TokensFile() {
  return "# name role token\n"
         "reports  read        " +
         kReader +
         "\n"
         "web      read-write  " +
         kWriter +
         "  # the web tier\n"
         "\n"
         "ops      admin       " +
         kAdmin + "\n";
}

// A context with a deadline and, unless `token` is empty, `authorization: Bearer token`.
void Prepare(grpc::ClientContext* ctx, const std::string& token) {
  ctx->set_deadline(std::chrono::system_clock::now() + 10s);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

template <typename Request, typename Response>
Reply<Response> Call(v1::Cache::Stub& stub,
                     grpc::Status (v1::Cache::Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
                     const Request& request, const std::string& token) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token);
  Reply<Response> reply;
  reply.status = (stub.*method)(&ctx, request, &reply.response);
  return reply;
}

v1::GetRequest GetOf(const std::string& key) {
  v1::GetRequest r;
  r.set_key(key);
  return r;
}

v1::SetRequest SetOf(const std::string& key, const std::string& value) {
  v1::SetRequest r;
  r.set_key(key);
  r.set_value(value);
  return r;
}

bool Unauthenticated(const grpc::Status& s, const std::string& why) {
  return s.error_code() == StatusCode::UNAUTHENTICATED &&
         s.error_message().find("needs a client token") != std::string::npos &&
         s.error_message().find(why) != std::string::npos;
}

bool Denied(const grpc::Status& s) {
  return s.error_code() == StatusCode::PERMISSION_DENIED &&
         s.error_message().find("needs the role read-write") != std::string::npos &&
         s.error_message().find("has the role read") != std::string::npos;
}

constexpr int kKeys = 40;  // Enough that each of two nodes owns some.
std::string KeyOf(int i) { return "auth-key-" + std::to_string(i); }

TEST_CASE("Client tokens: a call needs a known token, and its role bounds what it may do",
          "[integration][security]") {
  PrivateFile secret("cluster.secret", kSecret + "\n");
  PrivateFile tokens("tokens", TokensFile());
  TestCluster cluster(
      {.nodes = 2,
       .replication_factor = 1,
       .extra_args = {"--cluster-secret-file", secret.path(), "--auth-tokens-file", tokens.path()},
       .token = kReader});
  RequireStart(cluster);
  auto n1 = cluster.Stub(0);

  // Without a token, with an unknown one, or not as a bearer: refused before anything.
  CHECK(Unauthenticated(Call(*n1, &v1::Cache::Stub::Get, GetOf("k"), "").status,
                        "the call carries no client token"));
  CHECK(Unauthenticated(
      Call(*n1, &v1::Cache::Stub::Get, GetOf("k"), "not-a-known-token-at-all").status,
      "not one of this node's"));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    ctx.AddMetadata("authorization", "Basic " + kWriter);
    v1::SetResponse response;
    CHECK(Unauthenticated(n1->Set(&ctx, SetOf("k", "v"), &response), "not 'Bearer <token>'"));
  }
  CHECK(Unauthenticated(Call(*n1, &v1::Cache::Stub::Stats, v1::StatsRequest{}, "").status,
                        "no client token"));
  {  // A watch, too.
    grpc::ClientContext ctx;
    Prepare(&ctx, "");
    auto reader = n1->WatchTopology(&ctx, v1::TopologyRequest{});
    v1::ClusterView view;
    CHECK_FALSE(reader->Read(&view));
    CHECK(Unauthenticated(reader->Finish(), "no client token"));
  }

  // The writer writes every key through n1 (about half are forwarded to n2); the reader
  // reads them all back through both nodes.
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(
        Call(*n1, &v1::Cache::Stub::Set, SetOf(KeyOf(i), "v" + std::to_string(i)), kWriter).status,
        IsOk());
  }
  for (size_t n = 0; n < 2; ++n) {
    auto stub = cluster.Stub(n);
    for (int i = 0; i < kKeys; ++i) {
      const auto r = Call(*stub, &v1::Cache::Stub::Get, GetOf(KeyOf(i)), kReader);
      REQUIRE_THAT(r.status, IsOk());
      CHECK(r.response.value() == "v" + std::to_string(i));
    }
  }
  CHECK_THAT(Call(*n1, &v1::Cache::Stub::Stats, v1::StatsRequest{}, kReader).status, IsOk());

  // The reader cannot write, here or on the other node's keys, by any rpc.
  for (int i = 0; i < kKeys; ++i) {
    CHECK(Denied(Call(*n1, &v1::Cache::Stub::Set, SetOf(KeyOf(i), "x"), kReader).status));
  }
  {
    v1::MultiSetRequest request;
    for (int i = 0; i < kKeys; ++i) *request.add_items() = SetOf(KeyOf(i), "x");
    CHECK(Denied(Call(*n1, &v1::Cache::Stub::MultiSet, request, kReader).status));
    v1::DeleteRequest del;
    del.set_key(KeyOf(0));
    CHECK(Denied(Call(*n1, &v1::Cache::Stub::Delete, del, kReader).status));
  }
  {  // A batch runs the reads and refuses each write, local or forwarded.
    v1::BatchRequest request;
    for (int i = 0; i < kKeys; ++i) {
      v1::Operation* get = request.add_ops();
      *get->mutable_get() = GetOf(KeyOf(i));
      v1::Operation* set = request.add_ops();
      *set->mutable_set() = SetOf(KeyOf(i), "x");
    }
    const auto r = Call(*n1, &v1::Cache::Stub::Batch, request, kReader);
    REQUIRE_THAT(r.status, IsOk());
    REQUIRE(r.response.results_size() == 2 * kKeys);
    for (int i = 0; i < kKeys; ++i) {
      const v1::OperationResult& get = r.response.results(2 * i);
      const v1::OperationResult& set = r.response.results(2 * i + 1);
      CHECK(get.status().code() == 0);
      CHECK(get.get().value() == "v" + std::to_string(i));
      CHECK(set.status().code() == static_cast<int>(StatusCode::PERMISSION_DENIED));
    }
  }
  {  // A pipeline the same, operation by operation.
    grpc::ClientContext ctx;
    Prepare(&ctx, kReader);
    auto stream = n1->Pipeline(&ctx);
    v1::PipelineRequest request;
    for (int i = 0; i < kKeys; ++i) {
      v1::Operation* get = request.add_ops();
      get->set_id(static_cast<uint64_t>(2 * i));
      *get->mutable_get() = GetOf(KeyOf(i));
      v1::Operation* set = request.add_ops();
      set->set_id(static_cast<uint64_t>(2 * i + 1));
      *set->mutable_set() = SetOf(KeyOf(i), "x");
    }
    REQUIRE(stream->Write(request));
    stream->WritesDone();
    int got = 0;
    v1::PipelineResponse response;
    while (stream->Read(&response)) {
      for (const v1::OperationResult& result : response.results()) {
        ++got;
        const bool is_set = result.id() % 2 == 1;
        CHECK(result.status().code() ==
              (is_set ? static_cast<int>(StatusCode::PERMISSION_DENIED) : 0));
      }
    }
    CHECK_THAT(stream->Finish(), IsOk());
    CHECK(got == 2 * kKeys);
  }
  {  // Without a token the stream is refused as a whole.
    grpc::ClientContext ctx;
    Prepare(&ctx, "");
    auto stream = n1->Pipeline(&ctx);
    stream->WritesDone();
    v1::PipelineResponse response;
    CHECK_FALSE(stream->Read(&response));
    CHECK(Unauthenticated(stream->Finish(), "no client token"));
  }
  // Nothing the reader tried changed a value.
  for (int i = 0; i < kKeys; ++i) {
    CHECK(Call(*n1, &v1::Cache::Stub::Get, GetOf(KeyOf(i)), kReader).response.value() ==
          "v" + std::to_string(i));
  }

  // A caller posing as a member that forwards a write: without the secret it is refused;
  // with it (a member), the role it claims for its client holds.
  for (const std::string& claimed_role : {std::string(), std::string("read")}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    ctx.AddMetadata("ringcache-forwarded-by", "n2");
    if (!claimed_role.empty()) {
      ctx.AddMetadata("ringcache-cluster-secret", kSecret);
      ctx.AddMetadata("ringcache-role", claimed_role);
    }
    v1::SetResponse response;
    const grpc::Status s = n1->Set(&ctx, SetOf(KeyOf(0), "forged"), &response);
    INFO(s.error_message());
    if (claimed_role.empty()) {
      CHECK(s.error_code() == StatusCode::UNAUTHENTICATED);
      CHECK(s.error_message().find("cluster members only") != std::string::npos);
    } else {
      CHECK(Denied(s));
    }
  }

  // Refusals are counted; the tokens held are reported.
  CHECK(MetricValue(cluster.node(0).MetricsAddress(), "ringcache_client_auth_failures_total") >= 6);
  CHECK(MetricValue(cluster.node(0).MetricsAddress(), "ringcache_client_tokens") == 3);
  CHECK(cluster.node(0).Stderr().find("refused Cache.Get from") != std::string::npos);
  CHECK(cluster.node(0).Stderr().find(kReader) == std::string::npos);  // Never logged.

  // A Leave from an operator (sent to the node that leaves): a read-write token may not
  // ask; an admin token may.
  auto membership = v1::Membership::NewStub(cluster.node(1).NewChannel());
  for (const std::string& token : {kWriter, kAdmin}) {
    v1::LeaveRequest request;
    request.set_node_id("n2");
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::LeaveResponse response;
    const grpc::Status s = membership->Leave(&ctx, request, &response);
    INFO(s.error_message());
    if (token == kWriter) {
      CHECK(s.error_code() == StatusCode::PERMISSION_DENIED);
      CHECK(s.error_message().find("needs the role admin") != std::string::npos);
    } else {
      CHECK_THAT(s, IsOk());
    }
  }
  const std::optional<ExitStatus> left = cluster.node(1).WaitExit(30s);
  REQUIRE(left.has_value());
  CHECK(*left == ExitStatus::Code(0));
}

TEST_CASE("With client tokens a second live node with a member's id is still refused",
          "[integration][security]") {
  // The coordinator probes the live member's address with a Stats call that carries the
  // cluster secret and no token: it must be admitted as a member's call.
  PrivateFile secret("cluster.secret", kSecret + "\n");
  PrivateFile tokens("tokens", TokensFile());
  const std::vector<std::string> flags = {"--cluster-secret-file", secret.path(),
                                          "--auth-tokens-file", tokens.path()};
  TestCluster cluster({.nodes = 2, .extra_args = flags, .token = kReader});
  RequireStart(cluster);
  std::vector<std::string> twin_flags = {"--node-id",         "n2",  "--seeds", cluster.address(0),
                                         "--join-timeout-ms", "5000"};
  twin_flags.insert(twin_flags.end(), flags.begin(), flags.end());
  NodeProcess twin(twin_flags);
  CHECK_FALSE(twin.Start(10s));
  CHECK_THAT(twin.Stderr(), Catch::Contains("node id n2 is already used by the live member"));
  const auto view = cluster.Topology(0);
  REQUIRE(view.has_value());
  CHECK(view->epoch() == cluster.epoch());
  CHECK(cluster.node(0).Stderr().find("refused Cache.Stats") == std::string::npos);
}

TEST_CASE("SIGHUP reads the tokens file again, and a broken file keeps the tokens held",
          "[integration][security]") {
  PrivateFile secret("cluster.secret", kSecret + "\n");
  PrivateFile tokens("tokens", "web read-write " + kWriter + "\n");
  NodeProcess node({"--cluster-secret-file", secret.path(), "--auth-tokens-file", tokens.path()});
  RequireStart(node);
  auto stub = node.NewStub();
  CHECK_THAT(Call(*stub, &v1::Cache::Stub::Set, SetOf("k", "v"), kWriter).status, IsOk());
  CHECK(Call(*stub, &v1::Cache::Stub::Get, GetOf("k"), kReader).status.error_code() ==
        StatusCode::UNAUTHENTICATED);

  // The writer's token is withdrawn, the reader's added.
  tokens.Write("reports read " + kReader + "\n");
  node.Signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!Call(*stub, &v1::Cache::Stub::Get, GetOf("k"), kReader).status.ok()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
  CHECK(Call(*stub, &v1::Cache::Stub::Get, GetOf("k"), kReader).response.value() == "v");
  CHECK(Call(*stub, &v1::Cache::Stub::Set, SetOf("k", "w"), kWriter).status.error_code() ==
        StatusCode::UNAUTHENTICATED);

  // A file with a mistake: refused, the reader's token still works.
  tokens.Write("reports read " + kReader + "\nweb writer " + kWriter + "\n");
  node.Signal(SIGHUP);
  const auto logged = std::chrono::steady_clock::now() + 10s;
  while (node.Stderr().find("keeping the client tokens held") == std::string::npos) {
    REQUIRE(std::chrono::steady_clock::now() < logged);
    std::this_thread::sleep_for(20ms);
  }
  CHECK(node.Stderr().find("line 2: unknown role 'writer'") != std::string::npos);
  CHECK_THAT(Call(*stub, &v1::Cache::Stub::Get, GetOf("k"), kReader).status, IsOk());
  CHECK(node.Terminate(15s) == ExitStatus::Code(0));
}

TEST_CASE("ringcached refuses client settings it cannot honour", "[integration][security]") {
  PrivateFile secret("cluster.secret", kSecret + "\n");
  PrivateFile tokens("tokens", TokensFile());
  PrivateFile bad_tokens("bad-tokens", "web read-write short\n");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      // Protected mode: no tokens, a listen address others can reach.
      {{"--listen", "0.0.0.0:0"}, "is not a loopback address and there are no client tokens"},
      {{"--resp-listen", "0.0.0.0:0"}, "--resp-listen: resp_listen_address 0.0.0.0:0 is not"},
      // Tokens without a cluster secret: anyone could pose as a forwarding member.
      {{"--auth-tokens-file", tokens.path()}, "needs a cluster secret"},
      {{"--cluster-secret-file", secret.path(), "--auth-tokens-file", bad_tokens.path()},
       "line 1: a token is 16 to 1024 bytes, got 5"},
  };
  for (const Case& c : cases) CheckRefusedAtStartup(c.args, c.message);
}

}  // namespace
}  // namespace ringcache::it

// TLS (docs/security.md, "TLS"): with --tls-cert-file/--tls-key-file a node serves TLS on
// its gRPC port, and members call each other over TLS (joins, views, heartbeats,
// replication, forwarded calls), checking each other's certificates against --tls-ca-file.
// Clients must trust that CA; with --tls-client-certs require they must also present a
// certificate it signed. Renewed files are served without a restart; files that cannot
// work are refused at startup, naming the problem.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "private_file.h"
#include "status_matchers.h"
#include "test_certs.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using namespace std::chrono_literals;

constexpr int kKeys = 40;
std::string KeyOf(int i) { return "tls-key-" + std::to_string(i); }

// A Get on `address` over a new connection with `credentials`.
grpc::Status GetOver(const std::string& address,
                     const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                     v1::GetResponse* response = nullptr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A connection of its own.
  auto stub = v1::Cache::NewStub(grpc::CreateCustomChannel(address, credentials, args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::GetRequest request;
  request.set_key(KeyOf(0));
  v1::GetResponse ignored;
  return stub->Get(&ctx, request, response != nullptr ? response : &ignored);
}

bool HandshakeRefused(const grpc::Status& s) {
  return s.error_code() == StatusCode::UNAVAILABLE &&
         s.error_message().find("failed to connect") != std::string::npos;
}

TEST_CASE("With TLS, members join, replicate and forward over TLS, and clients must trust the CA",
          "[integration][security][tls]") {
  TestCerts certs;
  PrivateFile secret("cluster.secret", "tls-test-cluster-secret-0123\n");
  std::vector<std::string> flags = certs.NodeFlags();
  flags.insert(flags.end(), {"--cluster-secret-file", secret.path()});
  TestCluster cluster({.nodes = 3, .extra_args = flags, .credentials = certs.Client("ca.pem")});
  RequireStart(cluster);

  // Write concern 1: a replica acked each write over its TLS replication stream. Every
  // node answers every key, most of them forwarded over TLS.
  auto n1 = cluster.Stub(0);
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(checks::SetWc(*n1, KeyOf(i), "v" + std::to_string(i), 1).status, IsOk());
  }
  for (size_t n = 0; n < cluster.size(); ++n) {
    auto stub = cluster.Stub(n);
    for (int i = 0; i < kKeys; ++i) {
      const Reply<v1::GetResponse> r = Get(*stub, KeyOf(i));
      REQUIRE_THAT(r.status, IsOk());
      CHECK(r.response.value() == "v" + std::to_string(i));
    }
  }

  // Plaintext, or a CA that did not sign the nodes' certificates: no connection.
  const std::string n2 = cluster.address(1);
  CHECK(HandshakeRefused(GetOver(n2, grpc::InsecureChannelCredentials())));
  const grpc::Status other_ca = GetOver(n2, certs.Client("other-ca.pem"));
  INFO(other_ca.error_message());
  CHECK(HandshakeRefused(other_ca));
  CHECK(other_ca.error_message().find("certificate verify failed") != std::string::npos);

  // A node whose certificate the members' CA did not sign cannot join: the members refuse
  // its handshake, and it refuses theirs.
  NodeProcess stranger({"--node-id", "stranger", "--seeds", cluster.address(0),
                        "--cluster-secret-file", secret.path(), "--tls-cert-file",
                        certs.path("other.pem"), "--tls-key-file", certs.path("other.key"),
                        "--tls-ca-file", certs.path("other-ca.pem"), "--join-timeout-ms", "2000"});
  CHECK_FALSE(stranger.Start(10s));
  INFO(stranger.Stderr());
  CHECK(stranger.Stderr().find("certificate verify failed") != std::string::npos);
  const auto view = cluster.Topology(0);
  REQUIRE(view.has_value());
  CHECK(view->members_size() == 3);
}

TEST_CASE("With client certificates required, clients and members must present one the CA signed",
          "[integration][security][tls]") {
  TestCerts certs;
  PrivateFile secret("cluster.secret", "tls-test-cluster-secret-0123\n");
  std::vector<std::string> flags = certs.NodeFlags();
  flags.insert(flags.end(),
               {"--cluster-secret-file", secret.path(), "--tls-client-certs", "require"});
  // Two members: each presents its certificate when it calls the other.
  TestCluster cluster(
      {.nodes = 2, .extra_args = flags, .credentials = certs.Client("ca.pem", "client")});
  RequireStart(cluster);
  auto n1 = cluster.Stub(0);
  REQUIRE_THAT(checks::SetWc(*n1, KeyOf(0), "v", 1).status, IsOk());

  const std::string n2 = cluster.address(1);
  v1::GetResponse response;
  CHECK_THAT(GetOver(n2, certs.Client("ca.pem", "client"), &response), IsOk());
  CHECK(response.value() == "v");
  CHECK(HandshakeRefused(GetOver(n2, certs.Client("ca.pem"))));             // No certificate.
  CHECK(HandshakeRefused(GetOver(n2, certs.Client("ca.pem", "other"))));    // Another CA's.
  CHECK(HandshakeRefused(GetOver(n2, certs.Client("ca.pem", "expired"))));  // Expired.
}

TEST_CASE("A node serves renewed certificate files without a restart",
          "[integration][security][tls]") {
  TestCerts certs;
  // The node's files, replaced below as a renewal would (a new pair, from another CA).
  char dir[] = "/tmp/ringcache-tls-live-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string live = dir;
  const auto install = [&](const std::string& pair) {
    for (const char* ext : {".pem", ".key"}) {
      std::filesystem::copy_file(certs.path(pair + ext), live + "/next" + ext,
                                 std::filesystem::copy_options::overwrite_existing);
      std::filesystem::rename(live + "/next" + ext, live + "/node" + ext);
    }
  };
  install("node");
  NodeProcess node({"--tls-cert-file", live + "/node.pem", "--tls-key-file", live + "/node.key",
                    "--tls-reload-s", "1"});
  node.set_credentials(certs.Client("ca.pem"));
  RequireStart(node);
  REQUIRE_THAT(Set(*node.NewStub(), KeyOf(0), "v").status, IsOk());
  CHECK(HandshakeRefused(GetOver(node.GrpcAddress(), certs.Client("other-ca.pem"))));

  install("node2");  // Signed by the other CA.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!GetOver(node.GrpcAddress(), certs.Client("other-ca.pem")).ok()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(100ms);
  }
  // New connections now get the new certificate: the old CA no longer verifies it.
  CHECK(HandshakeRefused(GetOver(node.GrpcAddress(), certs.Client("ca.pem"))));
  CHECK(node.Running());
  CHECK(node.Terminate(15s) == ExitStatus::Code(0));
  std::filesystem::remove_all(live);
}

TEST_CASE("A renewal whose key does not match its certificate fails handshakes until fixed",
          "[integration][security][tls]") {
  TestCerts certs;
  char dir[] = "/tmp/ringcache-tls-mismatch-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string live = dir;
  const auto install = [&](const std::string& cert, const std::string& key) {
    std::filesystem::copy_file(certs.path(cert + ".pem"), live + "/next.pem",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(certs.path(key + ".key"), live + "/next.key",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(live + "/next.pem", live + "/node.pem");
    std::filesystem::rename(live + "/next.key", live + "/node.key");
  };
  install("node", "node");
  NodeProcess node({"--tls-cert-file", live + "/node.pem", "--tls-key-file", live + "/node.key",
                    "--tls-reload-s", "1"});
  node.set_credentials(certs.Client("ca.pem"));
  RequireStart(node);
  REQUIRE_THAT(Set(*node.NewStub(), KeyOf(0), "v").status, IsOk());
  REQUIRE(GetOver(node.GrpcAddress(), certs.Client("ca.pem")).ok());

  // node2's certificate with node's key: gRPC's file watcher takes the pair it reads, and
  // no handshake can complete with it (docs/security.md says to replace both files
  // together). The node keeps running. (Three reload periods: time enough for the
  // watcher to have read the files.)
  install("node2", "node");
  std::this_thread::sleep_for(3500ms);
  CHECK_FALSE(GetOver(node.GrpcAddress(), certs.Client("ca.pem")).ok());
  CHECK_FALSE(GetOver(node.GrpcAddress(), certs.Client("other-ca.pem")).ok());
  CHECK(node.Running());

  // The matching key arrives: the new pair is served.
  install("node2", "node2");
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!GetOver(node.GrpcAddress(), certs.Client("other-ca.pem")).ok()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(100ms);
  }
  CHECK(node.Running());
  CHECK(node.Terminate(15s) == ExitStatus::Code(0));
  std::filesystem::remove_all(live);
}

TEST_CASE("A node with an expired certificate says so at startup, and clients refuse it",
          "[integration][security][tls]") {
  TestCerts certs;
  NodeProcess node(
      {"--tls-cert-file", certs.path("expired.pem"), "--tls-key-file", certs.path("expired.key")});
  node.set_credentials(certs.Client("ca.pem"));
  RequireStart(node);
  CHECK(node.Stderr().find("has expired: clients and members will refuse it") != std::string::npos);
  const grpc::Status s = GetOver(node.GrpcAddress(), certs.Client("ca.pem"));
  INFO(s.error_message());
  CHECK(HandshakeRefused(s));
  CHECK(s.error_message().find("certificate verify failed") != std::string::npos);
}

TEST_CASE("ringcached refuses TLS settings that cannot work, naming the problem",
          "[integration][security][tls]") {
  TestCerts certs;
  PrivateFile not_pem("garbage.pem", "not a certificate\n");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert-file", certs.path("node.pem"), "--tls-key-file", certs.path("other.key")},
       "is not the key of the certificate in"},
      {{"--tls-cert-file", certs.path("node.pem")},
       "--tls-cert-file: tls.cert_file needs tls.key_file"},
      {{"--tls-cert-file", not_pem.path(), "--tls-key-file", certs.path("node.key")},
       "holds no PEM certificate"},
      {{"--tls-cert-file", certs.path("node.pem"), "--tls-key-file", not_pem.path()},
       "holds no PEM private key"},
      {{"--tls-cert-file", certs.path("node.pem"), "--tls-key-file", certs.path("node.key"),
        "--tls-client-certs", "require"},
       "tls.client_certs needs tls.ca_file"},
      {{"--tls-ca-file", certs.path("ca.pem")}, "tls.ca_file needs tls.cert_file"},
  };
  for (const Case& c : cases) CheckRefusedAtStartup(c.args, c.message);
}

}  // namespace
}  // namespace ringcache::it

// The protected cluster plane (docs/security.md): with --cluster-secret-file, members join,
// replicate and forward as before, while a caller without the secret cannot push views,
// join, leave on a member's behalf, heartbeat, replicate or forward; every such call is
// refused with UNAUTHENTICATED and the cluster is left as it was (same epoch, members,
// contents). Even a member's credential cannot jump the epoch beyond --max-epoch-jump or
// past the largest epoch.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "private_file.h"
#include "raw_socket.h"
#include "ringcache/v1/cluster.grpc.pb.h"
#include "status_matchers.h"
#include "test_certs.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using namespace std::chrono_literals;

constexpr const char* kSecretKey = "ringcache-cluster-secret";

// A secret in a file of its own temporary directory, removed with it.
class SecretFile : public PrivateFile {
 public:
  explicit SecretFile(const std::string& secret) : PrivateFile("cluster.secret", secret + "\n") {}
};

const std::string kSecret = "s3cret-for-the-cluster-plane-test";

std::vector<std::string> SecretArgs(const SecretFile& file) {
  return {"--cluster-secret-file", file.path()};
}

// A client context with a deadline and, if `secret` is not empty, the cluster secret.
void Prepare(grpc::ClientContext* ctx, const std::string& secret) {
  ctx->set_deadline(std::chrono::system_clock::now() + 5s);
  if (!secret.empty()) ctx->AddMetadata(kSecretKey, secret);
}

grpc::Status PushView(const std::string& address, const v1::ClusterView& view,
                      const std::string& to_id, const std::string& secret = {},
                      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr) {
  auto stub = v1::Membership::NewStub(grpc::CreateChannel(
      address, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials()));
  v1::PushViewRequest request;
  *request.mutable_view() = view;
  request.set_from_id("n1");
  request.set_to_id(to_id);
  grpc::ClientContext ctx;
  Prepare(&ctx, secret);
  v1::PushViewResponse response;
  return stub->PushView(&ctx, request, &response);
}

// Cluster-plane calls as an intruder or a rogue member makes them: to `address`, over
// `credentials`, with `secret` (empty: none).
class Forger {
 public:
  Forger(std::string address, std::shared_ptr<grpc::ChannelCredentials> credentials,
         std::string secret)
      : channel_(grpc::CreateChannel(address, std::move(credentials))),
        secret_(std::move(secret)),
        membership_(v1::Membership::NewStub(channel_)) {}

  // `id` joining at a made-up address, in its own name (not passed on by a member).
  grpc::Status Join(const std::string& id) const {
    v1::JoinRequest request;
    request.mutable_member()->set_id(id);
    request.mutable_member()->set_address("127.0.0.1:1");
    request.mutable_member()->set_weight(1);
    request.set_replication_factor(2);
    request.set_vnodes_per_weight(160);
    return Call(&v1::Membership::Stub::Join, request, v1::JoinResponse{});
  }
  grpc::Status Leave(const std::string& node_id, bool forwarded) const {
    v1::LeaveRequest request;
    request.set_node_id(node_id);
    request.set_forwarded(forwarded);
    return Call(&v1::Membership::Stub::Leave, request, v1::LeaveResponse{});
  }
  // A heartbeat from `from` to `to` that suspects `suspect` (if not empty).
  grpc::Status Heartbeat(const std::string& from, const std::string& to, uint64_t epoch,
                         const std::string& suspect) const {
    v1::HeartbeatRequest request;
    request.set_from_id(from);
    request.set_to_id(to);
    request.set_epoch(epoch);
    if (!suspect.empty()) request.add_suspects(suspect);
    return Call(&v1::Membership::Stub::Heartbeat, request, v1::HeartbeatResponse{});
  }
  grpc::Status TransitionReady(const std::string& from, uint64_t epoch) const {
    v1::TransitionReadyRequest request;
    request.set_from_id(from);
    request.set_epoch(epoch);
    return Call(&v1::Membership::Stub::TransitionReady, request, v1::TransitionReadyResponse{});
  }
  // A Replicate stream posing as `primary`, with a full sync that would empty `replica`
  // (of nothing, or with `whole_ring` of everything it holds). Returns the stream's
  // status; *acks counts the acks it got (none, if the hello was refused).
  grpc::Status FullSync(const std::string& primary, const std::string& replica, uint64_t epoch,
                        int* acks, bool whole_ring = false) const {
    auto replication = v1::Replication::NewStub(channel_);
    grpc::ClientContext ctx;
    Prepare(&ctx, secret_);
    auto stream = replication->Replicate(&ctx);
    v1::ReplicationMessage hello;
    hello.mutable_hello()->set_primary_id(primary);
    hello.mutable_hello()->set_replication_id("forged");
    hello.mutable_hello()->set_replica_id(replica);
    hello.mutable_hello()->set_epoch(epoch);
    v1::ReplicationMessage begin;
    begin.mutable_sync_begin()->set_next_seq(1);
    if (whole_ring) begin.mutable_sync_begin()->add_ranges();  // (0, 0]: the whole ring.
    v1::ReplicationMessage end;
    end.mutable_sync_end();
    (void)(stream->Write(hello) && stream->Write(begin) && stream->Write(end));
    stream->WritesDone();
    v1::ReplicationAck ack;
    *acks = 0;
    while (stream->Read(&ack)) ++*acks;
    return stream->Finish();
  }
  // A Get of `key` claiming to be forwarded by member `by` (it would skip routing).
  grpc::Status ForwardedGet(const std::string& by, const std::string& key) const {
    auto cache = v1::Cache::NewStub(channel_);
    grpc::ClientContext ctx;
    Prepare(&ctx, secret_);
    ctx.AddMetadata("ringcache-forwarded-by", by);
    v1::GetRequest get;
    get.set_key(key);
    v1::GetResponse response;
    return cache->Get(&ctx, get, &response);
  }
  // The same on a Pipeline stream; *results counts the results it got.
  grpc::Status ForwardedPipeline(const std::string& by, const std::string& key,
                                 int* results) const {
    auto cache = v1::Cache::NewStub(channel_);
    grpc::ClientContext ctx;
    Prepare(&ctx, secret_);
    ctx.AddMetadata("ringcache-forwarded-by", by);
    auto stream = cache->Pipeline(&ctx);
    v1::PipelineRequest request;
    v1::Operation* op = request.add_ops();
    op->set_id(1);
    op->mutable_get()->set_key(key);
    (void)stream->Write(request);
    stream->WritesDone();
    v1::PipelineResponse response;
    *results = 0;
    while (stream->Read(&response)) *results += response.results_size();
    return stream->Finish();
  }

 private:
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::Membership::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                              Response*),
                    const Request& request, Response response) const {
    grpc::ClientContext ctx;
    Prepare(&ctx, secret_);
    return (membership_.get()->*rpc)(&ctx, request, &response);
  }

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string secret_;
  const std::unique_ptr<v1::Membership::Stub> membership_;
};

// The cluster's view, key contents and member states, to compare before and after.
struct Snapshot {
  uint64_t epoch = 0;
  std::string view;
  int missing = 0;
};

constexpr int kKeys = 60;

std::string KeyOf(int i) { return "plane-key-" + std::to_string(i); }

Snapshot Take(TestCluster& cluster) {
  Snapshot s;
  auto view = cluster.Topology(0);
  REQUIRE(view.has_value());
  s.epoch = view->epoch();
  s.view = checks::DescribeView(*view);
  // Every node answers for every key (through routing), with the value written.
  for (size_t n = 0; n < cluster.size(); ++n) {
    auto stub = cluster.Stub(n);
    for (int i = 0; i < kKeys; ++i) {
      Reply<v1::GetResponse> r = Get(*stub, KeyOf(i));
      if (!r.status.ok() || r.response.value() != "v" + std::to_string(i)) ++s.missing;
    }
  }
  return s;
}

// The flags of members with the cluster secret and, with `tls`, TLS between everyone
// (the test CA, certificates naming 127.0.0.1), and the credentials of a client of theirs.
struct SecuredCluster {
  explicit SecuredCluster(bool tls)
      : certs(tls ? std::make_unique<TestCerts>() : nullptr),
        credentials(tls ? certs->Client("ca.pem") : grpc::InsecureChannelCredentials()),
        flags(SecretArgs(secret)) {
    if (!tls) return;
    const std::vector<std::string> tls_flags = certs->NodeFlags();
    flags.insert(flags.end(), tls_flags.begin(), tls_flags.end());
  }
  SecretFile secret{kSecret};
  std::unique_ptr<TestCerts> certs;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::vector<std::string> flags;
};

TEST_CASE("With a cluster secret members work together and outsiders' cluster calls are refused",
          "[integration][cluster][security]") {
  // Once in plaintext, once with TLS between everyone: the outsider then holds the CA (it
  // can connect) but not the secret.
  const bool tls = GENERATE(false, true);
  INFO((tls ? "with TLS" : "plaintext"));
  const SecuredCluster secured(tls);
  const std::shared_ptr<grpc::ChannelCredentials>& credentials = secured.credentials;
  std::vector<std::string> flags = secured.flags;
  TestCluster cluster({.nodes = 3, .extra_args = flags, .credentials = credentials});
  RequireStart(cluster);  // Joins carry the secret, or this fails.

  // Replication (write concern 1 waits for a replica's ack on its Replicate stream) and
  // forwarding (every node answers every key) work with the secret.
  auto n1 = cluster.Stub(0);
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(checks::SetWc(*n1, KeyOf(i), "v" + std::to_string(i), 1).status, IsOk());
  }
  const Snapshot before = Take(cluster);
  REQUIRE(before.missing == 0);
  auto n2_view = cluster.Topology(1);
  REQUIRE(n2_view.has_value());

  const std::string n2 = cluster.address(1);
  const auto refused = [](const grpc::Status& s) {
    return s.error_code() == StatusCode::UNAUTHENTICATED &&
           s.error_message().find("cluster members only") != std::string::npos;
  };

  // A view with a huge epoch that moves n3 to n1's address (a split and misdirected
  // writes, if it were taken), and one at the largest epoch (it would wrap).
  {
    v1::ClusterView forged = *n2_view;
    forged.set_epoch(n2_view->epoch() + 1'000'000'000);
    for (v1::Member& m : *forged.mutable_members()) {
      if (m.id() == "n3") m.set_address(cluster.address(0));
    }
    const grpc::Status s = PushView(n2, forged, "n2", {}, credentials);
    INFO(s.error_message());
    CHECK(refused(s));
    CHECK(s.error_message().find("no cluster secret") != std::string::npos);
    forged.set_epoch(std::numeric_limits<uint64_t>::max());
    CHECK(refused(PushView(n2, forged, "n2", {}, credentials)));
    // A wrong secret is refused as well, and said to be wrong.
    const grpc::Status wrong = PushView(n2, forged, "n2", "not-the-secret-at-all", credentials);
    CHECK(refused(wrong));
    CHECK(wrong.error_message().find("wrong") != std::string::npos);
  }
  const Forger outsider(n2, credentials, "");
  CHECK(refused(outsider.Join("intruder")));                  // A made-up member joining.
  CHECK(refused(outsider.Leave("n2", /*forwarded=*/false)));  // A leave on n2's behalf.
  for (int i = 0; i < 10; ++i) {
    // Heartbeats posing as n1 that suspect n3 (failovers of a healthy node, if taken).
    CHECK(refused(outsider.Heartbeat("n1", "n2", n2_view->epoch(), "n3")));
  }
  CHECK(refused(outsider.TransitionReady("", 0)));  // A transition report.
  {  // A Replicate stream posing as n1, the primary, with a full sync that would empty n2.
    int acks = 0;
    CHECK(refused(outsider.FullSync("n1", "n2", n2_view->epoch(), &acks)));
    CHECK(acks == 0);
  }
  {  // Client calls claiming to be forwarded by a member (they would skip routing).
    CHECK(refused(outsider.ForwardedGet("n1", KeyOf(0))));
    int results = 0;
    CHECK(refused(outsider.ForwardedPipeline("n1", KeyOf(0), &results)));
    CHECK(results == 0);
  }

  // Each refusal is counted where it happened: 3 pushes, a join, a leave, 10 heartbeats, a
  // report, a stream, 2 forwarded calls.
  CHECK(MetricValue(cluster.node(1).MetricsAddress(), "ringcache_cluster_auth_failures_total") ==
        19);
  CHECK(MetricValue(cluster.node(0).MetricsAddress(), "ringcache_cluster_auth_failures_total") ==
        0);

  // Nothing changed: give any damage time to show (beyond the failure timeout), then the
  // same epoch, members and addresses, and every key through every node.
  std::this_thread::sleep_for(1500ms);
  const Snapshot after = Take(cluster);
  CHECK(after.epoch == before.epoch);
  CHECK(after.view == before.view);
  CHECK(after.missing == 0);
  CHECK(cluster.running(1));
}

// Reads of every test key through node `n`; the number that are missing or wrong.
int MissingThrough(TestCluster& cluster, size_t n) {
  auto stub = cluster.Stub(n);
  int missing = 0;
  for (int i = 0; i < kKeys; ++i) {
    Reply<v1::GetResponse> r = Get(*stub, KeyOf(i));
    if (!r.status.ok() || r.response.value() != "v" + std::to_string(i)) ++missing;
  }
  return missing;
}

// --cluster-listen: members call each other on a port of their own, which the client port
// does not serve. Clients get one stream per connection there (members' replication and
// forwarding streams would stall behind such a limit if they still used it).
TEST_CASE(
    "With --cluster-listen members use their own port and each port refuses the other "
    "plane's calls",
    "[integration][cluster][security]") {
  // Once in plaintext, once with TLS on both ports (the certificates name 127.0.0.1).
  const bool tls = GENERATE(false, true);
  INFO((tls ? "with TLS" : "plaintext"));
  const SecuredCluster secured(tls);
  const std::shared_ptr<grpc::ChannelCredentials>& credentials = secured.credentials;
  std::vector<std::string> flags = secured.flags;
  flags.insert(flags.end(), {"--max-streams-per-connection", "1", "--heartbeat-interval-ms", "100",
                             "--failure-timeout-ms", "1000"});
  TestCluster cluster(
      {.nodes = 3, .extra_args = flags, .credentials = credentials, .cluster_port = true});
  RequireStart(cluster);  // Joins through the seeds' cluster ports.
  {
    auto view = cluster.Topology(0);
    REQUIRE(view.has_value());
    for (const v1::Member& m : view->members()) {
      const size_t i = checks::IndexOf(m.id());
      CHECK(m.address() == cluster.address(i));
      CHECK(m.cluster_address() == cluster.node(i).ClusterAddress());
      CHECK_FALSE(m.cluster_address().empty());
      CHECK(m.cluster_address() != m.address());
    }
  }
  auto n1 = cluster.Stub(0);
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(checks::SetWc(*n1, KeyOf(i), "v" + std::to_string(i), 1).status, IsOk());
  }
  const Snapshot before = Take(cluster);
  REQUIRE(before.missing == 0);

  // The client port refuses members' calls, even with the secret, and names the port to use.
  const std::string n2_client = cluster.address(1);
  const std::string n2_cluster = cluster.node(1).ClusterAddress();
  const auto wrong_port = [](const grpc::Status& s) {
    return s.error_code() == StatusCode::PERMISSION_DENIED &&
           s.error_message().find("cluster port") != std::string::npos;
  };
  const Forger member_at_client_port(n2_client, credentials, kSecret);
  CHECK(wrong_port(member_at_client_port.Join("intruder")));
  CHECK(wrong_port(member_at_client_port.Heartbeat("n1", "n2", before.epoch, "n3")));
  CHECK(wrong_port(member_at_client_port.TransitionReady("n1", before.epoch)));
  {
    auto view = cluster.Topology(1);
    REQUIRE(view.has_value());
    v1::ClusterView next = *view;
    next.set_epoch(view->epoch() + 1);
    const grpc::Status s = PushView(n2_client, next, "n2", kSecret, credentials);
    INFO(s.error_message());
    CHECK(wrong_port(s));
  }
  CHECK(wrong_port(member_at_client_port.ForwardedGet("n1", KeyOf(0))));
  {
    int results = 0;
    CHECK(wrong_port(member_at_client_port.ForwardedPipeline("n1", KeyOf(0), &results)));
    CHECK(results == 0);
    int acks = 0;
    CHECK(member_at_client_port.FullSync("n1", "n2", before.epoch, &acks).error_code() ==
          StatusCode::UNIMPLEMENTED);
    CHECK(acks == 0);
  }
  // The cluster port refuses every call without the secret, clients' included.
  const Forger outsider_at_cluster_port(n2_cluster, credentials, "");
  {
    const grpc::Status s = outsider_at_cluster_port.Join("intruder");
    INFO(s.error_message());
    CHECK(s.error_code() == StatusCode::UNAUTHENTICATED);
    auto stub = v1::Cache::NewStub(grpc::CreateChannel(n2_cluster, credentials));
    const Reply<v1::GetResponse> get = Get(*stub, KeyOf(0));
    INFO(get.status.error_message());
    CHECK(get.status.error_code() == StatusCode::UNAUTHENTICATED);
    CHECK(get.status.error_message().find("cluster port") != std::string::npos);
  }
  std::this_thread::sleep_for(1500ms);
  const Snapshot after = Take(cluster);
  CHECK(after.epoch == before.epoch);
  CHECK(after.view == before.view);
  CHECK(after.missing == 0);

  // Failover and rejoin travel on the cluster ports: n3 is killed and failed over, then
  // comes back on its client port with a new cluster port, which the view takes.
  const std::string old_cluster_address = cluster.node(2).ClusterAddress();
  cluster.Kill(2);
  CHECK(checks::Eventually([&] { return checks::AllSee(cluster, "n3", v1::MEMBER_STATE_FAILED); },
                           15s));
  CHECK(MissingThrough(cluster, 0) == 0);
  CHECK(MissingThrough(cluster, 1) == 0);
  REQUIRE(cluster.Restart(2, /*same_port=*/true));
  CHECK(cluster.node(2).ClusterAddress() != old_cluster_address);
  {
    auto view = cluster.Topology(0);
    REQUIRE(view.has_value());
    for (const v1::Member& m : view->members()) {
      if (m.id() == "n3") CHECK(m.cluster_address() == cluster.node(2).ClusterAddress());
    }
  }
  for (size_t n = 0; n < 3; ++n) CHECK(MissingThrough(cluster, n) == 0);

  // An operator's Leave is served on the client port (here with the secret; an admin
  // token does as well).
  const Forger operator_at_client_port(cluster.address(2), credentials, kSecret);
  const grpc::Status leave = operator_at_client_port.Leave("n3", /*forwarded=*/false);
  INFO(leave.error_message());
  REQUIRE(leave.ok());
  const std::optional<ExitStatus> exit = cluster.node(2).WaitExit(30s);
  REQUIRE(exit.has_value());
  CHECK(*exit == ExitStatus::Code(0));
  CHECK(checks::Eventually([&] {
    auto view = cluster.Topology(0);
    return view.has_value() && !checks::StateIn(*view, "n3").has_value();
  }));
  CHECK(MissingThrough(cluster, 0) == 0);
  CHECK(MissingThrough(cluster, 1) == 0);
}

TEST_CASE("A member cannot jump the epoch past its bounds or replicate as a non-member",
          "[integration][cluster][security]") {
  SecretFile secret(kSecret);
  TestCluster cluster({.nodes = 1, .extra_args = SecretArgs(secret)});
  RequireStart(cluster);
  auto view = cluster.Topology(0);
  REQUIRE(view.has_value());
  const uint64_t held = view->epoch();

  v1::ClusterView jump = *view;
  jump.set_epoch(held + 1'000'001);
  grpc::Status s = PushView(cluster.address(0), jump, "n1", kSecret);
  INFO(s.error_message());
  CHECK(s.error_code() == StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message().find("--max-epoch-jump") != std::string::npos);

  jump.set_epoch(uint64_t{1} << 63);
  s = PushView(cluster.address(0), jump, "n1", kSecret);
  INFO(s.error_message());
  CHECK(s.error_code() == StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message().find("over the limit") != std::string::npos);

  // A Replicate stream with the secret but naming a primary that is not a member: refused
  // before anything is applied (what a member claims is checked against the view).
  {
    const Forger member(cluster.address(0), grpc::InsecureChannelCredentials(), kSecret);
    int acks = 0;
    const grpc::Status refused = member.FullSync("ghost", "n1", 0, &acks);
    CHECK(acks == 0);
    INFO(refused.error_message());
    CHECK(refused.error_code() == StatusCode::FAILED_PRECONDITION);
    CHECK(refused.error_message().find("primary ghost is not a member") != std::string::npos);
  }

  // Within the bound, a member's push is taken as before.
  jump.set_epoch(held + 1'000'000);
  CHECK(PushView(cluster.address(0), jump, "n1", kSecret).ok());
  auto after = cluster.Topology(0);
  REQUIRE(after.has_value());
  CHECK(after->epoch() == held + 1'000'000);
}

TEST_CASE("With --tls-node-identity a member speaks only for itself",
          "[integration][cluster][security]") {
  // Each node has a certificate naming its id (CN=n1 ...), and requires one from callers.
  // The attacker holds a real member's certificate (n3's) and the secret: a compromised
  // member. It may speak for n3, not for n1 or n2.
  TestCerts certs;
  SecretFile secret(kSecret);
  std::vector<std::string> flags = SecretArgs(secret);
  flags.insert(flags.end(), {"--tls-cert-file", certs.path("{id}.pem"), "--tls-key-file",
                             certs.path("{id}.key"), "--tls-ca-file", certs.path("ca.pem"),
                             "--tls-client-certs", "require", "--tls-node-identity"});
  const std::shared_ptr<grpc::ChannelCredentials> as_client = certs.Client("ca.pem", "client");
  TestCluster cluster({.nodes = 3, .extra_args = flags, .credentials = as_client});
  RequireStart(cluster);  // Joins, pushes, heartbeats and replication name their senders.

  auto n1 = cluster.Stub(0);
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(checks::SetWc(*n1, KeyOf(i), "v" + std::to_string(i), 1).status, IsOk());
  }
  const Snapshot before = Take(cluster);
  REQUIRE(before.missing == 0);
  auto n2_view = cluster.Topology(1);
  REQUIRE(n2_view.has_value());

  const std::string n2 = cluster.address(1);
  const std::shared_ptr<grpc::ChannelCredentials> as_n3 = certs.Client("ca.pem", "n3");
  const auto denied = [](const grpc::Status& s, const std::string& field) {
    INFO(s.error_code() << " " << s.error_message());
    return s.error_code() == StatusCode::PERMISSION_DENIED &&
           s.error_message().find("certificate names node n3") != std::string::npos &&
           s.error_message().find(field) != std::string::npos;
  };
  {  // A view pushed in n1's name.
    v1::ClusterView forged = *n2_view;
    forged.set_epoch(n2_view->epoch() + 1);
    forged.mutable_members()->RemoveLast();
    CHECK(denied(PushView(n2, forged, "n2", kSecret, as_n3), "PushViewRequest.from_id says n1"));
  }
  const Forger n3(n2, as_n3, kSecret);
  for (int i = 0; i < 10; ++i) {  // Heartbeats posing as n1.
    CHECK(denied(n3.Heartbeat("n1", "n2", n2_view->epoch(), "n1"), "HeartbeatRequest.from_id"));
  }
  // In its own name, n3's certificate is fine.
  CHECK_THAT(n3.Heartbeat("n3", "n2", n2_view->epoch(), ""), IsOk());
  // n1 joining again at another address.
  CHECK(denied(n3.Join("n1"), "JoinRequest.member.id says n1"));
  // n2's leave, passed on as if by n2 itself.
  CHECK(denied(n3.Leave("n2", /*forwarded=*/true), "LeaveRequest.node_id says n2"));
  // n1's transition report.
  CHECK(denied(n3.TransitionReady("n1", n2_view->epoch()), "TransitionReadyRequest.from_id"));
  {  // A Replicate stream as n1, the primary, with a full sync that would empty n2.
    int acks = 0;
    CHECK(denied(n3.FullSync("n1", "n2", n2_view->epoch(), &acks),
                 "ReplicationHello.primary_id says n1"));
    CHECK(acks == 0);
  }
  // Client calls forwarded in n1's name (they would skip routing).
  CHECK(denied(n3.ForwardedGet("n1", KeyOf(0)), "ringcache-forwarded-by says n1"));
  {  // In its own name, a full sync of the whole ring to n2: n3 is the primary of only a
     // third of it, so n2 drops nothing.
    int acks = 0;
    const grpc::Status s = n3.FullSync("n3", "n2", n2_view->epoch(), &acks, true);
    INFO(s.error_code() << " " << s.error_message());
    CHECK(s.error_code() == StatusCode::FAILED_PRECONDITION);
    CHECK(s.error_message().find("makes another member the primary") != std::string::npos);
  }

  // Nothing changed: the same view and every key through every node, after the failure
  // timeout has passed.
  std::this_thread::sleep_for(1500ms);
  const Snapshot after = Take(cluster);
  CHECK(after.epoch == before.epoch);
  CHECK(after.view == before.view);
  CHECK(after.missing == 0);
  CHECK(cluster.running(1));
  // A push, 10 heartbeats, a join, a leave, a report, a stream, a forwarded call.
  CHECK(MetricValue(cluster.node(1).MetricsAddress(), "ringcache_cluster_auth_failures_total") ==
        16);
}

TEST_CASE("With --tls-node-identity and a cluster port, clients need no certificate",
          "[integration][cluster][security]") {
  // The cluster port requires members' certificates by itself; the client port asks for
  // none (--tls-client-certs none, the default).
  TestCerts certs;
  SecretFile secret(kSecret);
  std::vector<std::string> flags = SecretArgs(secret);
  flags.insert(flags.end(),
               {"--tls-cert-file", certs.path("{id}.pem"), "--tls-key-file", certs.path("{id}.key"),
                "--tls-ca-file", certs.path("ca.pem"), "--tls-node-identity"});
  const std::shared_ptr<grpc::ChannelCredentials> no_cert = certs.Client("ca.pem");
  TestCluster cluster(
      {.nodes = 3, .extra_args = flags, .credentials = no_cert, .cluster_port = true});
  RequireStart(cluster);  // Members show their certificates on each other's cluster ports.
  auto n1 = cluster.Stub(0);
  for (int i = 0; i < kKeys; ++i) {
    REQUIRE_THAT(checks::SetWc(*n1, KeyOf(i), "v" + std::to_string(i), 1).status, IsOk());
  }
  const Snapshot before = Take(cluster);  // Every key through every node, without a cert.
  CHECK(before.missing == 0);

  const std::string n2_cluster = cluster.node(1).ClusterAddress();
  {  // Without a certificate the cluster port does not even complete the handshake.
    const Forger no_identity(n2_cluster, no_cert, kSecret);
    const grpc::Status s = no_identity.Heartbeat("n3", "n2", before.epoch, "");
    INFO(s.error_message());
    CHECK(s.error_code() == StatusCode::UNAVAILABLE);
  }
  {  // With n3's certificate and the secret, it may speak for n3 only.
    const Forger as_n3(n2_cluster, certs.Client("ca.pem", "n3"), kSecret);
    CHECK(as_n3.Heartbeat("n3", "n2", before.epoch, "").ok());
    const grpc::Status s = as_n3.Heartbeat("n1", "n2", before.epoch, "n2");
    INFO(s.error_message());
    CHECK(s.error_code() == StatusCode::PERMISSION_DENIED);
  }
  const Snapshot after = Take(cluster);
  CHECK(after.epoch == before.epoch);
  CHECK(after.missing == 0);
}

TEST_CASE("With --tls-node-identity a node whose certificate names another id does not start",
          "[integration][security]") {
  TestCerts certs;
  NodeProcess p;
  p.SpawnRaw({"--node-id", "n1", "--listen", "127.0.0.1:0", "--metrics-listen", "",
              "--tls-cert-file", certs.path("n2.pem"), "--tls-key-file", certs.path("n2.key"),
              "--tls-ca-file", certs.path("ca.pem"), "--tls-client-certs", "require",
              "--tls-node-identity"});
  const std::optional<ExitStatus> exit = p.WaitExit(10s);
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 1");
  {
    INFO(p.Stderr());
    CHECK(p.Stderr().find("--tls-node-identity") != std::string::npos);
    CHECK(p.Stderr().find("names node n2") != std::string::npos);
    CHECK(p.Stderr().find("this node's id is n1") != std::string::npos);
  }

  // And it needs client certificates to read callers' ids from.
  NodeProcess q;
  q.SpawnRaw({"--node-id", "n1", "--listen", "127.0.0.1:0", "--metrics-listen", "",
              "--tls-cert-file", certs.path("n1.pem"), "--tls-key-file", certs.path("n1.key"),
              "--tls-ca-file", certs.path("ca.pem"), "--tls-node-identity"});
  const std::optional<ExitStatus> qexit = q.WaitExit(10s);
  REQUIRE(qexit.has_value());
  CHECK(qexit->ToString() == "exit 2");
  INFO(q.Stderr());
  CHECK(q.Stderr().find("--tls-node-identity") != std::string::npos);
  CHECK(q.Stderr().find("tls.client_certs require") != std::string::npos);
}

TEST_CASE("A node with another cluster secret cannot join, and says why",
          "[integration][cluster][security]") {
  SecretFile secret(kSecret);
  SecretFile other("a-different-secret-of-this-size");
  TestCluster cluster({.nodes = 1, .extra_args = SecretArgs(secret)});
  RequireStart(cluster);

  NodeProcess stranger({"--node-id", "n2", "--seeds", cluster.address(0), "--join-timeout-ms",
                        "2000", "--cluster-secret-file", other.path()});
  CHECK_FALSE(stranger.Start(8s));
  CHECK(stranger.Stderr().find("UNAUTHENTICATED") != std::string::npos);
  CHECK(stranger.Stderr().find("wrong") != std::string::npos);
  auto view = cluster.Topology(0);
  REQUIRE(view.has_value());
  CHECK(view->members_size() == 1);
}

TEST_CASE("ringcached refuses a cluster secret file it cannot use", "[integration][security]") {
  SecretFile short_secret("too-short");
  NodeProcess p;
  p.SpawnRaw({"--cluster-secret-file", short_secret.path(), "--listen", "127.0.0.1:0",
              "--metrics-listen", ""});
  const std::optional<ExitStatus> exit = p.WaitExit(10s);
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 2");
  INFO(p.Stderr());
  CHECK(p.Stderr().find("--cluster-secret-file") != std::string::npos);
  CHECK(p.Stderr().find("16 to 1024 bytes, got 9") != std::string::npos);
}

TEST_CASE("A node without a cluster secret warns that its cluster plane is open",
          "[integration][security]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  CHECK(node.Stderr().find("cluster plane") != std::string::npos);
  CHECK(node.Stderr().find("open to anyone") != std::string::npos);
}

TEST_CASE("A node warns when its cluster secret file can be read by other users",
          "[integration][security]") {
  SecretFile secret(kSecret);  // Mode 0600: no warning.
  {
    std::vector<std::string> flags = SmallNodeFlags();
    flags.insert(flags.end(), {"--cluster-secret-file", secret.path()});
    NodeProcess node(flags);
    RequireStart(node);
    CHECK(node.Stderr().find("can be read by other users") == std::string::npos);
  }
  std::filesystem::permissions(
      secret.path(), std::filesystem::perms::group_read | std::filesystem::perms::others_read,
      std::filesystem::perm_options::add);
  std::vector<std::string> flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--cluster-secret-file", secret.path()});
  NodeProcess node(flags);
  RequireStart(node);
  INFO(node.Stderr());
  CHECK(node.Stderr().find("can be read by other users (mode 0644)") != std::string::npos);
}

}  // namespace
}  // namespace ringcache::it

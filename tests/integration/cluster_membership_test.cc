// Cluster membership with real ringcached processes: forming a cluster through seeds,
// joins bumping the epoch everywhere (JOINING, then SERVING once the migration is done),
// restarted nodes rejoining at a new address, leaving through the Leave rpc, and the
// refusals (settings mismatch, a duplicate live id, a join timeout) with clear messages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "ringcache/v1/cluster.grpc.pb.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;

// 127.0.0.1:<a port nothing listens on> (bound, then closed at once).
std::string DeadAddress() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

std::unique_ptr<v1::Membership::Stub> MembershipStub(NodeProcess& node) {
  return v1::Membership::NewStub(node.NewChannel());
}

// The ids of `view`'s members, in order.
std::vector<std::string> Ids(const v1::ClusterView& view) {
  std::vector<std::string> ids;
  for (const v1::Member& m : view.members()) ids.push_back(m.id());
  return ids;
}

std::vector<std::string> ExpectedIds(size_t n) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(TestCluster::IdOf(i));
  return ids;
}

// Every running node's Topology, which must all be equal; returns it.
v1::ClusterView RequireSameTopology(TestCluster& cluster) {
  std::optional<v1::ClusterView> first;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (!cluster.running(i)) continue;
    std::optional<v1::ClusterView> view = cluster.Topology(i);
    INFO("node " << cluster.id(i));
    REQUIRE(view.has_value());
    if (!first) {
      first = view;
    } else {
      INFO(first->ShortDebugString() << "\nvs\n" << view->ShortDebugString());
      CHECK(view->SerializeAsString() == first->SerializeAsString());
    }
  }
  REQUIRE(first.has_value());
  return *first;
}

// Lines of `log` that report a view change.
int CountViewLines(const std::string& log) {
  int n = 0;
  for (size_t at = log.find("adopted view epoch"); at != std::string::npos;
       at = log.find("adopted view epoch", at + 1)) {
    ++n;
  }
  return n;
}

v1::JoinRequest MakeJoin(const std::string& id, const std::string& address, uint32_t rf,
                         uint32_t vnodes) {
  v1::JoinRequest request;
  request.mutable_member()->set_id(id);
  request.mutable_member()->set_address(address);
  request.mutable_member()->set_weight(1);
  request.set_replication_factor(rf);
  request.set_vnodes_per_weight(vnodes);
  return request;
}

// Writes k0..k<n-1> (value "v") through `stub`.
void WriteNumberedKeys(v1::Cache::Stub& stub, int n) {
  for (int i = 0; i < n; ++i) {
    REQUIRE_THAT(Set(stub, "k" + std::to_string(i), "v").status, IsOk());
  }
}

// How many of k0..k<n-1> do not read back through `stub`.
int CountMissingNumberedKeys(v1::Cache::Stub& stub, int n) {
  int missing = 0;
  for (int i = 0; i < n; ++i) {
    if (!Get(stub, "k" + std::to_string(i)).status.ok()) ++missing;
  }
  return missing;
}

TEST_CASE("Clusters of 3 and 5 nodes form with one epoch and the same view everywhere",
          "[integration][cluster][membership]") {
  const int n = GENERATE(3, 5);
  INFO(n << " nodes");
  TestCluster cluster({.nodes = n, .replication_factor = 2});
  RequireStart(cluster);

  const v1::ClusterView view = RequireSameTopology(cluster);
  // One bootstrap, then two epochs per join (JOINING, then SERVING): the harness starts
  // each node once the previous join is complete.
  CHECK(view.epoch() == static_cast<uint64_t>(2 * n - 1));
  CHECK(cluster.epoch() == view.epoch());
  CHECK(Ids(view) == ExpectedIds(static_cast<size_t>(n)));
  CHECK(view.replication_factor() == 2);
  CHECK(view.vnodes_per_weight() == 160);
  for (int i = 0; i < view.members_size(); ++i) {
    const v1::Member& m = view.members(i);
    CHECK(m.address() == cluster.address(static_cast<size_t>(i)));
    CHECK(m.state() == v1::MEMBER_STATE_SERVING);
    CHECK(m.weight() == 1);
  }
  // Stats reports the same epoch.
  for (size_t i = 0; i < cluster.size(); ++i) {
    auto stub = cluster.Stub(i);
    auto stats = Stats(*stub);
    REQUIRE_THAT(stats.status, IsOk());
    CHECK(stats.response.epoch() == view.epoch());
  }
  // One log line per view change: n1 adopted every epoch, the last joiner only its own two
  // (JOINING in the join's answer, SERVING pushed at the end of the transition).
  CHECK(CountViewLines(cluster.node(0).Stderr()) == 2 * n - 1);
  const std::string last = cluster.node(static_cast<size_t>(n - 1)).Stderr();
  CHECK(CountViewLines(last) == 2);
  CHECK_THAT(last, Catch::Contains("adopted view epoch " + std::to_string(2 * n - 2)));
  CHECK_THAT(last, Catch::Contains("adopted view epoch " + std::to_string(2 * n - 1)));
  CHECK_THAT(cluster.node(0).Stderr(),
             Catch::Contains("transition of epoch " + std::to_string(2 * n - 2) + " complete (n" +
                             std::to_string(n) + " joined)"));
  CHECK(cluster.Stop());
}

TEST_CASE("Concurrent joins serialize at the coordinator, one epoch each, then complete",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 1});
  RequireStart(cluster);
  // n2..n5 all at once (SpawnRaw does not wait), then their ready files.
  constexpr int kJoiners = 4;
  std::vector<std::unique_ptr<NodeProcess>> joiners;
  for (int i = 0; i < kJoiners; ++i) {
    joiners.push_back(std::make_unique<NodeProcess>());
    NodeProcess& node = *joiners.back();
    node.SpawnRaw({"--node-id", TestCluster::IdOf(static_cast<size_t>(i) + 1), "--listen",
                   "127.0.0.1:0", "--metrics-listen", "", "--ready-file", node.ReadyFile(),
                   "--seeds", cluster.address(0), "--join-timeout-ms", "10000"});
  }
  std::vector<std::string> addresses(kJoiners);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (int i = 0; i < kJoiners; ++i) {
    while (addresses[i].empty() && std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(joiners[i]->ReadyFile());
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("grpc=", 0) == 0) addresses[i] = line.substr(5);
      }
      if (addresses[i].empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    INFO("n" << i + 2 << " stderr: " << joiners[i]->Stderr());
    REQUIRE_FALSE(addresses[i].empty());
  }
  // Every node, n1 included, ends at one epoch with 5 members, all SERVING: no join lost.
  // (Joins that arrive during a transition add to it, so the last epoch depends on the
  // timing: 1 + 4 joins + 1 to 4 transitions.)
  std::vector<std::string> all = {cluster.address(0)};
  all.insert(all.end(), addresses.begin(), addresses.end());
  std::string last;
  bool agreed = false;
  while (!agreed && std::chrono::steady_clock::now() < deadline) {
    agreed = true;
    last.clear();
    std::set<uint64_t> epochs;
    for (const std::string& address : all) {
      auto stub =
          v1::Cache::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      SetDeadline(ctx, std::chrono::milliseconds(1000));
      v1::ClusterView view;
      const grpc::Status status = stub->Topology(&ctx, v1::TopologyRequest{}, &view);
      last +=
          address + ": " + (status.ok() ? view.ShortDebugString() : status.error_message()) + "\n";
      if (!status.ok() || Ids(view) != ExpectedIds(5) ||
          std::any_of(view.members().begin(), view.members().end(),
                      [](const v1::Member& m) { return m.state() != v1::MEMBER_STATE_SERVING; })) {
        agreed = false;
        continue;
      }
      if (epochs.empty()) epochs.insert(view.epoch());
      if (epochs.count(view.epoch()) == 0) agreed = false;
    }
    if (!agreed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(last);
  CHECK(agreed);
  // The coordinator added each joiner in an epoch of its own ("nX joining" once per line).
  const std::string log = cluster.node(0).Stderr();
  const std::regex joining("n[0-9] joining[;,)]");
  int single_joins = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("adopted view epoch") == std::string::npos) continue;
    const auto n = std::distance(std::sregex_iterator(line.begin(), line.end(), joining),
                                 std::sregex_iterator());
    CHECK(n <= 1);
    single_joins += static_cast<int>(n);
  }
  CHECK(single_joins == kJoiners);
}

TEST_CASE("A node joining a running cluster bumps the epoch on every node",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  const uint64_t before = cluster.epoch();

  REQUIRE(cluster.AddNode({"--weight", "2"}));
  const v1::ClusterView view = RequireSameTopology(cluster);
  // JOINING in before + 1, SERVING in before + 2.
  CHECK(view.epoch() == before + 2);
  CHECK(Ids(view) == ExpectedIds(4));
  CHECK(view.members(3).address() == cluster.address(3));
  CHECK(view.members(3).weight() == 2);
  CHECK(view.members(3).state() == v1::MEMBER_STATE_SERVING);
  // The coordinator (n1) and a pushed member (n2) log both changes.
  const std::string n1 = cluster.node(0).Stderr();
  CHECK_THAT(n1, Catch::Contains("adopted view epoch " + std::to_string(before + 1) +
                                 ": members n1,n2,n3,n4 (n4 joining; as coordinator)"));
  CHECK_THAT(n1, Catch::Contains("transition of epoch " + std::to_string(before + 1) +
                                 " complete (n4 joined); epoch " + std::to_string(before + 1) +
                                 " -> " + std::to_string(before + 2)));
  CHECK_THAT(n1, Catch::Contains("adopted view epoch " + std::to_string(before + 2) +
                                 ": members n1,n2,n3,n4 (n4 joining -> serving; as coordinator)"));
  CHECK_THAT(cluster.node(1).Stderr(), Catch::Contains("(n4 joining; pushed by n1)"));
  CHECK_THAT(cluster.node(1).Stderr(), Catch::Contains("(n4 joining -> serving; pushed by n1)"));
}

TEST_CASE("A joiner is JOINING until its ranges have arrived, then SERVING",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  const uint64_t before = cluster.epoch();
  // Some data, so that the transition has something to move.
  auto n1 = cluster.Stub(0);
  WriteNumberedKeys(*n1, 300);
  REQUIRE(cluster.AddNode());
  const v1::ClusterView view = RequireSameTopology(cluster);
  CHECK(view.epoch() == before + 2);
  // Every node saw n4 JOINING (in before + 1), then SERVING (in before + 2); n4 got the
  // first view in the answer to its join or in the coordinator's push, whichever came
  // first.
  for (size_t i = 0; i < cluster.size(); ++i) {
    INFO(cluster.id(i));
    const std::string log = cluster.node(i).Stderr();
    const std::string first =
        "adopted view epoch " + std::to_string(before + 1) + ": members n1,n2,n3,n4 (";
    if (i == 3) {
      CHECK_THAT(log, Catch::Contains(first + "joined through") ||
                          Catch::Contains(first + "pushed by n1"));
    } else {
      CHECK_THAT(log, Catch::Contains(first + "n4 joining"));
    }
    CHECK_THAT(log, Catch::Contains("adopted view epoch " + std::to_string(before + 2) +
                                    ": members n1,n2,n3,n4 (n4 joining -> serving"));
  }
  // Every key is still readable through the new node, the keys it now owns included.
  auto n4 = cluster.Stub(3);
  CHECK(CountMissingNumberedKeys(*n4, 300) == 0);
}

TEST_CASE("A node leaves through the Leave rpc: LEAVING, then out of the view, exit 0",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  const uint64_t before = cluster.epoch();
  auto n1 = cluster.Stub(0);
  WriteNumberedKeys(*n1, 300);
  SECTION("a member that is not the coordinator") {
    REQUIRE(cluster.Leave(1));
    const v1::ClusterView view = RequireSameTopology(cluster);
    CHECK(view.epoch() == before + 2);
    CHECK(Ids(view) == std::vector<std::string>{"n1", "n3"});
    CHECK_THAT(cluster.node(1).Stderr(),
               Catch::Contains("leave requested by a client; asking coordinator n1"));
    CHECK_THAT(cluster.node(1).Stderr(),
               Catch::Contains("left the cluster in epoch " + std::to_string(before + 2)));
    CHECK_THAT(cluster.node(0).Stderr(),
               Catch::Contains("n2 leaving; epoch " + std::to_string(before) + " -> " +
                               std::to_string(before + 1)));
    CHECK_THAT(cluster.node(0).Stderr(),
               Catch::Contains("transition of epoch " + std::to_string(before + 1) +
                               " complete (n2 left)"));
  }
  SECTION("the coordinator itself") {
    REQUIRE(cluster.Leave(0));
    const v1::ClusterView view = RequireSameTopology(cluster);
    CHECK(view.epoch() == before + 2);
    CHECK(Ids(view) == std::vector<std::string>{"n2", "n3"});
    CHECK_THAT(cluster.node(0).Stderr(),
               Catch::Contains("left the cluster in epoch " + std::to_string(before + 2)));
    // n2 coordinates now: a join lands in every view.
    REQUIRE(cluster.AddNode());
  }
  // No key was lost on the way (RF 2: every key had a copy on a staying node).
  const size_t reader = cluster.running(1) ? 1 : 2;
  auto stub = cluster.Stub(reader);
  CHECK(CountMissingNumberedKeys(*stub, 300) == 0);
}

TEST_CASE("The Leave rpc refuses another node's id and the last serving member",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 1});
  RequireStart(cluster);
  auto stub = MembershipStub(cluster.node(0));
  {
    v1::LeaveRequest request;
    request.set_node_id("n7");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::LeaveResponse response;
    CHECK_THAT(stub->Leave(&ctx, request, &response),
               StatusIs(StatusCode::FAILED_PRECONDITION, {"this is node n1, not n7"}));
  }
  {
    v1::LeaveRequest request;
    request.set_node_id("n1");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::LeaveResponse response;
    CHECK_THAT(stub->Leave(&ctx, request, &response),
               StatusIs(StatusCode::FAILED_PRECONDITION, {"only serving member"}));
  }
  CHECK(cluster.running(0));
}

TEST_CASE("Joins through a non-coordinator are forwarded to the coordinator",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  const uint64_t before = cluster.epoch();
  // The new node's only seed is n3; n1 (lowest id) makes the change.
  NodeProcess n4({"--node-id", "n4", "--seeds", cluster.address(2), "--join-timeout-ms", "10000"});
  RequireStart(n4, std::chrono::milliseconds(15'000));
  auto stub = n4.NewStub();
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::ClusterView view;
  REQUIRE_THAT(stub->Topology(&ctx, v1::TopologyRequest{}, &view), IsOk());
  // Joined (before + 1), maybe already SERVING (before + 2).
  CHECK(view.epoch() >= before + 1);
  CHECK(Ids(view) == ExpectedIds(4));
  // n4 got the view in the answer; n3 gets it in n1's push, maybe a little later.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cluster.Topology(2).value_or(v1::ClusterView{}).epoch() < before + 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK_THAT(cluster.node(0).Stderr(), Catch::Contains("(n4 joining; as coordinator)"));
  CHECK_THAT(cluster.node(2).Stderr(), Catch::Contains("(n4 joining; pushed by n1)"));
}

// A restarted node (empty) rejoins as JOINING, then becomes SERVING once the transition is
// done: at least two epochs; three when the failure detector had marked it FAILED first.
TEST_CASE("A restarted node rejoins with its new address", "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);

  SECTION("a member that is not the coordinator, on a new port") {
    const uint64_t before = cluster.epoch();
    const std::string old_address = cluster.address(1);
    cluster.Kill(1);
    REQUIRE(cluster.Restart(1));
    CHECK(cluster.address(1) != old_address);
    const v1::ClusterView view = RequireSameTopology(cluster);
    CHECK(view.epoch() >= before + 2);
    CHECK(view.epoch() <= before + 3);
    CHECK(view.members(1).address() == cluster.address(1));
    CHECK(view.members(1).state() == v1::MEMBER_STATE_SERVING);
    CHECK_THAT(cluster.node(0).Stderr(),
               Catch::Contains("n2 moved from " + old_address + " to " + cluster.address(1)));
    CHECK_THAT(cluster.node(0).Stderr(), Catch::Contains("complete (n2 joined)"));
  }
  SECTION("the coordinator itself (lowest id), on a new port") {
    const uint64_t before = cluster.epoch();
    cluster.Kill(0);
    REQUIRE(cluster.Restart(0));
    const v1::ClusterView view = RequireSameTopology(cluster);
    CHECK(view.epoch() >= before + 2);
    CHECK(view.members(0).address() == cluster.address(0));
    // n1 coordinates again: a new node joining through n3 lands in every view.
    const uint64_t rejoined = view.epoch();
    REQUIRE(cluster.AddNode());
    CHECK(RequireSameTopology(cluster).epoch() == rejoined + 2);
    CHECK_THAT(cluster.node(0).Stderr(), Catch::Contains("(n4 joining; as coordinator)"));
  }
  SECTION("on the same port: JOINING again (it restarted empty), then SERVING") {
    const uint64_t before = cluster.epoch();
    const std::string old_address = cluster.address(2);
    REQUIRE(cluster.Restart(2, /*same_port=*/true));
    CHECK(cluster.address(2) == old_address);
    const v1::ClusterView view = RequireSameTopology(cluster);
    CHECK(view.epoch() >= before + 2);
    CHECK(view.epoch() <= before + 3);
    CHECK_THAT(cluster.node(0).Stderr(), Catch::Contains("complete (n3 joined)"));
  }
  CHECK(cluster.Stop());
}

TEST_CASE("A join with other cluster settings is refused, naming both values",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 2, .replication_factor = 2});
  RequireStart(cluster);
  const auto [flag, value, pattern] =
      GENERATE(std::make_tuple(std::string("--replication-factor"), std::string("3"),
                               std::string("replication factor 3 but the cluster has 2")),
               std::make_tuple(std::string("--vnodes"), std::string("100"),
                               std::string("100 vnodes per weight but the cluster has 160")));
  INFO(flag << " " << value);
  // Through n2, which is not the coordinator: it refuses without forwarding.
  NodeProcess joiner({"--node-id", "n9", "--seeds", cluster.address(1), flag, value,
                      "--join-timeout-ms", "10000"});
  CHECK_FALSE(joiner.Start(std::chrono::milliseconds(15'000)));
  REQUIRE(joiner.LastExit().has_value());
  CHECK(*joiner.LastExit() == ExitStatus::Code(1));
  const std::string log = joiner.Stderr();
  CHECK_THAT(log, Catch::Contains("the cluster refused node n9"));
  CHECK_THAT(log, Catch::Contains(pattern));
  CHECK_THAT(log, Catch::Contains("FAILED_PRECONDITION"));
  // The cluster did not change.
  CHECK(RequireSameTopology(cluster).epoch() == cluster.epoch());
}

TEST_CASE("A second live node with a member's id is refused",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 3});
  RequireStart(cluster);
  const std::string id = GENERATE(std::string("n1"), std::string("n2"));
  INFO("id " << id);
  NodeProcess twin({"--node-id", id, "--seeds", cluster.address(2), "--join-timeout-ms", "10000"});
  CHECK_FALSE(twin.Start(std::chrono::milliseconds(15'000)));
  REQUIRE(twin.LastExit().has_value());
  CHECK(*twin.LastExit() == ExitStatus::Code(1));
  CHECK_THAT(twin.Stderr(),
             Catch::Contains("node id " + id + " is already used by the live member"));
  CHECK(RequireSameTopology(cluster).epoch() == cluster.epoch());
}

TEST_CASE("A seed that is down is skipped", "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 2});
  RequireStart(cluster);
  const std::string dead = DeadAddress();
  NodeProcess n3({"--node-id", "n3", "--seeds", dead + "," + cluster.address(0),
                  "--join-timeout-ms", "10000"});
  RequireStart(n3, std::chrono::milliseconds(15'000));
  CHECK_THAT(n3.Stderr(), Catch::Contains("join through " + dead + " failed"));
  // Through n1 (the view comes in the answer, or in n1's push if that is faster).
  // (2 nodes started: epoch 3; n3 JOINING in epoch 4.)
  CHECK_THAT(n3.Stderr(), Catch::Contains("adopted view epoch 4: members n1,n2,n3"));
  CHECK(cluster.Topology(0)->members_size() == 3);
}

TEST_CASE("ringcached exits with code 1 and a clear error when it cannot join in time",
          "[integration][cluster][membership]") {
  const std::string dead = DeadAddress();
  NodeProcess node({"--node-id", "lonely", "--seeds", dead, "--join-timeout-ms", "300"});
  const auto started = std::chrono::steady_clock::now();
  CHECK_FALSE(node.Start(std::chrono::milliseconds(10'000)));
  REQUIRE(node.LastExit().has_value());
  CHECK(*node.LastExit() == ExitStatus::Code(1));
  // Well under the ready timeout: the join timeout ended it.
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(8));
  const std::string log = node.Stderr();
  INFO(log);
  CHECK_THAT(log, Catch::Contains("cannot start: UNAVAILABLE: could not join the cluster "
                                  "through seeds " +
                                  dead));
  CHECK_THAT(log, Catch::Contains("join timeout 300 ms"));
  CHECK_THAT(log, Catch::Contains("last error: " + dead));
}

TEST_CASE("A node that is still joining refuses joins through it",
          "[integration][cluster][membership]") {
  // Listens on a known port (no ready file while it tries a dead seed).
  const std::string address = DeadAddress();
  NodeProcess joining;
  joining.SpawnRaw({"--node-id", "slow", "--listen", address, "--metrics-listen", "", "--seeds",
                    DeadAddress(), "--join-timeout-ms", "20000"});
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto membership = v1::Membership::NewStub(channel);
  // Poll until the server is up (bounded).
  grpc::Status status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    grpc::ClientContext ctx;
    SetDeadline(ctx, std::chrono::milliseconds(500));
    v1::JoinResponse response;
    status = membership->Join(&ctx, MakeJoin("x", "127.0.0.1:1", 2, 160), &response);
    if (status.error_code() == StatusCode::UNAVAILABLE &&
        status.error_message().find("joining") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  CHECK_THAT(status, StatusIs(StatusCode::UNAVAILABLE, {"node slow is joining the cluster"}));
  joining.Kill();
}

TEST_CASE("Membership rpcs: bad joins and stale or foreign pushes are refused",
          "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 2});
  RequireStart(cluster);
  auto stub = MembershipStub(cluster.node(1));
  const uint64_t epoch = cluster.epoch();

  SECTION("a join without an id") {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::JoinResponse response;
    CHECK_THAT(stub->Join(&ctx, MakeJoin("", "127.0.0.1:9", 2, 160), &response),
               StatusIs(StatusCode::INVALID_ARGUMENT, {"member\\.id is empty"}));
  }
  SECTION("a push of an older epoch is ignored and answered with the current epoch") {
    v1::PushViewRequest push;
    *push.mutable_view() = *cluster.Topology(1);
    push.mutable_view()->set_epoch(1);
    push.mutable_view()->mutable_members()->RemoveLast();
    push.set_from_id("test");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PushViewResponse response;
    CHECK_THAT(stub->PushView(&ctx, push, &response), IsOk());
    CHECK(response.epoch() == epoch);
    CHECK(cluster.Topology(1)->members_size() == 2);
  }
  SECTION("a push with a duplicate member id") {
    v1::PushViewRequest push;
    *push.mutable_view() = *cluster.Topology(1);
    push.mutable_view()->set_epoch(epoch + 10);
    *push.mutable_view()->add_members() = push.view().members(0);
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PushViewResponse response;
    CHECK_THAT(stub->PushView(&ctx, push, &response),
               StatusIs(StatusCode::INVALID_ARGUMENT, {"duplicate member id"}));
    CHECK(cluster.Topology(1)->epoch() == epoch);
  }
  SECTION("a push of a view without the receiving node") {
    v1::PushViewRequest push;
    *push.mutable_view() = *cluster.Topology(1);
    push.mutable_view()->set_epoch(epoch + 10);
    push.mutable_view()->mutable_members()->RemoveLast();  // n2
    push.set_from_id("test");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PushViewResponse response;
    CHECK_THAT(stub->PushView(&ctx, push, &response),
               StatusIs(StatusCode::FAILED_PRECONDITION, {"node n2 .* is not in the pushed view"}));
    CHECK(cluster.Topology(1)->epoch() == epoch);
  }
  SECTION("a push of a newer view is adopted") {
    v1::PushViewRequest push;
    *push.mutable_view() = *cluster.Topology(1);
    push.mutable_view()->set_epoch(epoch + 10);
    push.set_from_id("test");
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    v1::PushViewResponse response;
    CHECK_THAT(stub->PushView(&ctx, push, &response), IsOk());
    CHECK(response.epoch() == epoch + 10);
    CHECK(cluster.Topology(1)->epoch() == epoch + 10);
    CHECK_THAT(cluster.node(1).Stderr(), Catch::Contains("pushed by test"));
  }
}

TEST_CASE("Cluster settings come from a config file too", "[integration][cluster][membership]") {
  TestCluster cluster({.nodes = 1, .replication_factor = 3});
  RequireStart(cluster);
  NodeProcess n2;
  const std::string config = n2.Dir() + "/ringcached.toml";
  {
    std::ofstream out(config);
    out << "node-id = \"n2\"\n"
        << "seeds = [\"" << cluster.address(0) << "\"]\n"
        << "replication-factor = 3\n"
        << "weight = 3\n"
        << "join-timeout-ms = 10000\n";
  }
  NodeProcess node({"--config", config});
  RequireStart(node, std::chrono::milliseconds(15'000));
  const v1::ClusterView view = *cluster.Topology(0);
  REQUIRE(view.members_size() == 2);
  CHECK(view.members(1).id() == "n2");
  CHECK(view.members(1).weight() == 3);
  CHECK(view.members(1).address() == node.GrpcAddress());
  CHECK(view.replication_factor() == 3);
}

TEST_CASE("Bad cluster flags exit 2 naming the flag", "[integration][cluster][startup]") {
  const auto [args, pattern] = GENERATE(
      std::make_tuple(std::vector<std::string>{"--seeds", "nohost"}, std::string("--seeds: ")),
      std::make_tuple(std::vector<std::string>{"--seeds", "127.0.0.1:0"},
                      std::string("--seeds: .*port 0")),
      std::make_tuple(
          std::vector<std::string>{"--listen", "0.0.0.0:0", "--seeds", "127.0.0.1:7700"},
          std::string("--advertise: advertise_address is required")),
      std::make_tuple(std::vector<std::string>{"--advertise", "0.0.0.0:7700"},
                      std::string("--advertise: ")),
      std::make_tuple(std::vector<std::string>{"--node-id", "a b"}, std::string("--node-id: ")),
      std::make_tuple(std::vector<std::string>{"--cluster-listen", "127.0.0.1"},
                      std::string("--cluster-listen: .*has no port")),
      std::make_tuple(std::vector<std::string>{"--listen", "127.0.0.1:7790", "--cluster-listen",
                                               "127.0.0.1:7790"},
                      std::string("--cluster-listen: .*a port of its own")),
      std::make_tuple(std::vector<std::string>{"--cluster-advertise", "127.0.0.1:7701"},
                      std::string("--cluster-advertise: .*needs cluster_listen_address")),
      std::make_tuple(std::vector<std::string>{"--cluster-listen", "0.0.0.0:0", "--seeds",
                                               "127.0.0.1:7700", "--protected-mode=false"},
                      std::string("--cluster-advertise: cluster_advertise_address is required")),
      std::make_tuple(std::vector<std::string>{"--cluster-listen", "0.0.0.0:0"},
                      std::string("--cluster-listen: .*no cluster secret")),
      std::make_tuple(std::vector<std::string>{"--replication-backlog", "1KiB"},
                      std::string("--replication-backlog: .*at least 1 MiB")),
      std::make_tuple(std::vector<std::string>{"--replication-factor", "17"},
                      std::string("replication-factor")),
      std::make_tuple(std::vector<std::string>{"--weight", "0"}, std::string("weight")));
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  INFO(joined);
  NodeProcess node;
  std::vector<std::string> full = {"--metrics-listen", ""};
  full.insert(full.end(), args.begin(), args.end());
  node.SpawnRaw(full);
  const std::optional<ExitStatus> exit = node.WaitExit(std::chrono::seconds(10));
  REQUIRE(exit.has_value());
  CHECK(*exit == ExitStatus::Code(2));
  INFO("stderr: " << node.Stderr());
  CHECK(std::regex_search(node.Stderr(), std::regex(pattern)));
}

}  // namespace
}  // namespace ringcache::it

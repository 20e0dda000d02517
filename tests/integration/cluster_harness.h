// TestCluster: a cluster of real ringcached processes on 127.0.0.1, owned by one test.
//
// Node i (0-based) has id "n<i+1>". Start() launches n1 with no seeds (it bootstraps the
// cluster), then n2..nN one by one with `--seeds <n1's address>`, each once the previous
// ones have converged: every running node reports, through the Topology rpc, the same
// epoch and a view holding every node the harness has started (but those that left), each
// running one at its current address and SERVING (a joiner is JOINING until its ranges
// have been migrated to it, then SERVING: two epochs per join), none JOINING or LEAVING.
// So a cluster started with N nodes is at epoch 2N - 1. All ports are chosen by the
// kernel (port 0), read back from each node's --ready-file.
//
//   TestCluster cluster({.nodes = 3, .replication_factor = 2});
//   RequireStart(cluster);                            // or: REQUIRE(cluster.Start());
//   auto stub = cluster.Stub(1);                      // a Cache stub to n2
//   cluster.Kill(2);                                  // SIGKILL n3 (FAILED after a while)
//   REQUIRE(cluster.Restart(2));                      // n3 again: same id, new port, joins
//   REQUIRE(cluster.AddNode());                       // n4 joins; every node sees the epoch
//   REQUIRE(cluster.Leave(3));                        // n4 leaves (Leave rpc), exits 0
//   uint64_t e = cluster.epoch();                     // the agreed epoch
//
// API (stable; other tests rely on it):
//   ClusterOptions{.nodes, .replication_factor, .extra_args, .ready_timeout,
//                  .converge_timeout}
//   bool Start()                       start n1..nN, wait until converged
//   bool AddNode(extra_args = {})      start n<size+1>, seeds = every running node
//   void Kill(i)                       SIGKILL node i (stays in the view; the failure
//                                      detector marks it FAILED after --failure-timeout-ms)
//   bool Restart(i, same_port = false) node i again with the same id; seeds = the other
//                                      running nodes; waits until converged
//   bool Restart(i, same_port, first)  the same, with the seeds `first` tried first
//   bool Leave(i)                      Membership.Leave on node i, which must exit 0 and
//                                      drop out of the view; waits until converged
//   bool Stop(timeout)                 SIGTERM every running node; true if all exited 0
//   bool WaitConverged(timeout)        poll Topology on every running node (bounded)
//   bool departed(i)                   node i left the cluster (Leave)
//   std::optional<v1::ClusterView> Topology(i)   one Topology call (nullopt on error)
//   size(), id(i), address(i), addresses(), running(i), node(i) (the NodeProcess),
//   Stub(i), epoch(), Error()
// Every method returning bool puts the reason in Error() when it returns false (with the
// views the nodes reported, when it is about convergence).
//
// The nodes' logs are printed if the test case fails (NodeProcess's listener), including
// those of the processes a Restart() replaced.
//
// Thread safety: not thread-safe; call from the test's main thread (see NodeProcess).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node_process.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::it {

struct ClusterOptions {
  // Nodes started by Start(): n1..n<nodes>. At least 1.
  int nodes = 3;
  // --replication-factor of every node.
  uint32_t replication_factor = 2;
  // Flags given to every node, e.g. {"--memory", "64MiB"}; "{id}" in one stands for the
  // node's id ("/certs/{id}.pem": n1.pem for n1). The harness passes --node-id,
  // --seeds, --replication-factor, --join-timeout-ms (ready_timeout - 2 s), --log-level
  // info, and NodeProcess --listen, --metrics-listen, --ready-file, each unless these
  // (or AddNode's extra_args) hold the flag already.
  std::vector<std::string> extra_args = {};
  // A client token (--auth-tokens-file) the harness's own calls (Topology) carry; empty =
  // none.
  std::string token = {};
  // The credentials of every channel to the nodes (Stub(), the harness's own calls), for
  // nodes with TLS; nullptr = plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr;
  // Every node gets a cluster port of its own (--cluster-listen 127.0.0.1:0), and seeds
  // are the cluster addresses. Default: the plane shares the client port.
  bool cluster_port = false;
  // Bound for one node's ready file (which it writes once it holds a view).
  std::chrono::milliseconds ready_timeout{20'000};
  // Bound for the nodes to agree on a view after a start, add or restart.
  std::chrono::milliseconds converge_timeout{15'000};
};

class TestCluster {
 public:
  explicit TestCluster(ClusterOptions options = {});
  // Kills every node still running.
  ~TestCluster();
  TestCluster(const TestCluster&) = delete;
  TestCluster& operator=(const TestCluster&) = delete;

  // Starts n1..nN and waits until they agree on one view with N members.
  // REQUIRES: not started.
  [[nodiscard]] bool Start();

  // Starts one more node, n<size()+1>, with seeds = every running node, and waits until
  // every running node holds the view with it. `extra_args` go after the cluster's and
  // replace the harness's flags they repeat (e.g. {"--weight", "2"}).
  [[nodiscard]] bool AddNode(const std::vector<std::string>& extra_args = {});
  // AddNode without waiting for the cluster to converge: only until the new node holds a
  // view (its ready file), e.g. when a partition keeps the cluster from converging.
  [[nodiscard]] bool AddNodeNoWait(const std::vector<std::string>& extra_args = {});
  // AddNodeNoWait in two steps, for a node that cannot join yet: SpawnNode starts it and
  // returns its index; FinishAddNode waits until it is ready (holds a view), as
  // AddNodeNoWait does. Its address is known only then.
  size_t SpawnNode(const std::vector<std::string>& extra_args = {});
  [[nodiscard]] bool FinishAddNode(size_t i);

  // SIGKILLs node i. It stays in the other nodes' view: SERVING until the failure detector
  // of a majority suspects it (--failure-timeout-ms), then FAILED.
  void Kill(size_t i);
  // Starts node i again (killing it first if it runs) with the same id, seeds = the other
  // running nodes, on a new port unless `same_port`; waits until every running node holds
  // the view with its (new) address.
  [[nodiscard]] bool Restart(size_t i, bool same_port = false);
  // Restart with `first_seeds` tried before the other running nodes (e.g. a
  // SilentListener's address: a seed that hangs the first join attempt until its deadline).
  [[nodiscard]] bool Restart(size_t i, bool same_port, const std::vector<std::string>& first_seeds);
  // Asks node i to leave the cluster (Membership.Leave with its id, as `ringcache-cli
  // cluster leave` does), waits for the process to exit with code 0 (bounded by
  // `timeout`), then until the others converge on a view without it.
  [[nodiscard]] bool Leave(size_t i,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(30'000));
  // SIGTERMs every running node at once, then waits for each (bounded by `timeout` each).
  // True if every one exited with code 0.
  bool Stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(15'000));

  // Polls Topology on every running node until all report the same epoch and a view with
  // exactly the nodes the harness started (n1..n<size()>) but those that left, running ones
  // at their current address and SERVING, none JOINING or LEAVING (killed ones SERVING or
  // FAILED). False after `timeout` (Error() shows what each node reported).
  [[nodiscard]] bool WaitConverged(std::chrono::milliseconds timeout);
  [[nodiscard]] bool WaitConverged() { return WaitConverged(options_.converge_timeout); }

  // One Topology call on node i (deadline kRpcTimeout); nullopt if it fails.
  std::optional<v1::ClusterView> Topology(size_t i) const;

  // Nodes ever started (running or killed), i.e. the members the view should hold.
  size_t size() const { return nodes_.size(); }
  static std::string IdOf(size_t i) { return "n" + std::to_string(i + 1); }
  std::string id(size_t i) const { return IdOf(i); }
  // gRPC address of node i's current (or last) process.
  const std::string& address(size_t i) const { return nodes_.at(i)->GrpcAddress(); }
  // Addresses of the running nodes, in index order.
  std::vector<std::string> addresses() const;
  bool running(size_t i) const { return nodes_.at(i)->Running(); }
  bool departed(size_t i) const { return departed_.at(i); }
  NodeProcess& node(size_t i) { return *nodes_.at(i); }
  // A new Cache stub on node i's own connection.
  std::unique_ptr<v1::Cache::Stub> Stub(size_t i) const { return nodes_.at(i)->NewStub(); }

  // The epoch every node agreed on at the last successful WaitConverged (0 before).
  uint64_t epoch() const { return epoch_; }
  const std::string& Error() const { return error_; }

 private:
  // The flags of node i, joining through `seeds` (none: it bootstraps), on `listen`
  // (empty: the harness's default, port 0).
  std::vector<std::string> NodeArgs(size_t i, const std::vector<std::string>& seeds,
                                    const std::string& listen,
                                    const std::vector<std::string>& extra) const;
  // Addresses of the running nodes other than `except`.
  std::vector<std::string> SeedsExcept(size_t except) const;
  bool StartNode(size_t i);
  std::unique_ptr<NodeProcess> MakeNode(std::vector<std::string> args) const;

  ClusterOptions options_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  // Per node: the extra args given to AddNode (kept for Restart).
  std::vector<std::vector<std::string>> node_extra_args_;
  // Per node: it left the cluster (Leave); the view must no longer hold it.
  std::vector<bool> departed_;
  uint64_t epoch_ = 0;
  std::string error_;
};

// Catch2: starts `cluster` or fails the test case with the reason.
void RequireStart(TestCluster& cluster);

}  // namespace ringcache::it

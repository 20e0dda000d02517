// FaultProxy and FaultNetwork: network partitions between real ringcached processes on
// 127.0.0.1, without root and without network namespaces.
//
// gRPC sends every outgoing connection of a process through the HTTP CONNECT proxy named
// by the `grpc_proxy` environment variable, 127.0.0.1 targets included (checked with
// gRPC 1.51; the tests clear no_proxy/no_grpc_proxy for the nodes). Each node gets its own
// FaultProxy, so every tunnel a proxy carries is one of that node's outgoing connections
// (heartbeats, pushes, joins, replication, forwarding), and the CONNECT line names the
// peer it goes to. The test process and the CLI do not use the proxies: a test still
// reaches an isolated node directly.
//
//   FaultNetwork net({"n1", "n2", "n3"});   // before the cluster (it must outlive it)
//   TestCluster cluster({...});               // nodes start through net's wrapper
//   RequireStart(cluster);
//   net.Isolate("n3", cluster.address(2));    // n3 can neither send nor receive
//   ...
//   net.Heal();
//
// A *blackholed* tunnel stops forwarding bytes in both directions but stays open (the
// bytes wait in the kernel's socket buffers), and a blackholed CONNECT is read but not
// answered until the fault is healed: like a real partition, it is silent, and the
// node's own deadlines and keepalives decide what fails. Heal() resumes the paused
// tunnels and answers the waiting CONNECTs.
//
// How the nodes get their proxy: NodeProcess runs $RINGCACHED_BIN when it is set.
// FaultNetwork points it at a small /bin/sh wrapper that reads the node's --node-id,
// exports grpc_proxy=http://<that node's proxy> and execs the real daemon (same pid).
// The previous $RINGCACHED_BIN is restored by the destructor. A node whose id has no
// proxy runs without one.
//
// Thread safety: FaultProxy has internal synchronization (its state is changed from the
// test thread, its sockets live on its own Asio thread). FaultNetwork is not
// thread-safe: use it from the test's main thread, like TestCluster.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ringcache::it {

// Counters of one proxy since Start().
struct FaultProxyStats {
  uint64_t tunnels_opened = 0;   // CONNECTs answered 200.
  uint64_t connects_held = 0;    // CONNECTs held unanswered because of a fault.
  uint64_t connects_failed = 0;  // CONNECTs whose target refused (answered 502).
  uint64_t bytes_forwarded = 0;  // Both directions.
};

class FaultProxy {
 public:
  // `node_id` is only used in descriptions.
  explicit FaultProxy(std::string node_id);
  // Stop().
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on 127.0.0.1:0 and starts the proxy's thread. False if it cannot listen.
  [[nodiscard]] bool Start();
  // Closes every socket and joins the thread. Idempotent.
  void Stop();

  // "127.0.0.1:PORT" ("" before Start).
  std::string address() const;
  const std::string& node_id() const { return node_id_; }

  // Blackholes every tunnel of this proxy (the node is cut off from everyone).
  void SetIsolated(bool isolated);
  // Blackholes the tunnels whose CONNECT target is `target` ("127.0.0.1:PORT").
  void BlockTarget(const std::string& target);
  // Restores everything: no isolation, no blocked target. Paused tunnels resume and held
  // CONNECTs are answered.
  void Heal();

  FaultProxyStats stats() const;

 private:
  struct Impl;
  const std::string node_id_;
  std::unique_ptr<Impl> impl_;
};

class FaultNetwork {
 public:
  // Starts one proxy per id and installs the wrapper ($RINGCACHED_BIN). Throws
  // std::runtime_error if a proxy cannot listen or the wrapper cannot be written.
  explicit FaultNetwork(const std::vector<std::string>& node_ids);
  // Restores $RINGCACHED_BIN, stops the proxies, removes the wrapper's directory.
  ~FaultNetwork();
  FaultNetwork(const FaultNetwork&) = delete;
  FaultNetwork& operator=(const FaultNetwork&) = delete;

  // Cuts node `id` (listening on `address`) off: its own proxy blackholes all its
  // tunnels, and every other proxy blackholes its tunnels to `address`.
  void Isolate(const std::string& id, const std::string& address);
  // Undoes every Isolate.
  void Heal();

  FaultProxy& proxy(const std::string& id) { return *proxies_.at(id); }
  // One line per proxy with its counters.
  std::string Describe() const;

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<FaultProxy>> proxies_;
  bool had_bin_ = false;
  std::string old_bin_;
};

}  // namespace ringcache::it

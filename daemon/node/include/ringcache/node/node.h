// Node: one ringcache cluster member as a library — the node's operations as a plain C++
// API, plus the network front ends that serve them (gRPC, Prometheus metrics).
//
// Design (docs/design/threading.md): the operations below are what the node does; the
// gRPC service only translates protocol messages to these calls and back. Today every
// operation goes to the node's local Cache; routing to the key's owner and replication
// will be added here, behind the same calls, so every front end gets them at once.
//
//   ringcache::NodeOptions options{.listen_address = "127.0.0.1:0", .memory_bytes = 64 << 20};
//   auto node = ringcache::Node::Start(options);     // binds, serves, returns
//   if (!node.ok()) { /* node.status() names the problem, e.g. the address */ }
//   std::string grpc_at = (*node)->grpc_address();   // actual port, e.g. "127.0.0.1:40913"
//   (*node)->Shutdown();                             // graceful, bounded by shutdown_grace
//
// Thread safety: Node has internal synchronization. Every method may be called
// concurrently from any thread, except that Shutdown() and the destructor must not be
// called from a thread the node owns or lends to gRPC (gRPC's server threads, which run
// the handlers; the metrics thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/status.h"

namespace ringcache {

// The ringcached version ("0.1.0"), from the CMake project version.
std::string_view NodeVersion();

// How to run a node. A documented aggregate, checked once by Validate() (Start calls it).
struct NodeOptions {
  // This node's id in stats (and, later, in the cluster view). Empty = the hostname.
  std::string node_id;
  // gRPC listen address, HOST:PORT. Port 0 = any free port (see Node::grpc_address()).
  // Default "127.0.0.1:7700".
  std::string listen_address = "127.0.0.1:7700";
  // Prometheus /metrics and /healthz HTTP address, HOST:PORT; port 0 = any free port;
  // empty = no metrics endpoint. Default "127.0.0.1:9700".
  std::string metrics_listen_address = "127.0.0.1:9700";
  // Cache byte budget (key + value + per-entry overhead). Default 1 GiB.
  uint64_t memory_bytes = uint64_t{1} << 30;
  // Cache shards, a power of two; 0 (default) = automatic.
  uint32_t shards = 0;
  // Largest key accepted, in bytes. Default 4096; at most 65535.
  uint32_t max_key_bytes = 4096;
  // Largest value accepted, in bytes. Default 8 MiB; at most 1 GiB.
  uint32_t max_value_bytes = uint32_t{8} << 20;
  // Most items in one MultiGet/MultiSet/MultiDelete request or one Pipeline message; more
  // is INVALID_ARGUMENT naming max-batch. Default 10000; at least 1.
  uint32_t max_batch = 10000;
  // Accepted and validated, but no longer used: the gRPC server is on the callback API,
  // whose handlers run on threads gRPC creates and sizes itself (docs/design/threading.md).
  // Kept so that existing configurations stay valid. 0 (default) = number of cores.
  uint32_t threads = 0;
  // How long Shutdown() lets in-flight calls finish before cancelling them. Default 5 s.
  std::chrono::milliseconds shutdown_grace{5000};
  // Source of time for TTLs. Not owned; must outlive the node. nullptr = Clock::System().
  Clock* clock = nullptr;

  // OK, or INVALID_ARGUMENT naming the offending field.
  Status Validate() const;
};

// What Node::Stats() reports.
struct NodeStats {
  std::string node_id;
  std::string version;     // NodeVersion()
  uint64_t uptime_ms = 0;  // Since Start().
  CacheStats cache;        // The local cache's counters and gauges.
};

class Node {
 public:
  // Validates `options`, creates the cache, binds the gRPC and metrics addresses and starts
  // serving; returns once both accept connections. Errors: INVALID_ARGUMENT for bad
  // options; UNAVAILABLE naming the address when one cannot be bound.
  static Result<std::unique_ptr<Node>> Start(NodeOptions options);

  // Calls Shutdown(), then frees everything.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Graceful stop: health becomes NOT_SERVING (gRPC health and /healthz), the gRPC
  // server stops accepting calls, Pipeline streams flush the results of the operations
  // they have read and end with UNAVAILABLE, and in-flight calls get until
  // options().shutdown_grace to finish, after which they are cancelled. Then the threads
  // are joined and the metrics endpoint closes. Blocks until done. Idempotent; concurrent
  // callers all wait for the one shutdown. The operations below keep working afterwards
  // (on the local cache) until the Node is destroyed.
  void Shutdown();

  // Blocks until a Shutdown() (from any thread) has completed.
  void Wait();

  // True from the moment Shutdown() starts.
  bool shutting_down() const;

  // The bound gRPC address with the actual port, e.g. "127.0.0.1:7700".
  const std::string& grpc_address() const;
  // The bound metrics address with the actual port, or "" if the endpoint is disabled.
  const std::string& metrics_address() const;
  // The validated options, with node_id and threads resolved.
  const NodeOptions& options() const;

  // ---- Operations. Same contracts as the Cache methods of the same name; the codes are
  // those of proto/ringcache/v1/cache.proto.

  // NOT_FOUND if absent or expired. `meta` may be nullptr.
  Status Get(std::string_view key, std::string* value, ItemMeta* meta = nullptr) const;
  // Returns the new version.
  Result<uint64_t> Set(std::string_view key, std::string_view value,
                       const SetOptions& options = {});
  Status Delete(std::string_view key);
  Status Touch(std::string_view key, uint64_t ttl_ms);
  Result<uint64_t> Ttl(std::string_view key) const;
  Result<IncrResult> Incr(std::string_view key, int64_t delta, uint64_t ttl_ms_if_created = 0);

  // Batched forms: INVALID_ARGUMENT naming max-batch if there are more than
  // options().max_batch items; otherwise one result per item, in order.
  Result<std::vector<Result<Item>>> MultiGet(std::span<const std::string_view> keys) const;
  Result<std::vector<Result<uint64_t>>> MultiSet(std::span<const SetItem> items);
  Result<std::vector<Status>> MultiDelete(std::span<const std::string_view> keys);

  // OK if `count` items may travel in one batch or Pipeline message, else
  // INVALID_ARGUMENT: "<what> has <count> items, over the max-batch limit of <max>".
  Status CheckBatchSize(std::string_view what, size_t count) const;

  NodeStats Stats() const;

 private:
  struct Impl;
  explicit Node(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache

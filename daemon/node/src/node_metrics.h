// NodeMetrics: the node's Prometheus metrics (the names of the ringcached contract,
// docs/operations.md), registered once on a MetricsRegistry.
//
// Per-request recording takes no lock: the ringcache_requests_total child of each
// (rpc, code) pair is resolved through the family's mutex the first time that pair is
// seen and cached in an atomic pointer; histogram children are resolved at construction.
// Cache counters and gauges are read from Cache::Stats() at scrape time by a collector.
//
// Cluster metrics (AttachCluster) are read at scrape time from Membership's current view,
// ReplicatedStore::LinkStats() / Migration() / UnderReplicatedRanges(), the
// FailoverManager's peers and the node's state, plus a per-replica histogram of
// replication lag that the store's links observe per acknowledged write.
//
// Thread safety: Record() and the gauges may be used from any thread concurrently.
// AttachCluster is called once, at startup.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "ringcache/cache.h"
#include "ringcache/metrics/metrics.h"
#include "ringcache/node/node.h"

namespace ringcache::internal {

class FailoverManager;
class Membership;
class ReplicatedStore;

// The rpcs of ringcache.v1.Cache, as metric label values.
enum class Rpc : int {
  kGet,
  kSet,
  kDelete,
  kTouch,
  kTtl,
  kIncr,
  kSetRange,
  kCollection,
  kMultiGet,
  kMultiSet,
  kMultiDelete,
  kBatch,
  kStats,
  kPipeline,
  kTopology,
  kPublish,
  kSnapshot,
};
inline constexpr int kRpcCount = static_cast<int>(Rpc::kSnapshot) + 1;
// gRPC status codes 0..16.
inline constexpr int kStatusCodeCount = 17;

std::string_view RpcName(Rpc rpc);

class NodeMetrics {
 public:
  // Registers every family on `registry` (not owned; must outlive this object) and a
  // collector reading `cache` (not owned; must outlive every later Render()).
  NodeMetrics(metrics::MetricsRegistry* registry, const Cache* cache, std::string_view version);
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  // One finished call: ringcache_requests_total{rpc,code} += 1 and its duration into
  // ringcache_request_duration_seconds{rpc}. `code` is a gRPC status code number.
  void Record(Rpc rpc, int code, std::chrono::steady_clock::duration elapsed);

  // Operations carried by Pipeline streams.
  void AddPipelineOps(uint64_t n) { pipeline_ops_->Increment(n); }
  // Open Pipeline streams.
  metrics::Gauge& pipeline_streams() { return *pipeline_streams_; }

  // The Redis-protocol port: ringcache_resp_commands_total{command,result} (result "ok" or
  // "error"; an unknown command counts as command "unknown"), resolved once per pair by the
  // RESP server at startup, and ringcache_resp_connections (open now).
  metrics::Counter& RespCommandCounter(std::string_view command, bool error);
  metrics::Gauge& resp_connections() { return *resp_connections_; }

  // Adds the cluster and replication metrics (not owned; both must outlive every later
  // Render() of the registry):
  //   ringcache_cluster_epoch, ringcache_cluster_members            gauges (current view)
  //   ringcache_replication_lag_ops{replica}, _lag_ms, _acked_seq,
  //   ringcache_replication_backlog_bytes{replica}                   gauges, per link
  //   ringcache_replication_full_syncs_total{replica},
  //   ringcache_replication_resumes_total{replica}                   counters, per link
  //   ringcache_replication_ack_latency_seconds{replica}             histogram: per write,
  //       from the primary's apply to the replica's ack (the replication lag of the write)
  //   ringcache_node_state{state}                  gauge: 1 for the current state, else 0
  //   ringcache_under_replicated_ranges            gauge
  //   ringcache_migration_ranges_total, _ranges_done, _keys_remaining,
  //   _bytes_remaining                              gauges (current transition)
  //   ringcache_migration_keys_sent, _bytes_sent (gauges: back to 0 after a transition),
  //   _keys_received_total                          counters
  //   ringcache_peer_reachable{peer}               gauge, per other member
  //   ringcache_failovers_total                    counter: members this node declared
  //                                                failed as the coordinator
  // `failover` is not owned either; `state` returns the node's state (called per scrape,
  // on the scraping thread). Call once.
  void AttachCluster(Membership* membership, ReplicatedStore* store,
                     const FailoverManager* failover, std::function<NodeState()> state);

 private:
  metrics::Counter& RequestCounterSlow(Rpc rpc, int code);

  metrics::MetricsRegistry* const registry_;  // Not owned.
  metrics::CounterFamily* requests_;          // Not owned.
  std::array<metrics::Histogram*, kRpcCount> durations_{};
  std::array<std::array<std::atomic<metrics::Counter*>, kStatusCodeCount>, kRpcCount> counters_{};
  metrics::Counter* pipeline_ops_;
  metrics::Gauge* pipeline_streams_;
  metrics::CounterFamily* resp_commands_;
  metrics::Gauge* resp_connections_;
};

}  // namespace ringcache::internal

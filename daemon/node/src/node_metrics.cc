#include "node_metrics.h"

#include <string>
#include <vector>

#include "failover_manager.h"
#include "membership.h"
#include "replication.h"
#include "ringcache/status.h"

namespace ringcache::internal {

std::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kGet:
      return "Get";
    case Rpc::kSet:
      return "Set";
    case Rpc::kDelete:
      return "Delete";
    case Rpc::kTouch:
      return "Touch";
    case Rpc::kTtl:
      return "Ttl";
    case Rpc::kIncr:
      return "Incr";
    case Rpc::kSetRange:
      return "SetRange";
    case Rpc::kCollection:
      return "Collection";
    case Rpc::kMultiGet:
      return "MultiGet";
    case Rpc::kMultiSet:
      return "MultiSet";
    case Rpc::kMultiDelete:
      return "MultiDelete";
    case Rpc::kBatch:
      return "Batch";
    case Rpc::kStats:
      return "Stats";
    case Rpc::kPipeline:
      return "Pipeline";
    case Rpc::kTopology:
      return "Topology";
    case Rpc::kPublish:
      return "Publish";
    case Rpc::kSnapshot:
      return "Snapshot";
  }
  return "Unknown";
}

NodeMetrics::NodeMetrics(metrics::MetricsRegistry* registry, const Cache* cache,
                         std::string_view version)
    : registry_(registry) {
  requests_ = &registry->AddCounterFamily(
      "ringcache_requests_total",
      "gRPC calls of ringcache.v1.Cache finished, by rpc and status code (a Pipeline stream "
      "counts once, when it ends).",
      {"rpc", "code"});
  metrics::HistogramFamily& durations = registry->AddHistogramFamily(
      "ringcache_request_duration_seconds",
      "Server-side duration of ringcache.v1.Cache calls, from arrival to the status being "
      "sent (for Pipeline: the stream's lifetime).",
      {"rpc"});
  for (int i = 0; i < kRpcCount; ++i) {
    durations_[i] = &durations.WithLabels({std::string(RpcName(static_cast<Rpc>(i)))});
  }
  pipeline_ops_ = &registry->AddCounter("ringcache_pipeline_ops_total",
                                        "Operations received on Pipeline streams.");
  pipeline_streams_ =
      &registry->AddGauge("ringcache_pipeline_streams", "Pipeline streams currently open.");
  resp_commands_ = &registry->AddCounterFamily(
      "ringcache_resp_commands_total",
      "Commands answered on the Redis-protocol port, by command and result (ok, or error for "
      "an error reply).",
      {"command", "result"});
  resp_connections_ = &registry->AddGauge("ringcache_resp_connections",
                                          "Connections open on the Redis-protocol port.");
  registry
      ->AddGaugeFamily("ringcache_build_info", "Always 1; the label carries the version.",
                       {"version"})
      .WithLabels({std::string(version)})
      .Set(1);

  registry->AddCollector([cache](metrics::Writer& w) {
    const CacheStats s = cache->Stats();
    w.Counter("ringcache_cache_hits_total", "Reads that found a live entry.", s.hits);
    w.Counter("ringcache_cache_misses_total", "Reads that found no live entry.", s.misses);
    w.Counter("ringcache_cache_sets_total", "Successful writes (Set, MultiSet items, Incr).",
              s.sets);
    w.Counter("ringcache_cache_deletes_total", "Successful deletes.", s.deletes);
    w.Counter("ringcache_cache_evictions_total", "Entries evicted to make room.", s.evictions);
    w.Counter("ringcache_cache_expirations_total", "Expired entries removed.", s.expirations);
    w.Gauge("ringcache_cache_items", "Entries stored (may include expired ones not yet removed).",
            static_cast<double>(s.items));
    w.Gauge("ringcache_cache_bytes", "Bytes charged: key + value + per-entry overhead.",
            static_cast<double>(s.bytes_used));
    w.Gauge("ringcache_cache_capacity_bytes", "The cache's byte budget.",
            static_cast<double>(s.capacity_bytes));
  });
}

namespace {

// Replication lag buckets (seconds): finer than the request latency buckets around the
// milliseconds that async replication on a LAN takes, up to the ack timeout's seconds.
std::vector<double> ReplicationLagBuckets() {
  return {0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
          0.015,  0.02,   0.03,   0.05,   0.075,   0.1,   0.25,   0.5,   1,     2.5,   5,      10};
}

}  // namespace

void NodeMetrics::AttachCluster(Membership* membership, ReplicatedStore* store,
                                const FailoverManager* failover, std::function<NodeState()> state) {
  metrics::HistogramFamily& lag = registry_->AddHistogramFamily(
      "ringcache_replication_ack_latency_seconds",
      "Per replicated write: seconds from the primary's apply to the replica's ack (each "
      "write's replication lag), by replica.",
      {"replica"}, ReplicationLagBuckets());
  store->SetAckLatencyHistograms(
      [&lag](const std::string& replica_id) { return &lag.WithLabels({replica_id}); });

  registry_->AddCollector([membership, failover, store,
                           state = std::move(state)](metrics::Writer& w) {
    const NodeState now = state();
    for (const NodeState s :
         {NodeState::kServing, NodeState::kFenced, NodeState::kJoining, NodeState::kLeaving}) {
      w.Gauge("ringcache_node_state",
              "The node's state: 1 for the current one (serving, fenced, joining, leaving), "
              "0 for the others. gRPC health and /healthz are SERVING only when serving.",
              s == now ? 1.0 : 0.0, {{"state", std::string(NodeStateName(s))}});
    }
    w.Gauge("ringcache_under_replicated_ranges",
            "Ranges this node is the primary of with fewer in-sync copies than the "
            "replication factor (a replica syncing, disconnected or missing).",
            static_cast<double>(store->UnderReplicatedRanges()));
    const MigrationProgress m = store->Migration();
    w.Gauge("ringcache_migration_ranges_total",
            "Moving ranges this node streams to new owners in the current transition (0 "
            "when none is in progress).",
            static_cast<double>(m.ranges_total));
    w.Gauge("ringcache_migration_ranges_done",
            "Moving ranges of the current transition whose new owners have them.",
            static_cast<double>(m.ranges_done));
    w.Gauge("ringcache_migration_keys_sent", "Keys sent to new owners in the current transition.",
            static_cast<double>(m.keys_sent));
    w.Gauge("ringcache_migration_bytes_sent",
            "Bytes (keys + values) sent to new owners in the current transition.",
            static_cast<double>(m.bytes_sent));
    w.Gauge("ringcache_migration_keys_remaining",
            "Estimate of the keys left to send in the current transition.",
            static_cast<double>(m.keys_remaining));
    w.Gauge("ringcache_migration_bytes_remaining",
            "Estimate of the bytes left to send in the current transition.",
            static_cast<double>(m.bytes_remaining));
    w.Counter("ringcache_migration_keys_received_total",
              "Keys this node received as a new owner since it started.", m.keys_received);
    const TransitionStatus t = membership->Transition();
    w.Gauge("ringcache_transition_wait_seconds",
            "How long the transition in progress (members joining or leaving) has gone on "
            "since this node adopted its first view; 0 when none is in progress.",
            static_cast<double>(t.waiting_ms) / 1000.0);
    w.Gauge("ringcache_transition_pending_sources",
            "On the coordinator of a transition: the members whose TransitionReady report it "
            "still waits for (cluster status names them); 0 elsewhere and when none is in "
            "progress.",
            static_cast<double>(t.pending.size()));
    for (const PeerHealth& peer : failover->Peers()) {
      w.Gauge("ringcache_peer_reachable",
              "1 if the member answered a heartbeat within the failure timeout, else 0.",
              peer.reachable ? 1.0 : 0.0, {{"peer", peer.id}});
    }
    w.Counter("ringcache_failovers_total", "Members this node declared failed as the coordinator.",
              failover->failovers());
  });

  registry_->AddCollector([membership, store](metrics::Writer& w) {
    if (std::shared_ptr<const Topology> t = membership->current(); t != nullptr) {
      w.Gauge("ringcache_cluster_epoch", "Epoch of the cluster view this node holds.",
              static_cast<double>(t->epoch()));
      w.Gauge("ringcache_cluster_members", "Members in the cluster view this node holds.",
              static_cast<double>(t->view.members.size()));
    }
    for (const ReplicaLinkStats& l : store->LinkStats()) {
      const metrics::Writer::LabelPairs labels{{"replica", l.replica_id}};
      w.Gauge("ringcache_replication_lag_ops",
              "Writes shipped to the replica and not yet acknowledged.",
              static_cast<double>(l.lag_ops), labels);
      w.Gauge("ringcache_replication_lag_ms",
              "Age in ms of the oldest write not yet acknowledged by the replica (0 if none).",
              static_cast<double>(l.lag_ms), labels);
      w.Gauge("ringcache_replication_acked_seq",
              "Highest sequence number of the link the replica acknowledged.",
              static_cast<double>(l.acked_seq), labels);
      w.Gauge("ringcache_replication_backlog_bytes",
              "Bytes held in the link's backlog (bounded by --replication-backlog).",
              static_cast<double>(l.backlog_bytes), labels);
      w.Counter("ringcache_replication_full_syncs_total",
                "Full syncs started on the link (replica new, restarted or too far behind).",
                l.full_syncs, labels);
      w.Counter("ringcache_replication_resumes_total",
                "Reconnects of the link that resumed from the backlog.", l.resumes, labels);
    }
  });
}

metrics::Counter& NodeMetrics::RespCommandCounter(std::string_view command, bool error) {
  return resp_commands_->WithLabels({std::string(command), error ? "error" : "ok"});
}

void NodeMetrics::Record(Rpc rpc, int code, std::chrono::steady_clock::duration elapsed) {
  const int r = static_cast<int>(rpc);
  if (code < 0 || code >= kStatusCodeCount) code = static_cast<int>(StatusCode::kUnknown);
  metrics::Counter* counter = counters_[r][code].load(std::memory_order_acquire);
  if (counter == nullptr) counter = &RequestCounterSlow(rpc, code);
  counter->Increment();
  durations_[r]->Observe(std::chrono::duration<double>(elapsed).count());
}

metrics::Counter& NodeMetrics::RequestCounterSlow(Rpc rpc, int code) {
  // WithLabels returns the same child for the same labels, so a race here is harmless.
  metrics::Counter& counter = requests_->WithLabels(
      {std::string(RpcName(rpc)), std::string(StatusCodeName(static_cast<StatusCode>(code)))});
  counters_[static_cast<int>(rpc)][code].store(&counter, std::memory_order_release);
  return counter;
}

}  // namespace ringcache::internal

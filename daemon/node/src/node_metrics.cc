#include "node_metrics.h"

#include <string>

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
    case Rpc::kMultiGet:
      return "MultiGet";
    case Rpc::kMultiSet:
      return "MultiSet";
    case Rpc::kMultiDelete:
      return "MultiDelete";
    case Rpc::kStats:
      return "Stats";
    case Rpc::kPipeline:
      return "Pipeline";
  }
  return "Unknown";
}

NodeMetrics::NodeMetrics(metrics::MetricsRegistry* registry, const Cache* cache,
                         std::string_view version) {
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

// ringcache::metrics: a small Prometheus metrics registry and text exposition (format 0.0.4).
//
// prometheus-cpp is not packaged in Debian 12, so ringcached carries this small library:
// counters, gauges and histograms, optionally in labelled families, plus scrape-time
// collectors, rendered as the Prometheus text format by MetricsRegistry::Render().
//
// Usage: register every family at startup and pre-resolve the children the hot path
// needs, so that recording a value is one relaxed atomic operation:
//
//   MetricsRegistry registry;
//   CounterFamily& requests = registry.AddCounterFamily(
//       "ringcache_requests_total", "RPCs handled, by method and status code.", {"rpc", "code"});
//   Counter& get_ok = requests.WithLabels({"Get", "OK"});   // once, at startup
//   get_ok.Increment();                                     // hot path: one atomic add
//   registry.AddCollector([&cache](Writer& w) {
//     w.Counter("ringcache_cache_hits_total", "Cache hits.", cache.Stats().hits);
//   });
//   std::string body = registry.Render();
//
// Names: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
// and must not start with "__"; histograms may not use the label "le". Counter names are
// used exactly as given (give them the "_total" suffix yourself). A bad name, a duplicate
// family name or a wrong number of label values is a programmer error: the registry
// prints the reason to stderr and aborts, in every build type (it happens at startup,
// where the names are constants). Use the Validate* functions to check names that come
// from outside the program.
//
// Output: families sorted by name; within a family, children sorted by label values;
// a family without children is omitted. Each family has "# HELP" and "# TYPE" lines.
// Histograms render cumulative _bucket{le="..."} lines ending with le="+Inf", then _sum
// and _count. Counters are integers. Other numbers: integral values below 1e15 as
// integers ("1024"), else the shortest round-trip digits laid out like the Go reference
// client ("0.0005", "2.5", "5e-05", "1.23456785e+07"), and "+Inf", "-Inf", "NaN".
//
// Thread safety: Counter, Gauge and Histogram are lock-free and may be updated from any
// thread. Family::WithLabels and every MetricsRegistry method have internal
// synchronization and may be called concurrently (lookups take a mutex; do them at
// startup, not per request). Lock order: registry mutex, then a family's mutex.
// Collectors run under the registry mutex (see AddCollector).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/status.h"

namespace ringcache::metrics {

// The Content-Type of Render()'s output.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// OK if `name` is a valid Prometheus metric name, INVALID_ARGUMENT (naming it) otherwise.
Status ValidateMetricName(std::string_view name);
// OK if `name` is a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix).
Status ValidateLabelName(std::string_view name);
// OK if `bounds` is non-empty, finite (a trailing +Inf is allowed and ignored) and
// strictly increasing.
Status ValidateBucketBounds(const std::vector<double>& bounds);

// Latency buckets in seconds, 50 µs .. 10 s:
// 0.00005 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10.
const std::vector<double>& DefaultLatencyBuckets();

// A monotonically increasing 64-bit counter. Lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void Increment(double delta = 1) { Add(delta); }
  void Decrement(double delta = 1) { Add(-delta); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with fixed upper bounds (inclusive: a value v lands in
// the first bucket with v <= bound; values above the last bound, and NaN, in +Inf).
// Observe() is lock-free: one atomic add on the bucket and one on the sum.
class Histogram {
 public:
  // REQUIRES: ValidateBucketBounds(upper_bounds).ok() (aborts otherwise).
  explicit Histogram(std::vector<double> upper_bounds = DefaultLatencyBuckets());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);

  // A point-in-time copy. Under concurrent Observe() calls sum and counts may be off by
  // the in-flight observations, but `count` always equals the +Inf bucket.
  struct Snapshot {
    std::vector<double> upper_bounds;         // Finite bounds, without +Inf.
    std::vector<uint64_t> cumulative_counts;  // upper_bounds.size() + 1 entries; last = +Inf.
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Collect() const;

  // Finite upper bounds, without +Inf.
  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  // Constant after construction.
  const std::vector<double> bounds_;
  // bounds_.size() + 1 non-cumulative bucket counters; the last one is +Inf.
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

class MetricsRegistry;

// A metric name with a fixed list of label names; one child metric per distinct list of
// label values. Created only by MetricsRegistry, which owns it; children live as long
// as the registry. T is Counter, Gauge or Histogram.
template <typename T>
class Family {
 public:
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The child with these label values (in label_names() order), created on first use.
  // The reference stays valid for the registry's lifetime: resolve it once and keep it.
  // Takes the family's mutex. Label values may be any UTF-8 text (escaped on output).
  // REQUIRES: values.size() == label_names().size() (aborts otherwise).
  T& WithLabels(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bucket_bounds);

  // Constant after construction.
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bucket_bounds_;  // Histogram families only.

  mutable std::mutex mu_;
  // Protected by mu_ (the map; the children themselves are atomic).
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Given to collectors at scrape time to emit samples computed then (for example read from
// Cache::Stats()). Samples with the same name are grouped under one HELP/TYPE (the first
// help text wins) and merged into the sorted output. A sample whose name is invalid,
// belongs to a registered family, or was already used with another type is a programmer
// error: assert in debug builds, dropped otherwise.
//
// Thread safety: not thread-safe; used only by the Render() call that created it.
class Writer {
 public:
  using LabelPairs = std::vector<std::pair<std::string, std::string>>;

  void Counter(std::string_view name, std::string_view help, uint64_t value,
               const LabelPairs& labels = {});
  void Gauge(std::string_view name, std::string_view help, double value,
             const LabelPairs& labels = {});

 private:
  friend class MetricsRegistry;
  enum class Type { kCounter, kGauge };
  struct FamilyData {
    Type type;
    std::string help;
    std::vector<std::pair<LabelPairs, std::string>> samples;  // (labels, rendered value)
  };
  explicit Writer(const std::vector<std::string>* reserved_names) : reserved_(reserved_names) {}
  void Add(Type type, std::string_view name, std::string_view help, const LabelPairs& labels,
           std::string value);

  const std::vector<std::string>* reserved_;  // Not owned. Sorted registered family names.
  std::map<std::string, FamilyData, std::less<>> families_;
};

// Owns every metric family and renders them. Not copyable or movable: families and
// children are handed out by reference.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a family. REQUIRES: a valid, not yet registered name, valid and distinct
  // label names (for histograms not "le"), valid bucket bounds. Aborts otherwise.
  CounterFamily& AddCounterFamily(std::string name, std::string help,
                                  std::vector<std::string> label_names);
  GaugeFamily& AddGaugeFamily(std::string name, std::string help,
                              std::vector<std::string> label_names);
  HistogramFamily& AddHistogramFamily(std::string name, std::string help,
                                      std::vector<std::string> label_names,
                                      std::vector<double> bucket_bounds = DefaultLatencyBuckets());

  // Unlabelled forms: a family without labels and its single child.
  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  Histogram& AddHistogram(std::string name, std::string help,
                          std::vector<double> bucket_bounds = DefaultLatencyBuckets());

  // Adds a function called by every Render() to emit scrape-time samples. Collectors run
  // in registration order, on the rendering thread, under the registry mutex: they must
  // be quick and must not call back into this registry. What they capture must outlive
  // the registry (or at least every later Render()).
  void AddCollector(std::function<void(Writer&)> collector);

  // The whole registry in Prometheus text format 0.0.4 (see the top of this file).
  // Empty string if there is nothing to report.
  std::string Render() const;

 private:
  void RegisterNameLocked(const std::string& name, const std::vector<std::string>& label_names,
                          bool histogram);

  mutable std::mutex mu_;
  // Protected by mu_.
  std::vector<std::string> names_;  // Sorted names of every registered family.
  std::vector<std::unique_ptr<CounterFamily>> counters_;
  std::vector<std::unique_ptr<GaugeFamily>> gauges_;
  std::vector<std::unique_ptr<HistogramFamily>> histograms_;
  std::vector<std::function<void(Writer&)>> collectors_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace ringcache::metrics

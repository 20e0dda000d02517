// Tests of the metrics registry and its Prometheus text exposition (format 0.0.4).
#include "ringcache/metrics/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::metrics {
namespace {

TEST_CASE("An empty registry renders nothing", "[unit][metrics]") {
  MetricsRegistry registry;
  CHECK(registry.Render().empty());
  // A labelled family without children is omitted too.
  registry.AddCounterFamily("ringcache_requests_total", "RPCs.", {"rpc", "code"});
  CHECK(registry.Render().empty());
}

TEST_CASE("Counters and gauges render in the exact text format", "[unit][metrics]") {
  MetricsRegistry registry;
  CounterFamily& requests = registry.AddCounterFamily(
      "ringcache_requests_total", "RPCs handled, by method and status code.", {"rpc", "code"});
  Counter& get_ok = requests.WithLabels({"Get", "OK"});
  Counter& get_nf = requests.WithLabels({"Get", "NOT_FOUND"});
  Counter& set_ok = requests.WithLabels({"Set", "OK"});
  get_ok.Increment();
  get_ok.Increment(41);
  get_nf.Increment(3);
  (void)set_ok;
  Gauge& streams = registry.AddGauge("ringcache_pipeline_streams", "Open Pipeline streams.");
  streams.Increment();
  streams.Increment();
  streams.Decrement();
  Counter& plain = registry.AddCounter("a_total", "First by name.");
  plain.Increment(7);

  CHECK(get_ok.Value() == 42);
  CHECK(streams.Value() == 1.0);
  CHECK(registry.Render() ==
        "# HELP a_total First by name.\n"
        "# TYPE a_total counter\n"
        "a_total 7\n"
        "# HELP ringcache_pipeline_streams Open Pipeline streams.\n"
        "# TYPE ringcache_pipeline_streams gauge\n"
        "ringcache_pipeline_streams 1\n"
        "# HELP ringcache_requests_total RPCs handled, by method and status code.\n"
        "# TYPE ringcache_requests_total counter\n"
        "ringcache_requests_total{rpc=\"Get\",code=\"NOT_FOUND\"} 3\n"
        "ringcache_requests_total{rpc=\"Get\",code=\"OK\"} 42\n"
        "ringcache_requests_total{rpc=\"Set\",code=\"OK\"} 0\n");
}

TEST_CASE("WithLabels returns the same child for the same values", "[unit][metrics]") {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounterFamily("x_total", "X.", {"a"});
  Counter& one = family.WithLabels({"1"});
  CHECK(&family.WithLabels({"1"}) == &one);
  CHECK(&family.WithLabels({"2"}) != &one);
  // References stay valid while more children are added.
  for (int i = 0; i < 1000; ++i) family.WithLabels({"n" + std::to_string(i)});
  one.Increment();
  CHECK(family.WithLabels({"1"}).Value() == 1);
  CHECK(family.name() == "x_total");
  CHECK(family.label_names() == std::vector<std::string>{"a"});
}

TEST_CASE("Label values and help text are escaped", "[unit][metrics]") {
  MetricsRegistry registry;
  GaugeFamily& family =
      registry.AddGaugeFamily("g", "Help with a \\ backslash,\na newline and \"quotes\".", {"v"});
  family.WithLabels({"back\\slash \"quoted\"\nnext line"}).Set(2);
  family.WithLabels({"utf-8 \xc3\xa9t\xc3\xa9 {}=,"}).Set(3);
  CHECK(registry.Render() ==
        "# HELP g Help with a \\\\ backslash,\\na newline and \"quotes\".\n"
        "# TYPE g gauge\n"
        "g{v=\"back\\\\slash \\\"quoted\\\"\\nnext line\"} 2\n"
        "g{v=\"utf-8 \xc3\xa9t\xc3\xa9 {}=,\"} 3\n");
}

TEST_CASE("Gauge values use Prometheus float spellings", "[unit][metrics]") {
  MetricsRegistry registry;
  GaugeFamily& family = registry.AddGaugeFamily("g", "G.", {"k"});
  family.WithLabels({"a"}).Set(std::numeric_limits<double>::quiet_NaN());
  family.WithLabels({"b"}).Set(std::numeric_limits<double>::infinity());
  family.WithLabels({"c"}).Set(-std::numeric_limits<double>::infinity());
  family.WithLabels({"d"}).Set(0.00001);
  family.WithLabels({"e"}).Set(-2.5);
  family.WithLabels({"f"}).Set(1e20);
  family.WithLabels({"g"}).Add(0.1);
  family.WithLabels({"g"}).Add(0.2);
  family.WithLabels({"h"}).Set(12345678.5);
  family.WithLabels({"i"}).Set(1073741824);
  family.WithLabels({"j"}).Set(0.0005);
  family.WithLabels({"k"}).Set(-123456.25);
  CHECK(registry.Render() ==
        "# HELP g G.\n"
        "# TYPE g gauge\n"
        "g{k=\"a\"} NaN\n"
        "g{k=\"b\"} +Inf\n"
        "g{k=\"c\"} -Inf\n"
        "g{k=\"d\"} 1e-05\n"
        "g{k=\"e\"} -2.5\n"
        "g{k=\"f\"} 1e+20\n"
        "g{k=\"g\"} 0.30000000000000004\n"
        "g{k=\"h\"} 1.23456785e+07\n"
        "g{k=\"i\"} 1073741824\n"
        "g{k=\"j\"} 0.0005\n"
        "g{k=\"k\"} -123456.25\n");
}

TEST_CASE("Histogram buckets are cumulative with inclusive upper bounds", "[unit][metrics]") {
  MetricsRegistry registry;
  HistogramFamily& family = registry.AddHistogramFamily("ringcache_request_duration_seconds",
                                                        "RPC latency.", {"rpc"}, {0.5, 1, 2});
  Histogram& get = family.WithLabels({"Get"});
  get.Observe(0.25);
  get.Observe(0.5);  // On the bound: counted in le="0.5".
  get.Observe(0.75);
  get.Observe(3);  // Above every bound: only +Inf.
  Histogram& unlabelled = registry.AddHistogram("h_seconds", "Plain.", {1, 2.5, INFINITY});
  unlabelled.Observe(std::numeric_limits<double>::quiet_NaN());  // NaN goes to +Inf.

  Histogram::Snapshot snap = get.Collect();
  CHECK(snap.upper_bounds == std::vector<double>{0.5, 1, 2});
  CHECK(snap.cumulative_counts == std::vector<uint64_t>{2, 3, 3, 4});
  CHECK(snap.count == 4);
  CHECK(snap.sum == 4.5);
  CHECK(unlabelled.upper_bounds() == std::vector<double>{1, 2.5});  // Trailing +Inf dropped.

  CHECK(registry.Render() ==
        "# HELP h_seconds Plain.\n"
        "# TYPE h_seconds histogram\n"
        "h_seconds_bucket{le=\"1\"} 0\n"
        "h_seconds_bucket{le=\"2.5\"} 0\n"
        "h_seconds_bucket{le=\"+Inf\"} 1\n"
        "h_seconds_sum NaN\n"
        "h_seconds_count 1\n"
        "# HELP ringcache_request_duration_seconds RPC latency.\n"
        "# TYPE ringcache_request_duration_seconds histogram\n"
        "ringcache_request_duration_seconds_bucket{rpc=\"Get\",le=\"0.5\"} 2\n"
        "ringcache_request_duration_seconds_bucket{rpc=\"Get\",le=\"1\"} 3\n"
        "ringcache_request_duration_seconds_bucket{rpc=\"Get\",le=\"2\"} 3\n"
        "ringcache_request_duration_seconds_bucket{rpc=\"Get\",le=\"+Inf\"} 4\n"
        "ringcache_request_duration_seconds_sum{rpc=\"Get\"} 4.5\n"
        "ringcache_request_duration_seconds_count{rpc=\"Get\"} 4\n");
}

TEST_CASE("Default latency buckets span 50 microseconds to 10 seconds", "[unit][metrics]") {
  const std::vector<double>& b = DefaultLatencyBuckets();
  REQUIRE(b.size() == 17);
  CHECK(b.front() == 0.00005);
  CHECK(b.back() == 10.0);
  CHECK(ValidateBucketBounds(b).ok());

  MetricsRegistry registry;
  Histogram& h = registry.AddHistogram("lat_seconds", "Latency.");
  CHECK(h.upper_bounds() == b);
  h.Observe(0.0003);  // In le="0.0005".
  std::string out = registry.Render();
  CHECK(out.find("lat_seconds_bucket{le=\"5e-05\"} 0\n") != std::string::npos);
  CHECK(out.find("lat_seconds_bucket{le=\"0.00025\"} 0\n") != std::string::npos);
  CHECK(out.find("lat_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
  CHECK(out.find("lat_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
  CHECK(out.find("lat_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
  CHECK(out.find("lat_seconds_count 1\n") != std::string::npos);
}

TEST_CASE("Collectors emit scrape-time samples merged in name order", "[unit][metrics]") {
  MetricsRegistry registry;
  registry.AddCounter("ringcache_cache_hits_total", "Hits.").Increment(5);
  uint64_t misses = 0;
  registry.AddCollector([&misses](Writer& w) {
    w.Counter("ringcache_cache_misses_total", "Misses.", misses);
    w.Gauge("ringcache_build_info", "Build.", 1, {{"version", "0.1.0"}});
    w.Gauge("ringcache_cache_bytes", "Bytes.", 1024);
  });
  registry.AddCollector([](Writer& w) {
    w.Gauge("ringcache_cache_items", "Items, by shard.", 7, {{"shard", "1"}});
    w.Gauge("ringcache_cache_items", "Ignored: the first help wins.", 6, {{"shard", "0"}});
    w.Gauge("aaa", "First.", 0.5);
  });
  misses = 3;
  const std::string expected =
      "# HELP aaa First.\n"
      "# TYPE aaa gauge\n"
      "aaa 0.5\n"
      "# HELP ringcache_build_info Build.\n"
      "# TYPE ringcache_build_info gauge\n"
      "ringcache_build_info{version=\"0.1.0\"} 1\n"
      "# HELP ringcache_cache_bytes Bytes.\n"
      "# TYPE ringcache_cache_bytes gauge\n"
      "ringcache_cache_bytes 1024\n"
      "# HELP ringcache_cache_hits_total Hits.\n"
      "# TYPE ringcache_cache_hits_total counter\n"
      "ringcache_cache_hits_total 5\n"
      "# HELP ringcache_cache_items Items, by shard.\n"
      "# TYPE ringcache_cache_items gauge\n"
      "ringcache_cache_items{shard=\"0\"} 6\n"
      "ringcache_cache_items{shard=\"1\"} 7\n"
      "# HELP ringcache_cache_misses_total Misses.\n"
      "# TYPE ringcache_cache_misses_total counter\n"
      "ringcache_cache_misses_total 3\n";
  CHECK(registry.Render() == expected);
  misses = 4;  // Read again at every scrape.
  CHECK(registry.Render().find("ringcache_cache_misses_total 4\n") != std::string::npos);
}

TEST_CASE("Metric, label and bucket validation follows the Prometheus grammar", "[unit][metrics]") {
  for (const char* good : {"a", "_a", ":a", "ringcache_requests_total", "a:b_c9", "__x", "A1"}) {
    INFO(good);
    CHECK(ValidateMetricName(good).ok());
  }
  for (const char* bad : {"", "9a", "a-b", "a b", "a.b", "é", "a\n"}) {
    INFO(bad);
    Status s = ValidateMetricName(bad);
    CHECK(s.code() == StatusCode::kInvalidArgument);
  }
  CHECK(ValidateMetricName("a-b").message() ==
        "invalid metric name \"a-b\": must match [a-zA-Z_:][a-zA-Z0-9_:]*");

  for (const char* good : {"a", "_a", "rpc", "code_2", "A"}) {
    INFO(good);
    CHECK(ValidateLabelName(good).ok());
  }
  for (const char* bad : {"", "9a", "a:b", "a-b", "__name__", "__x", "a b"}) {
    INFO(bad);
    CHECK(ValidateLabelName(bad).code() == StatusCode::kInvalidArgument);
  }

  CHECK(ValidateBucketBounds({1}).ok());
  CHECK(ValidateBucketBounds({-1, 0, 1, INFINITY}).ok());
  CHECK_FALSE(ValidateBucketBounds({}).ok());
  CHECK_FALSE(ValidateBucketBounds({INFINITY}).ok());
  CHECK_FALSE(ValidateBucketBounds({1, 1}).ok());
  CHECK_FALSE(ValidateBucketBounds({2, 1}).ok());
  CHECK_FALSE(ValidateBucketBounds({1, NAN, 2}).ok());
  CHECK_FALSE(ValidateBucketBounds({-INFINITY, 1}).ok());
}

// Runs `fn` in a forked child and reports whether it died of SIGABRT.
template <typename Fn>
bool Aborts(Fn fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (std::freopen("/dev/null", "w", stderr) == nullptr) _exit(2);
    std::signal(SIGABRT, SIG_DFL);  // Catch2's handler would report the abort as a failure.
    fn();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST_CASE("Registration programmer errors abort in every build type", "[unit][metrics]") {
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddCounter("bad name", "x");
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddCounter("dup", "x");
    r.AddGauge("dup", "x");
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddCounterFamily("c", "x", {"__reserved"});
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddCounterFamily("c", "x", {"a", "a"});
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddHistogramFamily("h", "x", {"le"});
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddHistogram("h", "x", {2, 1});
  }));
  CHECK(Aborts([] {
    MetricsRegistry r;
    r.AddCounterFamily("c", "x", {"a", "b"}).WithLabels({"only one"});
  }));
  CHECK_FALSE(Aborts([] {
    MetricsRegistry r;
    r.AddCounterFamily("c", "x", {"a", "b"}).WithLabels({"1", "2"});
  }));
}

TEST_CASE("Concurrent updates add up exactly", "[unit][metrics]") {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounterFamily("c_total", "C.", {"k"});
  Gauge& gauge = registry.AddGauge("g", "G.");
  Histogram& histogram = registry.AddHistogram("h", "H.", {1, 2});
  constexpr int kThreads = 8;
  constexpr int kIterations = 50000;
  std::vector<Counter*> resolved(kThreads);
  std::vector<std::thread> threads;
  std::atomic<bool> done{false};
  std::atomic<int> empty_renders{0};
  // A scraper renders concurrently with the updates (Catch2 asserts only on this thread).
  std::thread scraper([&] {
    for (int i = 0; i < 200 && !done.load(); ++i) {
      if (registry.Render().empty()) ++empty_renders;
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread resolves the same child concurrently; all get the same object.
      resolved[t] = &family.WithLabels({"shared"});
      Counter& own = family.WithLabels({"t" + std::to_string(t)});
      for (int i = 0; i < kIterations; ++i) {
        resolved[t]->Increment();
        own.Increment(2);
        gauge.Add(1);
        histogram.Observe(i % 3);  // 0, 1, 2 in turn (all integers: exact sums).
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  scraper.join();
  CHECK(empty_renders.load() == 0);  // The unlabelled gauge and histogram always render.

  std::set<Counter*> distinct(resolved.begin(), resolved.end());
  CHECK(distinct.size() == 1);
  CHECK(family.WithLabels({"shared"}).Value() == uint64_t{kThreads} * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    CHECK(family.WithLabels({"t" + std::to_string(t)}).Value() == 2u * kIterations);
  }
  CHECK(gauge.Value() == double{kThreads} * kIterations);
  Histogram::Snapshot snap = histogram.Collect();
  CHECK(snap.count == uint64_t{kThreads} * kIterations);
  // i % 3 over 0..49999: 16667 zeros, 16667 ones, 16666 twos per thread.
  CHECK(snap.cumulative_counts ==
        std::vector<uint64_t>{kThreads * 33334u, kThreads * 50000u, kThreads * 50000u});
  CHECK(snap.sum == double{kThreads} * (16667 * 1 + 16666 * 2));
}

}  // namespace
}  // namespace ringcache::metrics

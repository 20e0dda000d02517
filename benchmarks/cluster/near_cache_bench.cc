// ringcache_near_cache_bench: Get of a hot key through ringcache::client with and without
// its near cache, side by side in one run, and how long after a write through another
// client the near cache serves the new value (docs/benchmarks.md, "Near cache").
// run_near_cache_bench.sh starts the cluster (--keyspace-events KA).
//
//   ringcache_near_cache_bench --seeds A,B,C [--pids P1,P2,P3] [--requests 100000]
//                              [--rounds 5] [--writes 500]
//
//  - hot key: each round runs --requests Gets of one key from one thread through a client
//    without a near cache and through one with it, the order alternating between rounds.
//    Per run: Gets/s, latency p50 and p99, and (with --pids) the nodes' CPU time per Get
//    (user + system from /proc, summed over the nodes). Summary: the median ratio
//    near / plain of Gets/s over the rounds, with its min-max.
//  - invalidation: --writes times, another client writes the key a new value; from the
//    moment its Set returns, the near-cache client Gets the key in a loop until it
//    answers the new value. The delay's p50, p99 and max.
//
// Output: human lines, then "RESULT key=value ..." lines. Exit 1 if a call failed.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../proc_cpu.h"
#include "ringcache/client/client.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using ringcache::Result;
using ringcache::client::Client;

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

double CpuOf(const std::vector<int>& pids) { return ringcache::bench::ProcessesCpuSeconds(pids); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

struct Run {
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double cpu_us_per_op = 0;
};

// `n` Gets of `key` from this thread; false if one failed.
bool GetLoop(Client& c, const std::string& key, int n, const std::vector<int>& pids, Run* out) {
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(n));
  const double cpu0 = CpuOf(pids);
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < n; ++i) {
    const auto s = SteadyClock::now();
    if (!c.Get(key).ok()) return false;
    lat.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - s).count());
  }
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  out->ops_per_s = n / secs;
  out->p50_us = Percentile(lat, 0.5);
  out->p99_us = Percentile(lat, 0.99);
  out->cpu_us_per_op = (CpuOf(pids) - cpu0) * 1e6 / n;
  return true;
}

int Usage() {
  std::fprintf(stderr,
               "usage: ringcache_near_cache_bench --seeds A,B,C [--pids P1,P2,P3] "
               "[--requests N] [--rounds R] [--writes W]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  std::vector<int> pids;
  int requests = 100000, rounds = 5, writes = 500;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage();
    const std::string value = argv[++i];
    if (flag == "--seeds") {
      seeds = Split(value);
    } else if (flag == "--pids") {
      for (const std::string& p : Split(value)) pids.push_back(std::stoi(p));
    } else if (flag == "--requests") {
      requests = std::stoi(value);
    } else if (flag == "--rounds") {
      rounds = std::stoi(value);
    } else if (flag == "--writes") {
      writes = std::stoi(value);
    } else {
      return Usage();
    }
  }
  if (seeds.empty() || requests <= 0 || rounds <= 0 || writes <= 0) return Usage();

  auto connect = [&](bool near) {
    return Client::Connect({.seeds = seeds, .near_cache = {.enabled = near}});
  };
  Result<std::unique_ptr<Client>> plain = connect(false);
  Result<std::unique_ptr<Client>> near = connect(true);
  Result<std::unique_ptr<Client>> writer = connect(false);
  for (const auto* c : {&plain, &near, &writer}) {
    if (!c->ok()) {
      std::fprintf(stderr, "connect: %s\n", c->status().ToString().c_str());
      return 1;
    }
  }
  const std::string key = "near-bench:hot";
  if (!(*writer)->Set(key, std::string(100, 'v')).ok()) return 1;
  // The near cache serves once every member has ticked on its stream.
  const auto trust_deadline = SteadyClock::now() + std::chrono::seconds(10);
  while ((*near)->near_cache_stats().hits == 0) {
    if (SteadyClock::now() > trust_deadline) {
      std::fprintf(stderr, "the near cache never answered from memory\n");
      return 1;
    }
    (void)(*near)->Get(key);
  }

  std::printf("hot key: %d Gets per run from one thread, %d rounds (order alternates)\n", requests,
              rounds);
  std::vector<double> ratios, plain_ops, near_ops, plain_p50, near_p50;
  for (int r = 0; r < rounds; ++r) {
    Run runs[2];
    for (int k = 0; k < 2; ++k) {
      const bool use_near = (r + k) % 2 == 1;
      if (!GetLoop(use_near ? **near : **plain, key, requests, pids, &runs[use_near ? 1 : 0])) {
        std::fprintf(stderr, "a Get failed\n");
        return 1;
      }
    }
    for (int k = 0; k < 2; ++k) {
      std::printf(
          "  round %d %-6s %10.0f Gets/s  p50 %7.1f us  p99 %7.1f us  nodes' CPU %7.2f us/Get\n",
          r + 1, k == 1 ? "near" : "plain", runs[k].ops_per_s, runs[k].p50_us, runs[k].p99_us,
          runs[k].cpu_us_per_op);
    }
    ratios.push_back(runs[1].ops_per_s / runs[0].ops_per_s);
    plain_ops.push_back(runs[0].ops_per_s);
    near_ops.push_back(runs[1].ops_per_s);
    plain_p50.push_back(runs[0].p50_us);
    near_p50.push_back(runs[1].p50_us);
  }
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  std::printf("near / plain Gets/s: %.1fx (min %.1fx, max %.1fx); p50 %.1f us vs %.1f us\n",
              Median(ratios), *lo, *hi, Median(near_p50), Median(plain_p50));

  // Invalidation: a write through another client, then Gets until the new value shows.
  std::vector<double> delays;
  for (int i = 0; i < writes; ++i) {
    const std::string value = "w" + std::to_string(i);
    if (!(*writer)->Set(key, value).ok()) return 1;
    const auto t0 = SteadyClock::now();
    for (;;) {
      Result<ringcache::Item> item = (*near)->Get(key);
      if (!item.ok()) return 1;
      if (item->value == value) break;
      if (SteadyClock::now() - t0 > std::chrono::seconds(10)) {
        std::fprintf(stderr, "write %d never showed through the near cache\n", i);
        return 1;
      }
    }
    delays.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
    // Served from memory again before the next write (as a hot key would be): the loop's
    // last Get filled it unless the event came after that Get.
    const uint64_t hits = (*near)->near_cache_stats().hits;
    while ((*near)->near_cache_stats().hits == hits) {
      if (!(*near)->Get(key).ok() || SteadyClock::now() - t0 > std::chrono::seconds(10)) return 1;
    }
  }
  const double max_delay = *std::max_element(delays.begin(), delays.end());
  std::printf(
      "invalidation: %d writes through another client; new value served after "
      "p50 %.0f us, p99 %.0f us, max %.0f us\n",
      writes, Percentile(delays, 0.5), Percentile(delays, 0.99), max_delay);
  const ringcache::client::NearCacheStats s = (*near)->near_cache_stats();
  std::printf("near cache: %llu hits, %llu misses, %llu invalidations, %llu resets\n",
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.invalidations),
              static_cast<unsigned long long>(s.resets));
  std::printf(
      "RESULT phase=hot_key ratio=%.2f ratio_min=%.2f ratio_max=%.2f near_ops=%.0f "
      "plain_ops=%.0f near_p50_us=%.2f plain_p50_us=%.1f\n",
      Median(ratios), *lo, *hi, Median(near_ops), Median(plain_ops), Median(near_p50),
      Median(plain_p50));
  std::printf("RESULT phase=invalidation p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
              Percentile(delays, 0.5), Percentile(delays, 0.99), max_delay);
  return 0;
}

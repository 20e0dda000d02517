// Typed commands on a ringcache::Cache (ringcache/typed.h's RunTyped) against textbook
// standard containers under one mutex (std::unordered_map of std::unordered_map /
// std::deque / std::unordered_set), side by side in one run (issue "Typed values",
// docs/benchmarks.md).
//
// Workloads, each on 10,000 keys picked at random (the same sequence for both sides):
//   hset-hget      HSET of one of 10 fields (16-byte value), then HGET of one
//   lpush-lpop     LPUSH of one 16-byte element, then LPOP (lists stay short)
//   sadd-sismember SADD of one of 10 members, then SISMEMBER of one
// with 1 and 2 threads. Rounds alternate which side runs first; each ratio is
// ringcache / std for one adjacent pair, reported as the median with its range over the
// rounds, beside each side's CPU time per operation (the process's, over the run).
//
// Usage: typed_ops_bench [--ops N] [--rounds R] [--smoke]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/typed.h"

namespace {

using ringcache::Cache;
using ringcache::CacheStore;
using ringcache::TypedCommand;
using ringcache::TypedReply;

constexpr int kKeys = 10000;
constexpr int kNames = 10;

// The keys and names, built once: both sides look up the same strings.
struct Words {
  std::vector<std::string> keys;
  std::vector<std::string> names;
  std::string value = std::string(16, 'v');
  Words() {
    for (int i = 0; i < kKeys; ++i) keys.push_back("key:" + std::to_string(i));
    for (int i = 0; i < kNames; ++i) names.push_back("name" + std::to_string(i));
  }
};

enum class Workload { kHash, kList, kSet };
const char* NameOf(Workload w) {
  return w == Workload::kHash ? "hset-hget" : w == Workload::kList ? "lpush-lpop" : "sadd-sismember";
}

// One side: does a write then a read of `key` with `name`.
class Side {
 public:
  virtual ~Side() = default;
  virtual void Pair(Workload w, const std::string& key, const std::string& name,
                    const std::string& value) = 0;
};

class RingcacheSide final : public Side {
 public:
  RingcacheSide() {
    ringcache::CacheOptions o;
    o.capacity_bytes = uint64_t{1} << 30;
    o.start_janitor = false;
    cache_ = std::move(Cache::Create(o)).value();
  }
  void Pair(Workload w, const std::string& key, const std::string& name,
            const std::string& value) override {
    CacheStore store(*cache_);
    TypedReply reply;
    const std::string_view pair[] = {name, value};
    const std::string_view one[] = {name};
    const std::string_view element[] = {value};
    switch (w) {
      case Workload::kHash:
        Check(RunTyped(store, key, {.command = TypedCommand::kHSet, .args = pair}, &reply));
        Check(RunTyped(store, key, {.command = TypedCommand::kHGet, .args = one}, &reply));
        break;
      case Workload::kList:
        Check(RunTyped(store, key, {.command = TypedCommand::kLPush, .args = element}, &reply));
        Check(RunTyped(store, key, {.command = TypedCommand::kLPop}, &reply));
        break;
      case Workload::kSet:
        Check(RunTyped(store, key, {.command = TypedCommand::kSAdd, .args = one}, &reply));
        Check(RunTyped(store, key, {.command = TypedCommand::kSIsMember, .args = one}, &reply));
        break;
    }
  }

 private:
  static void Check(const ringcache::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "typed_ops_bench: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
  std::unique_ptr<Cache> cache_;
};

// What a textbook C++ cache of typed values looks like: one map per family, one mutex.
class StdSide final : public Side {
 public:
  void Pair(Workload w, const std::string& key, const std::string& name,
            const std::string& value) override {
    switch (w) {
      case Workload::kHash: {
        {
          std::lock_guard lock(mu_);
          hashes_[key][name] = value;
        }
        std::string out;
        std::lock_guard lock(mu_);
        auto it = hashes_.find(key);
        if (it != hashes_.end()) {
          auto f = it->second.find(name);
          if (f != it->second.end()) out = f->second;
        }
        break;
      }
      case Workload::kList: {
        {
          std::lock_guard lock(mu_);
          lists_[key].push_front(value);
        }
        std::string out;
        std::lock_guard lock(mu_);
        auto it = lists_.find(key);
        if (it != lists_.end() && !it->second.empty()) {
          out = std::move(it->second.front());
          it->second.pop_front();
          if (it->second.empty()) lists_.erase(it);
        }
        break;
      }
      case Workload::kSet: {
        {
          std::lock_guard lock(mu_);
          sets_[key].insert(name);
        }
        std::lock_guard lock(mu_);
        auto it = sets_.find(key);
        volatile bool found = it != sets_.end() && it->second.contains(name);
        (void)found;
        break;
      }
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>> hashes_;
  std::unordered_map<std::string, std::deque<std::string>> lists_;
  std::unordered_map<std::string, std::unordered_set<std::string>> sets_;
};

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Run {
  double ops_per_s = 0;
  double cpu_ns_per_op = 0;
};

// `threads` threads each doing `pairs` write+read pairs (2 ops each) on `side`.
Run Measure(Side& side, const Words& words, Workload w, int threads, int pairs, unsigned seed) {
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<unsigned>(t));
      std::uniform_int_distribution<int> key(0, kKeys - 1);
      std::uniform_int_distribution<int> name(0, kNames - 1);
      for (int i = 0; i < pairs; ++i) {
        side.Pair(w, words.keys[static_cast<size_t>(key(rng))],
                  words.names[static_cast<size_t>(name(rng))], words.value);
      }
    });
  }
  for (std::thread& th : workers) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ops = 2.0 * threads * pairs;
  return {ops / secs, (CpuSeconds() - cpu0) * 1e9 / ops};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int pairs = 200000;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--ops=", 6) == 0) {
      pairs = std::max(1, std::atoi(argv[i] + 6) / 2);
    } else if (std::strncmp(argv[i], "--rounds=", 9) == 0) {
      rounds = std::max(1, std::atoi(argv[i] + 9));
    } else if (std::strcmp(argv[i], "--smoke") == 0) {
      pairs = 2000;
      rounds = 1;
    } else {
      std::fprintf(stderr, "usage: typed_ops_bench [--ops=N] [--rounds=R] [--smoke]\n");
      return 2;
    }
  }
  const Words words;
  std::printf("typed_ops_bench: %d keys, %d write+read pairs per thread per run, %d rounds\n",
              kKeys, pairs, rounds);
  std::printf("%-15s %-7s %14s %14s %10s %10s   %s\n", "workload", "threads", "ringcache op/s",
              "std op/s", "rc ns/op", "std ns/op", "ratio rc/std: median (min .. max)");
  for (Workload w : {Workload::kHash, Workload::kList, Workload::kSet}) {
    for (int threads : {1, 2}) {
      // Fresh sides per configuration, warmed by one unmeasured run each.
      RingcacheSide rc;
      StdSide std_side;
      Measure(rc, words, w, threads, pairs / 4 + 1, 1);
      Measure(std_side, words, w, threads, pairs / 4 + 1, 1);
      std::vector<double> ratios, rc_ops, std_ops, rc_cpu, std_cpu;
      for (int r = 0; r < rounds; ++r) {
        const unsigned seed = 100 + static_cast<unsigned>(r);
        Run a, b;
        if (r % 2 == 0) {
          a = Measure(rc, words, w, threads, pairs, seed);
          b = Measure(std_side, words, w, threads, pairs, seed);
        } else {
          b = Measure(std_side, words, w, threads, pairs, seed);
          a = Measure(rc, words, w, threads, pairs, seed);
        }
        ratios.push_back(a.ops_per_s / b.ops_per_s);
        rc_ops.push_back(a.ops_per_s);
        std_ops.push_back(b.ops_per_s);
        rc_cpu.push_back(a.cpu_ns_per_op);
        std_cpu.push_back(b.cpu_ns_per_op);
      }
      std::printf("%-15s %-7d %14.0f %14.0f %10.0f %10.0f   %.2fx (%.2f .. %.2f)\n", NameOf(w),
                  threads, Median(rc_ops), Median(std_ops), Median(rc_cpu), Median(std_cpu),
                  Median(ratios), *std::min_element(ratios.begin(), ratios.end()),
                  *std::max_element(ratios.begin(), ratios.end()));
      std::fflush(stdout);
    }
  }
  return 0;
}

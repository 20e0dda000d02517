// cache_bench: the local-cache benchmark driver (after leveldb's db_bench and CacheLib's
// cachebench). One binary, named phases, flags, a tiny --smoke run for CI.
//
// Every phase measures ringcache::Cache and, in the same process, with the same harness,
// the same keys, the same precomputed index sequences and the same thread counts, two
// baselines:
//   unordered_map  a bare std::unordered_map<std::string, std::string>: find + copy the
//                  value into a reused std::string (what Cache::Get does into *value).
//                  Built once and then only read, so threads read it without a lock.
//   textbook_lru   std::unordered_map<std::string, std::list<Entry>::iterator> + std::list
//                  + one std::mutex, move-to-front on every hit, byte-budget eviction.
// Each configuration is run --repeats times, the implementations interleaved (A/B/C,
// B/C/A, ...), and the median is reported, because the machines are shared and noisy.
// Ratios, not absolute figures, are the point (docs/benchmarks.md).
//
// Phases (default: all, in this order):
//   memory             per-entry bytes beyond key + value: RSS growth over a fill
//   fill               Set every key once into an empty cache, keys split over threads
//   read-hit-zipf      Get, Zipf over the filled keys: all hits (misses are an error)
//   read-uniform       Get, uniform over the filled keys: all hits
//   mixed-90-10        90% Get / 10% Set (same value back), Zipf: all Gets hit
//   set-with-eviction  Set sweeping all keys into a budget of 1/4 of the working set
//   ttl-churn          Set with a short TTL (real clock, janitor on): expire + replace
//   hit-ratio          look-aside replay of the Zipf trace (Get, Set on miss) into a
//                      budget smaller than the working set: ringcache vs exact LRU
//
// Exit status: 0 unless a functional error was seen (a filled key missing in an
// all-hits phase, a wrong value, a failed Set, an expired entry returned), or bad flags
// (2). Performance targets are printed with PASS/FAIL, never asserted.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/status.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Flags

constexpr std::array<std::string_view, 8> kAllPhases = {
    "memory",    "fill",     "read-hit-zipf", "read-uniform", "mixed-90-10", "set-with-eviction",
    "ttl-churn", "hit-ratio"};

struct Flags {
  std::vector<int> threads = {1};   // --threads=1,2
  uint64_t keys = 1'000'000;        // --keys
  uint32_t key_size = 16;           // --key-size
  uint32_t value_size = 32;         // --value-size
  uint64_t ops = 5'000'000;         // --ops: per phase per thread
  double seconds = 0;               // --seconds: > 0 bounds each run by time instead
  double zipf = 0.99;               // --zipf: exponent; 0 = uniform
  std::vector<std::string> phases;  // --phases: empty = all
  uint64_t capacity_mb = 0;         // --capacity-mb: 0 = all keys fit
  uint32_t shards = 0;              // --shards: CacheOptions::shard_count, 0 = library default
  int repeats = 3;                  // --repeats
  uint64_t ttl_ms = 10;             // --ttl-ms: TTL of the ttl-churn phase
  std::vector<double> hit_budgets_pct = {5, 10, 25};  // --hit-budgets: % of the working set
  uint64_t seed = 42;                                 // --seed
  bool smoke = false;                                 // --smoke

  bool HasPhase(std::string_view p) const {
    return phases.empty() || std::find(phases.begin(), phases.end(), p) != phases.end();
  }
  int MaxThreads() const { return *std::max_element(threads.begin(), threads.end()); }
};

void PrintHelp() {
  std::printf(
      "cache_bench: ringcache::Cache vs std::unordered_map and a textbook mutex LRU\n"
      "\n"
      "Usage: cache_bench [--flag=value | --flag value]...\n"
      "  --threads=LIST      thread counts, e.g. 1,2 (default 1)\n"
      "  --keys=N            distinct keys (default 1000000; k/M suffixes accepted)\n"
      "  --key-size=N        key bytes (default 16)\n"
      "  --value-size=N      value bytes (default 32)\n"
      "  --ops=N             ops per phase per thread (default 5M); with --seconds, the\n"
      "                      length of each thread's slice of the precomputed sequence\n"
      "  --seconds=S         bound each run by time instead of --ops (default 0 = off)\n"
      "  --zipf=S            Zipf exponent of the skewed phases (default 0.99)\n"
      "  --phases=LIST       comma list of phases (default all):\n"
      "                      memory,fill,read-hit-zipf,read-uniform,mixed-90-10,\n"
      "                      set-with-eviction,ttl-churn,hit-ratio\n"
      "  --capacity-mb=N     cache budget of the all-hits phases (default 0 = sized so\n"
      "                      that every key fits)\n"
      "  --shards=N          CacheOptions::shard_count (default 0 = library default)\n"
      "  --repeats=N         runs per configuration; the median is reported (default 3)\n"
      "  --ttl-ms=N          TTL of the ttl-churn phase (default 10)\n"
      "  --hit-budgets=LIST  budgets of the hit-ratio phase, %% of the working set\n"
      "                      (default 5,10,25)\n"
      "  --seed=N            seed of the key order and the sequences (default 42)\n"
      "  --smoke             tiny run of every phase (20k keys, 20k ops, threads 1,2,\n"
      "                      1 repeat); later flags still override\n"
      "  --help              this text\n");
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  const char last = s.back();
  if (last == 'k' || last == 'K') mult = 1'000;
  if (last == 'm' || last == 'M') mult = 1'000'000;
  if (last == 'g' || last == 'G') mult = 1'000'000'000;
  if (mult != 1) s.remove_suffix(1);
  if (s.empty()) return false;
  uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v * mult;
  return true;
}

bool ParseDouble(std::string_view s, double* out) {
  const std::string str(s);
  char* end = nullptr;
  const double v = std::strtod(str.c_str(), &end);
  if (str.empty() || end != str.c_str() + str.size()) return false;
  *out = v;
  return true;
}

std::vector<std::string> SplitCommas(std::string_view s) {
  std::vector<std::string> parts;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view part = s.substr(0, comma);
    if (!part.empty()) parts.emplace_back(part);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return parts;
}

// Parses argv into *flags; prints the problem and returns false on a bad flag.
bool ParseFlags(int argc, char** argv, Flags* flags, bool* help) {
  std::vector<std::pair<std::string, std::string>> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, 2) != "--") {
      std::fprintf(stderr, "cache_bench: unexpected argument '%s' (see --help)\n", argv[i]);
      return false;
    }
    a.remove_prefix(2);
    const size_t eq = a.find('=');
    std::string name(a.substr(0, eq));
    if (eq != std::string_view::npos) {
      args.emplace_back(std::move(name), std::string(a.substr(eq + 1)));
    } else if (name == "smoke" || name == "help") {
      args.emplace_back(std::move(name), "true");
    } else if (i + 1 < argc) {
      args.emplace_back(std::move(name), argv[++i]);
    } else {
      std::fprintf(stderr, "cache_bench: --%s needs a value\n", name.c_str());
      return false;
    }
  }
  // --smoke sets small defaults first, so that explicit flags still override them.
  for (const auto& [name, value] : args) {
    if (name == "smoke" && value != "false" && value != "0") {
      flags->smoke = true;
      flags->keys = 20'000;
      flags->ops = 20'000;
      flags->threads = {1, 2};
      flags->repeats = 1;
    }
    if (name == "help") *help = true;
  }
  for (const auto& [name, value] : args) {
    uint64_t u = 0;
    double d = 0;
    bool ok = true;
    if (name == "smoke" || name == "help") {
      // Handled above.
    } else if (name == "threads") {
      flags->threads.clear();
      for (const std::string& part : SplitCommas(value)) {
        ok = ok && ParseU64(part, &u) && u >= 1 && u <= 1024;
        flags->threads.push_back(static_cast<int>(u));
      }
      ok = ok && !flags->threads.empty();
    } else if (name == "keys") {
      ok = ParseU64(value, &flags->keys) && flags->keys >= 1 && flags->keys <= UINT32_MAX;
    } else if (name == "key-size") {
      ok = ParseU64(value, &u) && u >= 2 && u <= 65535;
      flags->key_size = static_cast<uint32_t>(u);
    } else if (name == "value-size") {
      ok = ParseU64(value, &u) && u <= (uint64_t{1} << 30);
      flags->value_size = static_cast<uint32_t>(u);
    } else if (name == "ops") {
      ok = ParseU64(value, &flags->ops) && flags->ops >= 1;
    } else if (name == "seconds") {
      ok = ParseDouble(value, &flags->seconds) && flags->seconds >= 0;
    } else if (name == "zipf") {
      ok = ParseDouble(value, &flags->zipf) && flags->zipf >= 0 && flags->zipf < 10;
    } else if (name == "phases") {
      flags->phases = SplitCommas(value);
      for (const std::string& p : flags->phases) {
        if (std::find(kAllPhases.begin(), kAllPhases.end(), p) == kAllPhases.end()) {
          std::fprintf(stderr, "cache_bench: unknown phase '%s' (see --help)\n", p.c_str());
          return false;
        }
      }
    } else if (name == "capacity-mb") {
      ok = ParseU64(value, &flags->capacity_mb);
    } else if (name == "shards") {
      ok = ParseU64(value, &u) && u <= (uint64_t{1} << 20);
      flags->shards = static_cast<uint32_t>(u);
    } else if (name == "repeats") {
      ok = ParseU64(value, &u) && u >= 1 && u <= 1000;
      flags->repeats = static_cast<int>(u);
    } else if (name == "ttl-ms") {
      ok = ParseU64(value, &flags->ttl_ms) && flags->ttl_ms >= 1;
    } else if (name == "hit-budgets") {
      flags->hit_budgets_pct.clear();
      for (const std::string& part : SplitCommas(value)) {
        ok = ok && ParseDouble(part, &d) && d > 0 && d <= 100;
        flags->hit_budgets_pct.push_back(d);
      }
    } else if (name == "seed") {
      ok = ParseU64(value, &flags->seed);
    } else {
      std::fprintf(stderr, "cache_bench: unknown flag --%s (see --help)\n", name.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "cache_bench: bad value '%s' for --%s\n", value.c_str(), name.c_str());
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Functional errors: counted, printed loudly, turned into the exit status.

int g_functional_errors = 0;

void Fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Fail(const char* fmt, ...) {
  ++g_functional_errors;
  std::fflush(stdout);
  std::fprintf(stderr, "FUNCTIONAL ERROR: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
}

// ---------------------------------------------------------------------------------------
// Workload: keys, values and index sequences, all built before anything is timed.

// Zipf-distributed ranks in [0, n), P(rank r) proportional to 1 / (r + 1)^s, by
// rejection-inversion (Hormann & Derflinger 1996; the algorithm of Apache Commons RNG's
// RejectionInversionZipfSampler): exact, O(1) per sample, any s > 0.
class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double s) : n_(static_cast<double>(n)), s_(s) {
    h_integral_x1_ = HIntegral(1.5) - 1.0;
    h_integral_n_ = HIntegral(n_ + 0.5);
    shift_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
  }

  template <typename Rng>
  uint64_t operator()(Rng& rng) const {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    while (true) {
      const double u = h_integral_n_ + unit(rng) * (h_integral_x1_ - h_integral_n_);
      const double x = HIntegralInverse(u);
      double k = std::floor(x + 0.5);
      if (k < 1) k = 1;
      if (k > n_) k = n_;
      if (k - x <= shift_ || u >= HIntegral(k + 0.5) - H(k)) return static_cast<uint64_t>(k) - 1;
    }
  }

 private:
  double H(double x) const { return std::exp(-s_ * std::log(x)); }
  double HIntegral(double x) const {
    const double log_x = std::log(x);
    return Helper2((1.0 - s_) * log_x) * log_x;
  }
  double HIntegralInverse(double x) const {
    double t = x * (1.0 - s_);
    if (t < -1.0) t = -1.0;
    return std::exp(Helper1(t) * x);
  }
  // log1p(x) / x and expm1(x) / x, accurate near 0.
  static double Helper1(double x) {
    return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
  }
  static double Helper2(double x) {
    return std::abs(x) > 1e-8 ? std::expm1(x) / x
                              : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
  }

  double n_;
  double s_;
  double h_integral_x1_;
  double h_integral_n_;
  double shift_;
};

// Values are windows of one random buffer: distinct per key (mostly), no per-key memory.
constexpr uint64_t kValuePoolSpan = 65521;  // prime

// A precomputed access sequence: MaxThreads() slices of slice_len operations. For each
// operation it holds the key's index (to know its value) and a copy of the key's bytes,
// so a thread reads its keys as a stream, like requests from a network buffer, instead
// of chasing a pointer to a random std::string (two cache misses per operation that
// every implementation would pay and that would only dilute the comparison).
struct Sequence {
  std::vector<uint32_t> index;
  std::vector<char> key_bytes;
};

struct Workload {
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  std::vector<std::string> keys;  // keys[i]: "k" + i zero-padded to key_size bytes
  std::string value_pool;
  uint64_t slice_len = 0;    // operations of a sequence used by one thread
  Sequence zipf;             // Zipf ranks mapped through a random permutation of the keys
  Sequence uniform;          // uniform over the keys
  uint32_t hottest_key = 0;  // the key of Zipf rank 0
  double hottest_expected_share = 0;

  std::string_view ValueFor(uint64_t k) const {
    return {value_pool.data() + (k * 7919) % kValuePoolSpan, value_size};
  }
  // Bytes charged by ringcache for all keys: the working set of the eviction phases.
  uint64_t WorkingSetBytes() const {
    return keys.size() * (key_size + value_size + ringcache::Cache::EntryOverheadBytes());
  }
};

bool BuildWorkload(const Flags& flags, Workload* w) {
  w->key_size = flags.key_size;
  w->value_size = flags.value_size;
  const size_t max_digits = std::to_string(flags.keys - 1).size();
  if (flags.key_size - 1 < max_digits) {
    std::fprintf(stderr, "cache_bench: --key-size=%u is too small for %" PRIu64 " distinct keys\n",
                 flags.key_size, flags.keys);
    return false;
  }
  w->keys.reserve(flags.keys);
  for (uint64_t i = 0; i < flags.keys; ++i) {
    const std::string number = std::to_string(i);
    std::string key(flags.key_size, '0');
    key[0] = 'k';
    number.copy(key.data() + key.size() - number.size(), number.size());
    w->keys.push_back(std::move(key));
  }

  std::mt19937_64 rng(flags.seed);
  w->value_pool.resize(kValuePoolSpan + flags.value_size);
  for (char& c : w->value_pool) c = static_cast<char>('a' + rng() % 26);

  // Zipf rank r is key perm[r]: the hot keys are scattered over the key space and over
  // the insertion order (so no structure gets hot keys adjacent in memory for free).
  std::vector<uint32_t> perm(flags.keys);
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin(), perm.end(), rng);
  w->hottest_key = perm[0];

  w->slice_len = flags.ops;
  const uint64_t total = w->slice_len * static_cast<uint64_t>(flags.MaxThreads());
  w->zipf.index.resize(total);
  w->uniform.index.resize(total);
  std::uniform_int_distribution<uint32_t> uniform_key(0, static_cast<uint32_t>(flags.keys - 1));
  if (flags.zipf > 0) {
    const ZipfSampler zipf(flags.keys, flags.zipf);
    for (uint32_t& k : w->zipf.index) k = perm[zipf(rng)];
    double harmonic = 0;
    for (uint64_t r = flags.keys; r >= 1; --r)
      harmonic += std::pow(static_cast<double>(r), -flags.zipf);
    w->hottest_expected_share = 1.0 / harmonic;
  } else {
    for (uint32_t& k : w->zipf.index) k = uniform_key(rng);
    w->hottest_expected_share = 1.0 / static_cast<double>(flags.keys);
  }
  for (uint32_t& k : w->uniform.index) k = uniform_key(rng);
  for (Sequence* seq : {&w->zipf, &w->uniform}) {
    seq->key_bytes.resize(total * flags.key_size);
    for (uint64_t i = 0; i < total; ++i) {
      std::memcpy(&seq->key_bytes[i * flags.key_size], w->keys[seq->index[i]].data(),
                  flags.key_size);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Baseline: the textbook LRU.

// std::unordered_map<key, list iterator> + std::list + one std::mutex; every hit moves
// the entry to the front; a Set evicts from the back until the byte budget holds.
// Each entry is charged key + value + entry_overhead (set to Cache::EntryOverheadBytes()
// so that both caches hold the same number of entries at the same budget).
// Thread safety: internally synchronized by one mutex.
class TextbookLru {
 public:
  TextbookLru(uint64_t capacity_bytes, uint64_t entry_overhead)
      : capacity_bytes_(capacity_bytes), entry_overhead_(entry_overhead) {}

  bool Get(const std::string& key, std::string* value) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = index_.find(key);
    if (it == index_.end()) return false;
    order_.splice(order_.begin(), order_, it->second);
    *value = it->second->value;
    return true;
  }

  bool Set(const std::string& key, std::string_view value) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = index_.find(key);
    if (it != index_.end()) {
      Entry& e = *it->second;
      bytes_used_ = bytes_used_ - e.value.size() + value.size();
      e.value.assign(value);
      order_.splice(order_.begin(), order_, it->second);
    } else {
      order_.push_front(Entry{key, std::string(value)});
      index_.emplace(key, order_.begin());
      bytes_used_ += key.size() + value.size() + entry_overhead_;
    }
    while (bytes_used_ > capacity_bytes_ && !order_.empty()) {
      const Entry& victim = order_.back();
      bytes_used_ -= victim.key.size() + victim.value.size() + entry_overhead_;
      index_.erase(victim.key);
      order_.pop_back();
      ++evictions_;
    }
    return true;
  }

  uint64_t evictions() const {
    std::lock_guard<std::mutex> lock(mu_);
    return evictions_;
  }
  uint64_t items() const {
    std::lock_guard<std::mutex> lock(mu_);
    return index_.size();
  }

 private:
  struct Entry {
    std::string key;
    std::string value;
  };

  // Constant after construction.
  const uint64_t capacity_bytes_;
  const uint64_t entry_overhead_;

  // Protected by mu_.
  mutable std::mutex mu_;
  std::list<Entry> order_;  // Front: most recently used.
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t bytes_used_ = 0;
  uint64_t evictions_ = 0;
};

using StringMap = std::unordered_map<std::string, std::string>;

// The three implementations behind one shape, so one templated loop drives them all
// (no virtual call in the timed loop of any of them).
class RingcacheOps {
 public:
  explicit RingcacheOps(ringcache::Cache* cache) : cache_(cache) {}
  bool Get(const std::string& key, std::string* value) const {
    return cache_->Get(key, value).ok();
  }
  bool Set(const std::string& key, std::string_view value) const {
    return cache_->Set(key, value).ok();
  }

 private:
  ringcache::Cache* cache_;  // Not owned.
};

class MapOps {  // Read-only: Set is used only single-threaded (fill with 1 thread).
 public:
  explicit MapOps(StringMap* map) : map_(map) {}
  bool Get(const std::string& key, std::string* value) const {
    const auto it = map_->find(key);
    if (it == map_->end()) return false;
    *value = it->second;
    return true;
  }
  bool Set(const std::string& key, std::string_view value) const {
    (*map_)[key].assign(value);
    return true;
  }

 private:
  StringMap* map_;  // Not owned.
};

class LruOps {
 public:
  explicit LruOps(TextbookLru* lru) : lru_(lru) {}
  bool Get(const std::string& key, std::string* value) const { return lru_->Get(key, value); }
  bool Set(const std::string& key, std::string_view value) const { return lru_->Set(key, value); }

 private:
  TextbookLru* lru_;  // Not owned.
};

// ---------------------------------------------------------------------------------------
// Harness: threads that start together, steady_clock timing, per-thread tallies.

struct alignas(64) ThreadTally {
  uint64_t ops = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;     // Get misses, or failed Sets in the write phases.
  uint64_t sink = 0;       // Sum of the sizes of the values read: keeps the work observable.
  double cpu_seconds = 0;  // CPU time the thread got during the run.
  SteadyClock::time_point start;
  SteadyClock::time_point end;
};

struct RunStats {
  double seconds = 0;
  uint64_t ops = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t sink = 0;
  double extra = -1;  // A phase-specific figure (evictions per set, expirations/s), or -1.
  // CPU time the threads got / (threads x wall time): well below 1 means the run shared
  // the cores with other processes (or its threads blocked) and is less trustworthy.
  double cpu_share = 0;
  double OpsPerSec() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

uint64_t g_checksum = 0;  // Sum of every sink, printed at the end.

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs body(thread_index, tally, stop) on `threads` threads released together; the run
// lasts from the first thread's start to the last thread's end. With seconds > 0 the
// main thread raises `stop` after that long.
template <typename Body>
RunStats RunThreads(int threads, double seconds, const Body& body) {
  std::vector<ThreadTally> tallies(static_cast<size_t>(threads));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ThreadTally* tally = &tallies[static_cast<size_t>(t)];
      ready.fetch_add(1, std::memory_order_acq_rel);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const double cpu_start = ThreadCpuSeconds();
      tally->start = SteadyClock::now();
      body(t, tally, stop);
      tally->end = SteadyClock::now();
      tally->cpu_seconds = ThreadCpuSeconds() - cpu_start;
    });
  }
  while (ready.load(std::memory_order_acquire) < threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  if (seconds > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop.store(true, std::memory_order_relaxed);
  }
  for (std::thread& th : pool) th.join();

  RunStats r;
  double cpu_seconds = 0;
  SteadyClock::time_point start = tallies[0].start;
  SteadyClock::time_point end = tallies[0].end;
  for (const ThreadTally& tally : tallies) {
    start = std::min(start, tally.start);
    end = std::max(end, tally.end);
    r.ops += tally.ops;
    r.hits += tally.hits;
    r.misses += tally.misses;
    r.sink += tally.sink;
    cpu_seconds += tally.cpu_seconds;
  }
  r.seconds = std::chrono::duration<double>(end - start).count();
  r.cpu_share = r.seconds > 0 ? cpu_seconds / (r.seconds * threads) : 0;
  g_checksum += r.sink;
  return r;
}

// Calls op(i) for i = 0, 1, ... until `ops` calls (ops > 0) or until stop is raised
// (checked every few hundred calls); returns the number of calls.
template <typename Op>
uint64_t ForEachOp(uint64_t ops, const std::atomic<bool>& stop, const Op& op) {
  constexpr uint64_t kChunk = 256;
  uint64_t i = 0;
  while (ops == 0 || i < ops) {
    if (stop.load(std::memory_order_relaxed)) break;
    const uint64_t end = ops == 0 ? i + kChunk : std::min(ops, i + kChunk);
    for (; i < end; ++i) op(i);
  }
  return i;
}

// Ops per thread of one timed run: --ops, or unbounded (0) under --seconds.
uint64_t OpsBound(const Flags& flags) { return flags.seconds > 0 ? 0 : flags.ops; }

// Get every key of thread t's slice of `seq` (replayed cyclically under --seconds).
template <typename Impl>
RunStats RunGets(const Flags& flags, const Workload& w, const Sequence& seq, int threads,
                 const Impl& impl) {
  return RunThreads(
      threads, flags.seconds, [&](int t, ThreadTally* tally, const std::atomic<bool>& stop) {
        const uint64_t len = w.slice_len;
        const size_t ks = w.key_size;
        const char* bytes = seq.key_bytes.data() + static_cast<uint64_t>(t) * len * ks;
        std::string key;
        key.reserve(ks);
        std::string value;
        value.reserve(w.value_size);
        uint64_t hits = 0;
        uint64_t misses = 0;
        uint64_t sink = 0;
        tally->ops = ForEachOp(OpsBound(flags), stop, [&](uint64_t i) {
          key.assign(bytes + (i < len ? i : i % len) * ks, ks);
          if (impl.Get(key, &value)) {
            ++hits;
            sink += value.size();
          } else {
            ++misses;
          }
        });
        tally->hits = hits;
        tally->misses = misses;
        tally->sink = sink;
      });
}

// 90% Get / 10% Set of the key's own value (so every Get still hits), Zipf.
template <typename Impl>
RunStats RunMixed(const Flags& flags, const Workload& w, int threads, const Impl& impl) {
  return RunThreads(
      threads, flags.seconds, [&](int t, ThreadTally* tally, const std::atomic<bool>& stop) {
        const uint64_t len = w.slice_len;
        const size_t ks = w.key_size;
        const uint32_t* index = w.zipf.index.data() + static_cast<uint64_t>(t) * len;
        const char* bytes = w.zipf.key_bytes.data() + static_cast<uint64_t>(t) * len * ks;
        std::string key;
        key.reserve(ks);
        std::string value;
        value.reserve(w.value_size);
        uint64_t hits = 0;
        uint64_t misses = 0;
        uint64_t sink = 0;
        tally->ops = ForEachOp(OpsBound(flags), stop, [&](uint64_t i) {
          const uint64_t j = i < len ? i : i % len;
          key.assign(bytes + j * ks, ks);
          if (i % 10 == 9) {
            if (!impl.Set(key, w.ValueFor(index[j]))) ++misses;
          } else if (impl.Get(key, &value)) {
            ++hits;
            sink += value.size();
          } else {
            ++misses;
          }
        });
        tally->hits = hits;
        tally->misses = misses;
        tally->sink = sink;
      });
}

// Thread t Sets keys t*keys/threads, +1, ... wrapping around the key space: a sweep.
template <typename Impl>
RunStats RunSweepSets(const Workload& w, int threads, uint64_t ops, double seconds,
                      const Impl& impl) {
  return RunThreads(threads, seconds,
                    [&](int t, ThreadTally* tally, const std::atomic<bool>& stop) {
                      const uint64_t n = w.keys.size();
                      uint64_t k = static_cast<uint64_t>(t) * n / static_cast<uint64_t>(threads);
                      uint64_t failed = 0;
                      tally->ops = ForEachOp(ops, stop, [&](uint64_t) {
                        if (!impl.Set(w.keys[k], w.ValueFor(k))) ++failed;
                        if (++k == n) k = 0;
                      });
                      tally->misses = failed;
                    });
}

// Fill: thread t Sets its contiguous share of the keys, each key exactly once.
template <typename Impl>
RunStats RunFill(const Workload& w, int threads, const Impl& impl) {
  return RunThreads(threads, 0, [&](int t, ThreadTally* tally, const std::atomic<bool>&) {
    const uint64_t n = w.keys.size();
    const uint64_t begin = static_cast<uint64_t>(t) * n / static_cast<uint64_t>(threads);
    const uint64_t end = static_cast<uint64_t>(t + 1) * n / static_cast<uint64_t>(threads);
    uint64_t failed = 0;
    for (uint64_t k = begin; k < end; ++k) {
      if (!impl.Set(w.keys[k], w.ValueFor(k))) ++failed;
    }
    tally->ops = end - begin;
    tally->misses = failed;
  });
}

// ---------------------------------------------------------------------------------------
// Results

enum ImplId : int { kRingcache = 0, kUnorderedMap = 1, kTextbookLru = 2, kNumImpls = 3 };
constexpr std::array<const char*, kNumImpls> kImplNames = {"ringcache", "unordered_map",
                                                           "textbook_lru"};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

struct Cell {
  std::vector<double> ops_per_sec;
  std::vector<double> extra;
  std::vector<double> cpu_share;
  std::vector<double> ops_per_cpu_sec;  // Throughput per CPU-second the threads got.
  bool measured() const { return !ops_per_sec.empty(); }
  double Median() const { return ::Median(ops_per_sec); }
  // The fastest run: on a shared machine noise only slows runs down, so the best of N
  // estimates what the code can do (like timeit's minimum).
  double Best() const {
    return ops_per_sec.empty() ? 0 : *std::max_element(ops_per_sec.begin(), ops_per_sec.end());
  }
  double BestRunCpuShare() const {
    if (ops_per_sec.empty()) return 0;
    const auto best = std::max_element(ops_per_sec.begin(), ops_per_sec.end());
    return cpu_share[static_cast<size_t>(best - ops_per_sec.begin())];
  }
  // Half the range of the samples, as a fraction of the median.
  double Spread() const {
    if (ops_per_sec.size() < 2) return 0;
    const auto [lo, hi] = std::minmax_element(ops_per_sec.begin(), ops_per_sec.end());
    return (*hi - *lo) / 2 / Median();
  }
};

// T x (ops per CPU-second with T threads) / (ops per CPU-second with 1 thread): the
// scaling the run would show if every thread had a core to itself. It exposes contention
// (cache-line ping-pong, spinning) even on a busy machine, but flatters code whose
// threads sleep while blocked (a sleeping thread uses no CPU).
double CpuNormalizedScaling(const Cell& c, const Cell& one_thread, int threads) {
  const double base = ::Median(one_thread.ops_per_cpu_sec);
  return base > 0 ? threads * ::Median(c.ops_per_cpu_sec) / base : 0;
}

struct PhaseResult {
  std::string name;
  std::string extra_label;  // Header of the phase-specific column, empty if none.
  std::vector<int> threads;
  std::vector<std::array<Cell, kNumImpls>> cells;  // Parallel to threads.

  const Cell* Find(int thread_count, ImplId impl) const {
    for (size_t i = 0; i < threads.size(); ++i) {
      if (threads[i] == thread_count) return &cells[i][impl];
    }
    return nullptr;
  }
  double MedianOpsPerSec(int thread_count, ImplId impl) const {
    const Cell* c = Find(thread_count, impl);
    return c != nullptr && c->measured() ? c->Median() : 0;
  }
};

std::vector<PhaseResult> g_results;

const PhaseResult* FindResult(std::string_view name) {
  for (const PhaseResult& r : g_results) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

// Runs run_one(impl, threads) for every repeat, thread count and implementation in
// `impls`, rotating the implementation order every repeat (A/B/C, B/C/A, ...), and
// records the results under `name`. run_one returns a RunStats with ops == 0 when the
// implementation does not apply to that thread count.
template <typename RunOne>
PhaseResult& Measure(const Flags& flags, std::string name, std::string extra_label,
                     const std::vector<ImplId>& impls, const RunOne& run_one) {
  PhaseResult result;
  result.name = std::move(name);
  result.extra_label = std::move(extra_label);
  result.threads = flags.threads;
  result.cells.resize(flags.threads.size());
  for (int rep = 0; rep < flags.repeats; ++rep) {
    for (size_t ti = 0; ti < flags.threads.size(); ++ti) {
      for (size_t j = 0; j < impls.size(); ++j) {
        const ImplId impl = impls[(j + static_cast<size_t>(rep)) % impls.size()];
        const RunStats r = run_one(impl, flags.threads[ti]);
        if (r.ops == 0) continue;
        Cell& cell = result.cells[ti][impl];
        cell.ops_per_sec.push_back(r.OpsPerSec());
        if (r.extra >= 0) cell.extra.push_back(r.extra);
        cell.cpu_share.push_back(r.cpu_share);
        if (r.cpu_share > 0) {
          cell.ops_per_cpu_sec.push_back(r.OpsPerSec() / (r.cpu_share * flags.threads[ti]));
        }
      }
    }
  }
  g_results.push_back(std::move(result));
  return g_results.back();
}

void PrintPhase(const PhaseResult& r, const char* description) {
  std::printf("\n== %s: %s ==\n", r.name.c_str(), description);
  std::printf("%7s", "threads");
  for (int i = 0; i < kNumImpls; ++i) std::printf("  %15s Mops/s", kImplNames[i]);
  std::printf("  %8s  %8s  %15s", "rc/map", "rc/lru", "cpu% rc/map/lru");
  if (!r.extra_label.empty()) std::printf("  %s (rc | lru)", r.extra_label.c_str());
  std::printf("\n");
  for (size_t ti = 0; ti < r.threads.size(); ++ti) {
    std::printf("%7d", r.threads[ti]);
    for (int i = 0; i < kNumImpls; ++i) {
      const Cell& c = r.cells[ti][i];
      if (c.measured()) {
        std::printf("  %13.3f ±%3.0f%%", c.Median() / 1e6, c.Spread() * 100);
      } else {
        std::printf("  %20s", "n/a");
      }
    }
    const double rc = r.cells[ti][kRingcache].Median();
    for (const ImplId other : {kUnorderedMap, kTextbookLru}) {
      const Cell& c = r.cells[ti][other];
      if (c.measured() && r.cells[ti][kRingcache].measured()) {
        std::printf("  %7.2fx", rc / c.Median());
      } else {
        std::printf("  %8s", "-");
      }
    }
    std::string cpu;
    for (int i = 0; i < kNumImpls; ++i) {
      const Cell& c = r.cells[ti][i];
      if (i != 0) cpu += '/';
      cpu += c.measured() ? std::to_string(std::lround(::Median(c.cpu_share) * 100)) : "-";
    }
    std::printf("  %15s", cpu.c_str());
    if (!r.extra_label.empty()) {
      for (const ImplId impl : {kRingcache, kTextbookLru}) {
        const Cell& c = r.cells[ti][impl];
        if (c.extra.empty()) {
          std::printf("  %10s", "-");
        } else {
          std::printf("  %10.4g", ::Median(c.extra));
        }
      }
    }
    std::printf("\n");
  }
  const Cell* base[kNumImpls] = {};
  bool any_base = false;
  for (int i = 0; i < kNumImpls; ++i) {
    base[i] = r.Find(1, static_cast<ImplId>(i));
    any_base = any_base || (base[i] != nullptr && base[i]->measured());
  }
  if (any_base) {
    for (size_t ti = 0; ti < r.threads.size(); ++ti) {
      if (r.threads[ti] == 1) continue;
      std::printf("  scaling %d threads / 1 thread, wall clock:", r.threads[ti]);
      for (int i = 0; i < kNumImpls; ++i) {
        const Cell& c = r.cells[ti][i];
        if (base[i] != nullptr && base[i]->measured() && c.measured()) {
          std::printf("  %s %.2fx", kImplNames[i], c.Median() / base[i]->Median());
        }
      }
      std::printf("\n  scaling %d threads / 1 thread, best of %zu runs each:", r.threads[ti],
                  r.cells[ti][kRingcache].ops_per_sec.size());
      for (int i = 0; i < kNumImpls; ++i) {
        const Cell& c = r.cells[ti][i];
        if (base[i] != nullptr && base[i]->measured() && c.measured()) {
          std::printf("  %s %.2fx (cpu %.0f%%)", kImplNames[i], c.Best() / base[i]->Best(),
                      c.BestRunCpuShare() * 100);
        }
      }
      std::printf("\n  scaling %d threads / 1 thread, CPU-normalized:", r.threads[ti]);
      for (int i = 0; i < kNumImpls; ++i) {
        const Cell& c = r.cells[ti][i];
        if (base[i] != nullptr && base[i]->measured() && c.measured()) {
          std::printf("  %s %.2fx", kImplNames[i],
                      CpuNormalizedScaling(c, *base[i], r.threads[ti]));
        }
      }
      std::printf("\n");
    }
  }
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// Building caches

uint64_t AutoCapacityBytes(const Workload& w) {
  const uint64_t ws = w.WorkingSetBytes();
  return ws + ws / 4 + (uint64_t{4} << 20);
}

std::unique_ptr<ringcache::Cache> MakeCache(const Flags& flags, uint64_t capacity_bytes) {
  ringcache::CacheOptions options;
  options.capacity_bytes = capacity_bytes;
  options.shard_count = flags.shards;
  auto cache = ringcache::Cache::Create(options);
  if (!cache.ok()) {
    Fail("Cache::Create(capacity_bytes=%" PRIu64 "): %s", capacity_bytes,
         cache.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(cache).value();
}

uint64_t AllHitsCapacityBytes(const Flags& flags, const Workload& w) {
  return flags.capacity_mb > 0 ? flags.capacity_mb << 20 : AutoCapacityBytes(w);
}

void CheckAllHits(const char* phase, ImplId impl, int threads, const RunStats& r,
                  uint32_t value_size) {
  if (r.misses != 0) {
    Fail("%s: %s with %d thread(s) missed %" PRIu64 " of %" PRIu64
         " operations on filled keys (expected all hits)",
         phase, kImplNames[impl], threads, r.misses, r.ops);
  }
  if (r.sink != r.hits * value_size) {
    Fail("%s: %s returned %" PRIu64 " value bytes for %" PRIu64 " hits of %u bytes", phase,
         kImplNames[impl], r.sink, r.hits, value_size);
  }
}

// Every key must read back its own value.
void VerifyCacheContents(const char* when, const ringcache::Cache& cache, const Workload& w) {
  std::string value;
  uint64_t missing = 0;
  uint64_t wrong = 0;
  for (uint64_t k = 0; k < w.keys.size(); ++k) {
    if (!cache.Get(w.keys[k], &value).ok()) {
      ++missing;
    } else if (value != w.ValueFor(k)) {
      ++wrong;
    }
  }
  if (missing != 0 || wrong != 0) {
    Fail("%s: %" PRIu64 " keys missing and %" PRIu64 " with a wrong value out of %zu", when,
         missing, wrong, w.keys.size());
  }
}

// ---------------------------------------------------------------------------------------
// Phase: memory

uint64_t RssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size_pages = 0;
  unsigned long long resident_pages = 0;
  if (std::fscanf(f, "%llu %llu", &size_pages, &resident_pages) != 2) resident_pages = 0;
  std::fclose(f);
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Returns freed heap memory to the system so that RSS deltas measure live memory only.
void TrimHeap() { malloc_trim(0); }

struct MemoryFigures {
  bool measured = false;
  double rss_overhead[kNumImpls] = {};  // RSS bytes per entry beyond key + value.
  double rc_rss_overhead_at_once = 0;   // ringcache's, read right after the fill.
  uint64_t entry_overhead_bytes = 0;    // Cache::EntryOverheadBytes()
  double charged_per_item = 0;          // Stats().bytes_used / items
  uint64_t items = 0;
  uint32_t shard_count = 0;
};
MemoryFigures g_memory;

// Calls build_and_hold(measure): it builds a structure holding every key and calls
// measure() (one or more times) while holding it. Returns the RSS growth per entry beyond
// key + value at each call of measure().
template <typename Build>
std::vector<double> RssOverheadPerEntry(const Workload& w, const Build& build_and_hold) {
  TrimHeap();
  const uint64_t before = RssBytes();
  std::vector<double> overheads;
  build_and_hold([&] {
    TrimHeap();
    const double per_entry = (static_cast<double>(RssBytes()) - static_cast<double>(before)) /
                             static_cast<double>(w.keys.size());
    overheads.push_back(per_entry - (w.key_size + w.value_size));
  });
  TrimHeap();
  return overheads;
}

void PhaseMemory(const Flags& flags, const Workload& w) {
  const uint64_t kv = w.key_size + w.value_size;
  g_memory.measured = true;
  g_memory.entry_overhead_bytes = ringcache::Cache::EntryOverheadBytes();
  const std::vector<double> rc = RssOverheadPerEntry(w, [&](const auto& measure) {
    std::unique_ptr<ringcache::Cache> cache = MakeCache(flags, AllHitsCapacityBytes(flags, w));
    const RingcacheOps impl(cache.get());
    for (uint64_t k = 0; k < w.keys.size(); ++k) {
      if (!impl.Set(w.keys[k], w.ValueFor(k))) Fail("memory: Set of key %" PRIu64 " failed", k);
    }
    measure();
    // Tables replaced while the shards grew are retired, not freed at once: the janitor
    // frees them on its next ticks (epoch-based reclamation). Measure again after that.
    std::this_thread::sleep_for(3 * cache->options().janitor_interval +
                                std::chrono::milliseconds(50));
    measure();
    const ringcache::CacheStats s = cache->Stats();
    g_memory.items = s.items;
    g_memory.shard_count = cache->shard_count();
    g_memory.charged_per_item =
        s.items == 0 ? 0 : static_cast<double>(s.bytes_used) / static_cast<double>(s.items);
    if (s.items != w.keys.size() || s.evictions != 0) {
      Fail("memory: after filling %zu keys the cache holds %" PRIu64 " items (%" PRIu64
           " evictions): the budget is too small for the all-hits phases",
           w.keys.size(), s.items, s.evictions);
    }
  });
  g_memory.rc_rss_overhead_at_once = rc.front();
  g_memory.rss_overhead[kRingcache] = rc.back();
  g_memory.rss_overhead[kUnorderedMap] = RssOverheadPerEntry(w, [&](const auto& measure) {
                                           StringMap map;
                                           for (uint64_t k = 0; k < w.keys.size(); ++k)
                                             map.emplace(w.keys[k], w.ValueFor(k));
                                           measure();
                                         }).back();
  g_memory.rss_overhead[kTextbookLru] = RssOverheadPerEntry(w, [&](const auto& measure) {
                                          TextbookLru lru(UINT64_MAX, 0);
                                          for (uint64_t k = 0; k < w.keys.size(); ++k)
                                            lru.Set(w.keys[k], w.ValueFor(k));
                                          measure();
                                        }).back();

  std::printf("\n== memory: bytes per entry beyond key + value (%" PRIu64 " B), %zu entries ==\n",
              kv, w.keys.size());
  std::printf(
      "  measured as (RSS after fill - RSS before) / entries - (key + value), heap trimmed\n");
  for (int i = 0; i < kNumImpls; ++i) {
    std::printf("  %-14s %8.1f B/entry overhead (%.1f B/entry in total)\n", kImplNames[i],
                g_memory.rss_overhead[i], g_memory.rss_overhead[i] + static_cast<double>(kv));
  }
  std::printf(
      "  (ringcache: %.1f B right after the fill, %.1f B once the janitor had freed the "
      "tables retired while the shards grew)\n",
      g_memory.rc_rss_overhead_at_once, g_memory.rss_overhead[kRingcache]);
  std::printf("  ringcache charges: Cache::EntryOverheadBytes() = %" PRIu64
              " B; Stats().bytes_used / items = %.1f B = key + value + %.1f B; shards = %u\n",
              g_memory.entry_overhead_bytes, g_memory.charged_per_item,
              g_memory.charged_per_item - static_cast<double>(kv), g_memory.shard_count);
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// Phase: fill

void PhaseFill(const Flags& flags, const Workload& w) {
  const uint64_t capacity = AllHitsCapacityBytes(flags, w);
  PhaseResult& r = Measure(flags, "fill", "", {kRingcache, kUnorderedMap, kTextbookLru},
                           [&](ImplId impl, int threads) -> RunStats {
                             RunStats s;
                             if (impl == kRingcache) {
                               std::unique_ptr<ringcache::Cache> cache = MakeCache(flags, capacity);
                               s = RunFill(w, threads, RingcacheOps(cache.get()));
                               const ringcache::CacheStats cs = cache->Stats();
                               if (cs.items != w.keys.size()) {
                                 Fail("fill: ringcache holds %" PRIu64
                                      " of %zu keys after the fill (%" PRIu64 " evictions)",
                                      cs.items, w.keys.size(), cs.evictions);
                               }
                             } else if (impl == kUnorderedMap) {
                               if (threads != 1) return s;  // Not thread-safe for writers.
                               StringMap map;
                               s = RunFill(w, threads, MapOps(&map));
                             } else {
                               TextbookLru lru(capacity, ringcache::Cache::EntryOverheadBytes());
                               s = RunFill(w, threads, LruOps(&lru));
                             }
                             if (s.misses != 0)
                               Fail("fill: %s failed %" PRIu64 " Sets", kImplNames[impl], s.misses);
                             return s;
                           });
  PrintPhase(r,
             "Set every key once into an empty structure, keys split over the threads "
             "(unordered_map: 1 thread only)");
}

// ---------------------------------------------------------------------------------------
// Phases on the filled structures: read-hit-zipf, read-uniform, mixed-90-10

struct Filled {
  std::unique_ptr<ringcache::Cache> cache;
  StringMap map;
  std::unique_ptr<TextbookLru> lru;
};

void BuildFilled(const Flags& flags, const Workload& w, Filled* f) {
  const uint64_t capacity = AllHitsCapacityBytes(flags, w);
  f->cache = MakeCache(flags, capacity);
  f->lru = std::make_unique<TextbookLru>(capacity, ringcache::Cache::EntryOverheadBytes());
  const RingcacheOps rc(f->cache.get());
  for (uint64_t k = 0; k < w.keys.size(); ++k) {
    if (!rc.Set(w.keys[k], w.ValueFor(k)))
      Fail("setup: ringcache Set of key %" PRIu64 " failed", k);
    f->map.emplace(w.keys[k], w.ValueFor(k));
    f->lru->Set(w.keys[k], w.ValueFor(k));
  }
  const ringcache::CacheStats s = f->cache->Stats();
  if (s.items != w.keys.size() || s.evictions != 0) {
    Fail("setup: ringcache holds %" PRIu64 " of %zu keys (%" PRIu64
         " evictions) at capacity %" PRIu64 " B: too small for the all-hits phases",
         s.items, w.keys.size(), s.evictions, capacity);
  }
  if (f->lru->items() != w.keys.size()) Fail("setup: textbook_lru lost keys");
  VerifyCacheContents("setup", *f->cache, w);
  std::printf(
      "\n(filled for the read phases: %zu keys, ringcache capacity %.1f MiB, %u shards, "
      "%.1f MiB charged)\n",
      w.keys.size(), static_cast<double>(capacity) / (1 << 20), f->cache->shard_count(),
      static_cast<double>(s.bytes_used) / (1 << 20));
}

void PhaseReads(const Flags& flags, const Workload& w, Filled* f, const char* name,
                const Sequence& seq, const char* description) {
  const RingcacheOps rc(f->cache.get());
  const MapOps map(&f->map);
  const LruOps lru(f->lru.get());
  PhaseResult& r = Measure(
      flags, name, "", {kRingcache, kUnorderedMap, kTextbookLru}, [&](ImplId impl, int threads) {
        RunStats s = impl == kRingcache      ? RunGets(flags, w, seq, threads, rc)
                     : impl == kUnorderedMap ? RunGets(flags, w, seq, threads, map)
                                             : RunGets(flags, w, seq, threads, lru);
        CheckAllHits(name, impl, threads, s, w.value_size);
        return s;
      });
  PrintPhase(r, description);
}

void PhaseMixed(const Flags& flags, const Workload& w, Filled* f) {
  const RingcacheOps rc(f->cache.get());
  const LruOps lru(f->lru.get());
  PhaseResult& r =
      Measure(flags, "mixed-90-10", "", {kRingcache, kTextbookLru}, [&](ImplId impl, int threads) {
        RunStats s =
            impl == kRingcache ? RunMixed(flags, w, threads, rc) : RunMixed(flags, w, threads, lru);
        CheckAllHits("mixed-90-10", impl, threads, s, w.value_size);
        return s;
      });
  PrintPhase(r,
             "90% Get / 10% Set (same value back), Zipf, all Gets hit (unordered_map: "
             "read-only, n/a)");
  VerifyCacheContents("after mixed-90-10", *f->cache, w);
}

// ---------------------------------------------------------------------------------------
// Phase: set-with-eviction

void PhaseEviction(const Flags& flags, const Workload& w) {
  const uint64_t capacity = w.WorkingSetBytes() / 4;
  uint32_t shard_count = 0;
  PhaseResult& r = Measure(
      flags, "set-with-eviction", "evictions/set", {kRingcache, kTextbookLru},
      [&](ImplId impl, int threads) {
        const uint64_t warm = w.keys.size();
        RunStats s;
        if (impl == kRingcache) {
          std::unique_ptr<ringcache::Cache> cache = MakeCache(flags, capacity);
          shard_count = cache->shard_count();
          const RingcacheOps ops(cache.get());
          (void)RunSweepSets(w, 1, warm, 0, ops);  // Untimed: fill the budget.
          const uint64_t before = cache->Stats().evictions;
          s = RunSweepSets(w, threads, OpsBound(flags), flags.seconds, ops);
          s.extra =
              static_cast<double>(cache->Stats().evictions - before) / static_cast<double>(s.ops);
        } else {
          TextbookLru lru(capacity, ringcache::Cache::EntryOverheadBytes());
          const LruOps ops(&lru);
          (void)RunSweepSets(w, 1, warm, 0, ops);
          const uint64_t before = lru.evictions();
          s = RunSweepSets(w, threads, OpsBound(flags), flags.seconds, ops);
          s.extra = static_cast<double>(lru.evictions() - before) / static_cast<double>(s.ops);
        }
        if (s.misses != 0)
          Fail("set-with-eviction: %s failed %" PRIu64 " Sets", kImplNames[impl], s.misses);
        return s;
      });
  char description[256];
  std::snprintf(description, sizeof(description),
                "Set sweeping all keys, budget = working set / 4 = %.1f MiB (%u shards): "
                "every Set evicts",
                static_cast<double>(capacity) / (1 << 20), shard_count);
  PrintPhase(r, description);
}

// ---------------------------------------------------------------------------------------
// Phase: ttl-churn

void PhaseTtlChurn(const Flags& flags, const Workload& w) {
  const uint64_t capacity = AllHitsCapacityBytes(flags, w);
  PhaseResult& r =
      Measure(flags, "ttl-churn", "expirations/s", {kRingcache}, [&](ImplId, int threads) {
        std::unique_ptr<ringcache::Cache> cache =
            MakeCache(flags, capacity);  // Real clock, janitor on.
        ringcache::SetOptions options;
        options.ttl_ms = flags.ttl_ms;
        struct TtlOps {
          ringcache::Cache* cache;
          const ringcache::SetOptions* options;
          bool Set(const std::string& key, std::string_view value) const {
            return cache->Set(key, value, *options).ok();
          }
        };
        const TtlOps ops{cache.get(), &options};
        const ringcache::CacheStats before = cache->Stats();
        RunStats s = RunSweepSets(w, threads, OpsBound(flags), flags.seconds, ops);
        const ringcache::CacheStats after = cache->Stats();
        s.extra = static_cast<double>(after.expirations - before.expirations) / s.seconds;
        if (s.misses != 0) Fail("ttl-churn: %" PRIu64 " Sets failed", s.misses);

        // Every entry has expired once its TTL has passed: none may be returned.
        std::this_thread::sleep_for(std::chrono::milliseconds(flags.ttl_ms + 20));
        std::string value;
        uint64_t returned = 0;
        const uint64_t step = std::max<uint64_t>(1, w.keys.size() / 2000);
        for (uint64_t k = 0; k < w.keys.size(); k += step) {
          if (cache->Get(w.keys[k], &value).ok()) ++returned;
        }
        if (returned != 0) {
          Fail("ttl-churn: %" PRIu64 " entries were returned after their %" PRIu64 " ms TTL",
               returned, flags.ttl_ms);
        }
        return s;
      });
  char description[256];
  std::snprintf(description, sizeof(description),
                "Set sweeping all keys with ttl %" PRIu64
                " ms (system clock, janitor on): entries expire and are replaced; ringcache only",
                flags.ttl_ms);
  PrintPhase(r, description);
}

// ---------------------------------------------------------------------------------------
// Phase: hit-ratio

struct HitRatioRow {
  double budget_pct = 0;
  uint64_t entries_fit = 0;
  uint32_t shard_count = 0;
  double hit_ratio[kNumImpls] = {};
  double ops_per_sec[kNumImpls] = {};
};
std::vector<HitRatioRow> g_hit_ratio;

// Look-aside replay of the whole Zipf trace on one thread: Get, and Set on a miss. The
// hit ratio counts the second half of the trace (the first half warms the cache).
template <typename Impl>
void ReplayTrace(const Workload& w, ImplId id, const Impl& impl, double* hit_ratio,
                 double* ops_per_sec) {
  const std::vector<uint32_t>& trace = w.zipf.index;
  const size_t warm = trace.size() / 2;
  const size_t ks = w.key_size;
  std::string key;
  std::string value;
  uint64_t hits = 0;
  uint64_t sink = 0;
  const SteadyClock::time_point start = SteadyClock::now();
  for (size_t i = 0; i < trace.size(); ++i) {
    key.assign(&w.zipf.key_bytes[i * ks], ks);
    if (impl.Get(key, &value)) {
      sink += value.size();
      if (i >= warm) ++hits;
    } else if (!impl.Set(key, w.ValueFor(trace[i]))) {
      Fail("hit-ratio: %s failed a Set", kImplNames[id]);
    }
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  g_checksum += sink;
  *hit_ratio = static_cast<double>(hits) / static_cast<double>(trace.size() - warm);
  *ops_per_sec = static_cast<double>(trace.size()) / seconds;
}

void PhaseHitRatio(const Flags& flags, const Workload& w) {
  const uint64_t charge = w.key_size + w.value_size + ringcache::Cache::EntryOverheadBytes();
  std::printf(
      "\n== hit-ratio: look-aside replay of the Zipf %.2f trace (%zu accesses, 1 thread; "
      "Get, Set on miss), budget < working set ==\n",
      flags.zipf, w.zipf.index.size());
  std::printf("  working set %.1f MiB (%zu keys x %" PRIu64
              " B charged); exact LRU charged the same per entry; hit ratio over the second half\n",
              static_cast<double>(w.WorkingSetBytes()) / (1 << 20), w.keys.size(), charge);
  std::printf("  %8s  %10s  %6s  %14s  %14s  %12s  %12s  %12s\n", "budget", "entries", "shards",
              "ringcache hit", "exact LRU hit", "diff (pp)", "rc Mops/s", "lru Mops/s");
  for (const double pct : flags.hit_budgets_pct) {
    HitRatioRow row;
    row.budget_pct = pct;
    const auto capacity =
        static_cast<uint64_t>(static_cast<double>(w.WorkingSetBytes()) * pct / 100);
    row.entries_fit = capacity / charge;
    {
      std::unique_ptr<ringcache::Cache> cache = MakeCache(flags, capacity);
      row.shard_count = cache->shard_count();
      ReplayTrace(w, kRingcache, RingcacheOps(cache.get()), &row.hit_ratio[kRingcache],
                  &row.ops_per_sec[kRingcache]);
    }
    {
      TextbookLru lru(capacity, ringcache::Cache::EntryOverheadBytes());
      ReplayTrace(w, kTextbookLru, LruOps(&lru), &row.hit_ratio[kTextbookLru],
                  &row.ops_per_sec[kTextbookLru]);
    }
    std::printf("  %7.1f%%  %10" PRIu64 "  %6u  %14.4f  %14.4f  %+12.2f  %12.3f  %12.3f\n", pct,
                row.entries_fit, row.shard_count, row.hit_ratio[kRingcache],
                row.hit_ratio[kTextbookLru],
                (row.hit_ratio[kRingcache] - row.hit_ratio[kTextbookLru]) * 100,
                row.ops_per_sec[kRingcache] / 1e6, row.ops_per_sec[kTextbookLru] / 1e6);
    std::fflush(stdout);
    g_hit_ratio.push_back(row);
  }
}

// ---------------------------------------------------------------------------------------
// Targets (docs/benchmarks.md): printed with PASS/FAIL, never asserted.

const char* PassFail(bool pass) { return pass ? "PASS" : "FAIL"; }

void PrintTargets(const Flags& flags, const Workload& w) {
  std::printf("\n== Targets (16 B keys, 32 B values, 1M keys, Zipf 0.99, all hits) ==\n");
  const bool target_config = flags.key_size == 16 && flags.value_size == 32 &&
                             flags.keys == 1'000'000 && flags.zipf == 0.99;
  if (!target_config) {
    std::printf(
        "  NOTE: this run's configuration differs from the targets' (keys=%zu, "
        "key-size=%u, value-size=%u, zipf=%.2f): figures are indicative only\n",
        w.keys.size(), flags.key_size, flags.value_size, flags.zipf);
  }
  const PhaseResult* reads = FindResult("read-hit-zipf");
  if (reads == nullptr) {
    std::printf("  Get targets: not measured (phase read-hit-zipf not run)\n");
  } else {
    const double rc1 = reads->MedianOpsPerSec(1, kRingcache);
    const double map1 = reads->MedianOpsPerSec(1, kUnorderedMap);
    const double lru1 = reads->MedianOpsPerSec(1, kTextbookLru);
    if (rc1 > 0 && map1 > 0) {
      std::printf(
          "  Get, 1 thread: ringcache %.2f M/s / unordered_map find %.2f M/s = %.2fx "
          "(target >= 1.0x) %s\n",
          rc1 / 1e6, map1 / 1e6, rc1 / map1, PassFail(rc1 / map1 >= 1.0));
      const double best1 =
          reads->Find(1, kRingcache)->Best() / reads->Find(1, kUnorderedMap)->Best();
      std::printf("    best of %zu runs each: %.2fx %s\n",
                  reads->Find(1, kRingcache)->ops_per_sec.size(), best1, PassFail(best1 >= 1.0));
    } else {
      std::printf("  Get, 1 thread: not measured (run with --threads including 1)\n");
    }
    const double rc2 = reads->MedianOpsPerSec(2, kRingcache);
    if (rc1 > 0 && rc2 > 0) {
      const double map2 = reads->MedianOpsPerSec(2, kUnorderedMap);
      const double lru2 = reads->MedianOpsPerSec(2, kTextbookLru);
      std::printf(
          "  Get, 2 threads / 1 thread: ringcache %.2fx (target >= 1.7x) %s; context: "
          "unordered_map %.2fx, textbook_lru %.2fx\n",
          rc2 / rc1, PassFail(rc2 / rc1 >= 1.7), map2 / map1, lru2 / lru1);
      const Cell* c1 = reads->Find(1, kRingcache);
      const Cell* c2 = reads->Find(2, kRingcache);
      const double best = c2->Best() / c1->Best();
      std::printf(
          "    best of %zu runs: ringcache %.2fx (target >= 1.7x) %s, its best 2-thread run got "
          "%.0f%% of two cores; unordered_map %.2fx, textbook_lru %.2fx\n",
          c2->ops_per_sec.size(), best, PassFail(best >= 1.7), c2->BestRunCpuShare() * 100,
          reads->Find(2, kUnorderedMap)->Best() / reads->Find(1, kUnorderedMap)->Best(),
          reads->Find(2, kTextbookLru)->Best() / reads->Find(1, kTextbookLru)->Best());
      const double cpu2 = ::Median(c2->cpu_share);
      std::printf(
          "    the 2-thread runs got %.0f%% of two cores; CPU-normalized 2/1 scaling (as if "
          "both cores were free): ringcache %.2fx, unordered_map %.2fx, textbook_lru %.2fx%s\n",
          cpu2 * 100, CpuNormalizedScaling(*c2, *c1, 2),
          CpuNormalizedScaling(*reads->Find(2, kUnorderedMap), *reads->Find(1, kUnorderedMap), 2),
          CpuNormalizedScaling(*reads->Find(2, kTextbookLru), *reads->Find(1, kTextbookLru), 2),
          cpu2 < 0.9 ? "\n    NOTE: the machine was busy: the wall-clock scaling understates "
                       "what two free cores give"
                     : "");
    } else {
      std::printf("  Get, 2 threads / 1 thread: not measured (run with --threads=1,2)\n");
    }
  }
  if (!g_memory.measured) {
    std::printf("  Per-entry overhead: not measured (phase memory not run)\n");
  } else {
    const double rss = g_memory.rss_overhead[kRingcache];
    std::printf(
        "  Per-entry overhead beyond key + value: %.1f B measured by RSS (target <= 48 B) "
        "%s; charged by the budget: EntryOverheadBytes() = %" PRIu64
        " B, Stats bytes_used/items - key - value = %.1f B\n",
        rss, PassFail(rss <= 48.0), g_memory.entry_overhead_bytes,
        g_memory.charged_per_item - (w.key_size + w.value_size));
    if (rss > static_cast<double>(g_memory.entry_overhead_bytes) + 2.0) {
      std::printf(
          "  NOTE: the RSS-measured overhead exceeds what the budget charges by %.1f B "
          "per entry: the budget under-counts real memory\n",
          rss - static_cast<double>(g_memory.entry_overhead_bytes));
    }
  }
  if (g_hit_ratio.empty()) {
    std::printf("  Hit ratio vs exact LRU: not measured (phase hit-ratio not run)\n");
  } else {
    for (const HitRatioRow& row : g_hit_ratio) {
      std::printf(
          "  Hit ratio at %.0f%% of the working set: ringcache (CLOCK, %u shards) %.4f, "
          "exact LRU %.4f, difference %+.2f pp\n",
          row.budget_pct, row.shard_count, row.hit_ratio[kRingcache], row.hit_ratio[kTextbookLru],
          (row.hit_ratio[kRingcache] - row.hit_ratio[kTextbookLru]) * 100);
    }
  }
}

std::string LoadAverage() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return "?";
  char buf[128] = {};
  if (std::fgets(buf, sizeof(buf), f) == nullptr) buf[0] = '\0';
  std::fclose(f);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string JoinThreads(const std::vector<int>& threads) {
  std::string s;
  for (const int t : threads) {
    if (!s.empty()) s += ',';
    s += std::to_string(t);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  bool help = false;
  if (!ParseFlags(argc, argv, &flags, &help)) return 2;
  if (help) {
    PrintHelp();
    return 0;
  }

  const SteadyClock::time_point t0 = SteadyClock::now();
  std::printf("cache_bench: keys=%" PRIu64 " key-size=%u value-size=%u ops/thread=%" PRIu64
              "%s threads=%s zipf=%.2f repeats=%d%s\n",
              flags.keys, flags.key_size, flags.value_size, flags.ops,
              flags.seconds > 0 ? (" seconds=" + std::to_string(flags.seconds)).c_str() : "",
              JoinThreads(flags.threads).c_str(), flags.zipf, flags.repeats,
              flags.smoke ? " (smoke)" : "");
  std::printf("machine: %u hardware threads; load average at start: %s\n",
              std::thread::hardware_concurrency(), LoadAverage().c_str());
#ifndef NDEBUG
  std::printf("WARNING: built without NDEBUG (not a Release build): figures are not meaningful\n");
#endif

  Workload w;
  if (!BuildWorkload(flags, &w)) return 2;
  const auto hottest =
      static_cast<uint64_t>(std::count(w.zipf.index.begin(), w.zipf.index.end(), w.hottest_key));
  std::printf("workload: %zu keys, sequences of %" PRIu64
              " per thread precomputed in %.2f s; hottest key share %.4f (Zipf expects %.4f); "
              "Cache::EntryOverheadBytes() = %" PRIu64 " B\n",
              w.keys.size(), w.slice_len,
              std::chrono::duration<double>(SteadyClock::now() - t0).count(),
              static_cast<double>(hottest) / static_cast<double>(w.zipf.index.size()),
              w.hottest_expected_share, ringcache::Cache::EntryOverheadBytes());
  std::fflush(stdout);

  if (flags.HasPhase("memory")) PhaseMemory(flags, w);
  if (flags.HasPhase("fill")) PhaseFill(flags, w);
  if (flags.HasPhase("read-hit-zipf") || flags.HasPhase("read-uniform") ||
      flags.HasPhase("mixed-90-10")) {
    Filled filled;
    BuildFilled(flags, w, &filled);
    if (flags.HasPhase("read-hit-zipf")) {
      char description[160];
      std::snprintf(description, sizeof(description),
                    "Get, Zipf %.2f over the filled keys, all hits", flags.zipf);
      PhaseReads(flags, w, &filled, "read-hit-zipf", w.zipf, description);
    }
    if (flags.HasPhase("read-uniform")) {
      PhaseReads(flags, w, &filled, "read-uniform", w.uniform,
                 "Get, uniform over the filled keys, all hits");
    }
    if (flags.HasPhase("mixed-90-10")) PhaseMixed(flags, w, &filled);
  }
  if (flags.HasPhase("set-with-eviction")) PhaseEviction(flags, w);
  if (flags.HasPhase("ttl-churn")) PhaseTtlChurn(flags, w);
  if (flags.HasPhase("hit-ratio")) PhaseHitRatio(flags, w);

  PrintTargets(flags, w);
  std::printf("\nchecksum %" PRIu64 "; load average at end: %s; total %.1f s\n", g_checksum,
              LoadAverage().c_str(),
              std::chrono::duration<double>(SteadyClock::now() - t0).count());
  if (g_functional_errors != 0) {
    std::fprintf(stderr, "cache_bench: %d functional error(s)\n", g_functional_errors);
    return 1;
  }
  return 0;
}

// ringcache_loadgen: load generator for ringcache.v1.Cache (ringcached, or the empty-RPC
// floor ringcache_empty_server), on gRPC's async client API.
//
// Modes:
//   unary     Get / Set rpcs, --inflight calls outstanding in total
//   batch     MultiGet / MultiSet rpcs of --batch keys each; --inflight counts operations,
//             so --inflight / --batch calls are outstanding
//   pipeline  --streams Pipeline streams, messages of --batch operations, --inflight
//             operations outstanding in total (split evenly over the streams)
//   fill      MultiSet distinct keys 0, 1, 2, ... until the node reports evictions, then
//             --fill-extra more (as a fraction of the keys written until then); for
//             memory measurements. Reports the node's Stats.
//
// Keys are "key:%012u" (16 bytes, the shape of redis-benchmark -r keys), uniform or Zipf
// over --keys. Values are --value-size bytes derived from the key index, so with
// --prefill (every key Set before the run) or --verify (prefilled by an earlier run) each
// Get hit is checked byte for byte and a miss is reported.
//
// Threads: --threads worker threads, each owning one CompletionQueue and the calls or
// streams assigned to it (round robin), so per-call state needs no lock; results are
// merged after the run. Calls are spread round robin over --channels channels, each its
// own HTTP/2 connection (a local subchannel pool per channel).
//
// Timing: calls are issued from the start; what completes in the --duration-s window after
// --warmup-s counts (operations that failed count as errors, not in ops/s). Latency is per rpc for
// unary, per MultiGet/MultiSet call for batch, and per request message (write to its last result)
// for pipeline. Every loop is bounded: issuing stops at the end of the window, outstanding calls
// have --deadline-ms, streams the window plus --deadline-ms, and anything still alive a second
// later is cancelled.
//
// Output: a human-readable report, then one line "RESULT key=value ..." for scripts.
// Exit status: 0 ok; 1 if an rpc or operation failed, a value was wrong, (with --prefill
// or --verify) a Get missed, or nothing completed; 2 on bad flags.

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ringcache/proto/arena_message.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "ringcache/v1/cache.pb.h"

namespace {

namespace pb = ringcache::v1;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using ringcache::internal::ArenaMessage;

// Arena blocks of the per-call messages: one holds a 16-operation message of small values,
// so that building and parsing them costs no allocation per field, as in ringcached.
constexpr size_t kArenaBlockBytes = 4096;

// ---------------------------------------------------------------------------------------
// Flags

enum class Mode { kUnary, kBatch, kPipeline, kFill };

struct Flags {
  std::string addr = "127.0.0.1:7700";  // --addr
  Mode mode = Mode::kUnary;             // --mode
  int get_pct = 100;                    // --ops / --mix: percent of Gets, the rest Sets
  uint64_t keys = 100'000;              // --keys
  double zipf = 0;                      // --key-dist zipf (--zipf S); 0 = uniform
  uint32_t value_size = 32;             // --value-size
  uint32_t value_size_max = 0;          // --value-size-max: 0 = every value --value-size
  uint32_t inflight = 64;               // --inflight: outstanding operations in total
  uint32_t batch = 16;                  // --batch: operations per MultiGet/Pipeline message
  uint32_t streams = 0;                 // --streams: 0 = one per channel
  double duration_s = 5;                // --duration-s
  double warmup_s = 1;                  // --warmup-s
  uint32_t channels = 0;                // --channels: 0 = auto
  uint32_t threads = 1;                 // --threads: client completion-queue threads
  std::string tls_ca_file;              // --tls-ca-file: TLS, this CA verifies the node
  std::string token_file;               // --token-file: a client token on every call
  bool prefill = false;                 // --prefill
  bool verify = false;                  // --verify (implied by --prefill)
  uint32_t deadline_ms = 5000;          // --deadline-ms
  double fill_extra = 0.25;             // --fill-extra (fill mode)
  uint64_t seed = 1;                    // --seed
};

void PrintHelp() {
  std::printf(
      "ringcache_loadgen: async gRPC load generator for ringcache.v1.Cache\n"
      "\n"
      "Usage: ringcache_loadgen [--flag=value | --flag value]...\n"
      "  --addr HOST:PORT      server (default 127.0.0.1:7700)\n"
      "  --tls-ca-file PATH    connect with TLS; PATH's CAs verify the server\n"
      "  --token-file PATH     send this client token on every call\n"
      "  --mode MODE           unary | batch (MultiGet/MultiSet) | pipeline (Pipeline stream)\n"
      "                        | fill (MultiSet new keys until evictions + --fill-extra)\n"
      "                        (default unary)\n"
      "  --ops LIST            get | set | get,set (an even mix) (default get)\n"
      "  --mix get=P,set=Q     percentages of Gets and Sets, e.g. get=90,set=10\n"
      "  --keys N              distinct keys (default 100000; k/M suffixes accepted)\n"
      "  --key-dist D          uniform | zipf (default uniform)\n"
      "  --zipf S              Zipf exponent with --key-dist zipf (default 0.99)\n"
      "  --value-size N        value bytes of Sets and of --prefill (default 32)\n"
      "  --value-size-max N    values of --value-size to N bytes instead, each key's size\n"
      "                        fixed (spread evenly over the range), so --verify works\n"
      "  --inflight N          outstanding operations in total (default 64): unary = calls;\n"
      "                        batch = calls x --batch; pipeline = ops over all streams\n"
      "  --batch N             operations per MultiGet/MultiSet call or Pipeline message\n"
      "                        (default 16; fill mode uses at least 1000)\n"
      "  --streams N           Pipeline streams (default: one per channel)\n"
      "  --duration-s S        measured seconds (default 5); bounds fill mode too\n"
      "  --warmup-s S          seconds of load before measuring (default 1)\n"
      "  --channels N          gRPC channels = HTTP/2 connections (default: inflight/32\n"
      "                        calls' worth, 1..8)\n"
      "  --threads N           client completion-queue threads (default 1)\n"
      "  --prefill             Set every key first (MultiSet) so Gets hit; then every Get\n"
      "                        is checked and a miss or a wrong value is an error\n"
      "  --verify              check Gets like --prefill, for keys prefilled by an earlier\n"
      "                        run (same --keys and --value-size)\n"
      "  --deadline-ms N       deadline of each call (default 5000)\n"
      "  --fill-extra F        fill mode: keep writing F x the keys written before the\n"
      "                        first eviction (default 0.25)\n"
      "  --seed N              random seed (default 1)\n"
      "  --help                this text\n");
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  const char last = s.back();
  if (last == 'k' || last == 'K') mult = 1'000;
  if (last == 'm' || last == 'M') mult = 1'000'000;
  if (mult != 1) s.remove_suffix(1);
  if (s.empty() || s.size() > 15) return false;
  uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v * mult;
  return true;
}

bool ParseU32(std::string_view s, uint32_t* out) {
  uint64_t v = 0;
  if (!ParseU64(s, &v) || v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v >= 0) || v > 1e9) return false;
  *out = v;
  return true;
}

// "get=90,set=10" (either may be absent; they must add up to 100).
bool ParseMix(const std::string& s, int* get_pct) {
  uint64_t get = 0, set = 0;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(pos, comma - pos);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return false;
    uint64_t v = 0;
    if (!ParseU64(std::string_view(item).substr(eq + 1), &v)) return false;
    const std::string name = item.substr(0, eq);
    if (name == "get") {
      get = v;
    } else if (name == "set") {
      set = v;
    } else {
      return false;
    }
    pos = comma + 1;
  }
  if (get + set != 100) return false;
  *get_pct = static_cast<int>(get);
  return true;
}

// Returns 0 to run, 1 after --help, 2 on a bad flag (message printed).
int ParseFlags(int argc, char** argv, Flags* f) {
  bool zipf_dist = false;
  double zipf_s = 0.99;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      PrintHelp();
      return 1;
    }
    if (a == "--prefill") {
      f->prefill = true;
      f->verify = true;
      continue;
    }
    if (a == "--verify") {
      f->verify = true;
      continue;
    }
    std::string v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a.resize(eq);
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      std::fprintf(stderr, "ringcache_loadgen: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    bool ok = true;
    if (a == "--addr") {
      f->addr = v;
    } else if (a == "--mode") {
      if (v == "unary") {
        f->mode = Mode::kUnary;
      } else if (v == "batch") {
        f->mode = Mode::kBatch;
      } else if (v == "pipeline") {
        f->mode = Mode::kPipeline;
      } else if (v == "fill") {
        f->mode = Mode::kFill;
      } else {
        ok = false;
      }
    } else if (a == "--ops") {
      if (v == "get") {
        f->get_pct = 100;
      } else if (v == "set") {
        f->get_pct = 0;
      } else if (v == "get,set" || v == "set,get") {
        f->get_pct = 50;
      } else {
        ok = false;
      }
    } else if (a == "--mix") {
      ok = ParseMix(v, &f->get_pct);
    } else if (a == "--keys") {
      ok = ParseU64(v, &f->keys) && f->keys >= 1 && f->keys <= UINT32_MAX;
    } else if (a == "--key-dist") {
      ok = v == "uniform" || v == "zipf";
      zipf_dist = v == "zipf";
    } else if (a == "--zipf") {
      ok = ParseDouble(v, &zipf_s) && zipf_s > 0 && zipf_s < 10;
    } else if (a == "--value-size") {
      ok = ParseU32(v, &f->value_size) && f->value_size <= (64u << 20);
    } else if (a == "--value-size-max") {
      ok = ParseU32(v, &f->value_size_max) && f->value_size_max <= (64u << 20);
    } else if (a == "--inflight") {
      ok = ParseU32(v, &f->inflight) && f->inflight >= 1 && f->inflight <= 1'000'000;
    } else if (a == "--batch") {
      ok = ParseU32(v, &f->batch) && f->batch >= 1 && f->batch <= 100'000;
    } else if (a == "--streams") {
      ok = ParseU32(v, &f->streams) && f->streams <= 100'000;
    } else if (a == "--duration-s") {
      ok = ParseDouble(v, &f->duration_s) && f->duration_s > 0;
    } else if (a == "--warmup-s") {
      ok = ParseDouble(v, &f->warmup_s);
    } else if (a == "--channels") {
      ok = ParseU32(v, &f->channels) && f->channels <= 1024;
    } else if (a == "--tls-ca-file") {
      f->tls_ca_file = v;
    } else if (a == "--token-file") {
      f->token_file = v;
    } else if (a == "--threads") {
      ok = ParseU32(v, &f->threads) && f->threads >= 1 && f->threads <= 256;
    } else if (a == "--deadline-ms") {
      ok = ParseU32(v, &f->deadline_ms) && f->deadline_ms >= 1;
    } else if (a == "--fill-extra") {
      ok = ParseDouble(v, &f->fill_extra);
    } else if (a == "--seed") {
      ok = ParseU64(v, &f->seed);
    } else {
      std::fprintf(stderr, "ringcache_loadgen: unknown flag %s (see --help)\n", a.c_str());
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "ringcache_loadgen: bad value '%s' for %s\n", v.c_str(), a.c_str());
      return 2;
    }
  }
  if (zipf_dist) f->zipf = zipf_s;
  if (f->mode == Mode::kFill) f->batch = std::max<uint32_t>(f->batch, 1000);
  if (f->channels == 0) f->channels = std::clamp<uint32_t>(f->inflight / 32, 1, 8);
  if (f->streams == 0) f->streams = f->channels;
  return 0;
}

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kUnary:
      return "unary";
    case Mode::kBatch:
      return "batch";
    case Mode::kPipeline:
      return "pipeline";
    case Mode::kFill:
      return "fill";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// Keys, values, random numbers

constexpr size_t kKeySize = 16;

// "key:%012u" into out[kKeySize].
void FormatKey(uint32_t index, char* out) {
  std::memcpy(out, "key:", 4);
  uint64_t v = index;
  for (int i = 15; i >= 4; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

void SetKey(uint32_t index, std::string* key) {
  key->resize(kKeySize);
  FormatKey(index, key->data());
}

// The value of key `index`: its 12 decimal digits, then one letter repeated.
// The value bytes of key `index`: --value-size, or with --value-size-max a size in
// [value_size, value_size_max] that depends only on the key.
uint32_t ValueSize(const Flags& f, uint32_t index) {
  if (f.value_size_max <= f.value_size) return f.value_size;
  uint64_t h = uint64_t{index} * 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  return f.value_size + static_cast<uint32_t>(h % (f.value_size_max - f.value_size + 1));
}

void MakeValue(uint32_t index, uint32_t size, std::string* out) {
  out->resize(size);
  char digits[kKeySize];
  FormatKey(index, digits);
  const size_t n = std::min<size_t>(size, 12);
  std::memcpy(out->data(), digits + 4, n);
  if (size > n) std::memset(out->data() + n, 'a' + static_cast<int>(index % 26), size - n);
}

__extension__ using Uint128 = unsigned __int128;

// How the channels reach the node (--tls-ca-file, --token-file); set by main.
// The token goes on each call's context, not through an interceptor, so that the client
// spends no more per call than a hand-written client would.
struct ChannelSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  std::string authorization;  // "Bearer <token>", or empty.
};
ChannelSecurity g_security;

void Authorize(grpc::ClientContext* ctx) {
  if (!g_security.authorization.empty())
    ctx->AddMetadata("authorization", g_security.authorization);
}

// The content of `path`, without trailing whitespace; false if it cannot be read.
bool ReadTrimmed(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  std::fclose(f);
  while (!out->empty() && std::isspace(static_cast<unsigned char>(out->back()))) out->pop_back();
  return true;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}
  uint64_t Next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t Below(uint64_t n) {
    return static_cast<uint32_t>((static_cast<Uint128>(Next()) * n) >> 64);
  }

 private:
  uint64_t s_;
};

// Key indices: uniform, or Zipf through a precomputed table of samples whose ranks are
// scattered over the key space (rank r -> r * prime mod keys, a bijection).
class KeyChooser {
 public:
  KeyChooser(uint64_t keys, double zipf, uint64_t seed) : keys_(keys) {
    if (zipf <= 0) return;
    std::vector<double> cdf(keys);
    double sum = 0;
    for (uint64_t i = 0; i < keys; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), zipf);
      cdf[i] = sum;
    }
    Rng rng(seed ^ 0x5EEDull);
    table_.resize(kTableSize);
    for (uint32_t& t : table_) {
      const double u = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53 * sum;
      const uint64_t rank =
          static_cast<uint64_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      t = static_cast<uint32_t>((std::min(rank, keys - 1) * kScatterPrime) % keys);
    }
  }

  // `pos` is the caller's cursor into the Zipf table.
  uint32_t Next(Rng* rng, uint64_t* pos) const {
    if (table_.empty()) return rng->Below(keys_);
    return table_[(*pos)++ & (kTableSize - 1)];
  }

 private:
  static constexpr size_t kTableSize = size_t{1} << 20;
  static constexpr uint64_t kScatterPrime = 4294967291ull;  // largest prime < 2^32
  uint64_t keys_;
  std::vector<uint32_t> table_;  // empty = uniform
};

// ---------------------------------------------------------------------------------------
// Results

// Log-linear latency histogram in nanoseconds, 64 sub-buckets per power of two (~1.6%).
class Histogram {
 public:
  void Add(uint64_t ns) {
    ++counts_[Index(ns)];
    ++count_;
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
  }
  uint64_t count() const { return count_; }
  // The value at quantile q (0..1), in ns: the middle of its bucket. 0 when empty.
  double Quantile(double q) const {
    if (count_ == 0) return 0;
    const uint64_t target = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= target) return (Lower(i) + Lower(i + 1)) / 2.0;
    }
    return Lower(kBuckets);
  }

 private:
  static constexpr size_t kBuckets = 58 * 64 + 128;
  static size_t Index(uint64_t v) {
    if (v < 128) return v;
    const int g = 63 - __builtin_clzll(v) - 6;
    return static_cast<size_t>(g) * 64 + (v >> g);
  }
  static double Lower(size_t i) {
    if (i < 128) return static_cast<double>(i);
    const size_t g = i / 64 - 1;
    return std::ldexp(static_cast<double>(i - g * 64), static_cast<int>(g));
  }
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
};

constexpr int kCodes = 17;  // canonical gRPC codes 0..16

// The canonical name of a gRPC status code (ringcache's StatusCode numbering is gRPC's).
// StatusCodeName returns views of string literals, so .data() is NUL-terminated for printf.
const char* CodeName(int code) {
  return code >= 0 && code < kCodes
             ? ringcache::StatusCodeName(static_cast<ringcache::StatusCode>(code)).data()
             : "CODE?";
}

struct Stats {
  uint64_t gets = 0, sets = 0;     // operations completed in the window
  uint64_t messages = 0;           // calls / request messages completed in the window
  uint64_t all_ops = 0;            // operations answered in the whole run (warm-up included)
  uint64_t response_messages = 0;  // Pipeline response messages received (whole run)
  uint64_t hits = 0, misses = 0, wrong_values = 0;
  uint64_t unmatched = 0;     // pipeline results with an unknown id, or ops lost
  uint64_t max_pause_ns = 0;  // longest time without any completion, in the window
  std::array<uint64_t, kCodes + 1> rpc_errors{};   // by call/stream status code
  std::array<uint64_t, kCodes + 1> item_errors{};  // by per-operation status code
  Histogram latency;

  void Merge(const Stats& o) {
    gets += o.gets;
    sets += o.sets;
    messages += o.messages;
    all_ops += o.all_ops;
    response_messages += o.response_messages;
    hits += o.hits;
    misses += o.misses;
    wrong_values += o.wrong_values;
    unmatched += o.unmatched;
    max_pause_ns = std::max(max_pause_ns, o.max_pause_ns);
    for (size_t i = 0; i <= kCodes; ++i) {
      rpc_errors[i] += o.rpc_errors[i];
      item_errors[i] += o.item_errors[i];
    }
    latency.Merge(o.latency);
  }
  static size_t Slot(int code) {
    return code >= 0 && code < kCodes ? static_cast<size_t>(code) : kCodes;
  }
  uint64_t Errors() const {
    uint64_t n = unmatched;
    for (size_t i = 0; i <= kCodes; ++i) n += rpc_errors[i] + item_errors[i];
    return n;
  }
};

// ---------------------------------------------------------------------------------------
// The run

struct Shared {
  Flags flags;
  std::vector<std::unique_ptr<pb::Cache::Stub>> stubs;  // one per channel
  std::unique_ptr<KeyChooser> chooser;
  TimePoint window_start, window_end;
};

class Worker;

// Something posted to a completion queue.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok, TimePoint now) = 0;
};

// State every call object reaches through its worker. Owned by one worker thread.
class Worker {
 public:
  Worker(const Shared* shared, uint32_t index)
      : shared_(shared),
        flags_(shared->flags),
        rng_(shared->flags.seed * 1000 + index),
        zipf_pos_(uint64_t{index} * 7919 * 131) {}

  const Flags& flags() const { return flags_; }
  grpc::CompletionQueue* cq() { return &cq_; }
  Stats& stats() { return stats_; }
  bool issuing() const { return !stopping_; }
  pb::Cache::Stub* stub(size_t channel) { return shared_->stubs[channel].get(); }

  uint32_t NextKey() { return shared_->chooser->Next(&rng_, &zipf_pos_); }
  bool NextIsGet() {
    return flags_.get_pct >= 100 ||
           (flags_.get_pct > 0 && rng_.Below(100) < static_cast<uint64_t>(flags_.get_pct));
  }
  bool InWindow(TimePoint t) const { return t >= shared_->window_start && t < shared_->window_end; }
  std::chrono::system_clock::time_point CallDeadline() const {
    return std::chrono::system_clock::now() + std::chrono::milliseconds(flags_.deadline_ms);
  }

  // Records a Get's outcome (warm-up included). `value` is null on a miss.
  void RecordGet(uint32_t key, const std::string* value) {
    if (value == nullptr) {
      ++stats_.misses;
      return;
    }
    ++stats_.hits;
    if (!flags_.verify) return;
    MakeValue(key, ValueSize(flags_, key), &expected_);
    if (*value != expected_) ++stats_.wrong_values;
  }

  void AddLive(Tag* t, grpc::ClientContext* ctx) { live_.emplace(t, ctx); }
  void RemoveLive(Tag* t) { live_.erase(t); }
  void SetContext(Tag* t, grpc::ClientContext* ctx) { live_[t] = ctx; }

  // Runs `f` when issuing stops (streams send WritesDone).
  void OnStop(std::function<void()> f) { on_stop_.push_back(std::move(f)); }

  // Drives the queue until every call is done. Returns false if calls had to be abandoned.
  bool Run() {
    const auto grace = std::chrono::milliseconds(flags_.deadline_ms) + std::chrono::seconds(1);
    const TimePoint cancel_at = shared_->window_end + grace;
    const TimePoint give_up_at = cancel_at + std::chrono::seconds(5);
    bool cancelled = false;
    while (!live_.empty()) {
      const TimePoint now0 = SteadyClock::now();
      if (!stopping_ && now0 >= shared_->window_end) Stop();
      if (stopping_ && !cancelled && now0 >= cancel_at) {
        for (auto& [tag, ctx] : live_) ctx->TryCancel();
        cancelled = true;
      }
      if (cancelled && now0 >= give_up_at) return false;
      const TimePoint wake = stopping_ ? (cancelled ? give_up_at : cancel_at) : shared_->window_end;
      void* tag = nullptr;
      bool ok = false;
      const auto deadline =
          std::chrono::system_clock::now() + (wake - now0) + std::chrono::milliseconds(1);
      const auto st = cq_.AsyncNext(&tag, &ok, deadline);
      if (st == grpc::CompletionQueue::SHUTDOWN) break;
      if (st == grpc::CompletionQueue::TIMEOUT) continue;
      const TimePoint now = SteadyClock::now();
      if (!stopping_ && now >= shared_->window_end) Stop();
      if (InWindow(now) && last_event_ >= shared_->window_start) {
        stats_.max_pause_ns = std::max<uint64_t>(
            stats_.max_pause_ns, static_cast<uint64_t>((now - last_event_).count()));
      }
      last_event_ = now;
      static_cast<Tag*>(tag)->Proceed(ok, now);
    }
    return true;
  }

  void Drain() {
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }

 private:
  void Stop() {
    stopping_ = true;
    for (auto& f : on_stop_) f();
  }

  const Shared* shared_;  // Not owned.
  const Flags& flags_;
  grpc::CompletionQueue cq_;
  Stats stats_;
  Rng rng_;
  uint64_t zipf_pos_;
  std::string expected_;
  bool stopping_ = false;
  TimePoint last_event_{};
  std::unordered_map<Tag*, grpc::ClientContext*> live_;  // calls/streams not yet finished
  std::vector<std::function<void()>> on_stop_;
};

// One outstanding unary Get/Set at a time, reissued on completion until the window ends.
class UnaryCall final : public Tag {
 public:
  UnaryCall(Worker* w, size_t channel) : w_(w), stub_(w->stub(channel)) {}

  void Issue() {
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(w_->CallDeadline());
    Authorize(ctx_.get());
    key_ = w_->NextKey();
    is_get_ = w_->NextIsGet();
    start_ = SteadyClock::now();
    if (is_get_) {
      SetKey(key_, get_req_.mutable_key());
      get_rpc_ = stub_->PrepareAsyncGet(ctx_.get(), get_req_, w_->cq());
      get_rpc_->StartCall();
      get_rpc_->Finish(&get_resp_, &status_, this);
    } else {
      SetKey(key_, set_req_.mutable_key());
      MakeValue(key_, ValueSize(w_->flags(), key_), set_req_.mutable_value());
      set_rpc_ = stub_->PrepareAsyncSet(ctx_.get(), set_req_, w_->cq());
      set_rpc_->StartCall();
      set_rpc_->Finish(&set_resp_, &status_, this);
    }
    w_->SetContext(this, ctx_.get());
  }

  void Proceed(bool, TimePoint now) override {
    Stats& s = w_->stats();
    const bool count = w_->InWindow(now);
    const int code = static_cast<int>(status_.error_code());
    const bool answered =
        code == 0 || (is_get_ && code == static_cast<int>(grpc::StatusCode::NOT_FOUND));
    if (answered) ++s.all_ops;
    if (count && answered) {  // Failed calls are counted as errors only.
      ++s.messages;
      ++(is_get_ ? s.gets : s.sets);
      s.latency.Add(static_cast<uint64_t>((now - start_).count()));
    }
    if (is_get_ && code == static_cast<int>(grpc::StatusCode::NOT_FOUND)) {
      w_->RecordGet(key_, nullptr);
    } else if (code != 0) {
      ++s.rpc_errors[Stats::Slot(code)];
    } else if (is_get_) {
      w_->RecordGet(key_, &get_resp_.value());
    }
    get_rpc_.reset();
    set_rpc_.reset();
    if (w_->issuing()) {
      Issue();
    } else {
      w_->RemoveLive(this);
    }
  }

 private:
  Worker* w_;              // Not owned.
  pb::Cache::Stub* stub_;  // Not owned.
  std::unique_ptr<grpc::ClientContext> ctx_;
  pb::GetRequest get_req_;
  pb::GetResponse get_resp_;
  pb::SetRequest set_req_;
  pb::SetResponse set_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::GetResponse>> get_rpc_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::SetResponse>> set_rpc_;
  grpc::Status status_;
  uint32_t key_ = 0;
  bool is_get_ = true;
  TimePoint start_;
};

// One outstanding MultiGet or MultiSet of --batch keys at a time.
class BatchCall final : public Tag {
 public:
  BatchCall(Worker* w, size_t channel) : w_(w), stub_(w->stub(channel)) {}

  void Issue() {
    const uint32_t n = w_->flags().batch;
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(w_->CallDeadline());
    Authorize(ctx_.get());
    is_get_ = w_->NextIsGet();
    keys_.resize(n);
    for (uint32_t& k : keys_) k = w_->NextKey();
    start_ = SteadyClock::now();
    if (is_get_) {
      pb::MultiGetRequest* req = get_req_.Reset();
      for (const uint32_t k : keys_) SetKey(k, req->add_keys());
      get_rpc_ = stub_->PrepareAsyncMultiGet(ctx_.get(), *req, w_->cq());
      get_rpc_->StartCall();
      get_rpc_->Finish(get_resp_.Reset(), &status_, this);
    } else {
      pb::MultiSetRequest* req = set_req_.Reset();
      for (const uint32_t k : keys_) {
        pb::SetRequest* item = req->add_items();
        SetKey(k, item->mutable_key());
        MakeValue(k, ValueSize(w_->flags(), k), item->mutable_value());
      }
      set_rpc_ = stub_->PrepareAsyncMultiSet(ctx_.get(), *req, w_->cq());
      set_rpc_->StartCall();
      set_rpc_->Finish(set_resp_.Reset(), &status_, this);
    }
    w_->SetContext(this, ctx_.get());
  }

  void Proceed(bool, TimePoint now) override {
    Stats& s = w_->stats();
    const bool count = w_->InWindow(now);
    const int code = static_cast<int>(status_.error_code());
    if (code != 0) {
      ++s.rpc_errors[Stats::Slot(code)];
    } else {
      const int n = static_cast<int>(keys_.size());
      const pb::MultiGetResponse& get_resp = *get_resp_.get();
      const pb::MultiSetResponse& set_resp = *set_resp_.get();
      const int got = is_get_ ? get_resp.results_size() : set_resp.results_size();
      if (got != n) s.unmatched += static_cast<uint64_t>(std::abs(got - n));
      uint64_t answered = 0;  // OK, or NOT_FOUND for a Get
      for (int i = 0; i < std::min(n, got); ++i) {
        const uint32_t key = keys_[static_cast<size_t>(i)];
        const int c =
            is_get_ ? get_resp.results(i).status().code() : set_resp.results(i).status().code();
        if (is_get_ && c == static_cast<int>(grpc::StatusCode::NOT_FOUND)) {
          w_->RecordGet(key, nullptr);
          ++answered;
        } else if (c != 0) {
          ++s.item_errors[Stats::Slot(c)];
        } else {
          if (is_get_) w_->RecordGet(key, &get_resp.results(i).value());
          ++answered;
        }
      }
      s.all_ops += answered;
      if (count) {
        ++s.messages;
        (is_get_ ? s.gets : s.sets) += answered;
        s.latency.Add(static_cast<uint64_t>((now - start_).count()));
      }
    }
    get_rpc_.reset();
    set_rpc_.reset();
    if (w_->issuing()) {
      Issue();
    } else {
      w_->RemoveLive(this);
    }
  }

 private:
  Worker* w_;              // Not owned.
  pb::Cache::Stub* stub_;  // Not owned.
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::vector<uint32_t> keys_;
  // On arenas, reset for every call (the request is serialized by StartCall).
  ArenaMessage<pb::MultiGetRequest> get_req_{kArenaBlockBytes};
  ArenaMessage<pb::MultiGetResponse> get_resp_{kArenaBlockBytes};
  ArenaMessage<pb::MultiSetRequest> set_req_{kArenaBlockBytes};
  ArenaMessage<pb::MultiSetResponse> set_resp_{kArenaBlockBytes};
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::MultiGetResponse>> get_rpc_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::MultiSetResponse>> set_rpc_;
  grpc::Status status_;
  bool is_get_ = true;
  TimePoint start_;
};

// One Pipeline stream: one Read always posted, one Write at a time, messages of --batch
// operations while fewer than max_ops operations are outstanding on the stream.
// Operation ids are seq * batch + i, seq numbering the stream's request messages.
class PipelineStream final : public Tag {
 public:
  PipelineStream(Worker* w, size_t channel, uint32_t max_ops, TimePoint stream_deadline)
      : w_(w), stub_(w->stub(channel)), max_ops_(std::max(max_ops, w->flags().batch)) {
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(
                          stream_deadline - SteadyClock::now()));
    Authorize(&ctx_);
  }

  void Start() {
    w_->AddLive(this, &ctx_);
    w_->OnStop([this] { MaybeWritesDone(); });
    rw_ = stub_->PrepareAsyncPipeline(&ctx_, w_->cq());
    rw_->StartCall(&start_tag_);
  }

  // The stream's own tag is only used for Finish.
  void Proceed(bool, TimePoint) override {
    finished_ = true;
    Stats& s = w_->stats();
    const int code = static_cast<int>(status_.error_code());
    if (code != 0)
      ++s.rpc_errors[Stats::Slot(code)];
    else if (ops_in_flight_ != 0)
      s.unmatched += ops_in_flight_;  // closed OK, ops unanswered
    w_->RemoveLive(this);
  }

 private:
  enum class Kind { kStart, kRead, kWrite, kWritesDone };
  class OpTag final : public Tag {
   public:
    OpTag(PipelineStream* s, Kind k) : s_(s), k_(k) {}
    void Proceed(bool ok, TimePoint now) override { s_->On(k_, ok, now); }

   private:
    PipelineStream* s_;
    Kind k_;
  };
  struct Op {
    uint32_t key;
    bool get;
  };
  struct Message {
    TimePoint start;
    uint32_t remaining;
    std::vector<Op> ops;
  };

  void On(Kind k, bool ok, TimePoint now) {
    switch (k) {
      case Kind::kStart:
        if (!ok) {
          read_closed_ = true;
          break;
        }
        started_ = true;
        reading_ = true;
        rw_->Read(resp_.Reset(), &read_tag_);
        TryWrite();
        break;
      case Kind::kRead:
        reading_ = false;
        if (!ok) {
          read_closed_ = true;
          break;
        }
        OnResults(now);
        reading_ = true;
        rw_->Read(resp_.Reset(), &read_tag_);
        TryWrite();
        break;
      case Kind::kWrite:
        writing_ = false;
        if (!ok) {
          broken_ = true;
          break;
        }
        TryWrite();
        break;
      case Kind::kWritesDone:
        writes_done_pending_ = false;
        break;
    }
    MaybeWritesDone();
    MaybeFinish();
  }

  void TryWrite() {
    const Flags& f = w_->flags();
    if (writing_ || broken_ || writes_done_sent_ || !started_ || !w_->issuing()) return;
    if (ops_in_flight_ + f.batch > max_ops_) return;
    pb::PipelineRequest* req = req_.Reset();
    Message& m = messages_[next_seq_];
    m.ops.resize(f.batch);
    m.remaining = f.batch;
    for (uint32_t i = 0; i < f.batch; ++i) {
      Op& op = m.ops[i];
      op.key = w_->NextKey();
      op.get = w_->NextIsGet();
      pb::Operation* o = req->add_ops();
      o->set_id(next_seq_ * f.batch + i);
      if (op.get) {
        SetKey(op.key, o->mutable_get()->mutable_key());
      } else {
        pb::SetRequest* set = o->mutable_set();
        SetKey(op.key, set->mutable_key());
        MakeValue(op.key, ValueSize(f, op.key), set->mutable_value());
      }
    }
    ++next_seq_;
    ops_in_flight_ += f.batch;
    writing_ = true;
    m.start = SteadyClock::now();
    rw_->Write(*req, &write_tag_);  // Serializes it: req_ is free again.
  }

  void OnResults(TimePoint now) {
    Stats& s = w_->stats();
    const uint32_t batch = w_->flags().batch;
    const bool count = w_->InWindow(now);
    ++s.response_messages;
    for (const pb::OperationResult& r : resp_->results()) {
      const uint64_t seq = r.id() / batch;
      auto it = messages_.find(seq);
      if (it == messages_.end() || it->second.remaining == 0) {
        ++s.unmatched;
        continue;
      }
      Message& m = it->second;
      const Op& op = m.ops[r.id() % batch];
      const int c = r.status().code();
      bool answered = true;  // OK, or NOT_FOUND for a Get
      if (op.get && c == static_cast<int>(grpc::StatusCode::NOT_FOUND)) {
        w_->RecordGet(op.key, nullptr);
      } else if (c != 0) {
        ++s.item_errors[Stats::Slot(c)];
        answered = false;
      } else if (op.get) {
        w_->RecordGet(op.key, &r.get().value());
      }
      if (answered) {
        ++s.all_ops;
        if (count) ++(op.get ? s.gets : s.sets);
      }
      --ops_in_flight_;
      if (--m.remaining == 0) {
        if (count) {
          ++s.messages;
          s.latency.Add(static_cast<uint64_t>((now - m.start).count()));
        }
        messages_.erase(it);
      }
    }
  }

  void MaybeWritesDone() {
    if (w_->issuing() || !started_ || writing_ || writes_done_sent_ || broken_ || read_closed_)
      return;
    writes_done_sent_ = true;
    writes_done_pending_ = true;
    rw_->WritesDone(&writes_done_tag_);
  }

  void MaybeFinish() {
    if (finish_called_ || !read_closed_ || writing_ || writes_done_pending_ || reading_) return;
    finish_called_ = true;
    rw_->Finish(&status_, this);
  }

  Worker* w_;              // Not owned.
  pb::Cache::Stub* stub_;  // Not owned.
  const uint32_t max_ops_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<pb::PipelineRequest, pb::PipelineResponse>> rw_;
  OpTag start_tag_{this, Kind::kStart};
  OpTag read_tag_{this, Kind::kRead};
  OpTag write_tag_{this, Kind::kWrite};
  OpTag writes_done_tag_{this, Kind::kWritesDone};
  ArenaMessage<pb::PipelineRequest> req_{kArenaBlockBytes};    // Reset for every message.
  ArenaMessage<pb::PipelineResponse> resp_{kArenaBlockBytes};  // Reset before every Read.
  grpc::Status status_;
  std::unordered_map<uint64_t, Message> messages_;  // by seq, until fully answered
  uint64_t next_seq_ = 0;
  uint32_t ops_in_flight_ = 0;
  bool started_ = false, reading_ = false, writing_ = false, read_closed_ = false;
  bool broken_ = false, writes_done_sent_ = false, writes_done_pending_ = false;
  bool finish_called_ = false, finished_ = false;
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& addr, int index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own connection
  // No transparent retries: the driver counts every failure, and the retry filter's
  // per-call bookkeeping (it keeps each request until the call commits) is client CPU
  // that the server under test would otherwise get.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt("ringcache.loadgen.channel", index);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(addr, g_security.credentials, args);
}

bool WaitConnected(const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  for (const auto& ch : channels) {
    if (!ch->WaitForConnected(deadline)) return false;
  }
  return true;
}

// Sets keys [0, n) with MultiSet calls of `batch`. Returns false on any failure.
bool Prefill(pb::Cache::Stub* stub, const Flags& f, uint64_t n) {
  pb::MultiSetRequest req;
  pb::MultiSetResponse resp;
  const uint32_t batch = std::max<uint32_t>(f.batch, 1000);
  for (uint64_t first = 0; first < n; first += batch) {
    req.Clear();
    const uint64_t last = std::min<uint64_t>(n, first + batch);
    for (uint64_t k = first; k < last; ++k) {
      pb::SetRequest* item = req.add_items();
      SetKey(static_cast<uint32_t>(k), item->mutable_key());
      MakeValue(static_cast<uint32_t>(k), ValueSize(f, static_cast<uint32_t>(k)),
                item->mutable_value());
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Authorize(&ctx);
    const grpc::Status st = stub->MultiSet(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "ringcache_loadgen: prefill MultiSet failed: %s: %s\n",
                   CodeName(static_cast<int>(st.error_code())), st.error_message().c_str());
      return false;
    }
    for (const pb::SetResult& r : resp.results()) {
      if (r.status().code() != 0) {
        std::fprintf(stderr, "ringcache_loadgen: prefill item failed: %s: %s\n",
                     CodeName(r.status().code()), r.status().message().c_str());
        return false;
      }
    }
  }
  return true;
}

bool GetStats(pb::Cache::Stub* stub, pb::StatsResponse* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Authorize(&ctx);
  const grpc::Status st = stub->Stats(&ctx, pb::StatsRequest(), out);
  if (!st.ok()) {
    std::fprintf(stderr, "ringcache_loadgen: Stats failed: %s: %s\n",
                 CodeName(static_cast<int>(st.error_code())), st.error_message().c_str());
  }
  return st.ok();
}

// Fill mode: MultiSet new keys until evictions, then fill_extra more. Bounded by
// --duration-s. Returns the exit status.
int RunFill(pb::Cache::Stub* stub, const Flags& f) {
  const TimePoint start = SteadyClock::now();
  const TimePoint end = start + std::chrono::duration_cast<SteadyClock::duration>(
                                    std::chrono::duration<double>(f.duration_s));
  pb::StatsResponse stats;
  uint64_t written = 0, first_eviction_at = 0, target = UINT32_MAX;
  const uint64_t check_every = 50;  // batches between Stats calls
  uint64_t batches = 0;
  bool timed_out = false;
  while (written < target) {
    if (SteadyClock::now() >= end) {
      timed_out = true;
      break;
    }
    // Set keys [written, written + batch).
    pb::MultiSetRequest req;
    pb::MultiSetResponse resp;
    const uint64_t last = std::min<uint64_t>(target, written + f.batch);
    for (uint64_t k = written; k < last; ++k) {
      pb::SetRequest* item = req.add_items();
      SetKey(static_cast<uint32_t>(k), item->mutable_key());
      MakeValue(static_cast<uint32_t>(k), ValueSize(f, static_cast<uint32_t>(k)),
                item->mutable_value());
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(f.deadline_ms));
    Authorize(&ctx);
    const grpc::Status st = stub->MultiSet(&ctx, req, &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "ringcache_loadgen: fill MultiSet failed: %s: %s\n",
                   CodeName(static_cast<int>(st.error_code())), st.error_message().c_str());
      return 1;
    }
    for (const pb::SetResult& r : resp.results()) {
      if (r.status().code() != 0) {
        std::fprintf(stderr, "ringcache_loadgen: fill item failed: %s: %s\n",
                     CodeName(r.status().code()), r.status().message().c_str());
        return 1;
      }
    }
    written = last;
    if (first_eviction_at == 0 && ++batches % check_every == 0) {
      if (!GetStats(stub, &stats)) return 1;
      if (stats.evictions() > 0) {
        first_eviction_at = written;
        target = written + static_cast<uint64_t>(static_cast<double>(written) * f.fill_extra);
      } else if (written * (kKeySize + f.value_size) >
                 4 * std::max<uint64_t>(stats.capacity_bytes(), 1 << 20)) {
        std::fprintf(stderr,
                     "ringcache_loadgen: no eviction after writing %" PRIu64
                     " keys (4x the %" PRIu64 " B capacity in keys and values)\n",
                     written, stats.capacity_bytes());
        return 1;
      }
    }
  }
  if (!GetStats(stub, &stats)) return 1;
  const double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::printf("fill: %" PRIu64
              " keys of %u B written in %.1f s (%.0f sets/s); first eviction "
              "seen after %" PRIu64 " keys\n",
              written, f.value_size, secs, static_cast<double>(written) / secs, first_eviction_at);
  std::printf("node stats: items=%" PRIu64 " bytes_used=%" PRIu64 " capacity_bytes=%" PRIu64
              " evictions=%" PRIu64 "\n",
              stats.items(), stats.bytes_used(), stats.capacity_bytes(), stats.evictions());
  std::printf("RESULT mode=fill keys_written=%" PRIu64 " first_eviction_at=%" PRIu64
              " items=%" PRIu64 " bytes_used=%" PRIu64 " capacity_bytes=%" PRIu64
              " evictions=%" PRIu64 " timed_out=%d\n",
              written, first_eviction_at, stats.items(), stats.bytes_used(), stats.capacity_bytes(),
              stats.evictions(), timed_out ? 1 : 0);
  if (timed_out || first_eviction_at == 0) {
    std::fprintf(stderr, "ringcache_loadgen: fill did not reach evictions + %.0f%% within %.0f s\n",
                 f.fill_extra * 100, f.duration_s);
    return 1;
  }
  return 0;
}

// User + system CPU time of this process so far.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

std::string FormatNs(double ns) {
  char buf[32];
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0fns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fus", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2fms", ns / 1e6);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's lock-order (deadlock)
  // detection on: every lock gRPC takes then updates a global graph under a global
  // spinlock, several % of the CPU of a busy client. It only checks gRPC's own
  // locks, so it goes off here as in the servers, before gRPC starts.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Shared shared;
  Flags& f = shared.flags;
  if (const int rc = ParseFlags(argc, argv, &f); rc != 0) return rc == 1 ? 0 : 2;
  if (!f.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions pem;
    if (!ReadTrimmed(f.tls_ca_file, &pem.pem_root_certs)) {
      std::fprintf(stderr, "ringcache_loadgen: cannot read --tls-ca-file %s\n",
                   f.tls_ca_file.c_str());
      return 2;
    }
    g_security.credentials = grpc::SslCredentials(pem);
  }
  if (!f.token_file.empty()) {
    std::string token;
    if (!ReadTrimmed(f.token_file, &token)) {
      std::fprintf(stderr, "ringcache_loadgen: cannot read --token-file %s\n",
                   f.token_file.c_str());
      return 2;
    }
    g_security.authorization = "Bearer " + token;
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (uint32_t i = 0; i < f.channels; ++i) {
    channels.push_back(MakeChannel(f.addr, static_cast<int>(i)));
    shared.stubs.push_back(pb::Cache::NewStub(channels.back()));
  }
  if (!WaitConnected(channels)) {
    std::fprintf(stderr, "ringcache_loadgen: cannot connect to %s within 10 s\n", f.addr.c_str());
    return 1;
  }
  if (f.mode == Mode::kFill) return RunFill(shared.stubs[0].get(), f);

  if (f.prefill) {
    const TimePoint t = SteadyClock::now();
    if (!Prefill(shared.stubs[0].get(), f, f.keys)) return 1;
    std::printf("prefill: %" PRIu64 " keys of %u B in %.2f s\n", f.keys, f.value_size,
                std::chrono::duration<double>(SteadyClock::now() - t).count());
  }
  shared.chooser = std::make_unique<KeyChooser>(f.keys, f.zipf, f.seed);

  const TimePoint start = SteadyClock::now();
  auto secs = [](double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  };
  shared.window_start = start + secs(f.warmup_s);
  shared.window_end = shared.window_start + secs(f.duration_s);

  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < f.threads; ++i) workers.push_back(std::make_unique<Worker>(&shared, i));

  // Calls / streams, round robin over workers and channels.
  std::vector<std::unique_ptr<UnaryCall>> unary;
  std::vector<std::unique_ptr<BatchCall>> batch;
  std::vector<std::unique_ptr<PipelineStream>> streams;
  uint32_t units = 0;
  if (f.mode == Mode::kUnary) units = f.inflight;
  if (f.mode == Mode::kBatch) units = std::max<uint32_t>(1, f.inflight / f.batch);
  if (f.mode == Mode::kPipeline) units = f.streams;
  const uint32_t per_stream =
      std::max<uint32_t>(f.batch, f.inflight / std::max<uint32_t>(1, f.streams));
  const TimePoint stream_deadline = shared.window_end + std::chrono::milliseconds(f.deadline_ms);
  for (uint32_t i = 0; i < units; ++i) {
    Worker* w = workers[i % f.threads].get();
    const size_t ch = i % f.channels;
    if (f.mode == Mode::kUnary) unary.push_back(std::make_unique<UnaryCall>(w, ch));
    if (f.mode == Mode::kBatch) batch.push_back(std::make_unique<BatchCall>(w, ch));
    if (f.mode == Mode::kPipeline) {
      streams.push_back(std::make_unique<PipelineStream>(w, ch, per_stream, stream_deadline));
    }
  }
  // Register and issue from the owning threads' point of view: nothing runs yet, so it
  // is safe to post from main before the threads start.
  const double cpu_start = CpuSeconds();
  for (auto& c : unary) c->Issue();
  for (auto& c : batch) c->Issue();
  for (auto& s : streams) s->Start();

  std::atomic<bool> abandoned{false};
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&w, &abandoned] {
      if (!w->Run()) {
        abandoned = true;
        return;
      }
      w->Drain();
    });
  }
  for (auto& t : threads) t.join();
  const double cpu_used = CpuSeconds() - cpu_start;
  if (abandoned) {
    std::fprintf(stderr,
                 "ringcache_loadgen: calls still outstanding after cancelling; giving up\n");
    std::fflush(stdout);
    std::_Exit(1);
  }

  Stats total;
  for (auto& w : workers) total.Merge(w->stats());
  const double ops = static_cast<double>(total.gets + total.sets);
  const double ops_s = ops / f.duration_s;
  const double msgs_s = static_cast<double>(total.messages) / f.duration_s;
  const char* lat_unit = f.mode == Mode::kUnary   ? "per rpc"
                         : f.mode == Mode::kBatch ? "per MultiGet/MultiSet call"
                                                  : "per Pipeline request message";
  std::printf("ringcache_loadgen: addr=%s mode=%s get=%d%% set=%d%% keys=%" PRIu64
              " dist=%s value=%uB inflight=%u batch=%u streams=%u channels=%u threads=%u "
              "duration=%.1fs warmup=%.1fs prefill=%s verify=%s\n",
              f.addr.c_str(), ModeName(f.mode), f.get_pct, 100 - f.get_pct, f.keys,
              f.zipf > 0 ? "zipf" : "uniform", f.value_size, f.inflight,
              f.mode == Mode::kUnary ? 1 : f.batch, f.mode == Mode::kPipeline ? f.streams : 0,
              f.channels, f.threads, f.duration_s, f.warmup_s, f.prefill ? "yes" : "no",
              f.verify ? "yes" : "no");
  std::printf("  ops/s        %.0f  (gets %" PRIu64 ", sets %" PRIu64 " in the window)\n", ops_s,
              total.gets, total.sets);
  if (f.mode != Mode::kUnary) std::printf("  messages/s   %.0f (request messages)\n", msgs_s);
  if (f.mode == Mode::kPipeline && total.response_messages != 0) {
    std::printf("  results per response message: %.1f\n",
                static_cast<double>(total.all_ops) / static_cast<double>(total.response_messages));
  }
  std::printf("  latency %s: p50 %s  p99 %s  p99.9 %s  (%" PRIu64 " samples)\n", lat_unit,
              FormatNs(total.latency.Quantile(0.5)).c_str(),
              FormatNs(total.latency.Quantile(0.99)).c_str(),
              FormatNs(total.latency.Quantile(0.999)).c_str(), total.latency.count());
  const double client_cpu_us =
      total.all_ops == 0 ? 0 : cpu_used * 1e6 / static_cast<double>(total.all_ops);
  std::printf("  client CPU: %.2f us per operation (%.2f s over the run)\n", client_cpu_us,
              cpu_used);
  std::printf("  longest pause between completions (one client thread): %s\n",
              FormatNs(static_cast<double>(total.max_pause_ns)).c_str());
  std::printf("  gets: %" PRIu64 " hits, %" PRIu64 " misses%s, %" PRIu64 " wrong values\n",
              total.hits, total.misses, f.verify ? " (prefilled: expected 0)" : "",
              total.wrong_values);
  std::string errs;
  for (int c = 0; c <= kCodes; ++c) {
    const size_t i = static_cast<size_t>(c);
    if (total.rpc_errors[i] != 0) {
      errs += " rpc:" + std::string(CodeName(c)) + "=" + std::to_string(total.rpc_errors[i]);
    }
    if (total.item_errors[i] != 0) {
      errs += " op:" + std::string(CodeName(c)) + "=" + std::to_string(total.item_errors[i]);
    }
  }
  if (total.unmatched != 0) errs += " unmatched_or_lost_ops=" + std::to_string(total.unmatched);
  std::printf("  errors:%s\n", errs.empty() ? " none" : errs.c_str());
  if (total.misses != 0 && f.verify) {
    std::printf("  MISSES: %" PRIu64 " Gets missed keys that were prefilled\n", total.misses);
  }
  std::printf(
      "RESULT mode=%s ops_per_s=%.0f msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f "
      "p999_us=%.1f max_pause_us=%.1f client_cpu_us_per_op=%.2f all_ops=%" PRIu64 " hits=%" PRIu64
      " misses=%" PRIu64 " wrong=%" PRIu64 " errors=%" PRIu64 "\n",
      ModeName(f.mode), ops_s, msgs_s, total.latency.Quantile(0.5) / 1e3,
      total.latency.Quantile(0.99) / 1e3, total.latency.Quantile(0.999) / 1e3,
      static_cast<double>(total.max_pause_ns) / 1e3, client_cpu_us, total.all_ops, total.hits,
      total.misses, total.wrong_values, total.Errors());
  const bool bad =
      total.Errors() != 0 || total.wrong_values != 0 || (f.verify && total.misses != 0) || ops == 0;
  return bad ? 1 : 0;
}

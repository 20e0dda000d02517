// ringcache_client_bench: the smart C++ client (ringcache::client, each key straight to its
// primary) against a plain gRPC stub calling one node that forwards every key one hop to
// its primary. Same keys, same number of threads, same cluster, in one run.
//
// Keys: --keys keys whose primary is NOT the --seed node, preloaded with --value-size byte
// values. Each round runs both contenders for --duration-s each (alternating which goes
// first); every thread issues synchronous Gets of random keys in a closed loop. Reported:
// medians over --rounds rounds of ops/s and of each round's p50/p99 latency, and the
// ratios smart / forwarded. Output: human lines, then "RESULT key=value ..." for scripts.
// Exit 1 if a call failed, 2 on bad flags.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ringcache/client/client.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string seed = "127.0.0.1:7701";
  uint32_t threads = 8;
  double duration_s = 3;
  uint32_t rounds = 3;
  uint32_t keys = 10'000;
  uint32_t value_size = 32;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--seed" && (v = value())) {
      f->seed = v;
    } else if (arg == "--threads" && (v = value())) {
      f->threads = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--duration-s" && (v = value())) {
      f->duration_s = std::strtod(v, nullptr);
    } else if (arg == "--rounds" && (v = value())) {
      f->rounds = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--keys" && (v = value())) {
      f->keys = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--value-size" && (v = value())) {
      f->value_size = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else {
      std::fprintf(stderr,
                   "usage: ringcache_client_bench [--seed HOST:PORT] [--threads N] "
                   "[--duration-s S] [--rounds N] [--keys N] [--value-size BYTES]\n"
                   "bad or incomplete argument: %s\n",
                   arg.c_str());
      return false;
    }
  }
  if (f->threads == 0 || f->rounds == 0 || f->keys == 0 || !(f->duration_s > 0)) {
    std::fprintf(stderr,
                 "ringcache_client_bench: threads, rounds, keys and duration must be > 0\n");
    return false;
  }
  return true;
}

struct RoundResult {
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  uint64_t errors = 0;
};

// Runs `get(thread, key)` from `threads` threads for `duration`; each returns false on error.
RoundResult RunRound(uint32_t threads, double duration_s, const std::vector<std::string>& keys,
                     const std::function<bool(uint32_t, const std::string&)>& get) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<uint32_t>> latencies(threads);
  std::vector<std::thread> workers;
  const Clock::time_point start = Clock::now();
  for (uint32_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(t * 7919 + 1);
      std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
      latencies[t].reserve(1 << 16);
      while (!stop.load(std::memory_order_relaxed)) {
        const Clock::time_point begin = Clock::now();
        if (!get(t, keys[pick(rng)])) errors.fetch_add(1, std::memory_order_relaxed);
        latencies[t].push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - begin).count()));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(duration_s));
  stop.store(true);
  for (std::thread& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  RoundResult r;
  r.errors = errors.load();
  if (!all.empty()) {
    r.ops_per_s = static_cast<double>(all.size()) / elapsed;
    r.p50_us = all[all.size() / 2];
    r.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  auto client = ringcache::client::Client::Connect({.seeds = {flags.seed}});
  if (!client.ok()) {
    std::fprintf(stderr, "cannot connect to %s: %s\n", flags.seed.c_str(),
                 client.status().ToString().c_str());
    return 1;
  }
  ringcache::client::Client& smart = **client;
  const ringcache::ClusterView view = smart.view();
  std::string seed_id;
  for (const ringcache::ClusterMember& m : view.members) {
    if (m.address == flags.seed) seed_id = m.id;
  }
  if (seed_id.empty() || view.members.size() < 2) {
    std::fprintf(stderr, "%s is not a member of a cluster of at least 2 nodes\n",
                 flags.seed.c_str());
    return 1;
  }

  // Keys the seed node does not own as primary: through it, every Get is forwarded.
  std::vector<std::string> keys;
  const std::string value(flags.value_size, 'v');
  for (uint64_t i = 0; keys.size() < flags.keys; ++i) {
    std::string key = "bench:" + std::to_string(i);
    if (smart.Owners(key).front() != seed_id) keys.push_back(std::move(key));
  }
  for (const std::string& key : keys) {
    if (!smart.Set(key, value).ok()) {
      std::fprintf(stderr, "preload Set failed\n");
      return 1;
    }
  }

  // The plain path: one channel per thread to the seed node (like independent clients).
  std::vector<std::unique_ptr<ringcache::v1::Cache::Stub>> stubs;
  for (uint32_t t = 0; t < flags.threads; ++t) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", static_cast<int>(t));  // distinct connections
    stubs.push_back(ringcache::v1::Cache::NewStub(
        grpc::CreateCustomChannel(flags.seed, grpc::InsecureChannelCredentials(), args)));
  }
  const auto forwarded_get = [&](uint32_t t, const std::string& key) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ringcache::v1::GetRequest req;
    req.set_key(key);
    ringcache::v1::GetResponse resp;
    return stubs[t]->Get(&ctx, req, &resp).ok();
  };
  const auto smart_get = [&](uint32_t, const std::string& key) { return smart.Get(key).ok(); };

  std::vector<double> s_ops, s_p50, s_p99, f_ops, f_p50, f_p99;
  uint64_t errors = 0;
  for (uint32_t round = 0; round < flags.rounds; ++round) {
    for (int which = 0; which < 2; ++which) {
      const bool run_smart = (round + which) % 2 == 0;
      const RoundResult r =
          RunRound(flags.threads, flags.duration_s, keys,
                   run_smart ? std::function(smart_get) : std::function(forwarded_get));
      errors += r.errors;
      (run_smart ? s_ops : f_ops).push_back(r.ops_per_s);
      (run_smart ? s_p50 : f_p50).push_back(r.p50_us);
      (run_smart ? s_p99 : f_p99).push_back(r.p99_us);
      std::printf("round %u %-9s %9.0f ops/s  p50 %6.0f us  p99 %6.0f us  errors %llu\n", round + 1,
                  run_smart ? "smart" : "forwarded", r.ops_per_s, r.p50_us, r.p99_us,
                  static_cast<unsigned long long>(r.errors));
    }
  }
  const double so = Median(s_ops), fo = Median(f_ops);
  const double sp50 = Median(s_p50), fp50 = Median(f_p50);
  std::printf(
      "smart client  : %.0f ops/s, p50 %.0f us, p99 %.0f us\n"
      "via a non-owner: %.0f ops/s, p50 %.0f us, p99 %.0f us\n"
      "smart/forwarded: throughput %.2fx, p50 latency %.2fx\n",
      so, sp50, Median(s_p99), fo, fp50, Median(f_p99), fo > 0 ? so / fo : 0.0,
      fp50 > 0 ? sp50 / fp50 : 0.0);
  std::printf(
      "RESULT smart_ops=%.0f smart_p50_us=%.0f smart_p99_us=%.0f forwarded_ops=%.0f "
      "forwarded_p50_us=%.0f forwarded_p99_us=%.0f errors=%llu\n",
      so, sp50, Median(s_p99), fo, fp50, Median(f_p99), static_cast<unsigned long long>(errors));
  return errors == 0 ? 0 : 1;
}

// ringcache_client_bench: the smart C++ client (ringcache::client, each key straight to its
// primary) against a plain gRPC stub calling one node that forwards keys one hop to their
// primary. Same keys, same cluster, in one run. Two phases:
//
//  - unary: --keys keys whose primary is NOT the --seed node; every thread issues
//    synchronous Gets of random keys in a closed loop, through the client or through a
//    stub on the seed node (--threads each).
//  - batch (--batch N > 0): --keys keys spread over every owner (the seed's own too), the
//    same load both ways: streams x window batches of N random keys in flight. The client
//    side: that many threads each calling Client::MultiGet of N keys in a closed loop (the
//    client splits each batch per owner and sends the parts in parallel). The forwarded
//    side: --streams Pipeline streams on the seed node, each keeping --window messages of
//    N Gets in flight; the seed serves its own keys and forwards the rest. And for
//    reference, the same streams sent by a plain client straight to the primaries (each
//    node's streams read only its own keys). Throughput counts keys read per second.
//
// Each round runs both contenders of a phase for --duration-s each, alternating which goes
// first. Reported: medians over --rounds rounds of ops/s (and latency for unary), the
// ratios, and with --pids (the nodes' process ids) the nodes' CPU time per operation
// (user + system from /proc, summed over the nodes). Output: human lines, then
// "RESULT key=value ..." lines for scripts. Exit 1 if a call failed, 2 on bad flags.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../proc_cpu.h"
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
  uint32_t batch = 0;    // 0: no batch phase.
  uint32_t streams = 4;  // Pipeline streams of the batch phase.
  uint32_t window = 8;   // Messages in flight per stream.
  bool skip_unary = false;
  std::vector<int> pids;  // The nodes' processes, for CPU per operation.
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
    } else if (arg == "--batch" && (v = value())) {
      f->batch = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--streams" && (v = value())) {
      f->streams = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--window" && (v = value())) {
      f->window = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--skip-unary") {
      f->skip_unary = true;
    } else if (arg == "--pids" && (v = value())) {
      std::string list = v;
      for (size_t pos = 0; pos <= list.size();) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        if (comma > pos) f->pids.push_back(std::atoi(list.substr(pos, comma - pos).c_str()));
        pos = comma + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: ringcache_client_bench [--seed HOST:PORT] [--threads N] "
                   "[--duration-s S] [--rounds N] [--keys N] [--value-size BYTES]\n"
                   "                              [--batch N [--streams N] [--window N]] "
                   "[--skip-unary] [--pids P1,P2,...]\n"
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
  if (f->batch > 10'000 ||
      (f->batch > 0 && (f->streams == 0 || f->window == 0 || f->streams * f->window > 256))) {
    std::fprintf(stderr,
                 "ringcache_client_bench: --batch at most 10000, --streams and --window > 0, "
                 "streams x window at most 256\n");
    return false;
  }
  return true;
}

double CpuSeconds(const std::vector<int>& pids) {
  return ringcache::bench::ProcessesCpuSeconds(pids);
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

// One run of the batch phase: keys read per second, and the nodes' CPU per key.
struct BatchResult {
  double ops_per_s = 0;
  double cpu_us_per_op = 0;  // 0 without --pids.
  uint64_t errors = 0;
};

// Lets `threads` run for --duration-s, counts the keys done by then, stops and joins them:
// the result of one batch run that started at `start` with the nodes at `cpu_before`.
BatchResult EndRun(const Flags& flags, Clock::time_point start, double cpu_before,
                   const std::atomic<uint64_t>& done, const std::atomic<uint64_t>& errors,
                   std::atomic<bool>& stop, std::vector<std::thread>& threads) {
  std::this_thread::sleep_for(std::chrono::duration<double>(flags.duration_s));
  const uint64_t counted = done.load();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  BatchResult r;
  r.ops_per_s = static_cast<double>(counted) / elapsed;
  if (!flags.pids.empty() && counted > 0) {
    r.cpu_us_per_op = (CpuSeconds(flags.pids) - cpu_before) * 1e6 / static_cast<double>(counted);
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  r.errors = errors.load();
  return r;
}

// The smart client: streams x window threads (the Pipeline side's batches in flight), each
// calling MultiGet of --batch random keys.
BatchResult RunClientBatch(ringcache::client::Client& client, const Flags& flags,
                           const std::vector<std::string>& keys) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> errors{0};
  std::vector<std::thread> workers;
  const double cpu_before = CpuSeconds(flags.pids);
  const Clock::time_point start = Clock::now();
  for (uint32_t t = 0; t < flags.streams * flags.window; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(t * 104729 + 3);
      std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
      std::vector<std::string_view> batch(flags.batch);
      while (!stop.load(std::memory_order_relaxed)) {
        for (std::string_view& k : batch) k = keys[pick(rng)];
        uint64_t bad = 0;
        for (const auto& r : client.MultiGet(batch)) bad += r.ok() ? 0 : 1;
        done.fetch_add(batch.size(), std::memory_order_relaxed);
        if (bad != 0) errors.fetch_add(bad, std::memory_order_relaxed);
      }
    });
  }
  return EndRun(flags, start, cpu_before, done, errors, stop, workers);
}

// Where Pipeline streams go: a node's address and the keys its streams read.
struct PipelineTarget {
  std::string address;
  std::vector<std::string> keys;
};

// Pipeline streams: --streams streams, spread round-robin over `targets`, each with
// --window messages of --batch Gets of its target's keys in flight (a writer and a reader
// thread per stream, closed loop).
BatchResult RunPipelineBatch(const Flags& flags, const std::vector<PipelineTarget>& targets) {
  struct StreamState {
    std::mutex mu;
    std::condition_variable cv;
    uint64_t outstanding = 0;  // Operations sent, not yet answered. Guarded by mu.
  };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> errors{0};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<StreamState>> states;
  const uint64_t max_outstanding = uint64_t{flags.window} * flags.batch;
  const double cpu_before = CpuSeconds(flags.pids);
  const Clock::time_point start = Clock::now();
  for (uint32_t s = 0; s < flags.streams; ++s) {
    states.push_back(std::make_unique<StreamState>());
    StreamState* st = states.back().get();
    const PipelineTarget& target = targets[s % targets.size()];
    threads.emplace_back([&, s, st] {
      const std::vector<std::string>& keys = target.keys;
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", 1000 + static_cast<int>(s));  // distinct connections
      auto stub = ringcache::v1::Cache::NewStub(
          grpc::CreateCustomChannel(target.address, grpc::InsecureChannelCredentials(), args));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(flags.duration_s + 30)));
      auto stream = stub->Pipeline(&ctx);
      std::thread reader([&, st, raw = stream.get()] {
        ringcache::v1::PipelineResponse response;
        while (raw->Read(&response)) {
          uint64_t bad = 0;
          for (const auto& result : response.results()) {
            if (result.has_status() && result.status().code() != 0) ++bad;
          }
          done.fetch_add(static_cast<uint64_t>(response.results_size()), std::memory_order_relaxed);
          if (bad != 0) errors.fetch_add(bad, std::memory_order_relaxed);
          std::lock_guard lock(st->mu);
          st->outstanding -= static_cast<uint64_t>(response.results_size());
          st->cv.notify_all();
        }
      });
      std::mt19937_64 rng(s * 15485863 + 7);
      std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
      ringcache::v1::PipelineRequest request;
      uint64_t next_id = 1;
      while (!stop.load(std::memory_order_relaxed)) {
        {
          std::unique_lock lock(st->mu);
          st->cv.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return st->outstanding + flags.batch <= max_outstanding; });
          if (st->outstanding + flags.batch > max_outstanding) continue;
          st->outstanding += flags.batch;
        }
        request.clear_ops();
        for (uint32_t i = 0; i < flags.batch; ++i) {
          ringcache::v1::Operation* op = request.add_ops();
          op->set_id(next_id++);
          op->mutable_get()->set_key(keys[pick(rng)]);
        }
        if (!stream->Write(request)) {
          errors.fetch_add(1, std::memory_order_relaxed);
          break;
        }
      }
      stream->WritesDone();
      reader.join();
      const grpc::Status status = stream->Finish();
      if (!status.ok()) {
        std::fprintf(stderr, "pipeline stream %u ended: %s\n", s, status.error_message().c_str());
        errors.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  return EndRun(flags, start, cpu_before, done, errors, stop, threads);
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

  uint64_t errors = 0;
  if (flags.batch > 0) {
    // Keys over every owner, the seed's own included, as a client would send them.
    std::vector<std::string> all;
    for (uint32_t i = 0; i < flags.keys; ++i) all.push_back("bench:all:" + std::to_string(i));
    const std::string batch_value(flags.value_size, 'v');
    std::vector<ringcache::SetItem> items;
    for (const std::string& key : all)
      items.push_back({.key = key, .value = batch_value, .options = {}});
    for (size_t i = 0; i < items.size(); i += 500) {
      const size_t n = std::min<size_t>(500, items.size() - i);
      for (const auto& r : smart.MultiSet(std::span(items).subspan(i, n))) {
        if (!r.ok()) {
          std::fprintf(stderr, "preload MultiSet failed: %s\n", r.status().ToString().c_str());
          return 1;
        }
      }
    }
    size_t seed_share = 0;
    for (const std::string& key : all) seed_share += smart.Owners(key).front() == seed_id ? 1 : 0;
    std::printf("batch phase: %u keys, %.0f%% of them on the seed node as primary; %u per batch\n",
                flags.keys,
                100.0 * static_cast<double>(seed_share) / static_cast<double>(flags.keys),
                flags.batch);
    // The same keys sent by a plain client straight to their primaries: each node's
    // streams read only the keys it is the primary of.
    const std::vector<PipelineTarget> via_seed{{flags.seed, all}};
    std::vector<PipelineTarget> direct;
    for (const ringcache::ClusterMember& m : view.members) {
      PipelineTarget t{m.address, {}};
      for (const std::string& key : all) {
        if (smart.Owners(key).front() == m.id) t.keys.push_back(key);
      }
      if (!t.keys.empty()) direct.push_back(std::move(t));
    }
    const char* names[3] = {"client MultiGet", "Pipeline via the seed", "Pipeline to owners"};
    std::vector<double> ops[3], cpu[3], vs_client, vs_direct;
    for (uint32_t round = 0; round < flags.rounds; ++round) {
      BatchResult r[3];
      for (int k = 0; k < 3; ++k) {
        const int which = static_cast<int>((round + static_cast<uint32_t>(k)) % 3);
        r[which] = which == 0   ? RunClientBatch(smart, flags, all)
                   : which == 1 ? RunPipelineBatch(flags, via_seed)
                                : RunPipelineBatch(flags, direct);
        errors += r[which].errors;
        std::printf("round %u %-22s %9.0f keys/s  nodes' CPU %6.2f us/key  errors %llu\n",
                    round + 1, names[which], r[which].ops_per_s, r[which].cpu_us_per_op,
                    static_cast<unsigned long long>(r[which].errors));
      }
      for (int k = 0; k < 3; ++k) {
        ops[k].push_back(r[k].ops_per_s);
        cpu[k].push_back(r[k].cpu_us_per_op);
      }
      vs_client.push_back(r[0].ops_per_s > 0 ? r[1].ops_per_s / r[0].ops_per_s : 0.0);
      vs_direct.push_back(r[2].ops_per_s > 0 ? r[1].ops_per_s / r[2].ops_per_s : 0.0);
    }
    for (int k = 0; k < 3; ++k) {
      std::printf("%-22s: %.0f keys/s, nodes' CPU %.2f us/key\n", names[k], Median(ops[k]),
                  Median(cpu[k]));
    }
    auto spread = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return std::make_pair(v.front(), v.back());
    };
    const auto [c_min, c_max] = spread(vs_client);
    const auto [d_min, d_max] = spread(vs_direct);
    std::printf(
        "Pipeline via the seed / client MultiGet    : median %.2fx (adjacent runs: %.2fx .. "
        "%.2fx)\n"
        "Pipeline via the seed / Pipeline to owners : median %.2fx (adjacent runs: %.2fx .. "
        "%.2fx)\n",
        Median(vs_client), c_min, c_max, Median(vs_direct), d_min, d_max);
    std::printf(
        "RESULT batch=%u client_ops=%.0f client_cpu_us=%.2f via_seed_ops=%.0f via_seed_cpu_us=%.2f "
        "direct_ops=%.0f direct_cpu_us=%.2f via_seed_vs_client=%.3f via_seed_vs_direct=%.3f\n",
        flags.batch, Median(ops[0]), Median(cpu[0]), Median(ops[1]), Median(cpu[1]), Median(ops[2]),
        Median(cpu[2]), Median(vs_client), Median(vs_direct));
  }
  if (flags.skip_unary) return errors == 0 ? 0 : 1;

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

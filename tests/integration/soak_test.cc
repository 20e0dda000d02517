// A sustained mixed workload against one node with a small memory budget: Pipeline
// streams, unary calls and metrics scrapes for $RINGCACHE_SOAK_SECONDS (default 30 s).
// Every call must succeed or miss (evicted keys), the cache must stay within its budget,
// the process's memory must stay bounded, and the node must still shut down cleanly.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr int kKeySpace = 50'000;
constexpr uint64_t kBudget = uint64_t{16} << 20;

std::chrono::seconds SoakDuration() {
  const char* env = std::getenv("RINGCACHE_SOAK_SECONDS");
  const int s = env != nullptr ? std::atoi(env) : 0;
  return std::chrono::seconds(s > 0 ? s : 30);
}

// Resident set size of `pid` in bytes, 0 if unknown.
uint64_t RssBytes(pid_t pid) { return ProcStatusBytes(pid, "VmRSS"); }

// What one worker saw (checked on the test thread: Catch is not thread-safe).
struct WorkerReport {
  std::map<int, int64_t> codes;  // Per-operation status code -> count.
  std::vector<std::string> problems;
  int64_t ops = 0;
  int streams = 0;

  void Problem(std::string p) {
    if (problems.size() < 10) problems.push_back(std::move(p));
  }
};

bool ExpectedCode(int code) {
  return code == static_cast<int>(StatusCode::OK) ||
         code == static_cast<int>(StatusCode::NOT_FOUND);
}

// Repeated Pipeline streams of 10,000 random operations until `end`.
void PipelineWorker(v1::Cache::Stub& stub, uint32_t seed, SteadyClock::time_point end,
                    WorkerReport* out) {
  std::mt19937 rng(seed);
  const std::string filler(4096, 'x');
  while (SteadyClock::now() < end) {
    constexpr int kOps = 10'000;
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(60'000));
    auto stream = stub.Pipeline(&ctx);
    std::vector<v1::PipelineRequest> messages(kOps / 100);
    for (int i = 0; i < kOps; ++i) {
      v1::Operation* op = messages[static_cast<size_t>(i / 100)].add_ops();
      op->set_id(static_cast<uint64_t>(i));
      const std::string key = "k" + std::to_string(rng() % kKeySpace);
      switch (rng() % 6) {
        case 0:
        case 1:
          op->mutable_set()->set_key(key);
          op->mutable_set()->set_value(filler.substr(0, 256 + rng() % 3840));
          break;
        case 2:
        case 3:
          op->mutable_get()->set_key(key);
          break;
        case 4:
          op->mutable_incr()->set_key("c" + std::to_string(rng() % 100));
          op->mutable_incr()->set_delta(1);
          break;
        default:
          op->mutable_delete_()->set_key(key);
          break;
      }
    }
    std::thread writer([&] {
      for (const auto& m : messages) {
        if (!stream->Write(m)) break;
      }
      stream->WritesDone();
    });
    std::vector<int> seen(kOps, 0);
    v1::PipelineResponse resp;
    while (stream->Read(&resp)) {
      for (const auto& r : resp.results()) {
        ++out->ops;
        ++out->codes[r.status().code()];
        if (r.id() >= static_cast<uint64_t>(kOps) || ++seen[r.id()] > 1) {
          out->Problem("unexpected or repeated id " + std::to_string(r.id()));
        }
        if (!ExpectedCode(r.status().code())) out->Problem("op: " + Describe(r.status()));
      }
    }
    writer.join();
    const grpc::Status finish = stream->Finish();
    ++out->streams;
    if (!finish.ok()) out->Problem("stream: " + Describe(finish));
    for (int i = 0; i < kOps; ++i) {
      if (seen[static_cast<size_t>(i)] == 0) {
        out->Problem("id " + std::to_string(i) + " never answered");
        break;
      }
    }
    if (!finish.ok()) return;
  }
}

// Unary Set/Get/MultiGet/Touch/Ttl until `end`.
void UnaryWorker(v1::Cache::Stub& stub, uint32_t seed, SteadyClock::time_point end,
                 WorkerReport* out) {
  std::mt19937 rng(seed);
  while (SteadyClock::now() < end) {
    const std::string key = "k" + std::to_string(rng() % kKeySpace);
    grpc::Status st;
    switch (rng() % 5) {
      case 0:
        st = Set(stub, key, std::string(128, 'u'), {.ttl_ms = 1 + rng() % 2000}).status;
        break;
      case 1:
        st = Get(stub, key).status;
        break;
      case 2:
        st = Touch(stub, key, rng() % 5000).status;
        break;
      case 3:
        st = Ttl(stub, key).status;
        break;
      default: {
        v1::MultiGetRequest req;
        for (int i = 0; i < 50; ++i) req.add_keys("k" + std::to_string(rng() % kKeySpace));
        auto reply = Unary(stub, &v1::Cache::Stub::MultiGet, req);
        st = reply.status;
        for (const auto& r : reply.response.results()) {
          ++out->codes[r.status().code()];
          if (!ExpectedCode(r.status().code()))
            out->Problem("MultiGet item: " + Describe(r.status()));
        }
      }
    }
    ++out->ops;
    ++out->codes[st.error_code()];
    if (!ExpectedCode(st.error_code())) out->Problem("unary: " + Describe(st));
  }
}

TEST_CASE("A sustained mixed workload in a 16 MiB budget: no errors, bounded memory, clean exit",
          "[integration][soak][slow]") {
  NodeProcess node({"--node-id", "soak", "--memory", "16MiB", "--threads", "2", "--max-value-bytes",
                    "64KiB", "--shutdown-grace-ms", "2000"});
  RequireStart(node);
  auto stub = node.NewStub();
  const auto duration = SoakDuration();
  const auto end = SteadyClock::now() + duration;

  std::vector<WorkerReport> reports(3);
  std::vector<std::thread> workers;
  workers.emplace_back([&] { PipelineWorker(*stub, 1, end, &reports[0]); });
  workers.emplace_back([&] { PipelineWorker(*node.NewStub(), 2, end, &reports[1]); });
  workers.emplace_back([&] { UnaryWorker(*stub, 3, end, &reports[2]); });

  // Meanwhile: scrape and sample memory once a second (no Catch macros until joined).
  uint64_t max_rss = 0;
  uint64_t max_cache_bytes = 0;
  int scrapes_ok = 0;
  int scrapes = 0;
  while (SteadyClock::now() < end) {
    std::this_thread::sleep_for(milliseconds(1000));
    max_rss = std::max(max_rss, RssBytes(node.Pid()));
    const HttpResponse metrics = HttpGet(node.MetricsAddress(), "/metrics");
    ++scrapes;
    if (metrics.status != 200) continue;
    ++scrapes_ok;
    const size_t at = metrics.body.find("\nringcache_cache_bytes ");
    if (at != std::string::npos) {
      max_cache_bytes = std::max<uint64_t>(
          max_cache_bytes, std::strtoull(metrics.body.c_str() + at + 23, nullptr, 10));
    }
  }
  for (auto& w : workers) w.join();

  auto stats = Stats(*stub);
  const auto exit = node.Terminate(milliseconds(2000 + 3000));

  INFO("soak " << duration.count() << " s; max RSS " << (max_rss >> 20) << " MiB; max cache bytes "
               << max_cache_bytes);
  for (size_t w = 0; w < reports.size(); ++w) {
    INFO("worker " << w << ": " << reports[w].ops << " ops, " << reports[w].streams << " streams");
    for (const auto& p : reports[w].problems) UNSCOPED_INFO(p);
    for (const auto& [code, n] : reports[w].codes) UNSCOPED_INFO(n << " x " << CodeName(code));
    CHECK(reports[w].problems.empty());
    CHECK(reports[w].ops > 0);
    CHECK(reports[w].codes[0] > 0);
  }
  CHECK(scrapes_ok == scrapes);
  CHECK(max_cache_bytes <= kBudget);
  CHECK(max_rss < (uint64_t{256} << 20));  // A budget of 16 MiB; gigabytes were written.
  REQUIRE_THAT(stats.status, IsOk());
  CHECK(stats.response.evictions() > 0);
  CHECK(stats.response.bytes_used() <= kBudget);
  CHECK(stats.response.capacity_bytes() == kBudget);
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 0");
}

}  // namespace
}  // namespace ringcache::it

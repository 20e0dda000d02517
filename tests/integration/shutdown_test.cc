// Graceful shutdown of a real node: SIGTERM/SIGINT make it stop accepting, report
// NOT_SERVING, finish in-flight calls within --shutdown-grace-ms and exit 0; no call hangs.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
namespace health = ::grpc::health::v1;

bool HasShutdownLine(const std::string& log) {
  return std::regex_search(log, std::regex("shut", std::regex::icase));
}

bool AllowedDuringShutdown(int code) {
  return code == static_cast<int>(StatusCode::OK) ||
         code == static_cast<int>(StatusCode::UNAVAILABLE) ||
         code == static_cast<int>(StatusCode::CANCELLED);
}

TEST_CASE("SIGTERM and SIGINT on an idle node exit 0 promptly with a shutdown log line",
          "[integration][shutdown]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO("signal " << sig);
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  const auto start = SteadyClock::now();
  node.Signal(sig);
  const auto exit = node.WaitExit(milliseconds(5000));
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 0");
  CHECK(SteadyClock::now() - start < milliseconds(3000));
  CHECK(HasShutdownLine(node.Stderr()));
  CHECK_FALSE(CanConnect(node.GrpcAddress(), milliseconds(500)));
  CHECK_FALSE(std::filesystem::exists(node.ReadyFile()));  // Removed at shutdown.
}

TEST_CASE("A Pipeline stream open at SIGTERM is drained: answered ops are right, then it ends",
          "[integration][shutdown]") {
  // docs/operations.md: on SIGTERM every Pipeline stream stops reading, sends the results
  // of the operations it has already read, then ends with UNAVAILABLE; the node then exits
  // without waiting out the grace period. (If the whole stream was read first, it ends OK.)
  auto flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--shutdown-grace-ms", "5000"});
  NodeProcess node(flags);
  RequireStart(node);
  auto stub = node.NewStub();

  constexpr int kOps = 5000;
  grpc::ClientContext ctx;
  SetDeadline(ctx, milliseconds(20'000));
  auto stream = stub->Pipeline(&ctx);
  for (int i = 0; i < kOps; i += kTestMaxBatch) {
    v1::PipelineRequest req;
    for (int k = i; k < i + kTestMaxBatch; ++k) {
      auto* op = req.add_ops();
      op->set_id(static_cast<uint64_t>(k));
      op->mutable_set()->set_key("drain-" + std::to_string(k));
      op->mutable_set()->set_value("v");
    }
    REQUIRE(stream->Write(req));
  }
  std::vector<int> seen(kOps, 0);
  int answered = 0;
  int ok = 0;
  int foreign = 0;
  auto take = [&](const v1::PipelineResponse& resp) {
    for (const auto& r : resp.results()) {
      ++answered;
      if (r.id() >= static_cast<uint64_t>(kOps)) {
        ++foreign;
        continue;
      }
      ++seen[r.id()];
      ok += r.status().code() == 0 ? 1 : 0;
    }
  };
  v1::PipelineResponse resp;
  REQUIRE(stream->Read(&resp));  // The node is working on the stream.
  take(resp);

  const auto sigterm = SteadyClock::now();
  node.Signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(200));  // Shutdown has begun.
  stream->WritesDone();
  while (stream->Read(&resp)) take(resp);
  const grpc::Status finish = stream->Finish();
  const auto exit = node.WaitExit(milliseconds(5000 + 3000));
  const auto elapsed = SteadyClock::now() - sigterm;

  INFO(answered << " of " << kOps << " operations answered; finish " << Describe(finish));
  if (finish.ok()) {
    CHECK(answered == kOps);
  } else {
    // Normally the node's own status. Rarely (seen about once in 200 runs on a loaded
    // machine) the connection closes under the client's WritesDone before the trailers
    // are read, and gRPC reports the transport's UNAVAILABLE instead; docs/api.md states
    // that case. The code, and every check on the answered ops below, hold either way.
    CHECK_THAT(finish, StatusIs(StatusCode::UNAVAILABLE,
                                {"shutting down|broken pipe|connection reset|socket closed"}));
    if (finish.error_message().find("shutting down") == std::string::npos) {
      WARN("stream ended by the transport, not the node's status: " << Describe(finish));
    }
  }
  CHECK(answered > 0);
  CHECK(ok == answered);  // Every answer is a success.
  CHECK(foreign == 0);
  CHECK(std::count_if(seen.begin(), seen.end(), [](int n) { return n > 1; }) == 0);
  // The node reads messages in order and answers every op it read: the answered ids are
  // exactly 0..answered-1 (nothing skipped).
  CHECK(std::count(seen.begin(), seen.begin() + std::min(answered, kOps), 1) == answered);
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 0");
  // Nothing was left in flight, so the node need not wait out the grace period.
  CHECK(elapsed < milliseconds(4500));
  CHECK(HasShutdownLine(node.Stderr()));
}

// Unary traffic from one thread until told to stop (bounded by 20 s and 100,000 calls).
struct UnaryLoad {
  std::map<int, int> codes;  // Status code -> count.
  SteadyClock::duration slowest{0};
  int calls = 0;
};

void RunUnaryLoad(v1::Cache::Stub& stub, int thread, const std::atomic<bool>& stop,
                  UnaryLoad* out) {
  const auto end = SteadyClock::now() + std::chrono::seconds(20);
  for (int i = 0; i < 100'000 && !stop.load() && SteadyClock::now() < end; ++i) {
    // Set a key, then Get the same key: while serving, both are OK.
    const std::string key = "t" + std::to_string(thread) + "-" + std::to_string((i / 2) % 500);
    const auto start = SteadyClock::now();
    const grpc::Status st = (i % 2 == 0) ? Set(stub, key, "value").status : Get(stub, key).status;
    out->slowest = std::max(out->slowest, SteadyClock::now() - start);
    ++out->codes[st.error_code()];
    ++out->calls;
    if (!st.ok()) std::this_thread::sleep_for(milliseconds(5));  // Node going away.
  }
}

TEST_CASE("SIGTERM under load: in-flight calls end OK or UNAVAILABLE/CANCELLED, exit 0 in time",
          "[integration][shutdown]") {
  constexpr int kGraceMs = 1500;
  auto flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--shutdown-grace-ms", std::to_string(kGraceMs)});
  NodeProcess node(flags);
  RequireStart(node);
  auto stub = node.NewStub();
  auto stream_stub = node.NewStub();  // Its own connection.
  auto health_stub = health::Health::NewStub(node.NewChannel());

  {  // Connects the health channel while serving.
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    health::HealthCheckResponse resp;
    REQUIRE_THAT(health_stub->Check(&ctx, health::HealthCheckRequest{}, &resp), IsOk());
    REQUIRE(resp.status() == health::HealthCheckResponse::SERVING);
  }

  // No REQUIRE from here until the threads are joined (a throw would skip the joins).
  std::atomic<bool> stop{false};

  // A Pipeline stream that never ends on its own: the writer keeps sending until the node
  // cuts the stream at the end of the grace period.
  grpc::ClientContext stream_ctx;
  SetDeadline(stream_ctx, milliseconds(30'000));
  auto stream = stream_stub->Pipeline(&stream_ctx);
  std::atomic<int> stream_results{0};
  std::atomic<int> stream_writes{0};
  std::thread stream_writer([&] {
    const auto end = SteadyClock::now() + std::chrono::seconds(20);
    for (uint64_t id = 0; !stop.load() && SteadyClock::now() < end; id += 10) {
      v1::PipelineRequest req;
      for (uint64_t k = id; k < id + 10; ++k) {
        auto* op = req.add_ops();
        op->set_id(k);
        op->mutable_get()->set_key("p" + std::to_string(k % 100));
      }
      if (!stream->Write(req)) break;
      ++stream_writes;
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  std::thread stream_reader([&] {
    v1::PipelineResponse resp;
    while (stream->Read(&resp)) stream_results += resp.results_size();
  });

  std::vector<UnaryLoad> loads(2);
  std::vector<std::thread> unary;
  for (int t = 0; t < 2; ++t) {
    unary.emplace_back([&, t] { RunUnaryLoad(*stub, t, stop, &loads[static_cast<size_t>(t)]); });
  }

  std::this_thread::sleep_for(milliseconds(500));
  const int results_before = stream_results.load();

  const auto sigterm = SteadyClock::now();
  node.Signal(SIGTERM);

  // Health turns NOT_SERVING (or the server stops answering) soon after the signal.
  bool saw_not_serving = false;
  std::string health_seen;
  for (int i = 0; i < 100 && SteadyClock::now() - sigterm < milliseconds(kGraceMs); ++i) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(500));
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
    const grpc::Status st = health_stub->Check(&ctx, req, &resp);
    if (!st.ok()) {
      health_seen = Describe(st);
      saw_not_serving = true;
      break;
    }
    if (resp.status() != health::HealthCheckResponse::SERVING) {
      health_seen = "status " + std::to_string(resp.status());
      saw_not_serving = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  // /healthz says 503 while shutting down (or the endpoint is already closed).
  const HttpResponse healthz = HttpGet(node.MetricsAddress(), "/healthz", milliseconds(1000));

  const auto exit = node.WaitExit(milliseconds(kGraceMs + 3000));
  const auto exit_after = SteadyClock::now() - sigterm;
  stop = true;
  for (auto& t : unary) t.join();
  stream_writer.join();
  stream_reader.join();
  const grpc::Status finish = stream->Finish();

  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 0");
  INFO("exited after " << std::chrono::duration_cast<milliseconds>(exit_after).count() << " ms");
  CHECK(exit_after < milliseconds(kGraceMs + 3000));
  INFO("health after SIGTERM: " << health_seen);
  CHECK(saw_not_serving);
  INFO("/healthz: " << healthz.status << " " << healthz.error);
  CHECK((healthz.status == 503 || healthz.status == 0));
  CHECK(HasShutdownLine(node.Stderr()));

  CHECK(results_before > 0);
  INFO("stream: " << stream_writes.load() << " writes, " << stream_results.load() << " results");
  CHECK(AllowedDuringShutdown(finish.error_code()));
  INFO("stream finish: " << Describe(finish));
  for (size_t t = 0; t < loads.size(); ++t) {
    INFO("unary thread " << t << ": " << loads[t].calls << " calls");
    CHECK(loads[t].codes[0] > 0);
    for (const auto& [code, count] : loads[t].codes) {
      INFO(count << " x " << CodeName(code));
      CHECK(AllowedDuringShutdown(code));
    }
    CHECK(loads[t].slowest < milliseconds(kRpcTimeout));
  }
  CHECK_FALSE(CanConnect(node.GrpcAddress(), milliseconds(500)));
}

}  // namespace
}  // namespace ringcache::it

namespace ringcache::it {
namespace {

// A Pipeline stream whose client writes but never reads: once the node's result queue and
// the transport's flow-control windows are full, the stream cannot finish by itself, so
// it holds a shutdown open until the grace period ends.
class StuckStream {
 public:
  explicit StuckStream(const NodeProcess& node) : stub_(node.NewStub()) {
    SetDeadline(ctx_, milliseconds(30'000));
    stream_ = stub_->Pipeline(&ctx_);
    writer_ = std::thread([this] {
      const auto end = SteadyClock::now() + std::chrono::seconds(25);
      for (uint64_t id = 0; SteadyClock::now() < end; id += 100) {
        v1::PipelineRequest req;
        for (uint64_t k = id; k < id + 100; ++k) {
          auto* op = req.add_ops();
          op->set_id(k);
          op->mutable_get()->set_key("big");
        }
        if (!stream_->Write(req)) break;  // Blocks once the windows are full.
        ++writes_;
      }
    });
  }
  ~StuckStream() {
    ctx_.TryCancel();  // Unblocks the writer.
    writer_.join();
  }
  StuckStream(const StuckStream&) = delete;
  StuckStream& operator=(const StuckStream&) = delete;

  // Waits (at most 5 s) until the writer has made no progress for 300 ms.
  bool WaitStuck() {
    int last = -1;
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(milliseconds(300));
      const int now = writes_.load();
      if (now == last && now > 0) return true;
      last = now;
    }
    return false;
  }

 private:
  std::unique_ptr<v1::Cache::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::PipelineRequest, v1::PipelineResponse>> stream_;
  std::atomic<int> writes_{0};
  std::thread writer_;
};

std::vector<std::string> BigValueNodeFlags(int grace_ms) {
  return {"--node-id",
          "it-node",
          "--memory",
          "64MiB",
          "--threads",
          "2",
          "--max-value-bytes",
          "64KiB",
          "--shutdown-grace-ms",
          std::to_string(grace_ms)};
}

TEST_CASE("A shutdown held open by a stuck stream: unhealthy meanwhile, exit 0 at the grace bound",
          "[integration][shutdown]") {
  constexpr int kGraceMs = 1500;
  NodeProcess node(BigValueNodeFlags(kGraceMs));
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "big", std::string(60 * 1024, 'b')).status, IsOk());
  auto health_stub = health::Health::NewStub(node.NewChannel());
  {  // Connects the health channel while serving.
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    health::HealthCheckResponse resp;
    REQUIRE_THAT(health_stub->Check(&ctx, health::HealthCheckRequest{}, &resp), IsOk());
    REQUIRE(resp.status() == health::HealthCheckResponse::SERVING);
  }

  auto stuck = std::make_unique<StuckStream>(node);
  REQUIRE(stuck->WaitStuck());
  const auto sigterm = SteadyClock::now();
  node.Signal(SIGTERM);

  // /healthz turns 503 while the node drains.
  int healthz = 0;
  for (int i = 0; i < 50 && SteadyClock::now() - sigterm < milliseconds(1000); ++i) {
    healthz = HttpGet(node.MetricsAddress(), "/healthz", milliseconds(500)).status;
    if (healthz != 200) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  // gRPC health is NOT_SERVING, or the call is refused: the node takes no new calls.
  grpc::ClientContext ctx;
  SetDeadline(ctx, milliseconds(500));
  health::HealthCheckResponse health_resp;
  const grpc::Status health_status =
      health_stub->Check(&ctx, health::HealthCheckRequest{}, &health_resp);
  // A call on a brand-new connection is refused.
  const grpc::Status new_call = Get(*node.NewStub(), "big").status;
  const auto until_near_grace = std::chrono::duration_cast<milliseconds>(
      sigterm + milliseconds(kGraceMs - 500) - SteadyClock::now());
  const bool alive_before_grace =
      !node.WaitExit(std::max(milliseconds(0), until_near_grace)).has_value();
  const auto exit = node.WaitExit(milliseconds(kGraceMs + 3000));
  const auto exit_after = SteadyClock::now() - sigterm;
  stuck.reset();

  CHECK(healthz == 503);
  INFO("health: " << Describe(health_status) << " status " << health_resp.status());
  CHECK((!health_status.ok() || health_resp.status() == health::HealthCheckResponse::NOT_SERVING));
  INFO("new call: " << Describe(new_call));
  CHECK(new_call.error_code() == StatusCode::UNAVAILABLE);
  CHECK(alive_before_grace);  // It gave the stream its grace period...
  REQUIRE(exit.has_value());  // ...and no more.
  CHECK(exit->ToString() == "exit 0");
  INFO("exited after " << std::chrono::duration_cast<milliseconds>(exit_after).count() << " ms");
  CHECK(exit_after < milliseconds(kGraceMs + 3000));
  CHECK(HasShutdownLine(node.Stderr()));
}

TEST_CASE("A second SIGTERM during a held-open shutdown exits 1 at once",
          "[integration][shutdown]") {
  NodeProcess node(BigValueNodeFlags(20'000));
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "big", std::string(60 * 1024, 'b')).status, IsOk());
  auto stuck = std::make_unique<StuckStream>(node);
  REQUIRE(stuck->WaitStuck());
  node.Signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(300));
  const bool still_draining = !node.WaitExit(milliseconds(0)).has_value();
  const auto second = SteadyClock::now();
  node.Signal(SIGTERM);
  const auto exit = node.WaitExit(milliseconds(3000));
  const auto exit_after = SteadyClock::now() - second;
  stuck.reset();

  CHECK(still_draining);
  REQUIRE(exit.has_value());
  CHECK(exit->ToString() == "exit 1");
  CHECK(exit_after < milliseconds(2000));
}

}  // namespace
}  // namespace ringcache::it

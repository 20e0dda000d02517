// The Pipeline stream against a real node: thousands of mixed operations in flight on one
// stream (a writer thread sends while the reader collects), every id answered exactly once
// with the right result, per-operation errors, and the per-message --max-batch limit.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using Stream = grpc::ClientReaderWriter<v1::PipelineRequest, v1::PipelineResponse>;

constexpr int kPreloaded = 1000;

std::string Key(const std::string& prefix, const char* kind, uint64_t i) {
  return prefix + kind + std::to_string(i);
}

// The deterministic workload: operation i of a run with key prefix `prefix`. Keys of
// different operations never conflict, except the shared counter, whose increments
// commute; so every result is known in advance whatever order the node runs them in.
struct Workload {
  std::string prefix;
  uint64_t id_base;
  int ops;

  enum class Kind {
    kSet,
    kGetHit,
    kGetMiss,
    kIncrOwn,
    kIncrShared,
    kDeleteHit,
    kTouch,
    kTtl,
    kDeleteMiss,
    kEmptyOp,
    kEmptyKey
  };

  Kind KindOf(int i) const {
    if (i % 1000 == 999) return Kind::kEmptyOp;
    if (i % 1000 == 500) return Kind::kEmptyKey;
    switch (i % 8) {
      case 0:
        return Kind::kSet;
      case 1:
        return Kind::kGetHit;
      case 2:
        return Kind::kGetMiss;
      case 3:
        return (i / 8) % 2 == 0 ? Kind::kIncrOwn : Kind::kIncrShared;
      case 4:
        return Kind::kDeleteHit;
      case 5:
        return Kind::kTouch;
      case 6:
        return Kind::kTtl;
      default:
        return Kind::kDeleteMiss;
    }
  }

  // Keys that must exist before the run: the preloaded values and the delete targets.
  std::vector<v1::SetRequest> Preload() const {
    std::vector<v1::SetRequest> items;
    for (int j = 0; j < kPreloaded; ++j) {
      items.push_back(MakeSet(Key(prefix, "pre-", j), "v" + std::to_string(j)));
    }
    for (int i = 0; i < ops; ++i) {
      if (KindOf(i) == Kind::kDeleteHit) items.push_back(MakeSet(Key(prefix, "del-", i), "d"));
    }
    return items;
  }

  v1::Operation Op(int i) const {
    v1::Operation op;
    op.set_id(id_base + static_cast<uint64_t>(i));
    switch (KindOf(i)) {
      case Kind::kSet:
        op.mutable_set()->set_key(Key(prefix, "p-", i));
        op.mutable_set()->set_value("val-" + std::to_string(i));
        break;
      case Kind::kGetHit:
        op.mutable_get()->set_key(Key(prefix, "pre-", i % kPreloaded));
        break;
      case Kind::kGetMiss:
        op.mutable_get()->set_key(Key(prefix, "nope-", i));
        break;
      case Kind::kIncrOwn:
        op.mutable_incr()->set_key(Key(prefix, "ctr-", i));
        op.mutable_incr()->set_delta(i);
        break;
      case Kind::kIncrShared:
        op.mutable_incr()->set_key(prefix + "shared");
        op.mutable_incr()->set_delta(1);
        break;
      case Kind::kDeleteHit:
        op.mutable_delete_()->set_key(Key(prefix, "del-", i));
        break;
      case Kind::kTouch:
        op.mutable_touch()->set_key(Key(prefix, "pre-", i % kPreloaded));
        op.mutable_touch()->set_ttl_ms(0);
        break;
      case Kind::kTtl:
        op.mutable_ttl()->set_key(Key(prefix, "pre-", i % kPreloaded));
        break;
      case Kind::kDeleteMiss:
        op.mutable_delete_()->set_key(Key(prefix, "nope-", i));
        break;
      case Kind::kEmptyOp:
        break;  // Nothing set.
      case Kind::kEmptyKey:
        op.mutable_set()->set_value("no key");
        break;
    }
    return op;
  }

  int SharedIncrs() const {
    int n = 0;
    for (int i = 0; i < ops; ++i) n += KindOf(i) == Kind::kIncrShared ? 1 : 0;
    return n;
  }

  // "" if `r` is the right answer to operation i, else what is wrong.
  std::string Check(int i, const v1::OperationResult& r, std::vector<int64_t>* shared) const {
    using RC = v1::OperationResult::ResultCase;
    auto expect = [&](StatusCode code, RC result_case) -> std::string {
      if (r.status().code() != static_cast<int>(code)) {
        return "expected " + CodeName(code) + ", got " + Describe(r.status());
      }
      if (r.result_case() != result_case) {
        return "result case " + std::to_string(r.result_case()) + ", expected " +
               std::to_string(result_case);
      }
      return "";
    };
    std::string err;
    switch (KindOf(i)) {
      case Kind::kSet:
        err = expect(StatusCode::OK, RC::kSet);
        if (err.empty() && r.set().version() == 0) err = "set version 0";
        return err;
      case Kind::kGetHit:
        err = expect(StatusCode::OK, RC::kGet);
        if (err.empty() && r.get().value() != "v" + std::to_string(i % kPreloaded)) {
          err = "get value '" + r.get().value() + "'";
        }
        return err;
      case Kind::kGetMiss:
        return expect(StatusCode::NOT_FOUND, RC::RESULT_NOT_SET);
      case Kind::kIncrOwn:
        err = expect(StatusCode::OK, RC::kIncr);
        if (err.empty() && r.incr().value() != i) {
          err = "incr value " + std::to_string(r.incr().value());
        }
        return err;
      case Kind::kIncrShared:
        err = expect(StatusCode::OK, RC::kIncr);
        if (err.empty()) shared->push_back(r.incr().value());
        return err;
      case Kind::kDeleteHit:
        return expect(StatusCode::OK, RC::kDelete);
      case Kind::kTouch:
        return expect(StatusCode::OK, RC::kTouch);
      case Kind::kTtl:
        err = expect(StatusCode::OK, RC::kTtl);
        if (err.empty() && r.ttl().ttl_ms() != 0) {
          err = "ttl " + std::to_string(r.ttl().ttl_ms());
        }
        return err;
      case Kind::kDeleteMiss:
        return expect(StatusCode::NOT_FOUND, RC::RESULT_NOT_SET);
      case Kind::kEmptyOp:
        return expect(StatusCode::INVALID_ARGUMENT, RC::RESULT_NOT_SET);
      case Kind::kEmptyKey:
        err = expect(StatusCode::INVALID_ARGUMENT, RC::RESULT_NOT_SET);
        if (err.empty() && r.status().message().find("key") == std::string::npos) {
          err = "message does not name the key: " + r.status().message();
        }
        return err;
    }
    return "unknown kind";
  }
};

// What a Pipeline run saw; checked on the test's thread (Catch is not thread-safe).
struct RunResult {
  grpc::Status finish;
  int answered = 0;                // Results received.
  int missing = 0;                 // Ids never answered.
  int duplicates = 0;              // Extra answers for an id.
  int foreign = 0;                 // Ids that were never sent.
  std::vector<std::string> wrong;  // First few wrong results.
  int wrong_count = 0;
  std::vector<int64_t> shared_values;
  int messages_written = 0;
  bool writer_ok = true;
  double seconds = 0;
};

// Preloads and runs `w` over one Pipeline stream: a writer thread sends every operation
// (messages of varying sizes, all without waiting for answers) while this thread reads.
RunResult RunPipeline(v1::Cache::Stub& stub, const Workload& w, std::chrono::milliseconds timeout) {
  RunResult out;
  const auto preload = w.Preload();
  for (size_t start = 0; start < preload.size(); start += 1000) {
    v1::MultiSetRequest req;
    for (size_t j = start; j < std::min(preload.size(), start + 1000); ++j) {
      *req.add_items() = preload[j];
    }
    auto reply = Unary(stub, &v1::Cache::Stub::MultiSet, req);
    if (!reply.status.ok()) {
      out.finish = reply.status;
      out.wrong.push_back("preload MultiSet failed: " + Describe(reply.status));
      return out;
    }
  }

  const auto started = std::chrono::steady_clock::now();
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  std::unique_ptr<Stream> stream = stub.Pipeline(&ctx);

  std::thread writer([&] {
    static constexpr int kSizes[] = {1, 7, 50, 200, 13, 1000, 3};
    int i = 0;
    int m = 0;
    while (i < w.ops) {
      v1::PipelineRequest req;
      const int n = std::min(kSizes[m % std::size(kSizes)], w.ops - i);
      for (int k = 0; k < n; ++k) *req.add_ops() = w.Op(i++);
      ++m;
      if (!stream->Write(req)) {
        out.writer_ok = false;
        break;
      }
    }
    out.messages_written = m;
    stream->WritesDone();
  });

  std::vector<int> seen(static_cast<size_t>(w.ops), 0);
  v1::PipelineResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) {
      ++out.answered;
      if (r.id() < w.id_base || r.id() >= w.id_base + static_cast<uint64_t>(w.ops)) {
        ++out.foreign;
        continue;
      }
      const int i = static_cast<int>(r.id() - w.id_base);
      if (++seen[static_cast<size_t>(i)] > 1) {
        ++out.duplicates;
        continue;
      }
      std::string err = w.Check(i, r, &out.shared_values);
      if (!err.empty()) {
        ++out.wrong_count;
        if (out.wrong.size() < 10) out.wrong.push_back("op " + std::to_string(i) + ": " + err);
      }
    }
  }
  writer.join();
  out.finish = stream->Finish();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  out.missing = static_cast<int>(std::count(seen.begin(), seen.end(), 0));
  return out;
}

void CheckRun(v1::Cache::Stub& stub, const Workload& w, const RunResult& run) {
  INFO("run " << w.prefix << ": " << w.ops << " ops in " << run.messages_written << " messages, "
              << run.seconds << " s");
  for (const auto& e : run.wrong) UNSCOPED_INFO(e);
  CHECK_THAT(run.finish, IsOk());
  CHECK(run.writer_ok);
  CHECK(run.answered == w.ops);
  CHECK(run.missing == 0);
  CHECK(run.duplicates == 0);
  CHECK(run.foreign == 0);
  CHECK(run.wrong_count == 0);

  // The shared counter's increments are atomic: their results are exactly 1..n.
  std::vector<int64_t> shared = run.shared_values;
  std::sort(shared.begin(), shared.end());
  const int n = w.SharedIncrs();
  bool permutation = static_cast<int>(shared.size()) == n;
  for (int k = 0; permutation && k < n; ++k) permutation = shared[static_cast<size_t>(k)] == k + 1;
  CHECK(permutation);
  auto total = Get(stub, w.prefix + "shared");
  REQUIRE_THAT(total.status, IsOk());
  CHECK(total.response.value() == std::to_string(n));

  // Spot-check the writes and deletes took effect.
  CHECK(Get(stub, Key(w.prefix, "p-", 8)).response.value() == "val-8");
  CHECK_THAT(Get(stub, Key(w.prefix, "del-", 4)).status, StatusIs(StatusCode::NOT_FOUND));
  CHECK(Get(stub, Key(w.prefix, "ctr-", 3)).response.value() == "3");
}

std::vector<std::string> PipelineNodeFlags() {
  return {"--node-id", "it-pipeline", "--memory", "256MiB", "--threads", "2"};
}

TEST_CASE("Pipeline answers 20,000 mixed operations in flight on one stream, each id once",
          "[integration][pipeline]") {
  NodeProcess node(PipelineNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  const Workload w{"one/", 1'000'000, 20'000};
  const RunResult run = RunPipeline(*stub, w, std::chrono::seconds(30));
  CheckRun(*stub, w, run);
}

TEST_CASE("Pipeline results carry the ids the client chose, including repeats and 0",
          "[integration][pipeline]") {
  NodeProcess node(PipelineNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());

  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::seconds(10));
  auto stream = stub->Pipeline(&ctx);
  v1::PipelineRequest req;
  for (uint64_t id : {uint64_t{0}, UINT64_MAX, uint64_t{7}, uint64_t{7}}) {
    auto* op = req.add_ops();
    op->set_id(id);
    op->mutable_get()->set_key("k");
  }
  REQUIRE(stream->Write(req));
  REQUIRE(stream->WritesDone());
  std::vector<uint64_t> ids;
  v1::PipelineResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) {
      ids.push_back(r.id());
      CHECK_THAT(r.status(), OpIs(StatusCode::OK));
      CHECK(r.get().value() == "v");
    }
  }
  CHECK_THAT(stream->Finish(), IsOk());
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint64_t>{0, 7, 7, UINT64_MAX});
}

TEST_CASE("An empty Pipeline stream finishes OK", "[integration][pipeline]") {
  NodeProcess node(PipelineNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::seconds(10));
  auto stream = stub->Pipeline(&ctx);
  REQUIRE(stream->Write(v1::PipelineRequest{}));  // A message without operations.
  REQUIRE(stream->WritesDone());
  v1::PipelineResponse resp;
  int results = 0;
  while (stream->Read(&resp)) results += resp.results_size();
  CHECK(results == 0);
  CHECK_THAT(stream->Finish(), IsOk());
}

TEST_CASE("A Pipeline message over --max-batch is refused naming max-batch",
          "[integration][pipeline][limits]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  const std::vector<std::string> names_limit = {"max[-_]batch", std::to_string(kTestMaxBatch)};

  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::seconds(10));
  auto stream = stub->Pipeline(&ctx);
  v1::PipelineRequest req;
  for (int i = 0; i <= kTestMaxBatch; ++i) {
    auto* op = req.add_ops();
    op->set_id(static_cast<uint64_t>(i));
    op->mutable_set()->set_key("k" + std::to_string(i));
    op->mutable_set()->set_value("v");
  }
  REQUIRE(stream->Write(req));
  stream->WritesDone();
  std::vector<v1::OperationResult> results;
  v1::PipelineResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) results.push_back(r);
  }
  const grpc::Status finish = stream->Finish();
  // The contract allows either form: the stream fails with INVALID_ARGUMENT naming the
  // limit, or every operation of the message is answered with it.
  INFO("finish: " << Describe(finish) << ", " << results.size() << " results");
  if (finish.ok()) {
    CHECK(results.size() == static_cast<size_t>(kTestMaxBatch + 1));
    for (const auto& r : results)
      CHECK_THAT(r.status(), OpIs(StatusCode::INVALID_ARGUMENT, names_limit));
  } else {
    CHECK_THAT(finish, StatusIs(StatusCode::INVALID_ARGUMENT, names_limit));
  }
  CHECK_THAT(Get(*stub, "k0").status, StatusIs(StatusCode::NOT_FOUND));  // Nothing applied.
}

// Reads a stream to its end: every result, and the status.
std::vector<v1::OperationResult> ReadAll(Stream* stream, grpc::Status* finish) {
  std::vector<v1::OperationResult> results;
  v1::PipelineResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& r : resp.results()) results.push_back(r);
  }
  *finish = stream->Finish();
  std::sort(results.begin(), results.end(),
            [](const auto& a, const auto& b) { return a.id() < b.id(); });
  return results;
}

TEST_CASE("Pipeline parts bound their results: past a part's limit reads fail or are handed back",
          "[integration][pipeline][limits]") {
  NodeProcess node(PipelineNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  const std::string value(1000, 'v');
  for (int i = 0; i < 3; ++i)
    REQUIRE_THAT(Set(*stub, "p" + std::to_string(i), value).status, IsOk());

  // Ops 0-2 in a failing part of 1500 bytes, ops 3-6 in a deferring one of 1500 bytes
  // (the 5th op, a set, comes after the crossing read), op 7 in no part.
  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::seconds(10));
  auto stream = stub->Pipeline(&ctx);
  v1::PipelineRequest req;
  auto get = [&](uint64_t id, const std::string& key) {
    v1::Operation* op = req.add_ops();
    op->set_id(id);
    op->mutable_get()->set_key(key);
  };
  get(0, "p0");
  get(1, "p1");
  get(2, "p2");
  get(3, "p0");
  get(4, "p1");
  v1::Operation* set = req.add_ops();
  set->set_id(5);
  set->mutable_set()->set_key("deferred-set");
  set->mutable_set()->set_value("x");
  get(6, "p2");
  get(7, "p0");
  v1::ResultLimit* failing = req.add_parts();
  failing->set_ops(3);
  failing->set_max_response_bytes(1500);
  v1::ResultLimit* deferring = req.add_parts();
  deferring->set_ops(4);
  deferring->set_max_response_bytes(1500);
  deferring->set_defer(true);
  REQUIRE(stream->Write(req));
  stream->WritesDone();
  grpc::Status finish;
  const std::vector<v1::OperationResult> results = ReadAll(stream.get(), &finish);
  REQUIRE_THAT(finish, IsOk());
  REQUIRE(results.size() == 8);
  // The failing part: the first read fits, the second crosses and loses its value, the
  // third is not run.
  CHECK(results[0].get().value() == value);
  CHECK_THAT(results[1].status(), OpIs(StatusCode::RESOURCE_EXHAUSTED, {"1500"}));
  CHECK_THAT(results[2].status(), OpIs(StatusCode::RESOURCE_EXHAUSTED, {"1500"}));
  // The deferring part: the crossing read keeps its value; the rest come back unrun,
  // each with the operation as sent.
  CHECK(results[3].get().value() == value);
  CHECK(results[4].get().value() == value);
  for (int i = 5; i <= 6; ++i) {
    INFO("op " << i);
    CHECK_THAT(results[i].status(), OpIs(StatusCode::ABORTED, {"deferred"}));
    REQUIRE(results[i].has_deferred());
    CHECK(results[i].deferred().SerializeAsString() == req.ops(i).SerializeAsString());
  }
  CHECK_THAT(Get(*stub, "deferred-set").status, StatusIs(StatusCode::NOT_FOUND));
  // Past the parts, no limit.
  CHECK(results[7].get().value() == value);
}

TEST_CASE("A Pipeline message whose parts claim more operations than it holds is refused",
          "[integration][pipeline][limits]") {
  NodeProcess node(PipelineNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::seconds(10));
  auto stream = stub->Pipeline(&ctx);
  v1::PipelineRequest req;
  v1::Operation* op = req.add_ops();
  op->mutable_set()->set_key("not-applied");
  op->mutable_set()->set_value("v");
  req.add_parts()->set_ops(1);
  req.add_parts()->set_ops(4294967295U);  // Hostile: the sum must not wrap.
  REQUIRE(stream->Write(req));
  stream->WritesDone();
  grpc::Status finish;
  const std::vector<v1::OperationResult> results = ReadAll(stream.get(), &finish);
  CHECK(results.empty());
  CHECK_THAT(finish,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"PipelineRequest.parts", "4294967296"}));
  CHECK_THAT(Get(*stub, "not-applied").status, StatusIs(StatusCode::NOT_FOUND));
}

TEST_CASE("Four concurrent Pipeline streams of 100,000 operations each",
          "[integration][pipeline]") {
  NodeProcess node({"--node-id", "it-pipeline", "--memory", "512MiB", "--threads", "2"});
  RequireStart(node);
  auto stub = node.NewStub();
  std::vector<Workload> loads;
  for (int s = 0; s < 4; ++s) {
    loads.push_back(
        Workload{"s" + std::to_string(s) + "/", static_cast<uint64_t>(s) * 10'000'000, 100'000});
  }
  std::vector<RunResult> runs(loads.size());
  std::vector<std::thread> threads;
  for (size_t s = 0; s < loads.size(); ++s) {
    threads.emplace_back(
        [&, s] { runs[s] = RunPipeline(*stub, loads[s], std::chrono::seconds(60)); });
  }
  for (auto& t : threads) t.join();
  for (size_t s = 0; s < loads.size(); ++s) CheckRun(*stub, loads[s], runs[s]);
}

}  // namespace
}  // namespace ringcache::it

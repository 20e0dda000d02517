// The metrics endpoint of a real node: after known traffic, GET /metrics reports the right
// counts in Prometheus text format 0.0.4, has the request histogram, and never a label per
// key; /healthz and unknown paths.
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_checks.h"
#include "cluster_harness.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using checks::CurrentRing;
using checks::Ring;
using grpc::StatusCode;
using std::chrono::milliseconds;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the sample lines of a text-format exposition (label values without escapes
// other than \" and \\, which is all ringcache emits).
std::vector<Sample> ParseExposition(const std::string& text, std::vector<std::string>* errors) {
  std::vector<Sample> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t pos = line.find_first_of("{ ");
    if (pos == std::string::npos) {
      errors->push_back("no value: " + line);
      continue;
    }
    s.name = line.substr(0, pos);
    if (line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        const size_t eq = line.find('=', pos);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') break;
        const std::string label = line.substr(pos, eq - pos);
        std::string value;
        size_t i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) ++i;
          value += line[i];
        }
        s.labels[label] = value;
        pos = i + 1;
        if (pos < line.size() && line[pos] == ',') ++pos;
      }
      if (pos >= line.size() || line[pos] != '}') {
        errors->push_back("bad labels: " + line);
        continue;
      }
      ++pos;
    }
    const std::string rest = line.substr(pos);
    char* end = nullptr;
    s.value = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) {
      errors->push_back("bad value: " + line);
      continue;
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

struct Scrape {
  HttpResponse http;
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  // The value of the sample `name` whose labels include `labels`; nullopt if none.
  std::optional<double> Value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        match = match && it != s.labels.end() && it->second == v;
      }
      if (match) return s.value;
    }
    return std::nullopt;
  }
};

Scrape ScrapeMetrics(const NodeProcess& node) {
  Scrape s;
  s.http = HttpGet(node.MetricsAddress(), "/metrics");
  s.samples = ParseExposition(s.http.body, &s.errors);
  return s;
}

// Scrapes until `ready(scrape)` or 3 s pass (the node may record a call just after
// answering it). Returns the last scrape.
template <typename Ready>
Scrape ScrapeUntil(const NodeProcess& node, Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(3000);
  Scrape s = ScrapeMetrics(node);
  for (int i = 0; i < 100 && !ready(s) && std::chrono::steady_clock::now() < deadline; ++i) {
    std::this_thread::sleep_for(milliseconds(30));
    s = ScrapeMetrics(node);
  }
  return s;
}

TEST_CASE("GET /metrics reports traffic in Prometheus text format without per-key labels",
          "[integration][metrics]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  REQUIRE_FALSE(node.MetricsAddress().empty());
  auto stub = node.NewStub();

  // Traffic with known outcomes. The keys share a marker that must never be scraped.
  const std::string marker = "zq7xkey";
  for (int i = 0; i < 7; ++i) {
    REQUIRE_THAT(Set(*stub, marker + std::to_string(i), "value").status, IsOk());
  }
  for (int i = 0; i < 7; ++i) REQUIRE_THAT(Get(*stub, marker + std::to_string(i)).status, IsOk());
  for (int i = 0; i < 3; ++i) {
    REQUIRE_THAT(Get(*stub, marker + "missing" + std::to_string(i)).status,
                 StatusIs(StatusCode::NOT_FOUND));
  }

  // A call's metrics are recorded when gRPC reports the call done, which may be just
  // after the client has its reply: wait (bounded) until every count has arrived, then
  // check them exactly.
  const Scrape s = ScrapeUntil(node, [](const Scrape& sc) {
    return sc.Value("ringcache_requests_total", {{"rpc", "Get"}, {"code", "NOT_FOUND"}}) == 3.0 &&
           sc.Value("ringcache_requests_total", {{"rpc", "Get"}, {"code", "OK"}}) >= 7.0 &&
           sc.Value("ringcache_requests_total", {{"rpc", "Set"}, {"code", "OK"}}) >= 7.0;
  });
  INFO("scrape:\n" << s.http.body << s.http.error);
  for (const auto& e : s.errors) UNSCOPED_INFO(e);
  REQUIRE(s.http.status == 200);
  CHECK(s.errors.empty());
  const std::string content_type = s.http.Header("Content-Type");
  CHECK(content_type.find("text/plain") != std::string::npos);
  CHECK(content_type.find("version=0.0.4") != std::string::npos);

  // Requests by rpc and code.
  CHECK(s.Value("ringcache_requests_total", {{"rpc", "Get"}, {"code", "OK"}}) == 7.0);
  CHECK(s.Value("ringcache_requests_total", {{"rpc", "Get"}, {"code", "NOT_FOUND"}}) == 3.0);
  CHECK(s.Value("ringcache_requests_total", {{"rpc", "Set"}, {"code", "OK"}}) == 7.0);

  // The latency histogram of Get: cumulative buckets ending in +Inf = count = 10.
  CHECK(s.http.body.find("# TYPE ringcache_request_duration_seconds histogram") !=
        std::string::npos);
  CHECK(s.Value("ringcache_request_duration_seconds_bucket", {{"rpc", "Get"}, {"le", "+Inf"}}) ==
        10.0);
  CHECK(s.Value("ringcache_request_duration_seconds_count", {{"rpc", "Get"}}) == 10.0);
  const auto sum = s.Value("ringcache_request_duration_seconds_sum", {{"rpc", "Get"}});
  REQUIRE(sum.has_value());
  CHECK(*sum >= 0.0);
  CHECK(*sum < 10.0);
  int buckets = 0;
  double previous = 0;
  bool cumulative = true;
  for (const Sample& sample : s.samples) {
    if (sample.name != "ringcache_request_duration_seconds_bucket") continue;
    if (sample.labels.count("rpc") == 0 || sample.labels.at("rpc") != "Get") continue;
    ++buckets;
    cumulative = cumulative && sample.value >= previous;
    previous = sample.value;
  }
  CHECK(buckets >= 2);
  CHECK(cumulative);

  // Cache counters and gauges.
  CHECK(s.Value("ringcache_cache_items") == 7.0);
  CHECK(s.Value("ringcache_cache_hits_total") == 7.0);
  CHECK(s.Value("ringcache_cache_misses_total") == 3.0);
  CHECK(s.Value("ringcache_cache_sets_total") == 7.0);
  CHECK(s.Value("ringcache_cache_deletes_total") == 0.0);
  CHECK(s.Value("ringcache_cache_evictions_total") == 0.0);
  CHECK(s.Value("ringcache_cache_expirations_total") == 0.0);
  CHECK(s.Value("ringcache_cache_bytes").value_or(0) > 0.0);
  CHECK(s.Value("ringcache_cache_capacity_bytes") == static_cast<double>(uint64_t{64} << 20));
  CHECK(s.Value("ringcache_pipeline_streams") == 0.0);
  const auto build = std::find_if(s.samples.begin(), s.samples.end(),
                                  [](const Sample& x) { return x.name == "ringcache_build_info"; });
  REQUIRE(build != s.samples.end());
  CHECK(build->value == 1.0);
  CHECK(build->labels.count("version") == 1);

  // Never a label per key: no key appears, and ringcache metrics only use known labels.
  CHECK(s.http.body.find(marker) == std::string::npos);
  const std::set<std::string> allowed = {"rpc",   "code",    "le",  "version",
                                         "state", "replica", "peer"};
  for (const Sample& sample : s.samples) {
    if (sample.name.rfind("ringcache_", 0) != 0) continue;
    for (const auto& [label, value] : sample.labels) {
      INFO(sample.name << "{" << label << "=\"" << value << "\"}");
      CHECK(allowed.count(label) == 1);
    }
  }
}

TEST_CASE("ringcache_pipeline_streams counts open Pipeline streams", "[integration][metrics]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  {
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(10'000));
    auto stream = stub->Pipeline(&ctx);
    v1::PipelineRequest req;
    auto* op = req.add_ops();
    op->set_id(1);
    op->mutable_get()->set_key("k");
    REQUIRE(stream->Write(req));
    v1::PipelineResponse resp;
    REQUIRE(stream->Read(&resp));  // The stream is live on the node now.
    const Scrape open = ScrapeUntil(
        node, [](const Scrape& sc) { return sc.Value("ringcache_pipeline_streams") == 1.0; });
    CHECK(open.Value("ringcache_pipeline_streams") == 1.0);
    stream->WritesDone();
    while (stream->Read(&resp)) {
    }
    CHECK_THAT(stream->Finish(), IsOk());
  }
  const Scrape closed = ScrapeUntil(
      node, [](const Scrape& sc) { return sc.Value("ringcache_pipeline_streams") == 0.0; });
  CHECK(closed.Value("ringcache_pipeline_streams") == 0.0);
}

TEST_CASE("A serving node reports its state, replication and migration gauges",
          "[integration][metrics]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  const Scrape s = ScrapeMetrics(node);
  INFO("scrape:\n" << s.http.body << s.http.error);
  REQUIRE(s.http.status == 200);
  CHECK(s.errors.empty());
  // One sample per state: 1 for the current one.
  CHECK(s.Value("ringcache_node_state", {{"state", "serving"}}) == 1.0);
  for (const char* state : {"fenced", "joining", "leaving"}) {
    INFO(state);
    CHECK(s.Value("ringcache_node_state", {{"state", state}}) == 0.0);
  }
  // A one-node cluster: nothing to replicate to, no transition, no peers, no failover.
  CHECK(s.Value("ringcache_under_replicated_ranges").has_value());
  CHECK(s.Value("ringcache_migration_ranges_total") == 0.0);
  CHECK(s.Value("ringcache_migration_ranges_done") == 0.0);
  CHECK(s.Value("ringcache_migration_keys_sent") == 0.0);
  CHECK(s.Value("ringcache_migration_bytes_sent") == 0.0);
  CHECK(s.Value("ringcache_migration_keys_remaining") == 0.0);
  CHECK(s.Value("ringcache_migration_bytes_remaining") == 0.0);
  CHECK(s.Value("ringcache_migration_keys_received_total") == 0.0);
  CHECK(s.Value("ringcache_failovers_total") == 0.0);
  CHECK_FALSE(s.Value("ringcache_peer_reachable").has_value());
  CHECK(s.http.body.find("# TYPE ringcache_node_state gauge") != std::string::npos);
  CHECK(s.http.body.find("# TYPE ringcache_failovers_total counter") != std::string::npos);
}

TEST_CASE("GET /healthz is 200 ok and unknown paths are 404", "[integration][metrics]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  const HttpResponse health = HttpGet(node.MetricsAddress(), "/healthz");
  INFO(health.error);
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  const HttpResponse missing = HttpGet(node.MetricsAddress(), "/no-such-page");
  INFO(missing.error);
  CHECK(missing.status == 404);
  // Garbage on the metrics port does not break it either.
  SendRawBytes(node.MetricsAddress(), std::string(2000, '\x01'), milliseconds(500));
  SendRawBytes(node.MetricsAddress(), "GET /metrics HTTP/1.1\r\nHost:", milliseconds(300));
  CHECK(HttpGet(node.MetricsAddress(), "/healthz").status == 200);
}

TEST_CASE("An empty --metrics-listen disables the metrics endpoint", "[integration][metrics]") {
  auto flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--metrics-listen", ""});
  NodeProcess node(flags);
  RequireStart(node);
  CHECK(node.MetricsAddress().empty());
  auto stub = node.NewStub();
  CHECK_THAT(Set(*stub, "k", "v").status, IsOk());
}

TEST_CASE("Redis-protocol commands and connections are counted in the metrics",
          "[integration][metrics][resp]") {
  std::vector<std::string> flags = SmallNodeFlags();
  flags.insert(flags.end(), {"--resp-listen", "127.0.0.1:0"});
  NodeProcess node(flags);
  RequireStart(node);
  REQUIRE_FALSE(node.RespAddress().empty());
  // Two SETs, a GET, an INCR of a non-number (an error reply), an unknown command, QUIT.
  const RawExchange ex =
      SendRawBytes(node.RespAddress(), "SET a 1\r\nSET b x\r\nGET a\r\nINCR b\r\nNOPE\r\nQUIT\r\n",
                   milliseconds(3000));
  REQUIRE(ex.connected);
  CHECK(ex.received ==
        "+OK\r\n+OK\r\n$1\r\n1\r\n-ERR value is not an integer or out of range\r\n"
        "-ERR unknown command 'NOPE', with args beginning with: \r\n+OK\r\n");
  CHECK(ex.peer_closed);
  const Scrape s = ScrapeUntil(node, [](const Scrape& sc) {
    return sc.Value("ringcache_resp_commands_total", {{"command", "quit"}}) == 1.0;
  });
  CHECK(s.Value("ringcache_resp_commands_total", {{"command", "set"}, {"result", "ok"}}) == 2.0);
  CHECK(s.Value("ringcache_resp_commands_total", {{"command", "get"}, {"result", "ok"}}) == 1.0);
  CHECK(s.Value("ringcache_resp_commands_total", {{"command", "incr"}, {"result", "error"}}) ==
        1.0);
  CHECK(s.Value("ringcache_resp_commands_total", {{"command", "unknown"}, {"result", "error"}}) ==
        1.0);
  CHECK(s.Value("ringcache_resp_connections") == 0.0);  // The connection has closed.
}

TEST_CASE("Forwarded batches ride one long-lived stream per peer and not a call each",
          "[integration][metrics][routing]") {
  TestCluster cluster({.nodes = 3, .replication_factor = 2});
  RequireStart(cluster);
  const std::optional<Ring> ring = CurrentRing(cluster);
  REQUIRE(ring.has_value());
  auto n1 = cluster.Stub(0);

  // Keys on every primary; through n1, as MultiSet, MultiGet and five Pipeline streams.
  std::vector<std::string> keys;
  size_t on_n2 = 0;
  for (int i = 0; i < 48; ++i) {
    keys.push_back("fwd:" + std::to_string(i));
    on_n2 += ring->Primary(keys.back()) == 1;
  }
  REQUIRE(on_n2 > 0);
  for (int round = 0; round < 10; ++round) {
    v1::MultiSetRequest set;
    for (const std::string& k : keys) {
      v1::SetRequest* item = set.add_items();
      item->set_key(k);
      item->set_value("v" + std::to_string(round));
    }
    grpc::ClientContext set_ctx;
    SetDeadline(set_ctx, milliseconds(5000));
    v1::MultiSetResponse set_reply;
    REQUIRE_THAT(n1->MultiSet(&set_ctx, set, &set_reply), IsOk());
    v1::MultiGetRequest get;
    for (const std::string& k : keys) get.add_keys(k);
    grpc::ClientContext get_ctx;
    SetDeadline(get_ctx, milliseconds(5000));
    v1::MultiGetResponse got;
    REQUIRE_THAT(n1->MultiGet(&get_ctx, get, &got), IsOk());
    REQUIRE(got.results_size() == static_cast<int>(keys.size()));
    for (const v1::GetResult& r : got.results()) CHECK(r.value() == "v" + std::to_string(round));
  }
  for (int s = 0; s < 5; ++s) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, milliseconds(5000));
    auto stream = n1->Pipeline(&ctx);
    v1::PipelineRequest request;
    for (size_t i = 0; i < keys.size(); ++i) {
      v1::Operation* op = request.add_ops();
      op->set_id(i);
      op->mutable_get()->set_key(keys[i]);
    }
    REQUIRE(stream->Write(request));
    stream->WritesDone();
    size_t answered = 0;
    v1::PipelineResponse response;
    while (stream->Read(&response)) {
      for (const v1::OperationResult& r : response.results()) {
        CHECK_THAT(r.status(), OpIs(StatusCode::OK));
        ++answered;
      }
    }
    REQUIRE_THAT(stream->Finish(), IsOk());
    CHECK(answered == keys.size());
  }

  // n2 saw every forwarded operation on one Pipeline stream that is still open (n1's),
  // and no forwarded Batch or MultiGet call. No client ever opened a stream to n2.
  const Scrape n2 = ScrapeUntil(cluster.node(1), [](const Scrape& sc) {
    return sc.Value("ringcache_pipeline_streams") == 1.0;
  });
  CHECK(n2.Value("ringcache_pipeline_streams") == 1.0);
  CHECK(n2.Value("ringcache_pipeline_ops_total").value_or(0) >= 25.0 * static_cast<double>(on_n2));
  CHECK(n2.Value("ringcache_requests_total", {{"rpc", "Batch"}}).value_or(0) == 0.0);
  CHECK(n2.Value("ringcache_requests_total", {{"rpc", "MultiGet"}}).value_or(0) == 0.0);
  CHECK(n2.Value("ringcache_requests_total", {{"rpc", "MultiSet"}}).value_or(0) == 0.0);
}

}  // namespace
}  // namespace ringcache::it

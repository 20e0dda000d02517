// TTL expiry end to end: a key set with a short TTL is readable before its deadline and
// NOT_FOUND after it, on every read path. Polling is bounded in count and time.
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Polls Get(key) every 20 ms until NOT_FOUND or `bound`; returns when it went away.
std::optional<SteadyClock::time_point> WaitGone(v1::Cache::Stub& stub, const std::string& key,
                                                milliseconds bound) {
  const auto deadline = SteadyClock::now() + bound;
  for (int i = 0; i < 1000 && SteadyClock::now() < deadline; ++i) {
    auto get = Get(stub, key);
    if (get.status.error_code() == StatusCode::NOT_FOUND) return SteadyClock::now();
    if (!get.status.ok()) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::nullopt;
}

TEST_CASE("A key set with a 200 ms TTL is readable, then NOT_FOUND", "[integration][ttl]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  const auto before_set = SteadyClock::now();
  REQUIRE_THAT(Set(*stub, "short", "lived", {.ttl_ms = 200}).status, IsOk());
  REQUIRE_THAT(Set(*stub, "forever", "v").status, IsOk());
  REQUIRE_THAT(Incr(*stub, "counter", 1, 200).status, IsOk());

  auto get = Get(*stub, "short");
  auto ttl = Ttl(*stub, "short");
  const auto first_reads = SteadyClock::now();
  // Only meaningful if both reads ended well within the TTL on this (maybe busy) machine.
  if (first_reads - before_set < milliseconds(150)) {
    REQUIRE_THAT(get.status, IsOk());
    CHECK(get.response.value() == "lived");
    CHECK(get.response.expires_at_ms() > 0);
    REQUIRE_THAT(ttl.status, IsOk());
    CHECK(ttl.response.ttl_ms() >= 1);
    CHECK(ttl.response.ttl_ms() <= 200);
  } else {
    WARN("machine too busy: first reads took "
         << std::chrono::duration_cast<milliseconds>(first_reads - before_set).count() << " ms");
  }

  const auto gone = WaitGone(*stub, "short", milliseconds(3000));
  REQUIRE(gone.has_value());
  // Not before its deadline (a little slack for clock granularity).
  CHECK(*gone - before_set >= milliseconds(190));

  CHECK_THAT(Get(*stub, "short").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Ttl(*stub, "short").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Touch(*stub, "short", 10'000).status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Delete(*stub, "short").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Set(*stub, "short", "x", {.mode = v1::SET_MODE_IF_PRESENT}).status,
             StatusIs(StatusCode::NOT_FOUND));
  v1::MultiGetRequest mget;
  mget.add_keys("short");
  mget.add_keys("forever");
  auto multi = Unary(*stub, &v1::Cache::Stub::MultiGet, mget);
  REQUIRE_THAT(multi.status, IsOk());
  REQUIRE(multi.response.results_size() == 2);
  CHECK_THAT(multi.response.results(0).status(), OpIs(StatusCode::NOT_FOUND));
  CHECK_THAT(multi.response.results(1).status(), OpIs(StatusCode::OK));

  // The counter created with ttl_ms_if_created = 200 (a little after "short") expires
  // too; then Incr starts from 0 again.
  REQUIRE(WaitGone(*stub, "counter", milliseconds(3000)).has_value());
  auto incr = Incr(*stub, "counter", 1);
  REQUIRE_THAT(incr.status, IsOk());
  CHECK(incr.response.value() == 1);

  // An expired key can be inserted again.
  CHECK_THAT(Set(*stub, "short", "again", {.mode = v1::SET_MODE_IF_ABSENT}).status, IsOk());
  CHECK(Get(*stub, "short").response.value() == "again");
}

TEST_CASE("Touch removes a TTL end to end", "[integration][ttl]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  const auto before_set = SteadyClock::now();
  REQUIRE_THAT(Set(*stub, "k", "v", {.ttl_ms = 600}).status, IsOk());
  REQUIRE_THAT(Touch(*stub, "k", 0).status, IsOk());              // Now never expires.
  std::this_thread::sleep_until(before_set + milliseconds(700));  // Past the old deadline.
  auto get = Get(*stub, "k");
  CHECK_THAT(get.status, IsOk());
  CHECK(get.response.expires_at_ms() == 0);
}

}  // namespace
}  // namespace ringcache::it

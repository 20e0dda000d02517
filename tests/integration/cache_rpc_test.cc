// The unary rpcs of ringcache.v1.Cache against a real node: results, every SetMode,
// the canonical error codes, and error messages that name the limit or field at fault.
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;

// Message patterns for the limits (the daemon may spell them max_key_bytes or max-key-bytes).
const std::string kMaxKeyName = "max[-_]key[-_]bytes";
const std::string kMaxValueName = "max[-_]value[-_]bytes";

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_CASE("Get, Set and Delete round-trip binary keys and values", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  const std::string key("bin\0key\xff", 8);
  const std::string value("\0\x01\x02value\xfe", 10);
  auto set = Set(*stub, key, value);
  REQUIRE_THAT(set.status, IsOk());
  CHECK(set.response.version() > 0);

  auto get = Get(*stub, key);
  REQUIRE_THAT(get.status, IsOk());
  CHECK(get.response.value() == value);
  CHECK(get.response.version() == set.response.version());
  CHECK(get.response.expires_at_ms() == 0);

  auto again = Set(*stub, key, "second");
  REQUIRE_THAT(again.status, IsOk());
  CHECK(again.response.version() > set.response.version());
  CHECK(Get(*stub, key).response.value() == "second");

  CHECK_THAT(Delete(*stub, key).status, IsOk());
  CHECK_THAT(Get(*stub, key).status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Delete(*stub, key).status, StatusIs(StatusCode::NOT_FOUND));

  // Versions keep growing across delete and re-create.
  auto recreated = Set(*stub, key, "third");
  REQUIRE_THAT(recreated.status, IsOk());
  CHECK(recreated.response.version() > again.response.version());
}

TEST_CASE("An empty value is a valid value", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  REQUIRE_THAT(Set(*stub, "empty", "").status, IsOk());
  auto get = Get(*stub, "empty");
  REQUIRE_THAT(get.status, IsOk());
  CHECK(get.response.value().empty());
}

TEST_CASE("Every SetMode through the Set rpc", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  SECTION("SET_MODE_ALWAYS inserts and replaces") {
    REQUIRE_THAT(Set(*stub, "k", "1", {.mode = v1::SET_MODE_ALWAYS}).status, IsOk());
    REQUIRE_THAT(Set(*stub, "k", "2", {.mode = v1::SET_MODE_ALWAYS}).status, IsOk());
    CHECK(Get(*stub, "k").response.value() == "2");
  }

  SECTION("SET_MODE_IF_ABSENT inserts once, then ALREADY_EXISTS") {
    REQUIRE_THAT(Set(*stub, "k", "1", {.mode = v1::SET_MODE_IF_ABSENT}).status, IsOk());
    CHECK_THAT(Set(*stub, "k", "2", {.mode = v1::SET_MODE_IF_ABSENT}).status,
               StatusIs(StatusCode::ALREADY_EXISTS));
    CHECK(Get(*stub, "k").response.value() == "1");
  }

  SECTION("SET_MODE_IF_PRESENT: NOT_FOUND when absent, replaces when present") {
    CHECK_THAT(Set(*stub, "k", "1", {.mode = v1::SET_MODE_IF_PRESENT}).status,
               StatusIs(StatusCode::NOT_FOUND));
    CHECK_THAT(Get(*stub, "k").status, StatusIs(StatusCode::NOT_FOUND));
    REQUIRE_THAT(Set(*stub, "k", "1").status, IsOk());
    CHECK_THAT(Set(*stub, "k", "2", {.mode = v1::SET_MODE_IF_PRESENT}).status, IsOk());
    CHECK(Get(*stub, "k").response.value() == "2");
  }

  SECTION("SET_MODE_IF_VERSION is compare-and-set") {
    CHECK_THAT(
        Set(*stub, "k", "x", {.mode = v1::SET_MODE_IF_VERSION, .expected_version = 1}).status,
        StatusIs(StatusCode::NOT_FOUND));
    auto first = Set(*stub, "k", "1");
    REQUIRE_THAT(first.status, IsOk());
    const uint64_t v1_version = first.response.version();

    auto wrong = Set(*stub, "k", "bad",
                     {.mode = v1::SET_MODE_IF_VERSION, .expected_version = v1_version + 1000});
    CHECK_THAT(wrong.status, StatusIs(StatusCode::FAILED_PRECONDITION, {"version"}));
    CHECK(Get(*stub, "k").response.value() == "1");

    auto right =
        Set(*stub, "k", "2", {.mode = v1::SET_MODE_IF_VERSION, .expected_version = v1_version});
    REQUIRE_THAT(right.status, IsOk());
    CHECK(right.response.version() > v1_version);
    CHECK(Get(*stub, "k").response.value() == "2");

    // The old version no longer matches.
    CHECK_THAT(
        Set(*stub, "k", "3", {.mode = v1::SET_MODE_IF_VERSION, .expected_version = v1_version})
            .status,
        StatusIs(StatusCode::FAILED_PRECONDITION));
  }

  SECTION("an unknown SetMode value is INVALID_ARGUMENT") {
    CHECK_THAT(Set(*stub, "k", "1", {.mode = static_cast<v1::SetMode>(42)}).status,
               StatusIs(StatusCode::INVALID_ARGUMENT, {"mode"}));
    CHECK_THAT(Get(*stub, "k").status, StatusIs(StatusCode::NOT_FOUND));
  }
}

TEST_CASE("Touch and Ttl read and replace a key's time to live", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
  auto never = Ttl(*stub, "k");
  REQUIRE_THAT(never.status, IsOk());
  CHECK(never.response.ttl_ms() == 0);

  const uint64_t version_before = Get(*stub, "k").response.version();
  REQUIRE_THAT(Touch(*stub, "k", 60'000).status, IsOk());
  auto ttl = Ttl(*stub, "k");
  REQUIRE_THAT(ttl.status, IsOk());
  CHECK(ttl.response.ttl_ms() >= 1);
  CHECK(ttl.response.ttl_ms() <= 60'000);
  CHECK(ttl.response.ttl_ms() > 50'000);
  auto get = Get(*stub, "k");
  CHECK(get.response.version() == version_before);  // Touch keeps the version.
  CHECK(get.response.value() == "v");
  const int64_t now = NowUnixMs();
  CHECK(get.response.expires_at_ms() > now + 50'000);
  CHECK(get.response.expires_at_ms() <= now + 61'000);

  REQUIRE_THAT(Touch(*stub, "k", 0).status, IsOk());
  CHECK(Ttl(*stub, "k").response.ttl_ms() == 0);
  CHECK(Get(*stub, "k").response.expires_at_ms() == 0);

  SECTION("a Set with a TTL reports it") {
    REQUIRE_THAT(Set(*stub, "t", "v", {.ttl_ms = 30'000}).status, IsOk());
    auto t = Ttl(*stub, "t");
    REQUIRE_THAT(t.status, IsOk());
    CHECK(t.response.ttl_ms() > 20'000);
    CHECK(t.response.ttl_ms() <= 30'000);
  }
  SECTION("a TTL over 100 years is INVALID_ARGUMENT") {
    const uint64_t too_long = uint64_t{101} * 365 * 24 * 3600 * 1000;
    CHECK_THAT(Set(*stub, "t", "v", {.ttl_ms = too_long}).status,
               StatusIs(StatusCode::INVALID_ARGUMENT, {"ttl"}));
    CHECK_THAT(Touch(*stub, "k", too_long).status, StatusIs(StatusCode::INVALID_ARGUMENT, {"ttl"}));
  }
}

TEST_CASE("Incr adds deltas to decimal int64 values", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  auto created = Incr(*stub, "n", 5);
  REQUIRE_THAT(created.status, IsOk());
  CHECK(created.response.value() == 5);  // An absent key counts as 0.
  CHECK(created.response.version() > 0);
  CHECK(Ttl(*stub, "n").response.ttl_ms() == 0);

  auto down = Incr(*stub, "n", -7);
  REQUIRE_THAT(down.status, IsOk());
  CHECK(down.response.value() == -2);
  CHECK(down.response.version() > created.response.version());
  CHECK(Get(*stub, "n").response.value() == "-2");

  auto read = Incr(*stub, "n", 0);
  REQUIRE_THAT(read.status, IsOk());
  CHECK(read.response.value() == -2);

  SECTION("ttl_ms_if_created applies only when the call creates the key") {
    REQUIRE_THAT(Incr(*stub, "fresh", 1, 60'000).status, IsOk());
    CHECK(Ttl(*stub, "fresh").response.ttl_ms() > 50'000);
    REQUIRE_THAT(Incr(*stub, "n", 1, 60'000).status, IsOk());
    CHECK(Ttl(*stub, "n").response.ttl_ms() == 0);
  }
  SECTION("a value that is not a decimal int64 is FAILED_PRECONDITION") {
    for (const char* bad : {"abc", "12x", " 1", "1.5", "", "99999999999999999999"}) {
      INFO("value: '" << bad << "'");
      REQUIRE_THAT(Set(*stub, "s", bad).status, IsOk());
      CHECK_THAT(Incr(*stub, "s", 1).status, StatusIs(StatusCode::FAILED_PRECONDITION));
      CHECK(Get(*stub, "s").response.value() == bad);
    }
  }
  SECTION("overflow is OUT_OF_RANGE and leaves the value") {
    const std::string max = std::to_string(std::numeric_limits<int64_t>::max());
    REQUIRE_THAT(Set(*stub, "big", max).status, IsOk());
    CHECK_THAT(Incr(*stub, "big", 1).status, StatusIs(StatusCode::OUT_OF_RANGE));
    CHECK(Get(*stub, "big").response.value() == max);

    const std::string min = std::to_string(std::numeric_limits<int64_t>::min());
    REQUIRE_THAT(Set(*stub, "small", min).status, IsOk());
    CHECK_THAT(Incr(*stub, "small", -1).status, StatusIs(StatusCode::OUT_OF_RANGE));
    auto ok = Incr(*stub, "small", std::numeric_limits<int64_t>::max());
    REQUIRE_THAT(ok.status, IsOk());
    CHECK(ok.response.value() == -1);
  }
}

TEST_CASE("Operations on a missing key are NOT_FOUND", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  CHECK_THAT(Get(*stub, "missing").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Delete(*stub, "missing").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Touch(*stub, "missing", 1000).status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Ttl(*stub, "missing").status, StatusIs(StatusCode::NOT_FOUND));
  // None of them created the key.
  CHECK_THAT(Get(*stub, "missing").status, StatusIs(StatusCode::NOT_FOUND));
}

TEST_CASE("An empty key is INVALID_ARGUMENT on every rpc", "[integration][rpc][limits]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  const std::vector<std::string> says_key = {"key"};
  CHECK_THAT(Get(*stub, "").status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
  CHECK_THAT(Set(*stub, "", "v").status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
  CHECK_THAT(Delete(*stub, "").status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
  CHECK_THAT(Touch(*stub, "", 10).status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
  CHECK_THAT(Ttl(*stub, "").status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
  CHECK_THAT(Incr(*stub, "", 1).status, StatusIs(StatusCode::INVALID_ARGUMENT, says_key));
}

TEST_CASE("Keys and values over the configured limits are INVALID_ARGUMENT naming the limit",
          "[integration][rpc][limits]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  const std::string max_key(kTestMaxKeyBytes, 'k');
  const std::string long_key(kTestMaxKeyBytes + 1, 'k');
  const std::string max_value(kTestMaxValueBytes, 'v');
  const std::string big_value(kTestMaxValueBytes + 1, 'v');
  const std::vector<std::string> names_key_limit = {kMaxKeyName, std::to_string(kTestMaxKeyBytes)};
  const std::vector<std::string> names_value_limit = {kMaxValueName,
                                                      std::to_string(kTestMaxValueBytes)};

  REQUIRE_THAT(Set(*stub, max_key, max_value).status, IsOk());
  CHECK(Get(*stub, max_key).response.value() == max_value);

  CHECK_THAT(Set(*stub, long_key, "v").status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));
  CHECK_THAT(Get(*stub, long_key).status, StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));
  CHECK_THAT(Delete(*stub, long_key).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));
  CHECK_THAT(Touch(*stub, long_key, 1).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));
  CHECK_THAT(Ttl(*stub, long_key).status, StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));
  CHECK_THAT(Incr(*stub, long_key, 1).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_key_limit));

  CHECK_THAT(Set(*stub, "k", big_value).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_value_limit));
  CHECK_THAT(Get(*stub, "k").status, StatusIs(StatusCode::NOT_FOUND));
  // A rejected Set leaves the old value.
  CHECK_THAT(Set(*stub, max_key, big_value).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_value_limit));
  CHECK(Get(*stub, max_key).response.value() == max_value);
}

TEST_CASE("Stats reports the node id, version and counters", "[integration][rpc]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  REQUIRE_THAT(Set(*stub, "a", "1").status, IsOk());
  REQUIRE_THAT(Set(*stub, "b", "22").status, IsOk());
  REQUIRE_THAT(Get(*stub, "a").status, IsOk());
  REQUIRE_THAT(Get(*stub, "zzz").status, StatusIs(StatusCode::NOT_FOUND));
  REQUIRE_THAT(Delete(*stub, "b").status, IsOk());

  auto stats = Stats(*stub);
  REQUIRE_THAT(stats.status, IsOk());
  CHECK(stats.response.node_id() == "it-node");
  CHECK_FALSE(stats.response.server_version().empty());
  CHECK(stats.response.uptime_ms() < 60'000);
  CHECK(stats.response.hits() == 1);
  CHECK(stats.response.misses() == 1);
  CHECK(stats.response.sets() == 2);
  CHECK(stats.response.deletes() == 1);
  CHECK(stats.response.items() == 1);
  CHECK(stats.response.bytes_used() > 0);
  CHECK(stats.response.capacity_bytes() == uint64_t{64} << 20);
}

}  // namespace
}  // namespace ringcache::it

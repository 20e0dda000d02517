// MultiGet / MultiSet / MultiDelete against a real node: one result per item in request
// order with mixed outcomes, and the --max-batch limit.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;

const std::string kMaxBatchName = "max[-_]batch";

Reply<v1::MultiGetResponse> MultiGet(v1::Cache::Stub& stub, const std::vector<std::string>& keys) {
  v1::MultiGetRequest r;
  for (const auto& k : keys) r.add_keys(k);
  return Unary(stub, &v1::Cache::Stub::MultiGet, r);
}

Reply<v1::MultiDeleteResponse> MultiDelete(v1::Cache::Stub& stub,
                                           const std::vector<std::string>& keys) {
  v1::MultiDeleteRequest r;
  for (const auto& k : keys) r.add_keys(k);
  return Unary(stub, &v1::Cache::Stub::MultiDelete, r);
}

Reply<v1::MultiSetResponse> MultiSet(v1::Cache::Stub& stub,
                                     const std::vector<v1::SetRequest>& items) {
  v1::MultiSetRequest r;
  for (const auto& item : items) *r.add_items() = item;
  return Unary(stub, &v1::Cache::Stub::MultiSet, r);
}

TEST_CASE("MultiSet reports one result per item, in order, with mixed outcomes",
          "[integration][batch]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  auto present = Set(*stub, "present", "old");
  REQUIRE_THAT(present.status, IsOk());
  const uint64_t present_version = present.response.version();

  auto reply = MultiSet(
      *stub,
      {
          MakeSet("a", "1"),                                          // 0 OK
          MakeSet("", "x"),                                           // 1 empty key
          MakeSet("present", "y", {.mode = v1::SET_MODE_IF_ABSENT}),  // 2 exists
          MakeSet("b", std::string(kTestMaxValueBytes + 1, 'v')),     // 3 too big
          MakeSet("present", "z",
                  {.mode = v1::SET_MODE_IF_VERSION,
                   .expected_version = present_version + 99}),        // 4 version
          MakeSet("absent", "w", {.mode = v1::SET_MODE_IF_PRESENT}),  // 5 absent
          MakeSet("c", "3", {.ttl_ms = 60'000}),                      // 6 OK
          MakeSet(std::string(kTestMaxKeyBytes + 1, 'k'), "x"),       // 7 long key
          MakeSet("present", "new",
                  {.mode = v1::SET_MODE_IF_VERSION, .expected_version = present_version}),  // 8 OK
      });
  REQUIRE_THAT(reply.status, IsOk());
  const auto& r = reply.response.results();
  REQUIRE(r.size() == 9);
  CHECK_THAT(r[0].status(), OpIs(StatusCode::OK));
  CHECK(r[0].version() > 0);
  CHECK_THAT(r[1].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"key"}));
  CHECK_THAT(r[2].status(), OpIs(StatusCode::ALREADY_EXISTS));
  CHECK_THAT(r[3].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"max[-_]value[-_]bytes"}));
  CHECK_THAT(r[4].status(), OpIs(StatusCode::FAILED_PRECONDITION));
  CHECK_THAT(r[5].status(), OpIs(StatusCode::NOT_FOUND));
  CHECK_THAT(r[6].status(), OpIs(StatusCode::OK));
  CHECK_THAT(r[7].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"max[-_]key[-_]bytes"}));
  CHECK_THAT(r[8].status(), OpIs(StatusCode::OK));
  CHECK(r[8].version() > present_version);
  for (int i : {1, 2, 3, 4, 5, 7}) {
    INFO("item " << i);
    CHECK(r[i].version() == 0);
  }

  CHECK(Get(*stub, "a").response.value() == "1");
  CHECK(Get(*stub, "c").response.value() == "3");
  CHECK(Ttl(*stub, "c").response.ttl_ms() > 50'000);
  CHECK(Get(*stub, "present").response.value() == "new");
  CHECK_THAT(Get(*stub, "b").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Get(*stub, "absent").status, StatusIs(StatusCode::NOT_FOUND));
}

TEST_CASE("MultiGet reports one result per key, in order, duplicates included",
          "[integration][batch]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  auto a = Set(*stub, "a", "alpha");
  auto b = Set(*stub, "b", "", {.ttl_ms = 60'000});
  REQUIRE_THAT(a.status, IsOk());
  REQUIRE_THAT(b.status, IsOk());

  auto reply =
      MultiGet(*stub, {"a", "missing", "", "b", "a", std::string(kTestMaxKeyBytes + 1, 'k')});
  REQUIRE_THAT(reply.status, IsOk());
  const auto& r = reply.response.results();
  REQUIRE(r.size() == 6);
  CHECK_THAT(r[0].status(), OpIs(StatusCode::OK));
  CHECK(r[0].value() == "alpha");
  CHECK(r[0].version() == a.response.version());
  CHECK(r[0].expires_at_ms() == 0);
  CHECK_THAT(r[1].status(), OpIs(StatusCode::NOT_FOUND));
  CHECK(r[1].value().empty());
  CHECK_THAT(r[2].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"key"}));
  CHECK_THAT(r[3].status(), OpIs(StatusCode::OK));
  CHECK(r[3].value().empty());
  CHECK(r[3].version() == b.response.version());
  CHECK(r[3].expires_at_ms() > 0);
  CHECK_THAT(r[4].status(), OpIs(StatusCode::OK));
  CHECK(r[4].value() == "alpha");
  CHECK_THAT(r[5].status(), OpIs(StatusCode::INVALID_ARGUMENT, {"max[-_]key[-_]bytes"}));

  auto empty = MultiGet(*stub, {});
  REQUIRE_THAT(empty.status, IsOk());
  CHECK(empty.response.results_size() == 0);
}

TEST_CASE("MultiDelete reports one status per key, in order", "[integration][batch]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  REQUIRE_THAT(Set(*stub, "a", "1").status, IsOk());
  REQUIRE_THAT(Set(*stub, "b", "2").status, IsOk());
  auto reply = MultiDelete(*stub, {"a", "missing", "", "a", "b"});
  REQUIRE_THAT(reply.status, IsOk());
  const auto& r = reply.response.results();
  REQUIRE(r.size() == 5);
  CHECK_THAT(r[0], OpIs(StatusCode::OK));
  CHECK_THAT(r[1], OpIs(StatusCode::NOT_FOUND));
  CHECK_THAT(r[2], OpIs(StatusCode::INVALID_ARGUMENT, {"key"}));
  CHECK_THAT(r[3], OpIs(StatusCode::NOT_FOUND));  // Already deleted by item 0.
  CHECK_THAT(r[4], OpIs(StatusCode::OK));
  CHECK_THAT(Get(*stub, "a").status, StatusIs(StatusCode::NOT_FOUND));
  CHECK_THAT(Get(*stub, "b").status, StatusIs(StatusCode::NOT_FOUND));
}

TEST_CASE("Batches over --max-batch are INVALID_ARGUMENT naming max-batch",
          "[integration][batch][limits]") {
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();

  std::vector<std::string> at_limit;
  std::vector<v1::SetRequest> sets_at_limit;
  for (int i = 0; i < kTestMaxBatch; ++i) {
    at_limit.push_back("key-" + std::to_string(i));
    sets_at_limit.push_back(MakeSet(at_limit.back(), "v"));
  }
  std::vector<std::string> over_limit = at_limit;
  over_limit.push_back("one-too-many");
  std::vector<v1::SetRequest> sets_over_limit = sets_at_limit;
  sets_over_limit.push_back(MakeSet("one-too-many", "v"));
  const std::vector<std::string> names_limit = {kMaxBatchName, std::to_string(kTestMaxBatch)};

  CHECK_THAT(MultiSet(*stub, sets_over_limit).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_limit));
  CHECK_THAT(Get(*stub, "key-0").status, StatusIs(StatusCode::NOT_FOUND));  // Nothing applied.
  CHECK_THAT(MultiGet(*stub, over_limit).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_limit));
  CHECK_THAT(MultiDelete(*stub, over_limit).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, names_limit));

  auto set = MultiSet(*stub, sets_at_limit);
  REQUIRE_THAT(set.status, IsOk());
  CHECK(set.response.results_size() == kTestMaxBatch);
  auto get = MultiGet(*stub, at_limit);
  REQUIRE_THAT(get.status, IsOk());
  REQUIRE(get.response.results_size() == kTestMaxBatch);
  for (const auto& result : get.response.results())
    CHECK_THAT(result.status(), OpIs(StatusCode::OK));
  auto del = MultiDelete(*stub, at_limit);
  REQUIRE_THAT(del.status, IsOk());
  CHECK(del.response.results_size() == kTestMaxBatch);
}

}  // namespace
}  // namespace ringcache::it

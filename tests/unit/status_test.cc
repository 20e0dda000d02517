#include "ringcache/status.h"

#include <memory>
#include <string>

#include <catch2/catch.hpp>

namespace ringcache {
namespace {

TEST_CASE("StatusCode numbers match gRPC's canonical codes", "[unit][status]") {
  CHECK(static_cast<int>(StatusCode::kOk) == 0);
  CHECK(static_cast<int>(StatusCode::kInvalidArgument) == 3);
  CHECK(static_cast<int>(StatusCode::kNotFound) == 5);
  CHECK(static_cast<int>(StatusCode::kAlreadyExists) == 6);
  CHECK(static_cast<int>(StatusCode::kResourceExhausted) == 8);
  CHECK(static_cast<int>(StatusCode::kFailedPrecondition) == 9);
  CHECK(static_cast<int>(StatusCode::kOutOfRange) == 11);
  CHECK(static_cast<int>(StatusCode::kUnavailable) == 14);
  CHECK(static_cast<int>(StatusCode::kUnauthenticated) == 16);
  for (int c = 0; c <= 16; ++c) CHECK(StatusCodeName(static_cast<StatusCode>(c)) != "");
  CHECK(StatusCodeName(StatusCode::kFailedPrecondition) == "FAILED_PRECONDITION");
}

TEST_CASE("Status prints its code and message", "[unit][status]") {
  CHECK(Status().ok());
  CHECK(Status().ToString() == "OK");
  const Status s = Status::NotFound("key not found");
  CHECK_FALSE(s.ok());
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(s.ToString() == "NOT_FOUND: key not found");
  CHECK(s == Status::NotFound("key not found"));
  CHECK_FALSE(s == Status::NotFound("other"));
}

TEST_CASE("Result holds either a value or an error", "[unit][status]") {
  Result<std::string> good(std::string("v"));
  REQUIRE(good.ok());
  CHECK(*good == "v");
  CHECK(good->size() == 1);
  Result<std::string> bad(Status::Unavailable("fenced"));
  CHECK_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kUnavailable);

  Result<std::unique_ptr<int>> moved(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(moved).value();
  CHECK(*p == 7);
}

}  // namespace
}  // namespace ringcache

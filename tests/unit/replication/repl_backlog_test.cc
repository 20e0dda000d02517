#include "repl_backlog.h"

#include <memory>
#include <string>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

using TimePoint = ReplBacklog::TimePoint;

std::shared_ptr<const WriteRecord> Record(size_t value_bytes, std::string key = "k") {
  return std::make_shared<const WriteRecord>(
      WriteRecord{WriteRecord::Kind::kSet, std::move(key), std::string(value_bytes, 'v'), 1, 0});
}

uint64_t Charge(size_t value_bytes) { return ChargedBytes(*Record(value_bytes)); }

TEST_CASE("ReplBacklog numbers entries 1, 2, 3 and finds them by seq", "[unit][replication]") {
  ReplBacklog b(1 << 20);
  CHECK(b.last_seq() == 0);
  CHECK(b.first_seq() == 1);
  CHECK_FALSE(b.Holds(1));
  CHECK(b.Find(1) == nullptr);
  const TimePoint t0{};
  CHECK(b.Append(Record(10, "a"), t0) == 1);
  CHECK(b.Append(Record(10, "b"), t0 + std::chrono::milliseconds(5)) == 2);
  CHECK(b.Append(Record(10, "c"), t0) == 3);
  CHECK(b.last_seq() == 3);
  CHECK(b.first_seq() == 1);
  REQUIRE(b.Find(2) != nullptr);
  CHECK(b.Find(2)->record->key == "b");
  CHECK(b.Find(2)->appended == t0 + std::chrono::milliseconds(5));
  CHECK(b.Find(0) == nullptr);
  CHECK(b.Find(4) == nullptr);
  CHECK(b.bytes() == 3 * Charge(10));
}

TEST_CASE("ReplBacklog drops the oldest entries once over its byte budget", "[unit][replication]") {
  const uint64_t one = Charge(100);
  ReplBacklog b(3 * one);
  for (int i = 0; i < 3; ++i) b.Append(Record(100), {});
  CHECK(b.size() == 3);
  CHECK(b.dropped() == 0);
  b.Append(Record(100), {});  // 4 * one > budget: seq 1 goes.
  CHECK(b.size() == 3);
  CHECK(b.first_seq() == 2);
  CHECK(b.last_seq() == 4);
  CHECK_FALSE(b.Holds(1));
  CHECK(b.Holds(2));
  CHECK(b.dropped() == 1);
  CHECK(b.bytes() == 3 * one);
  CHECK(b.bytes() <= b.max_bytes());
}

TEST_CASE("ReplBacklog keeps the newest entry even if it alone is over the budget",
          "[unit][replication]") {
  ReplBacklog b(Charge(10) * 2);
  b.Append(Record(10), {});
  b.Append(Record(10), {});
  CHECK(b.Append(Record(10000), {}) == 3);
  CHECK(b.size() == 1);
  CHECK(b.first_seq() == 3);
  CHECK(b.Holds(3));
  CHECK(b.bytes() == Charge(10000));
  // The next small one pushes the big one out.
  CHECK(b.Append(Record(10), {}) == 4);
  CHECK(b.first_seq() == 4);
  CHECK(b.bytes() == Charge(10));
}

TEST_CASE("ReplBacklog shares one record between links", "[unit][replication]") {
  ReplBacklog a(1 << 20);
  ReplBacklog b(1 << 20);
  auto r = Record(32);
  a.Append(r, {});
  b.Append(r, {});
  CHECK(a.Find(1)->record.get() == b.Find(1)->record.get());
  CHECK(r.use_count() == 3);
}

}  // namespace
}  // namespace ringcache::internal

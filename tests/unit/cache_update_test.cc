// Cache::Update: read-modify-write of one key under its shard lock (lib/include/ringcache/
// cache.h), the primitive of the string commands whose result depends on the old value
// (APPEND, SET ... GET, GETDEL, EXPIRE with conditions) and of typed values.
#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_fixture.h"
#include "ringcache/cache.h"

namespace ringcache {
namespace {

using Fixture = CacheFixture;

// An append as APPEND does it: create or extend, keeping the expiry.
Result<UpdateResult> Append(Cache& cache, std::string_view key, std::string_view tail,
                            WriteRecord* record = nullptr) {
  return cache.Update(
      key,
      [&](const ItemView* current, Mutation* m) {
        m->kind = Mutation::Kind::kSet;
        m->value = current != nullptr ? std::string(current->value) : std::string();
        m->value += tail;
        m->keep_deadline = true;
        return Status::Ok();
      },
      record);
}

TEST_CASE("Cache::Update sets from what the key holds, with a new version and a record",
          "[unit][cache][update]") {
  Fixture f;
  WriteRecord record;
  Result<UpdateResult> r = Append(*f.cache, "k", "ab", &record);
  REQUIRE(r.ok());
  CHECK_FALSE(r->existed);
  CHECK(r->after.version > 0);
  CHECK(record.kind == WriteRecord::Kind::kSet);
  CHECK(record.value == "ab");
  CHECK(record.version == r->after.version);

  // The expiry is kept across the update (keep_deadline), the version grows.
  REQUIRE(f.cache->Touch("k", 5000).ok());
  const int64_t deadline = f.clock.NowMs() + 5000;
  r = Append(*f.cache, "k", "cd", &record);
  REQUIRE(r.ok());
  CHECK(r->existed);
  CHECK(r->after.version > r->before.version);
  CHECK(r->after.deadline_ms == deadline);
  std::string value;
  ItemMeta meta;
  REQUIRE(f.cache->Get("k", &value, &meta).ok());
  CHECK(value == "abcd");
  CHECK(meta.version == r->after.version);
  CHECK(meta.deadline_ms == deadline);
  CHECK(record.value == "abcd");
  CHECK(record.expires_at_ms == deadline);
}

TEST_CASE("Cache::Update deletes, changes only the expiry, or leaves the key",
          "[unit][cache][update]") {
  Fixture f;
  REQUIRE(f.cache->Set("k", "v").ok());
  const uint64_t version = *f.cache->Set("k", "v2");

  // kExpire keeps value and version; the record is a touch.
  WriteRecord record;
  const int64_t at = f.clock.NowMs() + 60'000;
  Result<UpdateResult> r = f.cache->Update(
      "k",
      [&](const ItemView*, Mutation* m) {
        m->kind = Mutation::Kind::kExpire;
        m->deadline_ms = at;
        return Status::Ok();
      },
      &record);
  REQUIRE(r.ok());
  CHECK(r->after.version == version);
  CHECK(*f.cache->Ttl("k") == 60'000);
  CHECK(record.kind == WriteRecord::Kind::kTouch);
  CHECK(record.expires_at_ms == at);

  // kNone: nothing changes and the record is left as it was.
  record = {};
  r = f.cache->Update(
      "k", [](const ItemView*, Mutation*) { return Status::Ok(); }, &record);
  REQUIRE(r.ok());
  CHECK(r->after.version == version);
  CHECK(record.version == 0);

  // kDelete, reading the old value on the way (GETDEL).
  std::string old;
  r = f.cache->Update(
      "k",
      [&](const ItemView* current, Mutation* m) {
        if (current != nullptr) old = std::string(current->value);
        m->kind = Mutation::Kind::kDelete;
        return Status::Ok();
      },
      &record);
  REQUIRE(r.ok());
  CHECK(old == "v2");
  CHECK(r->existed);
  CHECK(r->after.version == 0);
  CHECK(record.kind == WriteRecord::Kind::kDelete);
  CHECK(record.version == version);
  std::string v;
  CHECK(f.cache->Get("k", &v).code() == StatusCode::kNotFound);

  // An expiry in the past removes the key, as a delete.
  REQUIRE(f.cache->Set("gone", "x").ok());
  r = f.cache->Update(
      "gone",
      [&](const ItemView*, Mutation* m) {
        m->kind = Mutation::Kind::kExpire;
        m->deadline_ms = f.clock.NowMs() - 1;
        return Status::Ok();
      },
      &record);
  REQUIRE(r.ok());
  CHECK(record.kind == WriteRecord::Kind::kDelete);
  CHECK(f.cache->Get("gone", &v).code() == StatusCode::kNotFound);
}

TEST_CASE("Cache::Update refuses with the function's error or a broken limit, changing nothing",
          "[unit][cache][update]") {
  CacheOptions o;
  o.max_value_bytes = 8;
  Fixture f(o);
  const uint64_t version = *f.cache->Set("k", "12345");
  Result<UpdateResult> r = f.cache->Update("k", [](const ItemView*, Mutation* m) {
    m->kind = Mutation::Kind::kDelete;
    return Status::FailedPrecondition("WRONGTYPE Operation against a key holding the wrong kind");
  });
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  r = Append(*f.cache, "k", "6789");  // 9 bytes: over max_value_bytes
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("max_value_bytes"));
  r = f.cache->Update("k", [](const ItemView*, Mutation* m) {
    m->kind = Mutation::Kind::kExpire;
    m->deadline_ms = -5;
    return Status::Ok();
  });
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  std::string v;
  ItemMeta meta;
  REQUIRE(f.cache->Get("k", &v, &meta).ok());
  CHECK(v == "12345");
  CHECK(meta.version == version);
  CHECK(meta.deadline_ms == 0);
}

TEST_CASE("Cache::Update is atomic: concurrent appends lose nothing", "[unit][cache][update]") {
  Fixture f;
  constexpr int kThreads = 4;
  constexpr int kAppends = 2000;
  std::atomic<int> failed{0};  // Catch's assertions are not for other threads.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string one(1, static_cast<char>('a' + t));
      for (int i = 0; i < kAppends; ++i) {
        if (!Append(*f.cache, "shared", one).ok()) failed.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failed.load() == 0);
  std::string v;
  REQUIRE(f.cache->Get("shared", &v).ok());
  CHECK(v.size() == size_t{kThreads} * kAppends);
  for (int t = 0; t < kThreads; ++t) {
    CHECK(std::count(v.begin(), v.end(), static_cast<char>('a' + t)) == kAppends);
  }
}

TEST_CASE("CheckSetMode refuses as Cache::Set does for each mode", "[unit][cache][update]") {
  const uint64_t version = 7;
  SetOptions always;
  CHECK(CheckSetMode(always, nullptr).ok());
  CHECK(CheckSetMode(always, &version).ok());

  SetOptions if_absent{.ttl_ms = 0, .mode = SetMode::kIfAbsent, .expected_version = 0};
  CHECK(CheckSetMode(if_absent, nullptr).ok());
  CHECK(CheckSetMode(if_absent, &version).code() == StatusCode::kAlreadyExists);

  SetOptions if_present{.ttl_ms = 0, .mode = SetMode::kIfPresent, .expected_version = 0};
  CHECK(CheckSetMode(if_present, nullptr).code() == StatusCode::kNotFound);
  CHECK(CheckSetMode(if_present, &version).ok());

  SetOptions if_version{.ttl_ms = 0, .mode = SetMode::kIfVersion, .expected_version = 7};
  CHECK(CheckSetMode(if_version, nullptr).code() == StatusCode::kNotFound);
  CHECK(CheckSetMode(if_version, &version).ok());
  if_version.expected_version = 6;
  const Status s = CheckSetMode(if_version, &version);
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK(s.message() == "version mismatch: expected 6, current 7");
}

}  // namespace
}  // namespace ringcache

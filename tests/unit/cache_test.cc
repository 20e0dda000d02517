#include "ringcache/cache.h"

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_fixture.h"
#include "ringcache/typed.h"

namespace ringcache {
namespace {

// CacheFixture (cache_fixture.h) and this file's helpers.
struct Fixture : CacheFixture {
  using CacheFixture::CacheFixture;
  std::string MustGet(std::string_view key) {
    std::string v;
    Status s = cache->Get(key, &v);
    REQUIRE(s.ok());
    return v;
  }
  bool Has(std::string_view key) {
    std::string v;
    return cache->Get(key, &v).ok();
  }
  uint64_t MustSet(std::string_view key, std::string_view value, SetOptions o = {}) {
    auto r = cache->Set(key, value, o);
    REQUIRE(r.ok());
    return *r;
  }
};

SetOptions Ttl(uint64_t ms) { return SetOptions{.ttl_ms = ms}; }
SetOptions Mode(SetMode mode, uint64_t expected = 0) {
  return SetOptions{.mode = mode, .expected_version = expected};
}

TEST_CASE("Cache returns what was set, binary-safe, and NOT_FOUND for absent keys",
          "[unit][cache]") {
  Fixture f;
  std::string v = "stale";
  Status s = f.cache->Get("missing", &v);
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(v == "stale");  // untouched on a miss

  const std::string binary("a\0b\xff\x00z", 6);
  const std::string binary_key("k\0ey", 4);
  f.MustSet(binary_key, binary);
  ItemMeta meta;
  REQUIRE(f.cache->Get(binary_key, &v, &meta).ok());
  CHECK(v == binary);
  CHECK(meta.version > 0);
  CHECK(meta.deadline_ms == 0);
  CHECK_FALSE(f.Has(std::string("k\0ex", 4)));

  f.MustSet("empty-value", "");
  CHECK(f.MustGet("empty-value").empty());
}

TEST_CASE("Cache Set replaces the value and gives a strictly greater version", "[unit][cache]") {
  Fixture f;
  const uint64_t v1 = f.MustSet("k", "one");
  const uint64_t v2 = f.MustSet("k", "two");
  CHECK(v2 > v1);
  CHECK(f.MustGet("k") == "two");
  CHECK(f.cache->Stats().items == 1);
}

TEST_CASE("Cache versions keep growing across delete and re-create", "[unit][cache]") {
  Fixture f;
  const uint64_t v1 = f.MustSet("k", "one");
  REQUIRE(f.cache->Delete("k").ok());
  const uint64_t v2 = f.MustSet("k", "again");
  CHECK(v2 > v1);
  REQUIRE(f.cache->Set("k", "7", Ttl(5)).ok());
  f.clock.AdvanceMs(5);  // expired entries count as absent, their versions still count
  auto incr = f.cache->Incr("k", 1);
  REQUIRE(incr.ok());
  CHECK(incr->value == 1);
  CHECK(incr->version > v2 + 1);
}

TEST_CASE("Cache SetMode kIfAbsent only inserts", "[unit][cache]") {
  Fixture f;
  REQUIRE(f.cache->Set("k", "first", Mode(SetMode::kIfAbsent)).ok());
  auto again = f.cache->Set("k", "second", Mode(SetMode::kIfAbsent));
  CHECK(again.status().code() == StatusCode::kAlreadyExists);
  CHECK(f.MustGet("k") == "first");
}

TEST_CASE("Cache SetMode kIfPresent only replaces", "[unit][cache]") {
  Fixture f;
  auto absent = f.cache->Set("k", "v", Mode(SetMode::kIfPresent));
  CHECK(absent.status().code() == StatusCode::kNotFound);
  CHECK_FALSE(f.Has("k"));
  f.MustSet("k", "v1");
  REQUIRE(f.cache->Set("k", "v2", Mode(SetMode::kIfPresent)).ok());
  CHECK(f.MustGet("k") == "v2");
}

TEST_CASE("Cache SetMode kIfVersion is compare-and-set on the version", "[unit][cache]") {
  Fixture f;
  auto absent = f.cache->Set("k", "v", Mode(SetMode::kIfVersion, 1));
  CHECK(absent.status().code() == StatusCode::kNotFound);

  const uint64_t v1 = f.MustSet("k", "v1");
  auto wrong = f.cache->Set("k", "x", Mode(SetMode::kIfVersion, v1 + 1000));
  CHECK(wrong.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(wrong.status().message(), Catch::Contains(std::to_string(v1)));
  CHECK(f.MustGet("k") == "v1");

  auto right = f.cache->Set("k", "v2", Mode(SetMode::kIfVersion, v1));
  REQUIRE(right.ok());
  CHECK(*right > v1);
  CHECK(f.MustGet("k") == "v2");
  // The old version no longer matches.
  CHECK(f.cache->Set("k", "v3", Mode(SetMode::kIfVersion, v1)).status().code() ==
        StatusCode::kFailedPrecondition);
}

TEST_CASE("Cache Delete removes a key and reports NOT_FOUND for absent ones", "[unit][cache]") {
  Fixture f;
  CHECK(f.cache->Delete("k").code() == StatusCode::kNotFound);
  f.MustSet("k", "v");
  REQUIRE(f.cache->Delete("k").ok());
  CHECK_FALSE(f.Has("k"));
  CHECK(f.cache->Delete("k").code() == StatusCode::kNotFound);
  const CacheStats st = f.cache->Stats();
  CHECK(st.deletes == 1);
  CHECK(st.items == 0);
  CHECK(st.bytes_used == 0);
}

TEST_CASE("Cache never returns an entry past its deadline, even before the janitor runs",
          "[unit][cache][ttl]") {
  Fixture f;
  f.MustSet("k", "v", Ttl(1000));
  ItemMeta meta;
  std::string v;
  REQUIRE(f.cache->Get("k", &v, &meta).ok());
  CHECK(meta.deadline_ms == f.clock.NowMs() + 1000);
  CHECK(*f.cache->Ttl("k") == 1000);

  f.clock.AdvanceMs(999);
  CHECK(f.Has("k"));
  CHECK(*f.cache->Ttl("k") == 1);

  f.clock.AdvanceMs(1);
  CHECK_FALSE(f.Has("k"));
  CHECK(f.cache->Ttl("k").status().code() == StatusCode::kNotFound);
  CHECK(f.cache->Stats().items == 1);  // still stored, never returned

  CHECK(f.cache->RunExpiryStep() == 1);
  const CacheStats st = f.cache->Stats();
  CHECK(st.items == 0);
  CHECK(st.expirations == 1);
  CHECK(st.bytes_used == 0);
}

TEST_CASE("Cache Ttl reports 0 for entries that never expire", "[unit][cache][ttl]") {
  Fixture f;
  f.MustSet("k", "v");
  CHECK(*f.cache->Ttl("k") == 0);
  CHECK(f.cache->Ttl("absent").status().code() == StatusCode::kNotFound);
}

TEST_CASE("Cache Set without a TTL clears the previous TTL", "[unit][cache][ttl]") {
  Fixture f;
  f.MustSet("k", "v", Ttl(10));
  f.MustSet("k", "w");
  f.clock.AdvanceMs(1000);
  CHECK(f.MustGet("k") == "w");
  CHECK(f.cache->RunExpiryStep() == 0);
}

TEST_CASE("Cache Touch sets, extends and removes a TTL without a new version",
          "[unit][cache][ttl]") {
  Fixture f;
  const uint64_t version = f.MustSet("k", "v", Ttl(100));
  REQUIRE(f.cache->Touch("k", 5000).ok());
  f.clock.AdvanceMs(200);
  ItemMeta meta;
  std::string v;
  REQUIRE(f.cache->Get("k", &v, &meta).ok());
  CHECK(meta.version == version);
  CHECK(*f.cache->Ttl("k") == 4800);

  REQUIRE(f.cache->Touch("k", 0).ok());  // persist
  f.clock.AdvanceMs(100000);
  CHECK(f.Has("k"));
  CHECK(f.cache->RunExpiryStep() == 0);

  REQUIRE(f.cache->Touch("k", 10).ok());  // and back to expiring
  f.clock.AdvanceMs(10);
  CHECK_FALSE(f.Has("k"));
  CHECK(f.cache->RunExpiryStep() == 1);

  CHECK(f.cache->Touch("absent", 10).code() == StatusCode::kNotFound);
}

TEST_CASE("Cache treats an expired entry as absent for every write", "[unit][cache][ttl]") {
  Fixture f;
  f.MustSet("a", "v", Ttl(5));
  f.MustSet("b", "v", Ttl(5));
  f.MustSet("c", "7", Ttl(5));
  f.MustSet("d", "v", Ttl(5));
  f.clock.AdvanceMs(5);
  CHECK(f.cache->Set("a", "new", Mode(SetMode::kIfAbsent)).ok());
  CHECK(f.cache->Set("b", "new", Mode(SetMode::kIfPresent)).status().code() ==
        StatusCode::kNotFound);
  auto incr = f.cache->Incr("c", 1);
  REQUIRE(incr.ok());
  CHECK(incr->value == 1);  // started again from 0
  CHECK(f.cache->Delete("d").code() == StatusCode::kNotFound);
  CHECK(f.cache->Touch("d", 100).code() == StatusCode::kNotFound);
  CHECK(f.cache->Stats().expirations == 4);  // a, b, c and d were each removed once
}

TEST_CASE("Cache expiry does bounded work per step", "[unit][cache][ttl]") {
  CacheOptions o;
  o.shard_count = 1;
  o.expiry_batch = 10;
  Fixture f(o);
  for (int i = 0; i < 35; ++i)
    f.MustSet("k" + std::to_string(i), "v", Ttl(static_cast<uint64_t>(1 + i)));
  f.MustSet("forever", "v");
  f.clock.AdvanceMs(1000);
  CHECK(f.cache->RunExpiryStep() == 10);
  CHECK(f.cache->RunExpiryStep() == 10);
  CHECK(f.cache->RunExpiryStep() == 10);
  CHECK(f.cache->RunExpiryStep() == 5);
  CHECK(f.cache->RunExpiryStep() == 0);
  CHECK(f.cache->Stats().items == 1);
}

TEST_CASE("Cache expires entries in deadline order", "[unit][cache][ttl]") {
  CacheOptions o;
  o.shard_count = 1;
  Fixture f(o);
  // Insert deadlines out of order, then move the clock through them one by one.
  const std::vector<int> ttls = {50, 10, 40, 20, 30};
  for (int ttl : ttls) f.MustSet("k" + std::to_string(ttl), "v", Ttl(static_cast<uint64_t>(ttl)));
  REQUIRE(f.cache->Touch("k40", 5).ok());  // now the earliest
  f.clock.AdvanceMs(5);
  CHECK(f.cache->RunExpiryStep() == 1);
  CHECK_FALSE(f.Has("k40"));
  for (int t : {10, 20, 30, 50}) CHECK(f.Has("k" + std::to_string(t)));
  f.clock.AdvanceMs(5);  // t = 10
  CHECK(f.cache->RunExpiryStep() == 1);
  CHECK_FALSE(f.Has("k10"));
  CHECK(f.Has("k20"));
  f.clock.AdvanceMs(20);  // t = 30
  CHECK(f.cache->RunExpiryStep() == 2);
  CHECK(f.Has("k50"));
}

TEST_CASE("Cache janitor thread expires entries by itself", "[unit][cache][ttl]") {
  ManualClock clock;
  CacheOptions o;
  o.clock = &clock;
  o.janitor_interval = std::chrono::milliseconds(1);
  auto cache = std::move(Cache::Create(o)).value();
  for (int i = 0; i < 100; ++i) REQUIRE(cache->Set("k" + std::to_string(i), "v", Ttl(10)).ok());
  clock.AdvanceMs(10);
  // Bounded wait for the thread: at most 5 s, normally a few ms.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (cache->Stats().items != 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(cache->Stats().items == 0);
  CHECK(cache->Stats().expirations == 100);
  cache->StopJanitor();
  cache->StopJanitor();  // idempotent
  cache->StartJanitor();
  cache->StartJanitor();
}

TEST_CASE("Cache Incr adds signed deltas to decimal integers", "[unit][cache][incr]") {
  Fixture f;
  auto created = f.cache->Incr("n", 5);
  REQUIRE(created.ok());
  CHECK(created->value == 5);
  CHECK(f.MustGet("n") == "5");
  auto down = f.cache->Incr("n", -8);
  REQUIRE(down.ok());
  CHECK(down->value == -3);
  CHECK(down->version > created->version);
  CHECK(f.MustGet("n") == "-3");

  f.MustSet("m", "41");
  CHECK(f.cache->Incr("m", 1)->value == 42);
  f.MustSet("neg", "-9223372036854775808");
  CHECK(f.cache->Incr("neg", 0)->value == INT64_MIN);
}

TEST_CASE("Cache Incr refuses non-integers and overflow and leaves the value alone",
          "[unit][cache][incr]") {
  Fixture f;
  for (const char* bad : {"abc", "", "1.5", " 1", "1 ", "+1", "12abc", "99999999999999999999"}) {
    f.MustSet("k", bad);
    auto r = f.cache->Incr("k", 1);
    INFO("value: '" << bad << "'");
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK(f.MustGet("k") == bad);
  }
  f.MustSet("big", "9223372036854775807");
  auto over = f.cache->Incr("big", 1);
  CHECK(over.status().code() == StatusCode::kOutOfRange);
  CHECK_THAT(over.status().message(), Catch::Contains("overflow"));
  CHECK(f.MustGet("big") == "9223372036854775807");
  f.MustSet("small", "-9223372036854775808");
  CHECK(f.cache->Incr("small", -1).status().code() == StatusCode::kOutOfRange);
}

TEST_CASE("Cache Incr applies the TTL only when it creates the key", "[unit][cache][incr]") {
  Fixture f;
  REQUIRE(f.cache->Incr("fresh", 1, 100).ok());
  CHECK(*f.cache->Ttl("fresh") == 100);
  f.MustSet("old", "1", Ttl(50));
  REQUIRE(f.cache->Incr("old", 1, 10000).ok());
  CHECK(*f.cache->Ttl("old") == 50);
  f.MustSet("plain", "1");
  REQUIRE(f.cache->Incr("plain", 1, 10000).ok());
  CHECK(*f.cache->Ttl("plain") == 0);
}

TEST_CASE("Cache refuses keys and values over the limits, naming the limit",
          "[unit][cache][limits]") {
  Fixture f;
  std::string v;
  Status empty = f.cache->Get("", &v);
  CHECK(empty.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(empty.message(), Catch::Contains("empty"));
  CHECK(f.cache->Set("", "v").status().code() == StatusCode::kInvalidArgument);
  CHECK(f.cache->Delete("").code() == StatusCode::kInvalidArgument);
  CHECK(f.cache->Touch("", 1).code() == StatusCode::kInvalidArgument);
  CHECK(f.cache->Ttl("").status().code() == StatusCode::kInvalidArgument);
  CHECK(f.cache->Incr("", 1).status().code() == StatusCode::kInvalidArgument);

  const std::string max_key(4096, 'k');
  const std::string long_key(4097, 'k');
  CHECK(f.cache->Set(max_key, "v").ok());
  auto too_long = f.cache->Set(long_key, "v");
  CHECK(too_long.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(too_long.status().message(),
             Catch::Contains("max_key_bytes") && Catch::Contains("4096"));
  CHECK(f.cache->Get(long_key, &v).code() == StatusCode::kInvalidArgument);

  CacheOptions o;
  o.max_value_bytes = 100;
  o.max_key_bytes = 10;
  Fixture small(o);
  CHECK(small.cache->Set("k", std::string(100, 'v')).ok());
  auto big = small.cache->Set("k", std::string(101, 'v'));
  CHECK(big.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(big.status().message(), Catch::Contains("max_value_bytes") && Catch::Contains("100"));
  CHECK(small.MustGet("k") == std::string(100, 'v'));  // the refused write changed nothing

  auto ttl = f.cache->Set("k", "v", Ttl(UINT64_MAX));
  CHECK(ttl.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(ttl.status().message(), Catch::Contains("ttl_ms"));
}

TEST_CASE("Cache refuses an entry larger than a shard's budget", "[unit][cache][limits]") {
  CacheOptions o;
  o.capacity_bytes = 64 << 10;
  o.shard_count = 4;  // 16 KiB per shard
  o.max_value_bytes = 1 << 20;
  Fixture f(o);
  CHECK(f.cache->shard_capacity_bytes() == 16 << 10);
  auto r = f.cache->Set("k", std::string(20 << 10, 'v'));
  CHECK(r.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(r.status().message(), Catch::Contains("16384"));
  CHECK(f.cache->Stats().items == 0);
}

TEST_CASE("CacheOptions Validate names the offending field", "[unit][cache][limits]") {
  auto invalid = [](CacheOptions o, const char* field) {
    Status s = o.Validate();
    INFO(field << ": " << s.ToString());
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains(field));
    CHECK(Cache::Create(o).status().code() == StatusCode::kInvalidArgument);
  };
  CHECK(CacheOptions{}.Validate().ok());
  invalid(CacheOptions{.capacity_bytes = 10}, "capacity_bytes");
  invalid(CacheOptions{.shard_count = 3}, "shard_count");
  invalid(CacheOptions{.max_key_bytes = 0}, "max_key_bytes");
  invalid(CacheOptions{.max_key_bytes = 70000}, "max_key_bytes");
  invalid(CacheOptions{.max_value_bytes = 2u << 30}, "max_value_bytes");
  invalid(CacheOptions{.expiry_batch = 0}, "expiry_batch");
  invalid(CacheOptions{.janitor_interval = std::chrono::milliseconds(0)}, "janitor_interval");
}

TEST_CASE("Cache picks a shard count that fits the largest entry", "[unit][cache]") {
  CacheOptions o;
  o.start_janitor = false;
  o.capacity_bytes = uint64_t{1} << 30;
  CHECK(std::move(Cache::Create(o)).value()->shard_count() == 64);
  o.capacity_bytes = uint64_t{64} << 20;  // 8 MiB values: at most 4 shards of 16 MiB
  auto c = std::move(Cache::Create(o)).value();
  CHECK(c->shard_count() == 4);
  CHECK(c->Set("big", std::string(8 << 20, 'v')).ok());
}

TEST_CASE("Cache charges key + value + overhead and never exceeds the budget",
          "[unit][cache][evict]") {
  CacheOptions o;
  o.capacity_bytes = 256 << 10;
  o.shard_count = 4;
  Fixture f(o);
  const uint64_t overhead = Cache::EntryOverheadBytes();
  f.MustSet("key1", std::string(100, 'v'));
  CHECK(f.cache->Stats().bytes_used == 4 + 100 + overhead);
  f.MustSet("key1", std::string(10, 'v'));
  CHECK(f.cache->Stats().bytes_used == 4 + 10 + overhead);

  for (int i = 0; i < 20000; ++i) {
    f.MustSet("key" + std::to_string(i), std::string(static_cast<size_t>(i % 300), 'x'));
    if (i % 997 == 0) REQUIRE(f.cache->Stats().bytes_used <= o.capacity_bytes);
  }
  const CacheStats st = f.cache->Stats();
  CHECK(st.bytes_used <= o.capacity_bytes);
  CHECK(st.bytes_used > o.capacity_bytes * 9 / 10);  // and it is actually used
  CHECK(st.evictions > 0);
  CHECK(st.items + st.evictions == 20000);  // key1 was overwritten, so 20000 distinct keys

  // bytes_used is exactly the sum of the charges of what is stored.
  uint64_t sum = 0;
  uint64_t count = 0;
  f.cache->ForEachInRange(HashRange::Full(), [&](const ItemView& item) {
    sum += item.key.size() + item.value.size() + overhead;
    ++count;
    return true;
  });
  CHECK(count == st.items);
  CHECK(sum == st.bytes_used);
}

TEST_CASE("Cache CLOCK eviction spares entries read since the hand last passed",
          "[unit][cache][evict]") {
  // One shard holding exactly 100 entries of equal size.
  const uint64_t entry = 4 + 16 + Cache::EntryOverheadBytes();  // "kNNN"-style 4-byte keys
  CacheOptions o;
  o.shard_count = 1;
  o.capacity_bytes = 100 * entry;
  Fixture f(o);
  auto key = [](int i) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "k%03d", i);
    return std::string(buf);
  };
  for (int i = 0; i < 100; ++i) f.MustSet(key(i), std::string(16, 'v'));
  REQUIRE(f.cache->Stats().evictions == 0);

  // The first eviction clears every reference bit on its sweep.
  f.MustSet(key(100), std::string(16, 'v'));
  REQUIRE(f.cache->Stats().evictions == 1);

  // Read the even keys: they must outlive the odd ones.
  std::set<int> read;
  for (int i = 0; i < 100; i += 2) {
    if (f.Has(key(i))) read.insert(i);
  }
  for (int i = 101; i < 111; ++i) f.MustSet(key(i), std::string(16, 'v'));
  CHECK(f.cache->Stats().evictions == 11);
  for (int i : read) {
    INFO("read key " << i);
    CHECK(f.Has(key(i)));
  }
  for (int i = 100; i < 111; ++i) CHECK(f.Has(key(i)));  // new entries are protected too
}

TEST_CASE("Cache evicts expired entries before live ones", "[unit][cache][evict]") {
  const uint64_t entry = 4 + 16 + Cache::EntryOverheadBytes();
  CacheOptions o;
  o.shard_count = 1;
  o.capacity_bytes = 10 * entry;
  Fixture f(o);
  for (int i = 0; i < 5; ++i)
    f.MustSet("e" + std::to_string(i) + "xx", std::string(16, 'v'), Ttl(10));
  for (int i = 0; i < 5; ++i) f.MustSet("l" + std::to_string(i) + "xx", std::string(16, 'v'));
  f.clock.AdvanceMs(10);
  for (int i = 0; i < 5; ++i) f.MustSet("n" + std::to_string(i) + "xx", std::string(16, 'v'));
  const CacheStats st = f.cache->Stats();
  CHECK(st.evictions == 0);
  CHECK(st.expirations == 5);
  for (int i = 0; i < 5; ++i) CHECK(f.Has("l" + std::to_string(i) + "xx"));
}

TEST_CASE("Cache counts hits, misses, sets and deletes exactly", "[unit][cache][stats]") {
  Fixture f;
  f.MustSet("a", "1");
  f.MustSet("b", "2");
  (void)f.cache->Set("a", "x", Mode(SetMode::kIfAbsent));  // refused: not a set
  REQUIRE(f.cache->Incr("c", 1).ok());
  f.MustGet("a");
  f.MustGet("a");
  CHECK_FALSE(f.Has("zzz"));
  REQUIRE(f.cache->Delete("b").ok());
  CHECK(f.cache->Delete("b").code() == StatusCode::kNotFound);
  const CacheStats st = f.cache->Stats();
  CHECK(st.hits == 2);
  CHECK(st.misses == 1);
  CHECK(st.sets == 3);
  CHECK(st.deletes == 1);
  CHECK(st.items == 2);
  CHECK(st.capacity_bytes == CacheOptions{}.capacity_bytes);

  CacheStats sum = st;
  sum += st;
  CHECK(sum.hits == 4);
  CHECK(sum.items == 4);
}

TEST_CASE("Cache batch operations return one result per key, in order", "[unit][cache][batch]") {
  Fixture f;
  const std::vector<SetItem> items = {
      {"a", "1", {}},
      {"b", "2", SetOptions{.ttl_ms = 100}},
      {"", "bad", {}},
      {"a", "again", SetOptions{.mode = SetMode::kIfAbsent}},
  };
  auto set = f.cache->MultiSet(items);
  REQUIRE(set.size() == 4);
  CHECK(set[0].ok());
  CHECK(set[1].ok());
  CHECK(set[2].status().code() == StatusCode::kInvalidArgument);
  CHECK(set[3].status().code() == StatusCode::kAlreadyExists);

  const std::vector<std::string_view> keys = {"b", "missing", "a", "a"};
  auto got = f.cache->MultiGet(keys);
  REQUIRE(got.size() == 4);
  REQUIRE(got[0].ok());
  CHECK(got[0]->value == "2");
  CHECK(got[0]->meta.deadline_ms == f.clock.NowMs() + 100);
  CHECK(got[0]->meta.version == *set[1]);
  CHECK(got[1].status().code() == StatusCode::kNotFound);
  CHECK(got[2]->value == "1");
  CHECK(got[3]->value == "1");

  auto del = f.cache->MultiDelete(keys);
  REQUIRE(del.size() == 4);
  CHECK(del[0].ok());
  CHECK(del[1].code() == StatusCode::kNotFound);
  CHECK(del[2].ok());
  CHECK(del[3].code() == StatusCode::kNotFound);
  CHECK(f.cache->Stats().items == 0);
}

TEST_CASE("Cache range iteration partitions the entries by hash range", "[unit][cache][range]") {
  Fixture f;
  std::map<std::string, uint64_t> versions;
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "key-" + std::to_string(i);
    versions[k] = f.MustSet(k, "value-" + std::to_string(i), i % 2 ? Ttl(1000) : SetOptions{});
  }
  f.MustSet("expired", "x", Ttl(1));
  f.clock.AdvanceMs(1);

  // Four arcs covering the ring, one of them wrapping past UINT64_MAX.
  const uint64_t q = UINT64_MAX / 4;
  const std::vector<HashRange> arcs = {{q, 2 * q}, {2 * q, 3 * q}, {3 * q, 10}, {10, q}};
  std::map<std::string, int> seen;
  for (const HashRange& arc : arcs) {
    f.cache->ForEachInRange(arc, [&](const ItemView& item) {
      CHECK(arc.Contains(item.hash));
      CHECK(item.hash == HashKey(item.key));
      const std::string k(item.key);
      CHECK(item.value == "value-" + k.substr(4));
      CHECK(item.meta.version == versions[k]);
      const int i = std::stoi(k.substr(4));
      CHECK(item.meta.deadline_ms == (i % 2 ? f.clock.NowMs() + 999 : 0));
      ++seen[k];
      return true;
    });
  }
  CHECK(seen.size() == 5000);  // "expired" is skipped
  for (const auto& [k, n] : seen) CHECK(n == 1);

  int visited = 0;
  f.cache->ForEachInRange(HashRange::Full(), [&](const ItemView&) { return ++visited < 10; });
  CHECK(visited == 10);
}

TEST_CASE("Cache stays correct as shard tables grow, fill with tombstones and shrink",
          "[unit][cache]") {
  CacheOptions o;
  o.capacity_bytes = uint64_t{256} << 20;
  o.shard_count = 2;
  Fixture f(o);
  constexpr int kN = 50000;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kN; ++i) f.MustSet("k" + std::to_string(i), std::to_string(i + round));
    for (int i = 0; i < kN; i += 3) REQUIRE(f.cache->Delete("k" + std::to_string(i)).ok());
    for (int i = 0; i < kN; ++i) {
      std::string v;
      const Status s = f.cache->Get("k" + std::to_string(i), &v);
      if (i % 3 == 0) {
        REQUIRE(s.code() == StatusCode::kNotFound);
      } else {
        REQUIRE(s.ok());
        REQUIRE(v == std::to_string(i + round));
      }
    }
    for (int i = 0; i < kN; ++i) (void)f.cache->Delete("k" + std::to_string(i));
    REQUIRE(f.cache->Stats().items == 0);
    REQUIRE(f.cache->Stats().bytes_used == 0);
  }
}

TEST_CASE("Cache Clear drops every entry without counting evictions or expirations",
          "[unit][cache]") {
  Fixture f;
  uint64_t k1_version = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = f.MustSet("k" + std::to_string(i), "v", Ttl(i % 2 ? 60'000 : 0));
    if (i == 1) k1_version = v;
  }
  REQUIRE(f.cache->Stats().items == 1000);
  f.cache->Clear();
  const CacheStats st = f.cache->Stats();
  CHECK(st.items == 0);
  CHECK(st.bytes_used == 0);
  CHECK(st.evictions == 0);
  CHECK(st.expirations == 0);
  CHECK(st.deletes == 0);
  for (int i = 0; i < 1000; i += 97) CHECK_FALSE(f.Has("k" + std::to_string(i)));
  bool any = false;
  f.cache->ForEachInRange(HashRange::Full(), [&](const ItemView&) {
    any = true;
    return false;
  });
  CHECK_FALSE(any);
  // The cache works as before, expiry included, and a key's versions keep growing.
  CHECK(f.MustSet("k1", "again", Ttl(10)) > k1_version);
  CHECK(f.MustGet("k1") == "again");
  f.clock.AdvanceMs(20);
  CHECK(f.cache->RunExpiryStep() == 1);
  CHECK(f.cache->Stats().items == 0);
  f.cache->Clear();  // Clearing an empty cache is fine.
  CHECK(f.cache->Stats().items == 0);
}

TEST_CASE("Cache Clear is safe with concurrent readers and writers", "[unit][cache]") {
  auto created = Cache::Create({.capacity_bytes = 8 << 20});
  REQUIRE(created.ok());
  std::unique_ptr<Cache> cache = std::move(created).value();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::string v;
      for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::string key = "k" + std::to_string((i * 7 + t) % 5000);
        if (i % 3 == 0) {
          (void)cache->Get(key, &v);
        } else {
          (void)cache->Set(key, std::string(i % 200, 'x'));
        }
      }
    });
  }
  for (int round = 0; round < 50; ++round) cache->Clear();
  stop.store(true);
  for (std::thread& th : threads) th.join();
  // Accounting stays consistent: what the stats say is what the table holds.
  uint64_t seen = 0;
  cache->ForEachInRange(HashRange::Full(), [&](const ItemView&) {
    ++seen;
    return true;
  });
  CHECK(cache->Stats().items == seen);
  cache->Clear();
  CHECK(cache->Stats().items == 0);
  CHECK(cache->Stats().bytes_used == 0);
}

}  // namespace
}  // namespace ringcache

namespace ringcache {
namespace {

// What CacheOptions::on_removal reported.
struct Removals {
  std::vector<std::tuple<RemovalCause, std::string, ValueType, uint64_t>> seen;
  CacheOptions Options(uint64_t capacity = uint64_t{64} << 20) {
    CacheOptions o;
    o.capacity_bytes = capacity;
    o.shard_count = 1;
    o.on_removal = [this](const Removal& r) {
      seen.emplace_back(r.cause, std::string(r.key), r.type, r.version);
    };
    return o;
  }
};

TEST_CASE("Cache on_removal reports expiries with the key, its type and version",
          "[unit][cache][ttl]") {
  Removals removals;
  CacheFixture f(removals.Options());
  const uint64_t v1 = *f.cache->Set("a", "1", {.ttl_ms = 100});
  const FieldValue field{"f", "v"};
  REQUIRE(HashSet(*f.cache, HashedKey("h"), std::span(&field, 1)).ok());
  REQUIRE(f.cache->Touch("h", 100).ok());
  const uint64_t vb = *f.cache->Set("b", "2", {.ttl_ms = 100});
  REQUIRE(f.cache->Delete("never-set").code() == StatusCode::kNotFound);
  f.clock.AdvanceMs(100);
  // The janitor's step removes two; a writer meets the third.
  CHECK(f.cache->Set("b", "3").ok());
  CHECK(f.cache->RunExpiryStep() == 2);
  REQUIRE(removals.seen.size() == 3);
  CHECK(removals.seen[0] ==
        std::make_tuple(RemovalCause::kExpired, std::string("b"), ValueType::kString, vb));
  CHECK(vb > v1);
  std::set<std::pair<std::string, ValueType>> rest;
  for (size_t i = 1; i < 3; ++i) {
    CHECK(std::get<0>(removals.seen[i]) == RemovalCause::kExpired);
    rest.emplace(std::get<1>(removals.seen[i]), std::get<2>(removals.seen[i]));
  }
  CHECK(rest == std::set<std::pair<std::string, ValueType>>{{"a", ValueType::kString},
                                                            {"h", ValueType::kHash}});
  CHECK(f.cache->Stats().expirations == 3);
}

TEST_CASE("Cache on_removal reports evictions, and never a Delete", "[unit][cache]") {
  Removals removals;
  CacheFixture f(removals.Options(64 * 1024));
  const std::string value(1000, 'x');
  REQUIRE(f.cache->Set("gone", value).ok());
  REQUIRE(f.cache->Delete("gone").ok());
  CHECK(removals.seen.empty());
  for (int i = 0; i < 200; ++i) REQUIRE(f.cache->Set("k" + std::to_string(i), value).ok());
  const uint64_t evictions = f.cache->Stats().evictions;
  REQUIRE(evictions > 0);
  CHECK(removals.seen.size() == evictions);
  bool all_evicted = true;
  for (const auto& [cause, key, type, version] : removals.seen) {
    all_evicted = all_evicted && cause == RemovalCause::kEvicted && key.starts_with("k") &&
                  type == ValueType::kString && version > 0;
  }
  CHECK(all_evicted);
}

}  // namespace
}  // namespace ringcache

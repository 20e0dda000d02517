// Unit tests for the replication side of Cache (lib/src/cache.cc): ApplyReplicated,
// ApplyReplicatedDelete, Delete reporting the deleted version, and ForEachInRange one
// shard at a time (what a primary's full sync copies out).

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_fixture.h"
#include "ringcache/cache.h"
#include "ringcache/cluster_view.h"
#include "ringcache/key_hash.h"

namespace ringcache {
namespace {

// CacheFixture (cache_fixture.h) and this file's helpers.
struct Fixture : CacheFixture {
  using CacheFixture::CacheFixture;
  bool Apply(std::string_view key, std::string_view value, uint64_t version,
             int64_t deadline_ms = 0) {
    Result<bool> r = cache->ApplyReplicated(key, value, ItemMeta{version, deadline_ms});
    REQUIRE(r.ok());
    return *r;
  }
  bool ApplyDelete(std::string_view key, uint64_t version) {
    Result<bool> r = cache->ApplyReplicatedDelete(key, version);
    REQUIRE(r.ok());
    return *r;
  }
  // {value, version, deadline} or nullopt if absent.
  std::optional<std::tuple<std::string, uint64_t, int64_t>> Read(std::string_view key) {
    std::string v;
    ItemMeta meta;
    if (!cache->Get(key, &v, &meta).ok()) return std::nullopt;
    return std::make_tuple(v, meta.version, meta.deadline_ms);
  }
};

using Entry = std::tuple<std::string, uint64_t, int64_t>;  // value, version, deadline

// Everything the cache holds, via ForEachInRange one shard at a time.
std::map<std::string, Entry> DumpByShard(const Cache& cache, HashRange range = HashRange::Full()) {
  std::map<std::string, Entry> out;
  for (uint32_t s = 0; s < cache.shard_count(); ++s) {
    cache.ForEachInRange(range, s, [&](const ItemView& item) {
      out[std::string(item.key)] =
          Entry{std::string(item.value), item.meta.version, item.meta.deadline_ms};
      return true;
    });
  }
  return out;
}

TEST_CASE("ApplyReplicated stores the value with the primary's version and deadline",
          "[unit][cache][replication]") {
  Fixture f;
  const int64_t deadline = f.clock.NowMs() + 5000;
  CHECK(f.Apply("a", "alpha", 42, deadline));
  CHECK(f.Apply("b", "beta", 7));
  CHECK(f.Read("a") == Entry{"alpha", 42, deadline});
  CHECK(f.Read("b") == Entry{"beta", 7, 0});
  auto ttl = f.cache->Ttl("a");
  REQUIRE(ttl.ok());
  CHECK(*ttl == 5000);
  CHECK(f.cache->Stats().items == 2);
  CHECK(f.cache->Stats().sets == 2);
}

TEST_CASE("ApplyReplicated keeps a newer or equal version and replaces an older one",
          "[unit][cache][replication]") {
  Fixture f;
  CHECK(f.Apply("k", "v10", 10));
  CHECK_FALSE(f.Apply("k", "v9", 9));     // older: an out-of-date snapshot entry
  CHECK_FALSE(f.Apply("k", "v10b", 10));  // same version: already applied
  CHECK(f.Read("k") == Entry{"v10", 10, 0});
  CHECK(f.Apply("k", "v11", 11));
  CHECK(f.Read("k") == Entry{"v11", 11, 0});
  CHECK(f.cache->Stats().items == 1);
}

TEST_CASE("Local writes after ApplyReplicated get versions above the replicated one",
          "[unit][cache][replication]") {
  Fixture f;
  REQUIRE(f.Apply("k", "replicated", 1000));
  auto v = f.cache->Set("k", "local");
  REQUIRE(v.ok());
  CHECK(*v > 1000);

  // Also for a key that was created elsewhere and deleted here, and for Incr.
  REQUIRE(f.Apply("n", "5", 5000));
  REQUIRE(f.cache->Delete("n").ok());
  auto created = f.cache->Set("n", "1");
  REQUIRE(created.ok());
  CHECK(*created > 5000);
  auto incr = f.cache->Incr("n", 1);
  REQUIRE(incr.ok());
  CHECK(incr->version > *created);

  // A refused apply (already expired) still reserves its version.
  REQUIRE(f.cache->Delete("k").ok());
  CHECK_FALSE(f.Apply("k", "gone", 9000, f.clock.NowMs() - 1));
  auto after = f.cache->Set("k", "x");
  REQUIRE(after.ok());
  CHECK(*after > 9000);
}

TEST_CASE("ApplyReplicated does not store an entry whose deadline has passed",
          "[unit][cache][replication]") {
  Fixture f;
  const int64_t now = f.clock.NowMs();
  CHECK_FALSE(f.Apply("k", "v", 3, now));  // deadline == now counts as expired, as for reads
  CHECK_FALSE(f.Apply("k", "v", 4, now - 60000));
  CHECK(f.Read("k") == std::nullopt);
  CHECK(f.cache->Stats().items == 0);

  // An older copy is dropped: the primary's newer value has expired, so the key is gone.
  REQUIRE(f.Apply("old", "v1", 1));
  CHECK_FALSE(f.Apply("old", "v2", 2, now - 1));
  CHECK(f.Read("old") == std::nullopt);
  CHECK(f.cache->Stats().items == 0);
  // But a newer copy stays.
  REQUIRE(f.Apply("new", "v9", 9));
  CHECK_FALSE(f.Apply("new", "v8", 8, now - 1));
  CHECK(f.Read("new") == Entry{"v9", 9, 0});
}

TEST_CASE("A replicated deadline expires on the replica's clock like a local TTL",
          "[unit][cache][replication]") {
  Fixture f;
  const int64_t t0 = f.clock.NowMs();
  REQUIRE(f.Apply("short", "s", 1, t0 + 100));
  REQUIRE(f.Apply("long", "l", 2, t0 + 10000));
  REQUIRE(f.Apply("never", "n", 3, 0));
  f.clock.AdvanceMs(100);
  CHECK(f.Read("short") == std::nullopt);
  CHECK(f.Read("long").has_value());
  CHECK(f.cache->RunExpiryStep() == 1);  // the entry is in the TTL heap
  f.clock.AdvanceMs(10000);
  CHECK(f.cache->RunExpiryStep() == 1);
  CHECK(f.Read("never").has_value());
  CHECK(f.cache->Stats().items == 1);

  // Replacing an entry moves it in the heap by its new deadline.
  REQUIRE(f.Apply("moving", "m1", 10, f.clock.NowMs() + 50));
  REQUIRE(f.Apply("moving", "m2", 11, 0));
  f.clock.AdvanceMs(100);
  CHECK(f.cache->RunExpiryStep() == 0);
  CHECK(f.Read("moving") == Entry{"m2", 11, 0});
}

TEST_CASE("ApplyReplicated rejects bad input with the limit named", "[unit][cache][replication]") {
  Fixture f(CacheOptions{.capacity_bytes = 64 << 10,
                         .shard_count = 4,
                         .max_key_bytes = 8,
                         .max_value_bytes = 32 << 10});
  auto code = [&](std::string_view key, std::string_view value, ItemMeta meta) {
    Result<bool> r = f.cache->ApplyReplicated(key, value, meta);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().ToString());
    return r.status();
  };
  Status s = code("", "v", {1, 0});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("key") != std::string::npos);
  s = code("123456789", "v", {1, 0});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("max_key_bytes") != std::string::npos);
  s = code("k", std::string(33 << 10, 'x'), {1, 0});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("max_value_bytes") != std::string::npos);
  s = code("k", std::string(20 << 10, 'x'), {1, 0});  // over a 16 KiB shard budget
  CHECK(s.code() == StatusCode::kResourceExhausted);
  s = code("k", "v", {0, 0});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("version") != std::string::npos);
  s = code("k", "v", {1, -5});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("deadline_ms") != std::string::npos);
  s = code("k", "v", {1, f.clock.NowMs() + (int64_t{200} * 365 * 24 * 3600 * 1000)});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("100 years") != std::string::npos);
  CHECK(f.cache->Stats().items == 0);

  Result<bool> d = f.cache->ApplyReplicatedDelete("", 1);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("ApplyReplicated evicts to stay within the budget", "[unit][cache][replication]") {
  Fixture f(CacheOptions{.capacity_bytes = 8 << 10, .shard_count = 1});
  for (uint64_t i = 1; i <= 500; ++i) {
    REQUIRE(f.Apply("key-" + std::to_string(i), std::string(100, 'v'), i));
  }
  const CacheStats st = f.cache->Stats();
  CHECK(st.bytes_used <= st.capacity_bytes);
  CHECK(st.evictions > 0);
  CHECK(f.Read("key-500") == Entry{std::string(100, 'v'), 500, 0});
}

TEST_CASE("ApplyReplicatedDelete removes only versions up to the deleted one",
          "[unit][cache][replication]") {
  Fixture f;
  REQUIRE(f.Apply("k", "v", 5));
  CHECK_FALSE(f.ApplyDelete("k", 4));  // an older delete must not remove a newer value
  CHECK(f.Read("k").has_value());
  CHECK(f.ApplyDelete("k", 5));
  CHECK(f.Read("k") == std::nullopt);
  CHECK_FALSE(f.ApplyDelete("k", 5));        // already gone
  CHECK_FALSE(f.ApplyDelete("absent", 99));  // never there
  CHECK(f.cache->Stats().deletes == 1);

  REQUIRE(f.Apply("j", "v", 3));
  CHECK(f.ApplyDelete("j", 8));  // the primary's copy was newer than ours: still delete
  CHECK(f.Read("j") == std::nullopt);

  // A delete reserves its version: a local re-create numbers above it.
  CHECK_FALSE(f.ApplyDelete("fresh", 7000));
  auto v = f.cache->Set("fresh", "x");
  REQUIRE(v.ok());
  CHECK(*v > 7000);
}

TEST_CASE("Delete reports the version of the entry it removed", "[unit][cache][replication]") {
  Fixture f;
  auto v1 = f.cache->Set("k", "one");
  REQUIRE(v1.ok());
  auto v2 = f.cache->Set("k", "two");
  REQUIRE(v2.ok());
  WriteRecord record;
  REQUIRE(f.cache->Delete("k", &record).ok());
  CHECK(record.kind == WriteRecord::Kind::kDelete);
  CHECK(record.key == "k");
  CHECK(record.version == *v2);
  CHECK(record.value.empty());

  record.version = 12345;
  CHECK(f.cache->Delete("k", &record).code() == StatusCode::kNotFound);
  CHECK(record.version == 12345);  // untouched on failure
  CHECK(f.cache->Delete("", &record).code() == StatusCode::kInvalidArgument);

  // Expired counts as absent.
  REQUIRE(f.cache->Set("t", "v", SetOptions{.ttl_ms = 10}).ok());
  f.clock.AdvanceMs(10);
  CHECK(f.cache->Delete("t", &record).code() == StatusCode::kNotFound);
  CHECK(record.version == 12345);

  REQUIRE(f.cache->Set("n", "v").ok());
  CHECK(f.cache->Delete("n", nullptr).ok());
}

// The record is what the write did, as stored: it must equal what a read returns right
// after, including the absolute deadline, for each kind of write.
TEST_CASE("Every write's record matches the entry it left", "[unit][cache][replication]") {
  Fixture f;
  f.clock.SetMs(1'000'000);
  WriteRecord r;

  auto v = f.cache->Set("s", "hello", SetOptions{.ttl_ms = 500}, &r);
  REQUIRE(v.ok());
  CHECK(r.kind == WriteRecord::Kind::kSet);
  CHECK(r.key == "s");
  CHECK(Entry{r.value, r.version, r.expires_at_ms} == *f.Read("s"));
  CHECK(r.version == *v);
  CHECK(r.expires_at_ms == 1'000'500);

  // Touch: the new deadline, the entry's version and value.
  f.clock.AdvanceMs(100);
  REQUIRE(f.cache->Touch("s", 2'000, &r).ok());
  CHECK(r.kind == WriteRecord::Kind::kTouch);
  CHECK(Entry{r.value, r.version, r.expires_at_ms} == *f.Read("s"));
  CHECK(r.version == *v);
  CHECK(r.expires_at_ms == 1'002'100);
  REQUIRE(f.cache->Touch("s", 0, &r).ok());
  CHECK(r.expires_at_ms == 0);

  // Incr: a kSet of the resulting text. A created key takes ttl_ms_if_created; an existing
  // one keeps its deadline.
  auto created = f.cache->Incr("n", 5, 1'000, &r);
  REQUIRE(created.ok());
  CHECK(r.kind == WriteRecord::Kind::kSet);
  CHECK(Entry{"5", created->version, 1'001'100} == *f.Read("n"));
  CHECK(Entry{r.value, r.version, r.expires_at_ms} == *f.Read("n"));
  f.clock.AdvanceMs(10);
  auto incremented = f.cache->Incr("n", -7, 99'999, &r);
  REQUIRE(incremented.ok());
  CHECK(Entry{r.value, r.version, r.expires_at_ms} == Entry{"-2", incremented->version, 1'001'100});
  CHECK(Entry{r.value, r.version, r.expires_at_ms} == *f.Read("n"));

  // A refused write leaves the record as it was.
  const WriteRecord before = r;
  CHECK(f.cache->Set("s", "x", SetOptions{.mode = SetMode::kIfAbsent}, &r).status().code() ==
        StatusCode::kAlreadyExists);
  CHECK(f.cache->Touch("absent", 5, &r).code() == StatusCode::kNotFound);
  CHECK(f.cache->Incr("s", 1, 0, &r).status().code() == StatusCode::kFailedPrecondition);
  CHECK(r.key == before.key);
  CHECK(r.version == before.version);
  CHECK(r.value == before.value);
}

TEST_CASE("ForEachInRange by shard visits each live entry once, in its own shard",
          "[unit][cache][replication]") {
  Fixture f(CacheOptions{.capacity_bytes = 16 << 20, .shard_count = 8});
  std::map<std::string, Entry> expected;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const uint64_t ttl = i % 3 == 0 ? 60000 : 0;
    auto v = f.cache->Set(key, "value-" + std::to_string(i), SetOptions{.ttl_ms = ttl});
    REQUIRE(v.ok());
    expected[key] = Entry{"value-" + std::to_string(i), *v,
                          ttl == 0 ? 0 : f.clock.NowMs() + static_cast<int64_t>(ttl)};
  }
  REQUIRE(f.cache->Set("expiring", "x", SetOptions{.ttl_ms = 1}).ok());
  f.clock.AdvanceMs(1);  // expired entries are not visited

  size_t visits = 0;
  for (uint32_t s = 0; s < f.cache->shard_count(); ++s) {
    f.cache->ForEachInRange(HashRange::Full(), s, [&](const ItemView& item) {
      ++visits;
      CHECK(item.hash == HashKey(item.key));
      CHECK((item.hash & (f.cache->shard_count() - 1)) == s);  // shard = low hash bits
      return true;
    });
  }
  CHECK(visits == expected.size());
  CHECK(DumpByShard(*f.cache) == expected);

  // A range keeps only the hashes inside it, including a range that wraps past 2^64-1.
  for (const HashRange range : {HashRange{0, UINT64_MAX / 3}, HashRange{UINT64_MAX / 2, 1000}}) {
    std::map<std::string, Entry> in_range;
    for (const auto& [key, entry] : expected) {
      if (range.Contains(HashKey(key))) in_range[key] = entry;
    }
    CHECK(!in_range.empty());
    CHECK(DumpByShard(*f.cache, range) == in_range);
  }

  // fn returning false stops that shard's walk.
  size_t seen = 0;
  f.cache->ForEachInRange(HashRange::Full(), 0, [&](const ItemView&) { return ++seen < 3; });
  CHECK(seen == 3);
}

TEST_CASE("ForEachInRange selects tagged keys by their tag's hash, shards them by the whole key",
          "[unit][cache][replication]") {
  Fixture f(CacheOptions{.capacity_bytes = 16 << 20, .shard_count = 8});
  std::vector<std::string> keys;
  for (int i = 0; i < 400; ++i) keys.push_back("{cart:7}:item" + std::to_string(i));
  for (const std::string& k : keys) REQUIRE(f.cache->Set(k, "v").ok());
  const uint64_t tag_hash = HashKey("{cart:7}");
  // A range holding only the tag's hash holds every key of the tag ...
  std::set<std::string> seen;
  std::set<uint32_t> shards;
  for (uint32_t s = 0; s < f.cache->shard_count(); ++s) {
    f.cache->ForEachInRange(HashRange{tag_hash - 1, tag_hash}, s, [&](const ItemView& item) {
      CHECK(item.hash == tag_hash);
      seen.emplace(item.key);
      shards.insert(s);
      return true;
    });
  }
  CHECK(seen.size() == keys.size());
  // ... which the cache spreads over its shards (its index hashes the whole key), so one
  // tag does not pile into one shard's table.
  CHECK(shards.size() == f.cache->shard_count());
  // A range without the tag's hash holds none of them.
  size_t outside = 0;
  f.cache->ForEachInRange(HashRange{tag_hash, tag_hash - 1}, [&](const ItemView&) {
    ++outside;
    return true;
  });
  CHECK(outside == 0);
  for (const std::string& k : keys) {
    std::string v;
    CHECK(f.cache->Get(k, &v).ok());
  }
}

TEST_CASE("RaiseVersionFloor puts every later write above the floor and never lowers it",
          "[unit][cache][replication]") {
  Fixture f(CacheOptions{.capacity_bytes = 16 << 20, .shard_count = 4});
  Result<uint64_t> v1 = f.cache->Set("a", "1");
  REQUIRE(v1.ok());
  CHECK(*v1 < 100);  // A standalone cache numbers from 1.
  const uint64_t floor = VersionFloor(5);
  f.cache->RaiseVersionFloor(floor);
  // An existing key, a new key on each shard, a re-created key, Incr: all above it.
  Result<uint64_t> v2 = f.cache->Set("a", "2");
  REQUIRE(v2.ok());
  CHECK(*v2 > floor);
  for (int i = 0; i < 16; ++i) {
    Result<uint64_t> v = f.cache->Set("k" + std::to_string(i), "v");
    REQUIRE(v.ok());
    CHECK(*v > floor);
  }
  REQUIRE(f.cache->Delete("a").ok());
  Result<uint64_t> v3 = f.cache->Set("a", "3");
  REQUIRE(v3.ok());
  CHECK(*v3 > *v2);
  Result<IncrResult> inc = f.cache->Incr("n", 1, 0);
  REQUIRE(inc.ok());
  CHECK(inc->version > floor);
  // A lower floor changes nothing: versions keep growing from where they are.
  f.cache->RaiseVersionFloor(VersionFloor(2));
  Result<uint64_t> v4 = f.cache->Set("a", "4");
  REQUIRE(v4.ok());
  CHECK(*v4 > *v3);
  CHECK(*v4 < floor + 1000);
  // A replicated entry keeps the primary's version, below the floor or not.
  CHECK(f.Apply("r", "x", 7));
  CHECK(std::get<1>(*f.Read("r")) == 7);
}

TEST_CASE("A full sync copied shard by shard reproduces the primary exactly",
          "[unit][cache][replication]") {
  Fixture primary;
  Fixture replica;
  for (int i = 0; i < 500; ++i) {
    const std::string key = "k" + std::to_string(i);
    REQUIRE(
        primary.cache->Set(key, "v" + std::to_string(i), SetOptions{.ttl_ms = i % 2 ? 0u : 9000u})
            .ok());
  }
  for (int i = 0; i < 500; i += 7) REQUIRE(primary.cache->Delete("k" + std::to_string(i)).ok());
  // (A real full sync first drops the replica's keys in the range; this one is empty.)
  for (uint32_t s = 0; s < primary.cache->shard_count(); ++s) {
    std::vector<std::tuple<std::string, std::string, ItemMeta>> batch;
    primary.cache->ForEachInRange(HashRange::Full(), s, [&](const ItemView& item) {
      batch.emplace_back(std::string(item.key), std::string(item.value), item.meta);
      return true;
    });
    for (const auto& [key, value, meta] : batch) {
      Result<bool> r = replica.cache->ApplyReplicated(key, value, meta);
      REQUIRE(r.ok());
    }
  }
  CHECK(DumpByShard(*replica.cache) == DumpByShard(*primary.cache));
  CHECK(replica.cache->Stats().items == primary.cache->Stats().items);
}

TEST_CASE("Replicated applies, local writes, scans and reads run concurrently",
          "[unit][cache][replication][stress]") {
  CacheOptions o;
  o.start_janitor = false;
  o.capacity_bytes = 256 << 10;  // small: applies evict
  o.shard_count = 4;
  auto cache = std::move(Cache::Create(o)).value();
  constexpr int kKeys = 300;
  constexpr uint64_t kRounds = 20;
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};

  // The replication stream: per key, versions in increasing order (stream order).
  std::thread applier([&] {
    for (uint64_t round = 1; round <= kRounds; ++round) {
      for (int k = 0; k < kKeys; ++k) {
        const std::string key = "r" + std::to_string(k);
        const uint64_t version = round * 1000 + static_cast<uint64_t>(k);
        if (round % 5 == 0 && k % 2 == 0) {
          if (!cache->ApplyReplicatedDelete(key, version).ok()) errors.fetch_add(1);
        } else if (!cache
                        ->ApplyReplicated(key, std::string(64, 'a' + round % 26),
                                          ItemMeta{version, 0})
                        .ok()) {
          errors.fetch_add(1);
        }
      }
    }
    done.store(true);
  });
  std::thread local_writer([&] {
    for (int i = 0; i < 20000 && !done.load(); ++i) {
      const std::string key = "l" + std::to_string(i % kKeys);
      if (!cache->Set(key, "local").ok()) errors.fetch_add(1);
      WriteRecord deleted;
      if (i % 3 == 0) (void)cache->Delete(key, &deleted);
    }
  });
  std::thread scanner([&] {
    for (int pass = 0; pass < 1000 && !done.load(); ++pass) {
      for (uint32_t s = 0; s < cache->shard_count(); ++s) {
        cache->ForEachInRange(HashRange::Full(), s, [&](const ItemView& item) {
          if (item.key.empty() || item.meta.version == 0) errors.fetch_add(1);
          return true;
        });
      }
    }
  });
  std::string v;
  ItemMeta meta;
  for (int i = 0; i < 200000 && !done.load(); ++i) {
    if (cache->Get("r" + std::to_string(i % kKeys), &v, &meta).ok() &&
        v != std::string(64, v.empty() ? 'a' : v[0])) {
      errors.fetch_add(1);
    }
  }
  applier.join();
  local_writer.join();
  scanner.join();
  CHECK(errors.load() == 0);
  const CacheStats st = cache->Stats();
  CHECK(st.bytes_used <= st.capacity_bytes);
}

}  // namespace
}  // namespace ringcache

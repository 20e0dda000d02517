// Typed values on a Cache (ringcache/typed.h): one type per key and WRONGTYPE across
// families, versions and expiry, the write records a replica converges with, limits, and
// concurrent writers on one collection.
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "../cache_fixture.h"
#include "ringcache/typed.h"

namespace ringcache {
namespace {

constexpr std::string_view kWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

bool IsWrongType(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition && s.message() == kWrongType;
}

TEST_CASE("A key holds one type: other families' operations are WRONGTYPE", "[unit][typed]") {
  CacheFixture f;
  Cache& c = *f.cache;
  REQUIRE(c.Set("str", "text").ok());
  const FieldValue fv[] = {{"f", "v"}};
  REQUIRE(*HashSet(c, "hash", fv) == 1);
  const std::string_view one[] = {"x"};
  REQUIRE(*ListPush(c, "list", ListEnd::kRight, one) == 1);
  REQUIRE(*SetAdd(c, "set", one) == 1);

  std::string value;
  CHECK(IsWrongType(c.Get("hash", &value)));
  CHECK(IsWrongType(c.Get("list", &value)));
  CHECK(IsWrongType(c.Incr("set", 1).status()));
  CHECK(IsWrongType(c.MultiGet(std::vector<std::string_view>{"hash"})[0].status()));
  // A string read-modify-write (APPEND, GETSET, ...) on a hash: refused before it runs.
  bool ran = false;
  CHECK(IsWrongType(c.Update("hash", [&](const ItemView*, Mutation*) {
                       ran = true;
                       return Status::Ok();
                     }).status()));
  CHECK_FALSE(ran);
  CHECK(IsWrongType(HashSet(c, "str", fv).status()));
  CHECK(IsWrongType(HashGet(c, "list", "f").status()));
  CHECK(IsWrongType(ListPush(c, "hash", ListEnd::kLeft, one).status()));
  CHECK(IsWrongType(ListRange(c, "set", 0, -1).status()));
  CHECK(IsWrongType(SetAdd(c, "list", one).status()));
  CHECK(IsWrongType(SetIsMember(c, "hash", "x").status()));
  // Nothing changed: every key reads as before.
  CHECK(c.Get("str", &value).ok());
  CHECK(value == "text");
  CHECK(**HashGet(c, "hash", "f") == "v");

  // Operations on keys as such act on any type; a SET replaces a hash with a string.
  CHECK(c.Ttl("hash").ok());
  CHECK(c.Touch("list", 5000).ok());
  CHECK(c.Update(
             "set",
             [](const ItemView* cur, Mutation* m) {
               CHECK(cur->meta.type == ValueType::kSet);
               m->kind = Mutation::Kind::kExpire;
               m->deadline_ms = 0;
               return Status::Ok();
             },
             nullptr, std::nullopt)
            .ok());
  REQUIRE(c.Set("hash", "now a string").ok());
  CHECK(c.Get("hash", &value).ok());
  CHECK(IsWrongType(HashGet(c, "hash", "f").status()));
  CHECK(c.Delete("list").ok());
  CHECK(ListLen(c, "list").value() == 0);
}

TEST_CASE("Typed writes bump the version, keep the expiry, and leave no empty collection",
          "[unit][typed]") {
  CacheFixture f;
  Cache& c = *f.cache;
  const FieldValue a[] = {{"a", "1"}};
  const FieldValue b[] = {{"b", "2"}};
  WriteRecord rec;
  REQUIRE(HashSet(c, "h", a, false, &rec).ok());
  CHECK(rec.kind == WriteRecord::Kind::kSet);
  CHECK(rec.type == ValueType::kHash);
  CHECK(rec.expires_at_ms == 0);  // Created without an expiry.
  const uint64_t v1 = rec.version;
  std::string pack;
  ItemMeta meta;
  REQUIRE(c.GetTyped("h", ValueType::kHash, &pack, &meta).ok());
  CHECK(meta.version == v1);
  CHECK(meta.type == ValueType::kHash);
  CHECK(pack == rec.value);

  REQUIRE(c.Touch("h", 60000).ok());
  REQUIRE(HashSet(c, "h", b, false, &rec).ok());
  CHECK(rec.version > v1);
  CHECK(rec.expires_at_ms == f.clock.NowMs() + 60000);  // HSET keeps the TTL, as Redis.
  CHECK(*HashLen(c, "h") == 2);

  // An HSET that changes nothing writes nothing: no new version, no record.
  const uint64_t v2 = rec.version;
  WriteRecord none;
  CHECK(*HashSet(c, "h", b, false, &none) == 0);
  CHECK(none.version == 0);
  REQUIRE(c.GetTyped("h", ValueType::kHash, &pack, &meta).ok());
  CHECK(meta.version == v2);

  const std::string_view both[] = {"a", "b"};
  REQUIRE(*HashDel(c, "h", both, &rec) == 2);
  CHECK(rec.kind == WriteRecord::Kind::kDelete);  // The last field took the key with it.
  CHECK(rec.version == v2);
  CHECK(c.GetTyped("h", ValueType::kHash, &pack).code() == StatusCode::kNotFound);
  CHECK(HashGetAll(c, "h")->empty());
  CHECK(*HashDel(c, "h", both) == 0);  // Absent: nothing to remove, not an error.

  // The expiry applies to the whole collection.
  const std::string_view els[] = {"x", "y"};
  REQUIRE(ListPush(c, "l", ListEnd::kRight, els).ok());
  REQUIRE(c.Touch("l", 1000).ok());
  f.clock.AdvanceMs(1000);
  CHECK(*ListLen(c, "l") == 0);
  CHECK(ListRange(c, "l", 0, -1)->empty());
}

TEST_CASE("A replica that applies the records holds the same collections", "[unit][typed]") {
  CacheFixture primary;
  CacheFixture replica;
  std::vector<WriteRecord> records;
  auto keep = [&](auto result, const WriteRecord& rec) {
    REQUIRE(result.ok());
    if (rec.version != 0) records.push_back(rec);
  };
  WriteRecord rec;
  const FieldValue fv[] = {{"name", "Ada"}, {"lang", "C++"}};
  keep(HashSet(*primary.cache, "user", fv, false, &rec), rec);
  rec = {};
  keep(HashIncrBy(*primary.cache, "user", "visits", 3, &rec), rec);
  const std::string_view q[] = {"job1", "job2", "job3"};
  rec = {};
  keep(ListPush(*primary.cache, "queue", ListEnd::kRight, q, &rec), rec);
  rec = {};
  keep(ListPop(*primary.cache, "queue", ListEnd::kLeft, 1, &rec), rec);
  const std::string_view tags[] = {"a", "b", "c"};
  rec = {};
  keep(SetAdd(*primary.cache, "tags", tags, &rec), rec);
  const std::string_view gone[] = {"b"};
  rec = {};
  keep(SetRem(*primary.cache, "tags", gone, &rec), rec);

  for (const WriteRecord& r : records) {
    REQUIRE(r.kind == WriteRecord::Kind::kSet);
    REQUIRE(
        replica.cache->ApplyReplicated(r.key, r.value, ItemMeta{r.version, r.expires_at_ms, r.type})
            .ok());
  }
  CHECK(*HashGetAll(*replica.cache, "user") == *HashGetAll(*primary.cache, "user"));
  CHECK(*ListRange(*replica.cache, "queue", 0, -1) == std::vector<std::string>{"job2", "job3"});
  CHECK(*SetMembers(*replica.cache, "tags") == std::vector<std::string>{"a", "c"});
  // The type travels with the entry: the replica refuses a string read of the hash.
  std::string value;
  CHECK(IsWrongType(replica.cache->Get("user", &value)));
  // A full sync sees the type too.
  int hashes = 0;
  replica.cache->ForEachInRange(HashRange::Full(), [&](const ItemView& item) {
    if (item.meta.type == ValueType::kHash) ++hashes;
    return true;
  });
  CHECK(hashes == 1);
  // A type this build does not know is refused, and so is a collection that is not one.
  const Result<bool> unknown =
      replica.cache->ApplyReplicated("k", "v", ItemMeta{99, 0, static_cast<ValueType>(7)});
  CHECK(unknown.status().code() == StatusCode::kInvalidArgument);
  const Result<bool> corrupt =
      replica.cache->ApplyReplicated("k", "\xff\x01", ItemMeta{99, 0, ValueType::kList});
  CHECK(corrupt.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(corrupt.status().message(), Catch::Contains("not a valid collection"));
  CHECK(replica.cache->Ttl("k").status().code() == StatusCode::kNotFound);
  // The same for an embedder's own Update.
  const Status bad_update = replica.cache
                                ->Update(
                                    "k",
                                    [](const ItemView*, Mutation* m) {
                                      m->kind = Mutation::Kind::kSet;
                                      m->value = "not a pack";
                                      m->type = ValueType::kSet;
                                      return Status::Ok();
                                    },
                                    nullptr, std::nullopt)
                                .status();
  CHECK(bad_update.code() == StatusCode::kInvalidArgument);
}

TEST_CASE("A typed write past the value limit is refused whole", "[unit][typed]") {
  CacheFixture f({.max_value_bytes = 64});
  Cache& c = *f.cache;
  const FieldValue small[] = {{"a", "1"}};
  REQUIRE(HashSet(c, "h", small).ok());
  const std::string big(80, 'x');
  const FieldValue fv[] = {{"b", "2"}, {"c", big}};
  const Status s = HashSet(c, "h", fv).status();
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(*HashLen(c, "h") == 1);  // Neither field was added.
  CHECK_FALSE(HashGet(c, "h", "b")->has_value());
}

TEST_CASE("Concurrent writers on one collection lose no update", "[unit][typed]") {
  CacheFixture f;
  Cache& c = *f.cache;
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < kEach; ++i) {
        (void)HashIncrBy(c, "counters", "hits", 1);
        const std::string member = std::to_string(t) + ":" + std::to_string(i % 50);
        const std::string_view m[] = {member};
        (void)SetAdd(c, "members", m);
        (void)ListPush(c, "log", ListEnd::kRight, m);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(**HashGet(c, "counters", "hits") == std::to_string(kThreads * kEach));
  CHECK(*SetCard(c, "members") == kThreads * 50);
  CHECK(*ListLen(c, "log") == kThreads * kEach);
}

}  // namespace
}  // namespace ringcache

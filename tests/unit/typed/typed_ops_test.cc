// The typed-command vocabulary (ringcache/typed.h): RunTyped for every command, with Redis's
// edge cases (negative indexes, counts, absent keys, nils, float increments, overflow),
// compare-and-set on a collection's version, argument checks, and writes of many names
// to a large collection.
#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "../cache_fixture.h"
#include "ringcache/float_text.h"
#include "ringcache/glob.h"
#include "ringcache/typed.h"

namespace ringcache {
namespace {

using Args = std::vector<std::string_view>;

// Runs one command on `c`; REQUIREs success and returns the reply.
struct Runner {
  Cache& cache;
  TypedReply Ok(TypedCommand command, std::string_view key, const Args& args = {}, int64_t n = 0,
                int64_t stop = 0, bool flag = false) {
    TypedReply reply;
    CacheStore store(cache);
    const Status s = RunTyped(
        store, key, {.command = command, .args = args, .n = n, .stop = stop, .flag = flag}, &reply);
    INFO(InfoOf(command).name << ": " << s.ToString());
    REQUIRE(s.ok());
    return reply;
  }
  Status Fails(TypedCommand command, std::string_view key, const Args& args = {}, int64_t n = 0,
               int64_t stop = 0, bool flag = false, uint64_t if_version = 0) {
    TypedReply reply;
    CacheStore store(cache);
    return RunTyped(store, key,
                    {.command = command,
                     .args = args,
                     .n = n,
                     .stop = stop,
                     .flag = flag,
                     .if_version = if_version},
                    &reply);
  }
};

using C = TypedCommand;

TEST_CASE("Typed commands: hashes, as Redis answers them", "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  CHECK(r.Ok(C::kHSet, "h", {"a", "1", "b", "2", "a", "3"}).integer ==
        2);  // a repeated: last wins.
  CHECK(r.Ok(C::kHGet, "h", {"a"}).items == std::vector<std::string>{"3"});
  CHECK(r.Ok(C::kHGet, "h", {"zz"}).nil);
  CHECK(r.Ok(C::kHGet, "nokey", {"a"}).nil);
  CHECK(r.Ok(C::kHSetNx, "h", {"a", "x"}).integer == 0);
  CHECK(r.Ok(C::kHSetNx, "h", {"c", "x"}).integer == 1);
  TypedReply m = r.Ok(C::kHMGet, "h", {"b", "nope", "c"});
  CHECK(m.items == std::vector<std::string>{"2", "", "x"});
  CHECK(m.absent == std::vector<uint32_t>{1});
  CHECK(r.Ok(C::kHMGet, "nokey", {"a", "b"}).absent == std::vector<uint32_t>{0, 1});
  CHECK(r.Ok(C::kHGetAll, "h").items == std::vector<std::string>{"a", "3", "b", "2", "c", "x"});
  CHECK(r.Ok(C::kHKeys, "h").items == std::vector<std::string>{"a", "b", "c"});
  CHECK(r.Ok(C::kHVals, "h").items == std::vector<std::string>{"3", "2", "x"});
  CHECK(r.Ok(C::kHGetAll, "nokey").items.empty());
  CHECK(r.Ok(C::kHLen, "h").integer == 3);
  CHECK(r.Ok(C::kHExists, "h", {"b"}).integer == 1);
  CHECK(r.Ok(C::kHExists, "h", {"q"}).integer == 0);
  CHECK(r.Ok(C::kHStrLen, "h", {"a"}).integer == 1);
  CHECK(r.Ok(C::kHStrLen, "h", {"q"}).integer == 0);

  CHECK(r.Ok(C::kHIncrBy, "h", {"n"}, 5).integer == 5);
  CHECK(r.Ok(C::kHIncrBy, "h", {"n"}, -7).integer == -2);
  CHECK(r.Fails(C::kHIncrBy, "h", {"c"}, 1).message() == "hash value is not an integer");
  CHECK(r.Ok(C::kHSet, "h", {"big", "9223372036854775807"}).integer == 1);
  CHECK(r.Fails(C::kHIncrBy, "h", {"big"}, 1).code() == StatusCode::kOutOfRange);

  CHECK(r.Ok(C::kHIncrByFloat, "h", {"fl", "10.5"}).items == std::vector<std::string>{"10.5"});
  CHECK(r.Ok(C::kHIncrByFloat, "h", {"fl", "0.1"}).items == std::vector<std::string>{"10.6"});
  CHECK(r.Ok(C::kHIncrByFloat, "h", {"n", "2.0e0"}).items == std::vector<std::string>{"0"});
  CHECK(r.Fails(C::kHIncrByFloat, "h", {"c", "1"}).message() == "hash value is not a float");
  CHECK(r.Fails(C::kHIncrByFloat, "h", {"fl", "abc"}).message() == "value is not a valid float");
  CHECK(r.Fails(C::kHIncrByFloat, "h", {"fl", "inf"}).message() == "value is NaN or Infinity");
  r.Ok(C::kHSet, "huge", {"f", "1e4932"});
  CHECK(r.Fails(C::kHIncrByFloat, "huge", {"f", "1e4932"}).message() ==
        "increment would produce NaN or Infinity");

  CHECK(r.Ok(C::kHDel, "h", {"a", "a", "zz"}).integer == 1);  // A name repeated counts once.
  CHECK(r.Ok(C::kHLen, "h").integer == 5);
  // The last field removed: the key is gone (Redis keeps no empty hash).
  CHECK(r.Ok(C::kHDel, "h", {"b", "c", "n", "big", "fl", "x"}).integer == 5);
  std::string value;
  CHECK(f.cache->GetTyped("h", ValueType::kHash, &value).code() == StatusCode::kNotFound);
}

TEST_CASE("Typed commands: lists, with negative indexes and counts", "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  using V = std::vector<std::string>;
  CHECK(r.Ok(C::kLPushX, "l", {"a"}).integer == 0);  // Only onto an existing list.
  CHECK(r.Ok(C::kLRange, "l", {}, 0, -1).items.empty());
  CHECK(r.Ok(C::kRPush, "l", {"a", "b", "c"}).integer == 3);
  CHECK(r.Ok(C::kLPush, "l", {"y", "z"}).integer == 5);  // z y a b c
  CHECK(r.Ok(C::kRPushX, "l", {"d"}).integer == 6);
  CHECK(r.Ok(C::kLRange, "l", {}, 0, -1).items == V{"z", "y", "a", "b", "c", "d"});
  CHECK(r.Ok(C::kLRange, "l", {}, -2, 100).items == V{"c", "d"});
  CHECK(r.Ok(C::kLRange, "l", {}, 4, 2).items.empty());
  CHECK(r.Ok(C::kLIndex, "l", {}, -1).items == V{"d"});
  CHECK(r.Ok(C::kLIndex, "l", {}, 6).nil);
  CHECK(r.Ok(C::kLIndex, "l", {}, -7).nil);
  CHECK(r.Ok(C::kLLen, "l").integer == 6);

  r.Ok(C::kLSet, "l", {"Y"}, 1);
  CHECK(r.Fails(C::kLSet, "l", {"q"}, 6).message() == "index out of range");
  CHECK(r.Fails(C::kLSet, "nokey", {"q"}, 0).message() == "no such key");
  CHECK(r.Ok(C::kLInsert, "l", {"a", "before-a"}, 0, 0, true).integer == 7);
  CHECK(r.Ok(C::kLInsert, "l", {"a", "after-a"}, 0, 0, false).integer == 8);
  CHECK(r.Ok(C::kLInsert, "l", {"nope", "x"}, 0, 0, true).integer == -1);
  CHECK(r.Ok(C::kLInsert, "nokey", {"a", "x"}, 0, 0, true).integer == 0);
  CHECK(r.Ok(C::kLRange, "l", {}, 0, -1).items ==
        V{"z", "Y", "before-a", "a", "after-a", "b", "c", "d"});

  // Pops: one (nil when empty), or a count (a list; nil only for an absent key).
  CHECK(r.Ok(C::kLPop, "l").items == V{"z"});
  CHECK(r.Ok(C::kRPop, "l", {}, 2, 0, true).items == V{"d", "c"});
  TypedReply none = r.Ok(C::kLPop, "l", {}, 0, 0, true);
  CHECK(none.items.empty());
  CHECK_FALSE(none.nil);
  CHECK(r.Ok(C::kLPop, "nokey", {}, 3, 0, true).nil);
  CHECK(r.Ok(C::kLPop, "nokey").nil);
  CHECK(r.Fails(C::kLPop, "l", {}, -1, 0, true).code() == StatusCode::kInvalidArgument);

  CHECK(r.Ok(C::kRPush, "l", {"a", "a"}).integer == 7);  // Y before-a a after-a b a a
  CHECK(r.Ok(C::kLRem, "l", {"a"}, -2).integer == 2);    // The last two.
  CHECK(r.Ok(C::kLRange, "l", {}, 0, -1).items == V{"Y", "before-a", "a", "after-a", "b"});
  CHECK(r.Ok(C::kLRem, "l", {"a"}, 0).integer == 1);
  r.Ok(C::kLTrim, "l", {}, 1, -2);
  CHECK(r.Ok(C::kLRange, "l", {}, 0, -1).items == V{"before-a", "after-a"});
  r.Ok(C::kLTrim, "l", {}, 5, 10);  // Nothing in range: the list (and key) is gone.
  CHECK(r.Ok(C::kLLen, "l").integer == 0);
  CHECK(r.Ok(C::kLPop, "l", {}, 1, 0, true).nil);
}

TEST_CASE("Typed commands: sets", "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  using V = std::vector<std::string>;
  CHECK(r.Ok(C::kSAdd, "s", {"a", "b", "a"}).integer == 2);
  CHECK(r.Ok(C::kSAdd, "s", {"b", "c"}).integer == 1);
  CHECK(r.Ok(C::kSIsMember, "s", {"c"}).integer == 1);
  CHECK(r.Ok(C::kSIsMember, "s", {"q"}).integer == 0);
  CHECK(r.Ok(C::kSMIsMember, "s", {"a", "q", "c"}).integers == std::vector<int64_t>{1, 0, 1});
  CHECK(r.Ok(C::kSMIsMember, "nokey", {"a"}).integers == std::vector<int64_t>{0});
  CHECK(r.Ok(C::kSMembers, "s").items == V{"a", "b", "c"});
  CHECK(r.Ok(C::kSCard, "s").integer == 3);
  CHECK(r.Ok(C::kSRem, "s", {"a", "q", "a"}).integer == 1);
  CHECK(r.Ok(C::kSRem, "s", {"b", "c"}).integer == 2);
  CHECK(r.Ok(C::kSCard, "s").integer == 0);
  CHECK(r.Ok(C::kSMembers, "s").items.empty());
}

TEST_CASE("Typed commands: LPOS, and SPOP, SRANDMEMBER and HRANDFIELD's random picks",
          "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  using V = std::vector<std::string>;
  using I = std::vector<int64_t>;
  r.Ok(C::kRPush, "l", {"a", "b", "c", "1", "2", "3", "c", "c"});
  TypedOp pos{.command = C::kLPos, .n = 1};
  const auto lpos = [&](TypedOp op) {
    const std::string_view c[] = {"c"};
    op.args = c;
    TypedReply reply;
    CacheStore store(*f.cache);
    REQUIRE(RunTyped(store, "l", op, &reply).ok());
    return reply;
  };
  CHECK(lpos(pos).integer == 2);
  CHECK(lpos({.command = C::kLPos, .n = 2}).integer == 6);
  CHECK(lpos({.command = C::kLPos, .n = -1}).integer == 7);
  CHECK(lpos({.command = C::kLPos, .n = 1, .flag = true, .count = 0}).integers == I{2, 6, 7});
  CHECK(lpos({.command = C::kLPos, .n = -1, .flag = true, .count = 2}).integers == I{7, 6});
  CHECK(lpos({.command = C::kLPos, .n = 1, .stop = 2}).nil);  // MAXLEN 2: a, b only.
  CHECK(lpos({.command = C::kLPos, .n = 4}).nil);
  CHECK(lpos({.command = C::kLPos}).integer == 2);  // Rank 0 (unset over gRPC) is 1.

  // SRANDMEMBER: distinct members up to the set's size; a negative count repeats.
  r.Ok(C::kSAdd, "s", {"a", "b", "c", "d", "e"});
  for (int i = 0; i < 20; ++i) {
    V three = r.Ok(C::kSRandMember, "s", {}, 3, 0, true).items;
    std::sort(three.begin(), three.end());
    CHECK(std::adjacent_find(three.begin(), three.end()) == three.end());
    CHECK(three.size() == 3);
  }
  V all = r.Ok(C::kSRandMember, "s", {}, 99, 0, true).items;
  std::sort(all.begin(), all.end());
  CHECK(all == V{"a", "b", "c", "d", "e"});
  CHECK(r.Ok(C::kSRandMember, "s", {}, -12, 0, true).items.size() == 12);
  CHECK(r.Ok(C::kSRandMember, "s").items.size() == 1);
  CHECK(r.Ok(C::kSRandMember, "none").nil);
  CHECK(r.Ok(C::kSRandMember, "none", {}, 3, 0, true).items.empty());
  CHECK(r.Fails(C::kSRandMember, "s", {}, -(int64_t{1} << 21), 0, true).code() ==
        StatusCode::kInvalidArgument);
  // Picks with repeats are bounded in bytes too: a 1 MiB member picked 100 times is
  // refused before anything is copied.
  const std::string big(1 << 20, 'x');
  r.Ok(C::kSAdd, "big", {big});
  CHECK(r.Ok(C::kSRandMember, "big", {}, -3, 0, true).items.size() == 3);
  const Status over = r.Fails(C::kSRandMember, "big", {}, -100, 0, true);
  CHECK(over.code() == StatusCode::kInvalidArgument);
  CHECK(over.message().find("over the limit") != std::string::npos);

  // SPOP removes exactly what it answers, and the last member takes the key.
  V popped = r.Ok(C::kSPop, "s", {}, 2, 0, true).items;
  CHECK(popped.size() == 2);
  CHECK(r.Ok(C::kSCard, "s").integer == 3);
  for (const std::string& m : popped) CHECK(r.Ok(C::kSIsMember, "s", {m}).integer == 0);
  CHECK(r.Ok(C::kSPop, "s").items.size() == 1);
  CHECK(r.Ok(C::kSPop, "s", {}, 10, 0, true).items.size() == 2);
  CHECK(r.Ok(C::kSPop, "s").nil);
  CHECK(r.Ok(C::kSCard, "s").integer == 0);

  // HRANDFIELD WITHVALUES: each field with its own value.
  r.Ok(C::kHSet, "h", {"f1", "v1", "f2", "v2", "f3", "v3"});
  TypedReply pairs;
  {
    CacheStore store(*f.cache);
    REQUIRE(RunTyped(store, "h", {.command = C::kHRandField, .n = -7, .flag = true, .option = true},
                     &pairs)
                .ok());
  }
  REQUIRE(pairs.items.size() == 14);
  for (size_t i = 0; i < pairs.items.size(); i += 2) {
    CHECK(pairs.items[i + 1] == "v" + pairs.items[i].substr(1));
  }
}

TEST_CASE("Typed commands: Redis's arguments are parsed in Redis's words", "[unit][typed]") {
  const auto parse = [](std::string_view name, std::vector<std::string_view> args) {
    TypedOp op;
    const Status s = ParseRedisArgs(*TypedCommandNamed(name), args, &op);
    return std::pair(s, op);
  };
  CHECK(parse("hset", {"f"}).first.message() == "wrong number of arguments for 'hset' command");
  CHECK(parse("lrange", {"0", "x"}).first.message() == "value is not an integer or out of range");
  CHECK(parse("lpop", {"-1"}).first.message() == "value is out of range, must be positive");
  CHECK(parse("linsert", {"middle", "a", "b"}).first.message() == "syntax error");
  CHECK(parse("hincrbyfloat", {"f", "inf"}).first.message() == "value is NaN or Infinity");
  CHECK(parse("srandmember", {"1", "2"}).first.message() == "syntax error");
  CHECK(parse("hrandfield", {"1", "values"}).first.message() == "syntax error");
  CHECK(parse("lpos", {"a", "COUNT", "-1"}).first.message() == "COUNT can't be negative");
  CHECK(parse("lpos", {"a", "RANK"}).first.message() == "syntax error");
  const auto [ok, op] = parse("lpos", {"a", "rank", "-2", "count", "0", "maxlen", "9"});
  REQUIRE(ok.ok());
  CHECK((op.n == -2 && op.flag && op.count == 0 && op.stop == 9 && op.args.size() == 1));
  const auto [ok2, op2] = parse("hrandfield", {"-3", "WithValues"});
  REQUIRE(ok2.ok());
  CHECK((op2.n == -3 && op2.flag && op2.option));
}

TEST_CASE("GlobMatch follows Redis's patterns", "[unit][typed]") {
  CHECK_FALSE(GlobMatch("*", ""));  // Redis's: an empty text matches only "".
  CHECK(GlobMatch("", ""));
  CHECK(GlobMatch("a*", "a"));
  CHECK_FALSE(GlobMatch("", "a"));
  CHECK(GlobMatch("a*b", "aXYZb"));
  CHECK_FALSE(GlobMatch("a*b", "aXYZ"));
  CHECK(GlobMatch("a*b*c", "aXbYbZc"));
  CHECK(GlobMatch("a?c", "abc"));
  CHECK_FALSE(GlobMatch("a?c", "ac"));
  CHECK(GlobMatch("[abc]x", "bx"));
  CHECK_FALSE(GlobMatch("[abc]x", "dx"));
  CHECK(GlobMatch("[^a]x", "bx"));
  CHECK(GlobMatch("[!a]x", "!x"));      // '!' is a member, not a negation.
  CHECK_FALSE(GlobMatch("[]x", "]x"));  // "[]" is empty.
  CHECK(GlobMatch("[a-]", "]"));
  CHECK_FALSE(GlobMatch("[^a]x", "ax"));
  CHECK(GlobMatch("[a-c]1", "b1"));
  CHECK(GlobMatch("[c-a]1", "b1"));  // A reversed range, as Redis takes it.
  CHECK_FALSE(GlobMatch("[a-c]1", "d1"));
  CHECK(GlobMatch("\\*", "*"));
  CHECK_FALSE(GlobMatch("\\*", "x"));
  CHECK(GlobMatch("[\\]]", "]"));
  CHECK(GlobMatch("user:*:name", "user:42:name"));
  // No exponential backtracking: many stars against a long text that fails at the end.
  CHECK_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST_CASE("SSCAN of a large set returns every member present throughout exactly once",
          "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("m" + std::to_string(i));
  std::vector<std::string_view> all(names.begin(), names.end());
  r.Ok(C::kSAdd, "s", all);
  // A small set comes whole in one call, whatever the cursor.
  r.Ok(C::kSAdd, "small", {"a", "b", "c"});
  TypedReply whole = r.Ok(C::kSScan, "small", {}, 12345);
  CHECK(whole.integer == 0);
  CHECK(whole.items.size() == 3);

  std::map<std::string, int> seen;
  int64_t cursor = 0;
  int calls = 0;
  do {
    TypedReply reply;
    CacheStore store(*f.cache);
    REQUIRE(RunTyped(store, "s", {.command = C::kSScan, .n = cursor, .count = 7}, &reply).ok());
    for (const std::string& m : reply.items) ++seen[m];
    cursor = reply.integer;
    // Meanwhile members come and go: m0..m99 are removed, n0..n99 added, a few per call.
    if (calls < 100) {
      const std::string gone = "m" + std::to_string(calls);
      const std::string added = "n" + std::to_string(calls);
      r.Ok(C::kSRem, "s", {gone});
      r.Ok(C::kSAdd, "s", {added});
    }
    ++calls;
  } while (cursor != 0 && calls < 10000);
  CHECK(calls > 100);  // COUNT 7 over 1000 members: many calls.
  for (int i = 100; i < 1000; ++i) {
    INFO(names[static_cast<size_t>(i)]);
    CHECK(seen[names[static_cast<size_t>(i)]] == 1);
  }
  for (const auto& [member, times] : seen) CHECK(times == 1);

  // MATCH filters the examined members; a pattern over the limit is refused.
  TypedReply matched;
  {
    const std::string_view pattern[] = {"m99?"};
    CacheStore store(*f.cache);
    REQUIRE(RunTyped(store, "s", {.command = C::kSScan, .args = pattern, .count = 5000}, &matched)
                .ok());
  }
  CHECK(matched.integer == 0);
  CHECK(matched.items.size() == 10);  // m990 .. m999.
  const std::string huge(5000, '*');
  CHECK(r.Fails(C::kSScan, "s", {huge}).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Typed commands: versions, compare-and-set, wrong types and argument checks",
          "[unit][typed]") {
  CacheFixture f;
  Runner r{*f.cache};
  const uint64_t v1 = r.Ok(C::kSAdd, "s", {"a"}).version;
  CHECK(v1 != 0);
  CHECK(r.Ok(C::kSCard, "s").version == v1);        // A read gives the version it read.
  CHECK(r.Ok(C::kSAdd, "s", {"a"}).version == v1);  // Nothing changed: same version.
  const uint64_t v2 = r.Ok(C::kSAdd, "s", {"b"}).version;
  CHECK(v2 > v1);

  // if_version: only on the version named; nothing written otherwise.
  const Status stale = r.Fails(C::kSAdd, "s", {"c"}, 0, 0, false, v1);
  CHECK(stale.code() == StatusCode::kFailedPrecondition);
  CHECK(stale.message().find("version mismatch") != std::string::npos);
  CHECK(r.Ok(C::kSCard, "s").integer == 2);
  CHECK(r.Fails(C::kSAdd, "nokey", {"c"}, 0, 0, false, v1).code() == StatusCode::kNotFound);
  CHECK(r.Fails(C::kSAdd, "s", {"c"}, 0, 0, false, v2).ok());
  CHECK(r.Ok(C::kSCard, "s").integer == 3);

  REQUIRE(f.cache->Set("str", "x").ok());
  for (const TypedCommandInfo& info : TypedCommands()) {
    Args args(static_cast<size_t>(info.min_args), "1");
    const Status s = r.Fails(info.command, "str", args, /*n=*/1);
    INFO(info.name << ": " << s.ToString());
    CHECK(s.code() == StatusCode::kFailedPrecondition);
    CHECK(s.message().starts_with("WRONGTYPE "));
  }

  CHECK(r.Fails(C::kHSet, "h", {"f"}).message() ==
        "hset takes at least 2 argument(s) after the key, got 1");
  CHECK(r.Fails(C::kHSet, "h", {"f", "v", "g"}).message() ==
        "hset takes field value pairs, got 3 arguments");
  CHECK(r.Fails(C::kHGet, "h", {"a", "b"}).message() ==
        "hget takes 1 argument(s) after the key, got 2");
  CHECK(r.Fails(C::kLLen, "h", {"a"}).code() == StatusCode::kInvalidArgument);
  TypedReply reply;
  CacheStore store(*f.cache);
  CHECK(RunTyped(store, "k", {.command = static_cast<TypedCommand>(99)}, &reply).code() ==
        StatusCode::kInvalidArgument);
  for (const TypedCommandInfo& info : TypedCommands()) {  // Names and numbers round-trip.
    CHECK(TypedCommandNamed(info.name) == &info);
    CHECK(TypedCommandNumbered(static_cast<uint32_t>(info.command)) == &info);
  }
  CHECK(TypedCommandNamed("HSET")->command == C::kHSet);
  CHECK(TypedCommandNamed("get") == nullptr);
}

TEST_CASE("Typed commands: many names into a large collection in one write", "[unit][typed]") {
  // 50k members added to a 50k set and 50k fields removed from a 50k hash: with a scan per
  // name this is 2.5e9 comparisons under the shard lock; indexed, it is linear.
  CacheOptions options;
  options.capacity_bytes = uint64_t{256} << 20;
  CacheFixture f(options);
  Runner r{*f.cache};
  constexpr int kN = 50000;
  std::vector<std::string> names;
  for (int i = 0; i < 2 * kN; ++i) names.push_back("m" + std::to_string(i));
  Args first(names.begin(), names.begin() + kN);
  Args overlapping(names.begin() + kN / 2, names.begin() + kN / 2 + kN);
  CHECK(r.Ok(C::kSAdd, "s", first).integer == kN);
  CHECK(r.Ok(C::kSAdd, "s", overlapping).integer == kN / 2);
  CHECK(r.Ok(C::kSCard, "s").integer == kN + kN / 2);
  CHECK(r.Ok(C::kSMIsMember, "s", {"m0", "m99999", "m74999"}).integers ==
        std::vector<int64_t>{1, 0, 1});
  CHECK(r.Ok(C::kSRem, "s", overlapping).integer == kN);
  CHECK(r.Ok(C::kSCard, "s").integer == kN / 2);

  Args pairs;
  for (int i = 0; i < kN; ++i) {
    pairs.push_back(names[static_cast<size_t>(i)]);
    pairs.push_back("v");
  }
  CHECK(r.Ok(C::kHSet, "h", pairs).integer == kN);
  CHECK(r.Ok(C::kHMGet, "h", {"m1", "nope"}).absent == std::vector<uint32_t>{1});
  CHECK(r.Ok(C::kHDel, "h", first).integer == kN);
  CHECK(r.Ok(C::kHLen, "h").integer == 0);
}

TEST_CASE("INCRBYFLOAT's number text is parsed and written as Redis does", "[unit][typed]") {
  long double v = 0;
  CHECK(ParseFloatText("10.5", &v));
  CHECK(v == 10.5L);
  CHECK(ParseFloatText("-5.0e3", &v));
  CHECK(v == -5000.0L);
  CHECK(ParseFloatText("inf", &v));  // Parsed; the sum is refused later.
  for (const char* bad : {"", " 1", "1 ", "abc", "nan", "1e99999", "0x"}) {
    INFO(bad);
    CHECK_FALSE(ParseFloatText(bad, &v));
  }
  CHECK_FALSE(ParseFloatText(std::string(5 * 1024, '1'), &v));
  CHECK(FormatFloatText(10.5L) == "10.5");
  CHECK(FormatFloatText(3000.0L) == "3000");
  CHECK(FormatFloatText(-0.0L) == "0");
  CHECK(FormatFloatText(10.5L + 0.1L) == "10.6");
  CHECK(FormatFloatText(0.1L) == "0.1");  // Trailing zeros of the 17 decimals go...
  CHECK(FormatFloatText(static_cast<long double>(0.1)) == "0.10000000000000001");  // ...only those.
}

}  // namespace
}  // namespace ringcache

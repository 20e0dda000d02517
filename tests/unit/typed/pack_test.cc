// The compact pack of small collections (lib/src/typed/pack.h): its encoding, the
// operations of each family with Redis's edge cases (the examples of Redis's command
// reference), and random operations checked against plain standard containers.
#include "typed/pack.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::typed {
namespace {

using Strings = std::vector<std::string>;

std::vector<std::string_view> Views(const Strings& s) { return {s.begin(), s.end()}; }

Strings Items(const std::string& pack, bool pairs) {
  std::vector<std::string_view> items;
  REQUIRE(Decode(pack, pairs, &items).ok());
  return {items.begin(), items.end()};
}

std::string List(const Strings& elements) {
  return ListPush("", Side::kRight, Views(elements)).value().pack;
}

TEST_CASE("A pack round-trips its items, and its encoding is compact", "[unit][typed]") {
  const Strings items = {"", "a", std::string(200, 'x'), std::string("\0\xff", 2)};
  const std::string pack = Encode(Views(items));
  CHECK(Items(pack, false) == items);
  CHECK(*Count(pack) == 4);
  // One byte of count, one byte of length for each item under 128 bytes, two for 200.
  CHECK(pack.size() == 1 + (1 + 0) + (1 + 1) + (2 + 200) + (1 + 2));
  // A hash field of 8 bytes with a 16-byte value: 26 bytes (docs/design/typed-values.md).
  const std::string field(8, 'f');
  const std::string value(16, 'v');
  const FieldValue fv[] = {{field, value}};
  CHECK(HashSet("", fv).value().pack.size() == 1 + 26);
}

TEST_CASE("Bytes that are not a pack are refused, never read past their end", "[unit][typed]") {
  const std::string good = Encode(Views({"abc", "de"}));
  std::vector<std::string_view> items;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    INFO("cut at " << cut);
    const Status s = Decode(good.substr(0, cut), false, &items);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::StartsWith("corrupt pack"));
  }
  CHECK(Decode(good + "x", false, &items).code() == StatusCode::kInvalidArgument);
  // A count far beyond the bytes: refused before anything is reserved.
  CHECK_THAT(Decode("\xff\xff\xff\xff\xff\xff\xff\xff\x7f", false, &items).message(),
             Catch::Contains("over the limit"));
  CHECK_THAT(Decode("\x05"
                    "ab",
                    false, &items)
                 .message(),
             Catch::Contains("exceeds"));
  // The reads that walk a pack without decoding it check the same bounds.
  CHECK(HashGet("\x01\x05"
                "ab",
                "f")
            .status()
            .code() == StatusCode::kInvalidArgument);
  CHECK(ListIndex("\x02\x01a\x09", 1).status().code() == StatusCode::kInvalidArgument);
  // Validate: what the cache checks a collection from outside with.
  CHECK(Validate(good, false).ok());
  CHECK_FALSE(Validate(good + "x", false).ok());
  CHECK_FALSE(Validate("", false).ok());
  CHECK_FALSE(Validate(std::string(1, '\0'), false).ok());  // An empty collection.
  CHECK_FALSE(Validate(good, true).ok());                   // 2 items are 1 pair, not 2.
  // A hash needs its items in pairs: 2 pairs claimed, 3 items present.
  CHECK_FALSE(Decode(Encode(Views({"f", "v", "g"})).replace(0, 1, "\x02"), true, &items).ok());
  // Every operation refuses a corrupt pack rather than treat it as empty.
  CHECK(HashGet("\x05", "f").status().code() == StatusCode::kInvalidArgument);
  CHECK(ListRange("\x05", 0, -1).status().code() == StatusCode::kInvalidArgument);
  CHECK(SetIsMember("\x05", "m").status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("The small encoding's thresholds are Redis's listpack defaults", "[unit][typed]") {
  Strings items(kSmallMaxItems, "x");
  CHECK(FitsSmall(Views(items), false));
  items.push_back("x");
  CHECK_FALSE(FitsSmall(Views(items), false));
  CHECK(FitsSmall(Views(items), true));  // 129 items are 64 pairs.
  CHECK(FitsSmall(Views({std::string(kSmallMaxItemBytes, 'x')}), false));
  CHECK_FALSE(FitsSmall(Views({std::string(kSmallMaxItemBytes + 1, 'x')}), false));
  CHECK(ValueTypeName(ValueType::kHash) == "hash");
  CHECK(ValueTypeName(ValueType::kString) == "string");
}

TEST_CASE("Hash operations behave as Redis's", "[unit][typed]") {
  const FieldValue first[] = {{"name", "Ada"}, {"age", "36"}, {"name", "Ada L."}};
  Result<Write> w = HashSet("", first);
  REQUIRE(w.ok());
  CHECK(w->n == 2);  // A field repeated in one HSET is added once, with its last value.
  CHECK(Items(w->pack, true) == Strings{"name", "Ada L.", "age", "36"});
  CHECK(**HashGet(w->pack, "name") == "Ada L.");
  CHECK_FALSE(HashGet(w->pack, "missing")->has_value());
  CHECK_FALSE(HashGet("", "name")->has_value());

  const FieldValue update[] = {{"age", "37"}, {"city", "London"}};
  w = HashSet(w->pack, update);
  CHECK(w->n == 1);  // Updated fields are not counted.
  CHECK(**HashGet(w->pack, "age") == "37");

  const FieldValue nx[] = {{"age", "99"}};
  Result<Write> kept = HashSet(w->pack, nx, /*only_new=*/true);
  CHECK(kept->n == 0);
  CHECK(**HashGet(kept->pack, "age") == "37");
  CHECK(HashSet(w->pack, std::span<const FieldValue>()).status().code() ==
        StatusCode::kInvalidArgument);

  const std::string_view gone[] = {"city", "missing", "city"};
  Result<Write> d = HashDel(w->pack, gone);
  CHECK(d->n == 1);
  CHECK(*Count(d->pack) == 2);
  const std::string_view all[] = {"name", "age"};
  d = HashDel(d->pack, all);
  CHECK(d->n == 2);
  CHECK(d->pack.empty());  // No empty hash: the key goes.
  CHECK(HashDel("", all)->pack.empty());
}

TEST_CASE("HINCRBY creates, adds, and refuses what Redis refuses", "[unit][typed]") {
  Result<Write> w = HashIncrBy("", "n", 5);
  REQUIRE(w.ok());
  CHECK(w->n == 5);
  w = HashIncrBy(w->pack, "n", -7);
  CHECK(w->n == -2);
  CHECK(**HashGet(w->pack, "n") == "-2");

  const FieldValue text[] = {{"t", "abc"}, {"big", "9223372036854775807"}, {"sp", " 1"}};
  const std::string pack = HashSet(w->pack, text)->pack;
  // As Redis's string2ll: no leading zero, no "-0", no '+'.
  for (const char* odd_text : {"007", "-0", "+1", "1 ", ""}) {
    INFO(odd_text);
    const FieldValue odd[] = {{"odd", odd_text}};
    CHECK(HashIncrBy(HashSet(pack, odd)->pack, "odd", 1).status().code() ==
          StatusCode::kFailedPrecondition);
  }
  const Status not_int = HashIncrBy(pack, "t", 1).status();
  CHECK(not_int.code() == StatusCode::kFailedPrecondition);
  CHECK(not_int.message() == "hash value is not an integer");
  CHECK(HashIncrBy(pack, "sp", 1).status().code() == StatusCode::kFailedPrecondition);
  const Status overflow = HashIncrBy(pack, "big", 1).status();
  CHECK(overflow.code() == StatusCode::kOutOfRange);
  CHECK(overflow.message() == "increment or decrement would overflow");
  CHECK(HashIncrBy(pack, "big", -1)->n == std::numeric_limits<int64_t>::max() - 1);
}

TEST_CASE("List operations behave as Redis's command reference shows", "[unit][typed]") {
  // LPUSH mylist a b c -> c b a.
  Result<Write> w = ListPush("", Side::kLeft, Views({"a", "b", "c"}));
  CHECK(w->n == 3);
  CHECK(Items(w->pack, false) == Strings{"c", "b", "a"});
  w = ListPush(w->pack, Side::kRight, Views({"d"}));
  CHECK(Items(w->pack, false) == Strings{"c", "b", "a", "d"});
  CHECK(ListPush("", Side::kLeft, {}).status().code() == StatusCode::kInvalidArgument);

  // LRANGE: RPUSH one two three; 0 0, -3 2, -100 100, 5 10.
  const std::string l = List({"one", "two", "three"});
  auto range = [&](int64_t a, int64_t b) {
    const std::vector<std::string_view> r = ListRange(l, a, b).value();
    return Strings(r.begin(), r.end());
  };
  CHECK(range(0, 0) == Strings{"one"});
  CHECK(range(-3, 2) == Strings{"one", "two", "three"});
  CHECK(range(-100, 100) == Strings{"one", "two", "three"});
  CHECK(range(5, 10).empty());
  CHECK(range(2, 1).empty());
  CHECK(range(0, -100).empty());
  CHECK(ListRange("", 0, -1)->empty());

  // LINDEX: 0, -1, 3.
  CHECK(**ListIndex(l, 0) == "one");
  CHECK(**ListIndex(l, -1) == "three");
  CHECK_FALSE(ListIndex(l, 3)->has_value());
  CHECK_FALSE(ListIndex(l, -4)->has_value());

  // LSET: RPUSH one two three; LSET 0 four; LSET -2 five -> four five three.
  Result<Write> s = ListSet(l, 0, "four");
  s = ListSet(s->pack, -2, "five");
  CHECK(Items(s->pack, false) == Strings{"four", "five", "three"});
  CHECK(ListSet(l, 3, "x").status().code() == StatusCode::kOutOfRange);
  CHECK(ListSet(l, 3, "x").status().message() == "index out of range");
  CHECK(ListSet("", 0, "x").status().code() == StatusCode::kNotFound);

  // LINSERT: RPUSH Hello World; LINSERT BEFORE World There -> Hello There World.
  Result<Write> ins = ListInsert(List({"Hello", "World"}), true, "World", "There");
  CHECK(ins->n == 3);
  CHECK(Items(ins->pack, false) == Strings{"Hello", "There", "World"});
  ins = ListInsert(ins->pack, false, "World", "!");
  CHECK(Items(ins->pack, false) == Strings{"Hello", "There", "World", "!"});
  CHECK(ListInsert(ins->pack, true, "missing", "x")->n == -1);
  CHECK(ListInsert("", true, "p", "x")->n == 0);

  // LREM: RPUSH hello hello foo hello; LREM -2 hello -> hello foo.
  Result<Write> rem = ListRem(List({"hello", "hello", "foo", "hello"}), -2, "hello");
  CHECK(rem->n == 2);
  CHECK(Items(rem->pack, false) == Strings{"hello", "foo"});
  rem = ListRem(List({"a", "x", "a", "a"}), 2, "a");
  CHECK(Items(rem->pack, false) == Strings{"x", "a"});
  rem = ListRem(List({"a", "x", "a"}), 0, "a");
  CHECK(Items(rem->pack, false) == Strings{"x"});
  rem = ListRem(List({"a", "a"}), std::numeric_limits<int64_t>::min(), "a");
  CHECK(rem->n == 2);
  CHECK(rem->pack.empty());

  // LTRIM: RPUSH one two three; LTRIM 1 -1 -> two three; a range past the end empties it.
  Result<Write> t = ListTrim(l, 1, -1);
  CHECK(t->n == 1);
  CHECK(Items(t->pack, false) == Strings{"two", "three"});
  t = ListTrim(l, 5, 10);
  CHECK(t->n == 3);
  CHECK(t->pack.empty());
  CHECK(ListTrim(l, 0, -1)->n == 0);

  // LPOP / RPOP with a count, in pop order; more than there is takes all.
  std::vector<std::string> popped;
  Result<Write> p = ListPop(List({"one", "two", "three", "four", "five"}), Side::kLeft, 2, &popped);
  CHECK(popped == Strings{"one", "two"});
  CHECK(p->n == 2);
  p = ListPop(p->pack, Side::kRight, 2, &popped);
  CHECK(popped == Strings{"five", "four"});
  p = ListPop(p->pack, Side::kRight, 10, &popped);
  CHECK(popped == Strings{"three"});
  CHECK(p->pack.empty());
  CHECK(ListPop("", Side::kLeft, 1, &popped)->n == 0);
  CHECK(popped.empty());
}

TEST_CASE("A write past the element limit is refused", "[unit][typed]") {
  const std::vector<std::string_view> many(kMaxElements, "");
  Result<Write> full = ListPush("", Side::kRight, many);
  REQUIRE(full.ok());
  CHECK(full->n == static_cast<int64_t>(kMaxElements));
  const Status s = ListPush(full->pack, Side::kLeft, Views({"one more"})).status();
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("at most 1048576 elements"));
  // A read of one element of the long list does not decode the rest.
  CHECK(**ListIndex(full->pack, -1) == "");
  CHECK(ListRange(full->pack, 0, 2)->size() == 3);
}

TEST_CASE("Set operations behave as Redis's", "[unit][typed]") {
  Result<Write> w = SetAdd("", Views({"Hello", "World", "World"}));
  CHECK(w->n == 2);
  CHECK(*Count(w->pack) == 2);
  CHECK(*SetIsMember(w->pack, "World"));
  CHECK_FALSE(*SetIsMember(w->pack, "world"));
  CHECK_FALSE(*SetIsMember("", "x"));
  CHECK(SetAdd(w->pack, Views({"Hello"}))->n == 0);
  CHECK(SetAdd("", {}).status().code() == StatusCode::kInvalidArgument);
  Result<Write> r = SetRem(w->pack, Views({"Hello", "missing"}));
  CHECK(r->n == 1);
  r = SetRem(r->pack, Views({"World"}));
  CHECK(r->pack.empty());
}

// Random operations on each family, checked after each step against a plain model.
TEST_CASE("Random operations on packs match standard containers", "[unit][typed]") {
  std::mt19937_64 rng(Catch::rngSeed() + 1);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto word = [&] { return std::string(1, static_cast<char>('a' + pick(6))); };

  std::string hash;
  std::vector<std::pair<std::string, std::string>> hash_model;
  std::string list;
  std::deque<std::string> list_model;
  std::string set;
  Strings set_model;
  for (int step = 0; step < 3000; ++step) {
    INFO("step " << step);
    const std::string a = word();
    const std::string b = word() + word();
    // Hash: set, delete or increment one field.
    switch (pick(3)) {
      case 0: {
        const FieldValue fv[] = {{a, b}};
        hash = HashSet(hash, fv)->pack;
        auto it = std::find_if(hash_model.begin(), hash_model.end(),
                               [&](const auto& p) { return p.first == a; });
        if (it != hash_model.end()) {
          it->second = b;
        } else {
          hash_model.emplace_back(a, b);
        }
        break;
      }
      case 1: {
        const std::string_view f[] = {a};
        hash = HashDel(hash, f)->pack;
        std::erase_if(hash_model, [&](const auto& p) { return p.first == a; });
        break;
      }
      default: {
        Result<Write> w = HashIncrBy(hash, a, 3);
        auto it = std::find_if(hash_model.begin(), hash_model.end(),
                               [&](const auto& p) { return p.first == a; });
        if (it == hash_model.end()) {
          REQUIRE(w.ok());
          hash_model.emplace_back(a, "3");
        } else if (it->second.find_first_not_of("-0123456789") == std::string::npos) {
          REQUIRE(w.ok());
          it->second = std::to_string(std::stoll(it->second) + 3);
        } else {
          REQUIRE_FALSE(w.ok());
          break;
        }
        hash = w->pack;
        break;
      }
    }
    Strings flat;
    for (const auto& [f, v] : hash_model) flat.insert(flat.end(), {f, v});
    REQUIRE((hash.empty() ? Strings{} : Items(hash, true)) == flat);

    // List: push, pop, remove or trim.
    switch (pick(4)) {
      case 0: {
        const Side side = pick(2) == 0 ? Side::kLeft : Side::kRight;
        list = ListPush(list, side, Views({a, b}))->pack;
        if (side == Side::kLeft) {
          list_model.push_front(a);
          list_model.push_front(b);
        } else {
          list_model.push_back(a);
          list_model.push_back(b);
        }
        break;
      }
      case 1: {
        std::vector<std::string> popped;
        const uint64_t n = static_cast<uint64_t>(pick(3));
        list = ListPop(list, Side::kRight, n, &popped)->pack;
        for (const std::string& e : popped) {
          REQUIRE(e == list_model.back());
          list_model.pop_back();
        }
        REQUIRE(popped.size() == std::min<size_t>(n, popped.size() + list_model.size()));
        break;
      }
      case 2: {
        list = ListRem(list, 0, a)->pack;
        std::erase(list_model, a);
        break;
      }
      default: {
        const int64_t start = pick(5) - 2;
        const int64_t stop = pick(8) - 3;
        list = ListTrim(list, start, stop)->pack;
        const auto size = static_cast<int64_t>(list_model.size());
        int64_t s = start < 0 ? size + start : start;
        int64_t e = stop < 0 ? size + stop : stop;
        s = std::max<int64_t>(s, 0);
        e = std::min<int64_t>(e, size - 1);
        if (s > e || s >= size) {
          list_model.clear();
        } else {
          list_model = std::deque<std::string>(list_model.begin() + s, list_model.begin() + e + 1);
        }
        break;
      }
    }
    REQUIRE((list.empty() ? Strings{} : Items(list, false)) ==
            Strings(list_model.begin(), list_model.end()));

    // Set: add or remove.
    if (pick(2) == 0) {
      set = SetAdd(set, Views({a}))->pack;
      if (std::find(set_model.begin(), set_model.end(), a) == set_model.end()) {
        set_model.push_back(a);
      }
    } else {
      set = SetRem(set, Views({a}))->pack;
      std::erase(set_model, a);
    }
    REQUIRE((set.empty() ? Strings{} : Items(set, false)) == set_model);
  }
}

}  // namespace
}  // namespace ringcache::typed

// TokenTable (daemon/node/src/token_table.h): the tokens file's format, each mistake named
// with its line, and lookups by token; SameSecret and RefusalLog (auth_support.h).
#include "token_table.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "auth_support.h"

namespace ringcache::internal {
namespace {

const std::string kRead = "r-0123456789abcdef";
const std::string kWrite = "w-0123456789abcdef";

TEST_CASE("A tokens file gives each token its name and role", "[unit][auth]") {
  const std::string text =
      "# name role token\n"
      "\n"
      "reports read " +
      kRead +
      "   # nightly jobs\n"
      "  web\tread-write\t" +
      kWrite +
      "\r\n"
      "ops admin tok#with-a-hash-inside\n";
  auto table = TokenTable::Parse(text, "tokens");
  REQUIRE(table.ok());
  const TokenTable& t = *table.value();
  CHECK(t.size() == 3);
  const TokenTable::Principal* reports = t.Find(kRead);
  REQUIRE(reports != nullptr);
  CHECK(reports->name == "reports");
  CHECK(reports->role == Role::kRead);
  REQUIRE(t.Find(kWrite) != nullptr);
  CHECK(t.Find(kWrite)->role == Role::kReadWrite);
  REQUIRE(t.Find("tok#with-a-hash-inside") != nullptr);
  CHECK(t.Find("tok#with-a-hash-inside")->role == Role::kAdmin);
  // Nothing but the whole token matches.
  CHECK(t.Find("") == nullptr);
  CHECK(t.Find(kRead.substr(0, kRead.size() - 1)) == nullptr);
  CHECK(t.Find(kRead + "x") == nullptr);
  CHECK(t.Find("reports") == nullptr);
}

TEST_CASE("A tokens file with a mistake is refused, naming the line and the mistake",
          "[unit][auth]") {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"web read-write\n", "tokens line 1: expected NAME ROLE TOKEN, got 2 fields"},
      {"\nweb writer " + kWrite + "\n", "tokens line 2: unknown role 'writer'"},
      {"web read-write short\n", "tokens line 1: a token is 16 to 1024 bytes, got 5"},
      {"web read-write " + std::string(1025, 'x') + "\n", "got 1025"},
      {"we/b read " + kRead + "\n", "tokens line 1: a name holds only letters"},
      {std::string(65, 'n') + " read " + kRead + "\n", "the name is over 64 bytes"},
      {"a read " + kRead + "\na read " + kWrite + "\n", "line 2: the name a is on line 1"},
      {"a read " + kRead + "\nb admin " + kRead + "\n", "line 2: this token is a's already"},
      {"a read tok\x01"
       "0123456789abcdef\n",
       "printable ASCII"},
  };
  for (const Case& c : cases) {
    auto table = TokenTable::Parse(c.text, "tokens");
    INFO(c.text);
    REQUIRE_FALSE(table.ok());
    CHECK(table.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(table.status().message(), Catch::Contains(c.message));
  }
}

TEST_CASE(
    "SameSecret compares whole secrets, and RefusalLog counts all and logs at most once a second",
    "[unit][auth]") {
  CHECK(SameSecret("abcdef", "abcdef"));
  CHECK_FALSE(SameSecret("abcdeg", "abcdef"));
  CHECK_FALSE(SameSecret("abcde", "abcdef"));
  CHECK_FALSE(SameSecret("abcdefg", "abcdef"));
  CHECK_FALSE(SameSecret("", "abcdef"));

  std::vector<std::string> lines;
  RefusalLog log([&lines](LogLevel level, std::string_view line) {
    CHECK(level == LogLevel::kWarn);
    lines.emplace_back(line);
  });
  int built = 0;
  for (int i = 0; i < 100; ++i) {
    log.Note([&] {
      ++built;
      return std::string("refused");
    });
  }
  CHECK(log.count() == 100);
  CHECK(lines == std::vector<std::string>{"refused"});
  CHECK(built == 1);  // The line is built only when it is logged.
}

}  // namespace
}  // namespace ringcache::internal

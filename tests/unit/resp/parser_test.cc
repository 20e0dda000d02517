// RespParser: requests parsed in place, whole commands only, Redis's protocol errors and
// limits checked on declared lengths.
#include "resp/parser.h"

#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

std::vector<std::vector<std::string>> Words(const std::vector<RespCommand>& commands) {
  std::vector<std::vector<std::string>> out;
  for (const RespCommand& c : commands) out.emplace_back(c.args.begin(), c.args.end());
  return out;
}

TEST_CASE("RESP arrays and inline commands parse into their words", "[resp]") {
  const RespParser parser(RespLimits{});
  const std::string in =
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb!\r\n"  // A value holding CR LF.
      "PING\r\n"
      "ECHO \"a b\\x41\\n\" 'it\\'s'\n"  // Inline, LF only.
      "*0\r\n\r\n"                       // Skipped: an empty array and an empty line.
      "*1\r\n$0\r\n\r\n";
  std::vector<RespCommand> commands;
  size_t used = 0;
  const RespParseError error = parser.Parse(in, &commands, &used);
  REQUIRE_FALSE(error);
  CHECK(used == in.size());
  CHECK(Words(commands) ==
        std::vector<std::vector<std::string>>{
            {"SET", "k", "a\r\nb!"}, {"PING"}, {"ECHO", "a bA\n", "it's"}, {""}});
}

TEST_CASE("RESP parsing stops before an incomplete command at every split point", "[resp]") {
  const RespParser parser(RespLimits{});
  const std::string whole = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n";
  const std::vector<size_t> ends = {22, 28, 42};  // Where each command ends.
  for (size_t cut = 0; cut <= whole.size(); ++cut) {
    std::vector<RespCommand> commands;
    size_t used = 0;
    const RespParseError error =
        parser.Parse(std::string_view(whole).substr(0, cut), &commands, &used);
    INFO("cut at " << cut);
    REQUIRE_FALSE(error);
    size_t expect = 0;
    size_t expect_used = 0;
    for (const size_t e : ends) {
      if (e <= cut) {
        ++expect;
        expect_used = e;
      }
    }
    CHECK(commands.size() == expect);
    CHECK(used == expect_used);
  }
}

TEST_CASE("RESP protocol errors use Redis's words, after the commands before them", "[resp]") {
  const RespParser parser(RespLimits{.max_args = 4, .max_bulk_bytes = 10, .max_inline_bytes = 32});
  struct Case {
    std::string in;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$11\r\n", "Protocol error: invalid bulk length"},  // Over max_bulk_bytes.
      {"*5\r\n", "Protocol error: invalid multibulk length"},    // Over max_args.
      {"*abc\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"},
      {"SET a \"open\r\n", "Protocol error: unbalanced quotes in request"},
      {"ECHO 'a'b\r\n", "Protocol error: unbalanced quotes in request"},
      {std::string(40, 'x'), "Protocol error: too big inline request"},
      {"*1\r\n" + std::string(40, '$'), "Protocol error: too big bulk count string"},
  };
  for (const Case& c : cases) {
    INFO(c.in);
    std::vector<RespCommand> commands;
    size_t used = 0;
    const RespParseError error = parser.Parse("PING\r\n" + c.in, &commands, &used);
    REQUIRE(error);
    CHECK(error.message == c.message);
    CHECK(commands.size() == 1);  // The PING before it stands.
    CHECK(used == 6);
  }
}

TEST_CASE("RESP parsing reserves memory by bytes received, not by declared counts", "[resp]") {
  const RespParser parser(RespLimits{});
  // A million arguments declared, none sent: incomplete, and nothing sized by the claim.
  std::vector<RespCommand> commands;
  size_t used = 0;
  REQUIRE_FALSE(parser.Parse("*1000000\r\n$3\r\nGET\r\n", &commands, &used));
  CHECK(commands.empty());
  CHECK(used == 0);
}

TEST_CASE("Parse returns at most max_commands commands", "[resp]") {
  const RespParser parser(RespLimits{});
  std::vector<RespCommand> commands;
  size_t used = 0;
  REQUIRE_FALSE(parser.Parse("PING\r\nPING\r\nPING\r\n", &commands, &used, 2));
  CHECK(commands.size() == 2);
  CHECK(used == 12);
}

TEST_CASE("Before AUTH a command may hold 10 arguments of 16 KiB, as Redis allows", "[resp]") {
  const RespParser parser(RespLimits{});
  std::vector<RespCommand> commands;
  size_t used = 0;
  const std::string value(RespLimits::kUnauthenticatedBulkBytes, 'v');
  const std::string fits = "*10\r\n" + std::string("$1\r\na\r\n") + [&] {
    std::string rest;
    for (int i = 0; i < 9; ++i)
      rest += "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
    return rest;
  }();
  REQUIRE_FALSE(parser.Parse(fits, &commands, &used, 1, /*unauthenticated=*/true));
  CHECK(commands.size() == 1);

  // Refused on the declared lengths, before the bytes arrive.
  RespParseError error = parser.Parse("*11\r\n", &commands, &used, 1, true);
  CHECK(error.message == "Protocol error: unauthenticated multibulk length");
  error = parser.Parse("*2\r\n$3\r\nGET\r\n$16385\r\n", &commands, &used, 1, true);
  CHECK(error.message == "Protocol error: unauthenticated bulk length");
  // Authenticated, the same declarations wait for their bytes.
  CHECK_FALSE(parser.Parse("*11\r\n", &commands, &used));
  CHECK_FALSE(parser.Parse("*2\r\n$3\r\nGET\r\n$16385\r\n", &commands, &used));
}

}  // namespace
}  // namespace ringcache::internal

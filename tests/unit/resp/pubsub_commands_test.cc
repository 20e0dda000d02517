// RespBatch's pub/sub commands against a real PubSub hub: Redis 7.0's confirmations, the
// subscribe-mode rules, PUBLISH waiting for its outcome, RESET, and the messages as
// pushed (the byte-for-byte comparison with redis-server is tests/resp/test_pubsub.py).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "resp/commands.h"
#include "resp_command.h"

namespace ringcache::internal {
namespace {

// Runs `words` as one batch and answers its replies.
std::string Run(RespBatch& batch, std::vector<std::string> words) {
  batch.Clear();
  const RespCommand c = Command(std::move(words));
  batch.Add(c, 0);
  std::string out;
  batch.EncodeReplies(&out);
  return out;
}

RespBatch BatchOn(PubSub* hub, Role role = Role::kAdmin) {
  RespBatch batch;
  RespSession session;
  session.open_subscription = [hub] { return hub->Open({}); };
  session.role = role;
  batch.SetSession(std::move(session));
  return batch;
}

TEST_CASE("SUBSCRIBE and PSUBSCRIBE confirm each name with the connection's count",
          "[resp][pubsub]") {
  PubSub hub;
  RespBatch batch = BatchOn(&hub);
  CHECK(batch.subscription() == nullptr);
  CHECK(Run(batch, {"SUBSCRIBE", "a", "b", "a"}) ==
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n");  // A repeat counts once.
  REQUIRE(batch.subscription() != nullptr);
  CHECK(Run(batch, {"PSUBSCRIBE", "p*"}) == "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n");
  CHECK(hub.Publish("a", "x") == 1);
  CHECK(hub.Publish("pq", "y") == 1);
  std::vector<PubSub::Delivery> got;
  batch.subscription()->Take(&got, 10);
  REQUIRE(got.size() == 2);
  std::string pushed;
  for (const auto& d : got) RespBatch::EncodeMessage(d, &pushed);
  CHECK(pushed ==
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"
        "*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$1\r\ny\r\n");
}

TEST_CASE("In subscribe mode only pub/sub commands, PING, QUIT and RESET run", "[resp][pubsub]") {
  PubSub hub;
  RespBatch batch = BatchOn(&hub);
  Run(batch, {"SUBSCRIBE", "a"});
  CHECK(Run(batch, {"GET", "x"}) ==
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context\r\n");
  CHECK(batch.ops().empty());
  CHECK(Run(batch, {"PING"}) == "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  CHECK(Run(batch, {"PING", "hi"}) == "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
  // Unknown commands and wrong arities are answered as such first, as Redis does.
  CHECK(Run(batch, {"NOSUCH"}).starts_with("-ERR unknown command 'NOSUCH'"));
  CHECK(Run(batch, {"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
}

TEST_CASE(
    "UNSUBSCRIBE without names drops every one, in the order subscribed, and leaves "
    "subscribe mode",
    "[resp][pubsub]") {
  PubSub hub;
  RespBatch batch = BatchOn(&hub);
  Run(batch, {"SUBSCRIBE", "a", "b"});
  Run(batch, {"PSUBSCRIBE", "p*"});
  CHECK(Run(batch, {"UNSUBSCRIBE"}) ==
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n"
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
  CHECK(Run(batch, {"PUNSUBSCRIBE", "zz"}) == "*3\r\n$12\r\npunsubscribe\r\n$2\r\nzz\r\n:1\r\n");
  CHECK(Run(batch, {"PUNSUBSCRIBE"}) == "*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n");
  CHECK(batch.subscription() == nullptr);
  CHECK(hub.stats().subscriptions == 0);
  CHECK(Run(batch, {"UNSUBSCRIBE"}) == "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
  CHECK(Run(batch, {"PING"}) == "+PONG\r\n");  // Out of subscribe mode.
}

TEST_CASE("PUBLISH waits for its outcome and RESET leaves subscribe mode and MULTI",
          "[resp][pubsub]") {
  PubSub hub;
  RespBatch batch = BatchOn(&hub);
  batch.Clear();
  const RespCommand publish = Command({"PUBLISH", "ch", "msg"});
  const RespCommand ping = Command({"PING"});
  batch.Add(publish, 0);
  batch.Add(ping, 0);
  REQUIRE(batch.publishes().size() == 1);
  CHECK(batch.publishes()[0].channel == "ch");
  CHECK(batch.publishes()[0].payload == "msg");
  batch.SetPublishResult(0, Status::Ok(), 3);
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out == ":3\r\n+PONG\r\n");

  Run(batch, {"SUBSCRIBE", "a"});
  CHECK(Run(batch, {"RESET"}) == "+RESET\r\n");
  CHECK(batch.subscription() == nullptr);
  Run(batch, {"GET", "x"});
  CHECK(batch.ops().size() == 1);  // An operation now, not an error.
  Run(batch, {"MULTI"});
  CHECK(Run(batch, {"RESET"}) == "+RESET\r\n");
  CHECK(Run(batch, {"EXEC"}) == "-ERR EXEC without MULTI\r\n");
}

TEST_CASE("Pub/sub commands need their roles and names over the limits are refused",
          "[resp][pubsub]") {
  PubSub::Options options;
  options.max_name_bytes = 4;
  PubSub hub(options);
  RespBatch reader = BatchOn(&hub, Role::kRead);
  CHECK(Run(reader, {"PUBLISH", "a", "b"}) ==
        "-NOPERM this user has no permissions to run the 'publish' command\r\n");
  CHECK(reader.publishes().empty());
  CHECK(Run(reader, {"SUBSCRIBE", "a"}).starts_with("*3"));
  CHECK(Run(reader, {"SUBSCRIBE", "toolong"}).starts_with("-ERR channel of 7 bytes is over"));
  RespBatch unauthenticated = BatchOn(&hub, Role::kNone);
  CHECK(Run(unauthenticated, {"SUBSCRIBE", "a"}) == "-NOAUTH Authentication required.\r\n");
}

}  // namespace
}  // namespace ringcache::internal

// RespBatch: Redis commands into operations of the vocabulary, and their results into
// Redis's replies (the byte-for-byte comparison with redis-server is tests/resp/).
#include "resp/commands.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "resp_command.h"

namespace ringcache::internal {
namespace {

TEST_CASE("Commands become operations of one batch, replies come back in command order", "[resp]") {
  RespBatch batch;
  std::vector<RespCommand> commands;
  for (auto words : std::vector<std::vector<std::string>>{{"SET", "k", "v", "EX", "10", "NX"},
                                                          {"PING"},
                                                          {"MGET", "a", "b", "c"},
                                                          {"INCRBY", "n", "-5"},
                                                          {"EXPIRE", "k", "0"},
                                                          {"TTL", "k"}}) {
    commands.push_back(Command(std::move(words)));
  }
  for (const RespCommand& c : commands) REQUIRE(batch.Add(c, 1000));
  REQUIRE(batch.commands() == 6);
  const auto ops = batch.ops();
  REQUIRE(ops.size() == 1 + 3 + 1 + 1 + 1);
  CHECK(ops[0].kind == OpKind::kSet);
  CHECK(ops[0].set.ttl_ms == 10'000);
  CHECK(ops[0].set.mode == SetMode::kIfAbsent);
  CHECK(ops[0].key.placement() == HashKey("k"));
  CHECK(ops[1].kind == OpKind::kGet);
  CHECK(ops[3].key.bytes() == "c");
  CHECK(ops[4].kind == OpKind::kIncr);
  CHECK(ops[4].delta == -5);
  CHECK(ops[5].kind == OpKind::kTouch);  // EXPIRE 0: an absolute time already past...
  CHECK(ops[5].expires_at_ms == 1000);   // ...(now), which removes the key.
  CHECK(ops[6].kind == OpKind::kTtl);

  // Results as the engine would give them.
  auto results = batch.results();
  results[0].status = Status::AlreadyExists("exists");
  *results[1].value = "1";
  results[2].status = Status::NotFound("absent");
  *results[3].value = "3";
  results[4].integer = 7;
  results[5].status = Status::NotFound("absent");
  results[6].integer = 2500;
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out == "$-1\r\n+PONG\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n:7\r\n:0\r\n:3\r\n");
}

TEST_CASE("SET GET/KEEPTTL/EXAT, GETSET and GETDEL ask for the value they replace or remove",
          "[resp]") {
  RespBatch batch;
  std::vector<RespCommand> commands;
  for (auto words :
       std::vector<std::vector<std::string>>{{"SET", "k", "v", "GET", "KEEPTTL", "XX"},
                                             {"SET", "k", "v", "PXAT", "123456", "PXAT", "5000"},
                                             {"GETSET", "k", "w"},
                                             {"GETDEL", "k"},
                                             {"GETDEL", "k"}}) {
    commands.push_back(Command(std::move(words)));
  }
  for (const RespCommand& c : commands) REQUIRE(batch.Add(c, 1000));
  const auto ops = batch.ops();
  REQUIRE(ops.size() == 5);
  CHECK(ops[0].kind == OpKind::kSet);
  CHECK(ops[0].return_previous);
  CHECK(ops[0].keep_ttl);
  CHECK(ops[0].set.mode == SetMode::kIfPresent);
  CHECK_FALSE(ops[1].return_previous);
  CHECK(ops[1].expires_at_ms == 5000);  // Absolute, the last one given.
  CHECK(ops[1].set.ttl_ms == 0);
  CHECK(ops[2].kind == OpKind::kSet);
  CHECK(ops[2].return_previous);
  CHECK(ops[3].kind == OpKind::kDelete);
  CHECK(ops[3].return_previous);

  auto results = batch.results();
  results[0].had_previous = true;
  *results[0].value = "old";
  *results[2].value = "";  // No previous value: nil, whatever the slot holds.
  results[3].had_previous = true;
  *results[3].value = "w";
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out == "$3\r\nold\r\n+OK\r\n$-1\r\n$1\r\nw\r\n$-1\r\n");

  // Redis's syntax rules: KEEPTTL and an expiry, two kinds of expiry, NX with XX.
  for (auto words : std::vector<std::vector<std::string>>{{"SET", "k", "v", "KEEPTTL", "EX", "1"},
                                                          {"SET", "k", "v", "EX", "1", "PX", "1"},
                                                          {"SET", "k", "v", "NX", "XX"}}) {
    RespBatch bad;
    const RespCommand c = Command(std::move(words));
    REQUIRE(bad.Add(c, 1000));
    CHECK(bad.ops().empty());
    std::string reply;
    bad.EncodeReplies(&reply);
    CHECK(reply == "-ERR syntax error\r\n");
  }
}

TEST_CASE("A node's errors become Redis errors: TRYAGAIN for unavailable, one line", "[resp]") {
  RespBatch batch;
  REQUIRE(batch.Add(Command({"GET", "k"}), 0));
  REQUIRE(batch.Add(Command({"INCR", "k"}), 0));
  REQUIRE(batch.Add(Command({"MGET", "a", "b"}), 0));
  auto results = batch.results();
  results[0].status = Status::Unavailable("node n2 is not the primary\r\nretry");
  results[1].status = Status::FailedPrecondition("value is not a decimal 64-bit integer");
  results[3].status = Status::Unavailable("cannot reach node n3");
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out ==
        "-TRYAGAIN node n2 is not the primary  retry\r\n"
        "-ERR value is not an integer or out of range\r\n"
        "-TRYAGAIN cannot reach node n3\r\n");
}

TEST_CASE("A key of another type is WRONGTYPE as Redis words it, and nil in an MGET", "[resp]") {
  RespBatch batch;
  REQUIRE(batch.Add(Command({"GET", "h"}), 0));
  REQUIRE(batch.Add(Command({"MGET", "a", "h"}), 0));
  auto results = batch.results();
  results[0].status = WrongType();
  *results[1].value = "1";
  results[2].status = WrongType();
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out ==
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        "*2\r\n$1\r\n1\r\n$-1\r\n");
}

TEST_CASE("QUIT ends the batch, and unknown commands and bad arity answer without operations",
          "[resp]") {
  RespBatch batch;
  CHECK(batch.Add(Command({"foo", "a"}), 0));
  CHECK(batch.Add(Command({"get"}), 0));
  CHECK_FALSE(batch.Add(Command({"QUIT"}), 0));
  CHECK(batch.close_after());
  CHECK(batch.ops().empty());
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out ==
        "-ERR unknown command 'foo', with args beginning with: 'a' \r\n"
        "-ERR wrong number of arguments for 'get' command\r\n"
        "+OK\r\n");
}

TEST_CASE("A MULTI is refused whole: nothing up to EXEC runs, EXEC answers EXECABORT", "[resp]") {
  RespBatch batch;
  for (auto words : std::vector<std::vector<std::string>>{{"MULTI"},
                                                          {"SET", "k", "v"},
                                                          {"MULTI"},
                                                          {"EXEC"},
                                                          {"EXEC"},
                                                          {"DISCARD"},
                                                          {"MULTI"},
                                                          {"DISCARD"},
                                                          {"GET", "k"}}) {
    REQUIRE(batch.Add(Command(std::move(words)), 0));
  }
  REQUIRE(batch.ops().size() == 1);  // Only the GET after DISCARD.
  CHECK(batch.ops()[0].kind == OpKind::kGet);
  batch.results()[0].status = Status::NotFound("absent");
  std::string out;
  batch.EncodeReplies(&out);
  CHECK(out ==
        "-ERR MULTI is not supported yet by ringcache: the commands up to EXEC or DISCARD will "
        "not run\r\n"
        "-ERR not run: inside a MULTI that ringcache does not support yet (send DISCARD)\r\n"
        "-ERR MULTI calls can not be nested\r\n"
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
        "-ERR EXEC without MULTI\r\n"
        "-ERR DISCARD without MULTI\r\n"
        "-ERR MULTI is not supported yet by ringcache: the commands up to EXEC or DISCARD will "
        "not run\r\n"
        "+OK\r\n"
        "$-1\r\n");
}

TEST_CASE("INFO DBSIZE CLIENT HELLO and TIME answer from the connection's session", "[resp]") {
  RespBatch batch;
  NodeStats stats;
  stats.node_id = "n2";
  stats.version = "9.9.9";
  stats.epoch = 7;
  stats.cache.items = 3;
  batch.SetSession({.connection_id = 42,
                    .node_stats = [stats] { return stats; },
                    .connections = [] { return size_t{5}; },
                    .tcp_port = "6381"});
  auto reply = [&](std::vector<std::string> words) {
    batch.Clear();
    const RespCommand c = Command(std::move(words));
    batch.Add(c, 0);
    REQUIRE(batch.ops().empty());  // None of these reads or writes a key.
    std::string out;
    batch.EncodeReplies(&out);
    return out;
  };
  const std::string info = reply({"INFO"});
  CHECK(info.rfind("$", 0) == 0);
  for (const char* line : {"# Server\r\n", "redis_version:7.0.0\r\n", "ringcache_version:9.9.9\r\n",
                           "ringcache_node_id:n2\r\n", "ringcache_epoch:7\r\n", "tcp_port:6381\r\n",
                           "connected_clients:5\r\n", "loading:0\r\n", "role:master\r\n",
                           "db0:keys=3,expires=0,avg_ttl=0\r\n"}) {
    CHECK(info.find(line) != std::string::npos);
  }
  // Sections by name, case-insensitive; an unknown one is empty, as in Redis.
  CHECK(reply({"INFO", "KEYSPACE"}) ==
        "$44\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n\r\n");
  CHECK(reply({"INFO", "nosuch"}) == "$0\r\n\r\n");
  CHECK(reply({"DBSIZE"}) == ":3\r\n");
  CHECK(reply({"CLIENT", "ID"}) == ":42\r\n");
  CHECK(reply({"CLIENT", "GETNAME"}) == "$-1\r\n");
  CHECK(reply({"CLIENT", "SETNAME", "worker-1"}) == "+OK\r\n");
  CHECK(reply({"CLIENT", "GETNAME"}) == "$8\r\nworker-1\r\n");  // Kept across batches.
  CHECK(reply({"CLIENT", "INFO"}) == "$32\r\nid=42 name=worker-1 db=0 resp=2\n\r\n");
  const std::string hello = reply({"HELLO", "2", "SETNAME", "w2"});
  CHECK(hello.rfind("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n", 0) == 0);
  CHECK(hello.find("$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:42\r\n") != std::string::npos);
  CHECK(reply({"CLIENT", "GETNAME"}) == "$2\r\nw2\r\n");
  CHECK(reply({"HELLO", "3"}) == "-NOPROTO unsupported protocol version\r\n");
  const std::string time = reply({"TIME"});
  CHECK(time.rfind("*2\r\n$10\r\n", 0) == 0);  // Seconds (10 digits until 2286), then µs.
}

}  // namespace
}  // namespace ringcache::internal

namespace ringcache::internal {
namespace {

// A session with client tokens: "rtok" (name "reports") reads, "wtok" (name "web") writes.
RespSession TokenSession(std::vector<std::string>* logins) {
  return {
      .login =
          [logins](std::string_view user, std::string_view token) {
            logins->push_back(std::string(user) + "/" + std::string(token));
            std::optional<RespLogin> who;
            if (token == "rtok" && (user.empty() || user == "default" || user == "reports")) {
              who = RespLogin{.user = "reports", .role = Role::kRead};
            } else if (token == "wtok" && (user.empty() || user == "default" || user == "web")) {
              who = RespLogin{.user = "web", .role = Role::kReadWrite};
            }
            return who;
          },
      .role = Role::kNone,
      .user = ""};
}

// The replies to `commands`, sent as one batch (what the node ran: `ops`).
std::string Replies(RespBatch& batch, const std::vector<std::vector<std::string>>& commands,
                    size_t* ops = nullptr) {
  batch.Clear();
  std::vector<RespCommand> parsed;
  for (const auto& words : commands) parsed.push_back(Command(words));
  for (const RespCommand& c : parsed) batch.Add(c, 0);
  if (ops != nullptr) *ops = batch.ops().size();
  for (OpResult& r : batch.results()) {
    if (r.value != nullptr) *r.value = "v";
  }
  std::string out;
  batch.EncodeReplies(&out);
  return out;
}

TEST_CASE("With client tokens a connection runs nothing before AUTH, then what its role allows",
          "[resp]") {
  std::vector<std::string> logins;
  RespBatch batch;
  batch.SetSession(TokenSession(&logins));
  size_t ops = 0;
  // Before AUTH: NOAUTH, no operation; an unknown command and a wrong arity are answered
  // first, as Redis does; HELLO without AUTH is refused too.
  CHECK(Replies(batch, {{"GET", "k"}, {"PING"}, {"NOSUCH"}, {"GET"}}, &ops) ==
        "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
        "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(ops == 0);
  CHECK(Replies(batch, {{"HELLO", "2"}}).starts_with("-NOAUTH HELLO must be called"));
  // A wrong token, or the right token under another name: WRONGPASS.
  CHECK(Replies(batch, {{"AUTH", "nope"}, {"AUTH", "web", "rtok"}}) ==
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  // AUTH in the same batch as the commands after it: they run as the reader. A write is
  // NOPERM, in Redis's words, and leaves no operation behind.
  CHECK(Replies(batch, {{"AUTH", "rtok"}, {"GET", "k"}, {"SET", "k", "v"}, {"MGET", "a", "b"}},
                &ops) ==
        "+OK\r\n$1\r\nv\r\n-NOPERM this user has no permissions to run the 'set' command\r\n"
        "*2\r\n$1\r\nv\r\n$1\r\nv\r\n");
  CHECK(ops == 3);
  CHECK(Replies(batch, {{"MSET", "a", "1", "b", "2"}, {"INCR", "n"}, {"DEL", "a"}}, &ops) ==
        "-NOPERM this user has no permissions to run the 'mset' command\r\n"
        "-NOPERM this user has no permissions to run the 'incr' command\r\n"
        "-NOPERM this user has no permissions to run the 'del' command\r\n");
  CHECK(ops == 0);
  // A failed AUTH keeps the connection's user; AUTH with a name switches to the writer.
  CHECK(Replies(batch, {{"AUTH", "bad"}, {"GET", "k"}}) ==
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n$1\r\nv\r\n");
  CHECK(Replies(batch, {{"AUTH", "web", "wtok"}, {"SET", "k", "v"}}, &ops) == "+OK\r\n+OK\r\n");
  CHECK(ops == 1);
  CHECK(logins == std::vector<std::string>{"/nope", "web/rtok", "/rtok", "/bad", "web/wtok"});
}

TEST_CASE("HELLO with AUTH logs a connection in, and without tokens AUTH answers as Redis does",
          "[resp]") {
  std::vector<std::string> logins;
  RespBatch batch;
  batch.SetSession(TokenSession(&logins));
  CHECK(Replies(batch, {{"HELLO", "2", "AUTH", "web", "bad"}}) ==
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  CHECK(Replies(batch, {{"HELLO", "2", "AUTH", "default", "wtok"}}).starts_with("*14\r\n"));
  CHECK(Replies(batch, {{"SET", "k", "v"}}) == "+OK\r\n");

  RespBatch open;  // No tokens: the default user needs no password.
  CHECK(Replies(open, {{"AUTH", "x"}}).starts_with("-ERR AUTH <password> called without"));
  CHECK(Replies(open, {{"SET", "k", "v"}}) == "+OK\r\n");
}

}  // namespace
}  // namespace ringcache::internal

// The Redis commands about the server and the connection rather than keys: INFO, DBSIZE,
// TIME, CLIENT, HELLO and AUTH, answered by the node a client is connected to, in Redis's
// words (docs/redis.md says what differs).
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "resp/commands.h"
#include "resp/reply.h"

namespace ringcache::internal {
namespace {

using namespace resp;

// The Redis version a node answers as: the release whose commands and replies the
// translations follow (clients pick features by it).
constexpr std::string_view kRedisVersion = "7.0.0";

// Redis's rule for client names: printable ASCII without spaces.
bool ValidClientName(std::string_view name) {
  for (const char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

// One INFO section: "# Name\r\n" and its lines, if `wanted` asks for it.
struct InfoWriter {
  std::span<const std::string_view> wanted;  // Empty: the default sections.
  std::string out;

  bool Wants(std::string_view section) const {
    if (wanted.empty()) return true;
    for (const std::string_view w : wanted) {
      if (EqualsIgnoreCase(w, section) || EqualsIgnoreCase(w, "all") ||
          EqualsIgnoreCase(w, "default") || EqualsIgnoreCase(w, "everything")) {
        return true;
      }
    }
    return false;
  }
  void Section(std::string_view name) {
    if (!out.empty()) out += "\r\n";
    out += "# ";
    out += name;
    out += "\r\n";
  }
  void Line(std::string_view key, std::string_view value) {
    out += key;
    out += ':';
    out += value;
    out += "\r\n";
  }
  void Line(std::string_view key, uint64_t value) { Line(key, std::to_string(value)); }
};

}  // namespace

void RespBatch::Info(const RespCommand& c) {
  const std::span<const std::string_view> args = c.args;
  InfoWriter info{.wanted = args.subspan(1), .out = {}};
  const bool have_stats = static_cast<bool>(session_.node_stats);
  const NodeStats stats = have_stats ? session_.node_stats() : NodeStats{};
  if (info.Wants("server")) {
    info.Section("Server");
    info.Line("redis_version", kRedisVersion);
    info.Line("redis_mode", "standalone");
    if (have_stats) {
      info.Line("ringcache_version", stats.version);
      info.Line("ringcache_node_id", stats.node_id);
      info.Line("ringcache_epoch", stats.epoch);
      info.Line("uptime_in_seconds", stats.uptime_ms / 1000);
    }
    if (!session_.tcp_port.empty()) info.Line("tcp_port", session_.tcp_port);
  }
  if (info.Wants("clients")) {
    info.Section("Clients");
    if (session_.connections) info.Line("connected_clients", session_.connections());
  }
  if (info.Wants("memory") && have_stats) {
    info.Section("Memory");
    info.Line("used_memory", stats.cache.bytes_used);
    info.Line("maxmemory", stats.cache.capacity_bytes);
    info.Line("maxmemory_policy", "allkeys-lru");
  }
  if (info.Wants("persistence")) {
    info.Section("Persistence");
    info.Line("loading", "0");  // Clients' ready checks wait while this is 1.
  }
  if (info.Wants("stats") && have_stats) {
    info.Section("Stats");
    info.Line("keyspace_hits", stats.cache.hits);
    info.Line("keyspace_misses", stats.cache.misses);
    info.Line("expired_keys", stats.cache.expirations);
    info.Line("evicted_keys", stats.cache.evictions);
  }
  if (info.Wants("replication")) {
    info.Section("Replication");
    info.Line("role", "master");  // Every node takes writes for any key (it forwards).
  }
  if (info.Wants("keyspace")) {
    info.Section("Keyspace");  // Redis prints the header even when no database has keys.
    if (have_stats && stats.cache.items > 0) {
      info.Line("db0", "keys=" + std::to_string(stats.cache.items) + ",expires=0,avg_ttl=0");
    }
  }
  Begin(RespReply::kFixed);
  AppendBulk(&calls_.back().fixed, info.out);
}

void RespBatch::DbSize() {
  Begin(RespReply::kFixed);
  AppendInteger(&calls_.back().fixed,
                session_.node_stats ? static_cast<int64_t>(session_.node_stats().cache.items) : 0);
}

void RespBatch::Time() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  Begin(RespReply::kFixed);
  std::string& out = calls_.back().fixed;
  out = "*2\r\n";
  AppendBulk(&out, std::to_string(us / 1'000'000));
  AppendBulk(&out, std::to_string(us % 1'000'000));
}

void RespBatch::Client(const RespCommand& c) {
  const std::span<const std::string_view> args = c.args;
  const std::string_view sub = args[1];
  const size_t n = args.size();
  auto wrong_arity = [&] {
    Error("ERR wrong number of arguments for 'client|" + Lower(sub) + "' command");
  };
  if (EqualsIgnoreCase(sub, "setname")) {
    if (n != 3) return wrong_arity();
    if (!ValidClientName(args[2])) {
      return Error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    client_name_ = std::string(args[2]);
    return Fixed(std::string(kOk));
  }
  if (EqualsIgnoreCase(sub, "getname")) {
    if (n != 2) return wrong_arity();
    if (client_name_.empty()) return Fixed(std::string(kNil));
    Begin(RespReply::kFixed);
    return AppendBulk(&calls_.back().fixed, client_name_);
  }
  if (EqualsIgnoreCase(sub, "id")) {
    if (n != 2) return wrong_arity();
    Begin(RespReply::kFixed);
    return AppendInteger(&calls_.back().fixed, static_cast<int64_t>(session_.connection_id));
  }
  if (EqualsIgnoreCase(sub, "info")) {
    if (n != 2) return wrong_arity();
    Begin(RespReply::kFixed);
    return AppendBulk(&calls_.back().fixed, "id=" + std::to_string(session_.connection_id) +
                                                " name=" + client_name_ + " db=0 resp=2\n");
  }
  if (EqualsIgnoreCase(sub, "setinfo")) {  // Redis 7.2: clients send their name and version.
    if (n != 4) return wrong_arity();
    if (!EqualsIgnoreCase(args[2], "lib-name") && !EqualsIgnoreCase(args[2], "lib-ver")) {
      return Error("ERR Unrecognized option '" + std::string(args[2].substr(0, 128)) + "'");
    }
    return Fixed(std::string(kOk));
  }
  Error("ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try CLIENT HELP.");
}

void RespBatch::Hello(const RespCommand& c) {
  const std::span<const std::string_view> args = c.args;
  if (args.size() >= 2) {
    int64_t version = 0;
    if (!ParseInt(args[1], &version)) {
      return Error("ERR Protocol version is not an integer or out of range");
    }
    // RESP3 is not served yet: NOPROTO tells a client to stay on RESP2, as a Redis 5
    // server would.
    if (version != 2) return Error("NOPROTO unsupported protocol version");
  }
  std::string name = client_name_;
  bool authenticated = false;
  for (size_t i = 2; i < args.size(); ++i) {
    const bool more = i + 1 < args.size();
    if (EqualsIgnoreCase(args[i], "auth") && i + 2 < args.size()) {
      if (session_.login) {
        if (!Login(args[i + 1], args[i + 2])) return;
        authenticated = true;
      } else if (args[i + 1] != "default") {
        // No tokens: the default user needs no password (Redis's nopass).
        return Error("WRONGPASS invalid username-password pair or user is disabled.");
      }
      i += 2;
    } else if (EqualsIgnoreCase(args[i], "setname") && more) {
      if (!ValidClientName(args[i + 1])) {
        return Error("ERR Client names cannot contain spaces, newlines or special characters.");
      }
      name = std::string(args[i + 1]);
      ++i;
    } else {
      return Error("ERR Syntax error in HELLO option '" + std::string(args[i].substr(0, 128)) +
                   "'");
    }
  }
  if (session_.role == Role::kNone && !authenticated) {
    return Error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time");
  }
  client_name_ = std::move(name);
  Begin(RespReply::kFixed);
  std::string& out = calls_.back().fixed;
  out = "*14\r\n";
  AppendBulk(&out, "server");
  AppendBulk(&out, "redis");
  AppendBulk(&out, "version");
  AppendBulk(&out, kRedisVersion);
  AppendBulk(&out, "proto");
  AppendInteger(&out, 2);
  AppendBulk(&out, "id");
  AppendInteger(&out, static_cast<int64_t>(session_.connection_id));
  AppendBulk(&out, "mode");
  AppendBulk(&out, "standalone");
  AppendBulk(&out, "role");
  AppendBulk(&out, "master");
  AppendBulk(&out, "modules");
  out += "*0\r\n";
}

bool RespBatch::Login(std::string_view user, std::string_view token) {
  std::optional<RespLogin> who = session_.login(user, token);
  if (!who) {
    // As Redis: a failed AUTH leaves the connection as it was.
    Error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  session_.role = who->role;
  session_.user = std::move(who->user);
  return true;
}

void RespBatch::Auth(const RespCommand& c) {
  const std::span<const std::string_view> args = c.args;
  if (session_.login) {
    // AUTH <token> or AUTH <name> <token> (client_auth.h).
    if (args.size() > 3) return Error(kSyntax);
    if (Login(args.size() == 3 ? args[1] : std::string_view(), args.back())) {
      Fixed(std::string(kOk));
    }
    return;
  }
  // No client tokens: Redis's answers for a server without requirepass, whose default
  // user needs no password.
  if (args.size() == 2) {
    return Error(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?");
  }
  if (args.size() > 3) return Error(kSyntax);
  if (args[1] != "default") {
    return Error("WRONGPASS invalid username-password pair or user is disabled.");
  }
  Fixed(std::string(kOk));
}

}  // namespace ringcache::internal

#include "resp/commands.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "resp/reply.h"

namespace ringcache::internal {
namespace {

using namespace resp;  // The reply encodings (resp/reply.h).

// SET's and GETEX's EX, PX, EXAT, PXAT.
bool IsExpiryOption(std::string_view a) {
  return EqualsIgnoreCase(a, "ex") || EqualsIgnoreCase(a, "px") || EqualsIgnoreCase(a, "exat") ||
         EqualsIgnoreCase(a, "pxat");
}

enum class Cmd : uint8_t {
  kPing,
  kEcho,
  kSelect,
  kQuit,
  kCommand,
  kMulti,
  kExec,
  kDiscard,
  kConfig,
  kGet,
  kSet,
  kSetNx,
  kSetEx,
  kPSetEx,
  kMGet,
  kMSet,
  kDel,
  kExists,
  kIncr,
  kDecr,
  kIncrBy,
  kDecrBy,
  kExpire,
  kPExpire,
  kTtl,
  kPTtl,
  kStrLen,
  kGetSet,
  kGetDel,
  kExpireAt,
  kPExpireAt,
  kPersist,
  kGetEx,
  kAppend,
  kSetRange,
  kGetRange,
  kType,
  kIncrByFloat,
  kInfo,
  kDbSize,
  kTime,
  kClient,
  kHello,
  kAuth,
  kTyped,      // A hash, list or set command (ringcache/typed.h), by its name.
  kHMSet,      // HSET answering +OK.
  kSubscribe,  // SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, by name.
  kPublish,
  kReset,
};

struct CommandSpec {
  std::string_view name;  // Lowercase.
  int arity;              // Redis's: n = exactly n words, -n = at least n.
  Cmd cmd;
};

constexpr std::array kCommands = {
    CommandSpec{"ping", -1, Cmd::kPing},
    CommandSpec{"echo", 2, Cmd::kEcho},
    CommandSpec{"select", 2, Cmd::kSelect},
    CommandSpec{"quit", -1, Cmd::kQuit},
    CommandSpec{"multi", 1, Cmd::kMulti},
    CommandSpec{"exec", 1, Cmd::kExec},
    CommandSpec{"discard", 1, Cmd::kDiscard},
    CommandSpec{"command", -1, Cmd::kCommand},
    CommandSpec{"config", -2, Cmd::kConfig},
    CommandSpec{"get", 2, Cmd::kGet},
    CommandSpec{"set", -3, Cmd::kSet},
    CommandSpec{"setnx", 3, Cmd::kSetNx},
    CommandSpec{"setex", 4, Cmd::kSetEx},
    CommandSpec{"psetex", 4, Cmd::kPSetEx},
    CommandSpec{"mget", -2, Cmd::kMGet},
    CommandSpec{"mset", -3, Cmd::kMSet},
    CommandSpec{"del", -2, Cmd::kDel},
    CommandSpec{"unlink", -2, Cmd::kDel},
    CommandSpec{"exists", -2, Cmd::kExists},
    CommandSpec{"touch", -2, Cmd::kExists},
    CommandSpec{"incr", 2, Cmd::kIncr},
    CommandSpec{"decr", 2, Cmd::kDecr},
    CommandSpec{"incrby", 3, Cmd::kIncrBy},
    CommandSpec{"decrby", 3, Cmd::kDecrBy},
    CommandSpec{"expire", -3, Cmd::kExpire},
    CommandSpec{"pexpire", -3, Cmd::kPExpire},
    CommandSpec{"ttl", 2, Cmd::kTtl},
    CommandSpec{"pttl", 2, Cmd::kPTtl},
    CommandSpec{"strlen", 2, Cmd::kStrLen},
    CommandSpec{"getset", 3, Cmd::kGetSet},
    CommandSpec{"getdel", 2, Cmd::kGetDel},
    CommandSpec{"expireat", -3, Cmd::kExpireAt},
    CommandSpec{"pexpireat", -3, Cmd::kPExpireAt},
    CommandSpec{"persist", 2, Cmd::kPersist},
    CommandSpec{"getex", -2, Cmd::kGetEx},
    CommandSpec{"append", 3, Cmd::kAppend},
    CommandSpec{"setrange", 4, Cmd::kSetRange},
    CommandSpec{"getrange", 4, Cmd::kGetRange},
    CommandSpec{"substr", 4, Cmd::kGetRange},
    CommandSpec{"type", 2, Cmd::kType},
    CommandSpec{"incrbyfloat", 3, Cmd::kIncrByFloat},
    CommandSpec{"info", -1, Cmd::kInfo},
    CommandSpec{"dbsize", 1, Cmd::kDbSize},
    CommandSpec{"time", 1, Cmd::kTime},
    CommandSpec{"client", -2, Cmd::kClient},
    CommandSpec{"hello", -1, Cmd::kHello},
    CommandSpec{"auth", -2, Cmd::kAuth},
    CommandSpec{"subscribe", -2, Cmd::kSubscribe},
    CommandSpec{"psubscribe", -2, Cmd::kSubscribe},
    CommandSpec{"unsubscribe", -1, Cmd::kSubscribe},
    CommandSpec{"punsubscribe", -1, Cmd::kSubscribe},
    CommandSpec{"publish", 3, Cmd::kPublish},
    CommandSpec{"reset", 1, Cmd::kReset},
    // Hashes, lists and sets, with Redis's arities.
    CommandSpec{"hset", -4, Cmd::kTyped},
    CommandSpec{"hmset", -4, Cmd::kHMSet},
    CommandSpec{"hsetnx", 4, Cmd::kTyped},
    CommandSpec{"hget", 3, Cmd::kTyped},
    CommandSpec{"hmget", -3, Cmd::kTyped},
    CommandSpec{"hdel", -3, Cmd::kTyped},
    CommandSpec{"hgetall", 2, Cmd::kTyped},
    CommandSpec{"hkeys", 2, Cmd::kTyped},
    CommandSpec{"hvals", 2, Cmd::kTyped},
    CommandSpec{"hlen", 2, Cmd::kTyped},
    CommandSpec{"hexists", 3, Cmd::kTyped},
    CommandSpec{"hstrlen", 3, Cmd::kTyped},
    CommandSpec{"hincrby", 4, Cmd::kTyped},
    CommandSpec{"hincrbyfloat", 4, Cmd::kTyped},
    CommandSpec{"lpush", -3, Cmd::kTyped},
    CommandSpec{"rpush", -3, Cmd::kTyped},
    CommandSpec{"lpushx", -3, Cmd::kTyped},
    CommandSpec{"rpushx", -3, Cmd::kTyped},
    CommandSpec{"lpop", -2, Cmd::kTyped},
    CommandSpec{"rpop", -2, Cmd::kTyped},
    CommandSpec{"lrange", 4, Cmd::kTyped},
    CommandSpec{"llen", 2, Cmd::kTyped},
    CommandSpec{"lindex", 3, Cmd::kTyped},
    CommandSpec{"lset", 4, Cmd::kTyped},
    CommandSpec{"linsert", 5, Cmd::kTyped},
    CommandSpec{"ltrim", 4, Cmd::kTyped},
    CommandSpec{"lrem", 4, Cmd::kTyped},
    CommandSpec{"sadd", -3, Cmd::kTyped},
    CommandSpec{"srem", -3, Cmd::kTyped},
    CommandSpec{"sismember", 3, Cmd::kTyped},
    CommandSpec{"smismember", -3, Cmd::kTyped},
    CommandSpec{"smembers", 2, Cmd::kTyped},
    CommandSpec{"scard", 2, Cmd::kTyped},
    CommandSpec{"hrandfield", -2, Cmd::kTyped},
    CommandSpec{"lpos", -3, Cmd::kTyped},
    CommandSpec{"spop", -2, Cmd::kTyped},
    CommandSpec{"srandmember", -2, Cmd::kTyped},
    CommandSpec{"hscan", -3, Cmd::kTyped},
    CommandSpec{"sscan", -3, Cmd::kTyped},
};

constexpr auto kNames = [] {
  std::array<std::string_view, kCommands.size()> names{};
  for (size_t i = 0; i < kCommands.size(); ++i) names[i] = kCommands[i].name;
  return names;
}();

const CommandSpec* Find(std::string_view name) {
  for (const CommandSpec& spec : kCommands) {
    if (EqualsIgnoreCase(spec.name, name)) return &spec;
  }
  return nullptr;
}

}  // namespace

std::span<const std::string_view> RespCommandNames() { return kNames; }

void RespBatch::Clear() {
  calls_.clear();
  ops_.clear();
  results_.clear();
  values_used_ = 0;
  publishes_.clear();
}

void RespBatch::Begin(RespReply reply) {
  calls_.push_back({.reply = reply,
                    .command = command_,
                    .first_op = ops_.size(),
                    .op_count = 0,
                    .fixed = {},
                    .close_after = false});
}

void RespBatch::Fixed(std::string reply) {
  Begin(RespReply::kFixed);
  calls_.back().fixed = std::move(reply);
}

void RespBatch::Error(std::string_view message) { Fixed("-" + OneLine(message) + "\r\n"); }

Op& RespBatch::AddOp(OpKind kind, std::string_view key) {
  Op& op = ops_.emplace_back();
  op.kind = kind;
  op.key = HashedKey(key);
  results_.emplace_back();
  if (kind == OpKind::kGet) GiveValueSlot();
  ++calls_.back().op_count;
  return op;
}

bool RespBatch::Add(const RespCommand& c, int64_t now_ms) {
  if (session_.role == Role::kAdmin) return Translate(c, now_ms);
  const size_t first_call = calls_.size();
  const size_t values_before = values_used_;
  const bool go_on = Translate(c, now_ms);
  RefuseDenied(first_call, values_before);
  return go_on;
}

void RespBatch::RefuseDenied(size_t first_call, size_t values_before) {
  for (size_t i = first_call; i < calls_.size(); ++i) {
    const RespCall& call = calls_[i];
    for (size_t j = call.first_op; j < call.first_op + call.op_count; ++j) {
      if (CheckRole(session_.role, ops_[j].kind).ok()) continue;
      const int command = calls_[first_call].command;
      const size_t first_op = calls_[first_call].first_op;
      calls_.resize(first_call);
      ops_.resize(first_op);
      results_.resize(first_op);
      values_used_ = values_before;
      // Redis 7.0's ACL wording (the names are lower case, as Redis gives them).
      const std::string_view name = command >= 0 ? RespCommandNames()[command] : "?";
      Error("NOPERM this user has no permissions to run the '" + std::string(name) + "' command");
      return;
    }
  }
}

bool RespBatch::Translate(const RespCommand& c, int64_t now_ms) {
  const std::span<const std::string_view> args = c.args;
  const CommandSpec* spec = Find(args[0]);
  command_ = spec == nullptr ? -1 : static_cast<int>(spec - kCommands.data());
  if (spec == nullptr) {
    // Redis's wording, byte for byte: each argument quoted and followed by a space, while
    // the list is under 128 bytes.
    std::string list;
    for (size_t i = 1; i < args.size() && list.size() < 128; ++i) {
      list += "'" + std::string(args[i].substr(0, 128 - list.size())) + "' ";
    }
    Error("ERR unknown command '" + std::string(args[0].substr(0, 128)) +
          "', with args beginning with: " + list);
    return true;
  }
  const int n = static_cast<int>(args.size());
  if ((spec->arity > 0 && n != spec->arity) || (spec->arity < 0 && n < -spec->arity)) {
    Error("ERR wrong number of arguments for '" + std::string(spec->name) + "' command");
    return true;
  }
  // Redis checks authentication after the command's name and arity.
  if (session_.role == Role::kNone && spec->cmd != Cmd::kAuth && spec->cmd != Cmd::kHello &&
      spec->cmd != Cmd::kQuit && spec->cmd != Cmd::kReset) {
    Error("NOAUTH Authentication required.");
    return true;
  }
  // A subscribed connection runs only the pub/sub commands, PING, QUIT and RESET.
  if (subscription_ != nullptr && RefusedWhileSubscribed(c, spec->name)) return true;
  // Transactions are not there yet. A client that starts one (redis-py's default
  // pipeline) must not have half of it run: MULTI is refused, every command up to EXEC or
  // DISCARD is refused without running, and EXEC answers EXECABORT as Redis does for a
  // transaction with errors.
  if (spec->cmd == Cmd::kMulti) {
    if (refused_multi_) {
      Error("ERR MULTI calls can not be nested");
    } else {
      refused_multi_ = true;
      Error(
          "ERR MULTI is not supported yet by ringcache: the commands up to EXEC or DISCARD "
          "will not run");
    }
    return true;
  }
  if (spec->cmd == Cmd::kExec || spec->cmd == Cmd::kDiscard) {
    const bool was = refused_multi_;
    refused_multi_ = false;
    if (!was) {
      Error(spec->cmd == Cmd::kExec ? "ERR EXEC without MULTI" : "ERR DISCARD without MULTI");
    } else if (spec->cmd == Cmd::kExec) {
      Error("EXECABORT Transaction discarded because of previous errors.");
    } else {
      Fixed(std::string(kOk));
    }
    return true;
  }
  if (refused_multi_ && spec->cmd != Cmd::kQuit && spec->cmd != Cmd::kReset) {
    Error("ERR not run: inside a MULTI that ringcache does not support yet (send DISCARD)");
    return true;
  }
  switch (spec->cmd) {
    case Cmd::kPing:
      if (n > 2) {
        Error("ERR wrong number of arguments for 'ping' command");
      } else if (n == 2) {
        Begin(RespReply::kFixed);
        AppendBulk(&calls_.back().fixed, args[1]);
      } else {
        Fixed("+PONG\r\n");
      }
      return true;
    case Cmd::kSubscribe:
      Subscribe(c, spec->name);
      return true;
    case Cmd::kPublish:
      Publish(c);
      return true;
    case Cmd::kReset:
      Reset();
      return true;
    case Cmd::kEcho:
      Begin(RespReply::kFixed);
      AppendBulk(&calls_.back().fixed, args[1]);
      return true;
    case Cmd::kSelect: {
      int64_t db = 0;
      if (!ParseInt(args[1], &db)) {
        Error(kNotInteger);
      } else if (db != 0) {
        Error("ERR DB index is out of range");
      } else {
        Fixed(std::string(kOk));
      }
      return true;
    }
    case Cmd::kMulti:
    case Cmd::kExec:
    case Cmd::kDiscard:
      return true;  // Answered above.
    case Cmd::kQuit:
      Fixed(std::string(kOk));
      calls_.back().close_after = true;
      return false;
    case Cmd::kCommand:
      // redis-cli asks COMMAND DOCS for its hints; an empty answer means "no hints".
      if (n >= 2 && EqualsIgnoreCase(args[1], "count")) {
        Begin(RespReply::kFixed);
        AppendInteger(&calls_.back().fixed, static_cast<int64_t>(kCommands.size()));
      } else {
        Fixed("*0\r\n");
      }
      return true;
    case Cmd::kConfig:
      Config(c);
      return true;
    case Cmd::kType:
      Begin(RespReply::kType);
      AddOp(OpKind::kTtl, args[1]);
      return true;
    case Cmd::kIncrByFloat: {  // The owner parses both numbers (Redis's messages).
      Begin(RespReply::kBulk);
      Op& op = AddOp(OpKind::kIncr, args[1]);
      op.by_float = true;
      op.value = args[2];
      GiveValueSlot();
      return true;
    }
    case Cmd::kInfo:
      Info(c);
      return true;
    case Cmd::kDbSize:
      DbSize();
      return true;
    case Cmd::kTime:
      Time();
      return true;
    case Cmd::kClient:
      Client(c);
      return true;
    case Cmd::kHello:
      Hello(c);
      return true;
    case Cmd::kAuth:
      Auth(c);
      return true;
    case Cmd::kGet:
      Begin(RespReply::kBulk);
      AddOp(OpKind::kGet, args[1]);
      return true;
    case Cmd::kStrLen:
      Begin(RespReply::kLength);
      AddOp(OpKind::kGet, args[1]);
      return true;
    case Cmd::kSet:
      Set(c, now_ms);
      return true;
    case Cmd::kGetSet: {  // SET key value GET, as Redis 6.2 redefined it.
      Begin(RespReply::kSetOld);
      Op& op = AddOp(OpKind::kSet, args[1]);
      op.value = args[2];
      WantPrevious(&op);
      return true;
    }
    case Cmd::kGetDel: {
      Begin(RespReply::kSetOld);
      WantPrevious(&AddOp(OpKind::kDelete, args[1]));
      return true;
    }
    case Cmd::kSetNx: {
      Begin(RespReply::kOne);
      Op& op = AddOp(OpKind::kSet, args[1]);
      op.value = args[2];
      op.set.mode = SetMode::kIfAbsent;
      return true;
    }
    case Cmd::kSetEx:
    case Cmd::kPSetEx: {
      int64_t ttl = 0;
      const bool seconds = spec->cmd == Cmd::kSetEx;
      if (!ParseInt(args[2], &ttl)) {
        Error(kNotInteger);
      } else if (ttl <= 0 || (seconds && ttl > std::numeric_limits<int64_t>::max() / 1000)) {
        Error("ERR invalid expire time in '" + std::string(spec->name) + "' command");
      } else {
        Begin(RespReply::kOkOrNil);
        Op& op = AddOp(OpKind::kSet, args[1]);
        op.value = args[3];
        op.set.ttl_ms = static_cast<uint64_t>(seconds ? ttl * 1000 : ttl);
      }
      return true;
    }
    case Cmd::kMGet:
      Begin(RespReply::kMulti);
      for (int i = 1; i < n; ++i) AddOp(OpKind::kGet, args[static_cast<size_t>(i)]);
      return true;
    case Cmd::kMSet:
      if (n % 2 != 1) {
        Error("ERR wrong number of arguments for 'mset' command");
        return true;
      }
      Begin(RespReply::kAllOk);
      for (int i = 1; i < n; i += 2) {
        AddOp(OpKind::kSet, args[static_cast<size_t>(i)]).value = args[static_cast<size_t>(i) + 1];
      }
      return true;
    case Cmd::kDel:
      Begin(RespReply::kCount);
      for (int i = 1; i < n; ++i) AddOp(OpKind::kDelete, args[static_cast<size_t>(i)]);
      return true;
    case Cmd::kExists:
      Begin(RespReply::kCount);
      for (int i = 1; i < n; ++i) AddOp(OpKind::kTtl, args[static_cast<size_t>(i)]);
      return true;
    case Cmd::kIncr:
      Incr(c, 1, false);
      return true;
    case Cmd::kDecr:
      Incr(c, -1, false);
      return true;
    case Cmd::kIncrBy:
      Incr(c, 1, true);
      return true;
    case Cmd::kDecrBy:
      Incr(c, -1, true);
      return true;
    case Cmd::kExpire:
      Expire(c, spec->name, 1000, false, now_ms);
      return true;
    case Cmd::kPExpire:
      Expire(c, spec->name, 1, false, now_ms);
      return true;
    case Cmd::kExpireAt:
      Expire(c, spec->name, 1000, true, now_ms);
      return true;
    case Cmd::kPExpireAt:
      Expire(c, spec->name, 1, true, now_ms);
      return true;
    case Cmd::kPersist: {
      Begin(RespReply::kChanged);
      Op& op = AddOp(OpKind::kTouch, args[1]);
      op.ttl_ms = 0;                       // Never expires...
      op.expire_if = Op::ExpireIf::kSome;  // ...if it had an expiry: 1, else 0.
      return true;
    }
    case Cmd::kGetEx:
      GetEx(c);
      return true;
    case Cmd::kAppend: {
      Begin(RespReply::kInteger);
      Op& op = AddOp(OpKind::kSetRange, args[1]);
      op.value = args[2];
      op.append = true;
      return true;
    }
    case Cmd::kSetRange: {
      int64_t offset = 0;
      if (!ParseInt(args[2], &offset)) {
        Error(kNotInteger);
        return true;
      }
      if (offset < 0) {
        Error("ERR offset is out of range");
        return true;
      }
      Begin(RespReply::kInteger);
      Op& op = AddOp(OpKind::kSetRange, args[1]);
      op.value = args[3];
      op.offset = static_cast<uint64_t>(offset);
      return true;
    }
    case Cmd::kGetRange: {
      int64_t start = 0;
      int64_t end = 0;
      if (!ParseInt(args[2], &start) || !ParseInt(args[3], &end)) {
        Error(kNotInteger);
        return true;
      }
      // The whole value is read and cut here (a range read on the owner is not in the
      // vocabulary yet).
      Begin(RespReply::kRange);
      calls_.back().range_start = start;
      calls_.back().range_end = end;
      AddOp(OpKind::kGet, args[1]);
      return true;
    }
    case Cmd::kTtl:
      Begin(RespReply::kTtlSeconds);
      AddOp(OpKind::kTtl, args[1]);
      return true;
    case Cmd::kTyped:
    case Cmd::kHMSet:
      Typed(c, spec->name);
      return true;
    case Cmd::kPTtl:
      Begin(RespReply::kTtlMillis);
      AddOp(OpKind::kTtl, args[1]);
      return true;
  }
  return true;
}

namespace {

// Redis's glob match for CONFIG GET patterns: '*' and '?' (case-insensitive). Recursive, so
// the caller bounds the pattern's length (the depth).
bool GlobMatch(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern[0] == '*') {
    for (size_t i = 0; i <= text.size(); ++i) {
      if (GlobMatch(pattern.substr(1), text.substr(i))) return true;
    }
    return false;
  }
  if (text.empty()) return false;
  const bool same = pattern[0] == '?' || std::tolower(static_cast<unsigned char>(pattern[0])) ==
                                             std::tolower(static_cast<unsigned char>(text[0]));
  return same && GlobMatch(pattern.substr(1), text.substr(1));
}

}  // namespace

void RespBatch::Config(const RespCommand& c) {
  // The settings a Redis tool asks about that have a true answer here: no persistence
  // (redis-benchmark reads save and appendonly) and one database.
  const std::pair<std::string_view, std::string_view> kSettings[] = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"notify-keyspace-events", session_.keyspace_events}};
  const std::span<const std::string_view> args = c.args;
  if (EqualsIgnoreCase(args[1], "get")) {
    if (args.size() < 3) {
      Error("ERR wrong number of arguments for 'config|get' command");
      return;
    }
    std::vector<std::pair<std::string_view, std::string_view>> found;
    for (size_t i = 2; i < args.size(); ++i) {
      if (args[i].size() > 128) continue;  // Longer than any setting's name: no match.
      for (const auto& setting : kSettings) {
        if (GlobMatch(args[i], setting.first) &&
            std::find(found.begin(), found.end(), setting) == found.end()) {
          found.push_back(setting);
        }
      }
    }
    Begin(RespReply::kFixed);
    std::string& out = calls_.back().fixed;
    out = "*" + std::to_string(found.size() * 2) + "\r\n";
    for (const auto& [name, value] : found) {
      AppendBulk(&out, name);
      AppendBulk(&out, value);
    }
    return;
  }
  if (EqualsIgnoreCase(args[1], "set") && args.size() >= 3 &&
      EqualsIgnoreCase(args[2], "notify-keyspace-events")) {
    // A key's events come from its primary, so one node's setting would be half a switch.
    Error(
        "ERR CONFIG SET notify-keyspace-events is not supported by ringcache: start every "
        "ringcached with --keyspace-events (its events are cluster-wide)");
    return;
  }
  if (EqualsIgnoreCase(args[1], "set") || EqualsIgnoreCase(args[1], "resetstat") ||
      EqualsIgnoreCase(args[1], "rewrite")) {
    Error("ERR CONFIG " + Lower(args[1]) +
          " is not supported by ringcache: settings are ringcached's flags");
    return;
  }
  Error("ERR unknown subcommand '" + std::string(args[1].substr(0, 128)) + "'. Try CONFIG HELP.");
}

void RespBatch::Incr(const RespCommand& c, int64_t sign, bool parse_delta) {
  int64_t delta = sign;
  if (parse_delta) {
    int64_t by = 0;
    if (!ParseInt(c.args[2], &by)) {
      Error(kNotInteger);
      return;
    }
    if (sign < 0 && by == std::numeric_limits<int64_t>::min()) {
      Error("ERR decrement would overflow");
      return;
    }
    delta = sign * by;
  }
  Begin(RespReply::kInteger);
  AddOp(OpKind::kIncr, c.args[1]).delta = delta;
}

void RespBatch::Expire(const RespCommand& c, std::string_view name, int64_t unit_ms, bool absolute,
                       int64_t now_ms) {
  // Redis's order (expire.c): the options first, then the time.
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < c.args.size(); ++i) {
    const std::string_view opt = c.args[i];
    if (EqualsIgnoreCase(opt, "nx")) {
      nx = true;
    } else if (EqualsIgnoreCase(opt, "xx")) {
      xx = true;
    } else if (EqualsIgnoreCase(opt, "gt")) {
      gt = true;
    } else if (EqualsIgnoreCase(opt, "lt")) {
      lt = true;
    } else {
      Error("ERR Unsupported option " + std::string(opt));
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    Error("ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if (gt && lt) {
    Error("ERR GT and LT options at the same time are not compatible");
    return;
  }
  int64_t amount = 0;
  if (!ParseInt(c.args[2], &amount)) {
    Error(kNotInteger);
    return;
  }
  const std::string invalid = "ERR invalid expire time in '" + std::string(name) + "' command";
  if (unit_ms > 1 && (amount > std::numeric_limits<int64_t>::max() / unit_ms ||
                      amount < std::numeric_limits<int64_t>::min() / unit_ms)) {
    Error(invalid);
    return;
  }
  int64_t when = amount * unit_ms;
  if (!absolute) {
    if (when > std::numeric_limits<int64_t>::max() - now_ms) {
      Error(invalid);
      return;
    }
    when += now_ms;
  }
  Begin(RespReply::kChanged);
  Op& op = AddOp(OpKind::kTouch, c.args[1]);
  // An absolute time on the wire: exact wherever the key lives. A time already past (or
  // negative, as Redis allows) removes the key when the condition holds.
  op.expires_at_ms = std::max<int64_t>(when, 1);
  op.expire_if = nx         ? Op::ExpireIf::kNone
                 : gt       ? Op::ExpireIf::kLater  // XX GT is GT: no expiry fails it.
                 : lt && xx ? Op::ExpireIf::kSomeAndEarlier
                 : lt       ? Op::ExpireIf::kEarlier
                 : xx       ? Op::ExpireIf::kSome
                            : Op::ExpireIf::kAlways;
}

bool RespBatch::ParseExpiry(std::string_view option, std::string_view value,
                            std::string_view command, int64_t* ms) {
  int64_t v = 0;
  if (!ParseInt(value, &v)) {
    Error(kNotInteger);
    return false;
  }
  const bool seconds = EqualsIgnoreCase(option, "ex") || EqualsIgnoreCase(option, "exat");
  if (v <= 0 || (seconds && v > std::numeric_limits<int64_t>::max() / 1000)) {
    Error("ERR invalid expire time in '" + std::string(command) + "' command");
    return false;
  }
  *ms = seconds ? v * 1000 : v;
  return true;
}

void RespBatch::GetEx(const RespCommand& c) {
  // Redis 7's getexCommand: EX/PX/EXAT/PXAT/PERSIST, one of them at most.
  const std::span<const std::string_view> args = c.args;
  std::string_view expire;
  int64_t ms = 0;
  bool persist = false;
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_next = i + 1 < args.size();
    if (EqualsIgnoreCase(a, "persist") && expire.empty()) {
      persist = true;
    } else if (IsExpiryOption(a) && !persist && (expire.empty() || EqualsIgnoreCase(a, expire)) &&
               has_next) {
      if (!ParseExpiry(a, args[i + 1], "getex", &ms)) return;
      expire = a;
      ++i;
    } else {
      Error(kSyntax);
      return;
    }
  }
  Begin(RespReply::kBulk);
  if (!persist && expire.empty()) {
    AddOp(OpKind::kGet, args[1]);
    return;
  }
  Op& op = AddOp(OpKind::kTouch, args[1]);
  if (EqualsIgnoreCase(expire, "exat") || EqualsIgnoreCase(expire, "pxat")) {
    op.expires_at_ms = ms;
  } else {
    op.ttl_ms = static_cast<uint64_t>(ms);  // 0 with PERSIST: never expires.
  }
  op.return_value = true;
  GiveValueSlot();
}

void RespBatch::Set(const RespCommand& c, int64_t now_ms) {
  (void)now_ms;  // EXAT/PXAT travel as absolute times: exact wherever the key lives.
  const std::span<const std::string_view> args = c.args;
  SetMode mode = SetMode::kAlways;
  int64_t ttl_ms = 0;
  int64_t expires_at_ms = 0;
  std::string_view expire;  // The EX/PX/EXAT/PXAT given, if any.
  bool keep_ttl = false;
  bool get = false;
  // Redis's parser (t_string.c): NX/XX exclude each other, KEEPTTL and the four expiry
  // options exclude each other; any option may repeat (the last value counts).
  for (size_t i = 3; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_next = i + 1 < args.size();
    if (EqualsIgnoreCase(a, "nx") && mode != SetMode::kIfPresent) {
      mode = SetMode::kIfAbsent;
    } else if (EqualsIgnoreCase(a, "xx") && mode != SetMode::kIfAbsent) {
      mode = SetMode::kIfPresent;
    } else if (EqualsIgnoreCase(a, "get")) {
      get = true;
    } else if (EqualsIgnoreCase(a, "keepttl") && expire.empty()) {
      keep_ttl = true;
    } else if (IsExpiryOption(a) && (expire.empty() || EqualsIgnoreCase(a, expire)) && !keep_ttl &&
               has_next) {
      int64_t ms = 0;
      if (!ParseExpiry(a, args[i + 1], "set", &ms)) return;
      const bool absolute = EqualsIgnoreCase(a, "exat") || EqualsIgnoreCase(a, "pxat");
      (absolute ? expires_at_ms : ttl_ms) = ms;
      expire = a;
      ++i;
    } else {
      Error(kSyntax);
      return;
    }
  }
  Begin(get ? RespReply::kSetOld : RespReply::kOkOrNil);
  Op& op = AddOp(OpKind::kSet, args[1]);
  op.value = args[2];
  op.set.mode = mode;
  op.set.ttl_ms = static_cast<uint64_t>(ttl_ms);
  op.expires_at_ms = expires_at_ms;
  op.keep_ttl = keep_ttl;
  if (get) WantPrevious(&op);
}

void RespBatch::WantPrevious(Op* op) {
  op->return_previous = true;
  GiveValueSlot();
}

void RespBatch::GiveValueSlot() {
  if (values_used_ == values_.size()) values_.emplace_back();
  std::string* value = &values_[values_used_++];
  value->clear();
  results_.back().value = value;
}

void RespBatch::EncodeReplies(std::string* out, std::vector<std::pair<int, bool>>* outcomes) const {
  for (const RespCall& call : calls_) {
    const size_t start = out->size();
    EncodeReply(call, out);
    if (outcomes != nullptr) {
      outcomes->emplace_back(call.command, out->size() > start && (*out)[start] == '-');
    }
  }
}

void RespBatch::EncodeReply(const RespCall& call, std::string* out) const {
  {
    const std::span<const OpResult> r(results_.data() + call.first_op, call.op_count);
    switch (call.reply) {
      case RespReply::kFixed:
        out->append(call.fixed);
        break;
      case RespReply::kBulk:
      case RespReply::kLength: {
        const OpResult& g = r[0];
        if (g.status.code() == StatusCode::kNotFound) {
          out->append(call.reply == RespReply::kBulk ? kNil : ":0\r\n");
        } else if (!g.status.ok()) {
          AppendStatusError(out, g.status);
        } else if (call.reply == RespReply::kBulk) {
          AppendBulk(out, *g.value);
        } else {
          AppendInteger(out, static_cast<int64_t>(g.value->size()));
        }
        break;
      }
      case RespReply::kType: {
        const OpResult& t = r[0];
        if (t.status.code() == StatusCode::kNotFound) {
          out->append("+none\r\n");
        } else if (!t.status.ok()) {
          AppendStatusError(out, t.status);
        } else {
          out->push_back('+');
          out->append(ValueTypeName(t.value_type));
          out->append("\r\n");
        }
        break;
      }
      case RespReply::kTypedInteger:
      case RespReply::kTypedIntegerOrNil:
      case RespReply::kTypedScan:
      case RespReply::kTypedBulk:
      case RespReply::kTypedArray:
      case RespReply::kTypedFields:
      case RespReply::kTypedIntegers:
      case RespReply::kTypedOk:
        EncodeTyped(call.reply, r[0], out);
        break;
      case RespReply::kOkOrNil:
      case RespReply::kOne: {
        const Status& s = r[0].status;
        const bool unmet =
            s.code() == StatusCode::kAlreadyExists || s.code() == StatusCode::kNotFound;
        if (s.ok()) {
          out->append(call.reply == RespReply::kOne ? ":1\r\n" : kOk);
        } else if (unmet) {
          out->append(call.reply == RespReply::kOne ? ":0\r\n" : kNil);
        } else {
          AppendStatusError(out, s);
        }
        break;
      }
      case RespReply::kSetOld: {  // SET ... GET, GETSET: the value replaced, or nil.
        const OpResult& g = r[0];
        if (!g.status.ok()) {
          AppendStatusError(out, g.status);
        } else if (g.had_previous) {
          AppendBulk(out, *g.value);
        } else {
          out->append(kNil);
        }
        break;
      }
      case RespReply::kMulti: {
        // As Redis's MGET: a key that is absent or holds another type is nil.
        const auto failed = std::find_if(r.begin(), r.end(), [](const OpResult& g) {
          return !g.status.ok() && g.status.code() != StatusCode::kNotFound &&
                 !IsWrongType(g.status);
        });
        if (failed != r.end()) {
          AppendStatusError(out, failed->status);
          break;
        }
        out->push_back('*');
        out->append(std::to_string(r.size()));
        out->append("\r\n");
        for (const OpResult& g : r) {
          if (g.status.ok()) {
            AppendBulk(out, *g.value);
          } else {
            out->append(kNil);
          }
        }
        break;
      }
      case RespReply::kAllOk: {
        const auto failed =
            std::find_if(r.begin(), r.end(), [](const OpResult& g) { return !g.status.ok(); });
        if (failed != r.end()) {
          AppendStatusError(out, failed->status);
        } else {
          out->append(kOk);
        }
        break;
      }
      case RespReply::kRange: {
        const OpResult& g = r[0];
        if (g.status.code() == StatusCode::kNotFound) {
          out->append("$0\r\n\r\n");
        } else if (!g.status.ok()) {
          AppendStatusError(out, g.status);
        } else {
          // Redis's getrangeCommand: negative counts from the end, clamp, empty if crossed.
          const auto len = static_cast<int64_t>(g.value->size());
          int64_t start = call.range_start;
          int64_t end = call.range_end;
          if (start < 0 && end < 0 && start > end) {
            out->append("$0\r\n\r\n");
            break;
          }
          if (start < 0) start += len;
          if (end < 0) end += len;
          start = std::max<int64_t>(start, 0);
          end = std::max<int64_t>(end, 0);
          if (end >= len) end = len - 1;
          if (len == 0 || start > end) {
            out->append("$0\r\n\r\n");
          } else {
            AppendBulk(out, std::string_view(*g.value).substr(
                                static_cast<size_t>(start), static_cast<size_t>(end - start + 1)));
          }
        }
        break;
      }
      case RespReply::kChanged: {
        const OpResult& t = r[0];
        if (t.status.code() == StatusCode::kNotFound) {
          out->append(":0\r\n");
        } else if (!t.status.ok()) {
          AppendStatusError(out, t.status);
        } else {
          AppendInteger(out, t.integer);
        }
        break;
      }
      case RespReply::kCount: {
        int64_t found = 0;
        const OpResult* error = nullptr;
        for (const OpResult& g : r) {
          if (g.status.ok()) {
            ++found;
          } else if (g.status.code() != StatusCode::kNotFound && error == nullptr) {
            error = &g;
          }
        }
        if (error != nullptr) {
          AppendStatusError(out, error->status);
        } else {
          AppendInteger(out, found);
        }
        break;
      }
      case RespReply::kInteger: {
        const Status& s = r[0].status;
        if (s.ok()) {
          AppendInteger(out, r[0].integer);
        } else if (s.code() == StatusCode::kFailedPrecondition && !IsWrongType(s)) {
          out->append("-ERR value is not an integer or out of range\r\n");
        } else if (s.code() == StatusCode::kOutOfRange) {
          out->append("-ERR increment or decrement would overflow\r\n");
        } else {
          AppendStatusError(out, s);
        }
        break;
      }
      case RespReply::kTtlSeconds:
      case RespReply::kTtlMillis: {
        const OpResult& t = r[0];
        if (t.status.code() == StatusCode::kNotFound) {
          out->append(":-2\r\n");
        } else if (!t.status.ok()) {
          AppendStatusError(out, t.status);
        } else if (t.integer == 0) {
          out->append(":-1\r\n");
        } else {
          AppendInteger(out,
                        call.reply == RespReply::kTtlMillis ? t.integer : (t.integer + 500) / 1000);
        }
        break;
      }
    }
  }
}

}  // namespace ringcache::internal

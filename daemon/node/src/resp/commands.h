// The Redis commands a node serves, as translations to and from the operation vocabulary
// (operation.h): each command becomes zero or more Ops of one batch, and its reply is
// encoded from their results, in Redis's words (docs/redis.md lists the commands and what
// differs from Redis).
//
//   RespBatch batch;
//   for (const RespCommand& c : commands) batch.Add(c, now_ms);   // ops, or a known reply
//   RunBatch(service, topology, {}, batch.ops(), batch.results(), batch.skip(), ...);
//   batch.EncodeReplies(&out);   // one reply per command, in order
//
// A command that needs no operation (PING, ECHO, an error found while decoding) has its
// reply at once. Commands that change the connection (QUIT) are flagged so that the
// connection ends its batch there.
//
// Thread safety: a RespBatch belongs to one connection; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "operation.h"
#include "resp/parser.h"
#include "ringcache/node/node.h"
#include "ringcache/pubsub.h"

namespace ringcache::internal {

// How each command's reply is built from its operations' results.
enum class RespReply : uint8_t {
  kFixed,       // `fixed` holds the whole reply.
  kBulk,        // GET: the value, or nil.
  kOkOrNil,     // SET: +OK, nil when NX/XX did not hold.
  kSetOld,      // SET ... GET, GETSET, GETDEL: the value replaced or removed, or nil.
  kOne,         // SETNX: :1 / :0.
  kMulti,       // MGET: an array of values or nils.
  kAllOk,       // MSET: +OK when every write succeeded.
  kCount,       // DEL, UNLINK, EXISTS, TOUCH: how many ops found their key.
  kInteger,     // INCR family: the new value.
  kChanged,     // EXPIRE family, PERSIST: :1 if the expiry changed, :0 if not (or absent).
  kTtlSeconds,  // TTL.
  kTtlMillis,   // PTTL.
  kLength,      // STRLEN.
  kRange,       // GETRANGE: the bytes [range_start, range_end] of the value, Redis's way.
  kType,        // TYPE: the key's type (+string, +hash, ...), +none if it does not exist.
  // Hash, list and set commands (one kTypedRead/kTypedWrite op), by the reply's shape:
  kTypedInteger,       // HSET, LPUSH, SADD, ...: an integer.
  kTypedIntegerOrNil,  // LPOS without COUNT: the index, or nil.
  kTypedScan,          // HSCAN, SSCAN: the next cursor and the elements.
  kTypedBulk,          // HGET, LINDEX, LPOP without a count: one value or nil.
  kTypedArray,         // HGETALL, LRANGE, SMEMBERS, LPOP with a count: values (nil: *-1).
  kTypedFields,        // HMGET: one value or nil per field.
  kTypedIntegers,      // SMISMEMBER: one integer per member.
  kTypedOk,            // LSET, LTRIM, HMSET: +OK.
};

// What the commands about the server and the connection (INFO, DBSIZE, CLIENT, HELLO)
// read. The server sets it once per connection; the functions may be empty (tests): the
// answers then leave out what they would give.
// Who a connection logged in as.
struct RespLogin {
  std::string user;
  Role role = Role::kNone;
};

struct RespSession {
  uint64_t connection_id = 0;
  std::function<NodeStats()> node_stats{};  // INFO, DBSIZE.
  std::function<size_t()> connections{};    // INFO's connected_clients.
  std::string tcp_port{};                   // INFO's tcp_port.
  // CONFIG GET notify-keyspace-events: the node's --keyspace-events, as Redis writes it.
  std::string keyspace_events{};
  // Client tokens (client_auth.h): whose `token` is, if `user` is empty, "default" or the
  // token's name (nullopt: refused, counted and logged). Empty = no tokens, every
  // connection is admin.
  std::function<std::optional<RespLogin>(std::string_view user, std::string_view token)> login{};
  // A new subscription of the node's pub/sub hub whose messages the connection writes
  // (SUBSCRIBE, PSUBSCRIBE). Empty: pub/sub is not available (tests).
  std::function<std::shared_ptr<PubSub::Subscription>()> open_subscription{};
  // What the connection may do: kNone until AUTH (or HELLO ... AUTH) names a token.
  Role role = Role::kAdmin;
  std::string user = "default";  // The token's name once authenticated.
};

struct RespCall {
  RespReply reply = RespReply::kFixed;
  int command = -1;  // Index in RespCommandNames(); -1: unknown command.
  size_t first_op = 0;
  size_t op_count = 0;
  std::string fixed;
  bool close_after = false;  // QUIT.
  int64_t range_start = 0;   // GETRANGE.
  int64_t range_end = 0;
};

class RespBatch {
 public:
  RespBatch() = default;

  // Starts a new batch (keeps the buffers).
  void Clear();
  // The connection this batch serves (kept by Clear).
  void SetSession(RespSession session) {
    session_ = std::move(session);
    initial_role_ = session_.role;
    initial_user_ = session_.user;
  }
  // Translates `command` into its operations or its reply. `now_ms`: the Unix time in ms
  // (EXAT/PXAT). Returns false if the connection must stop after this command (QUIT).
  // A connection that has not authenticated (with client tokens) gets NOAUTH for anything
  // but AUTH, HELLO and QUIT; a command with an operation its role does not allow
  // (CheckRole), NOPERM.
  bool Add(const RespCommand& command, int64_t now_ms);

  std::span<const Op> ops() const { return ops_; }
  std::span<OpResult> results() { return results_; }
  size_t commands() const { return calls_.size(); }
  bool empty() const { return calls_.empty(); }
  // False while the connection has to authenticate (client tokens, no AUTH yet).
  bool authenticated() const { return session_.role != Role::kNone; }
  // True if the last command added asks to close the connection once answered.
  bool close_after() const { return !calls_.empty() && calls_.back().close_after; }

  // ---- Pub/sub (resp/pubsub_commands.cc; docs/design/pubsub.md).

  // A PUBLISH of this batch: the connection publishes it (PubSubRelay, asynchronously)
  // and gives the outcome to SetPublishResult before EncodeReplies.
  struct PendingPublish {
    size_t call = 0;
    std::string channel;
    std::string payload;
  };
  const std::vector<PendingPublish>& publishes() const { return publishes_; }
  // The outcome of publishes()[i]: its count, or the error.
  void SetPublishResult(size_t i, const Status& status, uint64_t receivers);
  // The connection's subscription while it is subscribed to anything (else null): the
  // connection writes what it holds (EncodeMessage) between batches.
  PubSub::Subscription* subscription() const { return subscription_.get(); }
  // One message as Redis pushes it in RESP2: "message" or "pmessage".
  static void EncodeMessage(const PubSub::Delivery& delivery, std::string* out);
  // Ends the subscription (the connection is closing).
  void CloseSubscription();

  // Appends every command's reply, in order, to `out`. With `outcomes`, also one entry per
  // command: its index in RespCommandNames() (-1: unknown) and whether it answered an error.
  void EncodeReplies(std::string* out, std::vector<std::pair<int, bool>>* outcomes = nullptr) const;

 private:
  void EncodeReply(const RespCall& call, std::string* out) const;
  // Add's translation, before the role check.
  bool Translate(const RespCommand& command, int64_t now_ms);
  // Replaces the calls from `first_call` on with NOPERM if one of their operations is not
  // allowed to the connection's role (their ops and value slots are dropped).
  void RefuseDenied(size_t first_call, size_t values_before);
  // AUTH's and HELLO's AUTH option: logs the connection in with `token` (and `user`), or
  // answers WRONGPASS and returns false.
  bool Login(std::string_view user, std::string_view token);
  void Fixed(std::string reply);
  void Error(std::string_view message);  // "-" + message + "\r\n".
  // Adds an op whose key is `key` and returns it for the caller to fill.
  Op& AddOp(OpKind kind, std::string_view key);
  void Begin(RespReply reply);

  void Set(const RespCommand& c, int64_t now_ms);
  // The last op added answers the value it replaces or removes (return_previous), into a
  // value slot of this batch.
  void WantPrevious(Op* op);
  // The last op added gets a value slot of this batch (its result's `value`).
  void GiveValueSlot();
  void Config(const RespCommand& c);
  // EXPIRE, PEXPIRE (relative, now_ms is this node's clock), EXPIREAT, PEXPIREAT.
  void Expire(const RespCommand& c, std::string_view name, int64_t unit_ms, bool absolute,
              int64_t now_ms);
  void GetEx(const RespCommand& c);
  // The milliseconds of an EX/PX/EXAT/PXAT `value` (seconds scaled), or false after
  // answering Redis's error for `command`.
  bool ParseExpiry(std::string_view option, std::string_view value, std::string_view command,
                   int64_t* ms);
  void Incr(const RespCommand& c, int64_t delta, bool parse_delta);
  // A hash, list or set command; `name` is its lowercase name (HMSET is HSET answering OK).
  void Typed(const RespCommand& c, std::string_view name);
  static void EncodeTyped(RespReply reply, const OpResult& result, std::string* out);
  // The commands about the server and the connection (resp/server_commands.cc).
  void Info(const RespCommand& c);
  void DbSize();
  void Time();
  void Client(const RespCommand& c);
  void Hello(const RespCommand& c);
  void Auth(const RespCommand& c);
  // SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE (`name` lowercase), PUBLISH and RESET
  // (resp/pubsub_commands.cc).
  void Subscribe(const RespCommand& c, std::string_view name);
  void Publish(const RespCommand& c);
  void Reset();
  // In subscribe mode only these commands run (Redis's rule); PING answers an array.
  bool RefusedWhileSubscribed(const RespCommand& c, std::string_view name);
  size_t subscription_count() const { return sub_channels_.size() + sub_patterns_.size(); }

  std::vector<RespCall> calls_;
  std::vector<Op> ops_;
  std::vector<OpResult> results_;
  std::deque<std::string> values_;  // Where Get results land (stable addresses).
  size_t values_used_ = 0;
  int command_ = -1;  // The command being added (Begin tags its call with it).
  // The connection sent MULTI: commands are refused until EXEC or DISCARD. Kept by Clear.
  bool refused_multi_ = false;
  RespSession session_;  // Kept by Clear.
  // The session's role and user before any AUTH (RESET goes back to them).
  Role initial_role_ = Role::kAdmin;
  std::string initial_user_ = "default";
  std::string client_name_;  // CLIENT SETNAME; kept by Clear.
  std::vector<PendingPublish> publishes_;
  // Pub/sub, kept by Clear: the names subscribed, in the order given (the replies of an
  // UNSUBSCRIBE without names follow it), and the subscription while there are any.
  std::unordered_map<std::string, uint64_t> sub_channels_;  // Name -> order subscribed.
  std::unordered_map<std::string, uint64_t> sub_patterns_;
  uint64_t next_subscription_order_ = 0;
  std::shared_ptr<PubSub::Subscription> subscription_;
};

// The names of the commands served, lowercase (COMMAND COUNT, tests).
std::span<const std::string_view> RespCommandNames();

}  // namespace ringcache::internal

// The operation vocabulary of a node's operation path (docs/design/operations.md, section 1):
// what a front end decodes a request into (Op), and what it encodes back (OpResult).
//
//   Op op = {.kind = OpKind::kGet, .key = HashedKey(request.key())};
//   Router::Decision d = router.Route(topology, hints, op);   // here, remote, or an error
//   OpResult result{.value = response->mutable_value()};
//   if (d.where == Router::Where::kHere) ExecuteLocal(node, op, &result, nullptr);
//
// An Op holds views into the buffer that carried it (the request message): it owns no copy
// of its key or arguments and must not outlive that buffer. The router treats an operation
// by its shape (ShapeOf), never by its kind; only the engine (ExecuteLocal) and the front
// ends' translators look at the kind.
//
// The engine that runs an Op on a node's data is engine.h.
//
// Thread safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"
#include "ringcache/typed.h"

namespace ringcache::internal {

enum class OpKind : uint8_t {
  kGet,
  kTtl,
  kSet,
  kDelete,
  kTouch,
  kIncr,
  kSetRange,  // Bytes at an offset or at the end (SETRANGE, APPEND): a read-modify-write.
  // A command on a hash, list or set (ringcache/typed.h): Op::typed names it. The kind
  // says only whether it reads or writes, which is all the router needs.
  kTypedRead,
  kTypedWrite,
};

enum class OpShape : uint8_t {
  kPointRead,   // One key, runs on its primary (or any owner, by read preference).
  kPointWrite,  // One key, runs on its primary; leaves one WriteRecord.
};

constexpr OpShape ShapeOf(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
    case OpKind::kTtl:
    case OpKind::kTypedRead:
      return OpShape::kPointRead;
    case OpKind::kSet:
    case OpKind::kDelete:
    case OpKind::kTouch:
    case OpKind::kIncr:
    case OpKind::kSetRange:
    case OpKind::kTypedWrite:
      return OpShape::kPointWrite;
  }
  return OpShape::kPointWrite;
}
// The kind's name ("get", "collection write"), for messages.
std::string_view NameOf(OpKind kind);

// What a caller may do (client tokens, docs/security.md): each role can do what the ones
// before it can. A node without client tokens gives every caller kAdmin.
enum class Role : uint8_t {
  kNone,       // Not authenticated: nothing.
  kRead,       // Reads, and the node's stats and topology.
  kReadWrite,  // Reads and writes.
  kAdmin,      // Reads, writes, and the operator's calls (a member's leave).
};
// "read", "read-write", "admin" ("none" for kNone).
std::string_view NameOf(Role role);
// The role named `name` (one of the above, not "none"), or kNone.
Role RoleNamed(std::string_view name);
// PERMISSION_DENIED: `what` ("set", "Cache.Set") needs `needed` and the caller has `role`.
Status RoleError(std::string_view what, Role needed, Role role);
// OK if `role` may run an operation of `kind`; otherwise RoleError naming both.
// Every front end checks each operation with it (the router for gRPC, the Redis front end
// per command).
Status CheckRole(Role role, OpKind kind);

struct Op {
  OpKind kind = OpKind::kGet;
  HashedKey key;  // Hashed once where the front end decodes it (ringcache/key_hash.h).
  // Arguments, by kind (views into the request).
  std::string_view value;        // kSet.
  SetOptions set;                // kSet: TTL, mode, expected version.
  bool keep_ttl = false;         // kSet: keep the key's expiry (KEEPTTL).
  bool return_previous = false;  // kSet, kDelete: answer the value it replaced
                                 // or removed (GET, GETSET, GETDEL).
  int64_t expires_at_ms = 0;     // kSet, kTouch: absolute expiry instead of
                                 // set.ttl_ms / ttl_ms.
  // kTouch: change the expiry only if this holds (EXPIRE NX/XX/GT/LT); 0 = always.
  enum class ExpireIf : uint8_t { kAlways, kNone, kSome, kLater, kEarlier, kSomeAndEarlier };
  ExpireIf expire_if = ExpireIf::kAlways;
  bool return_value = false;  // kTouch: answer the value too (GETEX), into the value slot.
  int64_t delta = 0;          // kIncr.
  bool by_float = false;      // kIncr: the increment is `value`, a decimal float (INCRBYFLOAT);
                              // the result's value slot gets the new value's text.
  uint64_t offset = 0;        // kSetRange.
  bool append = false;        // kSetRange: at the value's end, not at offset.
  uint64_t ttl_ms = 0;        // kTouch; kIncr: the TTL if it creates the key.
  // kTypedRead, kTypedWrite: the command and its arguments, as TypedOp's (args: views
  // into the request, like `key`).
  TypedCommand typed = TypedCommand::kHGet;
  std::vector<std::string_view> args;
  int64_t n = 0;
  int64_t stop = 0;
  bool flag = false;
  int64_t count = 0;
  bool option = false;
  uint64_t if_version = 0;
  // Point reads: true to read this node's copy if it is any owner (READ_PREFERENCE_ANY_OWNER).
  bool any_owner = false;
  // Point writes: replicas to wait for, and how long (0: the default timeout).
  uint32_t write_concern = 0;
  uint32_t write_concern_timeout_ms = 0;
};

// A write's write-concern wait: write_concern_timeout_ms, or this default for 0.
inline constexpr uint32_t kDefaultWriteConcernTimeoutMs = 1000;
inline std::chrono::milliseconds WriteConcernTimeout(uint32_t timeout_ms) {
  return std::chrono::milliseconds(timeout_ms == 0 ? kDefaultWriteConcernTimeoutMs : timeout_ms);
}
// How long a forwarded write may take beyond the forward timeout: its write-concern wait.
inline std::chrono::milliseconds WriteConcernExtra(uint32_t write_concern, uint32_t timeout_ms) {
  return write_concern == 0 ? std::chrono::milliseconds(0) : WriteConcernTimeout(timeout_ms);
}

// What an operation gave. Which fields are set depends on the kind; the front end
// encodes them and the router never looks inside.
struct OpResult {
  Status status;
  // Reads that return bytes (kGet): where the value goes, set by the front end before
  // execution (its reply's own field, so the value is copied once, from the cache into the
  // reply). nullptr: the value is not wanted.
  // kSet and kDelete with return_previous: the value replaced or removed goes here too
  // (had_previous says whether there was one).
  std::string* value = nullptr;
  bool had_previous = false;
  uint64_t version = 0;       // kGet, kSet, kIncr: the entry's version (kSet with
                              // return_previous: 0 if its mode refused the write).
  int64_t expires_at_ms = 0;  // kGet: absolute expiry, 0 = never.
  int64_t integer = 0;        // kTtl: ms left (0 = never expires); kIncr: the new value;
                              // kSetRange: the value's new length; kTouch: 1 if the
                              // expiry changed, 0 if its condition did not hold.
  ValueType value_type = ValueType::kString;  // kTtl: what the key holds (TYPE).
  // kTypedRead, kTypedWrite: the command's reply (its version too), made by the engine or
  // the decoder of an owner's answer. A pointer, so that the string operations' results
  // stay small (results are made and dropped per operation on the hot path).
  std::unique_ptr<TypedReply> typed;
  bool possibly_stale = false;  // Served from a fenced node's own copy (--fenced-reads).
  uint32_t replicas_acked = 0;  // Point writes with a write concern.
};

// Whether running `op` adds bytes to a response beyond its status: reads, writes that
// answer the value they replaced, and pops. Response budgets stop these once spent.
inline bool ReturnsBytes(const Op& op) {
  return ShapeOf(op.kind) == OpShape::kPointRead || op.return_previous ||
         (op.kind == OpKind::kTypedWrite &&
          (op.typed == TypedCommand::kLPop || op.typed == TypedCommand::kRPop ||
           op.typed == TypedCommand::kSPop));
}

}  // namespace ringcache::internal

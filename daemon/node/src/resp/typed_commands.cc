// The Redis commands on hashes, lists and sets: each is one operation of the node's
// vocabulary (kTypedRead or kTypedWrite, carrying the core's TypedOp), its arguments
// parsed by the core's ParseRedisArgs, its reply encoded by shape (docs/redis.md).
#include <string>
#include <string_view>

#include "resp/commands.h"
#include "resp/reply.h"
#include "ringcache/typed.h"

namespace ringcache::internal {

using namespace resp;  // The reply encodings (resp/reply.h).

namespace {

// How a typed command's reply is encoded (`counted`: LPOP/RPOP, SPOP, SRANDMEMBER,
// HRANDFIELD with a count; LPOS with COUNT).
RespReply ReplyOf(TypedCommand command, bool counted) {
  switch (command) {
    case TypedCommand::kLPos:
      return counted ? RespReply::kTypedIntegers : RespReply::kTypedIntegerOrNil;
    case TypedCommand::kHScan:
    case TypedCommand::kSScan:
      return RespReply::kTypedScan;
    case TypedCommand::kHGet:
    case TypedCommand::kHIncrByFloat:
    case TypedCommand::kLIndex:
      return RespReply::kTypedBulk;
    case TypedCommand::kLPop:
    case TypedCommand::kRPop:
    case TypedCommand::kSPop:
    case TypedCommand::kSRandMember:
    case TypedCommand::kHRandField:
      return counted ? RespReply::kTypedArray : RespReply::kTypedBulk;
    case TypedCommand::kHGetAll:
    case TypedCommand::kHKeys:
    case TypedCommand::kHVals:
    case TypedCommand::kLRange:
    case TypedCommand::kSMembers:
      return RespReply::kTypedArray;
    case TypedCommand::kHMGet:
      return RespReply::kTypedFields;
    case TypedCommand::kSMIsMember:
      return RespReply::kTypedIntegers;
    case TypedCommand::kLSet:
    case TypedCommand::kLTrim:
      return RespReply::kTypedOk;
    default:
      return RespReply::kTypedInteger;
  }
}

}  // namespace

void RespBatch::Typed(const RespCommand& c, std::string_view name) {
  const std::span<const std::string_view> args = c.args;
  const bool hmset = name == "hmset";
  const TypedCommandInfo* info = TypedCommandNamed(hmset ? "hset" : name);
  TypedOp typed;
  if (Status s = ParseRedisArgs(*info, args.subspan(2), &typed); !s.ok()) {
    if (hmset) {  // Redis names the command the client sent.
      Error("ERR wrong number of arguments for 'hmset' command");
    } else {
      Error("ERR " + s.message());
    }
    return;
  }
  Begin(hmset ? RespReply::kTypedOk : ReplyOf(info->command, typed.flag));
  Op& op = AddOp(info->write ? OpKind::kTypedWrite : OpKind::kTypedRead, args[1]);
  op.typed = info->command;
  op.args.assign(typed.args.begin(), typed.args.end());
  op.n = typed.n;
  op.stop = typed.stop;
  op.flag = typed.flag;
  op.count = typed.count;
  op.option = typed.option;
}

void RespBatch::EncodeTyped(RespReply reply, const OpResult& result, std::string* out) {
  if (!result.status.ok()) {
    AppendStatusError(out, result.status);
    return;
  }
  static const TypedReply kEmpty;
  const TypedReply& t = result.typed != nullptr ? *result.typed : kEmpty;
  const auto array_header = [out](size_t n) {
    out->push_back('*');
    out->append(std::to_string(n));
    out->append("\r\n");
  };
  switch (reply) {
    case RespReply::kTypedInteger:
      AppendInteger(out, t.integer);
      return;
    case RespReply::kTypedScan:
      out->append("*2\r\n");
      AppendBulk(out, std::to_string(static_cast<uint64_t>(t.integer)));
      array_header(t.items.size());
      for (const std::string& item : t.items) AppendBulk(out, item);
      return;
    case RespReply::kTypedIntegerOrNil:
      if (t.nil) {
        out->append(kNil);
      } else {
        AppendInteger(out, t.integer);
      }
      return;
    case RespReply::kTypedBulk:
      if (t.nil || t.items.empty()) {
        out->append(kNil);
      } else {
        AppendBulk(out, t.items[0]);
      }
      return;
    case RespReply::kTypedArray:
      if (t.nil) {
        out->append("*-1\r\n");
        return;
      }
      array_header(t.items.size());
      for (const std::string& item : t.items) AppendBulk(out, item);
      return;
    case RespReply::kTypedFields: {
      array_header(t.items.size());
      size_t next_absent = 0;
      for (size_t i = 0; i < t.items.size(); ++i) {
        if (next_absent < t.absent.size() && t.absent[next_absent] == i) {
          out->append(kNil);
          ++next_absent;
        } else {
          AppendBulk(out, t.items[i]);
        }
      }
      return;
    }
    case RespReply::kTypedIntegers:
      array_header(t.integers.size());
      for (int64_t i : t.integers) AppendInteger(out, i);
      return;
    case RespReply::kTypedOk:
      out->append(kOk);
      return;
    default:
      return;
  }
}

}  // namespace ringcache::internal

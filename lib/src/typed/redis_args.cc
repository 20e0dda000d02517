// ParseRedisArgs (ringcache/typed.h): Redis's arguments of a typed command, parsed and
// checked in Redis's words before any key is read.
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ringcache/float_text.h"
#include "ringcache/typed.h"
#include "typed/pack.h"
#include "typed/text.h"

namespace ringcache {

using typed::SameIgnoringCase;

Status ParseRedisArgs(const TypedCommandInfo& info, std::span<const std::string_view> args,
                      TypedOp* op) {
  *op = TypedOp{.command = info.command};
  const auto arity = [&] {
    return Status::InvalidArgument("wrong number of arguments for '" + std::string(info.name) +
                                   "' command");
  };
  const auto number = [](std::string_view text, int64_t* out) {
    return typed::ParseInt64(text, out)
               ? Status::Ok()
               : Status::InvalidArgument("value is not an integer or out of range");
  };
  // How many of Redis's arguments a command with numbers takes (the others: what
  // CheckTypedOp counts).
  size_t raw = args.size();
  switch (info.command) {
    case TypedCommand::kHIncrBy:
    case TypedCommand::kHIncrByFloat:
    case TypedCommand::kLRange:
    case TypedCommand::kLTrim:
    case TypedCommand::kLSet:
    case TypedCommand::kLRem:
      raw = 2;
      break;
    case TypedCommand::kLIndex:
      raw = 1;
      break;
    case TypedCommand::kLInsert:
      raw = 3;
      break;
    case TypedCommand::kLPop:
    case TypedCommand::kRPop:
      raw = args.size() <= 1 ? args.size() : 0;
      break;
    default:
      break;
  }
  if (raw != args.size()) return arity();
  const auto syntax = [] { return Status::InvalidArgument("syntax error"); };
  const auto signed_count = [&](std::string_view text) {  // Redis's -LONG_MAX .. LONG_MAX.
    if (!typed::ParseInt64(text, &op->n)) {
      return Status::InvalidArgument("value is not an integer or out of range");
    }
    if (op->n == INT64_MIN) {
      return Status::InvalidArgument(
          "value is out of range, value must between -9223372036854775807 and "
          "9223372036854775807");
    }
    op->flag = true;
    return Status::Ok();
  };
  Status s;
  switch (info.command) {
    case TypedCommand::kHIncrBy:
      s = number(args[1], &op->n);
      op->args = args.first(1);
      break;
    case TypedCommand::kHIncrByFloat: {
      long double increment = 0;
      if (!ParseFloatText(args[1], &increment)) {
        return Status::InvalidArgument("value is not a valid float");
      }
      if (std::isinf(increment)) return Status::InvalidArgument("value is NaN or Infinity");
      op->args = args;
      break;
    }
    case TypedCommand::kSPop:
      if (args.size() > 1) return syntax();
      [[fallthrough]];
    case TypedCommand::kLPop:
    case TypedCommand::kRPop:
      if (args.size() == 1) {
        if (!typed::ParseInt64(args[0], &op->n) || op->n < 0) {
          return Status::InvalidArgument("value is out of range, must be positive");
        }
        op->flag = true;
      }
      break;
    case TypedCommand::kLRange:
    case TypedCommand::kLTrim:
      s = number(args[0], &op->n);
      if (s.ok()) s = number(args[1], &op->stop);
      break;
    case TypedCommand::kLIndex:
    case TypedCommand::kLSet:
    case TypedCommand::kLRem:
      s = number(args[0], &op->n);
      op->args = args.subspan(1);
      break;
    case TypedCommand::kSRandMember:
      if (args.size() > 1) return syntax();
      if (args.size() == 1) s = signed_count(args[0]);
      break;
    case TypedCommand::kHRandField:
      if (!args.empty()) {
        if (s = signed_count(args[0]); !s.ok()) return s;
        if (args.size() > 2 || (args.size() == 2 && !SameIgnoringCase(args[1], "withvalues"))) {
          return syntax();
        }
        op->option = args.size() == 2;
      }
      break;
    case TypedCommand::kHScan:
    case TypedCommand::kSScan: {
      if (args.empty()) return arity();
      // Redis's parseScanCursorOrReply: strtoul over the whole argument.
      char buf[32];
      if (args[0].empty() || args[0].size() >= sizeof(buf) ||
          std::isspace(static_cast<unsigned char>(args[0][0]))) {
        return Status::InvalidArgument("invalid cursor");
      }
      std::memcpy(buf, args[0].data(), args[0].size());
      buf[args[0].size()] = '\0';
      errno = 0;
      char* end = nullptr;
      const unsigned long long cursor = std::strtoull(buf, &end, 10);
      if (*end != '\0' || errno == ERANGE) return Status::InvalidArgument("invalid cursor");
      op->n = static_cast<int64_t>(cursor);
      for (size_t j = 1; j < args.size(); j += 2) {
        const bool more = j + 1 < args.size();
        if (SameIgnoringCase(args[j], "count") && more) {
          if (!typed::ParseInt64(args[j + 1], &op->count)) {
            return Status::InvalidArgument("value is not an integer or out of range");
          }
          if (op->count < 1) return syntax();
        } else if (SameIgnoringCase(args[j], "match") && more) {
          op->args = args.subspan(j + 1, 1);
        } else {
          return syntax();
        }
      }
      break;
    }
    case TypedCommand::kLPos:
      if (args.empty()) return arity();
      op->args = args.first(1);
      op->n = 1;
      for (size_t j = 1; j < args.size(); j += 2) {
        const bool more = j + 1 < args.size();
        int64_t v = 0;
        if (SameIgnoringCase(args[j], "rank") && more) {
          if (!typed::ParseInt64(args[j + 1], &v)) {
            return Status::InvalidArgument("value is not an integer or out of range");
          }
          if (v == INT64_MIN) {
            return Status::InvalidArgument(
                "value is out of range, value must between -9223372036854775807 and "
                "9223372036854775807");
          }
          if (v == 0) {
            return Status::InvalidArgument(
                "RANK can't be zero: use 1 to start from the first match, 2 from the second "
                "... or use negative to start from the end of the list");
          }
          op->n = v;
        } else if (SameIgnoringCase(args[j], "count") && more) {
          if (!typed::ParseInt64(args[j + 1], &v) || v < 0) {
            return Status::InvalidArgument("COUNT can't be negative");
          }
          op->count = v;
          op->flag = true;
        } else if (SameIgnoringCase(args[j], "maxlen") && more) {
          if (!typed::ParseInt64(args[j + 1], &v) || v < 0) {
            return Status::InvalidArgument("MAXLEN can't be negative");
          }
          op->stop = v;
        } else {
          return syntax();
        }
      }
      break;
    case TypedCommand::kLInsert:
      if (SameIgnoringCase(args[0], "before")) {
        op->flag = true;
      } else if (!SameIgnoringCase(args[0], "after")) {
        return Status::InvalidArgument("syntax error");
      }
      op->args = args.subspan(1);
      break;
    default:
      op->args = args;
      break;
  }
  if (!s.ok()) return s;
  if (op->command == TypedCommand::kHSet && op->args.size() % 2 != 0) return arity();
  if (Status c = CheckTypedOp(*op); !c.ok()) {
    const auto n = static_cast<int64_t>(op->args.size());
    if (n < info.min_args || (info.max_args >= 0 && n > info.max_args)) return arity();
    return c;
  }
  return Status::Ok();
}

}  // namespace ringcache

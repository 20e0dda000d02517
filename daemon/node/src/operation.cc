#include "operation.h"

namespace ringcache::internal {

std::string_view NameOf(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
      return "get";
    case OpKind::kTtl:
      return "ttl";
    case OpKind::kSet:
      return "set";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kTouch:
      return "touch";
    case OpKind::kIncr:
      return "incr";
    case OpKind::kSetRange:
      return "set_range";
    case OpKind::kHSet:
      return "hset";
    case OpKind::kHGet:
      return "hget";
  }
  return "unknown";
}

}  // namespace ringcache::internal

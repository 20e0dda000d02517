#include "operation.h"

namespace ringcache::internal {

OpShape ShapeOf(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
    case OpKind::kTtl:
    case OpKind::kHGet:
      return OpShape::kPointRead;
    case OpKind::kSet:
    case OpKind::kDelete:
    case OpKind::kTouch:
    case OpKind::kIncr:
    case OpKind::kHSet:
      return OpShape::kPointWrite;
  }
  return OpShape::kPointWrite;
}

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
    case OpKind::kHSet:
      return "hset";
    case OpKind::kHGet:
      return "hget";
  }
  return "unknown";
}

}  // namespace ringcache::internal

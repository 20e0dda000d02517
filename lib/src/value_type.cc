#include "ringcache/value_type.h"

namespace ringcache {

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kString:
      return "string";
    case ValueType::kHash:
      return "hash";
    case ValueType::kList:
      return "list";
    case ValueType::kSet:
      return "set";
  }
  return "none";
}

Status WrongType() {
  return Status::FailedPrecondition(
      "WRONGTYPE Operation against a key holding the wrong kind of value");
}

}  // namespace ringcache

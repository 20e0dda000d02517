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
    case OpKind::kTypedRead:
      return "collection read";
    case OpKind::kTypedWrite:
      return "collection write";
  }
  return "unknown";
}

std::string_view NameOf(Role role) {
  switch (role) {
    case Role::kNone:
      return "none";
    case Role::kRead:
      return "read";
    case Role::kReadWrite:
      return "read-write";
    case Role::kAdmin:
      return "admin";
  }
  return "none";
}

Role RoleNamed(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "read-write") return Role::kReadWrite;
  if (name == "admin") return Role::kAdmin;
  return Role::kNone;
}

Status CheckRole(Role role, OpKind kind) {
  const Role needed = ShapeOf(kind) == OpShape::kPointWrite ? Role::kReadWrite : Role::kRead;
  if (role >= needed) [[likely]] {
    return Status::Ok();
  }
  return RoleError(NameOf(kind), needed, role);
}

Status RoleError(std::string_view what, Role needed, Role role) {
  return Status(StatusCode::kPermissionDenied,
                std::string(what) + " needs the role " + std::string(NameOf(needed)) +
                    " and this caller's token has the role " + std::string(NameOf(role)));
}

}  // namespace ringcache::internal

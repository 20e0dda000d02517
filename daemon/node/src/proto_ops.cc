#include "proto_ops.h"

#include <string>

namespace ringcache::internal {
namespace {

Status ReadPreference(v1::ReadPreference preference, bool* any_owner) {
  switch (preference) {
    case v1::READ_PREFERENCE_PRIMARY:
      *any_owner = false;
      return Status::Ok();
    case v1::READ_PREFERENCE_ANY_OWNER:
      *any_owner = true;
      return Status::Ok();
    default:
      return Status::InvalidArgument("unknown read preference " +
                                     std::to_string(static_cast<int>(preference)));
  }
}

// The wire enum, which may carry any int, to the library's; false for an unknown value.
bool ToSetMode(v1::SetMode mode, SetMode* out) {
  switch (mode) {
    case v1::SET_MODE_ALWAYS:
      *out = SetMode::kAlways;
      return true;
    case v1::SET_MODE_IF_ABSENT:
      *out = SetMode::kIfAbsent;
      return true;
    case v1::SET_MODE_IF_PRESENT:
      *out = SetMode::kIfPresent;
      return true;
    case v1::SET_MODE_IF_VERSION:
      *out = SetMode::kIfVersion;
      return true;
    default:
      return false;
  }
}

template <typename Request>
void WriteConcernOf(const Request& request, Op* op) {
  op->write_concern = request.write_concern();
  op->write_concern_timeout_ms = request.write_concern_timeout_ms();
}

}  // namespace

Status ToSetOptions(const v1::SetRequest& request, SetOptions* options) {
  if (!ToSetMode(request.mode(), &options->mode)) {
    return Status::InvalidArgument("unknown set mode " +
                                   std::to_string(static_cast<int>(request.mode())));
  }
  options->ttl_ms = request.ttl_ms();
  options->expected_version = request.expected_version();
  return Status::Ok();
}

Status DecodeOp(const v1::GetRequest& request, Op* op) {
  op->kind = OpKind::kGet;
  op->key = KeyRef::Of(request.key());
  return ReadPreference(request.read_preference(), &op->any_owner);
}

Status DecodeOp(const v1::SetRequest& request, Op* op) {
  op->kind = OpKind::kSet;
  op->key = KeyRef::Of(request.key());
  op->value = request.value();
  WriteConcernOf(request, op);
  return ToSetOptions(request, &op->set);
}

Status DecodeOp(const v1::DeleteRequest& request, Op* op) {
  op->kind = OpKind::kDelete;
  op->key = KeyRef::Of(request.key());
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::TouchRequest& request, Op* op) {
  op->kind = OpKind::kTouch;
  op->key = KeyRef::Of(request.key());
  op->ttl_ms = request.ttl_ms();
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::TtlRequest& request, Op* op) {
  op->kind = OpKind::kTtl;
  op->key = KeyRef::Of(request.key());
  return ReadPreference(request.read_preference(), &op->any_owner);
}

Status DecodeOp(const v1::IncrRequest& request, Op* op) {
  op->kind = OpKind::kIncr;
  op->key = KeyRef::Of(request.key());
  op->delta = request.delta();
  op->ttl_ms = request.ttl_ms_if_created();
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::Operation& operation, Op* op) {
  switch (operation.op_case()) {
    case v1::Operation::kGet:
      return DecodeOp(operation.get(), op);
    case v1::Operation::kSet:
      return DecodeOp(operation.set(), op);
    case v1::Operation::kDelete:
      return DecodeOp(operation.delete_(), op);
    case v1::Operation::kTouch:
      return DecodeOp(operation.touch(), op);
    case v1::Operation::kTtl:
      return DecodeOp(operation.ttl(), op);
    case v1::Operation::kIncr:
      return DecodeOp(operation.incr(), op);
    case v1::Operation::OP_NOT_SET:
    default:
      return Status::InvalidArgument("operation " + std::to_string(operation.id()) +
                                     " has no get/set/delete/touch/ttl/incr set");
  }
}

void EncodeResult(const OpResult& result, v1::GetResponse* out) {
  out->set_version(result.version);
  out->set_expires_at_ms(result.expires_at_ms);
  if (result.possibly_stale) out->set_possibly_stale(true);
}
void EncodeResult(const OpResult& result, v1::SetResponse* out) {
  out->set_version(result.version);
}
void EncodeResult(const OpResult&, v1::DeleteResponse*) {}
void EncodeResult(const OpResult&, v1::TouchResponse*) {}
void EncodeResult(const OpResult& result, v1::TtlResponse* out) {
  out->set_ttl_ms(static_cast<uint64_t>(result.integer));
  if (result.possibly_stale) out->set_possibly_stale(true);
}
void EncodeResult(const OpResult& result, v1::IncrResponse* out) {
  out->set_value(result.integer);
  out->set_version(result.version);
}

std::string* PipelineValueSlot(const Op& op, v1::OperationResult* out) {
  return op.kind == OpKind::kGet ? out->mutable_get()->mutable_value() : nullptr;
}

void SetOpStatus(const Status& status, v1::OpStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(status.message());
}

size_t EncodeResult(const Op& op, const OpResult& result, v1::OperationResult* out) {
  size_t bytes = kResultOverheadBytes;
  if (!result.status.ok()) {
    out->clear_result();
    SetOpStatus(result.status, out->mutable_status());
    return bytes + result.status.message().size();
  }
  switch (op.kind) {
    case OpKind::kGet:
      EncodeResult(result, out->mutable_get());
      bytes += out->get().value().size();
      break;
    case OpKind::kSet:
      EncodeResult(result, out->mutable_set());
      break;
    case OpKind::kDelete:
      out->mutable_delete_();
      break;
    case OpKind::kTouch:
      out->mutable_touch();
      break;
    case OpKind::kTtl:
      EncodeResult(result, out->mutable_ttl());
      break;
    case OpKind::kIncr:
      EncodeResult(result, out->mutable_incr());
      break;
    case OpKind::kHSet:
    case OpKind::kHGet: {
      // No wire form yet (operation.h): never decoded from a request.
      const Status s = Status::Internal("operation " + std::string(NameOf(op.kind)) +
                                        " has no ringcache.v1 result");
      SetOpStatus(s, out->mutable_status());
      bytes += s.message().size();
      break;
    }
  }
  return bytes;
}

}  // namespace ringcache::internal

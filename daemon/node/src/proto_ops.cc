#include "proto_ops.h"

#include <string>

#include "ringcache/proto/set_mode.h"

namespace ringcache::internal {
namespace {

v1::OperationResult::ResultCase ExpectedResult(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
      return v1::OperationResult::kGet;
    case OpKind::kTtl:
      return v1::OperationResult::kTtl;
    case OpKind::kSet:
      return v1::OperationResult::kSet;
    case OpKind::kDelete:
      return v1::OperationResult::kDelete;
    case OpKind::kTouch:
      return v1::OperationResult::kTouch;
    case OpKind::kIncr:
      return v1::OperationResult::kIncr;
    case OpKind::kSetRange:
      return v1::OperationResult::kSetRange;
    case OpKind::kTypedRead:
    case OpKind::kTypedWrite:
      return v1::OperationResult::kCollection;
  }
  return v1::OperationResult::RESULT_NOT_SET;
}

template <typename Request>
void WriteConcernOf(const Request& request, Op* op) {
  op->write_concern = request.write_concern();
  op->write_concern_timeout_ms = request.write_concern_timeout_ms();
}

}  // namespace

Status DecodeReadPreference(v1::ReadPreference preference, bool* any_owner) {
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

Status ToSetOptions(const v1::SetRequest& request, SetOptions* options) {
  if (!proto::FromProto(request.mode(), &options->mode)) {
    return Status::InvalidArgument("unknown set mode " +
                                   std::to_string(static_cast<int>(request.mode())));
  }
  options->ttl_ms = request.ttl_ms();
  options->expected_version = request.expected_version();
  if (request.keep_ttl() && request.ttl_ms() != 0) {
    return Status::InvalidArgument("keep_ttl and ttl_ms " + std::to_string(request.ttl_ms()) +
                                   " are exclusive: keep the key's expiry, or set a new one");
  }
  if (request.expires_at_ms() < 0) {
    return Status::InvalidArgument("expires_at_ms must be >= 0 (0 = not given), got " +
                                   std::to_string(request.expires_at_ms()));
  }
  if (request.expires_at_ms() != 0 && (request.ttl_ms() != 0 || request.keep_ttl())) {
    return Status::InvalidArgument(
        "expires_at_ms is exclusive with ttl_ms and keep_ttl: give one expiry");
  }
  return Status::Ok();
}

Status DecodeOp(const v1::GetRequest& request, Op* op) {
  op->kind = OpKind::kGet;
  op->key = HashedKey(request.key());
  return DecodeReadPreference(request.read_preference(), &op->any_owner);
}

Status DecodeOp(const v1::SetRequest& request, Op* op) {
  op->kind = OpKind::kSet;
  op->key = HashedKey(request.key());
  op->value = request.value();
  op->keep_ttl = request.keep_ttl();
  op->return_previous = request.return_previous();
  op->expires_at_ms = request.expires_at_ms();
  WriteConcernOf(request, op);
  return ToSetOptions(request, &op->set);
}

Status DecodeOp(const v1::DeleteRequest& request, Op* op) {
  op->kind = OpKind::kDelete;
  op->key = HashedKey(request.key());
  op->return_previous = request.return_previous();
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::TouchRequest& request, Op* op) {
  op->kind = OpKind::kTouch;
  op->key = HashedKey(request.key());
  op->ttl_ms = request.ttl_ms();
  op->expires_at_ms = request.expires_at_ms();
  op->return_value = request.return_value();
  switch (request.condition()) {
    case v1::EXPIRE_CONDITION_ALWAYS:
      op->expire_if = Op::ExpireIf::kAlways;
      break;
    case v1::EXPIRE_CONDITION_IF_NONE:
      op->expire_if = Op::ExpireIf::kNone;
      break;
    case v1::EXPIRE_CONDITION_IF_SOME:
      op->expire_if = Op::ExpireIf::kSome;
      break;
    case v1::EXPIRE_CONDITION_IF_LATER:
      op->expire_if = Op::ExpireIf::kLater;
      break;
    case v1::EXPIRE_CONDITION_IF_EARLIER:
      op->expire_if = Op::ExpireIf::kEarlier;
      break;
    case v1::EXPIRE_CONDITION_IF_SOME_AND_EARLIER:
      op->expire_if = Op::ExpireIf::kSomeAndEarlier;
      break;
    default:
      return Status::InvalidArgument("unknown expire condition " +
                                     std::to_string(static_cast<int>(request.condition())));
  }
  if (request.expires_at_ms() < 0) {
    return Status::InvalidArgument("expires_at_ms must be >= 0 (0 = not given), got " +
                                   std::to_string(request.expires_at_ms()));
  }
  if (request.expires_at_ms() != 0 && request.ttl_ms() != 0) {
    return Status::InvalidArgument("expires_at_ms and ttl_ms are exclusive: give one expiry");
  }
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::TtlRequest& request, Op* op) {
  op->kind = OpKind::kTtl;
  op->key = HashedKey(request.key());
  return DecodeReadPreference(request.read_preference(), &op->any_owner);
}

Status DecodeOp(const v1::IncrRequest& request, Op* op) {
  op->kind = OpKind::kIncr;
  op->key = HashedKey(request.key());
  op->delta = request.delta();
  op->ttl_ms = request.ttl_ms_if_created();
  if (!request.by_float().empty()) {
    if (request.delta() != 0) {
      return Status::InvalidArgument("IncrRequest has both delta and by_float: set one");
    }
    op->by_float = true;
    op->value = request.by_float();
  }
  WriteConcernOf(request, op);
  return Status::Ok();
}

Status DecodeOp(const v1::SetRangeRequest& request, Op* op) {
  op->kind = OpKind::kSetRange;
  op->key = HashedKey(request.key());
  op->value = request.value();
  op->offset = request.offset();
  op->append = request.append();
  WriteConcernOf(request, op);
  if (op->append && op->offset != 0) {
    return Status::InvalidArgument("append and offset " + std::to_string(op->offset) +
                                   " are exclusive: write at the end, or at an offset");
  }
  return Status::Ok();
}

Status DecodeOp(const v1::CollectionRequest& request, Op* op) {
  const TypedCommandInfo* info = TypedCommandNumbered(static_cast<uint32_t>(request.command()));
  if (info == nullptr) {
    return Status::InvalidArgument("unknown collection command " +
                                   std::to_string(static_cast<int>(request.command())));
  }
  op->kind = info->write ? OpKind::kTypedWrite : OpKind::kTypedRead;
  op->key = HashedKey(request.key());
  op->typed = info->command;
  op->args.assign(request.args().begin(), request.args().end());
  op->n = request.n();
  op->stop = request.stop();
  op->flag = request.flag();
  op->count = request.count();
  op->option = request.option();
  op->if_version = request.if_version();
  WriteConcernOf(request, op);
  if (Status s = CheckTypedOp({.command = op->typed,
                               .args = op->args,
                               .n = op->n,
                               .stop = op->stop,
                               .flag = op->flag,
                               .count = op->count,
                               .option = op->option});
      !s.ok()) {
    return s;
  }
  return DecodeReadPreference(request.read_preference(), &op->any_owner);
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
    case v1::Operation::kSetRange:
      return DecodeOp(operation.set_range(), op);
    case v1::Operation::kCollection:
      return DecodeOp(operation.collection(), op);
    case v1::Operation::OP_NOT_SET:
    default:
      return Status::InvalidArgument(
          "operation " + std::to_string(operation.id()) +
          " has no get/set/delete/touch/ttl/incr/set_range/collection set");
  }
}

void EncodeResult(const OpResult& result, v1::GetResponse* out) {
  out->set_version(result.version);
  out->set_expires_at_ms(result.expires_at_ms);
  if (result.possibly_stale) out->set_possibly_stale(true);
}
void EncodeResult(const OpResult& result, v1::SetResponse* out) {
  out->set_version(result.version);
  if (result.had_previous) out->set_had_previous(true);  // previous: in the value slot.
}
void EncodeResult(const OpResult& result, v1::DeleteResponse* out) {
  if (result.had_previous) out->set_had_previous(true);  // previous: in the value slot.
}
void EncodeResult(const OpResult& result, v1::TouchResponse* out) {
  out->set_changed(result.integer != 0);  // value: in the value slot.
}
void EncodeResult(const OpResult& result, v1::TtlResponse* out) {
  out->set_ttl_ms(static_cast<uint64_t>(result.integer));
  if (result.possibly_stale) out->set_possibly_stale(true);
  out->set_type(static_cast<v1::KeyType>(result.value_type));
}
void EncodeResult(const OpResult& result, v1::IncrResponse* out) {
  out->set_value(result.integer);
  out->set_version(result.version);
}
void EncodeResult(const OpResult& result, v1::SetRangeResponse* out) {
  out->set_length(static_cast<uint64_t>(result.integer));
  out->set_version(result.version);
}

void EncodeResult(const OpResult& result, v1::CollectionResponse* out) {
  static const TypedReply kEmpty;
  const TypedReply& r = result.typed != nullptr ? *result.typed : kEmpty;
  out->set_integer(r.integer);
  if (r.nil) out->set_nil(true);
  out->mutable_items()->Reserve(static_cast<int>(r.items.size()));
  for (const std::string& item : r.items) out->add_items(item);
  for (uint32_t at : r.absent) out->add_absent(at);
  for (int64_t i : r.integers) out->add_integers(i);
  out->set_version(r.version);
  if (result.possibly_stale) out->set_possibly_stale(true);
}

std::string* PipelineValueSlot(const Op& op, v1::OperationResult* out) {
  if (op.kind == OpKind::kGet) return out->mutable_get()->mutable_value();
  if (op.kind == OpKind::kSet && op.return_previous) return out->mutable_set()->mutable_previous();
  if (op.kind == OpKind::kTouch && op.return_value) return out->mutable_touch()->mutable_value();
  if (op.kind == OpKind::kDelete && op.return_previous) {
    return out->mutable_delete_()->mutable_previous();
  }
  if (op.kind == OpKind::kIncr && op.by_float) return out->mutable_incr()->mutable_float_value();
  return nullptr;
}

namespace {

template <typename Request>
void EncodeWriteConcern(const Op& op, Request* out) {
  out->set_write_concern(op.write_concern);
  out->set_write_concern_timeout_ms(op.write_concern_timeout_ms);
}

v1::ExpireCondition ToWireCondition(Op::ExpireIf condition) {
  switch (condition) {
    case Op::ExpireIf::kAlways:
      return v1::EXPIRE_CONDITION_ALWAYS;
    case Op::ExpireIf::kNone:
      return v1::EXPIRE_CONDITION_IF_NONE;
    case Op::ExpireIf::kSome:
      return v1::EXPIRE_CONDITION_IF_SOME;
    case Op::ExpireIf::kLater:
      return v1::EXPIRE_CONDITION_IF_LATER;
    case Op::ExpireIf::kEarlier:
      return v1::EXPIRE_CONDITION_IF_EARLIER;
    case Op::ExpireIf::kSomeAndEarlier:
      return v1::EXPIRE_CONDITION_IF_SOME_AND_EARLIER;
  }
  return v1::EXPIRE_CONDITION_ALWAYS;
}

v1::ReadPreference ToWirePreference(bool any_owner) {
  return any_owner ? v1::READ_PREFERENCE_ANY_OWNER : v1::READ_PREFERENCE_PRIMARY;
}

}  // namespace

void EncodeOp(const Op& op, uint64_t id, v1::Operation* out) {
  out->set_id(id);
  switch (op.kind) {
    case OpKind::kGet: {
      v1::GetRequest* get = out->mutable_get();
      get->set_key(op.key.bytes().data(), op.key.bytes().size());
      get->set_read_preference(ToWirePreference(op.any_owner));
      return;
    }
    case OpKind::kTtl: {
      v1::TtlRequest* ttl = out->mutable_ttl();
      ttl->set_key(op.key.bytes().data(), op.key.bytes().size());
      ttl->set_read_preference(ToWirePreference(op.any_owner));
      return;
    }
    case OpKind::kSet: {
      v1::SetRequest* set = out->mutable_set();
      set->set_key(op.key.bytes().data(), op.key.bytes().size());
      set->set_value(op.value.data(), op.value.size());
      set->set_ttl_ms(op.set.ttl_ms);
      set->set_mode(proto::ToProto(op.set.mode));
      set->set_expected_version(op.set.expected_version);
      if (op.keep_ttl) set->set_keep_ttl(true);
      if (op.return_previous) set->set_return_previous(true);
      if (op.expires_at_ms != 0) set->set_expires_at_ms(op.expires_at_ms);
      EncodeWriteConcern(op, set);
      return;
    }
    case OpKind::kDelete: {
      v1::DeleteRequest* del = out->mutable_delete_();
      del->set_key(op.key.bytes().data(), op.key.bytes().size());
      if (op.return_previous) del->set_return_previous(true);
      EncodeWriteConcern(op, del);
      return;
    }
    case OpKind::kTouch: {
      v1::TouchRequest* touch = out->mutable_touch();
      touch->set_key(op.key.bytes().data(), op.key.bytes().size());
      touch->set_ttl_ms(op.ttl_ms);
      if (op.expires_at_ms != 0) touch->set_expires_at_ms(op.expires_at_ms);
      touch->set_condition(ToWireCondition(op.expire_if));
      if (op.return_value) touch->set_return_value(true);
      EncodeWriteConcern(op, touch);
      return;
    }
    case OpKind::kSetRange: {
      v1::SetRangeRequest* range = out->mutable_set_range();
      range->set_key(op.key.bytes().data(), op.key.bytes().size());
      range->set_value(op.value.data(), op.value.size());
      range->set_offset(op.offset);
      if (op.append) range->set_append(true);
      EncodeWriteConcern(op, range);
      return;
    }
    case OpKind::kIncr: {
      v1::IncrRequest* incr = out->mutable_incr();
      incr->set_key(op.key.bytes().data(), op.key.bytes().size());
      incr->set_delta(op.delta);
      if (op.by_float) incr->set_by_float(op.value.data(), op.value.size());
      incr->set_ttl_ms_if_created(op.ttl_ms);
      EncodeWriteConcern(op, incr);
      return;
    }
    case OpKind::kTypedRead:
    case OpKind::kTypedWrite: {
      v1::CollectionRequest* c = out->mutable_collection();
      c->set_key(op.key.bytes().data(), op.key.bytes().size());
      c->set_command(static_cast<v1::CollectionCommand>(op.typed));
      c->mutable_args()->Reserve(static_cast<int>(op.args.size()));
      for (std::string_view arg : op.args) c->add_args(arg.data(), arg.size());
      c->set_n(op.n);
      c->set_stop(op.stop);
      if (op.flag) c->set_flag(true);
      c->set_count(op.count);
      if (op.option) c->set_option(true);
      c->set_if_version(op.if_version);
      c->set_read_preference(ToWirePreference(op.any_owner));
      EncodeWriteConcern(op, c);
      return;
    }
  }
}

void DecodeResult(const Op& op, v1::OperationResult* in, OpResult* out) {
  if (in->has_status() && in->status().code() != 0) {
    out->status = Status(static_cast<StatusCode>(in->status().code()), in->status().message());
    return;
  }
  switch (in->result_case()) {
    case v1::OperationResult::kGet: {
      v1::GetResponse* get = in->mutable_get();
      if (out->value != nullptr) out->value->swap(*get->mutable_value());
      out->version = get->version();
      out->expires_at_ms = get->expires_at_ms();
      out->possibly_stale = get->possibly_stale();
      break;
    }
    case v1::OperationResult::kSet: {
      v1::SetResponse* set = in->mutable_set();
      out->version = set->version();
      out->replicas_acked = set->replicas_acked();
      out->had_previous = set->had_previous();
      if (out->value != nullptr) out->value->swap(*set->mutable_previous());
      break;
    }
    case v1::OperationResult::kDelete: {
      v1::DeleteResponse* del = in->mutable_delete_();
      out->replicas_acked = del->replicas_acked();
      out->had_previous = del->had_previous();
      if (out->value != nullptr) out->value->swap(*del->mutable_previous());
      break;
    }
    case v1::OperationResult::kTouch: {
      v1::TouchResponse* touch = in->mutable_touch();
      out->replicas_acked = touch->replicas_acked();
      out->integer = touch->changed() ? 1 : 0;
      if (out->value != nullptr) out->value->swap(*touch->mutable_value());
      break;
    }
    case v1::OperationResult::kTtl:
      out->integer = static_cast<int64_t>(in->ttl().ttl_ms());
      out->possibly_stale = in->ttl().possibly_stale();
      // A type this node does not know (a newer owner's) reads as a string.
      if (const auto t = static_cast<uint32_t>(in->ttl().type()); t <= kMaxValueType) {
        out->value_type = static_cast<ValueType>(t);
      }
      break;
    case v1::OperationResult::kSetRange:
      out->integer = static_cast<int64_t>(in->set_range().length());
      out->version = in->set_range().version();
      out->replicas_acked = in->set_range().replicas_acked();
      break;
    case v1::OperationResult::kIncr:
      out->integer = in->incr().value();
      out->version = in->incr().version();
      out->replicas_acked = in->incr().replicas_acked();
      if (out->value != nullptr) out->value->swap(*in->mutable_incr()->mutable_float_value());
      break;
    case v1::OperationResult::kCollection: {
      v1::CollectionResponse* c = in->mutable_collection();
      out->typed = std::make_unique<TypedReply>();
      TypedReply& r = *out->typed;
      r.integer = c->integer();
      r.nil = c->nil();
      r.items.clear();
      r.items.reserve(static_cast<size_t>(c->items_size()));
      for (std::string& item : *c->mutable_items()) r.items.push_back(std::move(item));
      r.absent.assign(c->absent().begin(), c->absent().end());
      r.integers.assign(c->integers().begin(), c->integers().end());
      r.version = c->version();
      out->version = c->version();
      out->replicas_acked = c->replicas_acked();
      out->possibly_stale = c->possibly_stale();
      break;
    }
    case v1::OperationResult::RESULT_NOT_SET:
    default:
      out->status = Status::Internal("the owner answered " + std::string(NameOf(op.kind)) +
                                     " with neither a status nor a result");
      return;
  }
  if (in->result_case() != ExpectedResult(op.kind)) {
    out->status = Status::Internal("the owner answered " + std::string(NameOf(op.kind)) +
                                   " with another operation's result");
  }
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
      bytes += out->set().previous().size();
      break;
    case OpKind::kDelete:
      EncodeResult(result, out->mutable_delete_());
      bytes += out->delete_().previous().size();
      break;
    case OpKind::kTouch:
      EncodeResult(result, out->mutable_touch());
      bytes += out->touch().value().size();
      break;
    case OpKind::kTtl:
      EncodeResult(result, out->mutable_ttl());
      break;
    case OpKind::kSetRange:
      EncodeResult(result, out->mutable_set_range());
      break;
    case OpKind::kIncr:
      EncodeResult(result, out->mutable_incr());
      break;
    case OpKind::kTypedRead:
    case OpKind::kTypedWrite:
      EncodeResult(result, out->mutable_collection());
      if (result.typed != nullptr) bytes += result.typed->ApproxBytes();
      break;
  }
  return bytes;
}

}  // namespace ringcache::internal

// Client's single-key calls: one rpc to the key's owner (or any owner, for reads that
// allow it), retried as client_impl.h says.
#include "client_impl.h"

namespace ringcache::client {
namespace {

v1::SetRequest SetRequestOf(std::string_view key, std::string_view value, const SetOptions& options,
                            const SetExtras& extras, const CallOptions& call) {
  v1::SetRequest request;
  FillSet(&request, key, value, options);
  request.set_keep_ttl(extras.keep_ttl);
  request.set_expires_at_ms(extras.expires_at_ms);
  SetWriteConcern(&request, call);
  return request;
}

v1::SetRangeRequest RangeRequestOf(std::string_view key, std::string_view bytes, uint64_t offset,
                                   bool append, const CallOptions& call) {
  v1::SetRangeRequest request;
  request.set_key(key.data(), key.size());
  request.set_value(bytes.data(), bytes.size());
  request.set_offset(offset);
  request.set_append(append);
  SetWriteConcern(&request, call);
  return request;
}

v1::DeleteRequest DeleteRequestOf(std::string_view key, bool return_previous,
                                  const CallOptions& call) {
  v1::DeleteRequest request;
  request.set_key(key.data(), key.size());
  request.set_return_previous(return_previous);
  SetWriteConcern(&request, call);
  return request;
}

RangeResult RangeOf(const v1::SetRangeResponse& response) {
  return RangeResult{response.length(), response.version(), response.replicas_acked()};
}

}  // namespace

Result<Item> Client::Get(std::string_view key, const CallOptions& call) {
  v1::GetRequest request;
  request.set_key(key.data(), key.size());
  request.set_read_preference(ToProto(call.read_preference));
  v1::GetResponse response;
  Status s = impl_->CallKey(key, call.read_preference, RetryPolicy::kAlways, call, &response,
                            [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                                v1::GetResponse* out) { return stub.Get(context, request, out); });
  if (!s.ok()) return s;
  return Item{.value = std::move(*response.mutable_value()),
              .meta = ItemMeta{response.version(), response.expires_at_ms()}};
}

Result<WriteResult> Client::Set(std::string_view key, std::string_view value,
                                const SetOptions& options, const CallOptions& call) {
  return Set(key, value, options, SetExtras{}, call);
}

Result<WriteResult> Client::Delete(std::string_view key, const CallOptions& call) {
  const v1::DeleteRequest request = DeleteRequestOf(key, false, call);
  v1::DeleteResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::Delete);
      !s.ok()) {
    return s;
  }
  return WriteResult{0, response.replicas_acked()};
}

Result<WriteResult> Client::Touch(std::string_view key, uint64_t ttl_ms, const CallOptions& call) {
  Result<TouchResult> r = TouchIf(key, {.ttl_ms = ttl_ms}, call);
  if (!r.ok()) return r.status();
  return WriteResult{0, r->replicas_acked};
}

Result<uint64_t> Client::Ttl(std::string_view key, const CallOptions& call) {
  v1::TtlRequest request;
  request.set_key(key.data(), key.size());
  request.set_read_preference(ToProto(call.read_preference));
  v1::TtlResponse response;
  Status s = impl_->CallKey(key, call.read_preference, RetryPolicy::kAlways, call, &response,
                            [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                                v1::TtlResponse* out) { return stub.Ttl(context, request, out); });
  if (!s.ok()) return s;
  return response.ttl_ms();
}

Result<IncrResult> Client::Incr(std::string_view key, int64_t delta, uint64_t ttl_ms_if_created,
                                const CallOptions& call) {
  v1::IncrRequest request;
  request.set_key(key.data(), key.size());
  request.set_delta(delta);
  request.set_ttl_ms_if_created(ttl_ms_if_created);
  SetWriteConcern(&request, call);
  v1::IncrResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::Incr);
      !s.ok()) {
    return s;
  }
  return IncrResult{response.value(), response.version(), response.replicas_acked()};
}

Result<WriteResult> Client::Set(std::string_view key, std::string_view value,
                                const SetOptions& options, const SetExtras& extras,
                                const CallOptions& call) {
  const v1::SetRequest request = SetRequestOf(key, value, options, extras, call);
  v1::SetResponse response;
  if (Status s = impl_->CallWrite(key, PolicyOf(options.mode), call, request, &response,
                                  &v1::Cache::Stub::Set);
      !s.ok()) {
    return s;
  }
  return WriteResult{response.version(), response.replicas_acked()};
}

Result<Previous> Client::SetGet(std::string_view key, std::string_view value,
                                const SetOptions& options, const SetExtras& extras,
                                const CallOptions& call) {
  v1::SetRequest request = SetRequestOf(key, value, options, extras, call);
  request.set_return_previous(true);
  v1::SetResponse response;
  // Not repeated once it may have run: the repeat would answer this write's value.
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::Set);
      !s.ok()) {
    return s;
  }
  Previous out{.write = {response.version(), response.replicas_acked()}, .value = std::nullopt};
  if (response.had_previous()) out.value = std::move(*response.mutable_previous());
  return out;
}

Result<Previous> Client::GetDelete(std::string_view key, const CallOptions& call) {
  const v1::DeleteRequest request = DeleteRequestOf(key, true, call);
  v1::DeleteResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::Delete);
      !s.ok()) {
    return s;
  }
  Previous out{.write = {0, response.replicas_acked()}, .value = std::nullopt};
  if (response.had_previous()) out.value = std::move(*response.mutable_previous());
  return out;
}

Result<WriteResult> Client::TouchAt(std::string_view key, int64_t expires_at_ms,
                                    const CallOptions& call) {
  Result<TouchResult> r = TouchIf(key, {.expires_at_ms = expires_at_ms}, call);
  if (!r.ok()) return r.status();
  return WriteResult{0, r->replicas_acked};
}

Result<TouchResult> Client::TouchIf(std::string_view key, const TouchOptions& options,
                                    const CallOptions& call) {
  static constexpr v1::ExpireCondition kConditions[] = {
      v1::EXPIRE_CONDITION_ALWAYS,     v1::EXPIRE_CONDITION_IF_NONE,
      v1::EXPIRE_CONDITION_IF_SOME,    v1::EXPIRE_CONDITION_IF_LATER,
      v1::EXPIRE_CONDITION_IF_EARLIER, v1::EXPIRE_CONDITION_IF_SOME_AND_EARLIER};
  v1::TouchRequest request;
  request.set_key(key.data(), key.size());
  request.set_ttl_ms(options.ttl_ms);
  request.set_expires_at_ms(options.expires_at_ms);
  request.set_condition(kConditions[static_cast<size_t>(options.condition)]);
  SetWriteConcern(&request, call);
  v1::TouchResponse response;
  // With a condition, a repeat may answer changed = false for the change the first try
  // made (GT, LT, NX); without one, repeating it changes nothing.
  const RetryPolicy policy = options.condition == ExpireCondition::kAlways
                                 ? RetryPolicy::kAlways
                                 : RetryPolicy::kIfNotApplied;
  if (Status s = impl_->CallWrite(key, policy, call, request, &response, &v1::Cache::Stub::Touch);
      !s.ok()) {
    return s;
  }
  return TouchResult{response.changed(), response.replicas_acked()};
}

Result<std::string> Client::GetTouch(std::string_view key, uint64_t ttl_ms,
                                     const CallOptions& call) {
  v1::TouchRequest request;
  request.set_key(key.data(), key.size());
  request.set_ttl_ms(ttl_ms);
  request.set_return_value(true);
  SetWriteConcern(&request, call);
  v1::TouchResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kAlways, call, request, &response,
                                  &v1::Cache::Stub::Touch);
      !s.ok()) {
    return s;
  }
  return std::move(*response.mutable_value());
}

Result<FloatResult> Client::IncrByFloat(std::string_view key, std::string_view delta,
                                        const CallOptions& call) {
  if (delta.empty()) return Status::InvalidArgument("IncrByFloat: the delta is empty");
  v1::IncrRequest request;
  request.set_key(key.data(), key.size());
  request.set_by_float(delta.data(), delta.size());
  SetWriteConcern(&request, call);
  v1::IncrResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::Incr);
      !s.ok()) {
    return s;
  }
  return FloatResult{std::move(*response.mutable_float_value()), response.version(),
                     response.replicas_acked()};
}

Result<RangeResult> Client::SetRange(std::string_view key, uint64_t offset, std::string_view bytes,
                                     const CallOptions& call) {
  const v1::SetRangeRequest request = RangeRequestOf(key, bytes, offset, false, call);
  v1::SetRangeResponse response;
  // The same bytes at the same place: repeating it changes nothing.
  if (Status s = impl_->CallWrite(key, RetryPolicy::kAlways, call, request, &response,
                                  &v1::Cache::Stub::SetRange);
      !s.ok()) {
    return s;
  }
  return RangeOf(response);
}

Result<RangeResult> Client::Append(std::string_view key, std::string_view bytes,
                                   const CallOptions& call) {
  const v1::SetRangeRequest request = RangeRequestOf(key, bytes, 0, true, call);
  v1::SetRangeResponse response;
  if (Status s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                                  &v1::Cache::Stub::SetRange);
      !s.ok()) {
    return s;
  }
  return RangeOf(response);
}

}  // namespace ringcache::client

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
  internal::NearCache* near = impl_->near.get();
  uint64_t fill = 0;
  if (near != nullptr && near->Covers(key)) {
    if (std::optional<Item> hit = near->Lookup(key)) return std::move(*hit);
    // Only a read of the primary fills (a replica may lag behind an event already
    // received). Placed before the read: a change after it drops the fill.
    if (call.read_preference == ReadPreference::kPrimary) fill = near->BeginFill(key);
  }
  v1::GetRequest request;
  request.set_key(key.data(), key.size());
  request.set_read_preference(ToProto(call.read_preference));
  v1::GetResponse response;
  Status s = impl_->CallKey(key, call.read_preference, RetryPolicy::kAlways, call, &response,
                            [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                                v1::GetResponse* out) { return stub.Get(context, request, out); });
  if (!s.ok()) return s;
  Item item{.value = std::move(*response.mutable_value()),
            .meta = ItemMeta{response.version(), response.expires_at_ms()}};
  // A fenced primary's answer may be stale (--fenced-reads): not kept.
  if (fill != 0 && !response.possibly_stale()) near->CompleteFill(key, fill, item);
  return item;
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

Result<CollectionResult> Client::Collection(std::string_view key, const TypedOp& op,
                                            const CallOptions& call) {
  // Checked here too, so that a malformed call costs no round trip.
  if (Status s = CheckTypedOp(op); !s.ok()) return s;
  const TypedCommandInfo& info = InfoOf(op.command);
  v1::CollectionRequest request;
  request.set_key(key.data(), key.size());
  request.set_command(static_cast<v1::CollectionCommand>(op.command));
  request.mutable_args()->Reserve(static_cast<int>(op.args.size()));
  for (std::string_view arg : op.args) request.add_args(arg.data(), arg.size());
  request.set_n(op.n);
  request.set_stop(op.stop);
  request.set_flag(op.flag);
  request.set_count(op.count);
  request.set_option(op.option);
  request.set_if_version(op.if_version);
  v1::CollectionResponse response;
  Status s;
  if (info.write) {
    SetWriteConcern(&request, call);
    s = impl_->CallWrite(key, RetryPolicy::kIfNotApplied, call, request, &response,
                         &v1::Cache::Stub::Collection);
  } else {
    request.set_read_preference(ToProto(call.read_preference));
    s = impl_->CallKey(
        key, call.read_preference, RetryPolicy::kAlways, call, &response,
        [&](v1::Cache::Stub& stub, grpc::ClientContext* context, v1::CollectionResponse* out) {
          return stub.Collection(context, request, out);
        });
  }
  if (!s.ok()) return s;
  CollectionResult out;
  out.integer = response.integer();
  out.nil = response.nil();
  out.items.reserve(static_cast<size_t>(response.items_size()));
  for (std::string& item : *response.mutable_items()) out.items.push_back(std::move(item));
  out.absent.assign(response.absent().begin(), response.absent().end());
  out.integers.assign(response.integers().begin(), response.integers().end());
  out.version = response.version();
  out.replicas_acked = response.replicas_acked();
  return out;
}

namespace {

Result<int64_t> IntegerOf(Result<CollectionResult> r) {
  if (!r.ok()) return r.status();
  return r->integer;
}

Result<std::vector<std::string>> ItemsOf(Result<CollectionResult> r) {
  if (!r.ok()) return r.status();
  return std::move(r->items);
}

}  // namespace

Result<int64_t> Client::HashSet(std::string_view key, std::span<const FieldValue> fields,
                                const CallOptions& call) {
  std::vector<std::string_view> args;
  args.reserve(fields.size() * 2);
  for (const auto& [field, value] : fields) {
    args.push_back(field);
    args.push_back(value);
  }
  return IntegerOf(Collection(key, {.command = TypedCommand::kHSet, .args = args}, call));
}

Result<std::optional<std::string>> Client::HashGet(std::string_view key, std::string_view field,
                                                   const CallOptions& call) {
  Result<CollectionResult> r =
      Collection(key, {.command = TypedCommand::kHGet, .args = {&field, 1}}, call);
  if (!r.ok()) return r.status();
  if (r->nil || r->items.empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r->items[0]));
}

Result<std::vector<std::pair<std::string, std::string>>> Client::HashGetAll(
    std::string_view key, const CallOptions& call) {
  Result<CollectionResult> r = Collection(key, {.command = TypedCommand::kHGetAll}, call);
  if (!r.ok()) return r.status();
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(r->items.size() / 2);
  for (size_t i = 0; i + 1 < r->items.size(); i += 2) {
    out.emplace_back(std::move(r->items[i]), std::move(r->items[i + 1]));
  }
  return out;
}

Result<int64_t> Client::ListPush(std::string_view key, ListEnd end,
                                 std::span<const std::string_view> elements,
                                 const CallOptions& call) {
  const TypedCommand command = end == ListEnd::kLeft ? TypedCommand::kLPush : TypedCommand::kRPush;
  return IntegerOf(Collection(key, {.command = command, .args = elements}, call));
}

Result<std::vector<std::string>> Client::ListPop(std::string_view key, ListEnd end, uint64_t count,
                                                 const CallOptions& call) {
  const TypedCommand command = end == ListEnd::kLeft ? TypedCommand::kLPop : TypedCommand::kRPop;
  const auto n = static_cast<int64_t>(std::min<uint64_t>(count, INT64_MAX));
  return ItemsOf(Collection(key, {.command = command, .n = n, .flag = true}, call));
}

Result<std::vector<std::string>> Client::ListRange(std::string_view key, int64_t start,
                                                   int64_t stop, const CallOptions& call) {
  return ItemsOf(
      Collection(key, {.command = TypedCommand::kLRange, .n = start, .stop = stop}, call));
}

Result<int64_t> Client::SetAdd(std::string_view key, std::span<const std::string_view> members,
                               const CallOptions& call) {
  return IntegerOf(Collection(key, {.command = TypedCommand::kSAdd, .args = members}, call));
}

Result<int64_t> Client::SetRemove(std::string_view key, std::span<const std::string_view> members,
                                  const CallOptions& call) {
  return IntegerOf(Collection(key, {.command = TypedCommand::kSRem, .args = members}, call));
}

Result<bool> Client::SetIsMember(std::string_view key, std::string_view member,
                                 const CallOptions& call) {
  Result<int64_t> n =
      IntegerOf(Collection(key, {.command = TypedCommand::kSIsMember, .args = {&member, 1}}, call));
  if (!n.ok()) return n.status();
  return *n != 0;
}

Result<std::vector<std::string>> Client::SetMembers(std::string_view key, const CallOptions& call) {
  return ItemsOf(Collection(key, {.command = TypedCommand::kSMembers}, call));
}

}  // namespace ringcache::client

// Client's single-key calls: one rpc to the key's owner (or any owner, for reads that
// allow it), retried as client_impl.h says.
#include "client_impl.h"

namespace ringcache::client {

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
  v1::SetRequest request;
  FillSet(&request, key, value, options);
  SetWriteConcern(&request, call);
  v1::SetResponse response;
  Status s = impl_->CallKey(key, ReadPreference::kPrimary, PolicyOf(options.mode), call, &response,
                            [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                                v1::SetResponse* out) { return stub.Set(context, request, out); });
  if (!s.ok()) return s;
  return WriteResult{response.version(), response.replicas_acked()};
}

Result<WriteResult> Client::Delete(std::string_view key, const CallOptions& call) {
  v1::DeleteRequest request;
  request.set_key(key.data(), key.size());
  SetWriteConcern(&request, call);
  v1::DeleteResponse response;
  Status s =
      impl_->CallKey(key, ReadPreference::kPrimary, RetryPolicy::kIfNotApplied, call, &response,
                     [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                         v1::DeleteResponse* out) { return stub.Delete(context, request, out); });
  if (!s.ok()) return s;
  return WriteResult{0, response.replicas_acked()};
}

Result<WriteResult> Client::Touch(std::string_view key, uint64_t ttl_ms, const CallOptions& call) {
  v1::TouchRequest request;
  request.set_key(key.data(), key.size());
  request.set_ttl_ms(ttl_ms);
  SetWriteConcern(&request, call);
  v1::TouchResponse response;
  Status s =
      impl_->CallKey(key, ReadPreference::kPrimary, RetryPolicy::kAlways, call, &response,
                     [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                         v1::TouchResponse* out) { return stub.Touch(context, request, out); });
  if (!s.ok()) return s;
  return WriteResult{0, response.replicas_acked()};
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
  Status s =
      impl_->CallKey(key, ReadPreference::kPrimary, RetryPolicy::kIfNotApplied, call, &response,
                     [&](v1::Cache::Stub& stub, grpc::ClientContext* context,
                         v1::IncrResponse* out) { return stub.Incr(context, request, out); });
  if (!s.ok()) return s;
  return IncrResult{response.value(), response.version(), response.replicas_acked()};
}

}  // namespace ringcache::client

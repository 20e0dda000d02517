#include "cache_service.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringcache::internal {
namespace {

// Rough wire size of a result without its value bytes: id, status, version, expiry, tags.
constexpr size_t kResultOverheadBytes = 32;

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

Status UnknownSetMode(v1::SetMode mode) {
  return Status::InvalidArgument("unknown set mode " + std::to_string(static_cast<int>(mode)));
}

// Fills `options` from a SetRequest; INVALID_ARGUMENT for an unknown mode.
Status ToSetOptions(const v1::SetRequest& request, SetOptions* options) {
  if (!ToSetMode(request.mode(), &options->mode)) return UnknownSetMode(request.mode());
  options->ttl_ms = request.ttl_ms();
  options->expected_version = request.expected_version();
  return Status::Ok();
}

// Writes a non-OK status into an OpStatus; an OK status leaves it absent (code 0).
void SetOpStatus(const Status& status, v1::OpStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(status.message());
}

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(status.code()), status.message()};
}

grpc::Status CacheService::Get(const v1::GetRequest& request, v1::GetResponse* response) {
  ItemMeta meta;
  Status status = node_->Get(request.key(), response->mutable_value(), &meta);
  if (!status.ok()) return ToGrpcStatus(status);
  response->set_version(meta.version);
  response->set_expires_at_ms(meta.deadline_ms);
  return grpc::Status::OK;
}

grpc::Status CacheService::Set(const v1::SetRequest& request, v1::SetResponse* response) {
  SetOptions options;
  if (Status s = ToSetOptions(request, &options); !s.ok()) return ToGrpcStatus(s);
  Result<uint64_t> version = node_->Set(request.key(), request.value(), options);
  if (!version.ok()) return ToGrpcStatus(version.status());
  response->set_version(*version);
  return grpc::Status::OK;
}

grpc::Status CacheService::Delete(const v1::DeleteRequest& request, v1::DeleteResponse*) {
  return ToGrpcStatus(node_->Delete(request.key()));
}

grpc::Status CacheService::Touch(const v1::TouchRequest& request, v1::TouchResponse*) {
  return ToGrpcStatus(node_->Touch(request.key(), request.ttl_ms()));
}

grpc::Status CacheService::Ttl(const v1::TtlRequest& request, v1::TtlResponse* response) {
  Result<uint64_t> ttl = node_->Ttl(request.key());
  if (!ttl.ok()) return ToGrpcStatus(ttl.status());
  response->set_ttl_ms(*ttl);
  return grpc::Status::OK;
}

grpc::Status CacheService::Incr(const v1::IncrRequest& request, v1::IncrResponse* response) {
  Result<IncrResult> incr =
      node_->Incr(request.key(), request.delta(), request.ttl_ms_if_created());
  if (!incr.ok()) return ToGrpcStatus(incr.status());
  response->set_value(incr->value);
  response->set_version(incr->version);
  return grpc::Status::OK;
}

grpc::Status CacheService::MultiGet(const v1::MultiGetRequest& request,
                                    v1::MultiGetResponse* response) {
  std::vector<std::string_view> keys(request.keys().begin(), request.keys().end());
  Result<std::vector<Result<Item>>> items = node_->MultiGet(keys);
  if (!items.ok()) return ToGrpcStatus(items.status());
  response->mutable_results()->Reserve(static_cast<int>(items->size()));
  for (Result<Item>& item : *items) {
    v1::GetResult* out = response->add_results();
    if (!item.ok()) {
      SetOpStatus(item.status(), out->mutable_status());
      continue;
    }
    out->set_value(std::move(item->value));
    out->set_version(item->meta.version);
    out->set_expires_at_ms(item->meta.deadline_ms);
  }
  return grpc::Status::OK;
}

grpc::Status CacheService::MultiSet(const v1::MultiSetRequest& request,
                                    v1::MultiSetResponse* response) {
  if (Status s = node_->CheckBatchSize("MultiSet", request.items_size()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  // Items with an unknown mode (a wire-level problem) are answered here; the rest go to
  // the node in one batch.
  std::vector<SetItem> items;
  std::vector<int> item_index;  // items[i] is request.items(item_index[i]).
  items.reserve(request.items_size());
  item_index.reserve(request.items_size());
  response->mutable_results()->Reserve(request.items_size());
  for (int i = 0; i < request.items_size(); ++i) {
    const v1::SetRequest& in = request.items(i);
    v1::SetResult* out = response->add_results();
    SetItem item{.key = in.key(), .value = in.value(), .options = {}};
    if (Status s = ToSetOptions(in, &item.options); !s.ok()) {
      SetOpStatus(s, out->mutable_status());
      continue;
    }
    items.push_back(item);
    item_index.push_back(i);
  }
  Result<std::vector<Result<uint64_t>>> versions = node_->MultiSet(items);
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  for (size_t i = 0; i < versions->size(); ++i) {
    const Result<uint64_t>& version = (*versions)[i];
    v1::SetResult* out = response->mutable_results(item_index[i]);
    if (version.ok()) {
      out->set_version(*version);
    } else {
      SetOpStatus(version.status(), out->mutable_status());
    }
  }
  return grpc::Status::OK;
}

grpc::Status CacheService::MultiDelete(const v1::MultiDeleteRequest& request,
                                       v1::MultiDeleteResponse* response) {
  std::vector<std::string_view> keys(request.keys().begin(), request.keys().end());
  Result<std::vector<Status>> statuses = node_->MultiDelete(keys);
  if (!statuses.ok()) return ToGrpcStatus(statuses.status());
  response->mutable_results()->Reserve(static_cast<int>(statuses->size()));
  for (const Status& status : *statuses) {
    v1::OpStatus* out = response->add_results();
    if (!status.ok()) SetOpStatus(status, out);
  }
  return grpc::Status::OK;
}

grpc::Status CacheService::Stats(const v1::StatsRequest&, v1::StatsResponse* response) {
  NodeStats stats = node_->Stats();
  response->set_node_id(std::move(stats.node_id));
  response->set_server_version(std::move(stats.version));
  response->set_uptime_ms(stats.uptime_ms);
  response->set_hits(stats.cache.hits);
  response->set_misses(stats.cache.misses);
  response->set_sets(stats.cache.sets);
  response->set_deletes(stats.cache.deletes);
  response->set_evictions(stats.cache.evictions);
  response->set_expirations(stats.cache.expirations);
  response->set_items(stats.cache.items);
  response->set_bytes_used(stats.cache.bytes_used);
  response->set_capacity_bytes(stats.cache.capacity_bytes);
  return grpc::Status::OK;
}

grpc::Status CacheService::CheckPipelineMessage(int op_count) const {
  return ToGrpcStatus(node_->CheckBatchSize("PipelineRequest", static_cast<size_t>(op_count)));
}

size_t CacheService::Execute(const v1::Operation& op, v1::OperationResult* result) {
  result->set_id(op.id());
  Status status;
  size_t bytes = kResultOverheadBytes;
  switch (op.op_case()) {
    case v1::Operation::kGet: {
      v1::GetResponse* out = result->mutable_get();
      ItemMeta meta;
      status = node_->Get(op.get().key(), out->mutable_value(), &meta);
      out->set_version(meta.version);
      out->set_expires_at_ms(meta.deadline_ms);
      bytes += out->value().size();
      break;
    }
    case v1::Operation::kSet: {
      SetOptions options;
      status = ToSetOptions(op.set(), &options);
      if (!status.ok()) break;
      Result<uint64_t> version = node_->Set(op.set().key(), op.set().value(), options);
      status = version.status();
      if (version.ok()) result->mutable_set()->set_version(*version);
      break;
    }
    case v1::Operation::kDelete:
      status = node_->Delete(op.delete_().key());
      if (status.ok()) result->mutable_delete_();
      break;
    case v1::Operation::kTouch:
      status = node_->Touch(op.touch().key(), op.touch().ttl_ms());
      if (status.ok()) result->mutable_touch();
      break;
    case v1::Operation::kTtl: {
      Result<uint64_t> ttl = node_->Ttl(op.ttl().key());
      status = ttl.status();
      if (ttl.ok()) result->mutable_ttl()->set_ttl_ms(*ttl);
      break;
    }
    case v1::Operation::kIncr: {
      const v1::IncrRequest& in = op.incr();
      Result<IncrResult> incr = node_->Incr(in.key(), in.delta(), in.ttl_ms_if_created());
      status = incr.status();
      if (incr.ok()) {
        result->mutable_incr()->set_value(incr->value);
        result->mutable_incr()->set_version(incr->version);
      }
      break;
    }
    case v1::Operation::OP_NOT_SET:
    default:
      status = Status::InvalidArgument("operation " + std::to_string(op.id()) +
                                       " has no get/set/delete/touch/ttl/incr set");
      break;
  }
  if (!status.ok()) {
    result->clear_result();
    SetOpStatus(status, result->mutable_status());
    bytes += status.message().size();
  }
  return bytes;
}

}  // namespace ringcache::internal

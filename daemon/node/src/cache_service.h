// CacheService: the ringcache.v1.Cache protocol as calls on a Node — proto in, node call,
// proto out, nothing else (no cache logic lives here). The callback server
// (callback_server.h) drives these handlers from gRPC's threads; another front end could
// reuse them.
//
// Thread safety: stateless apart from the Node pointer; every method may be called
// concurrently.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>

#include "ringcache/node/node.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

// ringcache::Status -> grpc::Status. The codes are numbered alike, so this is a cast.
grpc::Status ToGrpcStatus(const Status& status);

class CacheService final {
 public:
  explicit CacheService(Node* node) : node_(node) {}

  grpc::Status Get(const v1::GetRequest& request, v1::GetResponse* response);
  grpc::Status Set(const v1::SetRequest& request, v1::SetResponse* response);
  grpc::Status Delete(const v1::DeleteRequest& request, v1::DeleteResponse* response);
  grpc::Status Touch(const v1::TouchRequest& request, v1::TouchResponse* response);
  grpc::Status Ttl(const v1::TtlRequest& request, v1::TtlResponse* response);
  grpc::Status Incr(const v1::IncrRequest& request, v1::IncrResponse* response);
  grpc::Status MultiGet(const v1::MultiGetRequest& request, v1::MultiGetResponse* response);
  grpc::Status MultiSet(const v1::MultiSetRequest& request, v1::MultiSetResponse* response);
  grpc::Status MultiDelete(const v1::MultiDeleteRequest& request,
                           v1::MultiDeleteResponse* response);
  grpc::Status Stats(const v1::StatsRequest& request, v1::StatsResponse* response);

  // Pipeline, per message: OK or INVALID_ARGUMENT (naming max-batch) for `op_count`.
  grpc::Status CheckPipelineMessage(int op_count) const;
  // Pipeline, per operation: runs `op` and fills `result` (id, status, result field).
  // Returns an estimate of the bytes `result` adds to a response, for flow control.
  size_t Execute(const v1::Operation& op, v1::OperationResult* result);

 private:
  Node* const node_;  // Not owned.
};

}  // namespace ringcache::internal

// UnaryCall: one unary ringcache.v1.Cache call as a CacheService handler sees it — the
// parsed request, the response to fill, the call's context and ringcache-* metadata — and
// the two ways to end it. The callback server's UnaryReactor (callback_server.cc) is the
// implementation; the handler may end the call inline (a key served here) or later from
// another thread (a forwarded call, a write-concern wait).
//
// Thread safety: the handler owns the call until it calls Reply or ReplyRelayed, exactly
// once; after that the call may be deleted at any moment (even before Reply returns), so
// the caller must not touch it again.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include "request_metadata.h"

namespace ringcache::internal {

template <typename Request, typename Response>
class UnaryCall {
 public:
  const Request& request() const { return request_; }
  Response* response() { return &response_; }
  grpc::CallbackServerContext* context() const { return context_; }
  const RequestMetadata& metadata() const { return metadata_; }
  // The request as it arrived, for relaying it unchanged to another node.
  const grpc::ByteBuffer& raw_request() const { return *raw_request_; }

  // Ends the call with `status`; response() is sent if it is OK.
  virtual void Reply(grpc::Status status) = 0;
  // Ends the call with another node's answer: `status`, and if it is OK the serialized
  // response in `response_bytes` (taken over).
  virtual void ReplyRelayed(grpc::Status status, grpc::ByteBuffer* response_bytes) = 0;

 protected:
  UnaryCall(grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request)
      : context_(context), raw_request_(raw_request) {}
  ~UnaryCall() = default;

  grpc::CallbackServerContext* const context_;  // Not owned.
  const grpc::ByteBuffer* const raw_request_;   // Not owned; gRPC's, valid until OnDone.
  RequestMetadata metadata_;
  Request request_;
  Response response_;
};

}  // namespace ringcache::internal

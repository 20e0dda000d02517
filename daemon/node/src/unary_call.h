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

#include <google/protobuf/arena.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <cstddef>

#include "request_metadata.h"
#include "ringcache/proto/arena_message.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

// The first arena block of a call's messages, kept inside the call object: enough for a
// single-key call, or for a batch of 16 small items. Larger calls spill into blocks the
// arena allocates and frees with the call. The single-key size keeps the whole call object
// within the sizes glibc's malloc serves from its per-thread caches.
template <typename Request>
inline constexpr size_t kCallArenaBytes = 512;
template <>
inline constexpr size_t kCallArenaBytes<v1::MultiGetRequest> = 4096;
template <>
inline constexpr size_t kCallArenaBytes<v1::MultiSetRequest> = 4096;
template <>
inline constexpr size_t kCallArenaBytes<v1::MultiDeleteRequest> = 4096;
template <>
inline constexpr size_t kCallArenaBytes<v1::BatchRequest> = 4096;

template <typename Request, typename Response>
class UnaryCall {
 public:
  const Request& request() const { return *request_; }
  Response* response() { return response_; }
  grpc::CallbackServerContext* context() const { return context_; }
  const RequestMetadata& metadata() const { return metadata_; }
  // The request as it arrived, for relaying it unchanged to another node.
  const grpc::ByteBuffer& raw_request() const { return *raw_request_; }

  // Ends the call with `status`; response() is sent if it is OK.
  virtual void Reply(grpc::Status status) = 0;
  // Ends the call with another node's answer: `status`, and if it is OK the serialized
  // response in `response_bytes` (taken over).
  virtual void ReplyRelayed(grpc::Status status, grpc::ByteBuffer* response_bytes) = 0;
  // A call forwarded by a node one view ahead, which this node cannot serve on the view it
  // holds: true if the handler will run again once this node holds view `epoch` (or after
  // a bounded wait: ViewWaits) and must return now without replying; false if it already
  // waited once (then it answers as the view it holds says).
  virtual bool RetryOnView(uint64_t epoch) = 0;

 protected:
  UnaryCall(grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request)
      : context_(context),
        raw_request_(raw_request),
        arena_(FirstBlockArenaOptions(block_, sizeof(block_))),
        request_(google::protobuf::Arena::CreateMessage<Request>(&arena_)),
        response_(google::protobuf::Arena::CreateMessage<Response>(&arena_)) {}
  ~UnaryCall() = default;

  grpc::CallbackServerContext* const context_;  // Not owned.
  const grpc::ByteBuffer* const raw_request_;   // Not owned; gRPC's, valid until OnDone.
  RequestMetadata metadata_;

 private:
  // The messages' arena and its first block (kCallArenaBytes): a typical call parses and
  // answers without a heap allocation per field (keys and values longer than
  // std::string's inline capacity still allocate their characters).
  alignas(std::max_align_t) char block_[kCallArenaBytes<Request>];
  google::protobuf::Arena arena_;

 protected:
  Request* const request_;    // On arena_.
  Response* const response_;  // On arena_.
};

}  // namespace ringcache::internal

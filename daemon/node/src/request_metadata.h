// RequestMetadata: the ringcache-* request metadata a node acts on (proto/ringcache/v1/
// cache.proto and docs/design/routing.md), read from a call without allocating.
//
//   ringcache-local: 1           answer reads from this node's own cache (no routing);
//                                INVALID_ARGUMENT on writes
//   ringcache-forwarded-by: ID   the call was forwarded by node ID: never forward it again
//   ringcache-epoch: N           the caller's view epoch; a node with another epoch adds
//                                the trailing metadata ringcache-epoch: <its epoch>
//   ringcache-cluster-secret: S  the cluster plane's credential (cluster_auth.h); a
//                                forwarded call without it is refused
//   ringcache-role: R            on a forwarded call: the role the forwarder found for
//                                the client's token (client_auth.h)
//   authorization: Bearer T      the client's token (client_auth.h)
//
// Why not ServerContext::client_metadata(): it builds a std::multimap on first use, one
// heap node per entry, and every call carries at least the user-agent. On the local fast
// path (a Get served from this node's cache) that would be an allocation per call that the
// node did not make before routing existed. gRPC keeps the raw metadata array private, but
// every specialization of CallbackUnaryHandler is a friend of ServerContextBase; the
// specialization below, for a type only ringcache uses, exposes that array read-only. It
// depends on gRPC 1.51's private member name, so a gRPC upgrade that changes it fails to
// compile here rather than misbehaving.
//
// Thread safety: plain values; the string_view points into the call's metadata and is
// valid until the call's OnDone.
#pragma once

#include <grpc/grpc.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <string_view>

#include "operation.h"

namespace ringcache::internal {
struct RequestMetadataAccessTag;
}  // namespace ringcache::internal

namespace grpc::internal {
template <>
class CallbackUnaryHandler<ringcache::internal::RequestMetadataAccessTag,
                           ringcache::internal::RequestMetadataAccessTag> {
 public:
  static const grpc_metadata_array& ClientMetadata(grpc::ServerContextBase* ctx) {
    return *ctx->client_metadata_.arr();
  }
};
}  // namespace grpc::internal

namespace ringcache::internal {

struct RequestMetadata {
  static constexpr std::string_view kLocalKey = "ringcache-local";
  static constexpr std::string_view kForwardedByKey = "ringcache-forwarded-by";
  static constexpr std::string_view kEpochKey = "ringcache-epoch";
  static constexpr std::string_view kClusterSecretKey = "ringcache-cluster-secret";
  static constexpr std::string_view kRoleKey = "ringcache-role";
  static constexpr std::string_view kAuthorizationKey = "authorization";

  // The value of ringcache-cluster-secret; empty if the call had none.
  std::string_view cluster_secret;
  // The value of authorization; empty if the call had none.
  std::string_view authorization;
  // The value of ringcache-role; empty if the call had none.
  std::string_view role_claim;
  // What the call may do, once ServerEnv::Authorize has checked it (kNone before).
  Role role = Role::kNone;
  // ringcache-local was "1" or "true".
  bool local = false;
  // The forwarding node's id; empty if the call was not forwarded.
  std::string_view forwarded_by;
  // ringcache-epoch was present; `epoch` is its value (0 if it was not a decimal number,
  // which never matches a view's epoch).
  bool has_epoch = false;
  uint64_t epoch = 0;

  // True if the caller's epoch is known and differs from `node_epoch`.
  bool EpochDiffers(uint64_t node_epoch) const { return has_epoch && epoch != node_epoch; }

  // Reads the keys above from `ctx`'s client metadata (a few compares per entry).
  static RequestMetadata Read(grpc::ServerContextBase* ctx) {
    using Access =
        grpc::internal::CallbackUnaryHandler<RequestMetadataAccessTag, RequestMetadataAccessTag>;
    const grpc_metadata_array& array = Access::ClientMetadata(ctx);
    RequestMetadata md;
    for (size_t i = 0; i < array.count; ++i) {
      const grpc_metadata& entry = array.metadata[i];
      const std::string_view key = View(entry.key);
      if (key.size() < 10 || key.compare(0, 10, "ringcache-") != 0) {
        if (key == kAuthorizationKey) md.authorization = View(entry.value);
        continue;
      }
      const std::string_view value = View(entry.value);
      if (key == kLocalKey) {
        md.local = value == "1" || value == "true";
      } else if (key == kForwardedByKey) {
        md.forwarded_by = value;
      } else if (key == kEpochKey) {
        md.has_epoch = true;
        md.epoch = ParseEpoch(value);
      } else if (key == kClusterSecretKey) {
        md.cluster_secret = value;
      } else if (key == kRoleKey) {
        md.role_claim = value;
      }
    }
    return md;
  }

 private:
  static std::string_view View(const grpc_slice& slice) {
    return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)), GRPC_SLICE_LENGTH(slice)};
  }
  // The decimal value, or 0 if it is not one (or overflows).
  static uint64_t ParseEpoch(std::string_view text) {
    if (text.empty() || text.size() > 19) return 0;
    uint64_t value = 0;
    for (const char c : text) {
      if (c < '0' || c > '9') return 0;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
  }
};

}  // namespace ringcache::internal

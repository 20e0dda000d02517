#include "cluster_auth.h"

#include <utility>

#include "request_metadata.h"
#include "ringcache/proto/call_metadata.h"

namespace ringcache::internal {

Status ClusterAuth::ValidateSecret(std::string_view secret) {
  if (secret.empty()) return Status::Ok();
  if (secret.size() < kMinSecretBytes || secret.size() > kMaxSecretBytes) {
    return Status::InvalidArgument("the cluster secret must be " + std::to_string(kMinSecretBytes) +
                                   " to " + std::to_string(kMaxSecretBytes) + " bytes, got " +
                                   std::to_string(secret.size()));
  }
  for (const char c : secret) {
    if (c < 0x21 || c > 0x7e) {
      return Status::InvalidArgument(
          "the cluster secret must be printable ASCII without spaces (it travels as gRPC "
          "metadata)");
    }
  }
  return Status::Ok();
}

ClusterAuth::ClusterAuth(std::string secret, std::function<void(LogLevel, std::string_view)> log)
    : secret_(std::move(secret)), refusals_(std::move(log)) {}

grpc::Status ClusterAuth::Check(grpc::ServerContextBase* ctx, std::string_view what) const {
  if (open()) return grpc::Status::OK;
  return Check(RequestMetadata::Read(ctx).cluster_secret, ctx, what);
}

grpc::Status ClusterAuth::Check(std::string_view presented, grpc::ServerContextBase* ctx,
                                std::string_view what) const {
  if (open()) return grpc::Status::OK;
  if (SameSecret(presented, secret_)) return grpc::Status::OK;
  const bool missing = presented.empty();
  NoteRefusal(ctx, what, missing);
  return grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED,
      std::string(what) + " is for cluster members only: " +
          (missing ? "the call carries no cluster secret" : "the call's cluster secret is wrong") +
          " (--cluster-secret-file on every member)");
}

void ClusterAuth::NoteRefusal(grpc::ServerContextBase* ctx, std::string_view what,
                              bool missing) const {
  refusals_.Note([&] {
    return "refused " + std::string(what) + " from " + ctx->peer() + ": " +
           (missing ? "no cluster secret" : "wrong cluster secret");
  });
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ClusterAuth::ClientInterceptors() const {
  if (open()) return {};
  return proto::CallMetadata({{std::string(kMetadataKey), secret_}});
}

}  // namespace ringcache::internal

#include "cluster_auth.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>

#include <memory>
#include <utility>
#include <vector>

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

ClusterAuth::ClusterAuth(std::string secret, std::function<void(LogLevel, std::string_view)> log,
                         bool node_identity)
    : secret_(std::move(secret)), node_identity_(node_identity), refusals_(std::move(log)) {}

std::string ClusterAuth::CallerId(const grpc::ServerContextBase* ctx) {
  const std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return {};
  const std::vector<grpc::string_ref> cn = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (cn.size() != 1) return {};
  return std::string(cn[0].data(), cn[0].size());
}

grpc::Status ClusterAuth::CheckClaim(const grpc::ServerContextBase* ctx, std::string_view what,
                                     std::string_view field, std::string_view claimed) const {
  if (!node_identity_) return grpc::Status::OK;
  const std::string caller = CallerId(ctx);
  if (!caller.empty() && caller == claimed) return grpc::Status::OK;
  const std::string named = caller.empty() ? "no node id" : "node " + caller;
  refusals_.Note([&] {
    return "refused " + std::string(what) + " from " + ctx->peer() + ": its certificate names " +
           named + " but " + std::string(field) + " is " + std::string(claimed);
  });
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      std::string(what) + ": the caller's certificate names " + named + ", but " +
                          std::string(field) + " says " + std::string(claimed) +
                          " (with --tls-node-identity a member speaks only for itself)");
}

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

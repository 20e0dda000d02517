#include "cluster_auth.h"

#include <grpcpp/support/interceptor.h>

#include <chrono>
#include <utility>

#include "request_metadata.h"

namespace ringcache::internal {
namespace {

// Equal in time that depends only on the secret's length, not on where a guess first
// differs.
bool SameSecret(std::string_view presented, std::string_view secret) {
  unsigned char diff = presented.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(secret[i]));
  }
  return diff == 0;
}

class SecretInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit SecretInterceptor(const std::string* secret) : secret_(secret) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(std::string(ClusterAuth::kMetadataKey), *secret_);
    }
    methods->Proceed();
  }

 private:
  const std::string* const secret_;  // The factory's, which the channel keeps.
};

class SecretInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit SecretInterceptorFactory(std::string secret) : secret_(std::move(secret)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new SecretInterceptor(&secret_);
  }

 private:
  const std::string secret_;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

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
    : secret_(std::move(secret)), log_(std::move(log)) {}

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
  refusals_.fetch_add(1, std::memory_order_relaxed);
  if (!log_) return;
  const int64_t now = NowMs();
  int64_t last = last_log_ms_.load(std::memory_order_relaxed);
  if (last != 0 && now - last < 1000) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!last_log_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint64_t skipped = unlogged_.exchange(0, std::memory_order_relaxed);
  std::string line = "refused " + std::string(what) + " from " + ctx->peer() + ": " +
                     (missing ? "no cluster secret" : "wrong cluster secret");
  if (skipped > 0) {
    line += " (and " + std::to_string(skipped) + " more refusals since the last such line)";
  }
  log_(LogLevel::kWarn, line);
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ClusterAuth::ClientInterceptors() const {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  if (!open()) out.push_back(std::make_unique<SecretInterceptorFactory>(secret_));
  return out;
}

}  // namespace ringcache::internal

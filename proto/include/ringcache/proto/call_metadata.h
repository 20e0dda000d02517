// Metadata that every call of a channel carries, added by a client interceptor so that no
// call site can forget it: the cluster secret on a node's channels to its peers, a client
// token (`authorization: Bearer ...`) on ringcache-cli's and ringcache::client's.
//
//   auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
//       address, grpc::InsecureChannelCredentials(), args,
//       ringcache::proto::CallMetadata({{"authorization", "Bearer " + token}}));
//
// Thread safety: the factories and interceptors hold immutable copies.
#pragma once

#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/interceptor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ringcache::proto {

using MetadataList = std::vector<std::pair<std::string, std::string>>;

namespace detail {

class MetadataInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetadataInterceptor(const MetadataList* metadata) : metadata_(metadata) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      for (const auto& [key, value] : *metadata_) {
        methods->GetSendInitialMetadata()->emplace(key, value);
      }
    }
    methods->Proceed();
  }

 private:
  const MetadataList* const metadata_;  // The factory's, which the channel keeps.
};

class MetadataInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit MetadataInterceptorFactory(MetadataList metadata) : metadata_(std::move(metadata)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new MetadataInterceptor(&metadata_);
  }

 private:
  const MetadataList metadata_;
};

}  // namespace detail

// The interceptors for a channel whose calls all carry `metadata` (none if it is empty).
inline std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
CallMetadata(MetadataList metadata) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  if (!metadata.empty()) {
    out.push_back(std::make_unique<detail::MetadataInterceptorFactory>(std::move(metadata)));
  }
  return out;
}

}  // namespace ringcache::proto

#include "channel_pool.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "ringcache/proto/call_metadata.h"

namespace ringcache::client::internal {
namespace {

using ringcache::internal::MutexLock;

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const ChannelSecurity& security,
                                          bool own_connection = false) {
  grpc::ChannelArguments args;
  // Channels whose arguments differ never share a connection (gRPC keys its subchannels
  // by address and arguments).
  if (own_connection) args.SetInt("ringcache.own_connection", 1);
  // Values reach 8 MiB and MultiGet replies carry many: the 4 MiB default is too small.
  args.SetMaxReceiveMessageSize(-1);
  // gRPC's default reconnect backoff grows to 120 s; a restarted node should be usable
  // again within a couple of seconds (calls fail fast meanwhile and are retried).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  proto::MetadataList metadata;
  if (!security.token.empty()) metadata.emplace_back("authorization", "Bearer " + security.token);
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address,
      security.credentials != nullptr ? security.credentials : grpc::InsecureChannelCredentials(),
      args, proto::CallMetadata(std::move(metadata)));
}

}  // namespace

std::shared_ptr<v1::Cache::Stub> ChannelPool::Stub(const std::string& address) {
  MutexLock lock(&mu_);
  auto it = stubs_.find(address);
  if (it == stubs_.end()) {
    // Creating a channel does not connect (that happens on the first call), so doing it
    // under the lock is cheap.
    it = stubs_
             .emplace(address, std::shared_ptr<v1::Cache::Stub>(
                                   v1::Cache::NewStub(NewChannel(address, security_))))
             .first;
  }
  return it->second;
}

std::shared_ptr<v1::Cache::Stub> ChannelPool::OwnConnectionStub(const std::string& address) const {
  return std::shared_ptr<v1::Cache::Stub>(
      v1::Cache::NewStub(NewChannel(address, security_, /*own_connection=*/true)));
}

void ChannelPool::Retain(const std::vector<std::string>& keep) {
  MutexLock lock(&mu_);
  for (auto it = stubs_.begin(); it != stubs_.end();) {
    if (std::find(keep.begin(), keep.end(), it->first) == keep.end()) {
      it = stubs_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t ChannelPool::size() const {
  MutexLock lock(&mu_);
  return stubs_.size();
}

}  // namespace ringcache::client::internal

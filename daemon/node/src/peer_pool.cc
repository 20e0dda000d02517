#include "peer_pool.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <utility>

namespace ringcache::internal {

PeerPool::PeerPool(int max_message_bytes, const ClusterAuth* auth,
                   std::shared_ptr<grpc::ChannelCredentials> credentials)
    : max_message_bytes_(max_message_bytes),
      auth_(auth),
      credentials_(credentials != nullptr ? std::move(credentials)
                                          : grpc::InsecureChannelCredentials()) {}

PeerPool::Peer& PeerPool::Get(const std::string& address) {
  MutexLock lock(&mu_);
  std::unique_ptr<Peer>& peer = peers_[address];
  if (peer == nullptr) {
    grpc::ChannelArguments args;
    // Forwarded calls carry up to a full Set; their answers up to a full MultiGet.
    args.SetMaxReceiveMessageSize(max_message_bytes_);
    args.SetMaxSendMessageSize(max_message_bytes_);
    // Reconnect to a restarted peer within half a second instead of gRPC's default
    // backoff (1 s initial, growing to 120 s): while a channel backs off, calls on it fail
    // at once, and membership pushes, replication links and the refill of a node that
    // rejoins would wait that long. Heartbeats keep dialling a dead peer, so this is also
    // how fast a healed partition is noticed; one connect attempt per peer per 0.5 s is
    // cheap.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    peer = std::make_unique<Peer>();
    // Every call a node makes to another goes through here, so this is where the cluster
    // secret is added (cluster_auth.h).
    peer->channel = auth_ != nullptr && !auth_->open()
                        ? grpc::experimental::CreateCustomChannelWithInterceptors(
                              address, credentials_, args, auth_->ClientInterceptors())
                        : grpc::CreateCustomChannel(address, credentials_, args);
    peer->cache = v1::Cache::NewStub(peer->channel);
    peer->membership = v1::Membership::NewStub(peer->channel);
    peer->replication = v1::Replication::NewStub(peer->channel);
  }
  // Peers are never erased, so the reference outlives the lock.
  return *peer;
}

std::shared_ptr<grpc::Channel> PeerPool::Channel(const std::string& address) {
  return Get(address).channel;
}

v1::Cache::Stub* PeerPool::CacheStub(const std::string& address) {
  return Get(address).cache.get();
}

v1::Membership::Stub* PeerPool::MembershipStub(const std::string& address) {
  return Get(address).membership.get();
}

v1::Replication::Stub* PeerPool::ReplicationStub(const std::string& address) {
  return Get(address).replication.get();
}

}  // namespace ringcache::internal

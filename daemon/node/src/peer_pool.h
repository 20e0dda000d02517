// PeerPool: one gRPC channel per peer address, shared by everything in a node that calls
// other nodes (forwarding, membership, replication) and kept for the node's lifetime.
//
// Thread safety: internal synchronization; every method may be called concurrently.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "cluster_auth.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {

class PeerPool {
 public:
  // `max_message_bytes`: receive/send limit of the channels (the node's message limit).
  // `auth` (not owned, outlives the pool; nullptr = none): every call on the pool's
  // channels carries its cluster secret. `credentials`: the channels' (NodeTls's with
  // TLS); nullptr = plaintext.
  explicit PeerPool(int max_message_bytes, const ClusterAuth* auth = nullptr,
                    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

  // The channel to `address` (HOST:PORT), created on first use (connects lazily).
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  // Stubs over Channel(address). Valid for the pool's lifetime.
  v1::Cache::Stub* CacheStub(const std::string& address);
  v1::Membership::Stub* MembershipStub(const std::string& address);
  v1::Replication::Stub* ReplicationStub(const std::string& address);

 private:
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Cache::Stub> cache;
    std::unique_ptr<v1::Membership::Stub> membership;
    std::unique_ptr<v1::Replication::Stub> replication;
  };
  Peer& Get(const std::string& address);

  const int max_message_bytes_;
  const ClusterAuth* const auth_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  Mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Peer>> peers_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::internal
